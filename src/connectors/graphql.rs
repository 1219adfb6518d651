//! Kind `graphql`: a national GraphQL API, asked with one query document per batch of keys.
//!
//! # For host-state IT staff
//!
//! Write the query your API answers, with a variable that receives the list of keys (the UN
//! case references or the national references, depending on `match_by`). CaseGraph sends it
//! unchanged with `POST` to `endpoint`, as `{"query": …, "variables": {…}}`, with up to
//! `[runtime] batch_size` keys per call. `[mapping] records` points into the whole answer,
//! e.g. "/data/dossiers".
//!
//! ```toml
//! kind = "graphql"
//! [graphql]
//! endpoint = "https://justice.gouv.cd/graphql"
//! query = """
//! query Dossiers($refs: [String!]!, $langue: String) {
//!   dossiers(referencesOnu: $refs, langue: $langue) { referenceOnu numero etape }
//! }"""
//! keys_variable = "refs"
//! [graphql.variables]
//! langue = "fr"
//! [mapping]
//! records = "/data/dossiers"
//! key = "/referenceOnu"
//! ```
//!
//! The document holds one `query` (connectors only read: a `mutation` or `subscription` is
//! refused). If the API answers with `errors` and no `data`, the lookup fails with the first
//! error's message; if it answers with both, CaseGraph uses the data and logs a warning.

use super::error::ConnectorError;
use super::mapping::Mapping;
use super::protocol::check_base_url;
use super::upstream::Upstream;
use super::{Connector, Fetched};
use crate::config::Validation;
use async_graphql::parser::types::{BaseType, DocumentOperations, OperationType};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Longest upstream error message repeated in a CaseGraph error.
const MAX_ERROR_CHARS: usize = 200;

/// `[graphql]` of a connector file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Address of the GraphQL API, e.g. "https://justice.gouv.cd/graphql". Must start with
    /// https:// (plain http:// is accepted only for 127.0.0.1 and localhost).
    pub endpoint: String,
    /// The query document, sent unchanged. It holds one `query` operation that declares the
    /// variable named by `keys_variable` as a list, e.g.
    /// "query Dossiers($refs: [String!]!) { dossiers(referencesOnu: $refs) { referenceOnu etape } }".
    pub query: String,
    /// Name of the variable that receives the list of keys, without the `$`, e.g. "refs".
    pub keys_variable: String,
    /// Other variables sent with every query, as name = value, e.g. `langue = "fr"`. Each must
    /// be declared in the query.
    #[serde(default)]
    pub variables: BTreeMap<String, Value>,
}

impl GraphqlConfig {
    /// The keys variable, without a `$` the file may have written.
    fn keys_variable(&self) -> &str {
        self.keys_variable.trim().trim_start_matches('$')
    }

