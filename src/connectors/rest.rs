//! Kind `rest`: a declarative description of an existing JSON API, so that a host state can
//! connect the system it already has without writing code.
//!
//! # For host-state IT staff
//!
//! Describe **one** of the two ways your API can be asked about cases:
//!
//! - `[rest.batch]`: an endpoint that answers about many cases in one call (preferred). CaseGraph
//!   sends up to `[runtime] batch_size` keys per call. With `method = "POST"` the keys go into a
//!   JSON `body` where the text `"$keys"` stands for the list of keys; with `method = "GET"` they
//!   go into one `query` parameter, where `$keys` stands for the keys joined with `separator`.
//!   `[mapping] records` says where the list of cases is in the answer. An answer `404 Not
//!   Found` is treated as an error (usually a wrong `path`).
//! - `[rest.single]`: an endpoint that answers about one case; CaseGraph calls it once per case,
//!   at most `[runtime] max_concurrency` calls at a time. `{key}` in the `path` (or in a `query`
//!   value) stands for the key. An answer `404 Not Found` means "this system does not know the
//!   case"; an answer `200` is the case itself (or holds it where `[mapping] records` points).
//!
//! The key is the UN case reference or the national reference, depending on `match_by`.
//!
//! ```toml
//! kind = "rest"
//! [rest]
//! base_url = "https://api.justice.gouv.ml/v2"
//! [rest.batch]
//! method = "POST"
//! path = "/dossiers/recherche"
//! body = '{"references_onu": "$keys", "inclure": ["accuses", "historique"]}'
//! [rest.headers]
//! Accept-Language = "fr"
//! [mapping]
//! records = "/dossiers"
//! key = "/reference_onu"
//! ```
//!
//! or, for an API that answers one case at a time:
//!
//! ```toml
//! [rest.single]
//! path = "/dossiers/{key}"
//! query = { format = "complet" }
//! ```
//!
//! Credentials go in `[auth]`, never in `[rest.headers]`.

use super::error::ConnectorError;
use super::mapping::Mapping;
use super::protocol::check_base_url;
use super::upstream::{Upstream, UpstreamReply};
use super::{Connector, Fetched};
use crate::config::Validation;
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use tokio::sync::Semaphore;

/// The placeholder for the list of keys in a batch request.
const KEYS: &str = "$keys";
/// The placeholder for one key in a single-record request.
const KEY: &str = "{key}";
/// The key looked up by the health check when no `health_path` is set: no system knows it.
const PROBE_KEY: &str = "CASEGRAPH-HEALTH-CHECK";
/// Headers CaseGraph sets itself (or that `[auth]` sets).
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// `[rest]` of a connector file: where the API is and how to ask it about cases.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RestConfig {
    /// Address of the API, without the endpoint paths, e.g. "https://api.justice.gouv.ml/v2".
    /// Must start with https:// (plain http:// is accepted only for 127.0.0.1 and localhost).
    pub base_url: String,
    /// The endpoint that answers about many cases in one call, if the API has one (preferred).
    /// Fill in either `[rest.batch]` or `[rest.single]`, not both.
    #[serde(default)]
    pub batch: Option<RestBatchConfig>,
    /// The endpoint that answers about one case, used when the API has no batch endpoint: one
    /// call per case. Fill in either `[rest.batch]` or `[rest.single]`, not both.
    #[serde(default)]
    pub single: Option<RestSingleConfig>,
    /// Extra fixed headers sent with every call, e.g. `Accept-Language = "fr"`. Credentials go
    /// in `[auth]`, not here.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Path (after `base_url`, starting with "/") of a health endpoint, e.g. "/sante". The
    /// health check calls it with GET and expects an answer 200. Without it, the health check
    /// asks about a case no system knows (`CASEGRAPH-HEALTH-CHECK`).
    #[serde(default)]
    pub health_path: Option<String>,
}

/// How the batch endpoint is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum HttpMethod {
    /// The keys go into the address, in one `query` parameter.
    #[serde(rename = "GET", alias = "get")]
    Get,
    /// The keys go into a JSON `body`.
    #[serde(rename = "POST", alias = "post")]
    Post,
}

