//! The signing keys of an identity provider, fetched from its JWKS URL by a background task
//! and always served from memory.
//!
//! Requests never wait on the provider while keys are held: a refresh (every
//! `jwks_refresh_secs`, or early for a token naming an unknown `kid`) runs in the background,
//! and a failed or hanging one keeps the last good key set. Fetches are never closer together
//! than `jwks_min_refetch_secs`, whatever asks for them, so a flood of bogus `kid`s or a
//! provider that is down cannot turn requests into outgoing calls. A request waits, for at most
//! [`KEY_WAIT`], only when there is something worth waiting for: no key yet while the first
//! fetch is under way, or a refetch its own unknown `kid` started (key rotation).
//!
//! Times are tokio's, so tests can move them with the paused clock.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::AuthError;

/// Longest a request waits for a fetch under way (no key yet, or a rotated key).
pub(crate) const KEY_WAIT: Duration = Duration::from_secs(2);
/// Largest JWKS document accepted; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// Shortest pause between two scheduled fetches, whatever the settings.
const MIN_PAUSE: Duration = Duration::from_secs(1);

/// One verification key from the set.
#[derive(Clone)]
pub(crate) struct VerificationKey {
    /// The only algorithm this key verifies (RS256 for RSA keys, ES256 for P-256 keys).
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The usable keys of one fetched JWKS document.
#[derive(Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, VerificationKey>,
    all: Vec<VerificationKey>,
}

impl KeySet {
    fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// What a token's header asks of the key set.
pub(crate) enum Lookup {
    /// Keys to try, in order.
    Found(Vec<VerificationKey>),
    /// The token names a `kid` the set does not hold.
    UnknownKid,
}

impl KeySet {
    fn lookup(&self, kid: Option<&str>, algorithm: Algorithm) -> Lookup {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                // A known key of another algorithm gives no candidate: the token fails as a bad
                // signature, and does not cause a refetch.
                Some(key) if key.algorithm == algorithm => Lookup::Found(vec![key.clone()]),
                Some(_) => Lookup::Found(Vec::new()),
                None => Lookup::UnknownKid,
            },
            None => Lookup::Found(
                self.all
                    .iter()
                    .filter(|k| k.algorithm == algorithm)
                    .cloned()
                    .collect(),
            ),
        }
    }
}

struct CacheState {
    keys: Arc<KeySet>,
    /// When `keys` was last fetched successfully; `None` before the first success.
    fetched_at: Option<Instant>,
    /// When a fetch was last started, successful or not.
    attempted_at: Option<Instant>,
    /// A fetch is under way or about to start (true from creation: the refresher starts with
    /// one).
    fetching: bool,
}

/// The cached key set of one identity provider.
pub(crate) struct JwksCache {
    issuer: String,
    url: reqwest::Url,
    http: reqwest::Client,
    refresh_after: Duration,
    min_refetch: Duration,
    fetch_timeout: Duration,
    state: RwLock<CacheState>,
    /// Asks the refresher for an early fetch.
    wake: Arc<Notify>,
    /// Counts completed fetch attempts; waiters watch it.
    attempts: watch::Sender<u64>,
    /// Counts the key sets installed: a token verified under an older one is verified again.
    version: std::sync::atomic::AtomicU64,
}

