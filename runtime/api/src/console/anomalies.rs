//! The anomalies pages: a filtered, paged list with a chart of the same
//! anomalies over time, and one anomaly with its entry and its neighbours
//! from the same source. Both read through the API's own handlers, so the
//! console sees exactly what the token sees through `/v1/anomalies`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleError;
use super::page::{self, empty, page, parse_local_time, severity_badge, time_element, visible};
use super::session::Viewer;
use crate::anomalies::{self as api, AnomalyFilter, AnomalyRecord, SeverityFilter, Sort};
use crate::{ApiError, ApiState};
use mcp_storage::histogram::HistogramGroup;

/// Anomalies on one page of the list.
const PAGE_SIZE: u32 = 50;
/// Bars in the chart at most.
const CHART_SLOTS: usize = 48;
/// How far either side of an anomaly its neighbours are looked for.
const NEIGHBOURHOOD_MS: i64 = 15 * 60_000;

/// The list's query string: the filter form's fields, each empty when unset.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    log_type: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    min_score: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    cursor: String,
}

fn set(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

impl ListParams {
    /// The API's filter for these fields, or what is wrong with one.
    fn filter(&self) -> Result<AnomalyFilter, String> {
        let from_ms = match set(&self.from) {
            Some(text) => Some(parse_local_time(&text).ok_or(format!("'From' is not a date and time: {text}"))?),
            None => None,
        };
        let to_ms = match set(&self.to) {
            Some(text) => Some(parse_local_time(&text).ok_or(format!("'To' is not a date and time: {text}"))?),
            None => None,
        };
        let severity = match set(&self.severity) {
            Some(name) => Some(SeverityFilter::parse(&name).ok_or(format!("'{name}' is not a severity"))?),
            None => None,
        };
        let min_score = match set(&self.min_score) {
            Some(text) => {
                let score: f64 = text.parse().map_err(|_| format!("'Score at least' is not a number: {text}"))?;
                if !(0.0..=1.0).contains(&score) {
                    return Err("'Score at least' must be between 0 and 1".into());
                }
                Some(score)
            }
            None => None,
        };
        if let (Some(from), Some(to)) = (from_ms, to_ms)
            && from >= to
        {
            return Err("'From' must be before 'To'".into());
        }
        let sort = if self.sort == "score" { Sort::Score } else { Sort::Time };
        Ok(AnomalyFilter {
            from_ms,
            to_ms,
            agent: set(&self.agent),
            log_type: set(&self.log_type),
            label: set(&self.label),
            severity,
            source: set(&self.source),
            min_score,
            sort,
            cursor: set(&self.cursor),
            limit: Some(PAGE_SIZE),
        })
    }

    fn group(&self) -> HistogramGroup {
        if self.group == "agent" { HistogramGroup::Agent } else { HistogramGroup::Severity }
    }

    /// This query string with the cursor replaced.
    fn with_cursor(&self, cursor: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("from", &self.from),
            ("to", &self.to),
            ("agent", &self.agent),
            ("log_type", &self.log_type),
            ("severity", &self.severity),
            ("label", &self.label),
            ("source", &self.source),
            ("min_score", &self.min_score),
            ("sort", &self.sort),
            ("group", &self.group),
        ] {
            if !value.trim().is_empty() {
                query.append_pair(key, value.trim());
            }
        }
        if let Some(cursor) = cursor {
            query.append_pair("cursor", cursor);
        }
        query.finish()
    }
}

fn select(name: &str, label: &str, current: &str, options: &[(String, String)]) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                option value="" selected[current.is_empty()] { "Any" }
                @for (value, text) in options {
                    option value=(value) selected[current == value] { (text) }
                }
            }
        }
    }
}

