//! Schema files: evolution between versions, live reload, a fourth log type
//! added by file alone, and agents that do not read the current version.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcp_columns::{ColumnValues, LogBatch, LogQuery, text_at};
use mcp_engine::pipeline::{self, RunError, RunSpec};
use mcp_sandbox::registry::Registry;

use mcp_fixtures::BUNDLED_SCHEMAS;
use mcp_storage::schema::SchemaFiles;
use mcp_storage::source::{LogSource, SqliteLogSource};
use mcp_storage::store::AnomalyStore;

use crate::common::{bundled_registry, sandbox};

struct Setup {
    dir: tempfile::TempDir,
    source: SqliteLogSource,
    store: AnomalyStore,
}

impl Setup {
    fn schema_path(&self, log_type: &str) -> PathBuf {
        self.dir.path().join("schemas").join(format!("{log_type}.yaml"))
    }
}

/// A source whose schema folder is a copy of the bundled one, to edit.
fn setup() -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(&schemas)?;
    for entry in std::fs::read_dir(BUNDLED_SCHEMAS)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, schemas.join(name))?;
        }
    }
    let source = SqliteLogSource::open(&dir.path().join("logs.db"), Arc::new(SchemaFiles::new(&schemas)))?;
    let store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    Ok(Setup { dir, source, store })
}

fn query(log_type: &str) -> LogQuery {
    LogQuery { log_type: log_type.into(), after_id: 0, from_ms: None, to_ms: None, source: None, limit: 100 }
}

fn integers<'a>(batch: &'a LogBatch, name: &str) -> Option<&'a [i64]> {
    batch.columns.iter().find(|c| c.name == name).and_then(|c| match &c.values {
        ColumnValues::Integer(v) => Some(v.as_slice()),
        _ => None,
    })
}

fn reals<'a>(batch: &'a LogBatch, name: &str) -> Option<&'a [f64]> {
    batch.columns.iter().find(|c| c.name == name).and_then(|c| match &c.values {
        ColumnValues::Real(v) => Some(v.as_slice()),
        _ => None,
    })
}

