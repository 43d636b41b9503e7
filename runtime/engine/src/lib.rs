//! The engine: what turns stored logs into stored anomalies.
//!
//! It owns the configuration, the run of one agent over its log type
//! (`pipeline`), the one run service every caller goes through (`runs`),
//! the job status of runs (`jobs`), the models that tract runs for agents
//! (`models`), and the adapters that give the sandbox's import traits their
//! backends (`imports`).
//!
//! It must not know HTTP: the control plane and the `mcp` binary call it.

pub mod config;
pub mod config_check;
pub mod export;
pub mod imports;
pub mod jobs;
pub mod models;
mod pages;
pub mod pipeline;
pub mod quarantine;
pub mod queue;
pub mod runs;
pub mod shadow;
pub mod worker;