fn filter_form(params: &ListParams, agents: &[(String, String)], log_types: &[(String, String)]) -> Markup {
    let severities: Vec<(String, String)> =
        ["critical", "high", "medium", "low", "info"].iter().map(|s| (s.to_string(), s.to_string())).collect();
    let sorts =
        [("time".to_string(), "Newest first".to_string()), ("score".to_string(), "Highest score first".to_string())];
    let groups = [("severity".to_string(), "Severity".to_string()), ("agent".to_string(), "Agent".to_string())];
    html! {
        form.filters method="get" action="/ui/anomalies" role="search" aria-label="Filter anomalies" {
            label.wide { "From (UTC)" input type="datetime-local" name="from" value=(params.from); }
            label.wide { "To (UTC)" input type="datetime-local" name="to" value=(params.to); }
            (select("agent", "Agent", &params.agent, agents))
            (select("log_type", "Log type", &params.log_type, log_types))
            (select("severity", "Severity", &params.severity, &severities))
            label { "Label (exact)" input type="text" name="label" value=(params.label) autocomplete="off"; }
            label { "Source (exact)" input type="text" name="source" value=(params.source) autocomplete="off"; }
            label { "Score at least" input type="number" name="min_score" min="0" max="1" step="0.01" value=(params.min_score); }
            label {
                "Order"
                select name="sort" {
                    @for (value, text) in &sorts { option value=(value) selected[params.sort == *value] { (text) } }
                }
            }
            label {
                "Chart by"
                select name="group" {
                    @for (value, text) in &groups { option value=(value) selected[params.group == *value] { (text) } }
                }
            }
            div.actions {
                button type="submit" { "Apply" }
                a href="/ui/anomalies" { "Clear" }
            }
        }
    }
}

fn anomaly_table(items: &[AnomalyRecord], caption: &str, list_query: &str) -> Markup {
    let suffix = if list_query.is_empty() { String::new() } else { format!("?{list_query}") };
    html! {
        div.scroll {
            table.list {
                caption { (caption) }
                thead {
                    tr {
                        th scope="col" { "Entry time" }
                        th scope="col" { "Severity" }
                        th scope="col" { "Score" }
                        th scope="col" { "Label" }
                        th scope="col" { "Agent" }
                        th scope="col" { "Source" }
                        th scope="col" { "Reason" }
                    }
                }
                tbody {
                    @for item in items {
                        tr {
                            td { a href={ "/ui/anomalies/" (item.id) (suffix) } { (time_element(item.log_ts_ms)) } }
                            td { (severity_badge(&item.severity)) }
                            td.num { (format!("{:.3}", item.score)) }
                            td { (visible(&item.label)) }
                            td { (item.agent) }
                            td { (visible(&item.source)) }
                            td.reason { (visible(&item.reason)) }
                        }
                    }
                }
            }
        }
    }
}

/// The agents and log types the tenant has, for the filter's choices.
async fn choices(state: &Arc<ApiState>, viewer: &Viewer) -> (Vec<(String, String)>, Vec<(String, String)>) {
    let Json(agents) = crate::agents::list_agents(State(state.clone()), viewer.caller.clone()).await;
    let mut log_types: Vec<String> = agents.iter().map(|a| a.log_type.clone()).collect();
    log_types.sort();
    log_types.dedup();
    (
        agents.iter().map(|a| (a.name.clone(), a.name.clone())).collect(),
        log_types.into_iter().map(|t| (t.clone(), t)).collect(),
    )
}

/// `GET /ui/anomalies`
pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let (agents, log_types) = choices(&state, &viewer).await;
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let filter = match params.filter() {
        Ok(filter) => filter,
        Err(problem) => {
            return Ok(list_page(&viewer, &params, &agents, &log_types, Err(problem), StatusCode::BAD_REQUEST));
        }
    };
    let histogram_query =
        api::store_query(AnomalyFilter { cursor: None, ..filter.clone() }, viewer.caller.tenant.clone());
    let group = params.group();
    let listed = api::list_anomalies(State(state.clone()), viewer.caller.clone(), Ok(Query(filter))).await;
    let tenant = viewer.caller.tenant.clone();
    let histogram =
        state.with_anomalies(&tenant, move |store| store.histogram(&histogram_query, group, CHART_SLOTS)).await;
    let outcome = match (listed, histogram) {
        (Ok(Json(page)), Ok(histogram)) => Ok((page, histogram)),
        (Err(error), _) | (_, Err(error)) if error.status.is_client_error() => Err(error.detail),
        (Err(error), _) | (_, Err(error)) => return Err(ConsoleError::Api(error)),
    };
    let status = if outcome.is_ok() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Ok(list_page(&viewer, &params, &agents, &log_types, outcome, status))
}

