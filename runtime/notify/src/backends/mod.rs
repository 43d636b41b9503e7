//! The channel backends, one [`crate::send::Notifier`] each.

mod email;
mod http;
mod log;
mod slack;
mod webhook;

pub use email::EmailNotifier;
pub use http::HttpPoster;
pub use log::LogNotifier;
pub use slack::SlackNotifier;
pub use webhook::WebhookNotifier;
