//! Exports through the API: every filter alone and together against the
//! tenant's anomalies filtered here, each format read back by an
//! independent reader, page boundaries, ranged downloads, cancellation,
//! another tenant's view, a restart in the middle, Redis killed in the
//! middle, and retention.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use mcp_api::Role;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::{Api, api_configured, problem};
use mcp_storage::jobstatus::{SharedCache, now_ms};
use mcp_storage::retry::RetryPolicy;

fn exports_api(page_rows: u32) -> anyhow::Result<Api> {
    api_configured(SharedCache::open(None, "", Default::default())?, &["alpha", "beta"], |config, _| {
        config.exports.page_rows = page_rows;
        Ok(())
    })
}

/// Starts an export; its id.
fn start(api: &Api, token: &str, request: &Value) -> anyhow::Result<String> {
    let started = api.call("POST", "/v1/exports", Some(token), Some(&request.to_string()))?;
    anyhow::ensure!(started.status == StatusCode::ACCEPTED, "export not started: {}", started.body);
    Ok(started.body["id"].as_str().unwrap_or_default().to_string())
}

/// Waits for export `id` to end; its final view.
fn wait(api: &Api, token: &str, id: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
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

pub(crate) fn export(api: &Api, token: &str, request: &Value) -> anyhow::Result<Value> {
    let id = start(api, token, request)?;
    wait(api, token, &id)
}

/// Every anomaly of the tenant, newest first, as the anomaly pages give them.
fn all_anomalies(api: &Api, token: &str) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api.get(&format!("/v1/anomalies?limit=1000{cursor}"), token)?;
        all.extend(page.body["items"].as_array().into_iter().flatten().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return Ok(all),
        }
    }
}

/// Whether `anomaly` passes `request`'s filters, judged here from their
/// meaning in the API's documentation, not from the server's code.
pub(crate) fn passes(anomaly: &Value, request: &Value) -> bool {
    let text = |field: &str| anomaly[field].as_str().unwrap_or_default().to_string();
    let number = |field: &str| anomaly[field].as_f64().unwrap_or_default();
    let listed = |filter: &str, field: &str| {
        request[filter].as_array().is_none_or(|values| values.iter().any(|v| v.as_str() == Some(&text(field))))
    };
    let at_least = |filter: &str, field: &str| request[filter].as_f64().is_none_or(|bound| number(field) >= bound);
    let below = |filter: &str, field: &str| request[filter].as_f64().is_none_or(|bound| number(field) < bound);
    listed("agents", "agent")
        && listed("log_types", "log_type")
        && listed("labels", "label")
        && listed("severities", "severity")
        && listed("sources", "source")
        && listed("models", "model")
        && at_least("min_score", "score")
        && request["max_score"].as_f64().is_none_or(|bound| number("score") <= bound)
        && at_least("from_ms", "log_ts_ms")
        && below("to_ms", "log_ts_ms")
        && at_least("detected_from_ms", "detected_at_ms")
        && below("detected_to_ms", "detected_at_ms")
}

/// Downloads an export, checks its length and ETag against its record.
pub(crate) fn download(api: &Api, token: &str, view: &Value) -> anyhow::Result<Vec<u8>> {
    let id = view["id"].as_str().unwrap_or_default();
    let (status, headers, body) = api.download(&format!("/v1/exports/{id}/download"), token)?;
    anyhow::ensure!(status == StatusCode::OK, "download of {id}: {status}");
    let sha256 = hex::encode(Sha256::digest(&body));
    anyhow::ensure!(Some(sha256.as_str()) == view["sha256"].as_str(), "the file's sha256 is not the record's");
    anyhow::ensure!(headers.get("etag").and_then(|v| v.to_str().ok()) == Some(format!("\"{sha256}\"").as_str()));
    anyhow::ensure!(
        headers.get("content-length").and_then(|v| v.to_str().ok()) == Some(body.len().to_string().as_str())
    );
    anyhow::ensure!(view["bytes"].as_u64() == Some(body.len() as u64), "bytes {} for {}", view["bytes"], body.len());
    Ok(body)
}

