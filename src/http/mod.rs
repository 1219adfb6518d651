//! The HTTP transport: routes, authentication of the bearer token, GraphQL-over-HTTP content
//! negotiation, health and metrics. It never knows a GraphQL type: it hands a verified
//! [`Principal`] and the request to [`crate::schema::execute`].
//!
//! A GraphQL request goes: body read (bounded in size and time) → authentication → the
//! principal's own limits ([`rate`]: its token bucket and its requests running, else 429
//! RATE_LIMITED) → a slot of the gateway's concurrency limit ([`admission`], else 503
//! OVERLOADED) → execution under a wall-clock limit (else 504 OPERATION_TIMEOUT, its work
//! cancelled). Health probes and metrics take none of these
//! paths, so they stay fast while the GraphQL endpoint sheds load. Under the router,
//! [`server`] bounds connections and the time to send headers.

pub mod admission;
mod metrics;
pub mod rate;
pub mod server;

pub use metrics::Metrics;

use crate::access::Principal;
use crate::auth::{AuthError, Authenticator};
use crate::error::ErrorCode;
use crate::schema::CaseGraphSchema;
use crate::store::Store;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// Everything the routes need.
#[derive(Clone)]
pub struct AppState {
    pub(crate) schema: CaseGraphSchema,
    pub(crate) auth: Authenticator,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) metrics: Arc<Metrics>,
    /// Counters of the access plan cache.
    pub(crate) plans: Arc<crate::access::PlanStats>,
    pub(crate) graphiql: bool,
    pub(crate) connectors: crate::connectors::Connectors,
    pub(crate) admission: Arc<admission::Admission>,
    pub(crate) rate: Arc<rate::RateLimiter>,
    pub(crate) limits: RequestLimits,
}

/// The per-request limits of the GraphQL endpoint.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Largest accepted body, in bytes (`server.body_limit_bytes`).
    pub body_limit: usize,
    /// Time to send the body once the headers arrived (`server.body_read_timeout_ms`).
    pub body_read_timeout: Duration,
    /// Wall-clock limit of one operation (`limits.operation_timeout_ms`).
    pub operation_timeout: Duration,
    /// `Retry-After` of a shed request (`server.retry_after_secs`).
    pub retry_after: Duration,
    /// Slots of the concurrency limit (`server.max_in_flight`), for `/metrics`.
    pub max_in_flight: usize,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let x_request_id = header::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/", get(index))
        .route("/graphql", post(graphql).get(graphql_get))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(state)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("-")
                        .to_string();
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(|res: &Response, latency: std::time::Duration, _span: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_millis() as u64, "Request finished");
                }),
        )
        // A bug must cost one request a 500, never the connection or the worker.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("A request handler panicked");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal error; the server log has details under this request's id", JSON, None)
        }))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

async fn index(State(state): State<AppState>) -> Response {
    if state.graphiql {
        Html(
            async_graphql::http::GraphiQLSource::build()
                .endpoint("/graphql")
                .title("CaseGraph")
                .finish(),
        )
        .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            "GraphiQL is disabled; POST GraphQL requests to /graphql\n",
        )
            .into_response()
    }
}

async fn live() -> &'static str {
    "ok\n"
}

/// Ready when the store answers and, with an identity provider, its signing keys are held:
/// without them every authenticated request would fail. The store's own acquire timeout
/// bounds the wait.
async fn ready(State(state): State<AppState>) -> Response {
    if !state.auth.ready() {
        tracing::warn!("Readiness check failed: no usable signing keys of the identity provider");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "identity provider keys unavailable\n",
        )
            .into_response();
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "Readiness check failed: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut body = state.metrics.render(state.store.query_count());
    body.push_str(&state.metrics.render_load(
        state.admission.in_flight(state.limits.max_in_flight),
        state.admission.queued(),
    ));
    body.push_str(&metrics::render_connectors(&state.connectors));
    body.push_str(&metrics::render_plans(&state.plans));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn graphql_get() -> Response {
    let mut res = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        "send GraphQL requests with POST (application/json)",
        JSON,
        None,
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    res
}

/// Picks the response media type from `Accept` (GraphQL over HTTP): the GraphQL response type
/// unless the client accepts only `application/json`.
fn negotiate(headers: &HeaderMap) -> Option<&'static str> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(GRAPHQL_RESPONSE);
    };
    let mut json = false;
    let mut any = false;
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let refused = parts.any(|p| p.replace(' ', "").eq_ignore_ascii_case("q=0"));
        if refused {
            continue;
        }
        match media.as_str() {
            GRAPHQL_RESPONSE => return Some(GRAPHQL_RESPONSE),
            JSON => json = true,
            "*/*" | "application/*" => any = true,
            _ => {}
        }
    }
    if json {
        Some(JSON)
    } else if any || accept.trim().is_empty() {
        Some(GRAPHQL_RESPONSE)
    } else {
        None
    }
}