    /// Checks the settings (no I/O); errors are keyed under `graphql.`.
    pub fn validate_into(&self, v: &mut Validation) {
        check_base_url(v, "graphql.endpoint", &self.endpoint);
        let keys_variable = self.keys_variable();
        if !is_graphql_name(keys_variable) {
            v.error(
                "graphql.keys_variable",
                "must be a GraphQL variable name (letters, digits and `_`), e.g. \"refs\"",
            );
        }
        if self.variables.contains_key(keys_variable) {
            v.error(
                &format!("graphql.variables.{keys_variable}"),
                "is the keys variable: CaseGraph fills it with the keys; remove it here",
            );
        }
        if self.query.trim().is_empty() {
            v.error("graphql.query", "must not be empty");
            return;
        }
        let document = match async_graphql::parser::parse_query(&self.query) {
            Ok(d) => d,
            Err(e) => {
                v.error(
                    "graphql.query",
                    format!("is not a valid GraphQL document: {e}"),
                );
                return;
            }
        };
        let operation = match &document.operations {
            DocumentOperations::Single(op) => &op.node,
            DocumentOperations::Multiple(ops) if ops.len() == 1 => match ops.values().next() {
                Some(op) => &op.node,
                None => return,
            },
            DocumentOperations::Multiple(ops) => {
                v.error(
                    "graphql.query",
                    format!("holds {} operations; keep exactly one `query`", ops.len()),
                );
                return;
            }
        };
        match operation.ty {
            OperationType::Query => {}
            OperationType::Mutation | OperationType::Subscription => v.error(
                "graphql.query",
                format!(
                    "is a {}: connectors only read, write a `query` operation",
                    operation.ty
                ),
            ),
        }
        let declared = &operation.variable_definitions;
        match declared.iter().find(|d| d.node.name.node.as_str() == keys_variable) {
            None => v.error(
                "graphql.query",
                format!("does not declare `${keys_variable}` (keys_variable): add it, e.g. `query Dossiers(${keys_variable}: [String!]!)`"),
            ),
            Some(d) if !matches!(d.node.var_type.node.base, BaseType::List(_)) => v.error(
                "graphql.query",
                format!("declares `${keys_variable}` as {}: it receives the list of keys, so declare it as a list, e.g. [String!]!", d.node.var_type.node),
            ),
            Some(_) => {}
        }
        for name in self.variables.keys() {
            if name != keys_variable && !declared.iter().any(|d| d.node.name.node.as_str() == name)
            {
                v.error(
                    &format!("graphql.variables.{name}"),
                    format!("the query does not declare `${name}`"),
                );
            }
        }
        for d in declared {
            let name = d.node.name.node.as_str();
            let required = !d.node.var_type.node.nullable && d.node.default_value.is_none();
            if required && name != keys_variable && !self.variables.contains_key(name) {
                v.error(
                    "graphql.variables",
                    format!("the query requires `${name}`: give its value here"),
                );
            }
        }
    }
}

fn is_graphql_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The first `max` characters of `s`, with "…" when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// The message of the first GraphQL error, shortened.
fn first_error_message(errors: &[Value]) -> String {
    errors
        .first()
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map_or_else(
            || "(no message)".to_string(),
            |m| truncate(m, MAX_ERROR_CHARS),
        )
}

/// A client for a national GraphQL API.
pub struct GraphqlConnector {
    id: String,
    config: GraphqlConfig,
    mapping: Mapping,
    upstream: Upstream,
}

impl GraphqlConnector {
    /// A client for `config` (already validated by [`GraphqlConfig::validate_into`]).
    pub fn new(config: GraphqlConfig, mapping: Mapping, upstream: Upstream) -> Self {
        Self {
            id: upstream.connector_id().to_string(),
            config,
            mapping,
            upstream,
        }
    }

    /// Sends one document; a status other than 200 or an answer that is not a GraphQL
    /// response object is an error.
    async fn post(&self, body: &Value) -> Result<Map<String, Value>, ConnectorError> {
        let endpoint = &self.config.endpoint;
        // Plain JSON, not application/graphql-response+json: servers then answer GraphQL
        // errors with 200 and a message, which the error below can repeat.
        let reply = self
            .upstream
            .send_json(&|c: &reqwest::Client| {
                c.post(endpoint)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .json(body)
            })
            .await?;
        if reply.status != 200 {
            return Err(ConnectorError::bad_response(format!(
                "connector `{}`: the GraphQL endpoint answered HTTP {}; check graphql.endpoint",
                self.id, reply.status
            )));
        }
        match reply.body {
            Value::Object(map) => Ok(map),
            _ => Err(ConnectorError::bad_response(format!(
                "connector `{}`: the answer is not a GraphQL response object",
                self.id
            ))),
        }
    }
}

