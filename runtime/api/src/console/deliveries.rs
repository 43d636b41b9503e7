//! The exports and notifications pages: what left the system, read as the
//! API lists it. An export's file downloads through the session as it
//! would through `GET /v1/exports/{id}/download`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};

use super::ConsoleError;
use super::page::{empty, page, time_element, visible};
use super::session::Viewer;
use crate::ApiState;
use crate::exports::ExportPaging;
use crate::notifications::OutboxQuery;

/// `GET /ui/exports`
pub(crate) async fn exports(State(state): State<Arc<ApiState>>, viewer: Viewer) -> Result<Markup, ConsoleError> {
    let paging = ExportPaging { cursor: None, limit: Some(50) };
    let Json(listed) = crate::exports::list_exports(State(state), viewer.caller.clone(), Ok(Query(paging))).await?;
    let live = listed.items.iter().any(|e| matches!(e.state.as_str(), "queued" | "running"));
    let body = html! {
        p.hint { "Exports are started through the API or " code { "mcp export" } "; the newest 50 are listed." }
        @if listed.items.is_empty() {
            (empty("No exports yet."))
        } @else {
            div.scroll {
                table.list {
                    caption { (listed.items.len()) " exports" }
                    thead {
                        tr {
                            th scope="col" { "Export" } th scope="col" { "State" } th scope="col" { "Format" }
                            th scope="col" { "Rows" } th scope="col" { "Bytes" } th scope="col" { "Progress" }
                            th scope="col" { "Started" } th scope="col" { "Finished" }
                        }
                    }
                    tbody {
                        @for export in &listed.items {
                            tr {
                                td {
                                    @if export.state == "completed" {
                                        a href={ "/ui/exports/" (export.id) "/download" } download { (export.id) }
                                    } @else { code { (export.id) } }
                                }
                                td { span class={ "badge state-" (export.state) } { (export.state) }
                                     @if let Some(error) = &export.error { " " span.error { (visible(error)) } } }
                                td { (export.format) }
                                td.num { (export.rows) }
                                td.num { (export.bytes) }
                                td { progress max="100" value=(format!("{:.0}", export.percent)) { (format!("{:.0} %", export.percent)) } }
                                td { (time_element(export.created_ms)) }
                                td { @if let Some(ms) = export.finished_ms { (time_element(ms)) } @else { "–" } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Exports", Some(&viewer), "Exports", live.then_some(5), body))
}

/// `GET /ui/exports/{id}/download`
pub(crate) async fn download(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    Ok(crate::exports::download_export(State(state), viewer.caller.clone(), Path(id), headers).await?)
}

/// `GET /ui/notifications`
pub(crate) async fn notifications(State(state): State<Arc<ApiState>>, viewer: Viewer) -> Result<Markup, ConsoleError> {
    let Json(channels) = crate::notifications::list_channels(State(state.clone()), viewer.caller.clone()).await?;
    let query = OutboxQuery { state: None, channel: None, cursor: None, limit: Some(50) };
    let Json(outbox) = crate::notifications::list_outbox(State(state), viewer.caller.clone(), Ok(Query(query))).await?;
    let body = html! {
        h2 { "Channels" }
        @if channels.items.is_empty() {
            p.empty { "No channels: " code { "config/notifications.toml" } " or the API adds them." }
        } @else {
            div.scroll {
                table.list {
                    caption { (channels.items.len()) " channels" }
                    thead { tr { th scope="col" { "Channel" } th scope="col" { "Kind" } th scope="col" { "Managed by" } th scope="col" { "Enabled" } th scope="col" { "Dedup window" } th scope="col" { "Per minute" } } }
                    tbody {
                        @for channel in &channels.items {
                            tr {
                                td { (channel.name) } td { (channel.kind) } td { (channel.managed_by) }
                                td { @if channel.enabled { "yes" } @else { "no" } }
                                td.num { (channel.dedup_window_s) " s" } td.num { (channel.rate_per_minute) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Recent notifications" }
        @if outbox.items.is_empty() {
            (empty("Nothing sent yet."))
        } @else {
            div.scroll {
                table.list {
                    caption { "The newest " (outbox.items.len()) " notifications" }
                    thead { tr { th scope="col" { "Created" } th scope="col" { "Channel" } th scope="col" { "Kind" } th scope="col" { "Anomaly" } th scope="col" { "Folded" } th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Last error" } } }
                    tbody {
                        @for item in &outbox.items {
                            tr {
                                td { (time_element(item.created_ms)) }
                                td { (item.channel) }
                                td { (item.kind) }
                                td { a href={ "/ui/anomalies/" (item.anomaly_id) } { (item.anomaly_id) } }
                                td.num { (item.folded) }
                                td { (serde_json::to_value(item.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                                td.num { (item.attempts) }
                                td { (visible(item.last_error.as_deref().unwrap_or(""))) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Notifications", Some(&viewer), "Notifications", None, body))
}
