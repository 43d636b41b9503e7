//! Exports through the API: each format read back by an independent reader
//! and compared with the store's own pages, page boundaries, filters,
//! cancellation, another tenant's view, and a restart in the middle.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use mcp_api::Role;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::{Api, api_configured, problem};
use mcp_storage::jobstatus::SharedCache;

fn exports_api(page_rows: u32) -> anyhow::Result<Api> {
    api_configured(SharedCache::open(None, "", Default::default())?, &["alpha", "beta"], |config, _| {
        config.exports.page_rows = page_rows;
        Ok(())
    })
}

/// Starts an export and waits for it to end; its final view.
fn export(api: &Api, token: &str, request: &Value) -> anyhow::Result<Value> {
    let started = api.call("POST", "/v1/exports", Some(token), Some(&request.to_string()))?;
    anyhow::ensure!(started.status == StatusCode::ACCEPTED, "export not started: {}", started.body);
    let id = started.body["id"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = api.get(&format!("/v1/exports/{id}"), token)?;
        let state = view.body["state"].as_str().unwrap_or_default().to_string();
        if state != "queued" && state != "running" {
            return Ok(view.body);
        }
        anyhow::ensure!(Instant::now() < deadline, "export {id} did not end: {}", view.body);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every id the anomaly pages give for `filter`, newest first.
fn paged_ids(api: &Api, token: &str, filter: &str) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api.get(&format!("/v1/anomalies?limit=1000{filter}{cursor}"), token)?;
        ids.extend(page.body["items"].as_array().into_iter().flatten().filter_map(|a| a["id"].as_i64()));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return Ok(ids),
        }
    }
}

/// Downloads an export, checks its length and ETag against its record.
fn download(api: &Api, token: &str, view: &Value) -> anyhow::Result<Vec<u8>> {
    let id = view["id"].as_str().unwrap_or_default();
    let (status, headers, body) = api.download(&format!("/v1/exports/{id}/download"), token)?;
    anyhow::ensure!(status == StatusCode::OK, "download of {id}: {status}");
    let sha256 = hex::encode(Sha256::digest(&body));
    anyhow::ensure!(Some(sha256.as_str()) == view["sha256"].as_str(), "the file's sha256 is not the record's");
    anyhow::ensure!(headers.get("etag").and_then(|v| v.to_str().ok()) == Some(format!("\"{sha256}\"").as_str()));
    anyhow::ensure!(
        headers.get("content-length").and_then(|v| v.to_str().ok()) == Some(body.len().to_string().as_str())
    );
    anyhow::ensure!(
        view["bytes"].as_u64() == Some(body.len() as u64),
        "bytes {} for {} downloaded",
        view["bytes"],
        body.len()
    );
    Ok(body)
}

#[test]
fn each_format_reads_back_as_the_store_pages_it() -> anyhow::Result<()> {
    let api = exports_api(7)?;
    let token = api.token("alpha", Role::ReadOnly);
    for (filter, request) in [
        ("", json!({ "format": "jsonl" })),
        ("&severity=high", json!({ "format": "jsonl", "severity": "high" })),
        ("&agent=firewall&min_score=0.5", json!({ "format": "csv", "agent": "firewall", "min_score": 0.5 })),
        ("&from_ms=0&to_ms=1", json!({ "format": "csv", "from_ms": 0, "to_ms": 1 })),
    ] {
        let expected = paged_ids(&api, token, filter)?;
        let view = export(&api, token, &request)?;
        assert_eq!(view["state"], "completed", "{view}");
        assert_eq!(view["rows"].as_u64(), Some(expected.len() as u64), "{filter}: {view}");
        let body = download(&api, token, &view)?;
        let ids: Vec<i64> = if request["format"] == "jsonl" {
            String::from_utf8(body)?
                .lines()
                .map(|line| serde_json::from_str::<Value>(line).map(|a| a["id"].as_i64().unwrap_or_default()))
                .collect::<Result<_, _>>()?
        } else {
            let mut reader = csv::Reader::from_reader(body.as_slice());
            let headers = reader.headers()?.clone();
            let id_column = headers.iter().position(|h| h == "id").unwrap_or(usize::MAX);
            reader
                .records()
                .map(|r| Ok(r?.get(id_column).unwrap_or_default().parse::<i64>()?))
                .collect::<anyhow::Result<_>>()?
        };
        assert_eq!(ids, expected, "{filter}: the file holds exactly the pages' anomalies, in their order");
    }
    Ok(())
}

