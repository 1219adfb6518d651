//! Authentication over HTTP against the real server: what a client without a valid token gets,
//! and how tokens of the production identity provider (keys from a real JWKS server) are taken.

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use casegraph::auth::DevIssuer;
use casegraph::config::{Config, JwtIssuerConfig};
use common::{try_spawn, AppOptions, TestApp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Value};

const RSA_TEST_KEY: &[u8] = include_bytes!("fixtures/keys/rsa-test-key.pem");
const RSA_TEST_JWK: &str = include_str!("fixtures/keys/rsa-test-jwk.json");
const IDP: &str = "https://idp.test/";
const VIEWER: &str = "{ viewer { subject organisation roles } }";

// ---------- helpers ----------

/// What the server answered to one GraphQL POST.
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    text: String,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
    }

    fn reason(&self) -> &str {
        self.body["errors"][0]["extensions"]["reason"]
            .as_str()
            .unwrap_or_default()
    }
}

/// POSTs the viewer query with `authorization` as the raw header value (none when `None`).
async fn post_viewer(app: &TestApp, authorization: Option<&str>) -> Answer {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base))
        .json(&json!({ "query": VIEWER }));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let res = request.send().await.expect("request sent");
    let status = res.status().as_u16();
    let www_authenticate = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ASCII header").to_owned());
    let text = res.text().await.expect("body read");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {text}"));
    Answer {
        status,
        www_authenticate,
        text,
        body,
    }
}

async fn post_bearer(app: &TestApp, token: &str) -> Answer {
    post_viewer(app, Some(&format!("Bearer {token}"))).await
}

