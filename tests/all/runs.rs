//! Runs over the embedded source: exactly-once storage, resume from the
//! checkpoint, quarantine, tenant scoping and faults.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use mcp_engine::pipeline::{self, RunError, RunSpec};
use mcp_fixtures::BUNDLED_SCHEMAS;
use mcp_sandbox::SandboxError;
use mcp_sandbox::registry::Registry;
use mcp_storage::schema::SchemaFiles;
use mcp_storage::source::{LogSource, SqliteLogSource};
use mcp_storage::store::{AnomalyStore, CheckpointKey};
use mcp_synth as generator;

use crate::common::{bundled_registry, hostile_path, sandbox};

struct Fixture {
    _dir: tempfile::TempDir,
    source: Arc<SqliteLogSource>,
    store: AnomalyStore,
}

fn fixture() -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let source = Arc::new(SqliteLogSource::open(
        &dir.path().join("logs.db"),
        Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS))),
    )?);
    let store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    Ok(Fixture { _dir: dir, source, store })
}

fn spec<'a>(agent: &'a str, tenant: &'a str) -> RunSpec<'a> {
    RunSpec { tenant, agent, log_source: "embedded", batch_size: 500, replay_ms: 0, up_to_id: None, follow: None }
}

fn found(store: &AnomalyStore, tenant: &str, agent: &str) -> anyhow::Result<BTreeSet<(u64, String)>> {
    Ok(store.anomalies(tenant, agent)?.into_iter().map(|a| (a.log_id, a.label)).collect())
}

#[test]
fn rerun_stores_nothing_twice() -> anyhow::Result<()> {
    let mut f = fixture()?;
    f.source.append("t1", "firewall", &generator::to_rows(&generator::generate("firewall", 3, 4_000)?))?;
    let registry = bundled_registry(sandbox())?;
    let mut instance = pipeline::instance_for(&registry, "firewall", "t1", Default::default(), None)?;
    let first = pipeline::run(&registry, &mut instance, &*f.source, &mut f.store, &spec("firewall", "t1"))?;
    assert!(first.anomalies > 0 && first.entries >= 4_000, "{first:?}");
    let stored = found(&f.store, "t1", "firewall")?;
    assert_eq!(stored.len() as u64, first.anomalies);
    let second = pipeline::run(&registry, &mut instance, &*f.source, &mut f.store, &spec("firewall", "t1"))?;
    assert_eq!((second.entries, second.anomalies), (0, 0));
    assert_eq!(found(&f.store, "t1", "firewall")?, stored);
    Ok(())
}

