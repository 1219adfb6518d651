//! Tests of token verification against the development issuer and a real JWKS server.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};

use super::*;
use crate::config::{DevIssuerConfig, JwtIssuerConfig};

const RSA_TEST_KEY: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-test-key.pem");
const RSA_TEST_JWK: &str = include_str!("../../tests/fixtures/keys/rsa-test-jwk.json");
const IDP: &str = "https://idp.example.test/";
const AUDIENCE: &str = "casegraph";

// ---------- helpers ----------

fn dev_config(dir: &Path) -> AuthConfig {
    AuthConfig {
        audience: AUDIENCE.into(),
        leeway_secs: 30,
        jwt: None,
        dev_issuer: DevIssuerConfig {
            enabled: true,
            key_file: dir.join("dev-key.pem").display().to_string(),
            token_ttl_minutes: 60,
        },
    }
}

fn jwt_config(jwks_url: &str, refresh_secs: u64, min_refetch_secs: u64) -> AuthConfig {
    AuthConfig {
        audience: AUDIENCE.into(),
        leeway_secs: 30,
        jwt: Some(JwtIssuerConfig {
            issuer: IDP.into(),
            jwks_url: jwks_url.into(),
            algorithms: vec!["RS256".into(), "ES256".into()],
            jwks_refresh_secs: refresh_secs,
            jwks_min_refetch_secs: min_refetch_secs,
            jwks_fetch_timeout_ms: 5_000,
        }),
        dev_issuer: DevIssuerConfig::default(),
    }
}

/// A URL where nothing listens: the port was free a moment ago.
fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/jwks.json")
}

fn claims(iss: &str) -> TokenClaims {
    let now = unix_now();
    TokenClaims {
        iss: iss.into(),
        sub: "analyst-17".into(),
        aud: json!(AUDIENCE),
        exp: now + 600,
        nbf: Some(now),
        iat: Some(now),
        org: "MLI".into(),
        roles: vec!["MEMBER_STATE_ANALYST".into()],
        missions: vec![],
    }
}

fn sign_rs256(claims: &TokenClaims, kid: Option<&str>) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_TEST_KEY).expect("fixture RSA key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, claims, &key).expect("sign RS256")
}

fn rsa_kid() -> String {
    let jwk: Value = serde_json::from_str(RSA_TEST_JWK).expect("fixture JWK is JSON");
    jwk["kid"]
        .as_str()
        .expect("fixture JWK has a kid")
        .to_owned()
}

/// A P-256 key made for one test, with its JWK.
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
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &self.secret.public_key(),
            false,
        );
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point has x")),
            "y": URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point has y")),
        })
    }

    fn sign(&self, claims: &TokenClaims, kid: Option<&str>) -> String {
        let der = self.secret.to_pkcs8_der().expect("encode PKCS#8");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(String::from);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(der.as_bytes()))
            .expect("sign ES256")
    }
}

/// A real HTTP server publishing a JWKS document that tests can swap, break and count.
struct JwksServer {
    url: String,
    state: Arc<JwksState>,
}

struct JwksState {
    document: Mutex<Value>,
    requests: AtomicUsize,
    failing: AtomicBool,
}

impl JwksServer {
    async fn start(document: Value) -> Self {
        let state = Arc::new(JwksState {
            document: Mutex::new(document),
            requests: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("JWKS test server");
        });
        Self {
            url: format!("http://{addr}/jwks.json"),
            state,
        }
    }

    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    fn publish(&self, document: Value) {
        *self.state.document.lock().expect("document lock") = document;
    }

    fn fail(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }
}

async fn serve_jwks(State(state): State<Arc<JwksState>>) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if state.failing.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let document = state.document.lock().expect("document lock").clone();
    Json(document).into_response()
}

fn rsa_jwk() -> Value {
    serde_json::from_str(RSA_TEST_JWK).expect("fixture JWK is JSON")
}

// ---------- development issuer ----------

