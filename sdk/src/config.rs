//! The agent's configuration, read once from the host.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::AgentError;

/// The operator's settings for this agent, as key and text value.
#[derive(Debug, Clone, Default)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    /// Settings given directly, for tests and native runs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Config { values: pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    /// Reads every setting the host holds for this agent.
    pub fn from_host() -> Self {
        let values = crate::host::config_keys()
            .into_iter()
            .filter_map(|key| crate::host::config(&key).map(|value| (key, value)))
            .collect();
        Config { values }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The value of `key` parsed as `T`, or `default` when it is not set.
    /// A value that does not parse is an [`AgentError::Config`] naming the key.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, AgentError> {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| {
                AgentError::Config(format!("setting '{key}' = '{raw}' is not a valid {}", std::any::type_name::<T>()))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_and_names_bad_ones() {
        let config = Config::from_pairs([("threshold", " 12 "), ("ratio", "x")]);
        assert_eq!(config.parse_or("threshold", 1u32).ok(), Some(12));
        assert_eq!(config.parse_or("missing", 5u32).ok(), Some(5));
        match config.parse_or("ratio", 0.5f32) {
            Err(AgentError::Config(message)) => {
                assert!(message.contains("ratio") && message.contains("'x'"), "{message}")
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