/// The rows of a downloaded file, each as the JSON object of its columns.
fn rows_of(format: &str, body: Vec<u8>) -> anyhow::Result<Vec<Value>> {
    match format {
        "jsonl" => Ok(String::from_utf8(body)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?),
        "csv" => {
            let mut reader = csv::Reader::from_reader(body.as_slice());
            let headers = reader.headers()?.clone();
            reader
                .records()
                .map(|record| {
                    let record = record?;
                    Ok(Value::Object(
                        headers.iter().zip(record.iter()).map(|(h, v)| (h.to_string(), json!(v))).collect(),
                    ))
                })
                .collect()
        }
        _ => {
            let reader = SerializedFileReader::new(bytes::Bytes::from(body))?;
            reader
                .get_row_iter(None)?
                .map(|row| {
                    let row = row?;
                    Ok(Value::Object(
                        row.get_column_iter()
                            .map(|(name, field)| {
                                let value = match field {
                                    Field::Long(n) | Field::TimestampMillis(n) => json!(n),
                                    Field::Int(n) => json!(n),
                                    Field::Double(x) => json!(x),
                                    Field::Str(s) => json!(s),
                                    Field::Null => Value::Null,
                                    other => json!(format!("unexpected {other:?}")),
                                };
                                (name.clone(), value)
                            })
                            .collect(),
                    ))
                })
                .collect()
        }
    }
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().or_else(|| r["id"].as_str()?.parse().ok()).unwrap_or_default()).collect()
}

#[test]
fn every_filter_alone_and_together_selects_what_its_documentation_says() -> anyhow::Result<()> {
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha"], |config, _| {
        config.exports.page_rows = 50;
        // Beside the firewall agent's own: more sources, models, detection times.
        fill_anomalies(&config.anomalies_db(), "alpha", 2_000)
    })?;
    let token = api.token("alpha", Role::ReadOnly);
    let all = all_anomalies(&api, token)?;
    assert!(all.len() > 50, "the fixture has anomalies to export: {}", all.len());
    let distinct = |field: &str| -> Vec<Value> {
        let set: BTreeSet<String> = all.iter().filter_map(|a| a[field].as_str().map(String::from)).collect();
        set.into_iter().map(Value::from).collect()
    };
    let middle = |field: &str| {
        let mut values: Vec<i64> = all.iter().filter_map(|a| a[field].as_i64()).collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    let (labels, sources, severities, models) =
        (distinct("label"), distinct("source"), distinct("severity"), distinct("model"));
    assert!(
        labels.len() > 1 && sources.len() > 2 && severities.len() > 1,
        "the fixture varies: {labels:?} {sources:?} {severities:?} {models:?}"
    );
    let log_middle = middle("log_ts_ms");
    let detected_middle = middle("detected_at_ms");
    let two = |values: &[Value]| json!(values.iter().take(2).collect::<Vec<_>>());
    let requests = [
        json!({}),
        json!({ "from_ms": log_middle }),
        json!({ "to_ms": log_middle }),
        json!({ "from_ms": log_middle - 60_000, "to_ms": log_middle + 60_000 }),
        json!({ "detected_from_ms": detected_middle }),
        json!({ "detected_to_ms": detected_middle + 1 }),
        json!({ "agents": ["firewall"] }),
        json!({ "agents": ["firewall", "filler"] }),
        json!({ "log_types": ["dns", "wifi"] }),
        json!({ "labels": [labels[0]] }),
        json!({ "labels": two(&labels) }),
        json!({ "severities": [severities[0]] }),
        json!({ "severities": two(&severities) }),
        json!({ "sources": [sources[0]] }),
        json!({ "sources": two(&sources) }),
        json!({ "models": [models[0]] }),
        json!({ "models": two(&models) }),
        json!({ "models": ["none@1"] }),
        json!({ "min_score": 0.5 }),
        json!({ "max_score": 0.5 }),
        json!({ "min_score": 0.3, "max_score": 0.7 }),
        json!({ "labels": two(&labels), "severities": two(&severities), "min_score": 0.2, "from_ms": log_middle, "sources": sources }),
        json!({ "agents": ["firewall"], "labels": [labels[0]], "max_score": 0.9, "detected_from_ms": 0 }),
    ];
    let mut nonempty = 0;
    for (n, filters) in requests.iter().enumerate() {
        let format = ["jsonl", "csv", "parquet"][n % 3];
        let mut request = filters.clone();
        request["format"] = json!(format);
        let expected: Vec<i64> = ids(&all.iter().filter(|a| passes(a, &request)).cloned().collect::<Vec<_>>());
        let view = export(&api, token, &request)?;
        assert_eq!(view["state"], "completed", "{request}: {view}");
        assert_eq!(view["rows"].as_u64(), Some(expected.len() as u64), "{request}: {view}");
        assert_eq!(view["percent"], json!(100.0), "{view}");
        let got = ids(&rows_of(format, download(&api, token, &view)?)?);
        assert_eq!(got, expected, "{request}: the file holds exactly the anomalies that pass, newest first");
        nonempty += usize::from(!expected.is_empty() && expected.len() < all.len());
    }
    assert!(nonempty >= 10, "most filters select some but not all anomalies ({nonempty})");
    Ok(())
}

