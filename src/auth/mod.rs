//! Bearer token verification: which issuer signed a token, with which key, and what it claims.
//!
//! Two issuers are known: the production identity provider (`auth.jwt`, keys from its JWKS URL)
//! and, for the demo only, the local development issuer (`auth.dev_issuer`, an ES256 key on disk).
//! The issuer is picked from the token's unverified `iss` claim, then everything else — algorithm,
//! key, signature, `exp`/`nbf`, audience, claims — is checked against that issuer alone, so one
//! issuer's token can never be verified with the other's keys or algorithms.

mod dev;
mod jwks;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::AuthConfig;

pub use dev::DevIssuer;
use jwks::{JwksCache, VerificationKey};

/// The `iss` of tokens minted by the local development issuer.
pub const DEV_ISSUER: &str = "casegraph-dev";

/// Largest token accepted, in bytes; real ones are well under 4 KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// How long a verified token is remembered: a client sends the same token with every request,
/// and a signature check costs far more than the rest of a refused request. A token is verified
/// again whenever the provider's key set changes, so a withdrawn key stops verifying at once.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Most verified tokens remembered.
const VERIFIED_CAPACITY: u64 = 50_000;

/// Claims CaseGraph reads from a verified token.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the caller's stable identifier at the issuer.
    pub sub: String,
    /// Audience: a string or an array of strings; it contains `auth.audience`.
    pub aud: serde_json::Value,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Organisation: a Member State's ISO alpha-3 ("MLI"), "UN" or "UN/<entity>", or a regional
    /// organisation ("AU").
    pub org: String,
    /// Roles granted to the caller.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Mission codes, for focal points.
    #[serde(default)]
    pub missions: Vec<String>,
}

/// Why a token was refused. [`AuthError::code`] is what clients see.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not three base64url parts, or a header or payload that is not JSON.
    #[error("the token is malformed")]
    Malformed,
    /// The header names an algorithm this issuer does not accept (including `none` and HMAC).
    #[error("the token's algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
    /// `exp` is in the past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` does not contain the gateway's audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// `iss` is not an issuer this gateway accepts.
    #[error("the token's issuer is not accepted")]
    UnknownIssuer,
    /// The token names a key id its issuer does not publish.
    #[error("the token's signing key is unknown")]
    UnknownKey,
    /// The signature does not verify with the issuer's keys.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// The issuer's keys could not be obtained (JWKS unreachable and nothing cached).
    #[error("the signing keys are unavailable: {0}")]
    KeysUnavailable(String),
    /// A claim CaseGraph needs is absent or empty.
    #[error("the token lacks the claim {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type (e.g. `roles` that is not a list of strings).
    #[error("the token's claim {0} is invalid")]
    InvalidClaim(&'static str),
    /// Minting a development token failed.
    #[error("signing the token failed: {0}")]
    Signing(String),
}

impl AuthError {
    /// Stable machine-readable code, for GraphQL `extensions.code` and HTTP error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "TOKEN_MALFORMED",
            Self::UnsupportedAlgorithm(_) => "TOKEN_ALGORITHM_NOT_ACCEPTED",
            Self::Expired => "TOKEN_EXPIRED",
            Self::NotYetValid => "TOKEN_NOT_YET_VALID",
            Self::WrongAudience => "TOKEN_WRONG_AUDIENCE",
            Self::UnknownIssuer => "TOKEN_UNKNOWN_ISSUER",
            Self::UnknownKey => "TOKEN_UNKNOWN_KEY",
            Self::BadSignature => "TOKEN_INVALID",
            Self::KeysUnavailable(_) => "AUTH_KEYS_UNAVAILABLE",
            Self::MissingClaim(_) => "TOKEN_MISSING_CLAIM",
            Self::InvalidClaim(_) => "TOKEN_INVALID_CLAIM",
            Self::Signing(_) => "TOKEN_SIGNING_FAILED",
        }
    }

    /// True when the fault is the gateway's or its identity provider's, not the caller's token:
    /// answer 503 (keys unavailable) or 500 rather than 401.
    pub fn is_server_side(&self) -> bool {
        matches!(self, Self::KeysUnavailable(_) | Self::Signing(_))
    }
}