/// Asserts `token` is refused with 401 UNAUTHENTICATED and `reason`, and that neither the token
/// nor its signature comes back in the body. Returns the error message.
async fn assert_refused(app: &TestApp, token: &str, reason: &str) -> String {
    let answer = post_bearer(app, token).await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert_eq!(answer.code(), "UNAUTHENTICATED", "{}", answer.text);
    assert_eq!(answer.reason(), reason, "{}", answer.text);
    assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"));
    assert!(answer.body.get("data").is_none(), "{}", answer.text);
    assert!(
        !answer.text.contains(token),
        "the body echoes the token: {}",
        answer.text
    );
    let signature = token.rsplit('.').next().unwrap_or_default();
    // A short part (garbage like `a.b.c`) could appear by chance; a real signature cannot.
    if signature.len() >= 8 {
        assert!(
            !answer.text.contains(signature),
            "the body echoes the signature: {}",
            answer.text
        );
    }
    answer.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A gateway with the development issuer and an empty store (nothing here reads cases).
async fn spawn_dev() -> TestApp {
    try_spawn(AppOptions {
        import_bundled: false,
        ..Default::default()
    })
    .await
    .expect("SQLite is always available")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

fn claims(iss: &str, org: &str, roles: &[&str]) -> Value {
    let now = unix_now();
    json!({
        "iss": iss, "sub": "analyst-17", "aud": "casegraph",
        "exp": now + 600, "nbf": now, "iat": now,
        "org": org, "roles": roles,
    })
}

fn sign(algorithm: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

/// The development issuer's private key, as the gateway under test loaded it.
fn dev_signing_key(app: &TestApp) -> EncodingKey {
    let pem = std::fs::read(app.dir.path().join("dev-key.pem"))
        .expect("the harness puts the dev key here");
    EncodingKey::from_ec_pem(&pem).expect("the dev key is a P-256 PEM")
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_TEST_KEY).expect("fixture RSA key")
}

fn rsa_jwk() -> Value {
    serde_json::from_str(RSA_TEST_JWK).expect("fixture JWK is JSON")
}

/// A P-256 key made for one test.
struct EcKey {
    secret: p256::SecretKey,
    kid: String,
}

impl EcKey {
    fn new(kid: &str) -> Self {
        Self {
            secret: p256::SecretKey::random(&mut rand_core::OsRng),
            kid: kid.into(),
        }
    }

    fn jwk(&self) -> Value {
        let mut jwk: Value =
            serde_json::from_str(&self.secret.public_key().to_jwk_string()).expect("JWK is JSON");
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!("ES256");
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        let pem = self
            .secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encode PKCS#8 PEM");
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).expect("P-256 PEM");
        sign(Algorithm::ES256, Some(&self.kid), claims, &key)
    }
}

/// A real HTTP server publishing a JWKS document that a test can replace.
struct JwksServer {
    url: String,
    document: Arc<Mutex<Value>>,
    requests: Arc<AtomicUsize>,
}

type JwksState = (Arc<Mutex<Value>>, Arc<AtomicUsize>);

impl JwksServer {
    async fn start(document: Value) -> Self {
        let document = Arc::new(Mutex::new(document));
        let requests = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .with_state((Arc::clone(&document), Arc::clone(&requests)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("JWKS server") });
        Self {
            url: format!("http://127.0.0.1:{}/jwks", addr.port()),
            document,
            requests,
        }
    }

    fn publish(&self, document: Value) {
        *self.document.lock().expect("document lock") = document;
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve_jwks(State((document, requests)): State<JwksState>) -> Json<Value> {
    requests.fetch_add(1, Ordering::SeqCst);
    Json(document.lock().expect("document lock").clone())
}

thread_local! {
    /// The JWKS URL `production_issuer` configures. `AppOptions::configure` is a plain `fn`, so the
    /// URL travels beside it; a thread local (rather than a process-wide env var or static) keeps
    /// tests that run in parallel, each with its own JWKS server, apart. `try_spawn` calls
    /// `configure` on the test's own thread.
    static JWKS_URL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Configures the production identity provider at the JWKS URL of this thread, and disables the
/// development issuer.
fn production_issuer(config: &mut Config) {
    let jwks_url = JWKS_URL
        .with(|url| url.borrow().clone())
        .expect("spawn_with_idp sets the JWKS URL first");
    config.auth.jwt = Some(JwtIssuerConfig {
        issuer: IDP.into(),
        jwks_url,
        algorithms: vec!["RS256".into(), "ES256".into()],
        jwks_refresh_secs: 600,
        // Zero so that a rotated key is fetched at once; the rate limit has its own unit test.
        jwks_min_refetch_secs: 0,
        jwks_fetch_timeout_ms: 5_000,
    });
    config.auth.dev_issuer.enabled = false;
}

/// A gateway that trusts only the identity provider whose keys `jwks` serves.
async fn spawn_with_idp(jwks: &JwksServer) -> TestApp {
    JWKS_URL.with(|url| *url.borrow_mut() = Some(jwks.url.clone()));
    try_spawn(AppOptions {
        import_bundled: false,
        configure: production_issuer,
        ..Default::default()
    })
    .await
    .expect("SQLite is always available")
}

// ---------- no token ----------

#[tokio::test]
async fn a_request_without_authorization_is_unauthenticated_with_a_bearer_challenge() {
    let app = spawn_dev().await;
    let answer = post_viewer(&app, None).await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"));
    assert_eq!(answer.code(), "UNAUTHENTICATED", "{}", answer.text);
    assert_eq!(answer.reason(), "TOKEN_MISSING", "{}", answer.text);
    assert!(answer.body.get("data").is_none(), "{}", answer.text);
}

#[tokio::test]
async fn a_non_bearer_authorization_header_is_unauthenticated() {
    let app = spawn_dev().await;
    let token = app.token("MLI", &["member-state-analyst"]);
    for header in [
        "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
        format!("Token {token}"),
        token.clone(),
        "Bearer ".to_owned(),
    ] {
        let answer = post_viewer(&app, Some(&header)).await;
        assert_eq!(answer.status, 401, "{header}: {}", answer.text);
        assert_eq!(
            answer.code(),
            "UNAUTHENTICATED",
            "{header}: {}",
            answer.text
        );
        assert_eq!(
            answer.www_authenticate.as_deref(),
            Some("Bearer"),
            "{header}"
        );
        assert!(
            !answer.text.contains(&token),
            "the body echoes the token: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn a_valid_dev_token_is_accepted_and_names_its_principal() {
    let app = spawn_dev().await;
    let answer = post_bearer(&app, &app.token("MLI", &["member-state-analyst"])).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.body["data"]["viewer"],
        json!({ "subject": "test-user", "organisation": "MLI", "roles": ["MEMBER_STATE_ANALYST"] })
    );
}

// ---------- bad tokens ----------

#[tokio::test]
async fn an_expired_token_is_refused_as_expired() {
    let app = spawn_dev().await;
    let mut expired = claims("casegraph-dev", "MLI", &["member-state-analyst"]);
    expired["exp"] = json!(unix_now() - 3600);
    expired["nbf"] = json!(unix_now() - 7200);
    let token = sign(
        Algorithm::ES256,
        Some(app.dev.key_id()),
        &expired,
        &dev_signing_key(&app),
    );
    assert_refused(&app, &token, "TOKEN_EXPIRED").await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_as_wrong_audience() {
    let app = spawn_dev().await;
    let token = app
        .dev
        .mint(
            "another-api",
            "analyst-17",
            "MLI",
            &["member-state-analyst".into()],
            &[],
            Duration::from_secs(600),
        )
        .expect("mint");
    assert_refused(&app, &token, "TOKEN_WRONG_AUDIENCE").await;
}

#[tokio::test]
async fn a_token_signed_by_another_es256_key_is_refused() {
    let app = spawn_dev().await;
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other_path = other_dir.path().join("other-key.pem");
    let other = DevIssuer::load_or_create(&other_path).expect("another P-256 key");
    assert_ne!(other.key_id(), app.dev.key_id());

    // Its own token names its own key id, which the gateway does not know.
    let token = other
        .mint(
            "casegraph",
            "analyst-17",
            "MLI",
            &[],
            &[],
            Duration::from_secs(600),
        )
        .expect("mint");
    assert_refused(&app, &token, "TOKEN_UNKNOWN_KEY").await;

    // A forgery naming the real key id fails on the signature.
    let other_key =
        EncodingKey::from_ec_pem(&std::fs::read(&other_path).expect("read the other key"))
            .expect("PEM");
    let forged = sign(
        Algorithm::ES256,
        Some(app.dev.key_id()),
        &claims("casegraph-dev", "UN", &["admin"]),
        &other_key,
    );
    assert_refused(&app, &forged, "TOKEN_INVALID").await;
}

#[tokio::test]
async fn an_alg_none_token_is_refused_as_algorithm_not_accepted() {
    let app = spawn_dev().await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("casegraph-dev", "UN", &["admin"]).to_string());
    let message = assert_refused(
        &app,
        &format!("{header}.{payload}."),
        "TOKEN_ALGORITHM_NOT_ACCEPTED",
    )
    .await;
    assert!(
        message.contains("none"),
        "the message names the algorithm: {message}"
    );
}

#[tokio::test]
async fn an_hs256_token_keyed_with_public_material_is_refused_as_algorithm_not_accepted() {
    let app = spawn_dev().await;
    // The classic confusion attack: HMAC keyed with something public, here the key id.
    let key = EncodingKey::from_secret(app.dev.key_id().as_bytes());
    let token = sign(
        Algorithm::HS256,
        Some(app.dev.key_id()),
        &claims("casegraph-dev", "UN", &["admin"]),
        &key,
    );
    let message = assert_refused(&app, &token, "TOKEN_ALGORITHM_NOT_ACCEPTED").await;
    assert!(
        message.contains("HS256"),
        "the message names the algorithm: {message}"
    );
}

#[tokio::test]
async fn a_garbage_token_is_refused_as_malformed() {
    let app = spawn_dev().await;
    for garbage in [
        "not-a-jwt",
        "aaaa.bbbb.cccc",
        "eyJhbGciOiJFUzI1NiJ9.%%%.sig-part-xyz",
        "part-one.part-two.part-three.part-four",
    ] {
        assert_refused(&app, garbage, "TOKEN_MALFORMED").await;
    }
}

#[tokio::test]
async fn an_org_claim_that_is_no_member_state_un_entity_or_regional_organisation_is_refused() {
    let app = spawn_dev().await;
    for org in ["ACME", "XXX", "mli", "UN/", "NATO-ish"] {
        let token = app.token(org, &["member-state-analyst"]);
        assert_refused(&app, &token, "TOKEN_INVALID_CLAIM").await;
    }
    for org in ["FRA", "UN/DPO", "AU"] {
        let answer = post_bearer(&app, &app.token(org, &["member-state-analyst"])).await;
        assert_eq!(answer.status, 200, "{org}: {}", answer.text);
        assert_eq!(answer.body["data"]["viewer"]["organisation"], json!(org));
    }
}

// ---------- production identity provider (JWKS) ----------

#[tokio::test]
async fn rs256_and_es256_tokens_of_the_identity_provider_are_accepted() {
    let ec = EcKey::new("ec-2025-01");
    let jwks = JwksServer::start(json!({ "keys": [rsa_jwk(), ec.jwk()] })).await;
    let app = spawn_with_idp(&jwks).await;

    let rs256 = sign(
        Algorithm::RS256,
        Some("rsa-test-1"),
        &claims(IDP, "UN/DPO", &["un-analyst"]),
        &rsa_key(),
    );
    let answer = post_bearer(&app, &rs256).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.body["data"]["viewer"],
        json!({ "subject": "analyst-17", "organisation": "UN/DPO", "roles": ["UN_ANALYST"] })
    );

    let es256 = ec.sign(&claims(IDP, "MLI", &["member-state-analyst", "auditor"]));
    let answer = post_bearer(&app, &es256).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.body["data"]["viewer"],
        json!({ "subject": "analyst-17", "organisation": "MLI", "roles": ["MEMBER_STATE_ANALYST", "AUDITOR"] })
    );
    assert!(jwks.requests() >= 1, "the keys came from the JWKS server");
}

#[tokio::test]
async fn a_token_signed_with_the_providers_key_but_naming_another_issuer_is_refused() {
    let jwks = JwksServer::start(json!({ "keys": [rsa_jwk()] })).await;
    let app = spawn_with_idp(&jwks).await;
    for issuer in ["https://evil.test/", "https://idp.test", "casegraph-dev"] {
        let token = sign(
            Algorithm::RS256,
            Some("rsa-test-1"),
            &claims(issuer, "MLI", &["member-state-analyst"]),
            &rsa_key(),
        );
        assert_refused(&app, &token, "TOKEN_UNKNOWN_ISSUER").await;
    }
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_the_jwks_is_fetched_again() {
    let old = EcKey::new("2025-01");
    let new = EcKey::new("2025-02");
    let jwks = JwksServer::start(json!({ "keys": [old.jwk()] })).await;
    let app = spawn_with_idp(&jwks).await;
    let answer = post_bearer(
        &app,
        &old.sign(&claims(IDP, "MLI", &["member-state-analyst"])),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let fetches_before = jwks.requests();

    jwks.publish(json!({ "keys": [new.jwk()] }));
    let answer = post_bearer(
        &app,
        &new.sign(&claims(IDP, "MLI", &["member-state-analyst"])),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["data"]["viewer"]["organisation"], json!("MLI"));
    assert_eq!(
        jwks.requests(),
        fetches_before + 1,
        "the unknown kid caused exactly one refetch"
    );

    assert_refused(
        &app,
        &old.sign(&claims(IDP, "MLI", &["member-state-analyst"])),
        "TOKEN_UNKNOWN_KEY",
    )
    .await;
}

#[tokio::test]
async fn a_dev_token_is_refused_when_the_dev_issuer_is_disabled() {
    let jwks = JwksServer::start(json!({ "keys": [rsa_jwk()] })).await;
    let app = spawn_with_idp(&jwks).await;
    // The harness still holds a development key; the gateway must not trust it.
    let token = app.token("MLI", &["member-state-analyst"]);
    assert_refused(&app, &token, "TOKEN_UNKNOWN_ISSUER").await;
}
