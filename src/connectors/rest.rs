//! Kind `rest` (being written).

use super::error::ConnectorError;
use super::mapping::Mapping;
use super::upstream::Upstream;
use super::{Connector, Fetched};
use crate::config::Validation;
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[rest]` of a connector file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct RestConfig {
    /// Base URL.
    pub base_url: String,
}

impl RestConfig {
    /// Checks the settings.
    pub fn validate_into(&self, v: &mut Validation) {
        v.error("kind", "this connector kind is not available in this build");
    }
}

/// A rest connector.
pub struct RestConnector;

impl RestConnector {
    /// Builds it.
    pub fn new(_config: RestConfig, _mapping: Mapping, _upstream: Upstream) -> Self {
        Self
    }
}

#[async_trait]
impl Connector for RestConnector {
    async fn fetch(&self, _keys: &[String]) -> Result<Fetched, ConnectorError> {
        Err(ConnectorError::unavailable("not available in this build"))
    }
    async fn probe(&self) -> Result<(), ConnectorError> {
        Err(ConnectorError::unavailable("not available in this build"))
    }
}