#[tokio::test]
async fn a_dev_token_minted_and_verified_round_trips_its_claims() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = Authenticator::new(&dev_config(dir.path()), reqwest::Client::new())
        .await
        .expect("authenticator");
    let dev = auth.dev_issuer().expect("dev issuer enabled");
    let roles = vec!["MISSION_FOCAL_POINT".to_owned()];
    let missions = vec!["MINUSCA".to_owned(), "UNMISS".to_owned()];
    let token = dev
        .mint(
            AUDIENCE,
            "fp-3",
            "UN/DPO",
            &roles,
            &missions,
            Duration::from_secs(300),
        )
        .expect("mint");

    let claims = auth.verify(&token).await.expect("dev token verifies");

    assert_eq!(claims.iss, DEV_ISSUER);
    assert_eq!(claims.sub, "fp-3");
    assert_eq!(claims.org, "UN/DPO");
    assert_eq!(claims.aud, json!(AUDIENCE));
    assert_eq!(claims.roles, roles);
    assert_eq!(claims.missions, missions);
    let now = unix_now();
    assert!(
        claims.exp > now + 250 && claims.exp <= now + 300,
        "exp {}",
        claims.exp
    );
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.kid.as_deref(), Some(dev.key_id()));
    assert_eq!(header.alg, Algorithm::ES256);
}

#[tokio::test]
async fn the_dev_key_persists_across_load_or_create_calls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested/folder/dev-key.pem");
    let first = DevIssuer::load_or_create(&path).expect("create");
    let second = DevIssuer::load_or_create(&path).expect("load");
    assert_eq!(first.key_id(), second.key_id());
    assert_eq!(first.key_id().len(), 16, "base64url of 12 bytes");
    let pem = std::fs::read_to_string(&path).expect("key file written");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A token minted with the first instance verifies with an authenticator loading the file.
    let token = first
        .mint(AUDIENCE, "a", "UN", &[], &[], Duration::from_secs(60))
        .expect("mint");
    let mut cfg = dev_config(dir.path());
    cfg.dev_issuer.key_file = path.display().to_string();
    let auth = Authenticator::new(&cfg, reqwest::Client::new())
        .await
        .expect("authenticator");
    auth.verify(&token)
        .await
        .expect("token of the persisted key verifies");
}

#[tokio::test]
async fn a_corrupt_key_file_is_an_error_naming_the_path_and_is_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dev-key.pem");
    let garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
    std::fs::write(&path, garbage).expect("write garbage");

    let err = DevIssuer::load_or_create(&path).expect_err("corrupt key must not load");

    assert!(
        matches!(err, AuthSetupError::KeyFileCorrupt { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("still there"),
        garbage
    );
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = Authenticator::new(&dev_config(dir.path()), reqwest::Client::new())
        .await
        .expect("authenticator");
    let dev = auth.dev_issuer().expect("dev issuer");
    let mut expired = claims(DEV_ISSUER);
    expired.exp = unix_now() - 3600;
    expired.nbf = Some(unix_now() - 7200);
    let token = dev.sign(&expired).expect("sign");

    let err = auth.verify(&token).await.expect_err("expired");
    assert!(matches!(err, AuthError::Expired), "{err:?}");
    assert_eq!(err.code(), "TOKEN_EXPIRED");
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_is_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = Authenticator::new(&dev_config(dir.path()), reqwest::Client::new())
        .await
        .expect("authenticator");
    let mut recent = claims(DEV_ISSUER);
    recent.exp = unix_now() - 5;
    let token = auth.dev_issuer().expect("dev").sign(&recent).expect("sign");
    auth.verify(&token)
        .await
        .expect("5 s past exp is within 30 s leeway");
}

#[tokio::test]
async fn a_token_whose_nbf_is_in_the_future_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = Authenticator::new(&dev_config(dir.path()), reqwest::Client::new())
        .await
        .expect("authenticator");
    let mut early = claims(DEV_ISSUER);
    early.nbf = Some(unix_now() + 3600);
    let token = auth.dev_issuer().expect("dev").sign(&early).expect("sign");
    let err = auth.verify(&token).await.expect_err("not yet valid");
    assert!(matches!(err, AuthError::NotYetValid), "{err:?}");
}

#[tokio::test]
async fn a_token_for_another_audience_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = Authenticator::new(&dev_config(dir.path()), reqwest::Client::new())
        .await
        .expect("authenticator");
    let dev = auth.dev_issuer().expect("dev issuer");
    let token = dev
        .mint("another-api", "a", "MLI", &[], &[], Duration::from_secs(60))
        .expect("mint");
    let err = auth.verify(&token).await.expect_err("wrong audience");
    assert!(matches!(err, AuthError::WrongAudience), "{err:?}");

    let mut listed = claims(DEV_ISSUER);
    listed.aud = json!(["another-api", AUDIENCE]);
    let token = dev.sign(&listed).expect("sign");
    auth.verify(&token)
        .await
        .expect("an audience array containing ours is accepted");
}