#[test]
fn each_format_holds_the_same_values_typed() -> anyhow::Result<()> {
    let api = exports_api(1000)?;
    let token = api.token("alpha", Role::ReadOnly);
    let all = all_anomalies(&api, token)?;
    let mut files = Vec::new();
    for format in ["jsonl", "csv", "parquet"] {
        let view = export(&api, token, &json!({ "format": format }))?;
        files.push(rows_of(format, download(&api, token, &view)?)?);
    }
    assert_eq!(files[0].len(), all.len());
    for (n, expected) in all.iter().enumerate() {
        for (format, rows) in ["jsonl", "csv", "parquet"].iter().zip(&files) {
            let row = &rows[n];
            for column in mcp_engine::export::COLUMNS {
                let want = &expected[column];
                let got = &row[column];
                let same = match (want, got) {
                    // CSV has no types: compare the text, an empty cell for null.
                    (_, Value::String(cell)) if *format == "csv" => match want {
                        Value::Null => cell.is_empty(),
                        Value::String(s) => s == cell,
                        Value::Number(n) => cell.parse::<f64>().ok() == n.as_f64(),
                        _ => false,
                    },
                    (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                    _ => want == got,
                };
                assert!(same, "{format} row {n} column {column}: {got} for {want}");
            }
        }
    }
    Ok(())
}

#[test]
fn an_empty_export_still_names_its_columns() -> anyhow::Result<()> {
    let api = exports_api(100)?;
    let token = api.token("alpha", Role::ReadOnly);
    for format in ["jsonl", "csv", "parquet"] {
        let view = export(&api, token, &json!({ "format": format, "from_ms": 0, "to_ms": 1 }))?;
        assert_eq!(view["rows"], 0, "{view}");
        let body = download(&api, token, &view)?;
        match format {
            "jsonl" => assert!(body.is_empty()),
            "csv" => assert_eq!(
                String::from_utf8(body)?.trim_end(),
                mcp_engine::export::COLUMNS.join(","),
                "an empty CSV is its header"
            ),
            _ => {
                let reader = SerializedFileReader::new(bytes::Bytes::from(body))?;
                let schema = reader.metadata().file_metadata().schema_descr();
                let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
                assert_eq!(names, mcp_engine::export::COLUMNS);
                assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
            }
        }
    }
    Ok(())
}

#[test]
fn page_boundaries_lose_and_repeat_nothing() -> anyhow::Result<()> {
    let probe = exports_api(1000)?;
    let token = probe.token("alpha", Role::ReadOnly);
    let all = all_anomalies(&probe, token)?;
    let firewall = all.iter().filter(|a| a["agent"] == "firewall").count() as u32;
    assert!(firewall > 2 && all.len() as u32 > 2, "the fixture has anomalies to export");
    // One agent drives the walk by its index (windows of matching rows);
    // none walks every anomaly; a label of several keeps some of each window.
    for (filters, total) in [(json!({ "agents": ["firewall"] }), firewall), (json!({}), all.len() as u32)] {
        for page_rows in [total - 1, total, total + 1, 1] {
            let api = exports_api(page_rows)?;
            let mut request = filters.clone();
            request["format"] = json!("parquet");
            let token = api.token("alpha", Role::ReadOnly);
            let view = export(&api, token, &request)?;
            assert_eq!(view["rows"].as_u64(), Some(u64::from(total)), "windows of {page_rows}: {view}");
            let got = ids(&rows_of("parquet", download(&api, token, &view)?)?);
            assert_eq!(got, ids(&all.iter().filter(|a| passes(a, &request)).cloned().collect::<Vec<_>>()));
        }
    }
    Ok(())
}

#[test]
fn a_ranged_download_resumes_to_the_same_file() -> anyhow::Result<()> {
    let api = exports_api(100)?;
    let token = api.token("alpha", Role::ReadOnly);
    let view = export(&api, token, &json!({ "format": "parquet" }))?;
    let whole = download(&api, token, &view)?;
    let id = view["id"].as_str().unwrap_or_default();
    let uri = format!("/v1/exports/{id}/download");
    let etag = format!("\"{}\"", view["sha256"].as_str().unwrap_or_default());
    // A client that received the first third resumes from there.
    let cut = whole.len() / 3;
    let (status, headers, rest) =
        api.download_with(&uri, token, &[("range", &format!("bytes={cut}-")), ("if-range", &etag)])?;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        headers.get("content-range").and_then(|v| v.to_str().ok()),
        Some(format!("bytes {cut}-{}/{}", whole.len() - 1, whole.len()).as_str())
    );
    assert_eq!(
        headers.get("content-length").and_then(|v| v.to_str().ok()),
        Some((whole.len() - cut).to_string().as_str())
    );
    let resumed = [&whole[..cut], &rest[..]].concat();
    assert_eq!(hex::encode(Sha256::digest(&resumed)), view["sha256"].as_str().unwrap_or_default());
    // A middle slice, the last bytes, a range past the end, another file's ETag.
    let (status, _, middle) = api.download_with(&uri, token, &[("range", "bytes=4-11")])?;
    assert_eq!((status, middle.as_slice()), (StatusCode::PARTIAL_CONTENT, &whole[4..12]));
    let (status, _, tail) = api.download_with(&uri, token, &[("range", "bytes=-8")])?;
    assert_eq!((status, tail.as_slice()), (StatusCode::PARTIAL_CONTENT, &whole[whole.len() - 8..]));
    let (status, headers, _) = api.download_with(&uri, token, &[("range", &format!("bytes={}-", whole.len()))])?;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        headers.get("content-range").and_then(|v| v.to_str().ok()),
        Some(format!("bytes */{}", whole.len()).as_str())
    );
    let (status, _, body) = api.download_with(&uri, token, &[("range", "bytes=0-3"), ("if-range", "\"other\"")])?;
    assert_eq!((status, body.len()), (StatusCode::OK, whole.len()), "a range for another file gets the whole file");
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
    assert!(view["token_id"].as_i64().is_some_and(|t| t > 0), "the record names the token: {view}");

    let refused = |body: Value| api.call("POST", "/v1/exports", Some(alpha), Some(&body.to_string()));
    for (body, field) in [
        (json!({ "format": "jsonl", "from_ms": 10, "to_ms": 5 }), "to_ms"),
        (json!({ "format": "jsonl", "detected_from_ms": 10, "detected_to_ms": 5 }), "detected_to_ms"),
        (json!({ "format": "jsonl", "min_score": 0.8, "max_score": 0.2 }), "max_score"),
        (json!({ "format": "jsonl", "agents": ["firewall", "nobody"] }), "agents"),
        (json!({ "format": "jsonl", "from_ms": 10, "to_ms": 10 }), "to_ms"),
    ] {
        let reply = refused(body.clone())?;
        problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_filter");
        assert!(reply.body["detail"].as_str().unwrap_or_default().starts_with(field), "{body}: {}", reply.body);
    }
    for (body, field) in [
        (json!({ "format": "parquet2" }), "format"),
        (json!({ "format": "jsonl", "colour": "red" }), "colour"),
        (json!({ "format": "jsonl", "min_score": 1.5 }), "min_score"),
        (json!({ "format": "jsonl", "labels": [] }), "labels"),
        (json!({ "format": "jsonl", "severities": ["urgent"] }), "severities"),
        (
            json!({ "format": "jsonl", "severities": ["info", "low", "medium", "high", "critical", "info"] }),
            "severities",
        ),
        (json!({ "format": "jsonl", "sources": ["x".repeat(257)] }), "sources"),
        (json!({ "format": "jsonl", "labels": [""] }), "labels"),
        (json!({ "format": "jsonl", "models": ["no-version"] }), "models"),
    ] {
        let reply = refused(body.clone())?;
        problem(&reply, StatusCode::BAD_REQUEST, "bad_request");
        assert!(reply.body["detail"].as_str().unwrap_or_default().contains(field), "{body}: {}", reply.body);
    }

    problem(&api.get("/v1/exports?cursor=garbage", alpha)?, StatusCode::BAD_REQUEST, "bad_request");

    // A read_only token undoes only its own exports.
    let admin = api.token("alpha", Role::Admin);
    let admins = export(&api, admin, &json!({ "format": "jsonl" }))?;
    let admins = admins["id"].as_str().unwrap_or_default().to_string();
    problem(
        &api.call("DELETE", &format!("/v1/exports/{admins}"), Some(alpha), None)?,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_eq!(api.call("DELETE", &format!("/v1/exports/{admins}"), Some(admin), None)?.status, StatusCode::NO_CONTENT);

    // Deleting a finished export removes its record and its file.
    assert_eq!(api.call("DELETE", &format!("/v1/exports/{id}"), Some(alpha), None)?.status, StatusCode::NO_CONTENT);
    problem(&api.get(&format!("/v1/exports/{id}"), alpha)?, StatusCode::NOT_FOUND, "not_found");
    Ok(())
}