/// Why the authenticator could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// Neither `auth.jwt` nor `auth.dev_issuer.enabled` is set: no token could ever be accepted.
    #[error("no token issuer is configured: set [auth.jwt] or enable [auth.dev_issuer]")]
    NoIssuer,
    /// `auth.audience` is empty.
    #[error("auth.audience must not be empty")]
    EmptyAudience,
    /// `auth.jwt.issuer` is empty or collides with the development issuer's name.
    #[error("auth.jwt.issuer {0:?} is not usable: it must be non-empty and differ from \"casegraph-dev\"")]
    InvalidIssuer(String),
    /// `auth.jwt.jwks_url` is not an absolute https URL (http is allowed for loopback hosts).
    #[error("auth.jwt.jwks_url {url:?} is not usable: {reason}")]
    InvalidJwksUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `auth.jwt.algorithms` is empty or names an algorithm other than RS256 and ES256.
    #[error("auth.jwt.algorithms: {0}")]
    UnsupportedAlgorithm(String),
    /// The development key file exists but cannot be read.
    #[error("cannot read the development issuer key {}: {source}", path.display())]
    KeyFileRead {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The development key file does not hold a P-256 private key; it is left untouched.
    #[error("the development issuer key {} is corrupt ({reason}); fix or delete it", path.display())]
    KeyFileCorrupt {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The development key file (or its folder) cannot be created.
    #[error("cannot write the development issuer key {}: {source}", path.display())]
    KeyFileWrite {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Generating or encoding a new development key failed.
    #[error("cannot generate the development issuer key: {0}")]
    KeyGeneration(String),
}

/// Verifies bearer tokens. Cheap to clone: clones share the key caches.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    audience: String,
    leeway_secs: u64,
    dev: Option<Arc<DevIssuer>>,
    jwt: Option<JwtIssuer>,
    /// Tokens verified in the last [`VERIFIED_TTL`], by the SHA-256 of the token, with the
    /// version of the provider's key set they were verified under.
    verified: moka::sync::Cache<[u8; 32], (Arc<TokenClaims>, u64)>,
}

struct JwtIssuer {
    issuer: String,
    algorithms: Vec<Algorithm>,
    keys: Arc<JwksCache>,
}

/// The verification context chosen from a token's `iss`.
enum Chosen<'a> {
    Dev(&'a DevIssuer),
    Jwt(&'a JwtIssuer),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("audience", &self.inner.audience)
            .field("dev_issuer", &self.inner.dev.as_ref().map(|d| d.key_id()))
            .field("jwt_issuer", &self.inner.jwt.as_ref().map(|j| &j.issuer))
            .finish()
    }
}

/// The members of a JOSE header this module reads. Parsed here rather than by `jsonwebtoken`, so
/// that `"alg":"none"` or any unknown algorithm is reported as such.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl Authenticator {
    /// Builds the authenticator: loads (or creates) the development key when that issuer is
    /// enabled, and starts fetching the provider's JWKS in the background. An unreachable JWKS
    /// is not an error here; it is logged and fetched again when tokens arrive.
    pub async fn new(cfg: &AuthConfig, http: reqwest::Client) -> Result<Self, AuthSetupError> {
        if cfg.audience.is_empty() {
            return Err(AuthSetupError::EmptyAudience);
        }
        if cfg.jwt.is_none() && !cfg.dev_issuer.enabled {
            return Err(AuthSetupError::NoIssuer);
        }
        let dev = if cfg.dev_issuer.enabled {
            let issuer = DevIssuer::load_or_create(Path::new(&cfg.dev_issuer.key_file))?;
            tracing::warn!(key_id = %issuer.key_id(), "The development token issuer is enabled; never do this in production");
            Some(Arc::new(issuer))
        } else {
            None
        };
        let jwt = match &cfg.jwt {
            None => None,
            Some(jwt) => {
                if jwt.issuer.is_empty() || jwt.issuer == DEV_ISSUER {
                    return Err(AuthSetupError::InvalidIssuer(jwt.issuer.clone()));
                }
                let url = parse_jwks_url(&jwt.jwks_url)?;
                let algorithms = parse_algorithms(&jwt.algorithms)?;
                Some(JwtIssuer {
                    issuer: jwt.issuer.clone(),
                    algorithms,
                    keys: JwksCache::start(
                        jwt.issuer.clone(),
                        url,
                        http,
                        Duration::from_secs(jwt.jwks_refresh_secs),
                        Duration::from_secs(jwt.jwks_min_refetch_secs),
                        Duration::from_millis(jwt.jwks_fetch_timeout_ms),
                    ),
                })
            }
        };
        let authenticator = Self {
            inner: Arc::new(Inner {
                audience: cfg.audience.clone(),
                leeway_secs: cfg.leeway_secs,
                dev,
                jwt,
                verified: moka::sync::Cache::builder()
                    .max_capacity(VERIFIED_CAPACITY)
                    .time_to_live(VERIFIED_TTL)
                    .build(),
            }),
        };
        Ok(authenticator)
    }

    /// Whether tokens can be verified now: true unless an identity provider is configured and
    /// none of its signing keys could be fetched yet (for `/health/ready`).
    pub fn ready(&self) -> bool {
        self.inner
            .jwt
            .as_ref()
            .is_none_or(|jwt| jwt.keys.has_keys())
    }

    /// The development issuer, when enabled (e.g. to mint demo tokens in-process).
    pub fn dev_issuer(&self) -> Option<&DevIssuer> {
        self.inner.dev.as_deref()
    }

    /// Verifies `token` (the bearer credential, without the `Bearer ` prefix) and returns its
    /// claims.
    pub async fn verify(&self, token: &str) -> Result<TokenClaims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).into();
        let version = self.inner.jwt.as_ref().map_or(0, |jwt| jwt.keys.version());
        if let Some((claims, verified_under)) = self.inner.verified.get(&digest) {
            // Verified a moment ago under the same keys: only its time window may have closed.
            let now = unix_now();
            let leeway = self.inner.leeway_secs;
            if verified_under == version
                && claims.exp.saturating_add(leeway) > now
                && claims
                    .nbf
                    .is_none_or(|nbf| nbf <= now.saturating_add(leeway))
            {
                return Ok(TokenClaims::clone(&claims));
            }
            self.inner.verified.invalidate(&digest);
        }
        let claims = self.verify_uncached(token).await?;
        self.inner
            .verified
            .insert(digest, (Arc::new(claims.clone()), version));
        Ok(claims)
    }

    /// The full check of `token`: issuer, algorithm, key, signature, times, audience, claims.
    async fn verify_uncached(&self, token: &str) -> Result<TokenClaims, AuthError> {
        let (header, payload) = unverified_parts(token)?;
        let iss = match payload.get("iss") {
            Some(serde_json::Value::String(iss)) => iss.as_str(),
            Some(_) => return Err(AuthError::InvalidClaim("iss")),
            None => return Err(AuthError::MissingClaim("iss")),
        };
        let chosen = self.choose_issuer(iss)?;
        let algorithm = match_algorithm(&header.alg, chosen.algorithms())?;
        let candidates = match chosen {
            Chosen::Dev(dev) => match header.kid.as_deref() {
                Some(kid) if kid != dev.key_id() => return Err(AuthError::UnknownKey),
                _ => vec![VerificationKey {
                    algorithm: Algorithm::ES256,
                    key: dev.decoding_key().clone(),
                }],
            },
            Chosen::Jwt(jwt) => jwt.keys.keys_for(header.kid.as_deref(), algorithm).await?,
        };
        let validation = self.validation(algorithm, chosen.issuer());
        let mut outcome = Err(AuthError::BadSignature);
        for candidate in &candidates {
            outcome = verify_with(token, &candidate.key, &validation);
            if !matches!(outcome, Err(AuthError::BadSignature)) {
                break;
            }
        }
        claims_from(outcome?)
    }

    fn choose_issuer(&self, iss: &str) -> Result<Chosen<'_>, AuthError> {
        if let Some(dev) = self.inner.dev.as_deref().filter(|_| iss == DEV_ISSUER) {
            return Ok(Chosen::Dev(dev));
        }
        match &self.inner.jwt {
            Some(jwt) if jwt.issuer == iss => Ok(Chosen::Jwt(jwt)),
            _ => Err(AuthError::UnknownIssuer),
        }
    }

    fn validation(&self, algorithm: Algorithm, issuer: &str) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.inner.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[&self.inner.audience]);
        validation.set_issuer(&[issuer]);
        validation.required_spec_claims = ["exp", "aud", "iss", "sub"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>();
        validation
    }
}

