//! Kind `protocol`: a system that implements the CaseGraph connector protocol
//! (`docs/connector-protocol.md`) directly. Its records are already canonical, so there is no
//! mapping to write: only where the system is and how to authenticate.

pub mod reference;

use super::config::MatchBy;
use super::error::ConnectorError;
use super::mapping::{
    DefendantsMapping, FieldMarkingsMapping, Mapping, MappingConfig, StageHistoryMapping,
};
use super::model::{CaseStage, CourtType, DefendantStatus, FieldMask};
use super::upstream::Upstream;
use super::{Connector, Fetched};
use crate::config::Validation;
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The protocol version this gateway speaks.
pub const PROTOCOL_VERSION: &str = "casegraph-connector/1";

/// `[protocol]` of a connector file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Base URL of the system's protocol endpoints, e.g. "https://justice.example.gov/casegraph/v1".
    /// CaseGraph calls `POST {base_url}/lookup`, `GET {base_url}/capabilities` and
    /// `GET {base_url}/health`.
    pub base_url: String,
}

impl ProtocolConfig {
    /// Checks the URL.
    pub fn validate_into(&self, v: &mut Validation) {
        check_base_url(v, "protocol.base_url", &self.base_url);
    }
}

/// Checks that a base URL is http(s), and https unless it is a loopback address.
pub(crate) fn check_base_url(v: &mut Validation, key: &str, url: &str) {
    let Some((scheme, rest)) = url.split_once("://") else {
        v.error(
            key,
            "must be a URL such as \"https://justice.example.gov/api\"",
        );
        return;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let hostname = if host.starts_with('[') {
        host.split(']').next().map_or(host, |h| &h[1..])
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if hostname.is_empty() {
        v.error(key, "has no host");
        return;
    }
    let loopback = matches!(hostname, "127.0.0.1" | "localhost" | "::1");
    match scheme {
        "https" => {}
        "http" if loopback => {}
        "http" => v.error(
            key,
            "must use https:// (plain http is accepted only for 127.0.0.1 and localhost)",
        ),
        _ => v.error(key, format!("scheme `{scheme}` is not http or https")),
    }
}

/// The mapping of canonical protocol records: every table maps a canonical value to itself.
pub fn canonical_mapping() -> Mapping {
    Mapping::new(MappingConfig {
        records: String::new(),
        key: "/key".into(),
        national_reference: Some("/national_reference".into()),
        authority: Some("/authority".into()),
        stage: Some("/stage".into()),
        national_stage: Some("/national_stage".into()),
        stage_history: Some(StageHistoryMapping {
            list: "/stage_history".into(),
            stage: "/stage".into(),
            date: "/date".into(),
        }),
        court_name: Some("/court/name".into()),
        court_type: Some("/court/type".into()),
        charges: Some("/charges".into()),
        charge_label: None,
        defendants: Some(DefendantsMapping {
            list: "/defendants".into(),
            name: Some("/name".into()),
            status: Some("/status".into()),
            national_status: Some("/national_status".into()),
            in_absentia: Some("/in_absentia".into()),
            verdict: Some("/verdict".into()),
            sentence: Some("/sentence".into()),
            marking: Some("/marking".into()),
        }),
        next_hearing: Some("/next_hearing".into()),
        updated_at: Some("/updated_at".into()),
        marking: Some("/marking".into()),
        field_markings: FieldMarkingsMapping {
            national_reference: Some("/field_markings/national_reference".into()),
            authority: Some("/field_markings/authority".into()),
            stage: Some("/field_markings/stage".into()),
            stage_history: Some("/field_markings/stage_history".into()),
            court: Some("/field_markings/court".into()),
            charges: Some("/field_markings/charges".into()),
            defendants: Some("/field_markings/defendants".into()),
            next_hearing: Some("/field_markings/next_hearing".into()),
            updated_at: Some("/field_markings/updated_at".into()),
        },
        stages: CaseStage::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), *s))
            .collect(),
        defendant_statuses: DefendantStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), *s))
            .collect(),
        court_types: CourtType::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), *s))
            .collect(),
    })
}

/// Whether a record member belongs to a lookup for `fields`: `key` and `marking` always,
/// `field_markings` (whose entries are cut separately), `national_stage` with `stage`, and the
/// members named by the mask.
fn member_asked(member: &str, fields: FieldMask) -> bool {
    match member {
        "key" | "marking" | "field_markings" => true,
        "national_stage" => fields.has(FieldMask::STAGE),
        other => FieldMask::bit_of(other).is_some_and(|bit| fields.has(bit)),
    }
}