#[test]
fn a_tenant_keeps_a_bounded_number_of_exports() -> anyhow::Result<()> {
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha"], |config, _| {
        config.exports.kept_per_tenant = 2;
        Ok(())
    })?;
    let token = api.token("alpha", Role::Admin);
    let first = export(&api, token, &json!({ "format": "csv" }))?;
    export(&api, token, &json!({ "format": "jsonl" }))?;
    let third = api.call("POST", "/v1/exports", Some(token), Some(&json!({ "format": "csv" }).to_string()))?;
    problem(&third, StatusCode::CONFLICT, "over_budget");
    let first = first["id"].as_str().unwrap_or_default();
    assert_eq!(api.call("DELETE", &format!("/v1/exports/{first}"), Some(token), None)?.status, StatusCode::NO_CONTENT);
    export(&api, token, &json!({ "format": "csv" }))?;
    Ok(())
}

/// The files of the exports folder of `tenant` whose names start with `id`.
fn files_of(data_dir: &std::path::Path, tenant: &str, id: &str) -> anyhow::Result<Vec<String>> {
    let folder = data_dir.join("exports").join(tenant);
    if !folder.exists() {
        return Ok(Vec::new());
    }
    Ok(std::fs::read_dir(folder)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with(id))
        .collect())
}

