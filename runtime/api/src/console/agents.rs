//! The agents page: what each agent is, what it may reach, whether it is
//! enabled or held in quarantine, its recent faults and its anomalies per
//! hour; tenant admins enable and disable it from here.

use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::page::{Done, empty, page, post_button, time_element, trusted, visible};
use super::session::Viewer;
use super::{ConsoleError, CsrfForm};
use crate::agents::AgentView;
use crate::anomalies::AnomalyFilter;
use crate::{ApiState, Role};
use mcp_storage::histogram::{Histogram, HistogramGroup};

/// Hours the per-hour sparkline covers, ending at the agent's newest anomaly.
const HOURS: usize = 24;

/// Whether the viewer may change agents: the same rule the API applies.
pub(crate) fn can_administer(viewer: &Viewer) -> bool {
    viewer.caller.require(Role::TenantAdmin).is_ok()
}

/// An agent's anomalies per hour over the last day of its entries.
async fn per_hour(state: &Arc<ApiState>, tenant: &str, agent: &str) -> Option<Histogram> {
    let filter = AnomalyFilter { agent: Some(agent.to_string()), ..AnomalyFilter::default() };
    let query = crate::anomalies::store_query(filter, tenant.to_string());
    let newest = {
        let query = mcp_storage::store::AnomalyQuery { limit: 1, ..query.clone() };
        state.with_anomalies(tenant, move |store| store.query(&query)).await.ok()?.first()?.log_ts_ms
    };
    let hour = 3_600_000;
    let end = (newest.div_euclid(hour) + 1) * hour;
    let query =
        mcp_storage::store::AnomalyQuery { from_ms: Some(end - HOURS as i64 * hour), to_ms: Some(end), ..query };
    state.with_anomalies(tenant, move |store| store.histogram(&query, HistogramGroup::Agent, HOURS)).await.ok()
}

/// A row of small bars, one per hour, with the figures in its title.
fn sparkline(histogram: &Histogram) -> Markup {
    let mut per_slot = vec![0u64; histogram.slots];
    for (slot, _, count) in &histogram.counts {
        if let Some(total) = per_slot.get_mut(*slot) {
            *total += count;
        }
    }
    let tallest = per_slot.iter().copied().max().unwrap_or(0).max(1);
    let width = 4.0 * per_slot.len() as f64;
    let mut svg = format!(
        r#"<svg class="spark" viewBox="0 0 {width} 20" role="img" aria-label="{} anomalies in the last {} hours of its entries, at most {tallest} in an hour">"#,
        histogram.total(),
        histogram.slots
    );
    for (slot, count) in per_slot.iter().enumerate() {
        let h = (*count as f64 / tallest as f64) * 20.0;
        svg.push_str(&format!(
            r##"<rect x="{}" y="{:.1}" width="3" height="{h:.1}" fill="#0072B2"/>"##,
            slot * 4,
            20.0 - h
        ));
    }
    svg.push_str("</svg>");
    let busiest = per_slot.iter().copied().max().unwrap_or(0);
    html! {
        (trusted(svg)) " "
        span.hint { (histogram.total()) " in the last " (histogram.slots) " hours of its entries, at most " (busiest) " in one hour" }
    }
}