/// Cuts a record down to what a lookup for `fields` asked for (see [`member_asked`]; entries
/// of `field_markings` only for the fields asked). A server that ignores `fields` and answers
/// everything costs bandwidth only: the rest goes no further than this function.
pub fn strip_to_fields(record: &mut Value, fields: FieldMask) {
    let Value::Object(members) = record else {
        return;
    };
    members.retain(|member, _| member_asked(member, fields));
    if let Some(Value::Object(markings)) = members.get_mut("field_markings") {
        markings.retain(|name, _| FieldMask::bit_of(name).is_some_and(|bit| fields.has(bit)));
    }
}

/// A protocol client.
pub struct ProtocolConnector {
    config: ProtocolConfig,
    match_by: MatchBy,
    upstream: Upstream,
}

impl ProtocolConnector {
    /// A client for `config`.
    pub fn new(config: ProtocolConfig, match_by: MatchBy, upstream: Upstream) -> Self {
        Self {
            config,
            match_by,
            upstream,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url.trim_end_matches('/'))
    }
}

fn match_by_str(m: MatchBy) -> &'static str {
    match m {
        MatchBy::UnReference => "un_reference",
        MatchBy::NationalReference => "national_reference",
    }
}

#[async_trait]
impl Connector for ProtocolConnector {
    async fn fetch(&self, keys: &[String]) -> Result<Fetched, ConnectorError> {
        self.fetch_fields(keys, FieldMask::ALL).await
    }

    fn selects_fields(&self) -> bool {
        true
    }

    async fn fetch_fields(
        &self,
        keys: &[String],
        fields: FieldMask,
    ) -> Result<Fetched, ConnectorError> {
        let url = self.url("lookup");
        let body = json!({ "match_by": match_by_str(self.match_by), "keys": keys, "fields": fields.names() });
        let reply = self
            .upstream
            .send_json(&|c: &reqwest::Client| c.post(&url).json(&body))
            .await?;
        if reply.status != 200 {
            return Err(ConnectorError::bad_response(format!(
                "POST /lookup answered HTTP {}",
                reply.status
            )));
        }
        let mut records = match reply.body.get("records") {
            Some(Value::Array(items)) => items.clone(),
            _ => {
                return Err(ConnectorError::bad_response(
                    "POST /lookup answered without a `records` array",
                ))
            }
        };
        // The gateway keeps nothing it did not ask for, whatever the server sent.
        for record in &mut records {
            strip_to_fields(record, fields);
        }
        // `connector test` asks for everything and shows the answer as the server sent it; a
        // narrower lookup keeps no copy of what it did not ask for.
        let raw = if fields == FieldMask::ALL {
            reply.body
        } else {
            json!({ "records": records.clone() })
        };
        Ok(Fetched {
            raw,
            records,
            incomplete: None,
        })
    }

    async fn probe(&self) -> Result<(), ConnectorError> {
        let url = self.url("health");
        let reply = self
            .upstream
            .send_json(&|c: &reqwest::Client| c.get(&url))
            .await?;
        match reply.body.get("status").and_then(Value::as_str) {
            Some("ok") if reply.status == 200 => Ok(()),
            _ => Err(ConnectorError::unavailable(format!(
                "GET /health answered HTTP {} without status \"ok\"",
                reply.status
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_cut_down_to_the_members_and_markings_of_the_fields_asked() {
        let mut record = json!({
            "key": "UNMISS-20240305", "marking": "RESTRICTED", "national_reference": "SSD/1",
            "stage": "CHARGED", "national_stage": "Committed", "charges": ["murder"],
            "defendants": [{"name": "D1", "marking": "CONFIDENTIAL"}], "x_internal": 7,
            "field_markings": {"charges": "CONFIDENTIAL", "national_reference": "SECRET"}
        });
        strip_to_fields(
            &mut record,
            FieldMask(FieldMask::STAGE | FieldMask::DEFENDANTS),
        );
        assert_eq!(
            record,
            json!({
                "key": "UNMISS-20240305", "marking": "RESTRICTED", "stage": "CHARGED",
                "national_stage": "Committed", "defendants": [{"name": "D1", "marking": "CONFIDENTIAL"}],
                "field_markings": {}
            })
        );
        let mut everything = json!({"key": "K", "court": {"name": "C"}, "x_internal": 7});
        strip_to_fields(&mut everything, FieldMask::ALL);
        assert_eq!(
            everything,
            json!({"key": "K", "court": {"name": "C"}}),
            "members the protocol does not define are never kept"
        );
    }
}
