//! Kind `graphql` (being written).

use super::error::ConnectorError;
use super::mapping::Mapping;
use super::upstream::Upstream;
use super::{Connector, Fetched};
use crate::config::Validation;
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[graphql]` of a connector file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct GraphqlConfig {
    /// Base URL.
    pub base_url: String,
}

impl GraphqlConfig {
    /// Checks the settings.
    pub fn validate_into(&self, v: &mut Validation) {
        v.error("kind", "this connector kind is not available in this build");
    }
}

/// A graphql connector.
pub struct GraphqlConnector;

impl GraphqlConnector {
    /// Builds it.
    pub fn new(_config: GraphqlConfig, _mapping: Mapping, _upstream: Upstream) -> Self {
        Self
    }
}

#[async_trait]
impl Connector for GraphqlConnector {
    async fn fetch(&self, _keys: &[String]) -> Result<Fetched, ConnectorError> {
        Err(ConnectorError::unavailable("not available in this build"))
    }
    async fn probe(&self) -> Result<(), ConnectorError> {
        Err(ConnectorError::unavailable("not available in this build"))
    }
}