fn error_body(code: ErrorCode, message: &str, reason: Option<&str>) -> serde_json::Value {
    let mut ext = json!({ "code": code.as_str() });
    if let Some(r) = reason {
        ext["reason"] = json!(r);
    }
    json!({ "errors": [{ "message": message, "extensions": ext }] })
}

fn error_response(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    media: &'static str,
    reason: Option<&str>,
) -> Response {
    let body =
        serde_json::to_vec(&error_body(code, message, reason)).expect("JSON values serialise");
    (status, [(header::CONTENT_TYPE, media)], body).into_response()
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, (StatusCode, ErrorCode, String, Option<&'static str>)> {
    let unauth = |msg: &str, reason: Option<&'static str>| {
        (
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            msg.to_string(),
            reason,
        )
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauth(
            "a bearer token is required (Authorization: Bearer <JWT>)",
            Some("TOKEN_MISSING"),
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            unauth(
                "the Authorization header must be `Bearer <JWT>`",
                Some("TOKEN_MISSING"),
            )
        })?;
    let claims = match state.auth.verify(token).await {
        Ok(c) => c,
        Err(e) if e.is_server_side() => {
            tracing::error!(error = %e, "Token verification could not complete");
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::IdentityProviderUnavailable,
                "the identity provider's keys are unavailable; retry later".into(),
                Some(e.code()),
            ));
        }
        Err(e) => {
            tracing::info!(reason = e.code(), "Token refused");
            return Err(unauth(&e.to_string(), Some(auth_reason(&e))));
        }
    };
    Principal::from_claims(
        &claims.iss,
        &claims.sub,
        &claims.org,
        &claims.roles,
        &claims.missions,
    )
    .map_err(|e| unauth(&e.to_string(), Some("TOKEN_INVALID_CLAIM")))
}

fn auth_reason(e: &AuthError) -> &'static str {
    e.code()
}

async fn graphql(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let Some(media) = negotiate(&headers) else {
        state.metrics.record(406, started.elapsed());
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::BadRequest,
            "Accept must allow application/graphql-response+json or application/json",
            JSON,
            None,
        );
    };
    let res = handle_graphql(&state, &headers, body, media).await;
    state
        .metrics
        .record(res.status().as_u16(), started.elapsed());
    res
}

/// A refusal of the whole request: status, code, message.
type Refusal = (StatusCode, ErrorCode, &'static str);

/// Reads the body, at most `limit` bytes within `timeout` (a client that trickles its body
/// holds its connection, never a slot of the concurrency limit).
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Refusal> {
    const TOO_LARGE: Refusal = (
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        "the request body is larger than the configured limit",
    );
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(TOO_LARGE);
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                TOO_LARGE
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadRequest,
                    "the request body could not be read",
                )
            })
        }
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            "the request body did not arrive in time",
        )),
    }
}

fn with_retry_after(mut res: Response, after: Duration) -> Response {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&secs.max(1).to_string()).expect("digits are a valid header"),
    );
    res
}

