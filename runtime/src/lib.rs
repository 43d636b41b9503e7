//! The MCP host: the wasmtime sandbox that runs untrusted log-anomaly agents,
//! the registry of agents, the embedded log source and anomaly store, and the
//! commands of the `mcp` binary.

pub mod api;
pub mod batch;
pub mod cache;
pub mod config;
pub mod conformance;
pub mod demo;
pub mod generator;
pub mod jobs;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod registry;
pub mod sandbox;
pub mod schema;
pub mod source;
pub mod store;
pub mod training;
