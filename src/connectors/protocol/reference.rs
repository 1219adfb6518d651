//! The reference implementation of the CaseGraph connector protocol: a small server that
//! answers from a JSON file of canonical records. States building a new system can read it as
//! executable documentation; the tests run CaseGraph against it; `casegraph protocol-reference`
//! serves it.

use super::PROTOCOL_VERSION;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// How many received lookups the server remembers.
pub const RECEIVED_KEPT: usize = 1000;

/// Largest batch the reference server accepts.
pub const MAX_BATCH: usize = 100;

/// A lookup request, as the reference server received it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct LookupRequest {
    /// "un_reference" or "national_reference".
    pub match_by: String,
    /// Keys asked for.
    pub keys: Vec<String>,
    /// Parts of the records asked for (absent: all), by protocol field name; `key` and
    /// `marking` always come back, `national_stage` with `stage`, and `field_markings` holds
    /// the entries of the fields asked for only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// The reference server's state.
#[derive(Clone)]
pub struct ReferenceServer {
    records: Arc<Vec<Value>>,
    token: Option<Arc<str>>,
    received: Arc<Mutex<Vec<LookupRequest>>>,
}

impl ReferenceServer {
    /// A server answering from `records` (canonical records, see the protocol document); with
    /// `token`, every request must carry `Authorization: Bearer <token>`.
    pub fn new(records: Vec<Value>, token: Option<String>) -> Self {
        Self {
            records: Arc::new(records),
            token: token.map(Into::into),
            received: Arc::default(),
        }
    }

    /// Reads records from a JSON file holding an array of canonical records.
    pub fn from_file(path: &std::path::Path, token: Option<String>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        let records = value
            .as_array()
            .cloned()
            .ok_or_else(|| format!("{}: expected an array of records", path.display()))?;
        for (i, r) in records.iter().enumerate() {
            if r.get("key").and_then(Value::as_str).is_none() {
                return Err(format!(
                    "{}: record {i} has no string `key`",
                    path.display()
                ));
            }
        }
        Ok(Self::new(records, token))
    }

    /// The lookups received so far, the last `RECEIVED_KEPT` of them (what CaseGraph asked for).
    pub fn received(&self) -> Vec<LookupRequest> {
        self.received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The routes: `GET /capabilities`, `POST /lookup`, `GET /health`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/capabilities", get(capabilities))
            .route("/lookup", post(lookup))
            .route("/health", get(health))
            .with_state(self.clone())
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        match &self.token {
            None => true,
            Some(t) => headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|v| v == &**t),
        }
    }
}

fn problem(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn capabilities(State(s): State<ReferenceServer>, headers: HeaderMap) -> Response {
    if !s.authorised(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    Json(json!({
        "protocol": PROTOCOL_VERSION,
        "match_by": ["un_reference", "national_reference"],
        "max_batch": MAX_BATCH,
    }))
    .into_response()
}

async fn health(State(s): State<ReferenceServer>, headers: HeaderMap) -> Response {
    if !s.authorised(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    Json(json!({ "status": "ok", "records": s.records.len() })).into_response()
}

async fn lookup(
    State(s): State<ReferenceServer>,
    headers: HeaderMap,
    body: Result<Json<LookupRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !s.authorised(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let Ok(Json(req)) = body else {
        return problem(
            StatusCode::BAD_REQUEST,
            "expected {\"match_by\": ..., \"keys\": [...]}",
        );
    };
    if req.keys.len() > MAX_BATCH {
        return problem(StatusCode::BAD_REQUEST, "too many keys in one lookup");
    }
    let field = match req.match_by.as_str() {
        "un_reference" => "key",
        "national_reference" => "national_reference",
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "match_by must be un_reference or national_reference",
            )
        }
    };
    {
        // Kept for tests and inspection: the last lookups only, so a long-running server
        // does not grow without bound.
        let mut received = s
            .received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if received.len() >= RECEIVED_KEPT {
            received.remove(0);
        }
        received.push(req.clone());
    }
    let records: Vec<Value> = s
        .records
        .iter()
        .filter(|r| {
            r.get(field)
                .and_then(Value::as_str)
                .is_some_and(|k| req.keys.iter().any(|q| q == k))
        })
        .map(|r| {
            // A record answers the key it was asked by, with the parts asked for only: `key`
            // and `marking` always, `national_stage` with `stage`, and the markings of the
            // fields asked for.
            let mut r = match &req.fields {
                None => r.clone(),
                Some(fields) => {
                    let asked = |name: &str| fields.iter().any(|f| f == name);
                    let mut out = serde_json::Map::new();
                    if let Value::Object(obj) = r {
                        for (k, v) in obj {
                            match k.as_str() {
                                "key" | "marking" => {
                                    out.insert(k.clone(), v.clone());
                                }
                                "national_stage" if asked("stage") => {
                                    out.insert(k.clone(), v.clone());
                                }
                                "field_markings" => {
                                    if let Value::Object(markings) = v {
                                        let kept: serde_json::Map<String, Value> = markings
                                            .iter()
                                            .filter(|(f, _)| asked(f))
                                            .map(|(f, m)| (f.clone(), m.clone()))
                                            .collect();
                                        if !kept.is_empty() {
                                            out.insert(k.clone(), Value::Object(kept));
                                        }
                                    }
                                }
                                _ if asked(k) => {
                                    out.insert(k.clone(), v.clone());
                                }
                                _ => {}
                            }
                        }
                    }
                    Value::Object(out)
                }
            };
            if field == "national_reference" {
                if let Some(n) = r.get("national_reference").cloned() {
                    r["key"] = n;
                }
            }
            r
        })
        .collect();
    Json(json!({ "records": records })).into_response()
}
