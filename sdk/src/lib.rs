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
mod columns;
mod config;
#[doc(hidden)]
pub mod export;
pub mod hashing;
pub mod host;
pub mod names;
mod public_suffixes;
pub mod scoring;
pub mod window;

pub use batch::{Batch, EntryRef, Number, Text, Values};
pub use columns::{BatchBuilder, RawRow, build_batch, build_shaped_batch, shape};
pub use config::Config;
pub use export::{AgentCell, batch_from_entries, run_batch};

/// Raw bindings generated from `wit/`. Agents should not need them.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod wit {
    wit_bindgen::generate!({
        world: "agent",
        path: "wit/0.2.0",
        pub_export_macro: true,
        export_macro_name: "__export_agent_world",
        default_bindings_module: "mcp_sdk::wit",
    });
}

pub use wit::mcp::agent::types::{
    AgentError, AgentInfo, Column, ColumnValues, FeatureTable, Findings, InvalidEntry, LogBatch, SchemaSupport,
    Severity, Tensor, TextColumn,
};

/// The protocol version this SDK speaks: the version of the `mcp:agent` WIT
/// package it is built against, the same constant the host names as its newest.
pub const PROTOCOL_VERSION: &str = mcp_columns::PROTOCOL_VERSION;

/// One log entry with its fields as JSON, for building test batches with
/// [`batch_from_entries`] as the host would send them.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// The log id.
    pub id: u64,
    /// When it happened, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The device or sensor that logged it.
    pub source: String,
    /// The log type.
    pub log_type: String,
    /// The fields, one JSON object.
    pub fields: String,
}

/// The numeric features of one entry, as an agent's model sees them.
#[derive(Debug, Clone)]
pub struct Features {
    /// The features' names, one per value.
    pub names: TextColumn,
    /// The values.
    pub values: Vec<f32>,
}

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

    /// The agent's state (windows, learned baselines) as bytes of its own
    /// format, which the host stores with the checkpoint. The default keeps
    /// no state: after a restart the host replays recent entries instead.
    fn snapshot(&self) -> Result<Vec<u8>, AgentError> {
        Ok(Vec::new())
    }

    /// Takes back what [`Agent::snapshot`] returned, in a fresh instance
    /// after a restart. The default accepts only the empty state.
    fn restore(&mut self, state: &[u8]) -> Result<(), AgentError> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(AgentError::Internal(format!("this agent keeps no state, but was given {} bytes", state.len())))
        }
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

#[cfg(test)]
mod builder_tests {
    use crate::{AgentError, Batch, BatchBuilder, ColumnValues, LogBatch, RawRow, build_batch};

