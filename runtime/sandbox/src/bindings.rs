//! The one place the host generates bindings from wit/.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "agent",
    imports: { default: tracing },
    with: {
        "mcp:agent/model.loaded-model": crate::host::ModelHandle,
    },
});

pub use mcp::agent::types::{
    AgentError, AgentInfo, Column, ColumnValues, Features, Findings, HostError, InferenceResult, LogBatch, LogEntry,
    SchemaSupport, Severity, TextColumn,
};