#[tokio::test]
async fn a_token_without_org_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = Authenticator::new(&dev_config(dir.path()), reqwest::Client::new())
        .await
        .expect("authenticator");
    let mut no_org = claims(DEV_ISSUER);
    no_org.org = String::new();
    let token = auth.dev_issuer().expect("dev").sign(&no_org).expect("sign");
    let err = auth.verify(&token).await.expect_err("empty org");
    assert!(matches!(err, AuthError::MissingClaim("org")), "{err:?}");
}

#[tokio::test]
async fn a_token_signed_by_another_p256_key_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = Authenticator::new(&dev_config(dir.path()), reqwest::Client::new())
        .await
        .expect("authenticator");
    let dev = auth.dev_issuer().expect("dev issuer");
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other_path = other_dir.path().join("other.pem");
    let other = DevIssuer::load_or_create(&other_path).expect("other key");
    assert_ne!(other.key_id(), dev.key_id());

    // The other key's own token names its own kid.
    let token = other
        .mint(AUDIENCE, "a", "MLI", &[], &[], Duration::from_secs(60))
        .expect("mint");
    let err = auth.verify(&token).await.expect_err("foreign kid");
    assert!(matches!(err, AuthError::UnknownKey), "{err:?}");

    // A forgery claiming the real kid fails on the signature.
    let other_key = EncodingKey::from_ec_pem(&std::fs::read(&other_path).expect("read other key"))
        .expect("pem");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(dev.key_id().to_owned());
    let forged = jsonwebtoken::encode(&header, &claims(DEV_ISSUER), &other_key).expect("sign");
    let err = auth.verify(&forged).await.expect_err("forged");
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
    assert_eq!(err.code(), "TOKEN_INVALID");
}

/// An authenticator accepting both issuers, whose JWKS is never reached.
async fn both_issuers(dir: &Path) -> Authenticator {
    let mut cfg = dev_config(dir);
    cfg.jwt = jwt_config(&unreachable_url(), 600, 60).jwt;
    Authenticator::new(&cfg, reqwest::Client::new())
        .await
        .expect("authenticator")
}

#[tokio::test]
async fn an_alg_none_token_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = both_issuers(dir.path()).await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    for iss in [DEV_ISSUER, IDP] {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(iss)).expect("json"));
        let token = format!("{header}.{payload}.");
        let err = auth.verify(&token).await.expect_err("alg none");
        assert!(
            matches!(&err, AuthError::UnsupportedAlgorithm(alg) if alg == "none"),
            "{iss}: {err:?}"
        );
    }
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = both_issuers(dir.path()).await;
    let pem = std::fs::read_to_string(dir.path().join("dev-key.pem")).expect("dev key");
    let public = <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&pem)
        .expect("dev key parses")
        .public_key();
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .expect("public PEM");
    let rsa_n = URL_SAFE_NO_PAD
        .decode(rsa_jwk()["n"].as_str().expect("n"))
        .expect("n is base64url");
    let secrets: [(&str, Vec<u8>); 3] = [
        (DEV_ISSUER, public.to_sec1_bytes().to_vec()),
        (DEV_ISSUER, public_pem.into_bytes()),
        (IDP, rsa_n),
    ];
    for (iss, secret) in secrets {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(iss),
            &EncodingKey::from_secret(&secret),
        )
        .expect("sign HS256");
        let err = auth.verify(&token).await.expect_err("HS256");
        assert!(
            matches!(&err, AuthError::UnsupportedAlgorithm(alg) if alg == "HS256"),
            "{iss}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_dev_token_is_rejected_when_the_dev_issuer_is_disabled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = DevIssuer::load_or_create(&dir.path().join("dev-key.pem")).expect("dev key");
    let token = dev
        .mint(AUDIENCE, "a", "MLI", &[], &[], Duration::from_secs(60))
        .expect("mint");
    let mut cfg = jwt_config(&unreachable_url(), 600, 60);
    cfg.dev_issuer.key_file = dir.path().join("dev-key.pem").display().to_string();
    assert!(!cfg.dev_issuer.enabled);
    let auth = Authenticator::new(&cfg, reqwest::Client::new())
        .await
        .expect("authenticator");

    let err = auth.verify(&token).await.expect_err("dev issuer disabled");
    assert!(matches!(err, AuthError::UnknownIssuer), "{err:?}");
}

