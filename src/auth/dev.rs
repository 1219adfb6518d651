//! The local development issuer: an ES256 key kept in a PEM file, which mints demo tokens.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::SecretKey;
use sha2::{Digest, Sha256};

use super::{unix_now, AuthError, AuthSetupError, TokenClaims, DEV_ISSUER};

/// The development issuer's key pair, loaded from (or created in) its PEM file.
///
/// Tokens it mints carry `iss = "casegraph-dev"` and are accepted only where
/// `auth.dev_issuer.enabled` is set.
pub struct DevIssuer {
    signing: EncodingKey,
    verifying: DecodingKey,
    key_id: String,
}

impl fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key never leaves this struct, not even through Debug.
        f.debug_struct("DevIssuer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// Loads the ES256 (P-256) private key from the PKCS#8 PEM file at `path`, or creates one there
    /// (with its parent folders, mode 0600 on unix) when the file does not exist.
    ///
    /// A file that exists but does not hold a P-256 PKCS#8 key is an error naming the path: it is
    /// never replaced, since that would silently invalidate every token minted with it.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthSetupError> {
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                warn_if_readable_by_others(path);
                Self::from_pem(&pem).map_err(|reason| AuthSetupError::KeyFileCorrupt {
                    path: path.to_path_buf(),
                    reason,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(source) => Err(AuthSetupError::KeyFileRead {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn create(path: &Path) -> Result<Self, AuthSetupError> {
        let write_err = |source| AuthSetupError::KeyFileWrite {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        let secret = SecretKey::random(&mut rand_core::OsRng);
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| AuthSetupError::KeyGeneration(e.to_string()))?;

        let mut options = std::fs::OpenOptions::new();
        // create_new: if another process created the file meanwhile, use its key rather than
        // overwriting it.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = match options.open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Self::load_or_create(path)
            }
            Err(e) => return Err(write_err(e)),
        };
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(write_err)?;
        let issuer = Self::from_secret(&secret).map_err(AuthSetupError::KeyGeneration)?;
        tracing::info!(path = %path.display(), key_id = %issuer.key_id, "Created the development issuer key");
        Ok(issuer)
    }

    fn from_pem(pem: &str) -> Result<Self, String> {
        let secret = SecretKey::from_pkcs8_pem(pem)
            .map_err(|e| format!("not a P-256 private key in PKCS#8 PEM ({e})"))?;
        Self::from_secret(&secret)
    }

    fn from_secret(secret: &SecretKey) -> Result<Self, String> {
        let pkcs8 = secret
            .to_pkcs8_der()
            .map_err(|e| format!("cannot encode the key as PKCS#8 ({e})"))?;
        let public = secret.public_key();
        let sec1 = public.to_sec1_bytes();
        Ok(Self {
            signing: EncodingKey::from_ec_der(pkcs8.as_bytes()),
            verifying: DecodingKey::from_ec_der(&sec1),
            key_id: key_id_of(&sec1),
        })
    }

    /// Mints a token for `sub` of organisation `org`, valid for `ttl` from now, naming `audience`.
    pub fn mint(
        &self,
        audience: &str,
        sub: &str,
        org: &str,
        roles: &[String],
        missions: &[String],
        ttl: Duration,
    ) -> Result<String, AuthError> {
        if sub.is_empty() {
            return Err(AuthError::MissingClaim("sub"));
        }
        if org.is_empty() {
            return Err(AuthError::MissingClaim("org"));
        }
        let now = unix_now();
        self.sign(&TokenClaims {
            iss: DEV_ISSUER.to_owned(),
            sub: sub.to_owned(),
            aud: serde_json::Value::String(audience.to_owned()),
            exp: now.saturating_add(ttl.as_secs()),
            nbf: Some(now),
            iat: Some(now),
            org: org.to_owned(),
            roles: roles.to_vec(),
            missions: missions.to_vec(),
        })
    }

    /// Signs arbitrary claims with the development key (tests use it to build invalid tokens).
    pub(crate) fn sign(&self, claims: &TokenClaims) -> Result<String, AuthError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.signing)
            .map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// Stable identifier of the key: base64url of the first 12 bytes of the SHA-256 of the
    /// uncompressed SEC1 public key. Minted tokens carry it as `kid`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key that verifies this issuer's tokens.
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.verifying
    }
}

fn key_id_of(sec1_public_key: &[u8]) -> String {
    let digest = Sha256::digest(sec1_public_key);
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

/// A private key others can read is worth a warning, not a refusal: this is the demo issuer.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{:o}", mode & 0o777),
                    "Development issuer key file is readable by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
