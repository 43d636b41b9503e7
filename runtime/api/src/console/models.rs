//! The models page: every version the tenant's agents may use, the one in
//! force, its training figures, and activation and rollback for whoever
//! the API lets change them (the deployment admin for the bundled agents'
//! models, a tenant admin for its uploads').

use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::page::{Done, empty, page, post_button, visible};
use super::session::Viewer;
use super::{ConsoleError, CsrfForm};
use crate::models::ModelVersionView;
use crate::{ApiState, Role};

/// The figures shown in the table, in order; the rest are in the details.
const SHOWN_METRICS: [(&str, &str); 3] =
    [("validation_precision", "Precision"), ("validation_recall", "Recall"), ("validation_f1", "F1")];

/// Whether the viewer may change this version's models, as the API decides.
fn may_change(viewer: &Viewer, model: &ModelVersionView) -> bool {
    match model.scope.as_str() {
        "tenant" => viewer.caller.require(Role::TenantAdmin).is_ok(),
        _ => viewer.caller.require_deployment_admin().is_ok(),
    }
}

fn metric(model: &ModelVersionView, name: &str) -> String {
    model.metrics.get(name).map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

/// `GET /ui/models`
pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    done: Result<Query<Done>, axum::extract::rejection::QueryRejection>,
) -> Result<Markup, ConsoleError> {
    let Json(models) = crate::models::list_models(State(state), viewer.caller.clone()).await?;
    let mut agents: Vec<&str> = models.iter().map(|m| m.agent.as_str()).collect();
    agents.dedup();
    let body = html! {
        @if let Ok(Query(done)) = &done { (done.render()) }
        p.hint { "Figures are the model's own, on its validation data, as its metadata records them." }
        @if models.is_empty() { (empty("No models.")) }
        @for agent in &agents {
            section.card {
                h2 { (agent) }
                div.scroll {
                    table.list {
                        caption { "Versions of " (agent) "'s model" }
                        thead {
                            tr {
                                th scope="col" { "Version" }
                                th scope="col" { "Scope" }
                                th scope="col" { "State" }
                                th scope="col" { "Family" }
                                th scope="col" { "Trained" }
                                @for (_, label) in SHOWN_METRICS { th scope="col" { (label) } }
                                th scope="col" { span.visually-hidden { "Actions" } }
                            }
                        }
                        tbody {
                            @for model in models.iter().filter(|m| m.agent == *agent) {
                                tr {
                                    td { (visible(&model.version)) }
                                    td { (model.scope) }
                                    td {
                                        @if model.active { span.badge.ok { "active" } }
                                        @else if let Some(why) = &model.refused { span.badge.sev-high { "refused" } " " span.hint { (visible(why)) } }
                                        @else { "available" }
                                    }
                                    td { (model.family.as_deref().unwrap_or("–")) }
                                    td { (visible(model.created.as_deref().unwrap_or("–"))) }
                                    @for (name, _) in SHOWN_METRICS { td.num { (metric(model, name)) } }
                                    td {
                                        @if may_change(&viewer, model) && !model.active && model.refused.is_none() {
                                            (post_button(&viewer, &format!("/ui/models/{}/activate", model.agent), &format!("Activate {}", model.version), &[("version", &model.version)]))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(model) = models.iter().find(|m| m.agent == *agent && m.active)
                    && may_change(&viewer, model) {
                    (post_button(&viewer, &format!("/ui/models/{agent}/rollback"), &format!("Roll {agent} back"), &[]))
                }
            }
        }
    };
    Ok(page("Models", Some(&viewer), "Models", None, body))
}

/// The activation form's fields.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ActivateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
}

/// `POST /ui/models/{agent}/activate`
pub(crate) async fn activate(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    Path(agent): Path<String>,
    form: Result<Form<ActivateForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    let form = super::read_form(form)?;
    viewer.check_csrf(&form.csrf)?;
    let _active =
        crate::models::activate_model(State(state), viewer.caller.clone(), Path((agent, form.version))).await?;
    Ok(Redirect::to("/ui/models?done=model-activated").into_response())
}

/// `POST /ui/models/{agent}/rollback`
pub(crate) async fn rollback(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    Path(agent): Path<String>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    viewer.check_csrf(&super::read_form(form)?.csrf)?;
    let _active = crate::models::rollback_model(State(state), viewer.caller.clone(), Path(agent)).await?;
    Ok(Redirect::to("/ui/models?done=model-rolled-back").into_response())
}
