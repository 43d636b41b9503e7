//! What an agent may reach through the host: the log types `logs.query`
//! serves it, the models `model.load` serves it, the setting keys its
//! `config` import shows. A bundled agent is granted what its info declares
//! (its log type, its own models, every setting); a tenant's upload gets
//! the manifest its tenant admin approved.

use serde::{Deserialize, Serialize};

use crate::AgentInfo;

/// Most log types, models and settings one grant may name.
pub const MAX_GRANTED_LOG_TYPES: usize = 8;
pub const MAX_GRANTED_MODELS: usize = 8;
pub const MAX_GRANTED_SETTINGS: usize = 256;

/// One agent's grant (its manifest, once approved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Log types `logs.query` serves; the agent's own is always among them.
    pub log_types: Vec<String>,
    /// Model names `model.load` serves.
    #[serde(default)]
    pub models: Vec<String>,
    /// Setting keys the `config` import shows; absent: every key.
    #[serde(default)]
    pub settings: Option<Vec<String>>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Grant {
    /// What a bundled agent gets: its own log type, its own models, every setting.
    pub fn of_info(info: &AgentInfo) -> Self {
        Grant { log_types: vec![info.log_type.clone()], models: vec![info.name.clone()], settings: None }
    }

    /// What an upload asks for when it declares no manifest: its own log
    /// type, no model, every setting.
    pub fn requested_by_default(info: &AgentInfo) -> Self {
        Grant { log_types: vec![info.log_type.clone()], models: Vec::new(), settings: None }
    }

    /// Checks a manifest for `info`'s agent: well-formed names, bounded
    /// lists, and the agent's own log type among those it reads.
    pub fn check(&self, info: &AgentInfo) -> Result<(), String> {
        if !self.log_types.contains(&info.log_type) {
            return Err(format!("log_types must include the agent's own log type '{}'", info.log_type));
        }
        if self.log_types.len() > MAX_GRANTED_LOG_TYPES || self.models.len() > MAX_GRANTED_MODELS {
            return Err(format!("at most {MAX_GRANTED_LOG_TYPES} log types and {MAX_GRANTED_MODELS} models"));
        }
        if let Some(bad) = self.log_types.iter().chain(&self.models).find(|n| !valid_name(n)) {
            return Err(format!("'{}' is not 1 to 64 of a-z, 0-9, '-' and '_'", bad.escape_debug()));
        }
        if let Some(settings) = &self.settings {
            if settings.len() > MAX_GRANTED_SETTINGS {
                return Err(format!("at most {MAX_GRANTED_SETTINGS} settings"));
            }
            // The rule a tenant's setting names follow (PATCH /v1/config).
            let plain = |k: &String| {
                !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            if let Some(bad) = settings.iter().find(|k| !plain(k)) {
                return Err(format!(
                    "setting key '{}' must be 1 to 64 of A-Z, a-z, 0-9, '_' and '-'",
                    bad.escape_debug()
                ));
            }
        }
        Ok(())
    }

    pub fn reads(&self, log_type: &str) -> bool {
        self.log_types.iter().any(|t| t == log_type)
    }

    pub fn loads(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
    }

    pub fn shows(&self, setting: &str) -> bool {
        self.settings.as_ref().is_none_or(|keys| keys.iter().any(|k| k == setting))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SchemaSupport;

    fn info() -> AgentInfo {
        AgentInfo {
            name: "probe".into(),
            log_type: "wifi".into(),
            agent_version: "1".into(),
            protocol_version: "0.2.0".into(),
            description: String::new(),
            schema: SchemaSupport { log_type: "wifi".into(), min_version: 1, max_version: 1, required_fields: vec![] },
        }
    }

    #[test]
    fn a_manifest_must_name_its_own_log_type_and_well_formed_names() {
        let ok =
            Grant { log_types: vec!["wifi".into(), "dns".into()], models: vec![], settings: Some(vec!["mode".into()]) };
        assert_eq!(ok.check(&info()), Ok(()));
        assert!(ok.shows("mode") && !ok.shows("secret") && ok.reads("dns") && !ok.loads("dns"));
        let without_own = Grant { log_types: vec!["dns".into()], ..ok.clone() };
        assert!(without_own.check(&info()).is_err_and(|e| e.contains("own log type")));
        let traversal = Grant { models: vec!["../dns".into()], ..ok.clone() };
        assert!(traversal.check(&info()).is_err_and(|e| e.contains("../dns")));
        assert!(Grant::of_info(&info()).shows("anything"));
    }
}
