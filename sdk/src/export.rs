//! The glue between an [`Agent`] and the exported `detector` interface.

use std::marker::PhantomData;

use crate::wit::exports::mcp::agent::detector::Guest;
use crate::{
    Agent, AgentError, AgentInfo, Batch, BatchBuilder, FeatureTable, Finding, Findings, InvalidEntry, LogBatch,
    LogEntry, TextColumn,
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

/// Implements the exported interface for any agent type.
#[doc(hidden)]
pub struct Adapter<A>(PhantomData<A>);

impl<A: AgentCell> Guest for Adapter<A> {
    fn info() -> AgentInfo {
        A::info()
    }

    fn detect_batch(batch: LogBatch) -> Result<Findings, AgentError> {
        let found = A::with_agent(|agent| run_batch(agent, &batch))?;
        Ok(crate::findings_of(&found))
    }

    fn extract_features(batch: LogBatch) -> Result<FeatureTable, AgentError> {
        check_log_type::<A>(&batch.log_type)?;
        A::with_agent(|agent| feature_table(agent, &batch))
    }

    fn snapshot() -> Result<Vec<u8>, AgentError> {
        A::with_agent(|agent| agent.snapshot())
    }

    fn restore(state: Vec<u8>) -> Result<(), AgentError> {
        A::with_agent(|agent| agent.restore(&state))
    }
}

/// The features of every entry of `batch`, row by row; every row must
/// have the first row's names.
pub fn feature_table<A: Agent>(agent: &mut A, batch: &LogBatch) -> Result<FeatureTable, AgentError> {
    let mut table =
        FeatureTable { names: TextColumn { data: String::new(), ends: Vec::new() }, rows: 0, values: Vec::new() };
    if batch.ids.is_empty() {
        return Ok(table);
    }
    let reader = Batch::new(batch)?;
    for index in 0..batch.ids.len() {
        let features = agent.extract_features(&reader, index)?;
        if index == 0 {
            table.names = features.names;
        } else if features.names.data != table.names.data || features.names.ends != table.names.ends {
            return Err(AgentError::Internal(format!("entry {index} has other feature names than the first")));
        }
        if features.values.len() != table.names.ends.len() {
            return Err(AgentError::Internal(format!(
                "entry {index} has {} feature values for {} names",
                features.values.len(),
                table.names.ends.len()
            )));
        }
        table.values.extend(features.values);
        table.rows += 1;
    }
    Ok(table)
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