/// `[rest.batch]`: one call answers about many cases.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RestBatchConfig {
    /// "POST" (the keys go into a JSON `body`) or "GET" (the keys go into one `query`
    /// parameter).
    pub method: HttpMethod,
    /// Path of the endpoint after `base_url`, starting with "/", e.g. "/dossiers/recherche".
    pub path: String,
    /// With "POST" only, and required then: the JSON body to send, where the text "$keys"
    /// (with its quotes) is replaced by the list of keys, e.g.
    /// '{"references_onu": "$keys", "inclure": ["accuses"]}'. "$keys" appears exactly once.
    #[serde(default)]
    pub body: Option<String>,
    /// Parameters added to the address, as name = value, e.g. { refs = "$keys" }. With "GET",
    /// exactly one value contains "$keys", replaced by the keys joined with `separator`. With
    /// "POST", the values are fixed.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// With "GET" only: what separates the keys in "$keys". Default ",".
    #[serde(default)]
    pub separator: Option<String>,
}

impl RestBatchConfig {
    fn separator(&self) -> &str {
        self.separator.as_deref().unwrap_or(",")
    }
}

/// `[rest.single]`: one call per case.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RestSingleConfig {
    /// Path of one case after `base_url`, starting with "/", where "{key}" stands for the key,
    /// e.g. "/dossiers/{key}". CaseGraph encodes the key for the address (a space becomes
    /// "%20", a "/" becomes "%2F"). "{key}" may be in a `query` value instead.
    pub path: String,
    /// Parameters added to the address, as name = value, e.g. { format = "complet" }; "{key}"
    /// in a value stands for the key, e.g. { reference = "{key}" }.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
}

impl RestConfig {
    /// Checks the settings (no I/O); errors are keyed under `rest.`.
    pub fn validate_into(&self, v: &mut Validation) {
        check_base_url(v, "rest.base_url", &self.base_url);
        match (&self.batch, &self.single) {
            (Some(b), None) => b.validate_into(v),
            (None, Some(s)) => s.validate_into(v),
            (None, None) => v.error(
                "rest",
                "describe how to ask the API about cases: add a [rest.batch] table (one call for many cases) or a [rest.single] table (one call per case)",
            ),
            (Some(_), Some(_)) => v.error("rest.single", "fill in either [rest.batch] or [rest.single], not both"),
        }
        for (name, value) in &self.headers {
            let key = format!("rest.headers.{name}");
            match HeaderName::from_bytes(name.as_bytes()) {
                Err(_) => v.error(
                    &key,
                    "is not a valid header name (letters, digits and hyphens)",
                ),
                Ok(h) if RESERVED_HEADERS.contains(&h.as_str()) => v.error(
                    &key,
                    "is set by CaseGraph itself; put credentials in [auth]",
                ),
                Ok(_) => {}
            }
            // The value may have come from `${env.X}`: the message must not repeat it.
            if HeaderValue::from_str(value).is_err() {
                v.error(
                    &key,
                    "is not a valid header value (one line of visible characters)",
                );
            }
        }
        if let Some(p) = &self.health_path {
            check_path(v, "rest.health_path", p);
        }
    }
}

impl RestBatchConfig {
    fn validate_into(&self, v: &mut Validation) {
        check_path(v, "rest.batch.path", &self.path);
        check_no_placeholder(
            v,
            "rest.batch.path",
            &self.path,
            "put the keys in `query` (GET) or `body` (POST)",
        );
        check_query(v, "rest.batch.query", &self.query);
        for (name, value) in &self.query {
            if value.replace(KEYS, "").contains("$key") {
                v.error(
                    &format!("rest.batch.query.{name}"),
                    "a batch call takes the list of keys: write \"$keys\"",
                );
            }
        }
        let in_query = self
            .query
            .values()
            .map(|q| q.matches(KEYS).count())
            .sum::<usize>();
        match self.method {
            HttpMethod::Get => {
                if self.body.is_some() {
                    v.error("rest.batch.body", "a body is sent only with method = \"POST\"; with \"GET\" the keys go into `query`");
                }
                if in_query != 1 {
                    v.error(
                        "rest.batch.query",
                        format!("with method = \"GET\", exactly one value must contain \"$keys\" (found {in_query}), e.g. query = {{ refs = \"$keys\" }}"),
                    );
                }
                match &self.separator {
                    Some(s) if s.is_empty() => v.error("rest.batch.separator", "must not be empty"),
                    _ => {}
                }
            }
            HttpMethod::Post => {
                if in_query > 0 {
                    v.error("rest.batch.query", "with method = \"POST\" the keys go into `body`: remove \"$keys\" from `query`");
                }
                if self.separator.is_some() {
                    v.error("rest.batch.separator", "applies only to method = \"GET\"");
                }
                match &self.body {
                    None => v.error(
                        "rest.batch",
                        "method = \"POST\" needs a `body`, e.g. body = '{\"references\": \"$keys\"}'",
                    ),
                    Some(body) => {
                        if let Err(message) = check_body_template(body) {
                            v.error("rest.batch.body", message);
                        }
                    }
                }
            }
        }
    }
}

