//! The HTTP client every HTTP-based connector kind (`rest`, `graphql`, `protocol`) calls its
//! host-state system through: one pooled `reqwest` client per connector, with the connector's
//! timeout, optional mutual TLS and a private CA, authentication (`[auth]`: none, bearer token,
//! API key, OAuth2 client credentials) and a hard cap on the size of an answer.
//!
//! Everything that can fail becomes a [`ConnectorError`] whose message names the connector and
//! the host, never a secret, a token or the content of an answer.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, Instant};

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpClientError, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{Client, StatusCode, Url};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::error::ConnectorError;
use super::runtime_config::RuntimeConfig;
use crate::config::Validation;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// How CaseGraph proves who it is to the host-state system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamAuthKind {
    /// No authentication: the system is reachable without credentials (for example inside a
    /// private network, or protected by mutual TLS alone).
    #[default]
    None,
    /// A fixed token sent as `Authorization: Bearer <token>`. Set `token` or `token_file`.
    Bearer,
    /// A fixed key sent in a header of its own (`X-API-Key` unless `header` says otherwise).
    /// Set `api_key` or `api_key_file`.
    ApiKey,
    /// OAuth 2.0 client credentials: CaseGraph asks `token_url` for an access token with
    /// `client_id` and `client_secret`, keeps it until shortly before it expires and sends it as
    /// `Authorization: Bearer <access token>`.
    Oauth2ClientCredentials,
}

impl UpstreamAuthKind {
    /// The spelling used in connector files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bearer => "bearer",
            Self::ApiKey => "api_key",
            Self::Oauth2ClientCredentials => "oauth2_client_credentials",
        }
    }
}

/// `[auth]` of a connector file: how CaseGraph proves who it is to the host-state system.
///
/// Secrets are best written as `"${env.NAME}"` (read from an environment variable when CaseGraph
/// starts) or kept in a file named by the matching `*_file` setting. They are never written to
/// logs or error messages.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UpstreamAuthConfig {
    /// How to authenticate: `"none"` (default), `"bearer"`, `"api_key"` or
    /// `"oauth2_client_credentials"`. Only the settings of the chosen kind may be given.
    #[serde(default)]
    pub kind: UpstreamAuthKind,
    /// For `kind = "bearer"`: the token, sent as `Authorization: Bearer <token>`. Write
    /// `"${env.NAME}"` to take it from an environment variable rather than writing it here.
    #[schemars(with = "Option<String>")]
    pub token: Option<SecretString>,
    /// For `kind = "bearer"`, instead of `token`: path of a file holding the token (surrounding
    /// spaces and line breaks are ignored). Read once when CaseGraph starts.
    pub token_file: Option<String>,
    /// For `kind = "api_key"`: name of the HTTP header that carries the key. Default
    /// `"X-API-Key"`.
    pub header: Option<String>,
    /// For `kind = "api_key"`: the key. Write `"${env.NAME}"` to take it from an environment
    /// variable rather than writing it here.
    #[schemars(with = "Option<String>")]
    pub api_key: Option<SecretString>,
    /// For `kind = "api_key"`, instead of `api_key`: path of a file holding the key (surrounding
    /// spaces and line breaks are ignored). Read once when CaseGraph starts.
    pub api_key_file: Option<String>,
    /// For `kind = "oauth2_client_credentials"`: the token endpoint of your identity provider,
    /// e.g. `"https://login.justice.example/oauth2/token"`. Must be `https://` (plain `http://`
    /// is accepted only for `localhost` and `127.0.0.1`).
    pub token_url: Option<String>,
    /// For `kind = "oauth2_client_credentials"`: the client ID your identity provider issued to
    /// CaseGraph.
    pub client_id: Option<String>,
    /// For `kind = "oauth2_client_credentials"`: the client secret issued with `client_id`.
    /// Write `"${env.NAME}"` to take it from an environment variable rather than writing it here.
    /// It is sent to `token_url` with HTTP Basic authentication.
    #[schemars(with = "Option<String>")]
    pub client_secret: Option<SecretString>,
    /// For `kind = "oauth2_client_credentials"`, instead of `client_secret`: path of a file
    /// holding the secret (surrounding spaces and line breaks are ignored). Read once when
    /// CaseGraph starts.
    pub client_secret_file: Option<String>,
    /// For `kind = "oauth2_client_credentials"`: the scopes to ask for, e.g.
    /// `["cases.read"]`. Empty (the default) asks for none and lets the identity provider decide.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// For `kind = "oauth2_client_credentials"`: the `audience` parameter some identity
    /// providers (Auth0, Okta) require, usually the address or identifier of your API.
    pub audience: Option<String>,
    /// For `kind = "oauth2_client_credentials"`: the `resource` parameter other identity
    /// providers (Microsoft Entra ID / ADFS, RFC 8707) require, usually the address or
    /// identifier of your API.
    pub resource: Option<String>,
}

/// `[tls]` of a connector file: mutual TLS and private CAs.
///
/// Relative paths are resolved from the directory CaseGraph is started in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// Path of the PEM certificate CaseGraph presents to your system (mutual TLS). Give
    /// `client_key_file` with it. The file may hold intermediate certificates after CaseGraph's
    /// own.
    pub client_cert_file: Option<String>,
    /// Path of the PEM private key (PKCS#8, RSA or EC, unencrypted) that belongs to
    /// `client_cert_file`.
    pub client_key_file: Option<String>,
    /// Path of a PEM file with one or more CA certificates to trust in addition to the public
    /// ones, for a system whose certificate is issued by a private or government CA.
    pub ca_file: Option<String>,
}

/// The default header of `kind = "api_key"`.
const DEFAULT_API_KEY_HEADER: &str = "X-API-Key";

impl UpstreamAuthConfig {
    /// Checks `[auth]` without any I/O; errors are keyed `auth.<setting>`: the settings the
    /// kind needs are present, settings of other kinds are absent, each secret is given exactly
    /// once (inline or as a file), the token URL is an `https://` URL.
    pub fn validate_into(&self, v: &mut Validation) {
        use UpstreamAuthKind as K;

        for (field, owner, present) in self.settings() {
            if present && owner != self.kind {
                v.error(
                    &format!("auth.{field}"),
                    format!("`{field}` only applies to kind = \"{}\"", owner.as_str()),
                );
            }
        }

        match self.kind {
            K::None => {}
            K::Bearer => {
                one_secret(
                    v,
                    self.kind,
                    "token",
                    self.token.as_ref(),
                    "token_file",
                    self.token_file.as_deref(),
                );
            }
            K::ApiKey => {
                one_secret(
                    v,
                    self.kind,
                    "api_key",
                    self.api_key.as_ref(),
                    "api_key_file",
                    self.api_key_file.as_deref(),
                );
                if let Some(header) = &self.header {
                    if let Err(reason) = check_header_name(header) {
                        v.error("auth.header", reason);
                    }
                }
            }
            K::Oauth2ClientCredentials => {
                match &self.token_url {
                    None => v.error("auth.token_url", required_for(self.kind, "token_url")),
                    Some(url) => {
                        if let Err(reason) = check_token_url(url) {
                            v.error("auth.token_url", reason);
                        }
                    }
                }
                match &self.client_id {
                    None => v.error("auth.client_id", required_for(self.kind, "client_id")),
                    Some(id) if id.trim().is_empty() => {
                        v.error("auth.client_id", "must not be empty")
                    }
                    Some(_) => {}
                }
                one_secret(
                    v,
                    self.kind,
                    "client_secret",
                    self.client_secret.as_ref(),
                    "client_secret_file",
                    self.client_secret_file.as_deref(),
                );
                for (i, scope) in self.scopes.iter().enumerate() {
                    if let Err(reason) = check_scope(scope) {
                        v.error(&format!("auth.scopes[{i}]"), reason);
                    }
                }
                for (key, value) in [
                    ("auth.audience", &self.audience),
                    ("auth.resource", &self.resource),
                ] {
                    if value.as_deref().is_some_and(|s| s.trim().is_empty()) {
                        v.error(key, "must not be empty; leave it out instead");
                    }
                }
            }
        }
    }

    /// Every setting but `kind`: its name, the kind it belongs to, and whether it is given.
    fn settings(&self) -> [(&'static str, UpstreamAuthKind, bool); 12] {
        use UpstreamAuthKind as K;
        [
            ("token", K::Bearer, self.token.is_some()),
            ("token_file", K::Bearer, self.token_file.is_some()),
            ("header", K::ApiKey, self.header.is_some()),
            ("api_key", K::ApiKey, self.api_key.is_some()),
            ("api_key_file", K::ApiKey, self.api_key_file.is_some()),
            (
                "token_url",
                K::Oauth2ClientCredentials,
                self.token_url.is_some(),
            ),
            (
                "client_id",
                K::Oauth2ClientCredentials,
                self.client_id.is_some(),
            ),
            (
                "client_secret",
                K::Oauth2ClientCredentials,
                self.client_secret.is_some(),
            ),
            (
                "client_secret_file",
                K::Oauth2ClientCredentials,
                self.client_secret_file.is_some(),
            ),
            (
                "scopes",
                K::Oauth2ClientCredentials,
                !self.scopes.is_empty(),
            ),
            (
                "audience",
                K::Oauth2ClientCredentials,
                self.audience.is_some(),
            ),
            (
                "resource",
                K::Oauth2ClientCredentials,
                self.resource.is_some(),
            ),
        ]
    }
}

impl UpstreamTlsConfig {
    /// Checks `[tls]`; errors are keyed `tls.<setting>`: the client certificate and key come
    /// together, and every file named exists and is readable.
    ///
    /// This is the one connector check that touches the filesystem, on purpose: a missing
    /// certificate is far easier to fix when reported with its line in the connector file than
    /// as a failed TLS handshake later. Whether the files hold valid PEM is checked when the
    /// connector is built ([`Upstream::new`]).
    pub fn validate_into(&self, v: &mut Validation) {
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(_), None) => {
                v.error("tls.client_key_file", "is required with `client_cert_file`")
            }
            (None, Some(_)) => {
                v.error("tls.client_cert_file", "is required with `client_key_file`")
            }
            _ => {}
        }
        for (key, path) in [
            ("tls.client_cert_file", &self.client_cert_file),
            ("tls.client_key_file", &self.client_key_file),
            ("tls.ca_file", &self.ca_file),
        ] {
            if let Some(path) = path {
                if let Err(reason) = check_readable_file(path) {
                    v.error(key, reason);
                }
            }
        }
    }
}