#[test]
fn a_cancelled_export_leaves_no_file_and_a_restart_fails_an_unfinished_one() -> anyhow::Result<()> {
    let mut data_dir = std::path::PathBuf::new();
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha"], |config, _| {
        config.exports.page_rows = 1;
        data_dir = config.data_dir.clone();
        // An export a previous process left running.
        let control = mcp_storage::control::ControlStore::open(&config.control_db())?;
        control.create_export("export-1-00000000", "alpha", 1, "jsonl", "{}")?;
        control.export_progress(
            "export-1-00000000",
            &mcp_storage::exports::ExportCounts { rows: 5, ..Default::default() },
        )?;
        // ... and its partial file, which a crash never removed.
        let folder = config.data_dir.join("exports").join("alpha");
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join("export-1-00000000.jsonl.part"), "{\"id\":1}\n")?;
        Ok(())
    })?;
    assert!(files_of(&data_dir, "alpha", "export-1-00000000")?.is_empty(), "a partial file outlived the restart");
    let token = api.token("alpha", Role::TenantAdmin);
    let interrupted = api.get("/v1/exports/export-1-00000000", token)?;
    assert_eq!(interrupted.body["state"], "failed", "{}", interrupted.body);
    assert!(interrupted.body["error"].as_str().unwrap_or_default().contains("restart"), "{}", interrupted.body);

    for format in ["jsonl", "parquet"] {
        let id = start(&api, token, &json!({ "format": format }))?;
        let cancel = api.call("DELETE", &format!("/v1/exports/{id}"), Some(token), None)?;
        assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.body);
        let view = wait(&api, token, &id)?;
        assert_eq!(view["state"], "cancelled", "{view}");
        assert!(files_of(&data_dir, "alpha", &id)?.is_empty(), "a stopped export left a file");
        problem(&api.get(&format!("/v1/exports/{id}/download"), token)?, StatusCode::CONFLICT, "conflict");
    }
    Ok(())
}

