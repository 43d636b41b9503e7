//! What an agent says about itself, in the host's own types, whatever the
//! protocol version it was built against.

use crate::bindings::{v1, v2};

/// The protocol versions this host serves, oldest first; the last is
/// [`mcp_columns::PROTOCOL_VERSION`].
pub const PROTOCOL_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// Which protocol a component was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// `mcp:agent@0.1.0`: single-entry exports, no state.
    V0_1,
    /// `mcp:agent@0.2.0`: batch exports and state snapshots.
    V0_2,
}

impl Protocol {
    /// The version of a `mcp:agent/detector@VERSION` export, if served.
    pub fn of_version(version: &str) -> Option<Self> {
        match version {
            "0.1.0" => Some(Protocol::V0_1),
            "0.2.0" => Some(Protocol::V0_2),
            _ => None,
        }
    }

    /// The package version.
    pub fn version(self) -> &'static str {
        match self {
            Protocol::V0_1 => "0.1.0",
            Protocol::V0_2 => "0.2.0",
        }
    }

    /// Whether an agent of this version can give and take back its state.
    pub fn has_state(self) -> bool {
        self >= Protocol::V0_2
    }
}

/// The log schema versions an agent reads and the fields it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSupport {
    pub log_type: String,
    pub min_version: u32,
    pub max_version: u32,
    pub required_fields: Vec<String>,
}

/// Static facts about an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    pub name: String,
    pub log_type: String,
    pub agent_version: String,
    /// What its info says; the registry checks it against its exports.
    pub protocol_version: String,
    pub description: String,
    pub schema: SchemaSupport,
}

macro_rules! info_from {
    ($module:ident) => {
        impl TryFrom<$module::AgentInfo> for AgentInfo {
            type Error = String;

            fn try_from(info: $module::AgentInfo) -> Result<Self, String> {
                let fields = &info.schema.required_fields;
                let required_fields = mcp_columns::texts_in(&fields.data, &fields.ends)
                    .ok_or_else(|| "required fields are not a well-formed text column".to_string())?;
                Ok(AgentInfo {
                    name: info.name,
                    log_type: info.log_type,
                    agent_version: info.agent_version,
                    protocol_version: info.protocol_version,
                    description: info.description,
                    schema: SchemaSupport {
                        log_type: info.schema.log_type,
                        min_version: info.schema.min_version,
                        max_version: info.schema.max_version,
                        required_fields,
                    },
                })
            }
        }
    };
}

info_from!(v1);
info_from!(v2);