fn required_for(kind: UpstreamAuthKind, field: &str) -> String {
    format!("`{field}` is required for kind = \"{}\"", kind.as_str())
}

/// Exactly one of an inline secret and its `*_file` setting, neither empty.
fn one_secret(
    v: &mut Validation,
    kind: UpstreamAuthKind,
    inline_key: &str,
    inline: Option<&SecretString>,
    file_key: &str,
    file: Option<&str>,
) {
    match (inline, file) {
        (Some(_), Some(_)) => v.error(
            &format!("auth.{file_key}"),
            format!("give either `{inline_key}` or `{file_key}`, not both"),
        ),
        (None, None) => v.error(
            &format!("auth.{inline_key}"),
            format!(
                "kind = \"{}\" needs `{inline_key}` (usually \"${{env.NAME}}\") or `{file_key}`",
                kind.as_str()
            ),
        ),
        (Some(secret), None) => {
            if secret.expose_secret().trim().is_empty() {
                v.error(
                    &format!("auth.{inline_key}"),
                    "is empty (is the environment variable set to an empty value?)",
                );
            }
        }
        (None, Some(path)) => {
            if path.trim().is_empty() {
                v.error(&format!("auth.{file_key}"), "must be the path of a file");
            }
        }
    }
}

fn check_header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        "is not a valid HTTP header name (letters, digits and `-`, e.g. \"X-API-Key\")".to_owned()
    })
}

/// An `https://` URL (or `http://` on the local machine) without credentials or fragment.
fn check_token_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|err| format!("is not a valid URL: {err}"))?;
    let local = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match parsed.scheme() {
        "https" => {}
        "http" if local => {}
        "http" => {
            return Err(
                "must start with `https://` (`http://` is accepted only for localhost)".to_owned(),
            )
        }
        _ => return Err("must be an `https://` URL".to_owned()),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "must not contain a user name or password; use `client_id` and `client_secret`"
                .to_owned(),
        );
    }
    if parsed.fragment().is_some() {
        return Err("must not contain a `#` fragment".to_owned());
    }
    Ok(parsed)
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn check_scope(scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if scope
        .bytes()
        .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
    {
        Ok(())
    } else {
        Err(
            "must be one scope without spaces, quotes or backslashes; list several scopes as \
             separate strings"
                .to_owned(),
        )
    }
}

