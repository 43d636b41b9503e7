//! Notifications as MCP keeps them: each tenant's channels and routes in
//! the control store, and the outbox in the anomaly store (embedded, or on
//! PostgreSQL), written in the same transaction as the anomalies it
//! announces. Sending is the
//! `mcp-notify` crate's job; nothing here speaks HTTP or SMTP.

pub mod channels;
pub mod outbox;
pub mod outbox_store;
pub mod routing;

pub use channels::{ChannelRecord, Managed, RouteRecord};
pub use outbox::{Claimed, OutboxEntry, OutboxFilter, OutboxState};
pub use outbox_store::OutboxStore;
pub use routing::{RouteBook, RouteSet};
