//! The runs page: running and recent runs with their counters as they
//! move, started and cancelled by tenant admins. While a run is going the
//! table refreshes itself: by script every two seconds, or by a meta
//! refresh with script off.

use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::agents::can_administer;
use super::page::{Done, csrf_field, empty, page, post_button, time_element, visible};
use super::session::Viewer;
use super::{ConsoleError, CsrfForm};
use crate::ApiState;
use crate::runs::{RunFilter, RunView};

/// Runs listed, newest first.
const RECENT: u32 = 50;

fn is_live(run: &RunView) -> bool {
    matches!(run.state.as_str(), "queued" | "running")
}

fn counter(run: &RunView, name: &str) -> u64 {
    run.counters.get(name).copied().unwrap_or(0)
}

async fn recent(state: &Arc<ApiState>, viewer: &Viewer) -> Result<Vec<RunView>, ConsoleError> {
    let filter = RunFilter { state: None, agent: None, cursor: None, limit: Some(RECENT) };
    let Json(page) = crate::runs::list_runs(State(state.clone()), viewer.caller.clone(), Ok(Query(filter))).await?;
    Ok(page.items)
}

/// How long a run took, or has taken so far.
fn duration(run: &RunView) -> String {
    let ms = (run.updated_ms - run.started_ms).max(0);
    if ms < 1_000 { format!("{ms} ms") } else { format!("{:.1} s", ms as f64 / 1_000.0) }
}

/// The table of runs: the part the page's script replaces while runs go.
fn table(viewer: &Viewer, runs: &[RunView]) -> Markup {
    let live = runs.iter().any(is_live);
    let admin = can_administer(viewer);
    html! {
        section #runs data-live=(if live { "true" } else { "false" }) aria-live="polite" {
            @if runs.is_empty() {
                (empty("No runs yet."))
            } @else {
                div.scroll {
                    table.list {
                        caption { (runs.len()) " most recent runs" @if live { ", updating while any is going" } }
                        thead {
                            tr {
                                th scope="col" { "Run" }
                                th scope="col" { "State" }
                                th scope="col" { "Agent" }
                                th scope="col" { "Started" }
                                th scope="col" { "Updated" }
                                th scope="col" { "Took" }
                                th scope="col" { "Entries" }
                                th scope="col" { "Anomalies" }
                                th scope="col" { "Quarantined" }
                                th scope="col" { "Faults" }
                                @if admin { th scope="col" { span.visually-hidden { "Actions" } } }
                                th scope="col" { "Error" }
                            }
                        }
                        tbody {
                            @for run in runs {
                                tr data-run=(run.id) {
                                    td { code { (run.id) } }
                                    td { span class={ "badge state-" (run.state) } { (run.state) } }
                                    td { (run.agent.as_deref().unwrap_or(&run.subject)) }
                                    td { (time_element(run.started_ms)) }
                                    td { (time_element(run.updated_ms)) }
                                    td.num { (duration(run)) }
                                    td.num data-counter="entries" { (counter(run, "entries")) }
                                    td.num data-counter="anomalies" { (counter(run, "anomalies")) }
                                    td.num { (counter(run, "quarantined")) }
                                    td.num { (counter(run, "faults")) }
                                    @if admin {
                                        td {
                                            @if is_live(run) {
                                                (post_button(viewer, &format!("/ui/runs/{}/cancel", run.id), "Cancel", &[]))
                                            }
                                        }
                                    }
                                    td { @if let Some(error) = &run.error { span.error { (visible(error)) } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/runs`
pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    done: Result<Query<Done>, axum::extract::rejection::QueryRejection>,
) -> Result<Markup, ConsoleError> {
    let runs = recent(&state, &viewer).await?;
    let Json(agents) = crate::agents::list_agents(State(state.clone()), viewer.caller.clone()).await;
    let refresh = runs.iter().any(is_live).then_some(5);
    let body = html! {
        @if let Ok(Query(done)) = &done { (done.render()) }
        @if !can_administer(&viewer) {
            p.hint { "Your role (" (viewer.caller.role.name()) ") sees runs; a tenant admin starts and cancels them." }
        }
        @if can_administer(&viewer) {
            form.inline-form method="post" action="/ui/runs" {
                (csrf_field(&viewer))
                label {
                    "Agent"
                    select name="agent" required {
                        @for agent in agents.iter().filter(|a| a.enabled) { option value=(agent.name) { (agent.name) } }
                    }
                }
                button type="submit" { "Start a run" }
                span.hint { " from the agent's checkpoint to the newest entry" }
            }
        }
        (table(&viewer, &runs))
    };
    Ok(page("Runs", Some(&viewer), "Runs", refresh, body))
}

/// `GET /ui/runs/live`: the table alone, for the page's script.
pub(crate) async fn live(State(state): State<Arc<ApiState>>, viewer: Viewer) -> Result<Markup, ConsoleError> {
    let runs = recent(&state, &viewer).await?;
    Ok(table(&viewer, &runs))
}

/// The start form's fields.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    agent: String,
}

/// `POST /ui/runs`
pub(crate) async fn start(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    form: Result<Form<StartForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    let form = super::read_form(form)?;
    viewer.check_csrf(&form.csrf)?;
    let body = crate::contract::JsonObject(crate::runs::StartRun { agent: form.agent });
    let _started = crate::runs::start_run(State(state), viewer.caller.clone(), Ok(body)).await?;
    Ok(Redirect::to("/ui/runs?done=run-started").into_response())
}

/// `POST /ui/runs/{id}/cancel`
pub(crate) async fn cancel(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    viewer.check_csrf(&super::read_form(form)?.csrf)?;
    let _cancelled = crate::runs::cancel_run(State(state), viewer.caller.clone(), Path(id)).await?;
    Ok(Redirect::to("/ui/runs?done=cancel-requested").into_response())
}
