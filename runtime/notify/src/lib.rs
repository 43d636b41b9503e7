//! Sends MCP's notifications.
//!
//! The storage crate keeps channels, routes and the outbox; this crate
//! reads them and talks to the outside: a signed generic webhook, Slack
//! incoming webhooks, email over SMTP, and a log-only channel (the
//! embedded default). [`worker::Deliverer`] claims due outbox rows,
//! honours each channel's rate limit, sends, and records every attempt,
//! retrying with backoff until a notification is delivered or dead.

pub mod backends;
pub mod guard;
pub mod limit;
pub mod message;
pub mod secret;
pub mod seed;
pub mod send;
pub mod sign;
pub mod spec;
pub mod worker;

pub use spec::{ChannelSpec, Owner, SpecError};
pub use worker::Deliverer;
