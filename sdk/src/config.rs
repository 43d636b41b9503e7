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

    /// The value of `key` as a list, or `default` when it is not set. A
    /// TOML list in the operator's config reaches the agent as a JSON array;
    /// a value typed by hand (an environment variable, a tenant's setting
    /// over the API) may also be comma-separated. Items are trimmed, empty
    /// ones dropped, and each parsed as `T`.
    pub fn list_or<T: FromStr>(&self, key: &str, default: Vec<T>) -> Result<Vec<T>, AgentError> {
        let Some(raw) = self.get(key) else { return Ok(default) };
        let invalid = |what: &str| AgentError::Config(format!("setting '{key}' = '{raw}' {what}"));
        let items: Vec<String> = if raw.trim_start().starts_with('[') {
            let values: Vec<serde_json::Value> =
                serde_json::from_str(raw).map_err(|_| invalid("is not a JSON array"))?;
            values
                .into_iter()
                .map(|value| match value {
                    serde_json::Value::String(text) => Ok(text),
                    serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok(value.to_string()),
                    _ => Err(invalid("holds an item that is not a string, number or boolean")),
                })
                .collect::<Result<_, _>>()?
        } else {
            raw.split(',').map(str::to_string).collect()
        };
        items
            .iter()
            .map(|item| item.trim())
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse().map_err(|_| {
                    invalid(&format!("holds '{item}', which is not a valid {}", std::any::type_name::<T>()))
                })
            })
            .collect()
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

    #[test]
    fn lists_come_as_json_arrays_or_comma_separated() {
        let config = Config::from_pairs([
            ("allow", r#"["corp.example", " cdn.example ", ""]"#),
            ("ports", "[53, 853]"),
            ("typed", "53, 853,"),
            ("bad", "[53, \"x\"]"),
            ("nested", "[[1]]"),
            ("broken", "[1,"),
        ]);
        assert_eq!(
            config.list_or::<String>("allow", vec![]).ok(),
            Some(vec!["corp.example".into(), "cdn.example".into()])
        );
        assert_eq!(config.list_or::<u16>("ports", vec![]).ok(), Some(vec![53, 853]));
        assert_eq!(config.list_or::<u16>("typed", vec![]).ok(), Some(vec![53, 853]));
        assert_eq!(config.list_or::<u16>("missing", vec![7]).ok(), Some(vec![7]));
        for key in ["bad", "nested", "broken"] {
            match config.list_or::<u16>(key, vec![]) {
                Err(AgentError::Config(message)) => assert!(message.contains(key), "{message}"),
                other => panic!("{key}: expected a config error, got {other:?}"),
            }
        }
    }
}