fn list_page(
    viewer: &Viewer,
    params: &ListParams,
    agents: &[(String, String)],
    log_types: &[(String, String)],
    outcome: Result<(api::AnomalyPage, mcp_storage::histogram::Histogram), String>,
    status: StatusCode,
) -> Response {
    let what = if params.group() == HistogramGroup::Agent { "agent" } else { "severity" };
    let body = html! {
        (filter_form(params, agents, log_types))
        @match &outcome {
            Err(problem) => { p.error role="alert" { (problem) } }
            Ok((listed, histogram)) => {
                p.count role="status" {
                    strong data-count=(histogram.total()) { (histogram.total()) }
                    @if histogram.total() == 1 { " anomaly matches" } @else { " anomalies match" }
                }
                (super::chart::render(histogram, what))
                @if listed.items.is_empty() {
                    (empty("No anomalies match these filters."))
                } @else {
                    (anomaly_table(&listed.items, &format!("{} on this page", listed.items.len()), &params.with_cursor(set(&params.cursor).as_deref())))
                }
                nav.pager aria-label="Pages" {
                    @if !params.cursor.trim().is_empty() {
                        a href={ "/ui/anomalies?" (params.with_cursor(None)) } { "First page" }
                    }
                    @if let Some(next) = &listed.next_cursor {
                        a href={ "/ui/anomalies?" (params.with_cursor(Some(next))) } rel="next" { "Next page" }
                    }
                }
            }
        }
    };
    (status, page("Anomalies", Some(viewer), "Anomalies", None, body)).into_response()
}

/// `ms` as a `datetime-local` field's value (UTC, to the minute), rounded
/// down or up.
fn minute_value(ms: i64, round_up: bool) -> String {
    let minute = 60_000;
    let ms = if round_up { (ms + minute - 1).div_euclid(minute) * minute } else { ms.div_euclid(minute) * minute };
    page::time(ms).get(..16).map(|t| t.replace(' ', "T")).unwrap_or_default()
}