async fn handle_graphql(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    media: &'static str,
) -> Response {
    let limits = state.limits;
    let body = match read_body(headers, body, limits.body_limit, limits.body_read_timeout).await {
        Ok(b) => b,
        Err((status, code, msg)) => return error_response(status, code, msg, media, None),
    };
    let principal = match authenticate(state, headers).await {
        Ok(p) => p,
        Err((status, code, message, reason)) => {
            let mut res = error_response(status, code, &message, media, reason);
            if status == StatusCode::UNAUTHORIZED {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return res;
        }
    };
    let _principal_slot = match state.rate.admit(&principal) {
        Ok(slot) => slot,
        Err(refused) => {
            state.metrics.rate_limited();
            let (message, wait) = match refused {
                rate::Refused::Rate(wait) => (
                    "this principal sent more requests than its rate limit allows; retry later",
                    wait,
                ),
                rate::Refused::InFlight(_) => (
                    "this principal already has as many requests running as it may; retry when one has finished",
                    Duration::from_secs(1),
                ),
            };
            return with_retry_after(
                error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    message,
                    media,
                    None,
                ),
                wait,
            );
        }
    };
    let Some(_slot) = state.admission.admit().await else {
        state.metrics.shed();
        return with_retry_after(
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Overloaded,
                "the gateway is at its concurrency limit; retry later",
                media,
                None,
            ),
            limits.retry_after,
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with(JSON) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "send the GraphQL request as Content-Type: application/json",
            media,
            None,
        );
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                &format!("the body is not a GraphQL request (JSON with a `query` string): {e}"),
                media,
                None,
            )
        }
    };
    let operation = request.operation_name.clone().unwrap_or_default();
    // Dropping the execution on timeout cancels its work (see `schema::execute`); a client
    // that goes away drops this whole future the same way.
    let executed = tokio::time::timeout(
        limits.operation_timeout,
        crate::schema::execute(&state.schema, request, principal),
    )
    .await;
    let Ok(response) = executed else {
        state.metrics.timed_out();
        tracing::warn!(operation = %operation, timeout_ms = limits.operation_timeout.as_millis() as u64, "Operation cancelled at its wall-clock limit");
        return error_response(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::OperationTimeout,
            "the operation did not complete within the configured time limit and was cancelled",
            media,
            None,
        );
    };
    // A request error (unparsable, invalid, refused before execution) has no `data`.
    let request_error = response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| e.path.is_empty());
    let mut body = serde_json::Map::new();
    if !request_error {
        body.insert(
            "data".into(),
            serde_json::to_value(&response.data).expect("GraphQL values serialise"),
        );
    }
    if !response.errors.is_empty() {
        body.insert(
            "errors".into(),
            serde_json::to_value(&response.errors).expect("GraphQL errors serialise"),
        );
    }
    if !response.extensions.is_empty() {
        body.insert(
            "extensions".into(),
            serde_json::to_value(&response.extensions).expect("extensions serialise"),
        );
    }
    if !response.errors.is_empty() {
        let codes: Vec<&str> = response
            .errors
            .iter()
            .filter_map(|e| e.extensions.as_ref().and_then(|x| x.get("code")))
            .filter_map(|v| match v {
                async_graphql::Value::String(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        tracing::info!(operation = %operation, errors = response.errors.len(), codes = ?codes, "GraphQL operation had errors");
    }
    // GraphQL over HTTP: with application/json every well-formed request gets 200; with the
    // GraphQL response type a request error is a 4xx.
    let status = if request_error && media == GRAPHQL_RESPONSE {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let bytes =
        serde_json::to_vec(&serde_json::Value::Object(body)).expect("JSON values serialise");
    (status, [(header::CONTENT_TYPE, media)], bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_str(v).expect("valid header"),
        );
        h
    }

    #[test]
    fn negotiation_follows_graphql_over_http() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(GRAPHQL_RESPONSE));
        assert_eq!(negotiate(&accept("application/json")), Some(JSON));
        assert_eq!(
            negotiate(&accept(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(GRAPHQL_RESPONSE)
        );
        assert_eq!(
            negotiate(&accept(
                "application/json, application/graphql-response+json;q=0"
            )),
            Some(JSON)
        );
        assert_eq!(negotiate(&accept("*/*")), Some(GRAPHQL_RESPONSE));
        assert_eq!(negotiate(&accept("text/html")), None);
    }
}
