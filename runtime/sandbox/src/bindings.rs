//! The one place the host generates bindings from wit/: one module per
//! protocol version it serves. `boundary.rs` converts their types to the
//! host's; nothing else names them outside this crate.

/// `mcp:agent@0.2.0`, the current protocol.
pub mod v2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        world: "agent",
        imports: { default: tracing | trappable },
        with: {
            "mcp:agent/model.loaded-model": crate::host::ModelHandle,
        },
    });

    pub use mcp::agent::types::{
        AgentError, AgentInfo, Column, ColumnValues, FeatureTable, Findings, HostError, LogBatch, Severity, TextColumn,
    };
}

/// `mcp:agent@0.1.0`, served so that components built against it run
/// unchanged.
pub mod v1 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        world: "agent",
        imports: { default: tracing | trappable },
        with: {
            "mcp:agent/model.loaded-model": crate::host::ModelHandle,
        },
    });

    pub use mcp::agent::types::{
        AgentError, AgentInfo, Column, ColumnValues, Findings, HostError, LogBatch, LogEntry, Severity, TextColumn,
    };
}