impl RestSingleConfig {
    fn validate_into(&self, v: &mut Validation) {
        check_path(v, "rest.single.path", &self.path);
        check_query(v, "rest.single.query", &self.query);
        let everywhere = std::iter::once(&self.path).chain(self.query.values());
        if everywhere.clone().any(|s| s.contains("$key")) {
            v.error(
                "rest.single",
                "a single-case call takes one key: write \"{key}\", not \"$key\" or \"$keys\"",
            );
        } else if !everywhere.clone().any(|s| s.contains(KEY)) {
            v.error(
                "rest.single.path",
                "must contain \"{key}\" (or a `query` value must), e.g. \"/dossiers/{key}\"",
            );
        }
        if self.path.replace(KEY, "").contains(['{', '}']) {
            v.error(
                "rest.single.path",
                "only \"{key}\" may appear between braces",
            );
        }
    }
}

fn check_path(v: &mut Validation, key: &str, path: &str) {
    if !path.starts_with('/') {
        v.error(key, "must start with \"/\", e.g. \"/dossiers\"");
    }
    if path.contains(['?', '#']) {
        v.error(
            key,
            "must not contain `?` or `#`: put parameters in `query`",
        );
    }
    if path.chars().any(char::is_whitespace) {
        v.error(key, "must not contain spaces");
    }
}

fn check_no_placeholder(v: &mut Validation, key: &str, text: &str, hint: &str) {
    if text.contains("$key") || text.contains(KEY) {
        v.error(key, format!("cannot hold the keys: {hint}"));
    }
}

fn check_query(v: &mut Validation, key: &str, query: &BTreeMap<String, String>) {
    for (name, value) in query {
        if name.trim().is_empty() {
            v.error(key, "a parameter name must not be empty");
        }
        if value.trim().is_empty() {
            v.error(&format!("{key}.{name}"), "must not be empty");
        }
    }
}

/// Checks that a body template is JSON holding the string "$keys" exactly once, as a value.
fn check_body_template(body: &str) -> Result<(), String> {
    let template: Value = serde_json::from_str(body).map_err(|e| {
        format!(
            "is not valid JSON (line {} column {} of the body)",
            e.line(),
            e.column()
        )
    })?;
    let mut whole = 0;
    let mut misplaced = false;
    count_placeholders(&template, &mut whole, &mut misplaced);
    if misplaced {
        return Err("\"$keys\" must be a whole JSON string value, e.g. {\"references\": \"$keys\"} (and \"$key\" is not used in a batch body)".into());
    }
    match whole {
        1 => Ok(()),
        0 => Err("must contain \"$keys\" (with its quotes) where the list of keys goes, e.g. {\"references\": \"$keys\"}".into()),
        n => Err(format!("contains \"$keys\" {n} times; it must appear exactly once")),
    }
}

fn count_placeholders(value: &Value, whole: &mut usize, misplaced: &mut bool) {
    match value {
        Value::String(s) if s == KEYS => *whole += 1,
        Value::String(s) if s.contains("$key") => *misplaced = true,
        Value::Array(items) => items
            .iter()
            .for_each(|i| count_placeholders(i, whole, misplaced)),
        Value::Object(map) => {
            for (k, item) in map {
                if k.contains("$key") {
                    *misplaced = true;
                }
                count_placeholders(item, whole, misplaced);
            }
        }
        _ => {}
    }
}