fn agent_card(viewer: &Viewer, agent: &AgentView, activity: Option<&Histogram>) -> Markup {
    let runs = &agent.runs;
    html! {
        article.card id={ "agent-" (agent.name) } {
            header {
                h2 { (agent.name) }
                @if agent.enabled { span.badge.ok { "enabled" } } @else { span.badge.off { "disabled" } }
                @if agent.quarantine.is_some() { span.badge.sev-high { "quarantined" } }
            }
            p { (visible(&agent.description)) }
            dl.facts {
                dt { "Log type" } dd {
                    (agent.log_type) ", schema "
                    @if agent.schema_versions[0] == agent.schema_versions[1] { "version " (agent.schema_versions[0]) }
                    @else { "versions " (agent.schema_versions[0]) " to " (agent.schema_versions[1]) }
                }
                dt { "Version" } dd { (visible(&agent.agent_version)) ", protocol " (visible(&agent.protocol_version)) }
                dt { "Origin" } dd { (format!("{:?}", agent.origin).to_lowercase()) }
                dt { "Build (SHA-256)" } dd { code.hash { (agent.sha256) } }
                dt { "Active model" } dd { (agent.active_model.as_deref().unwrap_or("none")) }
                dt { "May read" } dd { (agent.grants.log_types.join(", ")) }
                dt { "May load models" } dd { @if agent.grants.models.is_empty() { "none" } @else { (agent.grants.models.join(", ")) } }
                dt { "Settings set" } dd { @if agent.grants.settings_set.is_empty() { "none" } @else { (agent.grants.settings_set.join(", ")) } }
                dt { "Approved" } dd { @if agent.grants.approved { "yes" } @else { "no: a tenant admin approves an upload's manifest" } }
                dt { "Since the server started" } dd {
                    (runs.runs) @if runs.runs == 1 { " run, " } @else { " runs, " }
                    (runs.entries) " entries, " (runs.anomalies) " anomalies, " (runs.faults) " faults"
                }
                dt { "Anomalies per hour" } dd {
                    @match activity {
                        Some(histogram) if histogram.slots > 0 => { (sparkline(histogram)) }
                        _ => { "none yet" }
                    }
                }
            }
            @if let Some(quarantine) = &agent.quarantine {
                p.error {
                    "Held out of runs until " (time_element(quarantine.until_ms)) " (level " (quarantine.level) "): " (visible(&quarantine.reason))
                }
            }
            @if agent.recent_faults.is_empty() {
                p.hint { "No recent faults." }
            } @else {
                details {
                    summary { (agent.recent_faults.len()) " recent faults" }
                    ul {
                        @for fault in &agent.recent_faults {
                            li { (time_element(fault.at_ms)) " " strong { (fault.kind) } ": " (visible(&fault.message)) }
                        }
                    }
                }
            }
            @if can_administer(viewer) {
                @if agent.enabled {
                    (super::page::post_button_styled(viewer, &format!("/ui/agents/{}/disable", agent.name), &format!("Disable {}", agent.name), "secondary"))
                } @else {
                    (post_button(viewer, &format!("/ui/agents/{}/enable", agent.name), &format!("Enable {}", agent.name), &[]))
                }
            }
        }
    }
}

/// `GET /ui/agents`
pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    done: Result<Query<Done>, axum::extract::rejection::QueryRejection>,
) -> Markup {
    let Json(agents) = crate::agents::list_agents(State(state.clone()), viewer.caller.clone()).await;
    let mut cards = Vec::with_capacity(agents.len());
    for agent in &agents {
        let activity = per_hour(&state, &viewer.caller.tenant, &agent.name).await;
        cards.push(agent_card(&viewer, agent, activity.as_ref()));
    }
    let body = html! {
        @if let Ok(Query(done)) = &done { (done.render()) }
        @if agents.is_empty() { (empty("This tenant has no agents.")) }
        div.cards { @for card in cards { (card) } }
    };
    page("Agents", Some(&viewer), "Agents", None, body)
}

/// `POST /ui/agents/{name}/enable` and `.../disable`
pub(crate) async fn set_enabled(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    Path((name, action)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    viewer.check_csrf(&super::read_form(form)?.csrf)?;
    let path = Path(name.clone());
    let _view = match action.as_str() {
        "enable" => crate::agents::enable_agent(State(state), viewer.caller.clone(), path).await?,
        "disable" => crate::agents::disable_agent(State(state), viewer.caller.clone(), path).await?,
        _ => return Err(ConsoleError::Api(crate::ApiError::not_found("no such action"))),
    };
    let anchor: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    Ok(Redirect::to(&format!("/ui/agents?done=agent-{action}d#agent-{anchor}")).into_response())
}
