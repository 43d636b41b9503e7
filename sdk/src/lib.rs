//! The MCP agent SDK.
//!
//! An agent is a type that implements [`Agent`], exported with
//! [`export_agent!`]. Build it for `wasm32-wasip2` as a `cdylib`; the result is
//! a component of the `mcp:agent` world that the MCP host can load.
//!
//! ```ignore
//! use mcp_sdk::{Agent, AgentError, AgentInfo, Batch, Finding};
//!
//! #[derive(Default)]
//! struct Quiet;
//!
//! impl Agent for Quiet {
//!     fn info() -> AgentInfo { mcp_sdk::info("quiet", "dns", "0.1.0", "finds nothing", &[]) }
//!     fn detect(&mut self, _batch: &Batch<'_>) -> Result<Vec<Finding>, AgentError> { Ok(Vec::new()) }
//! }
//!
//! mcp_sdk::export_agent!(Quiet);
//! ```
#![deny(missing_docs)]

mod batch;
mod builder;
mod config;
#[doc(hidden)]
pub mod export;
pub mod host;
pub mod scoring;
pub mod shape;
pub mod window;

pub use batch::{Batch, EntryRef, Number, Text, Values};
pub use builder::{BatchBuilder, RawRow, build_batch, build_shaped_batch};
pub use config::Config;
pub use export::{AgentCell, batch_from_entries, run_batch};

/// Raw bindings generated from `wit/`. Agents should not need them.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod wit {
    wit_bindgen::generate!({
        world: "agent",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_agent_world",
        default_bindings_module: "mcp_sdk::wit",
    });
}

pub use wit::mcp::agent::types::{
    AgentError, AgentInfo, Column, ColumnValues, Features, Findings, InferenceResult, InvalidEntry, LogBatch, LogEntry,
    SchemaSupport, Severity, Tensor, TextColumn,
};

/// The protocol version this SDK speaks: the version of the `mcp:agent` WIT package.
pub const PROTOCOL_VERSION: &str = "0.1.0";

/// An anomaly-detection agent.
///
/// One value of the type lives for as long as the host keeps the instance, so
/// it may hold windows and counters across calls. The host recycles an
/// instance after a trap, so state is a cache, never a record.
pub trait Agent: Default + 'static {
    /// Static facts about the agent. Use [`info`] to build them.
    fn info() -> AgentInfo;

    /// Reads the operator's settings once, before the first call that needs
    /// the agent. The default ignores them.
    fn configure(&mut self, config: &Config) -> Result<(), AgentError> {
        let _ = config;
        Ok(())
    }

    /// Processes a batch, entries in id order. Returns the anomalies it
    /// reveals; they may name entries of earlier batches (the rest of a
    /// burst), which the host stores too.
    fn detect(&mut self, batch: &Batch<'_>) -> Result<Vec<Finding>, AgentError>;

    /// Turns entry `index` of `batch` into numeric features. The default has none.
    fn extract_features(&mut self, batch: &Batch<'_>, index: usize) -> Result<Features, AgentError> {
        let _ = (batch, index);
        Ok(features(&[]))
    }

    /// Scores features. The default scores everything 0, labelled `normal`.
    fn infer(&mut self, features: &Features) -> Result<InferenceResult, AgentError> {
        let _ = features;
        Ok(InferenceResult { score: 0.0, label: "normal".into(), raw: Vec::new() })
    }

    /// Loads a model through the host and keeps it. The default asks the host
    /// and drops the handle, which tells whether the model exists.
    fn load_model(&mut self, name: &str, version: Option<&str>) -> Result<String, AgentError> {
        host::Model::load(name, version)
            .map(|model| model.version())
            .map_err(|e| AgentError::ModelUnavailable(host::describe(&e)))
    }
}

/// Builds an [`AgentInfo`] for this protocol version.
pub fn info(name: &str, log_type: &str, agent_version: &str, description: &str, required_fields: &[&str]) -> AgentInfo {
    AgentInfo {
        name: name.into(),
        log_type: log_type.into(),
        agent_version: agent_version.into(),
        protocol_version: PROTOCOL_VERSION.into(),
        description: description.into(),
        schema: SchemaSupport {
            log_type: log_type.into(),
            min_version: 1,
            max_version: 1,
            required_fields: text_column(required_fields.iter().copied()),
        },
    }
}

impl AgentInfo {
    /// Declares the range of schema versions of the log type the agent reads
    /// (the default from [`info`] is 1 to 1).
    pub fn with_schema_versions(mut self, min: u32, max: u32) -> Self {
        self.schema.min_version = min;
        self.schema.max_version = max;
        self
    }
}

/// What an agent found about one entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The entry it is about (possibly of an earlier batch).
    pub entry: EntryRef,
    /// How sure the agent is, from 0 to 1.
    pub score: f32,
    /// A short stable name of the kind of finding, for example `port_scan`.
    pub label: String,
    /// How urgently a person should look.
    pub severity: Severity,
    /// A sentence a person can act on.
    pub reason: String,
}

/// Builds a finding about the entry `entry` refers to. The host adds the
/// agent name, the detection time and the entry's log type, source and
/// timestamp from its own records, so an agent cannot speak for another or
/// misdate an entry.
pub fn finding(entry: &EntryRef, score: f32, label: &str, severity: Severity, reason: String) -> Finding {
    Finding { entry: *entry, score, label: label.to_string(), severity, reason }
}

fn text_column<'a>(values: impl Iterator<Item = &'a str>) -> TextColumn {
    let mut column = TextColumn { data: String::new(), ends: Vec::new() };
    for value in values {
        column.data.push_str(value);
        column.ends.push(u32::try_from(column.data.len()).unwrap_or(u32::MAX));
    }
    column
}

/// Packs findings into the columns the protocol carries.
pub fn findings_of(found: &[Finding]) -> Findings {
    Findings {
        log_ids: found.iter().map(|f| f.entry.id).collect(),
        scores: found.iter().map(|f| f.score).collect(),
        severities: found.iter().map(|f| f.severity).collect(),
        labels: text_column(found.iter().map(|f| f.label.as_str())),
        reasons: text_column(found.iter().map(|f| f.reason.as_str())),
    }
}

/// Builds features from (name, value) pairs.
pub fn features(pairs: &[(&str, f32)]) -> Features {
    Features {
        names: text_column(pairs.iter().map(|(name, _)| *name)),
        values: pairs.iter().map(|(_, v)| *v).collect(),
    }
}
