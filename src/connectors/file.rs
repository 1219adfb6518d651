//! Kind `file` (being written).

use super::error::ConnectorError;
use super::mapping::Mapping;
use super::{Connector, Fetched};
use crate::config::Validation;
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[file]` of a connector file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct FileConfig {
    /// Folder.
    pub folder: String,
}

impl FileConfig {
    /// Checks the settings.
    pub fn validate_into(&self, v: &mut Validation) {
        v.error("kind", "this connector kind is not available in this build");
    }
}

/// A file connector.
pub struct FileConnector;

impl FileConnector {
    /// Builds it.
    pub fn new(_id: &str, _config: FileConfig, _mapping: Mapping, _base: &std::path::Path) -> Result<Self, String> {
        Err("not available in this build".into())
    }
}

#[async_trait]
impl Connector for FileConnector {
    async fn fetch(&self, _keys: &[String]) -> Result<Fetched, ConnectorError> {
        Err(ConnectorError::unavailable("not available in this build"))
    }
    async fn probe(&self) -> Result<(), ConnectorError> {
        Err(ConnectorError::unavailable("not available in this build"))
    }
}
