//! The runtime's configuration file (config/mcp.toml), typed and strict:
//! an unknown key is an error, not a silent default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sandbox::SandboxLimits;

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG: &str = "config/mcp.toml";

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config {path}: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("config {path}: agents.{agent}.{key} must be a string, number or boolean")]
    Setting { path: String, agent: String, key: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Where the embedded log source, the anomaly store and the compile cache live.
    pub data_dir: PathBuf,
    /// The tenant the command-line tools act for.
    pub tenant: String,
    /// Where agent components are discovered; the bundled agents when unset.
    pub agents_dir: Option<PathBuf>,
    /// Where the log schema files are; the repository's config/log_schemas when unset.
    pub schema_dir: Option<PathBuf>,
    /// Entries per agent call.
    pub batch_size: u32,
    /// Limits of every agent instance.
    pub sandbox: SandboxLimits,
    /// Settings per agent name, handed to the agent through the config import.
    pub agents: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// Where this configuration came from, for messages.
    #[serde(skip)]
    pub origin: String,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            data_dir: PathBuf::from("mcp-data"),
            tenant: "default".into(),
            agents_dir: None,
            schema_dir: None,
            batch_size: 1000,
            sandbox: SandboxLimits::default(),
            agents: BTreeMap::new(),
            origin: "built-in defaults".into(),
        }
    }
}

impl McpConfig {
    /// Reads `path`, or config/mcp.toml when it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
            None => return Ok(McpConfig::default()),
        };
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: name.clone(), source })?;
        let mut config: McpConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Parse { path: name.clone(), source })?;
        config.origin = name;
        config.agent_settings_checked()?;
        Ok(config)
    }

    /// Where this configuration came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn agent_settings_checked(&self) -> Result<(), ConfigError> {
        for (agent, settings) in &self.agents {
            for (key, value) in settings {
                if setting_text(value).is_none() {
                    return Err(ConfigError::Setting {
                        path: self.origin.clone(),
                        agent: agent.clone(),
                        key: key.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The settings of `agent`, as the text values the config import serves.
    pub fn settings_for(&self, agent: &str) -> BTreeMap<String, String> {
        self.agents
            .get(agent)
            .map(|settings| settings.iter().filter_map(|(k, v)| setting_text(v).map(|t| (k.clone(), t))).collect())
            .unwrap_or_default()
    }

    /// The schema files this configuration names.
    pub fn schema_files(&self) -> std::sync::Arc<crate::schema::SchemaFiles> {
        let dir = self.schema_dir.clone().unwrap_or_else(|| PathBuf::from(crate::schema::BUNDLED_SCHEMAS));
        std::sync::Arc::new(crate::schema::SchemaFiles::new(&dir))
    }

    pub fn logs_db(&self) -> PathBuf {
        self.data_dir.join("logs.db")
    }

    pub fn anomalies_db(&self) -> PathBuf {
        self.data_dir.join("anomalies.db")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }
}

fn setting_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}