impl JwksCache {
    /// The cache, and its refresher started on the current tokio runtime. The refresher ends
    /// once the cache is dropped.
    pub(crate) fn start(
        issuer: String,
        url: reqwest::Url,
        http: reqwest::Client,
        refresh_after: Duration,
        min_refetch: Duration,
        fetch_timeout: Duration,
    ) -> Arc<Self> {
        let cache = Arc::new(Self {
            issuer,
            url,
            http,
            refresh_after,
            min_refetch,
            fetch_timeout,
            state: RwLock::new(CacheState {
                keys: Arc::new(KeySet::default()),
                fetched_at: None,
                attempted_at: None,
                fetching: true,
            }),
            wake: Arc::new(Notify::new()),
            attempts: watch::channel(0).0,
            version: std::sync::atomic::AtomicU64::new(0),
        });
        tokio::spawn(refresher(Arc::downgrade(&cache), Arc::clone(&cache.wake)));
        cache
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The keys a token with this header may be verified with. Never waits on the provider
    /// while keys are held and the `kid` is known.
    pub(crate) async fn keys_for(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Vec<VerificationKey>, AuthError> {
        let mut keys = Arc::clone(&self.read().keys);
        if keys.is_empty() {
            let seen = *self.attempts.borrow();
            if self.read().fetching {
                self.wait_for_attempt_after(seen).await;
                keys = Arc::clone(&self.read().keys);
            }
            if keys.is_empty() {
                return Err(AuthError::KeysUnavailable(format!(
                    "no signing keys of issuer {} could be fetched",
                    self.issuer
                )));
            }
        }
        match keys.lookup(kid, algorithm) {
            Lookup::Found(found) => Ok(found),
            Lookup::UnknownKid => {
                let seen = *self.attempts.borrow();
                if self.ask_refetch() {
                    self.wait_for_attempt_after(seen).await;
                } else {
                    tracing::debug!(issuer = %self.issuer, "Unknown key id; JWKS fetched too recently to refetch");
                }
                match self.read().keys.lookup(kid, algorithm) {
                    Lookup::Found(found) => Ok(found),
                    Lookup::UnknownKid => Err(AuthError::UnknownKey),
                }
            }
        }
    }

    /// Asks the refresher for an early fetch, unless one is under way (then it is the one to
    /// wait for) or the last started less than `min_refetch` ago. True when a fetch will come.
    fn ask_refetch(&self) -> bool {
        let mut state = self.write();
        if state.fetching {
            return true;
        }
        if state
            .attempted_at
            .is_some_and(|at| at.elapsed() < self.min_refetch)
        {
            return false;
        }
        state.fetching = true;
        drop(state);
        self.wake.notify_one();
        true
    }

    /// Waits, at most [`KEY_WAIT`], until a fetch attempt after the `seen`-th completes.
    async fn wait_for_attempt_after(&self, seen: u64) {
        let mut attempts = self.attempts.subscribe();
        let _ = tokio::time::timeout(KEY_WAIT, attempts.wait_for(|n| *n > seen)).await;
    }

    /// The version of the key set in use (see [`JwksCache::version`]'s field).
    pub(crate) fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether a usable key set is held.
    pub(crate) fn has_keys(&self) -> bool {
        !self.read().keys.is_empty()
    }

    /// When the refresher fetches next, on its own schedule: at once before any attempt;
    /// `refresh_after` after the last success; `min_refetch` after a failure.
    fn next_due(&self) -> Instant {
        let state = self.read();
        let Some(attempted) = state.attempted_at else {
            return Instant::now();
        };
        let failed = state.fetched_at.is_none_or(|ok| ok < attempted);
        let pause = if failed {
            self.min_refetch
        } else {
            self.refresh_after
        };
        attempted + pause.max(MIN_PAUSE)
    }

    /// One fetch attempt; a failure keeps the last good keys.
    async fn refresh(&self) {
        {
            let mut state = self.write();
            state.fetching = true;
            state.attempted_at = Some(Instant::now());
        }
        let fetched = self.fetch().await;
        {
            let mut state = self.write();
            state.fetching = false;
            match fetched {
                Ok(keys) => {
                    tracing::debug!(issuer = %self.issuer, keys = keys.all.len(), "Fetched JWKS");
                    state.keys = Arc::new(keys);
                    state.fetched_at = Some(Instant::now());
                    self.version
                        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                }
                Err(error) => {
                    tracing::warn!(issuer = %self.issuer, url = %self.url, %error, "JWKS refresh failed; the last good keys stay in use");
                }
            }
        }
        self.attempts.send_modify(|n| *n += 1);
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let mut response = self
            .http
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.fetch_timeout)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("provider answered {status}"));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("document larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the response failed: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("document larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_jwks(&body)?;
        if keys.is_empty() {
            return Err("document holds no usable signing key (RSA or P-256, use \"sig\")".into());
        }
        Ok(keys)
    }
}

/// The background refresher of one cache: fetches when due or when asked (never closer than
/// `min_refetch` to the previous attempt), until the cache is dropped.
async fn refresher(cache: Weak<JwksCache>, wake: Arc<Notify>) {
    loop {
        let Some(due) = cache.upgrade().map(|c| c.next_due()) else {
            return;
        };
        let asked = tokio::select! {
            () = tokio::time::sleep_until(due) => false,
            () = wake.notified() => true,
        };
        let Some(cache) = cache.upgrade() else {
            return;
        };
        if asked {
            let recent = cache
                .read()
                .attempted_at
                .is_some_and(|at| at.elapsed() < cache.min_refetch);
            if recent {
                cache.write().fetching = false;
                cache.attempts.send_modify(|n| *n += 1);
                continue;
            }
        }
        cache.refresh().await;
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// The members of a JWK this module reads.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(rename = "use")]
    public_key_use: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Parses a JWKS document, keeping the signature keys this gateway can use and skipping the rest
/// (encryption keys, other key types and curves, malformed entries).
pub(crate) fn parse_jwks(body: &[u8]) -> Result<KeySet, String> {
    let document: JwksDocument =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut set = KeySet::default();
    for (index, value) in document.keys.into_iter().enumerate() {
        let raw: RawJwk = match serde_json::from_value(value) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::debug!(index, error = %e, "Skipping a malformed JWKS entry");
                continue;
            }
        };
        let kid = raw.kid.clone();
        match usable_key(raw) {
            Ok(key) => {
                if let Some(kid) = kid {
                    set.by_kid.entry(kid).or_insert_with(|| key.clone());
                }
                set.all.push(key);
            }
            Err(why) => tracing::debug!(index, kid = ?kid, why, "Skipping a JWKS entry"),
        }
    }
    Ok(set)
}

fn usable_key(raw: RawJwk) -> Result<VerificationKey, &'static str> {
    if raw.public_key_use.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signature key");
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Err("key_ops does not allow verify");
    }
    match raw.kty.as_str() {
        "RSA" => {
            if raw.alg.as_deref().is_some_and(|alg| alg != "RS256") {
                return Err("RSA key for an algorithm other than RS256");
            }
            let n = decode_b64(raw.n.as_deref()).ok_or("RSA key without a valid n")?;
            let e = decode_b64(raw.e.as_deref()).ok_or("RSA key without a valid e")?;
            let n = strip_leading_zeros(&n);
            if n.len() < MIN_RSA_MODULUS_BYTES {
                return Err("RSA key shorter than 2048 bits");
            }
            if e.is_empty() || e.len() > 8 {
                return Err("RSA key with an implausible exponent");
            }
            Ok(VerificationKey {
                algorithm: Algorithm::RS256,
                key: DecodingKey::from_rsa_raw_components(n, &e),
            })
        }
        "EC" => {
            if raw.crv.as_deref() != Some("P-256") {
                return Err("EC key on a curve other than P-256");
            }
            if raw.alg.as_deref().is_some_and(|alg| alg != "ES256") {
                return Err("P-256 key for an algorithm other than ES256");
            }
            let x = decode_b64(raw.x.as_deref()).ok_or("EC key without a valid x")?;
            let y = decode_b64(raw.y.as_deref()).ok_or("EC key without a valid y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates are not 32 bytes");
            }
            let mut sec1 = Vec::with_capacity(65);
            sec1.push(0x04);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            // Refuse points off the curve here rather than at every verification.
            p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| "EC point not on P-256")?;
            Ok(VerificationKey {
                algorithm: Algorithm::ES256,
                key: DecodingKey::from_ec_der(&sec1),
            })
        }
        _ => Err("unsupported key type"),
    }
}

fn decode_b64(value: Option<&str>) -> Option<Vec<u8>> {
    // Some providers pad their base64url; the JOSE spec says they should not.
    URL_SAFE_NO_PAD
        .decode(value?.trim_end_matches('='))
        .ok()
        .filter(|bytes| !bytes.is_empty())
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}
