//! What the host offers an agent: logs, models, reporting, logging, config.
//!
//! Every call is checked and scoped by the host to the agent's tenant.

use crate::wit::mcp::agent::{config, log as host_log, logs, model, report as host_report};
use crate::{Finding, LogBatch};

pub use crate::wit::mcp::agent::log::Level;
pub use crate::wit::mcp::agent::logs::LogQuery;
pub use crate::wit::mcp::agent::types::HostError;

/// A model version loaded by the host. Inference runs in the host.
pub type Model = model::LoadedModel;

/// Writes a message to the host's log, tagged with this agent.
pub fn log(level: Level, message: &str) {
    host_log::log(level, message);
}

/// Reads one of this agent's configuration values.
pub fn config(key: &str) -> Option<String> {
    config::get(key)
}

/// Lists this agent's configuration keys.
pub fn config_keys() -> Vec<String> {
    config::keys()
}

/// Fetches a page of logs; an empty batch means there are no more.
pub fn query_logs(query: &LogQuery) -> Result<LogBatch, HostError> {
    logs::query(query)
}

/// Reports findings outside the result of the current call.
pub fn report(found: &[Finding]) -> Result<(), HostError> {
    host_report::report(&crate::findings_of(found))
}

/// A one-line description of a host error.
pub fn describe(error: &HostError) -> String {
    match error {
        HostError::NotFound(m) => format!("not found: {m}"),
        HostError::Denied(m) => format!("denied: {m}"),
        HostError::InvalidArgument(m) => format!("invalid argument: {m}"),
        HostError::LimitExceeded(m) => format!("limit exceeded: {m}"),
        HostError::Unavailable(m) => format!("unavailable: {m}"),
    }
}
