//! Configuration: load → expand `${env.X}` → validate (all errors, with file:line) → typed structs.
//!
//! [`load_toml`] is the generic pipeline (connector files reuse it); the functions here apply it
//! to the gateway's own [`Config`].

use std::path::Path;

mod load;
pub mod model;
mod validate;

pub use load::{load_toml, load_toml_checked, ConfigError, ConfigErrors, Validate, Validation};
pub use model::*;

/// The demo configuration compiled into the binary, used when no file is given and
/// `config/casegraph.toml` does not exist in the working directory.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/casegraph.toml");

/// Where [`load_default_or`] looks, relative to the working directory, when no path is given.
pub const DEFAULT_PATH: &str = "config/casegraph.toml";

/// Load and validate the gateway configuration at `path`.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| ConfigErrors {
        file: label.clone(),
        errors: vec![ConfigError::whole_file(
            &label,
            format!("cannot read the file: {err}"),
        )],
    })?;
    load_str(&text, &label)
}

/// Load and validate the gateway configuration from `text`; `label` names the file in messages.
pub fn load_str(text: &str, label: &str) -> Result<Config, ConfigErrors> {
    load_toml(text, label)
}

/// Load `path` if given; else `config/casegraph.toml` in the working directory if it exists; else
/// the embedded demo default. Also returns where the configuration came from, for the start log.
pub fn load_default_or(path: Option<&Path>) -> Result<(Config, String), ConfigErrors> {
    match path {
        Some(path) => Ok((load_file(path)?, path.display().to_string())),
        None if Path::new(DEFAULT_PATH).exists() => {
            Ok((load_file(Path::new(DEFAULT_PATH))?, DEFAULT_PATH.to_owned()))
        }
        None => {
            let label = format!("{DEFAULT_PATH} (embedded default)");
            Ok((load_str(EMBEDDED_DEFAULT, &label)?, label))
        }
    }
}

/// The JSON Schema of [`Config`], printed by `casegraph config-schema` for editors.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(Config).to_value()
}