/// The body template with "$keys" replaced by the keys.
fn fill_body(template: &Value, keys: &[String]) -> Value {
    match template {
        Value::String(s) if s == KEYS => {
            Value::Array(keys.iter().cloned().map(Value::String).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| fill_body(i, keys)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| (k.clone(), fill_body(i, keys)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Percent-encodes a key for one path segment: everything but RFC 3986 unreserved characters.
fn encode_segment(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the connector sends, prepared once from the settings.
enum Endpoint {
    Batch {
        method: HttpMethod,
        url: String,
        body: Option<Value>,
        query: Vec<(String, String)>,
        separator: String,
    },
    Single {
        path: String,
        query: Vec<(String, String)>,
    },
}

/// A client for an existing JSON API.
pub struct RestConnector {
    id: String,
    base_url: String,
    /// `Err` when the settings did not go through validation and cannot be used.
    endpoint: Result<Endpoint, ConnectorError>,
    headers: HeaderMap,
    health_path: Option<String>,
    mapping: Mapping,
    upstream: Upstream,
    /// Bounds the calls in flight across all chunks of single-case lookups.
    single_calls: Semaphore,
}

impl RestConnector {
    /// A client for `config` (already validated by [`RestConfig::validate_into`]). Single-case
    /// lookups make one call at a time until [`with_max_concurrency`](Self::with_max_concurrency)
    /// says otherwise.
    pub fn new(config: RestConfig, mapping: Mapping, upstream: Upstream) -> Self {
        let id = upstream.connector_id().to_string();
        let invalid = |what: &str| {
            ConnectorError::bad_response(format!(
                "connector `{id}`: invalid [rest] settings: {what}; run `casegraph check-config`"
            ))
        };
        let endpoint = match (&config.batch, &config.single) {
            (Some(b), None) => match (b.method, &b.body) {
                (HttpMethod::Post, Some(body)) => serde_json::from_str::<Value>(body)
                    .map_err(|_| invalid("rest.batch.body is not JSON"))
                    .map(Some),
                (HttpMethod::Post, None) => Err(invalid("rest.batch.body is missing")),
                (HttpMethod::Get, _) => Ok(None),
            }
            .map(|body| Endpoint::Batch {
                method: b.method,
                url: join_url(&config.base_url, &b.path),
                body,
                query: b
                    .query
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                separator: b.separator().to_string(),
            }),
            (None, Some(s)) => Ok(Endpoint::Single {
                path: s.path.clone(),
                query: s
                    .query
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }),
            _ => Err(invalid(
                "fill in exactly one of [rest.batch] and [rest.single]",
            )),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            if let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                // The value may come from `${env.X}`: keep it out of debug output.
                value.set_sensitive(true);
                headers.insert(name, value);
            }
        }
        Self {
            id,
            base_url: config.base_url,
            endpoint,
            headers,
            health_path: config.health_path,
            mapping,
            upstream,
            single_calls: Semaphore::new(1),
        }
    }

    /// Allows up to `max` single-case calls in flight at once (`[runtime] max_concurrency`).
    pub fn with_max_concurrency(mut self, max: usize) -> Self {
        self.single_calls = Semaphore::new(max.max(1));
        self
    }

    /// The records of a batch answer (`one`: of a single-case answer, which may be the one
    /// record itself).
    fn records_of(&self, body: &Value, one: bool) -> Result<Vec<Value>, ConnectorError> {
        let records = if one {
            self.mapping.records_of_one(body)
        } else {
            self.mapping.records(body)
        };
        records
            .map(|records| records.into_iter().cloned().collect())
            .map_err(|e| ConnectorError::bad_response(format!("connector `{}`: {e}", self.id)))
    }

    async fn fetch_batch(
        &self,
        keys: &[String],
        method: HttpMethod,
        url: &str,
        body: Option<&Value>,
        query: &[(String, String)],
        separator: &str,
    ) -> Result<Fetched, ConnectorError> {
        let reply = match method {
            HttpMethod::Post => {
                let body = fill_body(body.unwrap_or(&Value::Null), keys);
                self.upstream
                    .send_json(&|c: &reqwest::Client| {
                        c.post(url)
                            .headers(self.headers.clone())
                            .query(query)
                            .json(&body)
                    })
                    .await?
            }
            HttpMethod::Get => {
                // A key holding the separator cannot be told apart from two keys: it is left out,
                // and so reported as not known, rather than sent mangled.
                let usable: Vec<&str> = keys
                    .iter()
                    .map(String::as_str)
                    .filter(|k| !k.contains(separator))
                    .collect();
                if usable.len() < keys.len() {
                    tracing::warn!(connector = %self.id, skipped = keys.len() - usable.len(), "Keys containing the batch separator were not sent");
                }
                if usable.is_empty() {
                    return Ok(Fetched {
                        raw: Value::Null,
                        records: Vec::new(),
                        incomplete: None,
                    });
                }
                let joined = usable.join(separator);
                let query: Vec<(&str, String)> = query
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.replace(KEYS, &joined)))
                    .collect();
                self.upstream
                    .send_json(&|c: &reqwest::Client| {
                        c.get(url).headers(self.headers.clone()).query(&query)
                    })
                    .await?
            }
        };
        tracing::debug!(connector = %self.id, keys = keys.len(), status = reply.status, "Batch lookup answered");
        if reply.status == 404 {
            return Err(ConnectorError::bad_response(format!(
                "connector `{}`: the batch endpoint answered HTTP 404 Not Found; check rest.base_url and rest.batch.path",
                self.id
            )));
        }
        let records = self.records_of(&reply.body, false)?;
        Ok(Fetched {
            raw: reply.body,
            records,
            incomplete: None,
        })
    }

    async fn fetch_one(
        &self,
        key: &str,
        path: &str,
        query: &[(String, String)],
    ) -> Result<UpstreamReply, ConnectorError> {
        let url = join_url(&self.base_url, &path.replace(KEY, &encode_segment(key)));
        let query: Vec<(&str, String)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.replace(KEY, key)))
            .collect();
        let _permit = self.single_calls.acquire().await.map_err(|_| {
            ConnectorError::unavailable(format!("connector `{}`: shutting down", self.id))
        })?;
        let reply = self
            .upstream
            .send_json(&|c: &reqwest::Client| {
                c.get(&url).headers(self.headers.clone()).query(&query)
            })
            .await?;
        tracing::debug!(connector = %self.id, keys = 1, status = reply.status, "Single-case lookup answered");
        Ok(reply)
    }

    async fn fetch_single(
        &self,
        keys: &[String],
        path: &str,
        query: &[(String, String)],
    ) -> Result<Fetched, ConnectorError> {
        // Every call waits for a permit of `single_calls`, so this bounds the calls in flight.
        let replies =
            futures::future::try_join_all(keys.iter().map(|key| self.fetch_one(key, path, query)))
                .await?;
        let mut records = Vec::new();
        let mut raw = Vec::with_capacity(replies.len());
        for reply in replies {
            if reply.status != 404 {
                records.extend(self.records_of(&reply.body, true)?);
            }
            raw.push(reply.body);
        }
        Ok(Fetched {
            raw: Value::Array(raw),
            records,
            incomplete: None,
        })
    }
}

fn join_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

#[async_trait]
impl Connector for RestConnector {
    #[tracing::instrument(name = "rest_fetch", skip_all, fields(connector = %self.id, keys = keys.len()))]
    async fn fetch(&self, keys: &[String]) -> Result<Fetched, ConnectorError> {
        match &self.endpoint {
            Err(e) => Err(e.clone()),
            Ok(Endpoint::Batch {
                method,
                url,
                body,
                query,
                separator,
            }) => {
                self.fetch_batch(keys, *method, url, body.as_ref(), query, separator)
                    .await
            }
            Ok(Endpoint::Single { path, query }) => self.fetch_single(keys, path, query).await,
        }
    }

    async fn probe(&self) -> Result<(), ConnectorError> {
        let Some(path) = &self.health_path else {
            return self.fetch(&[PROBE_KEY.to_string()]).await.map(drop);
        };
        let url = join_url(&self.base_url, path);
        let reply = self
            .upstream
            .send_json(&|c: &reqwest::Client| c.get(&url).headers(self.headers.clone()))
            .await?;
        match reply.status {
            200..=299 => Ok(()),
            status => Err(ConnectorError::unavailable(format!(
                "connector `{}`: GET {path} answered HTTP {status}",
                self.id
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(config: &RestConfig) -> Vec<(String, String)> {
        let mut v = Validation::new();
        config.validate_into(&mut v);
        v.errors().to_vec()
    }

    fn batch(method: HttpMethod, body: Option<&str>, query: &[(&str, &str)]) -> RestConfig {
        RestConfig {
            base_url: "https://api.justice.gouv.ml/v2".into(),
            batch: Some(RestBatchConfig {
                method,
                path: "/dossiers/recherche".into(),
                body: body.map(Into::into),
                query: query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                separator: None,
            }),
            single: None,
            headers: BTreeMap::new(),
            health_path: None,
        }
    }

    fn keys_of(errors: &[(String, String)]) -> Vec<&str> {
        errors.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_post_batch_with_one_keys_placeholder_is_accepted() {
        let c = batch(
            HttpMethod::Post,
            Some(r#"{"references_onu": "$keys", "inclure": ["accuses"]}"#),
            &[],
        );
        assert_eq!(errors(&c), Vec::<(String, String)>::new());
    }

    #[test]
    fn a_post_body_without_keys_twice_or_embedded_is_refused() {
        for body in [
            r#"{"refs": []}"#,
            r#"{"a": "$keys", "b": "$keys"}"#,
            r#"{"refs": "in($keys)"}"#,
            r#"{"ref": "$key"}"#,
            "{refs: $keys}",
        ] {
            let e = errors(&batch(HttpMethod::Post, Some(body), &[]));
            assert_eq!(keys_of(&e), vec!["rest.batch.body"], "{body}: {e:?}");
        }
    }

    #[test]
    fn a_get_batch_needs_keys_in_exactly_one_query_value_and_no_body() {
        assert!(errors(&batch(HttpMethod::Get, None, &[("refs", "$keys")])).is_empty());
        assert_eq!(
            keys_of(&errors(&batch(
                HttpMethod::Get,
                None,
                &[("format", "complet")]
            ))),
            vec!["rest.batch.query"]
        );
        assert_eq!(
            keys_of(&errors(&batch(
                HttpMethod::Get,
                Some(r#"{"r": "$keys"}"#),
                &[("refs", "$keys")]
            ))),
            vec!["rest.batch.body"]
        );
    }

    #[test]
    fn neither_or_both_endpoints_are_refused() {
        let mut c = batch(HttpMethod::Get, None, &[("refs", "$keys")]);
        c.batch = None;
        assert_eq!(keys_of(&errors(&c)), vec!["rest"]);
        let mut c = batch(HttpMethod::Get, None, &[("refs", "$keys")]);
        c.single = Some(RestSingleConfig {
            path: "/dossiers/{key}".into(),
            query: BTreeMap::new(),
        });
        assert_eq!(keys_of(&errors(&c)), vec!["rest.single"]);
    }

    #[test]
    fn a_single_path_needs_the_key_placeholder_and_a_leading_slash() {
        let mut c = batch(HttpMethod::Get, None, &[]);
        c.batch = None;
        c.single = Some(RestSingleConfig {
            path: "dossiers".into(),
            query: BTreeMap::new(),
        });
        let e = errors(&c);
        assert_eq!(
            keys_of(&e),
            vec!["rest.single.path", "rest.single.path"],
            "{e:?}"
        );
        c.single = Some(RestSingleConfig {
            path: "/dossiers".into(),
            query: [("ref".to_string(), "{key}".to_string())].into(),
        });
        assert!(errors(&c).is_empty());
    }

    #[test]
    fn credentials_and_bad_names_are_refused_in_headers() {
        let mut c = batch(HttpMethod::Get, None, &[("refs", "$keys")]);
        c.headers = [
            ("Authorization".to_string(), "Bearer x".to_string()),
            ("Bad Name".to_string(), "fr".to_string()),
        ]
        .into();
        assert_eq!(
            keys_of(&errors(&c)),
            vec!["rest.headers.Authorization", "rest.headers.Bad Name"]
        );
    }

    #[test]
    fn the_keys_replace_the_placeholder_and_nothing_else() {
        let template =
            json!({"references_onu": "$keys", "inclure": ["accuses", "$keys-not"], "n": 1});
        let filled = fill_body(&template, &["A".into(), "B".into()]);
        assert_eq!(
            filled,
            json!({"references_onu": ["A", "B"], "inclure": ["accuses", "$keys-not"], "n": 1})
        );
    }

    #[test]
    fn a_key_is_encoded_as_one_path_segment() {
        assert_eq!(encode_segment("MINUSMA-2021.01_x~"), "MINUSMA-2021.01_x~");
        assert_eq!(encode_segment("RP 12/2015"), "RP%2012%2F2015");
        assert_eq!(encode_segment("é?#"), "%C3%A9%3F%23");
    }
}