#[test]
fn the_host_removes_exports_older_than_the_retention_and_says_so() -> anyhow::Result<()> {
    let mut data_dir = std::path::PathBuf::new();
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha"], |config, _| {
        config.exports.retention_days = 7;
        data_dir = config.data_dir.clone();
        Ok(())
    })?;
    let token = api.token("alpha", Role::TenantAdmin);
    let view = export(&api, token, &json!({ "format": "csv" }))?;
    let id = view["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(files_of(&data_dir, "alpha", &id)?.len(), 1);
    let finished = view["finished_ms"].as_i64().unwrap_or_default();
    let day = 24 * 3600 * 1000;
    assert_eq!(mcp_api::expire_exports(&api.state, finished + 6 * day)?, 0, "six days old: kept");
    assert_eq!(api.get(&format!("/v1/exports/{id}"), token)?.status, StatusCode::OK);
    assert_eq!(mcp_api::expire_exports(&api.state, finished + 7 * day + 1)?, 1, "past seven days: removed");
    problem(&api.get(&format!("/v1/exports/{id}"), token)?, StatusCode::NOT_FOUND, "not_found");
    assert!(files_of(&data_dir, "alpha", &id)?.is_empty(), "the file went with the record");
    let audit = api.get("/v1/audit", api.token("alpha", Role::Admin))?;
    let expired = audit.body["items"].as_array().into_iter().flatten().find(|e| e["action"] == "export.expire");
    assert!(
        expired.is_some_and(|e| e["detail"].as_str().unwrap_or_default().starts_with(&id)),
        "the audit says which export the host removed: {}",
        audit.body
    );
    Ok(())
}

/// Adds `count` synthetic anomalies of `tenant` to the store at `path`:
/// sources, labels, severities and scores vary by row, models and
/// detection times by batch of 500 (half the batches have no model).
fn fill_anomalies(path: &std::path::Path, tenant: &str, count: u64) -> anyhow::Result<()> {
    use mcp_columns::{Anomaly, Severity};
    use mcp_storage::store::{AnomalyStore, CheckpointKey, Provenance};
    const SEVERITIES: [Severity; 4] = [Severity::Info, Severity::Low, Severity::High, Severity::Critical];
    let mut store = AnomalyStore::open(path)?;
    let key = CheckpointKey { tenant, agent: "filler", log_source: "test", log_type: "firewall" };
    for chunk in 0..count.div_ceil(500) {
        let model = format!("filler-model@{}", chunk % 3);
        let provenance =
            Provenance { agent_sha256: "test", schema_version: 1, model: (chunk % 2 == 0).then_some(model.as_str()) };
        let batch: Vec<(Anomaly, Option<String>)> = (chunk * 500..((chunk + 1) * 500).min(count))
            .map(|n| {
                let anomaly = Anomaly {
                    agent: "filler".into(),
                    log_id: n + 1,
                    log_type: "firewall".into(),
                    source: format!("dev-{}", n % 17),
                    log_timestamp_ms: 1_700_000_000_000 + (n as i64 * 7919) % 1_000_000,
                    score: (n % 100) as f32 / 100.0,
                    label: ["probe", "filler"][(n % 2) as usize].into(),
                    severity: SEVERITIES[(n % 4) as usize],
                    reason: "filled by the test".into(),
                    detected_at_ms: 1_800_000_000_000 + chunk as i64 * 1000,
                };
                (anomaly, Some(format!("{{\"n\":{n}}}")))
            })
            .collect();
        let last = batch.last().map_or(0, |(a, _)| a.log_id);
        store.commit(&key, &provenance, &batch, last)?;
    }
    Ok(())
}