fn check_readable_file(path: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|err| format!("cannot read the file: {err}"))?;
    let metadata = file
        .metadata()
        .map_err(|err| format!("cannot read the file: {err}"))?;
    if !metadata.is_file() {
        return Err("is not a file".to_owned());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors when building
// ---------------------------------------------------------------------------------------------

/// Why a connector's HTTP client could not be built. Names settings and file paths, never the
/// content of a file or a secret.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamBuildError {
    /// A setting is missing, given twice, or unusable.
    #[error("connector `{connector}`: `{key}` {reason}")]
    Setting {
        /// The connector's id.
        connector: String,
        /// The setting (`auth.token`).
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file named by a setting could not be read.
    #[error("connector `{connector}`: cannot read {path} (`{key}`): {error}")]
    ReadFile {
        /// The connector's id.
        connector: String,
        /// The setting naming the file (`auth.token_file`).
        key: &'static str,
        /// The file.
        path: String,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// A certificate, key or CA file does not hold what it should.
    #[error("connector `{connector}`: {path} (`{key}`) is not usable: {reason}")]
    Certificate {
        /// The connector's id.
        connector: String,
        /// The setting naming the file (`tls.client_cert_file`).
        key: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS stack refused the combination (for example a key that does not match its
    /// certificate).
    #[error("connector `{connector}`: cannot set up the HTTP client: {reason}")]
    Client {
        /// The connector's id.
        connector: String,
        /// Why.
        reason: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------------------------

/// What the host-state system answered: a status CaseGraph accepts (2xx or 404) and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamReply {
    /// The HTTP status.
    pub status: u16,
    /// The parsed body; `Null` for an empty 204 or 404 answer.
    pub body: serde_json::Value,
    /// Size of the body as received, in bytes.
    pub bytes: usize,
}

/// One connector's authenticated HTTP client toward its host-state system.
pub struct Upstream {
    connector_id: String,
    client: Client,
    auth: Auth,
    mtls: bool,
    timeout: Duration,
    max_response_bytes: usize,
}

/// The credentials, ready to send. Header values are marked sensitive, so `http` redacts them.
enum Auth {
    None,
    Header {
        kind: UpstreamAuthKind,
        name: HeaderName,
        value: HeaderValue,
    },
    OAuth2(Box<OAuth2Source>),
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none".to_owned(),
            Auth::Header { kind, name, .. } => format!("{} ({name})", kind.as_str()),
            Auth::OAuth2(oauth) => format!(
                "oauth2_client_credentials (token endpoint {})",
                oauth.token_host
            ),
        };
        f.debug_struct("Upstream")
            .field("connector", &self.connector_id)
            .field("auth", &auth)
            .field("mtls", &self.mtls)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the client: reads secret and certificate files, sets timeouts and the pool.
    /// Tokens are not fetched here: the first call fetches one, so a gateway can start while an
    /// identity provider is down.
    pub async fn new(
        connector_id: &str,
        auth: &UpstreamAuthConfig,
        tls: Option<&UpstreamTlsConfig>,
        runtime: &RuntimeConfig,
    ) -> Result<Self, UpstreamBuildError> {
        let timeout = Duration::from_millis(runtime.timeout_ms.max(1));
        let mut builder = Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(runtime.max_concurrency.max(1))
            .pool_idle_timeout(Duration::from_secs(90))
            // A redirect would carry an API key header to wherever the system points; the
            // connector file must name the final address instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("CaseGraph/", env!("CARGO_PKG_VERSION")));

        let mut mtls = false;
        if let Some(tls) = tls {
            let ctx = BuildCtx {
                connector: connector_id,
            };
            if let Some(path) = &tls.ca_file {
                let pem = ctx.read_file("tls.ca_file", path).await?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|err| ctx.certificate("tls.ca_file", path, error_chain(&err)))?;
                if certs.is_empty() {
                    return Err(ctx.certificate(
                        "tls.ca_file",
                        path,
                        "no PEM certificate found".to_owned(),
                    ));
                }
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            match (&tls.client_cert_file, &tls.client_key_file) {
                (Some(cert_path), Some(key_path)) => {
                    let cert = ctx.read_file("tls.client_cert_file", cert_path).await?;
                    let key = ctx.read_file("tls.client_key_file", key_path).await?;
                    if !contains(&cert, b"-----BEGIN CERTIFICATE-----") {
                        return Err(ctx.certificate(
                            "tls.client_cert_file",
                            cert_path,
                            "no PEM certificate found".to_owned(),
                        ));
                    }
                    if !contains(&key, b"PRIVATE KEY-----") {
                        return Err(ctx.certificate(
                            "tls.client_key_file",
                            key_path,
                            "no PEM private key found".to_owned(),
                        ));
                    }
                    let mut pem = cert;
                    pem.push(b'\n');
                    pem.extend_from_slice(&key);
                    let identity = reqwest::Identity::from_pem(&pem).map_err(|err| {
                        ctx.certificate("tls.client_key_file", key_path, error_chain(&err))
                    })?;
                    builder = builder.identity(identity);
                    mtls = true;
                }
                (None, None) => {}
                (Some(_), None) => {
                    return Err(
                        ctx.setting("tls.client_key_file", "is required with `client_cert_file`")
                    )
                }
                (None, Some(_)) => {
                    return Err(
                        ctx.setting("tls.client_cert_file", "is required with `client_key_file`")
                    )
                }
            }
        }

        let client = builder.build().map_err(|err| UpstreamBuildError::Client {
            connector: connector_id.to_owned(),
            reason: error_chain(&err),
        })?;
        let auth = Auth::build(connector_id, auth).await?;
        Ok(Self {
            connector_id: connector_id.to_owned(),
            client,
            auth,
            mtls,
            timeout,
            max_response_bytes: runtime.max_response_bytes,
        })
    }

    /// The id of the connector this client belongs to, for messages and log fields.
    pub(crate) fn connector_id(&self) -> &str {
        &self.connector_id
    }

    /// Sends the request built by `build` (called again for the single retry after a token
    /// refresh) with the connector's credentials, and reads the answer as JSON.
    ///
    /// `build` must not set `Authorization` (or the API key header): this client adds it.
    /// 2xx and 404 are answers; 401/403 are [`AuthFailed`](super::error::ConnectorErrorKind::AuthFailed)
    /// (with OAuth2, a 401 first discards the access token, fetches a new one and retries once);
    /// 429 and 5xx are `Unavailable`; any other status, a body over `max_response_bytes` or a
    /// body that is not JSON is `BadResponse`.
    #[tracing::instrument(name = "upstream", skip_all, fields(connector = %self.connector_id))]
    pub async fn send_json(
        &self,
        build: &(dyn Fn(&Client) -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<UpstreamReply, ConnectorError> {
        let (response, host, generation) = self.send_once(build).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return self.reply(response, &host).await;
        }
        let Auth::OAuth2(oauth) = &self.auth else {
            return Err(self.refused(&host, response.status()));
        };
        tracing::info!(host = %host, "Upstream refused the access token; fetching a new one and retrying once");
        oauth.invalidate(generation).await;
        let (response, host, _) = self.send_once(build).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(ConnectorError::auth_failed(format!(
                "connector `{}`: {host} refused a freshly fetched access token (HTTP 401)",
                self.connector_id
            )));
        }
        self.reply(response, &host).await
    }

    /// Adds credentials, sends, and returns the response with the host it came from and the
    /// generation of the access token used (0 without OAuth2).
    async fn send_once(
        &self,
        build: &(dyn Fn(&Client) -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<(reqwest::Response, String, u64), ConnectorError> {
        let mut builder = build(&self.client);
        let mut generation = 0;
        match &self.auth {
            Auth::None => {}
            Auth::Header { name, value, .. } => {
                builder = builder.header(name.clone(), value.clone())
            }
            Auth::OAuth2(oauth) => {
                let (value, token_generation) = oauth
                    .token(&self.client, &self.connector_id, self.timeout)
                    .await?;
                builder = builder.header(AUTHORIZATION, value);
                generation = token_generation;
            }
        }
        let request = builder.build().map_err(|err| {
            ConnectorError::bad_response(format!(
                "connector `{}`: the request could not be built: {}",
                self.connector_id,
                error_chain(&err.without_url())
            ))
        })?;
        let host = host_of(request.url());
        let started = Instant::now();
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|err| self.transport_error(&host, err))?;
        tracing::debug!(
            host = %host,
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Upstream answered"
        );
        Ok((response, host, generation))
    }

    async fn reply(
        &self,
        response: reqwest::Response,
        host: &str,
    ) -> Result<UpstreamReply, ConnectorError> {
        let status = response.status();
        let id = &self.connector_id;
        match status.as_u16() {
            200..=299 | 404 => {}
            401 | 403 => return Err(self.refused(host, status)),
            429 => {
                return Err(ConnectorError::unavailable(format!(
                    "connector `{id}`: {host} is rate limiting CaseGraph (HTTP 429)"
                )))
            }
            500..=599 => {
                return Err(ConnectorError::unavailable(format!(
                    "connector `{id}`: {host} failed (HTTP {})",
                    status.as_u16()
                )))
            }
            300..=399 => {
                return Err(ConnectorError::bad_response(format!(
                "connector `{id}`: {host} answered with a redirect (HTTP {}); redirects are not \
                     followed, put the final address in the connector file",
                status.as_u16()
            )))
            }
            code => {
                return Err(ConnectorError::bad_response(format!(
                    "connector `{id}`: {host} answered with unexpected status HTTP {code}"
                )))
            }
        }

        let body = self.read_capped(response, host).await?;
        let bytes = body.len();
        let value = if body.iter().all(u8::is_ascii_whitespace)
            && matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_FOUND)
        {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).map_err(|err| {
                // serde_json's syntax errors carry a position, never the text around it.
                ConnectorError::bad_response(format!(
                    "connector `{id}`: {host} answered HTTP {} with a body that is not JSON at line {} column {}",
                    status.as_u16(),
                    err.line(),
                    err.column()
                ))
            })?
        };
        Ok(UpstreamReply {
            status: status.as_u16(),
            body: value,
            bytes,
        })
    }

    /// Reads the body chunk by chunk and gives up as soon as it would pass the cap, so a huge or
    /// endless answer costs at most `max_response_bytes` of memory.
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
        host: &str,
    ) -> Result<Vec<u8>, ConnectorError> {
        let cap = self.max_response_bytes;
        let too_large = || {
            ConnectorError::bad_response(format!(
                "connector `{}`: {host} sent a response larger than {cap} bytes",
                self.connector_id
            ))
        };
        let announced = response.content_length();
        if announced.is_some_and(|len| len > cap as u64) {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(announced.map_or(0, |len| len as usize));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport_error(host, err))?
        {
            if chunk.len() > cap - body.len() {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn refused(&self, host: &str, status: StatusCode) -> ConnectorError {
        ConnectorError::auth_failed(format!(
            "connector `{}`: {host} refused CaseGraph's credentials (HTTP {})",
            self.connector_id,
            status.as_u16()
        ))
    }

    fn transport_error(&self, host: &str, err: reqwest::Error) -> ConnectorError {
        transport_error(&self.connector_id, host, self.timeout, err)
    }
}

fn transport_error(
    connector: &str,
    host: &str,
    timeout: Duration,
    err: reqwest::Error,
) -> ConnectorError {
    // The URL may carry a query with personal data; the host is named instead.
    let err = err.without_url();
    let cause = root_cause(&err);
    if err.is_timeout() {
        ConnectorError::timeout(format!(
            "connector `{connector}`: {host} did not answer within {} ms",
            timeout.as_millis()
        ))
    } else if err.is_connect() {
        ConnectorError::unavailable(format!(
            "connector `{connector}`: cannot connect to {host}: {cause}"
        ))
    } else if err.is_body() || err.is_decode() {
        ConnectorError::unavailable(format!(
            "connector `{connector}`: the connection to {host} broke while reading the answer: {cause}"
        ))
    } else {
        ConnectorError::unavailable(format!(
            "connector `{connector}`: the request to {host} failed: {cause}"
        ))
    }
}

/// `host:port` of a URL, without user info, path or query (which may carry credentials).
fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The innermost cause, which is what an operator can act on ("Connection refused (os error
/// 111)", "invalid peer certificate: UnknownIssuer").
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut last = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// The error and its causes, `: `-separated.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut current = err.source();
    while let Some(cause) = current {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        current = cause.source();
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The connector id, for building errors while [`Upstream::new`] runs.
struct BuildCtx<'a> {
    connector: &'a str,
}

impl BuildCtx<'_> {
    fn setting(&self, key: &'static str, reason: impl Into<String>) -> UpstreamBuildError {
        UpstreamBuildError::Setting {
            connector: self.connector.to_owned(),
            key,
            reason: reason.into(),
        }
    }

    fn certificate(&self, key: &'static str, path: &str, reason: String) -> UpstreamBuildError {
        UpstreamBuildError::Certificate {
            connector: self.connector.to_owned(),
            key,
            path: path.to_owned(),
            reason,
        }
    }

    async fn read_file(
        &self,
        key: &'static str,
        path: &str,
    ) -> Result<Vec<u8>, UpstreamBuildError> {
        tokio::fs::read(path)
            .await
            .map_err(|error| UpstreamBuildError::ReadFile {
                connector: self.connector.to_owned(),
                key,
                path: path.to_owned(),
                error,
            })
    }

    /// The secret given inline or in a file, trimmed, never empty.
    async fn secret(
        &self,
        inline_key: &'static str,
        inline: Option<&SecretString>,
        file_key: &'static str,
        file: Option<&str>,
    ) -> Result<SecretString, UpstreamBuildError> {
        let secret: SecretString = match (inline, file) {
            (Some(secret), None) => secret.expose_secret().trim().into(),
            (None, Some(path)) => {
                let raw = self.read_file(file_key, path).await?;
                let text = String::from_utf8(raw)
                    .map_err(|_| self.setting(file_key, "names a file that is not UTF-8 text"))?;
                let secret: SecretString = text.trim().into();
                // Zeroizes the untrimmed copy on drop.
                drop(SecretString::from(text));
                secret
            }
            (Some(_), Some(_)) => {
                return Err(self.setting(
                    file_key,
                    format!("cannot be given together with `{inline_key}`"),
                ))
            }
            (None, None) => {
                return Err(self.setting(inline_key, format!("is required (or `{file_key}`)")))
            }
        };
        if secret.expose_secret().is_empty() {
            return Err(self.setting(
                if file.is_some() { file_key } else { inline_key },
                "is empty",
            ));
        }
        Ok(secret)
    }
}

/// A header value from a secret, marked sensitive so `http` never prints it.
fn sensitive_header(prefix: &str, secret: &SecretString) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("{prefix}{}", secret.expose_secret())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

impl Auth {
    async fn build(
        connector: &str,
        config: &UpstreamAuthConfig,
    ) -> Result<Self, UpstreamBuildError> {
        let ctx = BuildCtx { connector };
        let unsendable = "contains characters an HTTP header cannot carry (a line break?)";
        match config.kind {
            UpstreamAuthKind::None => Ok(Auth::None),
            UpstreamAuthKind::Bearer => {
                let token = ctx
                    .secret(
                        "auth.token",
                        config.token.as_ref(),
                        "auth.token_file",
                        config.token_file.as_deref(),
                    )
                    .await?;
                let value = sensitive_header("Bearer ", &token)
                    .ok_or_else(|| ctx.setting("auth.token", unsendable))?;
                Ok(Auth::Header {
                    kind: config.kind,
                    name: AUTHORIZATION,
                    value,
                })
            }
            UpstreamAuthKind::ApiKey => {
                let name =
                    check_header_name(config.header.as_deref().unwrap_or(DEFAULT_API_KEY_HEADER))
                        .map_err(|reason| ctx.setting("auth.header", reason))?;
                let key = ctx
                    .secret(
                        "auth.api_key",
                        config.api_key.as_ref(),
                        "auth.api_key_file",
                        config.api_key_file.as_deref(),
                    )
                    .await?;
                let value = sensitive_header("", &key)
                    .ok_or_else(|| ctx.setting("auth.api_key", unsendable))?;
                Ok(Auth::Header {
                    kind: config.kind,
                    name,
                    value,
                })
            }
            UpstreamAuthKind::Oauth2ClientCredentials => {
                let url = config
                    .token_url
                    .as_deref()
                    .ok_or_else(|| ctx.setting("auth.token_url", "is required"))?;
                let url =
                    check_token_url(url).map_err(|reason| ctx.setting("auth.token_url", reason))?;
                let client_id = config
                    .client_id
                    .as_deref()
                    .filter(|id| !id.trim().is_empty())
                    .ok_or_else(|| ctx.setting("auth.client_id", "is required"))?;
                let secret = ctx
                    .secret(
                        "auth.client_secret",
                        config.client_secret.as_ref(),
                        "auth.client_secret_file",
                        config.client_secret_file.as_deref(),
                    )
                    .await?;
                let scopes = config
                    .scopes
                    .iter()
                    .map(|scope| check_scope(scope).map(|()| Scope::new(scope.clone())))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|reason| ctx.setting("auth.scopes", reason))?;
                let mut extra_params = Vec::new();
                if let Some(audience) = &config.audience {
                    extra_params.push(("audience", audience.clone()));
                }
                if let Some(resource) = &config.resource {
                    extra_params.push(("resource", resource.clone()));
                }
                let token_host = host_of(&url);
                let client = BasicClient::new(ClientId::new(client_id.to_owned()))
                    .set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()))
                    .set_token_uri(TokenUrl::from_url(url));
                Ok(Auth::OAuth2(Box::new(OAuth2Source {
                    client,
                    scopes,
                    extra_params,
                    token_host,
                    state: tokio::sync::Mutex::new(TokenState::default()),
                })))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth2 client credentials
// ---------------------------------------------------------------------------------------------

/// How long a token without `expires_in` is kept (unless the system answers 401 first).
const LIFETIME_WITHOUT_EXPIRY: Duration = Duration::from_secs(3600);
/// The longest a token is refreshed before it expires.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(30);

type TokenClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Fetches and caches access tokens. The mutex is held while fetching, so concurrent calls that
/// find no valid token wait for one request to the token endpoint instead of each sending one.
struct OAuth2Source {
    client: TokenClient,
    scopes: Vec<Scope>,
    extra_params: Vec<(&'static str, String)>,
    token_host: String,
    state: tokio::sync::Mutex<TokenState>,
}

#[derive(Default)]
struct TokenState {
    current: Option<CachedToken>,
    /// Tokens fetched so far; numbers each token so a 401 discards only the token it was sent
    /// with, not one a concurrent call already fetched to replace it.
    fetched: u64,
}

struct CachedToken {
    /// `Bearer <access token>`, marked sensitive.
    header: HeaderValue,
    refresh_at: Instant,
    generation: u64,
}

/// When to fetch a new token: 30 s or a tenth of its lifetime before it expires, whichever
/// margin is smaller (a 60 s token is used for 54 s, a one-hour token for 59 min 30 s).
fn refresh_after(expires_in: Option<Duration>) -> Duration {
    match expires_in {
        Some(lifetime) => lifetime - MAX_REFRESH_MARGIN.min(lifetime / 10),
        None => LIFETIME_WITHOUT_EXPIRY,
    }
}

impl OAuth2Source {
    /// A valid `Authorization` value and its generation, fetching a token if needed.
    async fn token(
        &self,
        http: &Client,
        connector: &str,
        timeout: Duration,
    ) -> Result<(HeaderValue, u64), ConnectorError> {
        let mut state = self.state.lock().await;
        if let Some(token) = &state.current {
            if Instant::now() < token.refresh_at {
                return Ok((token.header.clone(), token.generation));
            }
        }
        state.current = None;
        let (header, lifetime) = self.fetch(http, connector, timeout).await?;
        state.fetched += 1;
        let generation = state.fetched;
        state.current = Some(CachedToken {
            header: header.clone(),
            refresh_at: Instant::now() + refresh_after(lifetime),
            generation,
        });
        Ok((header, generation))
    }

    /// Forget the token of `generation` after the system refused it.
    async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state
            .current
            .as_ref()
            .is_some_and(|t| t.generation == generation)
        {
            state.current = None;
        }
    }

    async fn fetch(
        &self,
        http: &Client,
        connector: &str,
        timeout: Duration,
    ) -> Result<(HeaderValue, Option<Duration>), ConnectorError> {
        let host = &self.token_host;
        let mut request = self
            .client
            .exchange_client_credentials()
            .add_scopes(self.scopes.iter().cloned());
        for (name, value) in &self.extra_params {
            request = request.add_extra_param(*name, value.as_str());
        }
        let started = Instant::now();
        // A token endpoint that fails (5xx) is unavailable, like any failing system: its body,
        // whatever it says, is not a refusal of CaseGraph's credentials.
        let response = request.request_async(&StatusChecked(http)).await.map_err(|err| match err {
            RequestTokenError::ServerResponse(response) => ConnectorError::auth_failed(format!(
                "connector `{connector}`: the token endpoint {host} refused to issue an access token: {}",
                oauth2_error_code(response.error())
            )),
            RequestTokenError::Request(TokenCallError::Transport(HttpClientError::Reqwest(err))) => {
                let err = transport_error(connector, host, timeout, *err);
                ConnectorError::new(err.kind, format!("{} (token endpoint)", err.message))
            }
            RequestTokenError::Request(TokenCallError::Status(status)) => {
                ConnectorError::unavailable(format!(
                    "connector `{connector}`: the token endpoint {host} answered HTTP {status}"
                ))
            }
            RequestTokenError::Request(other) => ConnectorError::unavailable(format!(
                "connector `{connector}`: the request to the token endpoint {host} failed: {other}"
            )),
            // The body may hold a token: it is never quoted.
            RequestTokenError::Parse(..) => ConnectorError::auth_failed(format!(
                "connector `{connector}`: the token endpoint {host} answered something that is not \
                 an OAuth2 token response"
            )),
            RequestTokenError::Other(reason) => ConnectorError::auth_failed(format!(
                "connector `{connector}`: the token endpoint {host} answered unexpectedly: {reason}"
            )),
        })?;
        let lifetime = response.expires_in();
        let header = sensitive_header(
            "Bearer ",
            &SecretString::from(response.access_token().secret().as_str()),
        )
        .ok_or_else(|| {
            ConnectorError::auth_failed(format!(
                "connector `{connector}`: the token endpoint {host} issued an access token that \
                     cannot be sent in an HTTP header"
            ))
        })?;
        tracing::info!(
            token_host = %host,
            expires_in_secs = lifetime.map(|d| d.as_secs()),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Fetched an OAuth2 access token"
        );
        Ok((header, lifetime))
    }
}

/// The HTTP client of token requests: a 5xx answer is an error of the call, not a body for
/// the OAuth2 client to read as a refusal.
struct StatusChecked<'a>(&'a Client);

impl<'c> oauth2::AsyncHttpClient<'c> for StatusChecked<'_> {
    type Error = TokenCallError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, TokenCallError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = oauth2::AsyncHttpClient::call(self.0, request)
                .await
                .map_err(TokenCallError::Transport)?;
            if response.status().is_server_error() {
                return Err(TokenCallError::Status(response.status()));
            }
            Ok(response)
        })
    }
}

/// Why a call to a token endpoint gave no usable HTTP answer.
#[derive(Debug, thiserror::Error)]
enum TokenCallError {
    /// The request could not be sent or its answer read.
    #[error("{0}")]
    Transport(HttpClientError<reqwest::Error>),
    /// The endpoint failed (5xx).
    #[error("HTTP {0}")]
    Status(StatusCode),
}

/// The OAuth2 `error` code, shown only if it looks like one (RFC 6749 §5.2 codes are short
/// printable ASCII); anything else an endpoint sends is not repeated.
fn oauth2_error_code(code: &BasicErrorResponseType) -> String {
    let code = code.as_ref();
    if !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        code.to_owned()
    } else {
        "an error code that is not a standard OAuth2 code".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    use axum::response::{IntoResponse, Response};
    use axum::{Form, Json, Router};
    use base64::Engine as _;
    use serde_json::json;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::connectors::error::ConnectorErrorKind;

    const SECRET: &str = "s3cr3t-DO-NOT-LEAK-42";
    const CLIENT_ID: &str = "casegraph-ci";
    const CLIENT_SECRET: &str = "cs-7f3a9d1e-very-secret";
    /// Every access token the test identity provider issues starts with this.
    const TOKEN_PREFIX: &str = "at-5e1b7c-";

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn runtime() -> RuntimeConfig {
        RuntimeConfig {
            timeout_ms: 2_000,
            max_response_bytes: 64 * 1024,
            ..RuntimeConfig::default()
        }
    }

    fn get(url: String) -> impl Fn(&Client) -> reqwest::RequestBuilder + Send + Sync {
        move |client: &Client| client.get(&url)
    }

    fn bearer(token: &str) -> UpstreamAuthConfig {
        UpstreamAuthConfig {
            kind: UpstreamAuthKind::Bearer,
            token: Some(token.into()),
            ..Default::default()
        }
    }

    fn oauth2(token_url: &str, secret: &str) -> UpstreamAuthConfig {
        UpstreamAuthConfig {
            kind: UpstreamAuthKind::Oauth2ClientCredentials,
            token_url: Some(token_url.to_owned()),
            client_id: Some(CLIENT_ID.to_owned()),
            client_secret: Some(secret.into()),
            ..Default::default()
        }
    }

    async fn upstream(auth: &UpstreamAuthConfig) -> Upstream {
        upstream_with(auth, None, &runtime()).await
    }

    async fn upstream_with(
        auth: &UpstreamAuthConfig,
        tls: Option<&UpstreamTlsConfig>,
        runtime: &RuntimeConfig,
    ) -> Upstream {
        Upstream::new("test-state", auth, tls, runtime)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn build_error(
        auth: &UpstreamAuthConfig,
        tls: Option<&UpstreamTlsConfig>,
    ) -> UpstreamBuildError {
        Upstream::new("test-state", auth, tls, &runtime())
            .await
            .expect_err("the build must fail")
    }

    /// Serves `router` from a thread of its own, so the server's own logs never reach a
    /// subscriber a test installs for its thread.
    fn spawn(router: Router) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("bound address");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                axum::serve(listener, router).await.expect("test server");
            });
        });
        addr
    }

    // --- A real OAuth2 client-credentials endpoint and an API protected by it ---------------

    #[derive(Default)]
    struct Idp {
        expires_in: Option<u64>,
        token_calls: AtomicUsize,
        api_calls: AtomicUsize,
        /// The API refuses tokens numbered below this (a revoked token).
        revoked_below: AtomicUsize,
        /// The API refuses every token.
        refuse_all: AtomicBool,
        basic_auth_used: AtomicBool,
        last_form: Mutex<HashMap<String, String>>,
    }

    async fn token_endpoint(
        State(idp): State<Arc<Idp>>,
        headers: HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        let basic = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let (id, secret) = match &basic {
            Some(pair) => {
                let (id, secret) = pair.split_once(':').unwrap_or((pair, ""));
                (Some(id.to_owned()), Some(secret.to_owned()))
            }
            None => (
                form.get("client_id").cloned(),
                form.get("client_secret").cloned(),
            ),
        };
        idp.basic_auth_used.store(basic.is_some(), Ordering::SeqCst);
        *idp.last_form.lock().expect("form lock") = form.clone();
        if id.as_deref() != Some(CLIENT_ID) || secret.as_deref() != Some(CLIENT_SECRET) {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid_client"})),
            )
                .into_response();
        }
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
        let n = idp.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let mut body =
            json!({"access_token": format!("{TOKEN_PREFIX}{n}"), "token_type": "Bearer"});
        if let Some(expires_in) = idp.expires_in {
            body["expires_in"] = json!(expires_in);
        }
        Json(body).into_response()
    }

    async fn protected_case(
        State(idp): State<Arc<Idp>>,
        Path(id): Path<String>,
        headers: HeaderMap,
    ) -> Response {
        idp.api_calls.fetch_add(1, Ordering::SeqCst);
        let number = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| t.strip_prefix(TOKEN_PREFIX))
            .and_then(|n| n.parse::<usize>().ok());
        match number {
            Some(n)
                if !idp.refuse_all.load(Ordering::SeqCst)
                    && n >= idp.revoked_below.load(Ordering::SeqCst) =>
            {
                Json(json!({"case": id, "token_number": n})).into_response()
            }
            _ => axum::http::StatusCode::UNAUTHORIZED.into_response(),
        }
    }

    fn spawn_idp(idp: Idp) -> (Arc<Idp>, String) {
        let idp = Arc::new(idp);
        let router = Router::new()
            .route("/oauth2/token", axum::routing::post(token_endpoint))
            .route("/api/cases/{id}", axum::routing::get(protected_case))
            .with_state(idp.clone());
        let addr = spawn(router);
        (idp, format!("http://{addr}"))
    }

    // --- Configuration ----------------------------------------------------------------------

    fn errors_of(auth: &UpstreamAuthConfig) -> Vec<(String, String)> {
        let mut v = Validation::new();
        auth.validate_into(&mut v);
        v.errors().to_vec()
    }

    fn has(errors: &[(String, String)], key: &str, message: &str) -> bool {
        errors.iter().any(|(k, m)| k == key && m.contains(message))
    }

    #[derive(Debug, Deserialize)]
    struct ConnectorFile {
        #[serde(default)]
        auth: UpstreamAuthConfig,
        tls: Option<UpstreamTlsConfig>,
    }

    impl crate::config::Validate for ConnectorFile {
        fn validate(&self, v: &mut Validation) {
            self.auth.validate_into(v);
            if let Some(tls) = &self.tls {
                tls.validate_into(v);
            }
        }
    }

    #[test]
    fn the_loader_reads_an_oauth2_section_and_reports_unknown_keys_in_auth_and_tls() {
        let good = format!(
            "[auth]\nkind = \"oauth2_client_credentials\"\ntoken_url = \"https://idp.justice.example/token\"\n\
             client_id = \"{CLIENT_ID}\"\nclient_secret = \"{SECRET}\"\nscopes = [\"cases.read\"]\naudience = \"api\"\n"
        );
        let file: ConnectorFile =
            crate::config::load_toml(&good, "ci.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.auth.kind, UpstreamAuthKind::Oauth2ClientCredentials);
        assert_eq!(
            file.auth
                .client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned())
                .as_deref(),
            Some(SECRET)
        );
        assert_eq!(file.auth.scopes, ["cases.read"]);
        assert!(!format!("{file:?}").contains(SECRET));

        let bad = "[auth]\nkind = \"bearer\"\ntoken = \"x\"\ntokn = \"y\"\n\n[tls]\nca_fle = \"ca.pem\"\n";
        let errors = crate::config::load_toml::<ConnectorFile>(bad, "ci.toml")
            .expect_err("two unknown keys");
        let found: Vec<(&str, usize, &str)> = errors
            .iter()
            .map(|e| (e.key.as_str(), e.line, e.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("auth.tokn", 4, "unknown key `tokn`"),
                ("tls.ca_fle", 7, "unknown key `ca_fle`")
            ]
        );
    }

    #[test]
    fn an_unset_environment_variable_for_a_secret_is_reported_at_its_key() {
        let text = "[auth]\nkind = \"bearer\"\ntoken = \"${env.CG_UPSTREAM_TEST_SURELY_UNSET}\"\n";
        let errors =
            crate::config::load_toml::<ConnectorFile>(text, "ci.toml").expect_err("unset variable");
        assert_eq!(errors.len(), 1, "{errors}");
        assert_eq!(
            (errors.errors[0].key.as_str(), errors.errors[0].line),
            ("auth.token", 3)
        );
        assert!(errors.errors[0]
            .message
            .contains("CG_UPSTREAM_TEST_SURELY_UNSET"));
    }

    #[test]
    fn the_json_schema_refuses_unknown_keys_and_documents_settings_for_it_staff() {
        let schema = schemars::schema_for!(UpstreamAuthConfig).to_value();
        assert_eq!(schema["additionalProperties"], json!(false), "{schema:#}");
        let token = schema["properties"]["token"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(token.contains("${env.NAME}"), "{schema:#}");
        assert!(schema.to_string().contains("oauth2_client_credentials"));
        let tls = schemars::schema_for!(UpstreamTlsConfig).to_value();
        assert_eq!(tls["additionalProperties"], json!(false), "{tls:#}");
        assert!(tls["properties"]["ca_file"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("CA")));
    }

    #[test]
    fn a_setting_of_another_kind_is_refused_naming_the_kind_it_belongs_to() {
        let mut auth = bearer("t");
        auth.token_url = Some("https://idp.example/token".to_owned());
        auth.scopes = vec!["a".to_owned()];
        let errors = errors_of(&auth);
        assert!(
            has(
                &errors,
                "auth.token_url",
                "`token_url` only applies to kind = \"oauth2_client_credentials\""
            ),
            "{errors:?}"
        );
        assert!(
            has(
                &errors,
                "auth.scopes",
                "only applies to kind = \"oauth2_client_credentials\""
            ),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 2, "{errors:?}");

        let none = UpstreamAuthConfig {
            api_key: Some("k".into()),
            ..Default::default()
        };
        assert_eq!(
            errors_of(&none),
            [(
                "auth.api_key".to_owned(),
                "`api_key` only applies to kind = \"api_key\"".to_owned()
            )]
        );
    }

    #[test]
    fn a_secret_must_be_given_exactly_once_and_not_empty() {
        let neither = UpstreamAuthConfig {
            kind: UpstreamAuthKind::Bearer,
            ..Default::default()
        };
        assert!(has(&errors_of(&neither), "auth.token", "needs `token`"));
        let mut both = bearer("t");
        both.token_file = Some("/run/secrets/token".to_owned());
        assert!(has(
            &errors_of(&both),
            "auth.token_file",
            "either `token` or `token_file`, not both"
        ));
        assert!(has(&errors_of(&bearer("  ")), "auth.token", "is empty"));
        let api = UpstreamAuthConfig {
            kind: UpstreamAuthKind::ApiKey,
            api_key_file: Some("/run/secrets/key".to_owned()),
            header: Some("X API Key".to_owned()),
            ..Default::default()
        };
        assert_eq!(errors_of(&api).len(), 1);
        assert!(has(
            &errors_of(&api),
            "auth.header",
            "not a valid HTTP header name"
        ));
    }

    #[test]
    fn oauth2_needs_its_token_url_client_id_and_secret() {
        let auth = UpstreamAuthConfig {
            kind: UpstreamAuthKind::Oauth2ClientCredentials,
            ..Default::default()
        };
        let errors = errors_of(&auth);
        assert!(has(
            &errors,
            "auth.token_url",
            "`token_url` is required for kind = \"oauth2_client_credentials\""
        ));
        assert!(has(&errors, "auth.client_id", "is required"));
        assert!(has(&errors, "auth.client_secret", "needs `client_secret`"));
        assert_eq!(errors.len(), 3, "{errors:?}");
        let mut scoped = oauth2("https://idp.example/token", "s");
        scoped.scopes = vec!["cases.read".to_owned(), "cases read".to_owned()];
        assert_eq!(
            errors_of(&scoped),
            [(
                "auth.scopes[1]".to_owned(),
                check_scope("cases read").expect_err("space")
            )]
        );
    }

    #[test]
    fn the_token_url_must_be_https_except_on_the_local_machine() {
        for ok in [
            "https://idp.example/token",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
        ] {
            assert!(errors_of(&oauth2(ok, "s")).is_empty(), "{ok}");
        }
        for (bad, message) in [
            ("http://idp.example/token", "must start with `https://`"),
            ("ftp://idp.example/token", "must be an `https://` URL"),
            (
                "https://user:pw@idp.example/token",
                "must not contain a user name or password",
            ),
            ("idp.example/token", "is not a valid URL"),
        ] {
            assert!(
                has(&errors_of(&oauth2(bad, "s")), "auth.token_url", message),
                "{bad}"
            );
        }
    }

    #[test]
    fn tls_needs_certificate_and_key_together_and_readable_files() {
        let ok = UpstreamTlsConfig {
            client_cert_file: Some(fixture("client.pem")),
            client_key_file: Some(fixture("client.key")),
            ca_file: Some(fixture("ca.pem")),
        };
        let mut v = Validation::new();
        ok.validate_into(&mut v);
        assert!(v.is_empty(), "{v:?}");

        let bad = UpstreamTlsConfig {
            client_cert_file: Some(fixture("client.pem")),
            client_key_file: None,
            ca_file: Some(fixture("missing-ca.pem")),
        };
        let mut v = Validation::new();
        bad.validate_into(&mut v);
        assert!(
            has(
                v.errors(),
                "tls.client_key_file",
                "is required with `client_cert_file`"
            ),
            "{v:?}"
        );
        assert!(
            has(v.errors(), "tls.ca_file", "cannot read the file"),
            "{v:?}"
        );
        assert_eq!(v.errors().len(), 2);
    }

    #[test]
    fn a_token_is_refreshed_a_tenth_of_its_life_or_thirty_seconds_before_it_expires() {
        assert_eq!(
            refresh_after(Some(Duration::from_secs(1))),
            Duration::from_millis(900)
        );
        assert_eq!(
            refresh_after(Some(Duration::from_secs(60))),
            Duration::from_secs(54)
        );
        assert_eq!(
            refresh_after(Some(Duration::from_secs(3600))),
            Duration::from_secs(3570)
        );
        assert_eq!(refresh_after(None), LIFETIME_WITHOUT_EXPIRY);
    }

    // --- Static credentials -------------------------------------------------------------------

    #[tokio::test]
    async fn a_bearer_token_arrives_in_the_authorization_header() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/cases/1"))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"stage": "CHARGED"})))
            .expect(1)
            .mount(&server)
            .await;
        let reply = upstream(&bearer("tok-123"))
            .await
            .send_json(&get(format!("{}/cases/1", server.uri())))
            .await;
        assert_eq!(
            reply,
            Ok(UpstreamReply {
                status: 200,
                body: json!({"stage": "CHARGED"}),
                bytes: 19
            })
        );
    }

    #[tokio::test]
    async fn an_api_key_arrives_in_its_header_read_from_a_file_without_its_line_break() {
        let server = MockServer::start().await;
        Mock::given(path("/default"))
            .and(header("x-api-key", "key-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!(1)))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(path("/custom"))
            .and(header("x-justice-key", "key-2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!(2)))
            .expect(1)
            .mount(&server)
            .await;
        let inline = UpstreamAuthConfig {
            kind: UpstreamAuthKind::ApiKey,
            api_key: Some("key-1".into()),
            ..Default::default()
        };
        let reply = upstream(&inline)
            .await
            .send_json(&get(format!("{}/default", server.uri())))
            .await;
        assert_eq!(reply.map(|r| r.body), Ok(json!(1)));

        let dir = tempfile::tempdir().expect("temp dir");
        let key_path = dir.path().join("key");
        std::fs::write(&key_path, "key-2\n").expect("write key");
        let from_file = UpstreamAuthConfig {
            kind: UpstreamAuthKind::ApiKey,
            header: Some("X-Justice-Key".to_owned()),
            api_key_file: Some(key_path.display().to_string()),
            ..Default::default()
        };
        let reply = upstream(&from_file)
            .await
            .send_json(&get(format!("{}/custom", server.uri())))
            .await;
        assert_eq!(reply.map(|r| r.body), Ok(json!(2)));
    }

    #[tokio::test]
    async fn an_unreadable_secret_file_is_a_build_error_naming_the_path() {
        let auth = UpstreamAuthConfig {
            kind: UpstreamAuthKind::Bearer,
            token_file: Some("/nonexistent/casegraph/token".to_owned()),
            ..Default::default()
        };
        let err = build_error(&auth, None).await;
        assert!(
            matches!(
                err,
                UpstreamBuildError::ReadFile {
                    key: "auth.token_file",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("/nonexistent/casegraph/token"),
            "{err}"
        );
    }

    // --- Status, size, format, transport --------------------------------------------------------

    #[tokio::test]
    async fn statuses_map_to_replies_and_error_kinds() {
        let server = MockServer::start().await;
        let cases: [(u16, &str, Option<ConnectorErrorKind>); 9] = [
            (500, "", Some(ConnectorErrorKind::Unavailable)),
            (503, "", Some(ConnectorErrorKind::Unavailable)),
            (429, "", Some(ConnectorErrorKind::Unavailable)),
            (400, "", Some(ConnectorErrorKind::BadResponse)),
            (409, "", Some(ConnectorErrorKind::BadResponse)),
            (302, "", Some(ConnectorErrorKind::BadResponse)),
            (401, "", Some(ConnectorErrorKind::AuthFailed)),
            (403, "", Some(ConnectorErrorKind::AuthFailed)),
            (404, "", None),
        ];
        for (status, body, _) in &cases {
            Mock::given(path(format!("/status/{status}")))
                .respond_with(
                    ResponseTemplate::new(*status)
                        .set_body_string(*body)
                        .insert_header("location", "https://elsewhere.example/"),
                )
                .mount(&server)
                .await;
        }
        Mock::given(path("/found-nothing"))
            .respond_with(
                ResponseTemplate::new(404).set_body_json(json!({"error": "no such case"})),
            )
            .mount(&server)
            .await;
        let up = upstream(&bearer("t")).await;
        for (status, _, expected) in cases {
            let result = up
                .send_json(&get(format!("{}/status/{status}", server.uri())))
                .await;
            match expected {
                Some(kind) => {
                    let err = result.expect_err("an error status");
                    assert_eq!(err.kind, kind, "HTTP {status}: {err}");
                    assert!(
                        err.message.contains(&status.to_string()),
                        "HTTP {status}: {err}"
                    );
                    assert!(
                        err.message.contains("test-state"),
                        "names the connector: {err}"
                    );
                }
                None => assert_eq!(
                    result,
                    Ok(UpstreamReply {
                        status,
                        body: serde_json::Value::Null,
                        bytes: 0
                    })
                ),
            }
        }
        let reply = up
            .send_json(&get(format!("{}/found-nothing", server.uri())))
            .await
            .expect("404 is an answer");
        assert_eq!(
            (reply.status, reply.body),
            (404, json!({"error": "no such case"}))
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_bad_response() {
        let server = MockServer::start().await;
        Mock::given(path("/big"))
            .respond_with(
                ResponseTemplate::new(200).set_body_string(format!("\"{}\"", "x".repeat(5_000))),
            )
            .mount(&server)
            .await;
        let limits = RuntimeConfig {
            max_response_bytes: 1024,
            ..runtime()
        };
        let err = upstream_with(&bearer("t"), None, &limits)
            .await
            .send_json(&get(format!("{}/big", server.uri())))
            .await
            .expect_err("too large");
        assert_eq!(err.kind, ConnectorErrorKind::BadResponse);
        assert!(
            err.message.contains("response larger than 1024 bytes"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_endless_body_without_a_length_stops_being_read_at_the_limit() {
        let endless = futures::stream::repeat_with(|| {
            Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(vec![b' '; 4096]))
        });
        let router = Router::new().route(
            "/endless",
            axum::routing::get(move || async move { axum::body::Body::from_stream(endless) }),
        );
        let addr = spawn(router);
        let limits = RuntimeConfig {
            max_response_bytes: 100_000,
            ..runtime()
        };
        let err = upstream_with(&bearer("t"), None, &limits)
            .await
            .send_json(&get(format!("http://{addr}/endless")))
            .await
            .expect_err("too large");
        assert_eq!(err.kind, ConnectorErrorKind::BadResponse, "{err}");
        assert!(
            err.message.contains("response larger than 100000 bytes"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_a_bad_response_that_does_not_quote_it() {
        let server = MockServer::start().await;
        Mock::given(path("/html"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_string("{\"ok\": 1}\n<html>CONFIDENTIAL-VICTIM-NAME</html>"),
            )
            .mount(&server)
            .await;
        let err = upstream(&bearer("t"))
            .await
            .send_json(&get(format!("{}/html", server.uri())))
            .await
            .expect_err("not JSON");
        assert_eq!(err.kind, ConnectorErrorKind::BadResponse);
        assert!(err.message.contains("not JSON at line 2 column 1"), "{err}");
        assert!(!format!("{err} {err:?}").contains("CONFIDENTIAL"), "{err}");
    }

    #[tokio::test]
    async fn a_slow_upstream_is_a_timeout() {
        let server = MockServer::start().await;
        Mock::given(path("/slow"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!(1))
                    .set_delay(Duration::from_secs(3)),
            )
            .mount(&server)
            .await;
        let limits = RuntimeConfig {
            timeout_ms: 200,
            ..runtime()
        };
        let err = upstream_with(&bearer("t"), None, &limits)
            .await
            .send_json(&get(format!("{}/slow", server.uri())))
            .await
            .expect_err("too slow");
        assert_eq!(err.kind, ConnectorErrorKind::Timeout, "{err}");
        assert!(err.message.contains("within 200 ms"), "{err}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address")
        };
        let err = upstream(&bearer("t"))
            .await
            .send_json(&get(format!("http://{addr}/cases/1")))
            .await
            .expect_err("nobody listens");
        assert_eq!(err.kind, ConnectorErrorKind::Unavailable, "{err}");
        assert!(
            err.message.contains(&format!("cannot connect to {addr}")),
            "{err}"
        );
    }

    // --- OAuth2 -----------------------------------------------------------------------------------

    #[tokio::test]
    async fn an_oauth2_token_is_fetched_once_for_five_calls() {
        let (idp, base) = spawn_idp(Idp {
            expires_in: Some(3600),
            ..Default::default()
        });
        let up = upstream(&oauth2(&format!("{base}/oauth2/token"), CLIENT_SECRET)).await;
        for i in 0..5 {
            let reply = up
                .send_json(&get(format!("{base}/api/cases/{i}")))
                .await
                .expect("authorized");
            assert_eq!(
                reply.body,
                json!({"case": i.to_string(), "token_number": 1})
            );
        }
        assert_eq!(idp.token_calls.load(Ordering::SeqCst), 1);
        assert_eq!(idp.api_calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn concurrent_calls_without_a_token_share_one_token_request() {
        let (idp, base) = spawn_idp(Idp {
            expires_in: Some(3600),
            ..Default::default()
        });
        let up = upstream(&oauth2(&format!("{base}/oauth2/token"), CLIENT_SECRET)).await;
        let build = get(format!("{base}/api/cases/1"));
        let replies = futures::future::join_all((0..10).map(|_| up.send_json(&build))).await;
        assert!(replies.iter().all(Result::is_ok), "{replies:?}");
        assert_eq!(idp.token_calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_oauth2_token_is_refreshed_after_it_expires() {
        let (idp, base) = spawn_idp(Idp {
            expires_in: Some(1),
            ..Default::default()
        });
        let up = upstream(&oauth2(&format!("{base}/oauth2/token"), CLIENT_SECRET)).await;
        let build = get(format!("{base}/api/cases/1"));
        up.send_json(&build).await.expect("first call");
        up.send_json(&build).await.expect("second call, same token");
        assert_eq!(idp.token_calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let reply = up.send_json(&build).await.expect("after expiry");
        assert_eq!(reply.body["token_number"], json!(2));
        assert_eq!(idp.token_calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_401_discards_the_token_fetches_a_new_one_and_retries_once() {
        let (idp, base) = spawn_idp(Idp {
            expires_in: Some(3600),
            ..Default::default()
        });
        let up = upstream(&oauth2(&format!("{base}/oauth2/token"), CLIENT_SECRET)).await;
        let build = get(format!("{base}/api/cases/7"));
        up.send_json(&build).await.expect("first token accepted");
        idp.revoked_below.store(2, Ordering::SeqCst);
        let reply = up
            .send_json(&build)
            .await
            .expect("retried with a new token");
        assert_eq!(reply.body, json!({"case": "7", "token_number": 2}));
        assert_eq!(idp.token_calls.load(Ordering::SeqCst), 2);
        assert_eq!(idp.api_calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_second_401_after_a_refresh_is_auth_failed() {
        let (idp, base) = spawn_idp(Idp {
            expires_in: Some(3600),
            ..Default::default()
        });
        idp.refuse_all.store(true, Ordering::SeqCst);
        let up = upstream(&oauth2(&format!("{base}/oauth2/token"), CLIENT_SECRET)).await;
        let err = up
            .send_json(&get(format!("{base}/api/cases/7")))
            .await
            .expect_err("always refused");
        assert_eq!(err.kind, ConnectorErrorKind::AuthFailed);
        assert!(
            err.message
                .contains("freshly fetched access token (HTTP 401)"),
            "{err}"
        );
        assert_eq!(idp.token_calls.load(Ordering::SeqCst), 2);
        assert_eq!(idp.api_calls.load(Ordering::SeqCst), 2, "exactly one retry");
    }

    #[tokio::test]
    async fn scopes_audience_and_resource_reach_the_token_endpoint_with_basic_client_authentication(
    ) {
        let (idp, base) = spawn_idp(Idp {
            expires_in: Some(3600),
            ..Default::default()
        });
        let mut auth = oauth2(&format!("{base}/oauth2/token"), CLIENT_SECRET);
        auth.scopes = vec!["cases.read".to_owned(), "proceedings.read".to_owned()];
        auth.audience = Some("https://api.justice.example".to_owned());
        auth.resource = Some("api://casegraph-connector".to_owned());
        upstream(&auth)
            .await
            .send_json(&get(format!("{base}/api/cases/1")))
            .await
            .expect("authorized");
        let form = idp.last_form.lock().expect("form lock").clone();
        assert_eq!(
            form.get("grant_type").map(String::as_str),
            Some("client_credentials")
        );
        assert_eq!(
            form.get("scope").map(String::as_str),
            Some("cases.read proceedings.read")
        );
        assert_eq!(
            form.get("audience").map(String::as_str),
            Some("https://api.justice.example")
        );
        assert_eq!(
            form.get("resource").map(String::as_str),
            Some("api://casegraph-connector")
        );
        assert!(idp.basic_auth_used.load(Ordering::SeqCst));
        assert!(
            !form.contains_key("client_secret"),
            "the secret travels in the Basic header only"
        );
    }

    #[tokio::test]
    async fn a_token_endpoint_refusal_is_auth_failed_naming_its_host_and_the_oauth2_code() {
        let (idp, base) = spawn_idp(Idp::default());
        let up = upstream(&oauth2(&format!("{base}/oauth2/token"), SECRET)).await;
        let err = up
            .send_json(&get(format!("{base}/api/cases/1")))
            .await
            .expect_err("wrong secret");
        assert_eq!(err.kind, ConnectorErrorKind::AuthFailed);
        let host = base.trim_start_matches("http://");
        assert!(
            err.message.contains(host) && err.message.contains("invalid_client"),
            "{err}"
        );
        assert_eq!(
            idp.api_calls.load(Ordering::SeqCst),
            0,
            "no call without a token"
        );
    }

    #[tokio::test]
    async fn a_failing_token_endpoint_is_unavailable_not_auth_failed() {
        for body in [
            ResponseTemplate::new(500).set_body_string("Internal Server Error"),
            ResponseTemplate::new(503).set_body_json(json!({ "error": "temporarily_unavailable" })),
        ] {
            let idp = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/token"))
                .respond_with(body)
                .mount(&idp)
                .await;
            let up = upstream(&oauth2(&format!("{}/token", idp.uri()), CLIENT_SECRET)).await;
            let err = up
                .send_json(&get("http://127.0.0.1:9/never".to_owned()))
                .await
                .expect_err("no token");
            assert_eq!(err.kind, ConnectorErrorKind::Unavailable, "{err}");
            assert!(err.message.contains("token endpoint"), "{err}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_token_endpoint_is_unavailable_not_auth_failed() {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address")
        };
        let up = upstream(&oauth2(&format!("http://{addr}/token"), CLIENT_SECRET)).await;
        let err = up
            .send_json(&get("http://127.0.0.1:9/never".to_owned()))
            .await
            .expect_err("no IdP");
        assert_eq!(err.kind, ConnectorErrorKind::Unavailable, "{err}");
        assert!(err.message.contains("token endpoint"), "{err}");
    }

    // --- Secrets never shown ---------------------------------------------------------------------

    fn assert_hidden(what: &str, shown: &str) {
        for secret in [SECRET, CLIENT_SECRET, TOKEN_PREFIX] {
            assert!(!shown.contains(secret), "{what} shows a secret: {shown}");
        }
    }

    #[tokio::test]
    async fn secrets_never_appear_in_debug_output_or_errors() {
        let server = MockServer::start().await;
        Mock::given(path("/refused"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;
        Mock::given(path("/echo"))
            .respond_with(ResponseTemplate::new(400).set_body_string(format!("bad token {SECRET}")))
            .mount(&server)
            .await;
        Mock::given(path("/echo-ok"))
            .respond_with(ResponseTemplate::new(200).set_body_string(SECRET))
            .mount(&server)
            .await;
        // A 200 from a token endpoint that is not a valid token response but holds a token.
        Mock::given(path("/malformed-token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": format!("{TOKEN_PREFIX}9")})),
            )
            .mount(&server)
            .await;

        let api_key = UpstreamAuthConfig {
            kind: UpstreamAuthKind::ApiKey,
            api_key: Some(SECRET.into()),
            ..Default::default()
        };
        let (idp, base) = spawn_idp(Idp {
            expires_in: Some(3600),
            ..Default::default()
        });
        let good_oauth = oauth2(&format!("{base}/oauth2/token"), CLIENT_SECRET);
        let configs = [
            bearer(SECRET),
            api_key,
            oauth2(&format!("{base}/oauth2/token"), SECRET),
            good_oauth.clone(),
        ];
        for config in &configs {
            assert_hidden("config Debug", &format!("{config:?}"));
            let up = upstream(config).await;
            assert_hidden("Upstream Debug", &format!("{up:?}"));
            for route in ["/refused", "/echo", "/echo-ok"] {
                let err = up
                    .send_json(&get(format!("{}{route}", server.uri())))
                    .await
                    .expect_err("each route fails");
                assert_hidden(route, &format!("{err} {err:?}"));
            }
        }

        // Every OAuth2 failure: a refused client, a refused token, a malformed token response.
        let refused_client = upstream(&configs[2])
            .await
            .send_json(&get(format!("{base}/api/cases/1")))
            .await;
        idp.refuse_all.store(true, Ordering::SeqCst);
        let refused_token = upstream(&good_oauth)
            .await
            .send_json(&get(format!("{base}/api/cases/1")))
            .await;
        let malformed = upstream(&oauth2(
            &format!("{}/malformed-token", server.uri()),
            CLIENT_SECRET,
        ))
        .await
        .send_json(&get(format!("{base}/api/cases/1")))
        .await;
        for result in [refused_client, refused_token, malformed] {
            let err = result.expect_err("each fails");
            assert_eq!(err.kind, ConnectorErrorKind::AuthFailed, "{err}");
            assert_hidden("OAuth2 error", &format!("{err} {err:?}"));
        }

        // Build errors: a secret an HTTP header cannot carry, an empty one.
        for config in [bearer(&format!("{SECRET}\n{SECRET}")), bearer("")] {
            let err = build_error(&config, None).await;
            assert!(
                matches!(
                    err,
                    UpstreamBuildError::Setting {
                        key: "auth.token",
                        ..
                    }
                ),
                "{err:?}"
            );
            assert_hidden("build error", &format!("{err} {err:?}"));
        }
    }

    /// A `tracing` writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn neither_the_client_secret_nor_an_access_token_reaches_the_logs() {
        // `log` records of reqwest and hyper go to the same subscriber, as in `main`.
        let _ = tracing_log::LogTracer::init();
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let (idp, base) = spawn_idp(Idp {
            expires_in: Some(3600),
            ..Default::default()
        });
        let up = upstream(&oauth2(&format!("{base}/oauth2/token"), CLIENT_SECRET)).await;
        let build = get(format!("{base}/api/cases/1"));
        up.send_json(&build).await.expect("first token");
        idp.revoked_below.store(2, Ordering::SeqCst);
        up.send_json(&build).await.expect("refreshed after a 401");
        assert_eq!(idp.token_calls.load(Ordering::SeqCst), 2);

        let logs = String::from_utf8(captured.0.lock().expect("capture lock").clone())
            .expect("UTF-8 logs");
        assert!(
            logs.contains("Fetched an OAuth2 access token"),
            "the capture works:\n{logs}"
        );
        assert!(logs.contains("Upstream refused the access token"), "{logs}");
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        for secret in [CLIENT_SECRET, TOKEN_PREFIX, basic.as_str()] {
            assert!(!logs.contains(secret), "`{secret}` logged:\n{logs}");
        }
    }

    // --- TLS ---------------------------------------------------------------------------------------

    /// A TLS server that requires a client certificate issued by the test CA and answers with
    /// whether the one presented is the test client's.
    fn spawn_mtls_server() -> SocketAddr {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let certs = |name: &str| -> Vec<CertificateDer<'static>> {
            CertificateDer::pem_file_iter(fixture(name))
                .expect("PEM file")
                .map(|c| c.expect("certificate"))
                .collect()
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in certs("ca.pem") {
            roots.add(ca).expect("CA certificate");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .expect("verifier");
        let key = PrivateKeyDer::from_pem_file(fixture("server.key")).expect("server key");
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs("server.pem"), key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let client_cert = certs("client.pem").remove(0);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { continue };
                    let acceptor = acceptor.clone();
                    let client_cert = client_cert.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                        let presented = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) == Some(&client_cert);
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !contains(&request, b"\r\n\r\n") {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        let body = json!({"client_certificate_is_the_test_client": presented}).to_string();
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tls.write_all(response.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
        });
        addr
    }

    fn mtls() -> UpstreamTlsConfig {
        UpstreamTlsConfig {
            client_cert_file: Some(fixture("client.pem")),
            client_key_file: Some(fixture("client.key")),
            ca_file: Some(fixture("ca.pem")),
        }
    }

    #[tokio::test]
    async fn the_client_certificate_is_presented_over_mutual_tls_to_a_server_of_a_private_ca() {
        let addr = spawn_mtls_server();
        let up = upstream_with(&UpstreamAuthConfig::default(), Some(&mtls()), &runtime()).await;
        assert!(format!("{up:?}").contains("mtls: true"));
        let reply = up
            .send_json(&get(format!("https://127.0.0.1:{}/cases/1", addr.port())))
            .await;
        assert_eq!(
            reply.map(|r| r.body),
            Ok(json!({"client_certificate_is_the_test_client": true}))
        );
    }

    #[tokio::test]
    async fn without_a_client_certificate_the_mutual_tls_server_refuses_the_connection() {
        let addr = spawn_mtls_server();
        let ca_only = UpstreamTlsConfig {
            ca_file: Some(fixture("ca.pem")),
            ..Default::default()
        };
        let up = upstream_with(&UpstreamAuthConfig::default(), Some(&ca_only), &runtime()).await;
        let err = up
            .send_json(&get(format!("https://127.0.0.1:{}/cases/1", addr.port())))
            .await
            .expect_err("refused");
        assert_eq!(err.kind, ConnectorErrorKind::Unavailable, "{err}");
    }

    #[tokio::test]
    async fn without_the_private_ca_the_server_certificate_is_not_trusted() {
        let addr = spawn_mtls_server();
        let no_ca = UpstreamTlsConfig {
            ca_file: None,
            ..mtls()
        };
        let up = upstream_with(&UpstreamAuthConfig::default(), Some(&no_ca), &runtime()).await;
        let err = up
            .send_json(&get(format!("https://127.0.0.1:{}/cases/1", addr.port())))
            .await
            .expect_err("untrusted");
        assert_eq!(err.kind, ConnectorErrorKind::Unavailable, "{err}");
        assert!(err.message.contains("UnknownIssuer"), "{err}");
    }

    #[tokio::test]
    async fn unusable_certificate_files_are_build_errors_naming_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "this is not PEM").expect("write");
        let garbage = garbage.display().to_string();

        let missing = UpstreamTlsConfig {
            client_cert_file: Some("/nonexistent/client.pem".to_owned()),
            ..mtls()
        };
        let bad_cert = UpstreamTlsConfig {
            client_cert_file: Some(garbage.clone()),
            ..mtls()
        };
        let bad_key = UpstreamTlsConfig {
            client_key_file: Some(garbage.clone()),
            ..mtls()
        };
        let bad_ca = UpstreamTlsConfig {
            ca_file: Some(garbage.clone()),
            ..mtls()
        };
        for (tls, key, path) in [
            (missing, "tls.client_cert_file", "/nonexistent/client.pem"),
            (bad_cert, "tls.client_cert_file", garbage.as_str()),
            (bad_key, "tls.client_key_file", garbage.as_str()),
            (bad_ca, "tls.ca_file", garbage.as_str()),
        ] {
            let err = build_error(&UpstreamAuthConfig::default(), Some(&tls)).await;
            let shown = err.to_string();
            assert!(shown.contains(path) && shown.contains(key), "{shown}");
        }

        let mismatched = UpstreamTlsConfig {
            client_key_file: Some(fixture("server.key")),
            ..mtls()
        };
        let err = build_error(&UpstreamAuthConfig::default(), Some(&mismatched)).await;
        assert!(matches!(err, UpstreamBuildError::Client { .. }), "{err:?}");
    }
}