#[tokio::test]
async fn garbage_tokens_are_malformed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = both_issuers(dir.path()).await;
    for token in [
        "",
        "abc",
        "a.b.c",
        "a.b.c.d",
        "..",
        "eyJhbGciOiJFUzI1NiJ9.e30",
    ] {
        let err = auth.verify(token).await.expect_err("garbage");
        assert!(matches!(err, AuthError::Malformed), "{token:?}: {err:?}");
    }
}

#[tokio::test]
async fn authenticator_setup_refuses_unusable_configuration() {
    let mut no_issuer = jwt_config("https://idp.example.test/jwks", 600, 10);
    no_issuer.jwt = None;
    let err = Authenticator::new(&no_issuer, reqwest::Client::new()).await;
    assert!(matches!(err, Err(AuthSetupError::NoIssuer)), "{err:?}");

    let mut hmac = jwt_config("https://idp.example.test/jwks", 600, 10);
    if let Some(jwt) = hmac.jwt.as_mut() {
        jwt.algorithms = vec!["HS256".into()];
    }
    let err = Authenticator::new(&hmac, reqwest::Client::new()).await;
    assert!(
        matches!(err, Err(AuthSetupError::UnsupportedAlgorithm(_))),
        "{err:?}"
    );

    let plain_http = jwt_config("http://idp.example.test/jwks", 600, 10);
    let err = Authenticator::new(&plain_http, reqwest::Client::new()).await;
    assert!(
        matches!(err, Err(AuthSetupError::InvalidJwksUrl { .. })),
        "{err:?}"
    );
}

// ---------- JWKS ----------

#[tokio::test]
async fn rs256_and_es256_tokens_verify_against_a_served_jwks() {
    let ec = EcKey::new("ec-1");
    let mut encryption_only = rsa_jwk();
    encryption_only["use"] = json!("enc");
    encryption_only["kid"] = json!("rsa-enc");
    let server = JwksServer::start(json!({ "keys": [rsa_jwk(), ec.jwk(), encryption_only] })).await;
    let auth = Authenticator::new(&jwt_config(&server.url, 600, 60), reqwest::Client::new())
        .await
        .expect("authenticator");

    let rs = auth
        .verify(&sign_rs256(&claims(IDP), Some(&rsa_kid())))
        .await
        .expect("RS256 token verifies");
    assert_eq!(rs.sub, "analyst-17");
    assert_eq!(rs.org, "MLI");
    auth.verify(&ec.sign(&claims(IDP), Some("ec-1")))
        .await
        .expect("ES256 token verifies");
    auth.verify(&sign_rs256(&claims(IDP), None))
        .await
        .expect("RS256 token without kid verifies against the RSA keys");
    auth.verify(&ec.sign(&claims(IDP), None))
        .await
        .expect("ES256 token without kid verifies against the EC keys");

    let err = auth
        .verify(&sign_rs256(&claims(IDP), Some("rsa-enc")))
        .await
        .expect_err("encryption keys are not signing keys");
    assert!(matches!(err, AuthError::UnknownKey), "{err:?}");
    let err = auth
        .verify(&sign_rs256(&claims(IDP), Some("ec-1")))
        .await
        .expect_err("RS256 token naming the EC key");
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
    let mut other_aud = claims(IDP);
    other_aud.aud = json!("someone-else");
    let err = auth
        .verify(&sign_rs256(&other_aud, Some(&rsa_kid())))
        .await
        .expect_err("wrong audience");
    assert!(matches!(err, AuthError::WrongAudience), "{err:?}");
    assert_eq!(server.requests(), 1, "all of this is served from one fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_key_verifies_after_a_refetch() {
    let old = EcKey::new("2025-01");
    let new = EcKey::new("2025-02");
    let server = JwksServer::start(json!({ "keys": [old.jwk()] })).await;
    let auth = Authenticator::new(&jwt_config(&server.url, 600, 0), reqwest::Client::new())
        .await
        .expect("authenticator");
    auth.verify(&old.sign(&claims(IDP), Some("2025-01")))
        .await
        .expect("old key verifies");
    let before = server.requests();

    server.publish(json!({ "keys": [new.jwk()] }));
    auth.verify(&new.sign(&claims(IDP), Some("2025-02")))
        .await
        .expect("new key verifies after a refetch");
    assert_eq!(server.requests(), before + 1);

    let err = auth
        .verify(&old.sign(&claims(IDP), Some("2025-01")))
        .await
        .expect_err("the retired key is gone");
    assert!(matches!(err, AuthError::UnknownKey), "{err:?}");
}

/// Independent of the machine's speed: the interval is a minute (far above any scheduling
/// delay), and it is made to pass on tokio's clock, not waited for.
#[tokio::test]
async fn unknown_kids_do_not_refetch_more_often_than_the_minimum_interval() {
    let ec = EcKey::new("real");
    let server = JwksServer::start(json!({ "keys": [ec.jwk()] })).await;
    let auth = Authenticator::new(&jwt_config(&server.url, 3_600, 60), reqwest::Client::new())
        .await
        .expect("authenticator");
    auth.verify(&ec.sign(&claims(IDP), Some("real")))
        .await
        .expect("real key verifies");
    assert_eq!(server.requests(), 1);

    // Spawned tasks also prove the authenticator and its futures can be shared across threads,
    // as axum handlers need.
    let flood = |prefix: &'static str| {
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let auth = auth.clone();
                let token = ec.sign(&claims(IDP), Some(&format!("{prefix}-{i}")));
                tokio::spawn(async move { auth.verify(&token).await })
            })
            .collect();
        futures::future::join_all(tasks)
    };
    for outcome in flood("bogus").await {
        let outcome = outcome.expect("task completes");
        assert!(matches!(outcome, Err(AuthError::UnknownKey)), "{outcome:?}");
    }
    assert_eq!(
        server.requests(),
        1,
        "no refetch within the minimum interval"
    );

    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(61)).await;
    tokio::time::resume();
    let err = auth
        .verify(&ec.sign(&claims(IDP), Some("bogus-late")))
        .await
        .expect_err("still unknown");
    assert!(matches!(err, AuthError::UnknownKey), "{err:?}");
    wait_for_requests(&server, 2).await;

    for outcome in flood("again").await {
        let outcome = outcome.expect("task completes");
        assert!(matches!(outcome, Err(AuthError::UnknownKey)), "{outcome:?}");
    }
    assert_eq!(
        server.requests(),
        2,
        "one refetch once the interval has passed, none more within the next"
    );
}