/// A setting the agent refuses is the operator's to fix: the run stops at
/// once with the agent's message, is not retried, and counts as no fault.
#[test]
fn refused_settings_stop_the_run_without_a_fault() -> anyhow::Result<()> {
    let mut f = fixture()?;
    f.source.append("t1", "dns", &generator::to_rows(&generator::generate("dns", 3, 1_000)?))?;
    let registry = bundled_registry(sandbox())?;
    let settings = [("nxdomain_threshold".to_string(), "many".to_string())].into_iter().collect();
    let mut instance = pipeline::instance_for(&registry, "dns", "t1", settings, None)?;
    let refused = pipeline::run(&registry, &mut instance, &*f.source, &mut f.store, &spec("dns", "t1"));
    match refused {
        Err(error @ RunError::Configuration { .. }) => {
            let text = error.to_string();
            assert!(text.contains("nxdomain_threshold") && text.contains("[agents.dns]"), "{text}");
            assert!(error.agent_error().is_none(), "counted as the agent's fault: {text}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert!(found(&f.store, "t1", "dns")?.is_empty());
    Ok(())
}

#[test]
fn resuming_from_the_checkpoint_matches_one_full_run() -> anyhow::Result<()> {
    let logs = generator::generate("dns", 5, 6_000)?;
    let (head, tail) = logs.split_at(logs.len() / 2);
    let registry = bundled_registry(sandbox())?;

    let mut whole = fixture()?;
    whole.source.append("t", "dns", &generator::to_rows(&logs))?;
    let mut instance = pipeline::instance_for(&registry, "dns", "t", Default::default(), None)?;
    pipeline::run(&registry, &mut instance, &*whole.source, &mut whole.store, &spec("dns", "t"))?;

    let mut parts = fixture()?;
    let mut instance = pipeline::instance_for(&registry, "dns", "t", Default::default(), None)?;
    parts.source.append("t", "dns", &generator::to_rows(head))?;
    let first = pipeline::run(&registry, &mut instance, &*parts.source, &mut parts.store, &spec("dns", "t"))?;
    parts.source.append("t", "dns", &generator::to_rows(tail))?;
    let second = pipeline::run(&registry, &mut instance, &*parts.source, &mut parts.store, &spec("dns", "t"))?;
    assert_eq!(first.entries + second.entries, logs.len() as u64);
    let key = CheckpointKey { tenant: "t", agent: "dns", log_source: "embedded", log_type: "dns" };
    assert_eq!(parts.store.checkpoint(&key)?, logs.len() as u64);
    assert_eq!(found(&parts.store, "t", "dns")?, found(&whole.store, "t", "dns")?);
    Ok(())
}

#[test]
fn malformed_rows_are_quarantined_with_their_reason() -> anyhow::Result<()> {
    let mut f = fixture()?;
    let logs = generator::generate("wifi", 8, 1_000)?;
    f.source.append("t", "wifi", &generator::to_rows(&logs[..500]))?;
    // The batches hold 500 rows, so these open the second batch.
    let bad_json = f.source.insert_raw("t", "wifi", 1, "wlc-1", r#"{"event": "deauth", "#, 0)?;
    let not_object = f.source.insert_raw("t", "wifi", 2, "wlc-1", "[1, 2, 3]", 0)?;
    let wrong_type = f.source.insert_raw(
        "t",
        "wifi",
        3,
        "wlc-1",
        r#"{"event": "data", "bssid": "b", "signal_dbm": "strong"}"#,
        0,
    )?;
    let missing = f.source.insert_raw("t", "wifi", 4, "wlc-1", r#"{"event": "data", "signal_dbm": -50}"#, 0)?;
    f.source.append("t", "wifi", &generator::to_rows(&logs[500..]))?;
    let registry = bundled_registry(sandbox())?;
    let mut instance = pipeline::instance_for(&registry, "wifi", "t", Default::default(), None)?;
    let report = pipeline::run(&registry, &mut instance, &*f.source, &mut f.store, &spec("wifi", "t"))?;
    assert_eq!(report.quarantined, 4);
    assert_eq!(report.entries, logs.len() as u64);
    let quarantined = f.source.quarantined("t")?;
    assert_eq!(
        quarantined.iter().map(|q| q.log_id).collect::<Vec<_>>(),
        vec![bad_json, not_object, wrong_type, missing]
    );
    assert!(quarantined[0].reason.contains("EOF while parsing"), "{quarantined:?}");
    assert!(quarantined[1].reason.contains("not a JSON object"), "{quarantined:?}");
    assert!(
        quarantined[2].reason.contains("field 'signal_dbm' must be integer under wifi schema v2, found text"),
        "{quarantined:?}"
    );
    assert!(quarantined[3].reason.contains("required field 'bssid' is missing (schema wifi v2)"), "{quarantined:?}");
    assert!(quarantined.iter().all(|q| q.schema_version == 2 && q.log_type == "wifi"), "{quarantined:?}");
    assert_eq!(quarantined[1].raw, "[1, 2, 3]");
    // A rerun starts after the checkpoint: nothing is quarantined twice.
    let again = pipeline::run(&registry, &mut instance, &*f.source, &mut f.store, &spec("wifi", "t"))?;
    assert_eq!((again.entries, again.quarantined), (0, 0));
    Ok(())
}

#[test]
fn log_queries_see_only_the_agents_tenant() -> anyhow::Result<()> {
    let f = fixture()?;
    f.source.append("tenant-a", "wifi", &generator::to_rows(&generator::generate("wifi", 1, 500)?))?;
    let sandbox = sandbox();
    let mut registry = Registry::new(sandbox);
    registry.register_file(&hostile_path())?;
    let read = |tenant: &str| -> anyhow::Result<String> {
        let reader: Arc<dyn LogSource> = f.source.clone();
        let settings = [("mode".to_string(), "logs".to_string())].into();
        let mut instance = pipeline::instance_for(&registry, "hostile", tenant, settings, Some(reader))?;
        let found = instance.detect_batch(&crate::common::wifi_batch(1))?;
        Ok(found.first().map(|a| a.reason.clone()).unwrap_or_default())
    };
    assert_eq!(read("tenant-a")?, "read 10 entries");
    assert_eq!(read("tenant-b")?, "read 0 entries");
    Ok(())
}

#[test]
fn an_agent_that_keeps_faulting_stops_the_run_without_losing_progress() -> anyhow::Result<()> {
    let mut f = fixture()?;
    f.source.append("t", "wifi", &generator::to_rows(&generator::generate("wifi", 2, 300)?))?;
    let mut registry = Registry::new(sandbox());
    registry.register_file(&hostile_path())?;
    let settings = [("mode".to_string(), "panic".to_string())].into();
    let mut instance = pipeline::instance_for(&registry, "hostile", "t", settings, None)?;
    match pipeline::run(&registry, &mut instance, &*f.source, &mut f.store, &spec("hostile", "t")) {
        Err(RunError::Agent { agent, after_id, source: SandboxError::Fault { .. } }) => {
            assert_eq!((agent.as_str(), after_id), ("hostile", 0))
        }
        other => anyhow::bail!("expected the run to stop on the fault, got {other:?}"),
    }
    let key = CheckpointKey { tenant: "t", agent: "hostile", log_source: "embedded", log_type: "wifi" };
    assert_eq!(f.store.checkpoint(&key)?, 0, "the checkpoint did not move past the failed batch");
    Ok(())
}

/// A fault while the agent gives its state after a batch (a JavaScript
/// engine's heap is fullest then) is retried as a fault in detection is:
/// the batch again on a fresh instance resumed from the state before it, so
/// the run completes and the agent counts no entry twice.
#[test]
fn a_fault_while_giving_the_state_is_retried_from_the_state_before() -> anyhow::Result<()> {
    let mut f = fixture()?;
    f.source.append("t", "wifi", &generator::to_rows(&generator::generate("wifi", 2, 1_200)?))?;
    let mut registry = Registry::new(sandbox());
    registry.register_file(&hostile_path())?;
    let settings = [("mode".to_string(), "flaky-snapshot".to_string())].into();
    let mut instance = pipeline::instance_for(&registry, "hostile", "t", settings, None)?;
    let report = pipeline::run(&registry, &mut instance, &*f.source, &mut f.store, &spec("hostile", "t"))?;
    assert!(report.batches >= 3, "{report:?}");
    assert_eq!(report.faults.len(), 1, "one fault, recovered: {:?}", report.faults);
    let state = instance.last_snapshot().map(|bytes| String::from_utf8_lossy(bytes).into_owned());
    assert_eq!(state, Some(report.entries.to_string()), "every entry counted once");
    Ok(())
}

#[test]
fn a_restarted_agent_rebuilds_its_windows_by_replay() -> anyhow::Result<()> {
    // Cut inside a burst, so that a fresh agent without replay would miss
    // what the uninterrupted one finds.
    for log_type in ["firewall", "dns"] {
        let logs = generator::generate(log_type, 21, 6_000)?;
        let registry = bundled_registry(sandbox())?;
        let replaying = RunSpec { replay_ms: 900_000, ..spec(log_type, "t") };

        let mut whole = fixture()?;
        whole.source.append("t", log_type, &generator::to_rows(&logs))?;
        let mut instance = pipeline::instance_for(&registry, log_type, "t", Default::default(), None)?;
        pipeline::run(&registry, &mut instance, &*whole.source, &mut whole.store, &replaying)?;
        let expected = found(&whole.store, "t", log_type)?;

        let first_attack = logs.iter().position(|l| l.label.is_some()).unwrap_or(logs.len() / 2);
        let cut = (first_attack + 10).min(logs.len());
        let mut parts = fixture()?;
        parts.source.append("t", log_type, &generator::to_rows(&logs[..cut]))?;
        let mut first = pipeline::instance_for(&registry, log_type, "t", Default::default(), None)?;
        pipeline::run(&registry, &mut first, &*parts.source, &mut parts.store, &replaying)?;
        parts.source.append("t", log_type, &generator::to_rows(&logs[cut..]))?;
        // A new instance, as after a crash: empty windows until replay fills them.
        let mut restarted = pipeline::instance_for(&registry, log_type, "t", Default::default(), None)?;
        let resumed = pipeline::run(&registry, &mut restarted, &*parts.source, &mut parts.store, &replaying)?;
        assert!(resumed.replayed > 0, "{log_type}: nothing was replayed");
        assert_eq!(found(&parts.store, "t", log_type)?, expected, "{log_type}");
    }
    Ok(())
}

#[test]
fn a_restarted_wifi_agent_gets_back_what_it_learned() -> anyhow::Result<()> {
    // Cut inside an evil twin's beacons, with a replay far shorter than the
    // agent's learning of access points: only its stored state brings back
    // which access points are legitimate and which it has flagged.
    let logs = generator::generate("wifi", 23, 6_000)?;
    let registry = bundled_registry(sandbox())?;
    let replaying = RunSpec { replay_ms: 120_000, ..spec("wifi", "t") };
    let rules: std::collections::BTreeMap<String, String> = [("detection".into(), "rules".into())].into();

    let mut whole = fixture()?;
    whole.source.append("t", "wifi", &generator::to_rows(&logs))?;
    let mut instance = pipeline::instance_for(&registry, "wifi", "t", rules.clone(), None)?;
    pipeline::run(&registry, &mut instance, &*whole.source, &mut whole.store, &replaying)?;
    let expected = found(&whole.store, "t", "wifi")?;

    let twin = logs.iter().position(|l| l.label == Some("evil_twin")).unwrap_or(logs.len() / 2);
    let cut = (twin + 5).min(logs.len());
    assert!(expected.iter().any(|(id, label)| *id > cut as u64 && label == "evil_twin"), "no evil twin after the cut");

    let resume = |keep_state: bool| -> anyhow::Result<(BTreeSet<(u64, String)>, u64)> {
        let mut parts = fixture()?;
        parts.source.append("t", "wifi", &generator::to_rows(&logs[..cut]))?;
        let mut first = pipeline::instance_for(&registry, "wifi", "t", rules.clone(), None)?;
        pipeline::run(&registry, &mut first, &*parts.source, &mut parts.store, &replaying)?;
        if !keep_state {
            let conn = rusqlite::Connection::open(parts._dir.path().join("anomalies.db"))?;
            assert_eq!(conn.execute("DELETE FROM agent_states", [])?, 1, "the Wi-Fi agent stored its state");
        }
        parts.source.append("t", "wifi", &generator::to_rows(&logs[cut..]))?;
        let mut restarted = pipeline::instance_for(&registry, "wifi", "t", rules.clone(), None)?;
        let resumed = pipeline::run(&registry, &mut restarted, &*parts.source, &mut parts.store, &replaying)?;
        Ok((found(&parts.store, "t", "wifi")?, resumed.restored_state_bytes))
    };
    let (with_state, restored) = resume(true)?;
    assert!(restored > 0, "no state was restored");
    assert_eq!(with_state, expected, "resumed with its state, the agent matches one uninterrupted run");
    let (without_state, _) = resume(false)?;
    assert_ne!(without_state, expected, "without its state the restart would lose findings; the test shows that");
    Ok(())
}

#[test]
fn a_restored_state_is_not_fed_the_same_entries_again() -> anyhow::Result<()> {
    // An agent whose whole state is a count of the entries it saw: after a
    // restart with its state back, no entry may be counted twice, however
    // long the replay window.
    let logs = generator::generate("wifi", 24, 2_000)?;
    let mut registry = Registry::new(sandbox());
    registry.register_file(&hostile_path())?;
    let counting: std::collections::BTreeMap<String, String> = [("mode".into(), "counter".into())].into();
    let replaying = RunSpec { replay_ms: 3_600_000, ..spec("hostile", "t") };
    let cut = logs.len() / 2;

    let mut parts = fixture()?;
    parts.source.append("t", "wifi", &generator::to_rows(&logs[..cut]))?;
    let mut first = pipeline::instance_for(&registry, "hostile", "t", counting.clone(), None)?;
    pipeline::run(&registry, &mut first, &*parts.source, &mut parts.store, &replaying)?;
    parts.source.append("t", "wifi", &generator::to_rows(&logs[cut..]))?;
    let mut restarted = pipeline::instance_for(&registry, "hostile", "t", counting, None)?;
    let resumed = pipeline::run(&registry, &mut restarted, &*parts.source, &mut parts.store, &replaying)?;

    assert!(resumed.restored_state_bytes > 0, "the count was restored");
    assert_eq!(resumed.replayed, 0, "an agent that gave its state is not replayed to");
    let count = restarted.snapshot()?.unwrap_or_default();
    let total = resumed.entries + cut as u64;
    assert_eq!(std::str::from_utf8(count)?, total.to_string(), "every entry counted once");
    Ok(())
}