#[test]
fn a_version_1_row_is_read_under_version_2_with_its_rename_and_defaults() -> anyhow::Result<()> {
    let s = setup()?;
    s.source.insert_raw("t", "wifi", 1, "wlc-old", r#"{"event": "data", "bssid": "aa", "rssi": -61}"#, 1)?;
    s.source.insert_raw(
        "t",
        "wifi",
        2,
        "wlc-new",
        r#"{"event": "data", "bssid": "bb", "signal_dbm": -40, "retry_rate": 0.25}"#,
        2,
    )?;
    let read = s.source.read_batch("t", &query("wifi"))?;
    assert_eq!(read.quarantined, 0);
    let batch = &read.batch;
    assert_eq!(batch.schema_version, 2);
    assert_eq!(integers(batch, "signal_dbm"), Some(&[-61, -40][..]));
    assert_eq!(reals(batch, "retry_rate"), Some(&[0.0, 0.25][..]), "the default fills the field v1 lacked");
    assert!(batch.columns.iter().all(|c| c.name != "rssi"), "the old name is gone");
    let status = batch.columns.iter().find(|c| c.name == "status").map(|c| &c.values);
    match status {
        Some(ColumnValues::Text(t)) => assert_eq!((text_at(t, 0), text_at(t, 1)), (Some("success"), Some("success"))),
        other => anyhow::bail!("status column: {other:?}"),
    }
    Ok(())
}

#[test]
fn an_edited_schema_file_takes_effect_without_a_restart() -> anyhow::Result<()> {
    let s = setup()?;
    let row = r#"{"event": "data", "bssid": "aa", "signal_dbm": -50}"#;
    s.source.insert_raw("t", "wifi", 1, "wlc", row, 0)?;
    assert_eq!(s.source.read_batch("t", &query("wifi"))?.quarantined, 0);
    let text = std::fs::read_to_string(s.schema_path("wifi"))?;
    let stricter =
        text.replace(r#"{ name: client, type: text, default: "" }"#, "{ name: client, type: text, required: true }");
    anyhow::ensure!(stricter != text, "the test's edit did not apply");
    std::fs::write(s.schema_path("wifi"), stricter)?;
    let read = s.source.read_batch("t", &query("wifi"))?;
    assert_eq!(read.quarantined, 1);
    let quarantined = s.source.quarantined("t")?;
    assert!(quarantined[0].reason.contains("required field 'client' is missing"), "{quarantined:?}");
    Ok(())
}

#[test]
fn a_broken_schema_file_stops_the_read_with_its_path() -> anyhow::Result<()> {
    let s = setup()?;
    std::fs::write(s.schema_path("dns"), "log_type: dns\nversion: 1\nfields:\n  - { name: query, type: txt }\n")?;
    let error = s.source.read_batch("t", &query("dns")).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.contains("dns.yaml") && error.contains("type 'txt' is not text, integer, real or boolean"),
        "{error}"
    );
    Ok(())
}

#[test]
fn a_fourth_log_type_needs_only_a_schema_file_and_an_agent() -> anyhow::Result<()> {
    let mut s = setup()?;
    std::fs::write(
        s.schema_path("proxy"),
        "log_type: proxy\nversion: 1\nfields:\n  - { name: url, type: text, required: true }\n  - { name: status, type: integer, required: true }\n  - { name: cached, type: boolean, default: false }\n",
    )?;
    let rows = [
        r#"{"url": "/a", "status": 200}"#,
        r#"{"url": "/b", "status": 502}"#,
        r#"{"url": "/c", "status": 503, "cached": true}"#,
        r#"{"url": "/d", "status": "oops"}"#,
        r#"{"url": "/e", "status": 500}"#,
    ];
    for (i, row) in rows.iter().enumerate() {
        s.source.insert_raw("t", "proxy", i as i64, "squid-1", row, 0)?;
    }
    let mut registry = Registry::new(sandbox());
    registry.register_file(Path::new(mcp_fixtures::PROXY))?;
    let mut instance = pipeline::instance_for(&registry, "proxy", "t", Default::default(), None)?;
    let spec = RunSpec {
        tenant: "t",
        agent: "proxy",
        log_source: "embedded",
        batch_size: 100,
        replay_ms: 0,
        up_to_id: None,
        follow: None,
    };
    let report = pipeline::run(&registry, &mut instance, &s.source, &mut s.store, &spec)?;
    assert_eq!((report.entries, report.quarantined), (4, 1));
    let found: Vec<(u64, String)> =
        s.store.anomalies("t", "proxy")?.into_iter().map(|a| (a.log_id, a.reason)).collect();
    assert_eq!(found, vec![(2, "/b answered 502".to_string()), (5, "/e answered 500".to_string())]);
    Ok(())
}

#[test]
fn an_agent_is_not_run_on_a_schema_version_it_does_not_read() -> anyhow::Result<()> {
    let mut s = setup()?;
    let text = std::fs::read_to_string(s.schema_path("dns"))?;
    std::fs::write(s.schema_path("dns"), text.replace("version: 1", "version: 3"))?;
    s.source.insert_raw("t", "dns", 1, "r", r#"{"client_ip": "10.0.0.1", "query": "a.com", "rcode": "NOERROR"}"#, 0)?;
    let registry = bundled_registry(sandbox())?;
    let mut instance = pipeline::instance_for(&registry, "dns", "t", Default::default(), None)?;
    let spec = RunSpec {
        tenant: "t",
        agent: "dns",
        log_source: "embedded",
        batch_size: 100,
        replay_ms: 0,
        up_to_id: None,
        follow: None,
    };
    match pipeline::run(&registry, &mut instance, &s.source, &mut s.store, &spec) {
        Err(e @ RunError::SchemaUnsupported { .. }) => {
            assert_eq!(e.to_string(), "agent dns reads 'dns' schema versions 1 to 1; the schema file is at version 3")
        }
        other => anyhow::bail!("expected the run to be refused, got {other:?}"),
    }
    Ok(())
}

#[test]
fn an_agent_that_reads_schema_versions_is_not_run_without_a_schema_file() -> anyhow::Result<()> {
    let mut s = setup()?;
    std::fs::remove_file(s.schema_path("dns"))?;
    s.source.insert_raw("t", "dns", 1, "r", r#"{"client_ip": "10.0.0.1", "query": "a.com", "rcode": "NOERROR"}"#, 0)?;
    let registry = bundled_registry(sandbox())?;
    let mut instance = pipeline::instance_for(&registry, "dns", "t", Default::default(), None)?;
    let spec = RunSpec {
        tenant: "t",
        agent: "dns",
        log_source: "embedded",
        batch_size: 100,
        replay_ms: 0,
        up_to_id: None,
        follow: None,
    };
    match pipeline::run(&registry, &mut instance, &s.source, &mut s.store, &spec) {
        Err(e @ RunError::SchemaMissing { .. }) => {
            let message = e.to_string();
            assert!(message.contains("reads 'dns' schema versions 1 to 1, but no dns.yaml"), "{message}");
        }
        other => anyhow::bail!("expected the run to be refused, got {other:?}"),
    }
    assert!(s.store.anomalies("t", "dns")?.is_empty(), "nothing stored at schema version 0");
    Ok(())
}