/// `GET /ui/anomalies/{id}`; the list's filters, when given, make the way
/// back to the same list.
pub(crate) async fn detail(
    State(state): State<Arc<ApiState>>,
    viewer: Viewer,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    list: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Markup, ConsoleError> {
    let id = id.map_err(|_| ConsoleError::Api(ApiError::not_found("no such anomaly")))?;
    let Json(anomaly) = api::get_anomaly(State(state.clone()), viewer.caller.clone(), Ok(id)).await?;
    let back = match list.ok().map(|Query(l)| l.with_cursor(set(&l.cursor).as_deref())) {
        Some(query) if !query.is_empty() => format!("/ui/anomalies?{query}"),
        _ => "/ui/anomalies".to_string(),
    };
    let of_source = |from_ms: i64, to_ms: i64, limit: u32| AnomalyFilter {
        source: Some(anomaly.source.clone()),
        from_ms: Some(from_ms),
        to_ms: Some(to_ms),
        limit: Some(limit),
        ..AnomalyFilter::default()
    };
    let ts = anomaly.log_ts_ms;
    // Other findings on the same entry (an entry often draws several).
    let same_time = of_source(ts, ts.saturating_add(1), 100);
    let Json(same) = api::list_anomalies(State(state.clone()), viewer.caller.clone(), Ok(Query(same_time))).await?;
    let same_entry: Vec<AnomalyRecord> =
        same.items.into_iter().filter(|n| n.log_id == anomaly.log_id && n.id != anomaly.id).collect();
    // The nearest before it, newest first.
    let earlier = of_source(ts.saturating_sub(NEIGHBOURHOOD_MS), ts, 10);
    let Json(before) = api::list_anomalies(State(state.clone()), viewer.caller.clone(), Ok(Query(earlier))).await?;
    // How many the window holds in all, and the list of them.
    let (window_from, window_to) = (ts.saturating_sub(NEIGHBOURHOOD_MS), ts.saturating_add(NEIGHBOURHOOD_MS));
    let window_query = api::store_query(of_source(window_from, window_to, 1), viewer.caller.tenant.clone());
    let tenant = viewer.caller.tenant.clone();
    let in_window = state
        .with_anomalies(&tenant, move |store| store.histogram(&window_query, HistogramGroup::Severity, 1))
        .await
        .map(|h| h.total())
        .ok();
    // The serializer is not Send: it is gone before the next await.
    let window_link = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("source", &anomaly.source)
            .append_pair("from", &minute_value(window_from, false))
            .append_pair("to", &minute_value(window_to, true));
        format!("/ui/anomalies?{}", query.finish())
    };
    // The agent's version is known for the build the tenant has now; an
    // anomaly of an earlier build is said to be one.
    let agent_now =
        crate::agents::get_agent(State(state.clone()), viewer.caller.clone(), Path(anomaly.agent.clone())).await.ok();
    let agent_version = match agent_now {
        Some(Json(agent)) if agent.sha256 == anomaly.agent_sha256 => format!("version {}", agent.agent_version),
        Some(_) => "an earlier build than the tenant's current one".to_string(),
        None => "a build no longer installed".to_string(),
    };
    let source_link: String = form_urlencoded::byte_serialize(anomaly.source.as_bytes()).collect();
    let body = html! {
        p { a href=(back) { "← Back to the list" } }
        dl.facts {
            dt { "Severity" } dd { (severity_badge(&anomaly.severity)) }
            dt { "Score" } dd { (format!("{:.3}", anomaly.score)) }
            dt { "Label" } dd { (visible(&anomaly.label)) }
            dt { "Reason" } dd { (visible(&anomaly.reason)) }
            dt { "Entry time" } dd { (time_element(anomaly.log_ts_ms)) }
            dt { "Detected" } dd { (time_element(anomaly.detected_at_ms)) }
            dt { "Source" } dd { a href={ "/ui/anomalies?source=" (source_link) } { (visible(&anomaly.source)) } }
            dt { "Log type" } dd { (anomaly.log_type) " (schema version " (anomaly.schema_version) ")" }
            dt { "Log entry id" } dd { (anomaly.log_id) }
            dt { "Agent" } dd { (anomaly.agent) ", " (visible(&agent_version)) }
            dt { "Agent build (SHA-256)" } dd { code.hash { (anomaly.agent_sha256) } }
            dt { "Model" } dd { (anomaly.model.as_deref().unwrap_or("none (rules only)")) }
        }
        h2 { "The log entry" }
        @match &anomaly.entry_fields {
            Some(fields) => { pre.entry { (visible(&page::pretty_json(fields))) } }
            None => { (empty("The entry's fields were not stored with this anomaly.")) }
        }
        h2 { "Other findings on this entry" }
        @if same_entry.is_empty() {
            (empty("None: this is the only anomaly of this entry."))
        } @else {
            (anomaly_table(&same_entry, &format!("{} more on entry {}", same_entry.len(), anomaly.log_id), ""))
        }
        h2 { "Neighbours from the same source" }
        p {
            @match in_window {
                Some(count) => { (count) " anomalies of " (visible(&anomaly.source)) " within 15 minutes either side, this one included: " }
                None => { "Anomalies of " (visible(&anomaly.source)) " within 15 minutes either side: " }
            }
            a href=(window_link) { "list them all" }
            "."
        }
        @if before.items.is_empty() {
            (empty("None in the 15 minutes before it."))
        } @else {
            (anomaly_table(&before.items, &format!("The {} nearest before it, newest first", before.items.len()), ""))
        }
    };
    Ok(page(&format!("Anomaly {}", anomaly.id), Some(&viewer), "Anomalies", None, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_the_api_filter_and_refuses_what_it_cannot_read() {
        let params = ListParams {
            from: "2026-12-03T10:00".into(),
            severity: "high".into(),
            min_score: "0.5".into(),
            sort: "score".into(),
            agent: "  ".into(),
            ..Default::default()
        };
        let filter = params.filter().expect("a valid form");
        assert!(filter.from_ms.is_some() && filter.agent.is_none());
        assert_eq!(filter.sort, Sort::Score);
        assert!(ListParams { min_score: "2".into(), ..Default::default() }.filter().is_err());
        assert!(ListParams { severity: "worst".into(), ..Default::default() }.filter().is_err());
        assert!(ListParams { to: "yesterday".into(), ..Default::default() }.filter().is_err());
    }

    #[test]
    fn paging_links_keep_the_filters() {
        let params = ListParams { label: "dga".into(), cursor: "1_2".into(), ..Default::default() };
        assert_eq!(params.with_cursor(Some("5_6")), "label=dga&cursor=5_6");
        assert_eq!(params.with_cursor(None), "label=dga");
    }
}