/// Waits (a generous bound, not a measure) until the JWKS server has seen `n` requests.
async fn wait_for_requests(server: &JwksServer, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.requests() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "the JWKS server saw {} requests, not {n}",
            server.requests()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Single-threaded on purpose: every request is polled, and waits for the keys, before the
/// first fetch completes (and before the background warm-up task gets to run).
#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let ec = EcKey::new("k");
    let token = ec.sign(&claims(IDP), Some("k"));
    let server = JwksServer::start(json!({ "keys": [ec.jwk()] })).await;
    let auth = Authenticator::new(&jwt_config(&server.url, 600, 0), reqwest::Client::new())
        .await
        .expect("authenticator");
    let requests = (0..32).map(|_| auth.verify(&token));
    for outcome in futures::future::join_all(requests).await {
        outcome.expect("verifies");
    }
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn the_last_good_key_set_is_served_when_a_refresh_fails() {
    let ec = EcKey::new("k");
    let server = JwksServer::start(json!({ "keys": [ec.jwk()] })).await;
    let auth = Authenticator::new(&jwt_config(&server.url, 3_600, 0), reqwest::Client::new())
        .await
        .expect("authenticator");
    let token = ec.sign(&claims(IDP), Some("k"));
    auth.verify(&token).await.expect("verifies");
    assert_eq!(server.requests(), 1);

    server.fail(true);
    // The scheduled refresh comes due (on tokio's clock) and fails.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(3_601)).await;
    tokio::time::resume();
    wait_for_requests(&server, 2).await;
    auth.verify(&token)
        .await
        .expect("still verifies with the cached keys");
    assert!(auth.ready(), "the last good keys keep the gateway ready");
}

#[tokio::test]
async fn an_unreachable_jwks_gives_keys_unavailable() {
    let auth = Authenticator::new(
        &jwt_config(&unreachable_url(), 600, 10),
        reqwest::Client::new(),
    )
    .await
    .expect("an unreachable JWKS does not prevent start");
    let err = auth
        .verify(&sign_rs256(&claims(IDP), Some(&rsa_kid())))
        .await
        .expect_err("no keys");
    assert!(matches!(err, AuthError::KeysUnavailable(_)), "{err:?}");
    assert!(err.is_server_side());
}
