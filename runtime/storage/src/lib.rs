//! Where MCP keeps things.
//!
//! This crate owns the log sources behind [`source::LogSource`] (the embedded
//! SQLite default and PostgreSQL), the log schema files that normalise rows
//! as they are read, the anomaly store with its checkpoints, the control
//! store (tenants, tokens, per-tenant settings, audit), job status in Redis
//! or in the process, and the one retry policy that PostgreSQL and Redis
//! calls share.
//!
//! It must not know wasmtime, the agents' protocol bindings, HTTP or
//! OpenAPI: it speaks `mcp-columns`' plain types, and the engine wires it to
//! the sandbox.

pub mod budgets;
pub mod cluster;
pub mod control;
pub mod control_copy;
pub mod control_sql;
pub mod export_scan;
pub mod exports;
pub mod grants;
pub mod histogram;
pub mod jobstatus;
pub mod notify;
pub mod quarantine;
pub mod reads;
pub mod redact;
pub mod retry;
pub mod run_store;
pub mod schema;
pub mod shared_store;
pub mod source;
pub mod sqlite_file;
pub mod store;
pub mod tenancy;
