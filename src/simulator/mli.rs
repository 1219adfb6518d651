//! Simulated Mali system: the API of a "Pôle judiciaire spécialisé" case register, in French,
//! behind an OAuth2 client-credentials token endpoint, as a real national system would be.
//!
//! - `POST /oauth2/token` — `grant_type=client_credentials`; the client authenticates with HTTP
//!   Basic (RFC 6749 §2.3.1) or with `client_id`/`client_secret` in the form. Answers an opaque
//!   access token valid [`TOKEN_LIFETIME`].
//! - `GET /api/v1/dossiers?reference_onu=A,B` — the files answering UN references (at most
//!   [`MAX_BATCH`]); `?numero_parquet=X,Y` finds files by national reference instead.
//! - `GET /api/v1/dossiers/{reference_onu}` — one file, 404 when unknown.
//! - `GET /api/v1/sante` — `{"statut": "ok"}`.
//!
//! Every `/api` call needs `Authorization: Bearer <access token>`; a missing, unknown or
//! expired token gets 401 with `WWW-Authenticate: Bearer error="invalid_token"`.

use super::{MLI_DEMO_CLIENT_ID, MLI_DEMO_CLIENT_SECRET};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an issued access token is accepted.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// Most references accepted in one batched call.
pub const MAX_BATCH: usize = 100;

/// The simulated Mali API.
#[derive(Clone)]
pub struct MliSimulator {
    dossiers: Arc<Vec<Value>>,
    tokens: Arc<Mutex<HashMap<String, Instant>>>,
}

impl MliSimulator {
    /// A simulator serving `dossiers` (the fixture's `dossiers` array).
    pub fn new(dossiers: Vec<Value>) -> Self {
        Self {
            dossiers: Arc::new(dossiers),
            tokens: Arc::default(),
        }
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/oauth2/token", post(token))
            .route("/api/v1/dossiers", get(search))
            .route("/api/v1/dossiers/{reference}", get(one))
            .route("/api/v1/sante", get(health))
            .with_state(self.clone())
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn issue(&self) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut tokens = self.tokens();
        tokens.retain(|_, expires| *expires > now);
        tokens.insert(token.clone(), now + TOKEN_LIFETIME);
        token
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        else {
            return false;
        };
        self.tokens()
            .get(token.trim())
            .is_some_and(|expires| *expires > Instant::now())
    }

    fn find(&self, field: &str, keys: &[&str]) -> Vec<Value> {
        self.dossiers
            .iter()
            .filter(|d| {
                d.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|k| keys.contains(&k))
            })
            .cloned()
            .collect()
    }
}

/// The token request form (RFC 6749 §4.4.2).
#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    #[allow(dead_code, reason = "accepted, every scope is granted")]
    scope: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut res = (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"pole-judiciaire\""),
        );
    }
    res
}

/// Decodes `%XX` and `+` as `application/x-www-form-urlencoded` does (RFC 6749 §2.3.1 encodes
/// the Basic credentials that way).
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

async fn token(
    State(s): State<MliSimulator>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected an application/x-www-form-urlencoded body",
        );
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    let credentials = basic_credentials(&headers)
        .or_else(|| Some((form.client_id.clone()?, form.client_secret.clone()?)));
    match credentials {
        Some((id, secret)) if id == MLI_DEMO_CLIENT_ID && secret == MLI_DEMO_CLIENT_SECRET => {
            let token = s.issue();
            Json(json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME.as_secs(),
                "scope": "dossiers.lecture",
            }))
            .into_response()
        }
        _ => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        ),
    }
}

fn unauthorised() -> Response {
    let mut res = (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "erreur": "jeton d'accès absent, inconnu ou expiré" })),
    )
        .into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    res
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "erreur": message }))).into_response()
}

async fn search(
    State(s): State<MliSimulator>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !s.authorised(&headers) {
        return unauthorised();
    }
    let (field, list) = match (q.get("reference_onu"), q.get("numero_parquet")) {
        (Some(l), None) => ("reference_onu", l),
        (None, Some(l)) => ("numero_parquet", l),
        _ => return bad_request(
            "indiquer soit reference_onu, soit numero_parquet (valeurs séparées par des virgules)",
        ),
    };
    let keys: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    if keys.len() > MAX_BATCH {
        return bad_request("trop de références dans une seule demande (100 au plus)");
    }
    let dossiers = s.find(field, &keys);
    Json(json!({ "nombre": dossiers.len(), "dossiers": dossiers })).into_response()
}

async fn one(
    State(s): State<MliSimulator>,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Response {
    if !s.authorised(&headers) {
        return unauthorised();
    }
    match s
        .find("reference_onu", &[reference.as_str()])
        .into_iter()
        .next()
    {
        Some(d) => Json(d).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "erreur": "dossier inconnu" })),
        )
            .into_response(),
    }
}

async fn health(State(s): State<MliSimulator>, headers: HeaderMap) -> Response {
    if !s.authorised(&headers) {
        return unauthorised();
    }
    Json(json!({ "statut": "ok", "dossiers": s.dossiers.len() })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_escapes_and_plus() {
        assert_eq!(form_decode("a%3Ab+c"), "a:b c");
        assert_eq!(form_decode("plain-secret"), "plain-secret");
        assert_eq!(form_decode("bad%zz"), "bad%zz");
        assert_eq!(form_decode("end%4"), "end%4");
    }
}