impl Chosen<'_> {
    fn algorithms(&self) -> &[Algorithm] {
        match self {
            Self::Dev(_) => &[Algorithm::ES256],
            Self::Jwt(jwt) => &jwt.algorithms,
        }
    }

    fn issuer(&self) -> &str {
        match self {
            Self::Dev(_) => DEV_ISSUER,
            Self::Jwt(jwt) => &jwt.issuer,
        }
    }
}

/// Decodes header and payload without verifying anything: only to choose issuer and key.
fn unverified_parts(
    token: &str,
) -> Result<(RawHeader, serde_json::Map<String, serde_json::Value>), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let header: RawHeader = decode_json_part(header)?;
    let payload = decode_json_part(payload)?;
    Ok((header, payload))
}

fn decode_json_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// The algorithm the header names, if the issuer accepts it. Only RS256 and ES256 ever pass.
fn match_algorithm(alg: &str, accepted: &[Algorithm]) -> Result<Algorithm, AuthError> {
    let algorithm = match alg {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        _ => None,
    };
    algorithm
        .filter(|a| accepted.contains(a))
        .ok_or_else(|| AuthError::UnsupportedAlgorithm(printable_algorithm(alg)))
}

/// The header's `alg` is attacker-controlled: echo it only when it looks like an algorithm name.
fn printable_algorithm(alg: &str) -> String {
    if !alg.is_empty()
        && alg.len() <= 16
        && alg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        alg.to_owned()
    } else {
        "(unprintable)".to_owned()
    }
}