#[async_trait]
impl Connector for GraphqlConnector {
    #[tracing::instrument(name = "graphql_fetch", skip_all, fields(connector = %self.id, keys = keys.len()))]
    async fn fetch(&self, keys: &[String]) -> Result<Fetched, ConnectorError> {
        let mut variables: Map<String, Value> = self
            .config
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        variables.insert(self.config.keys_variable().to_string(), json!(keys));
        let body = json!({ "query": self.config.query, "variables": variables });
        let response = self.post(&body).await?;
        let errors = match response.get("errors") {
            Some(Value::Array(errors)) => errors.as_slice(),
            _ => &[],
        };
        let has_data = response.get("data").is_some_and(|d| !d.is_null());
        tracing::debug!(connector = %self.id, keys = keys.len(), errors = errors.len(), has_data, "GraphQL lookup answered");
        if !errors.is_empty() {
            let message = first_error_message(errors);
            if !has_data {
                return Err(ConnectorError::bad_response(format!(
                    "connector `{}`: the GraphQL API answered with errors and no data: {message}",
                    self.id
                )));
            }
            tracing::warn!(connector = %self.id, errors = errors.len(), first = %message, "GraphQL API answered partial data with errors; using the data");
        }
        let raw = Value::Object(response);
        let records = self
            .mapping
            .records(&raw)
            .map_err(|e| ConnectorError::bad_response(format!("connector `{}`: {e}", self.id)))?
            .into_iter()
            .cloned()
            .collect();
        Ok(Fetched {
            raw,
            records,
            incomplete: None,
        })
    }

    async fn probe(&self) -> Result<(), ConnectorError> {
        let response = self
            .post(&json!({ "query": "query { __typename }" }))
            .await?;
        match response.get("data") {
            Some(Value::Object(_)) => Ok(()),
            _ => Err(ConnectorError::unavailable(format!(
                "connector `{}`: the GraphQL endpoint did not answer `{{ __typename }}` with data",
                self.id
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(query: &str) -> GraphqlConfig {
        GraphqlConfig {
            endpoint: "https://justice.gouv.cd/graphql".into(),
            query: query.into(),
            keys_variable: "refs".into(),
            variables: BTreeMap::new(),
        }
    }

    fn errors(c: &GraphqlConfig) -> Vec<(String, String)> {
        let mut v = Validation::new();
        c.validate_into(&mut v);
        v.errors().to_vec()
    }

    #[test]
    fn a_query_declaring_the_keys_list_is_accepted() {
        let c = config(
            "query Dossiers($refs: [String!]!) { dossiers(referencesOnu: $refs) { referenceOnu } }",
        );
        assert_eq!(errors(&c), Vec::<(String, String)>::new());
    }

    #[test]
    fn a_mutation_is_refused_because_connectors_only_read() {
        let e = errors(&config(
            "mutation Clore($refs: [String!]!) { clore(refs: $refs) { ok } }",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "graphql.query");
        assert!(e[0].1.contains("mutation"), "{e:?}");
    }

    #[test]
    fn a_document_that_does_not_parse_or_lacks_the_variable_is_refused() {
        let e = errors(&config("query { dossiers( }"));
        assert!(
            e[0].1.starts_with("is not a valid GraphQL document"),
            "{e:?}"
        );
        let e = errors(&config(
            "query Dossiers($ids: [String!]!) { dossiers(ids: $ids) { id } }",
        ));
        assert!(e[0].1.contains("does not declare `$refs`"), "{e:?}");
        let e = errors(&config(
            "query Dossier($refs: String!) { dossier(ref: $refs) { id } }",
        ));
        assert!(e[0].1.contains("as a list"), "{e:?}");
    }

    #[test]
    fn static_variables_must_be_declared_and_required_ones_given() {
        let mut c = config(
            "query D($refs: [String!]!, $langue: String!) { d(r: $refs, l: $langue) { id } }",
        );
        c.variables
            .insert("pays".into(), Value::String("COD".into()));
        let keys: Vec<String> = errors(&c).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["graphql.variables.pays", "graphql.variables"]);
    }

    #[test]
    fn long_error_messages_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("é".repeat(250).as_str(), 200).chars().count(), 201);
        assert_eq!(truncate("court", 200), "court");
    }
}
