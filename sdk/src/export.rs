//! The glue between an [`Agent`] and the exported `detector` interface.

use std::marker::PhantomData;

use crate::wit::exports::mcp::agent::detector::Guest;
use crate::{
    Agent, AgentError, AgentInfo, Batch, BatchBuilder, Features, Finding, Findings, InferenceResult, InvalidEntry,
    LogBatch, LogEntry,
};

/// Gives the export glue the one agent value of this instance.
/// [`export_agent!`](crate::export_agent) implements it; do not implement it by hand.
pub trait AgentCell: Agent {
    /// Runs `f` with the instance's agent, creating and configuring it on
    /// first use.
    fn with_agent<R>(f: impl FnOnce(&mut Self) -> Result<R, AgentError>) -> Result<R, AgentError>;
}

/// Checks `batch` and runs `agent` over it. The export glue calls this;
/// benchmarks and tests call it natively.
pub fn run_batch<A: Agent>(agent: &mut A, batch: &LogBatch) -> Result<Vec<Finding>, AgentError> {
    check_log_type::<A>(&batch.log_type)?;
    if batch.ids.is_empty() {
        return Ok(Vec::new());
    }
    agent.detect(&Batch::new(batch)?)
}

/// Packs single entries of one log type into a batch, as the host does.
pub fn batch_from_entries(log_type: &str, schema_version: u32, entries: &[LogEntry]) -> Result<LogBatch, AgentError> {
    let mut builder = BatchBuilder::new(log_type, schema_version);
    for entry in entries {
        builder
            .push_json(entry.id, entry.timestamp_ms, &entry.source, &entry.fields)
            .map_err(|reason| AgentError::InvalidEntry(InvalidEntry { log_id: entry.id, reason }))?;
    }
    Ok(builder.finish())
}

fn check_log_type<A: Agent>(log_type: &str) -> Result<(), AgentError> {
    // `info()` builds a dozen strings; remember each agent type's log type
    // instead of paying that on every batch.
    thread_local! {
        static LOG_TYPES: std::cell::RefCell<Vec<(std::any::TypeId, String)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let id = std::any::TypeId::of::<A>();
    let matches = LOG_TYPES.with(|cell| {
        let mut known = cell.borrow_mut();
        if let Some((_, expected)) = known.iter().find(|(t, _)| *t == id) {
            return expected == log_type;
        }
        let expected = A::info().log_type;
        let matches = expected == log_type;
        known.push((id, expected));
        matches
    });
    if matches {
        return Ok(());
    }
    let info = A::info();
    Err(AgentError::UnsupportedLogType(format!(
        "agent {} handles '{}' logs, not '{}'",
        info.name, info.log_type, log_type
    )))
}

fn single(entry: &LogEntry) -> Result<LogBatch, AgentError> {
    batch_from_entries(&entry.log_type, 1, std::slice::from_ref(entry))
}

/// Implements the exported interface for any agent type.
#[doc(hidden)]
pub struct Adapter<A>(PhantomData<A>);

impl<A: AgentCell> Guest for Adapter<A> {
    fn info() -> AgentInfo {
        A::info()
    }

    fn load_model(name: String, version: Option<String>) -> Result<String, AgentError> {
        A::with_agent(|agent| agent.load_model(&name, version.as_deref()))
    }

    fn extract_features(entry: LogEntry) -> Result<Features, AgentError> {
        check_log_type::<A>(&entry.log_type)?;
        let batch = single(&entry)?;
        A::with_agent(|agent| agent.extract_features(&Batch::new(&batch)?, 0))
    }

    fn infer(features: Features) -> Result<InferenceResult, AgentError> {
        A::with_agent(|agent| agent.infer(&features))
    }

    fn detect(entry: LogEntry) -> Result<Findings, AgentError> {
        check_log_type::<A>(&entry.log_type)?;
        let batch = single(&entry)?;
        let found = A::with_agent(|agent| run_batch(agent, &batch))?;
        Ok(crate::findings_of(&found))
    }

    fn detect_batch(batch: LogBatch) -> Result<Findings, AgentError> {
        let found = A::with_agent(|agent| run_batch(agent, &batch))?;
        Ok(crate::findings_of(&found))
    }
}

/// Exports an [`Agent`] type as the component's `detector` interface.
///
/// Use it once per crate, at the top level, with the agent type.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        impl $crate::AgentCell for $agent {
            fn with_agent<R>(
                f: impl FnOnce(&mut Self) -> ::std::result::Result<R, $crate::AgentError>,
            ) -> ::std::result::Result<R, $crate::AgentError> {
                ::std::thread_local! {
                    static AGENT: ::std::cell::RefCell<Option<$agent>> =
                        const { ::std::cell::RefCell::new(None) };
                }
                AGENT.with(|cell| {
                    let mut slot = cell.borrow_mut();
                    if slot.is_none() {
                        let mut agent = <$agent as ::std::default::Default>::default();
                        $crate::Agent::configure(&mut agent, &$crate::Config::from_host())?;
                        *slot = Some(agent);
                    }
                    match slot.as_mut() {
                        Some(agent) => f(agent),
                        None => Err($crate::AgentError::Internal("agent state missing".into())),
                    }
                })
            }
        }

        #[doc(hidden)]
        type __McpExportedAgent = $crate::export::Adapter<$agent>;
        $crate::wit::__export_agent_world!(__McpExportedAgent with_types_in $crate::wit);
    };
}