fn verify_with(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<serde_json::Map<String, serde_json::Value>, AuthError> {
    jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| match e.into_kind() {
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::InvalidIssuer => AuthError::UnknownIssuer,
            ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(static_claim(&claim)),
            ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim(static_claim(&claim)),
            ErrorKind::InvalidAlgorithm
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::MissingAlgorithm => {
                let names = validation.algorithms.iter().map(|a| format!("{a:?}"));
                AuthError::UnsupportedAlgorithm(names.collect::<Vec<_>>().join(","))
            }
            _ => AuthError::Malformed,
        })
}

fn static_claim(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "nbf" => "nbf",
        "aud" => "aud",
        "iss" => "iss",
        "sub" => "sub",
        _ => "unknown",
    }
}

/// Reads the verified payload into [`TokenClaims`], requiring a non-empty `sub` and `org`.
fn claims_from(
    payload: serde_json::Map<String, serde_json::Value>,
) -> Result<TokenClaims, AuthError> {
    for claim in ["sub", "org"] {
        match payload.get(claim) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {}
            Some(serde_json::Value::String(_)) | None => {
                return Err(AuthError::MissingClaim(static_required(claim)))
            }
            Some(_) => return Err(AuthError::InvalidClaim(static_required(claim))),
        }
    }
    let claims: TokenClaims =
        serde_json::from_value(serde_json::Value::Object(payload)).map_err(|e| {
            tracing::debug!(error = %e, "Verified token has claims of unexpected types");
            AuthError::InvalidClaim("claims")
        })?;
    Ok(claims)
}

fn static_required(claim: &str) -> &'static str {
    if claim == "sub" {
        "sub"
    } else {
        "org"
    }
}

/// Accepts `https://…`, and `http://…` only for loopback hosts (tests, a local provider).
fn parse_jwks_url(raw: &str) -> Result<reqwest::Url, AuthSetupError> {
    let invalid = |reason: &str| AuthSetupError::InvalidJwksUrl {
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
    let loopback = url.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(invalid(
            "plain http is allowed only for loopback hosts; use https",
        )),
        _ => Err(invalid("the scheme must be https")),
    }
}

fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, AuthSetupError> {
    if names.is_empty() {
        return Err(AuthSetupError::UnsupportedAlgorithm(
            "at least one of RS256, ES256 is needed".into(),
        ));
    }
    names
        .iter()
        .map(|name| match name.as_str() {
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            other => Err(AuthSetupError::UnsupportedAlgorithm(format!(
                "{other:?} is not supported; only RS256 and ES256 are"
            ))),
        })
        .collect()
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