#[test]
fn page_boundaries_lose_and_repeat_nothing() -> anyhow::Result<()> {
    let probe = exports_api(1000)?;
    let token = probe.token("alpha", Role::ReadOnly);
    let total = paged_ids(&probe, token, "&agent=firewall")?.len() as u32;
    assert!(total > 2, "the fixture has anomalies to export");
    for page_rows in [total - 1, total, total + 1] {
        let api = exports_api(page_rows)?;
        let view =
            export(&api, api.token("alpha", Role::ReadOnly), &json!({ "format": "jsonl", "agent": "firewall" }))?;
        assert_eq!(view["rows"].as_u64(), Some(u64::from(total)), "pages of {page_rows}: {view}");
    }
    Ok(())
}

#[test]
fn exports_are_the_tenants_own_and_bad_filters_are_named() -> anyhow::Result<()> {
    let api = exports_api(100)?;
    let alpha = api.token("alpha", Role::ReadOnly);
    let beta = api.token("beta", Role::TenantAdmin);
    let view = export(&api, alpha, &json!({ "format": "csv" }))?;
    let id = view["id"].as_str().unwrap_or_default().to_string();
    problem(&api.get(&format!("/v1/exports/{id}"), beta)?, StatusCode::NOT_FOUND, "not_found");
    problem(&api.get(&format!("/v1/exports/{id}/download"), beta)?, StatusCode::NOT_FOUND, "not_found");
    problem(&api.call("DELETE", &format!("/v1/exports/{id}"), Some(beta), None)?, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(api.get("/v1/exports", beta)?.body["items"], json!([]));
    assert_eq!(api.get("/v1/exports", alpha)?.body["items"][0]["id"], json!(id));

    let refused = |body: Value| api.call("POST", "/v1/exports", Some(alpha), Some(&body.to_string()));
    let inverted = refused(json!({ "format": "jsonl", "from_ms": 10, "to_ms": 5 }))?;
    problem(&inverted, StatusCode::UNPROCESSABLE_ENTITY, "invalid_filter");
    assert!(inverted.body["detail"].as_str().unwrap_or_default().starts_with("from_ms"), "{}", inverted.body);
    problem(&refused(json!({ "format": "parquet2" }))?, StatusCode::BAD_REQUEST, "bad_request");
    problem(&refused(json!({ "format": "jsonl", "colour": "red" }))?, StatusCode::BAD_REQUEST, "bad_request");
    let unknown = refused(json!({ "format": "jsonl", "agent": "nobody" }))?;
    problem(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "invalid_filter");
    assert!(unknown.body["detail"].as_str().unwrap_or_default().starts_with("agent"), "{}", unknown.body);

    // Deleting a finished export removes its record and its file.
    assert_eq!(api.call("DELETE", &format!("/v1/exports/{id}"), Some(alpha), None)?.status, StatusCode::NO_CONTENT);
    problem(&api.get(&format!("/v1/exports/{id}"), alpha)?, StatusCode::NOT_FOUND, "not_found");
    Ok(())
}

#[test]
fn a_cancelled_export_leaves_no_file_and_a_restart_fails_an_unfinished_one() -> anyhow::Result<()> {
    let mut exports_dir = std::path::PathBuf::new();
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha"], |config, _| {
        config.exports.page_rows = 1;
        exports_dir = config.data_dir.join("exports").join("alpha");
        // An export a previous process left running.
        let control = mcp_storage::control::ControlStore::open(&config.control_db())?;
        control.create_export("export-1-00000000", "alpha", 1, "jsonl", "{}")?;
        control.export_progress("export-1-00000000", 5, 100)?;
        Ok(())
    })?;
    let token = api.token("alpha", Role::TenantAdmin);
    let interrupted = api.get("/v1/exports/export-1-00000000", token)?;
    assert_eq!(interrupted.body["state"], "failed", "{}", interrupted.body);
    assert!(interrupted.body["error"].as_str().unwrap_or_default().contains("restart"), "{}", interrupted.body);

    let started = api.call("POST", "/v1/exports", Some(token), Some(r#"{"format":"jsonl"}"#))?;
    let id = started.body["id"].as_str().unwrap_or_default().to_string();
    let cancel = api.call("DELETE", &format!("/v1/exports/{id}"), Some(token), None)?;
    assert!(cancel.status == StatusCode::ACCEPTED || cancel.status == StatusCode::NO_CONTENT, "{}", cancel.body);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = api.get(&format!("/v1/exports/{id}"), token)?;
        let state = view.body["state"].as_str().unwrap_or_default().to_string();
        if view.status == StatusCode::NOT_FOUND || state == "cancelled" {
            break;
        }
        assert!(Instant::now() < deadline, "the export did not stop: {}", view.body);
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<String> = std::fs::read_dir(&exports_dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with(&id))
        .collect();
    assert!(left.is_empty(), "a stopped export left {left:?}");
    let download = api.get(&format!("/v1/exports/{id}/download"), token)?;
    assert!(download.status == StatusCode::CONFLICT || download.status == StatusCode::NOT_FOUND, "{}", download.body);
    Ok(())
}