/// A Redis of the test's own, so it can be killed.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "{e}: this test starts a redis-server of its own; install it (apt-get install redis-server)"
                )
            })?;
        let url = format!("redis://127.0.0.1:{port}/0");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(OwnRedis { child, url })
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_export_completes_when_redis_is_killed_in_its_middle() -> anyhow::Result<()> {
    let mut redis = OwnRedis::start()?;
    let quick = RetryPolicy { max_attempts: 2, base_delay_ms: 5, max_delay_ms: 20 };
    let api = api_configured(SharedCache::open(Some(&redis.url), "mcp-test:", quick)?, &["alpha"], |config, _| {
        // Windows of one anomaly over a large store: an export that lasts.
        config.exports.page_rows = 1;
        fill_anomalies(&config.anomalies_db(), "alpha", 40_000)
    })?;
    let watcher = SharedCache::open(Some(&redis.url), "mcp-test:", quick)?;
    let token = api.token("alpha", Role::ReadOnly);
    let id = start(&api, token, &json!({ "format": "parquet" }))?;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed_ms = loop {
        let status = watcher.job("alpha", &id)?;
        let state = status.as_ref().map(|s| format!("{:?}", s.state).to_lowercase()).unwrap_or_default();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == "running" && status.is_some_and(|s| s.counters.get("rows").copied().unwrap_or(0) > 0) {
            redis.child.kill()?;
            redis.child.wait()?;
            break now_ms();
        }
        anyhow::ensure!(Instant::now() < deadline && state != "completed", "never saw it running with rows: {seen:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    let view = wait(&api, token, &id)?;
    assert_eq!(view["state"], "completed", "{view}");
    assert!(view["finished_ms"].as_i64().unwrap_or_default() > killed_ms, "it ended after Redis was gone: {view}");
    let total = view["rows"].as_u64().unwrap_or_default();
    assert!(total > 40_000, "{view}");
    let rows = rows_of("parquet", download(&api, token, &view)?)?;
    assert_eq!(rows.len() as u64, total, "the file is whole");
    assert!(watcher.job("alpha", &id).is_err(), "Redis is really gone");
    Ok(())
}

#[test]
fn status_moves_through_redis_to_its_end() -> anyhow::Result<()> {
    let redis = OwnRedis::start()?;
    let api =
        api_configured(SharedCache::open(Some(&redis.url), "mcp-test:", Default::default())?, &["alpha"], |_, _| {
            Ok(())
        })?;
    let watcher = SharedCache::open(Some(&redis.url), "mcp-test:", Default::default())?;
    let token = api.token("alpha", Role::ReadOnly);
    let view = export(&api, token, &json!({ "format": "jsonl" }))?;
    let id = view["id"].as_str().unwrap_or_default();
    let status = watcher.job("alpha", id)?.ok_or_else(|| anyhow::anyhow!("no status in Redis"))?;
    assert_eq!(format!("{:?}", status.state).to_lowercase(), "completed");
    assert_eq!(status.kind, "export");
    assert_eq!(status.counters.get("rows").copied(), view["rows"].as_u64());
    assert_eq!(status.counters.get("bytes").copied(), view["bytes"].as_u64());
    let cancelled = start(&api, token, &json!({ "format": "csv" }))?;
    api.call("DELETE", &format!("/v1/exports/{cancelled}"), Some(token), None)?;
    let ended = wait(&api, token, &cancelled)?;
    let mirrored = watcher.job("alpha", &cancelled)?.ok_or_else(|| anyhow::anyhow!("no status in Redis"))?;
    assert_eq!(format!("{:?}", mirrored.state).to_lowercase(), ended["state"].as_str().unwrap_or_default());
    Ok(())
}