    fn build(rows: &[&str]) -> (LogBatch, Vec<String>) {
        let mut builder = BatchBuilder::new("t", 1);
        let mut refused = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if let Err(reason) = builder.push_json(i as u64 + 1, i as i64 * 10, &format!("src-{i}"), row) {
                refused.push(reason);
            }
        }
        (builder.finish(), refused)
    }

    #[test]
    fn rows_become_typed_columns_with_missing_values() -> Result<(), AgentError> {
        let (raw, refused) = build(&[
            r#"{"name": "a", "port": 80, "ok": true}"#,
            r#"{"name": "bé\nc", "port": 443.5, "extra": "x"}"#,
            r#"{"name": null, "port": 22, "ok": false}"#,
        ]);
        assert!(refused.is_empty(), "{refused:?}");
        let batch = Batch::new(&raw)?;
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.source(1), "src-1");
        assert_eq!((batch.id(2), batch.timestamp_ms(2)), (3, 20));
        let name = batch.text("name")?;
        assert_eq!((name.get(0), name.get(1), name.get(2)), (Some("a"), Some("bé\nc"), None));
        // An integer column that meets a real becomes a real column.
        assert!(batch.integer_opt("port").is_none());
        let port = batch.number("port")?;
        assert_eq!((port.get(0), port.get(1), port.get(2)), (Some(80.0), Some(443.5), Some(22.0)));
        let ok = batch.boolean_opt("ok").ok_or_else(|| AgentError::Internal("no ok".into()))?;
        assert_eq!((ok.get(0), ok.get(1), ok.get(2)), (Some(true), None, Some(false)));
        // A field first seen in the second row is missing in the first and third.
        let extra = batch.text("extra")?;
        assert_eq!((extra.get(0), extra.get(1), extra.get(2)), (None, Some("x"), None));
        Ok(())
    }

    #[test]
    fn rows_that_do_not_fit_are_refused_and_leave_the_batch_alone() -> Result<(), AgentError> {
        let (raw, refused) = build(&[
            r#"{"name": "a", "port": 80}"#,
            r#"{"name": 5, "port": 81}"#,
            r#"{"name": "b", "nested": {"x": 1}}"#,
            r#"{"name": "c", "name": "d"}"#,
            r#"[1, 2]"#,
            r#"{"name": "e", "port": 82}"#,
        ]);
        assert_eq!(refused.len(), 4, "{refused:?}");
        assert!(refused[0].contains("'name' is text in this batch but an integer here"), "{}", refused[0]);
        assert!(refused[1].contains("'nested' is an object or array"), "{}", refused[1]);
        assert!(refused[2].contains("'name' appears twice"), "{}", refused[2]);
        assert!(refused[3].contains("not a JSON object"), "{}", refused[3]);
        let batch = Batch::new(&raw)?;
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.text("name")?.get(1), Some("e"));
        assert_eq!(batch.integer("port")?.get(1), Some(82));
        assert!(batch.text_opt("nested").is_none());
        Ok(())
    }

    #[test]
    fn the_majority_types_a_field_so_an_odd_first_row_is_the_one_refused() -> Result<(), AgentError> {
        let texts = [r#"{"port": "http"}"#, r#"{"port": 80}"#, r#"{"port": 443}"#, r#"{"port": 8080.5}"#, "nope"];
        let rows: Vec<RawRow<'_>> = texts
            .iter()
            .enumerate()
            .map(|(i, f)| RawRow { id: i as u64 + 1, timestamp_ms: 0, source: "s", fields: f, schema_version: 0 })
            .collect();
        let (raw, refused) = build_batch("t", 1, &rows);
        let refused_rows: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(refused_rows, vec![0, 4], "{refused:?}");
        assert!(refused[0].1.contains("'port' is a real number in this batch but text here"), "{}", refused[0].1);
        let batch = Batch::new(&raw)?;
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.id(0), 2);
        assert_eq!(batch.number("port")?.get(2), Some(8080.5));
        Ok(())
    }

    #[test]
    fn missing_required_field_names_it() {
        let (raw, _) = build(&[r#"{"a": 1}"#]);
        match Batch::new(&raw).and_then(|b| b.text("bssid").map(|_| ())) {
            Err(AgentError::InvalidEntry(e)) => {
                assert!(e.reason.contains("'bssid'"), "{}", e.reason)
            }
            other => panic!("expected an invalid-entry error, got {other:?}"),
        }
    }

    #[test]
    fn inconsistent_batches_are_refused_before_reading() {
        let (mut raw, _) = build(&[r#"{"a": "x"}"#, r#"{"a": "y"}"#]);
        if let Some(column) = raw.columns.first_mut()
            && let ColumnValues::Text(text) = &mut column.values
        {
            text.ends[1] = 99;
        }
        assert!(matches!(Batch::new(&raw), Err(AgentError::InvalidEntry(_))));
        let (mut ragged, _) = build(&[r#"{"a": 1}"#, r#"{"a": 2}"#]);
        ragged.ids.push(3);
        assert!(matches!(Batch::new(&ragged), Err(AgentError::InvalidEntry(_))));
    }
}
