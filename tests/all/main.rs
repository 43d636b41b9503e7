//! Integration tests of the host with the real bundled agents and the hostile
//! fixture, built for wasm32-wasip2 by mcp-agent-artifacts.

mod api;
mod cache;
mod cluster;
mod common;
mod conformance;
mod console;
mod control_store;
mod detection;
mod exports;
mod hostile;
mod indexes;
mod models;
mod notifications;
mod polyglot;
mod postgres;
mod protocol;
mod registry;
mod runs;
mod sandbox;
mod schemas;
mod shared_outbox;
mod shared_store;
mod tenancy;
