//! The ModelManager with the shipped models and versions made from them:
//! validation, version selection, refusals that keep the active version,
//! rollback, the watcher, and hot reload into a running sandboxed agent.

use std::path::Path;
use std::sync::Arc;

use mcp_engine::models::{ModelError, ModelManager};
use mcp_engine::pipeline;
use mcp_sandbox::registry::sha256_hex;

use crate::common::{bundled_registry, sandbox};
use mcp_sandbox::conformance::{SampleEntries, to_batch};

fn shipped() -> &'static Path {
    Path::new(mcp_fixtures::BUNDLED_MODELS)
}

/// The folder of `agent`'s newest shipped version.
fn shipped_version(agent: &str) -> anyhow::Result<std::path::PathBuf> {
    let manager = ModelManager::open(shipped(), &tempfile::tempdir()?.path().join("models.db"))?;
    let newest = manager.versions(agent).pop().ok_or_else(|| anyhow::anyhow!("no shipped {agent} model"))?;
    Ok(shipped().join(agent).join(newest))
}

/// A model store in a temporary folder with its state beside it.
struct Store {
    dir: tempfile::TempDir,
    manager: Arc<ModelManager>,
}

fn store() -> anyhow::Result<Store> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("models"))?;
    let manager = Arc::new(ModelManager::open(&dir.path().join("models"), &dir.path().join("models.db"))?);
    Ok(Store { dir, manager })
}

/// Writes `onnx` and the metadata of shipped `agent` as `agent`/`version`
/// under `root`, after `edit` (which sees the checksum already updated).
fn write_version(
    root: &Path,
    agent: &str,
    version: &str,
    onnx: &[u8],
    edit: impl FnOnce(&mut serde_json::Value),
) -> anyhow::Result<()> {
    let mut metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shipped_version(agent)?.join("metadata.json"))?)?;
    metadata["version"] = version.into();
    metadata["sha256"] = sha256_hex(onnx).into();
    edit(&mut metadata);
    let dir = root.join(agent).join(version);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("model.onnx"), onnx)?;
    std::fs::write(dir.join("metadata.json"), serde_json::to_string_pretty(&metadata)?)?;
    Ok(())
}

fn shipped_onnx(agent: &str) -> anyhow::Result<Vec<u8>> {
    Ok(std::fs::read(shipped_version(agent)?.join("model.onnx"))?)
}

/// Firewall version 2: another distance model over the agent's features
/// (the fixture), with its own reference outputs, so its scores differ
/// from the shipped version's.
fn firewall_v2(root: &Path) -> anyhow::Result<()> {
    let other = Path::new(mcp_fixtures::OTHER_FIREWALL_MODEL);
    let metadata: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(other.join("metadata.json"))?)?;
    write_version(root, "firewall", "2", &std::fs::read(other.join("model.onnx"))?, |m| {
        m["reference"] = metadata["reference"].clone();
    })
}

#[test]
fn every_shipped_model_runs_in_tract_and_matches_its_reference() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let manager = ModelManager::open(shipped(), &dir.path().join("models.db"))?;
    let listing = manager.list()?;
    let agents: Vec<&str> = listing.iter().map(|v| v.agent.as_str()).collect();
    assert_eq!(agents, ["dns", "firewall", "wifi"]);
    for version in &listing {
        assert_eq!(version.refused, None, "{} {}", version.agent, version.version);
        assert!(version.active, "{} {} should be active", version.agent, version.version);
        // Loading checks tract against the reference outputs; run them again here
        // so a failure names the values.
        let model = manager.load(&version.agent, &version.version)?;
        let reference = &model.metadata.reference;
        let rows: Vec<f32> = reference.inputs.iter().flatten().copied().collect();
        let output = model.infer(reference.inputs.len(), &rows)?;
        for (row, (want, got)) in reference.outputs.iter().zip(output.data.chunks(output.shape[1] as usize)).enumerate()
        {
            for (w, g) in want.iter().zip(got) {
                assert!((w - g).abs() <= reference.tolerance, "{} row {row}: {w} vs {g}", version.agent);
            }
        }
    }
    Ok(())
}

#[test]
fn versions_are_selected_and_refusals_keep_the_active_one() -> anyhow::Result<()> {
    let s = store()?;
    let root = s.manager.dir().to_path_buf();
    let onnx = shipped_onnx("dns")?;
    write_version(&root, "dns", "1", &onnx, |_| {})?;
    write_version(&root, "dns", "2", &onnx, |_| {})?;
    write_version(&root, "dns", "10", &onnx, |_| {})?;
    assert_eq!(s.manager.versions("dns"), ["1", "2", "10"], "versions in numeric order");
    assert_eq!(s.manager.active_version("dns")?.as_deref(), Some("10"), "newest valid version by default");
    s.manager.activate("dns", "2")?;
    assert_eq!(s.manager.model("dns", None)?.metadata.version, "2");
    assert_eq!(s.manager.model("dns", Some("1"))?.metadata.version, "1");

    // A corrupt file whose checksum matches: tract refuses it.
    write_version(&root, "dns", "11", b"not an onnx model", |_| {})?;
    let corrupt = s.manager.activate("dns", "11").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(corrupt.contains("does not load in tract"), "{corrupt}");
    // A checksum mismatch.
    write_version(&root, "dns", "12", &onnx, |m| m["sha256"] = "00".repeat(32).into())?;
    let checksum = s.manager.activate("dns", "12");
    assert!(matches!(checksum, Err(ModelError::Checksum { .. })), "{checksum:?}");
    // A shape that does not match the agent's features.
    write_version(&root, "dns", "13", &onnx, |m| {
        if let Some(names) = m["feature_names"].as_array_mut() {
            names.push("extra".into());
        }
        m["inputs"][0]["shape"][1] = 9.into();
    })?;
    let shape = s.manager.activate("dns", "13").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(shape.contains("takes 8 features per row; the metadata names 9"), "{shape}");
    // Reference outputs tract does not reproduce.
    write_version(&root, "dns", "14", &onnx, |m| m["reference"]["outputs"][0][1] = 7.into())?;
    let reference = s.manager.activate("dns", "14").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(reference.contains("differ from the reference outputs"), "{reference}");
    // Missing models.
    assert!(matches!(s.manager.activate("dns", "99"), Err(ModelError::NotFound { .. })));
    assert!(matches!(s.manager.model("nobody", None), Err(ModelError::NotFound { .. })));

    assert_eq!(s.manager.active_version("dns")?.as_deref(), Some("2"), "refusals leave version 2 in force");
    let refusals = s.manager.events("dns")?.into_iter().filter(|e| e.action == "refuse").count();
    assert_eq!(refusals, 4, "every refusal is recorded");
    Ok(())
}

#[test]
fn rollback_restores_the_previous_outputs() -> anyhow::Result<()> {
    let s = store()?;
    let root = s.manager.dir().to_path_buf();
    write_version(&root, "firewall", "1", &shipped_onnx("firewall")?, |_| {})?;
    firewall_v2(&root)?;
    // Two rows of the firewall's nine features: a plain web connection, and
    // a denied probe of a trojan's port from a source scanning.
    let input: Vec<f32> =
        vec![443.0, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4444.0, 1.0, 0.0, 1.0, 3.0, 4.0, 0.0, 2.5, 0.0];
    s.manager.activate("firewall", "1")?;
    let before = s.manager.model("firewall", None)?.infer(2, &input)?;
    s.manager.activate("firewall", "2")?;
    let during = s.manager.model("firewall", None)?.infer(2, &input)?;
    assert_ne!(before, during, "version 2 must score differently for this test to mean anything");
    assert_eq!(s.manager.rollback("firewall")?, "1");
    assert_eq!(s.manager.model("firewall", None)?.infer(2, &input)?, before);
    let rollback = s.manager.rollback("firewall");
    assert!(matches!(rollback, Err(ModelError::NoPrevious { .. })), "{rollback:?}");
    let actions: Vec<String> = s.manager.events("firewall")?.into_iter().map(|e| e.action).collect();
    assert!(actions.contains(&"rollback".to_string()) && actions.contains(&"activate".to_string()), "{actions:?}");
    Ok(())
}

#[test]
fn the_watcher_activates_new_versions_and_refuses_broken_ones() -> anyhow::Result<()> {
    let s = store()?;
    let root = s.manager.dir().to_path_buf();
    write_version(&root, "firewall", "1", &shipped_onnx("firewall")?, |_| {})?;
    assert_eq!(s.manager.scan(), [("firewall".to_string(), "1".to_string())]);
    assert!(s.manager.scan().is_empty(), "nothing new, nothing done");
    write_version(&root, "firewall", "2", b"garbage", |_| {})?;
    assert!(s.manager.scan().is_empty());
    assert_eq!(s.manager.active_version("firewall")?.as_deref(), Some("1"), "a broken new version is refused");
    std::fs::remove_dir_all(root.join("firewall/2"))?;
    firewall_v2(&root)?;
    assert_eq!(s.manager.scan(), [("firewall".to_string(), "2".to_string())], "the repaired version is picked up");
    assert_eq!(s.manager.active_version("firewall")?.as_deref(), Some("2"));
    drop(s.dir);
    Ok(())
}

#[test]
fn a_running_agent_follows_activation_and_rollback() -> anyhow::Result<()> {
    let s = store()?;
    let root = s.manager.dir().to_path_buf();
    write_version(&root, "firewall", "1", &shipped_onnx("firewall")?, |_| {})?;
    firewall_v2(&root)?;
    s.manager.activate("firewall", "1")?;
    let registry = bundled_registry(sandbox())?;
    let mut instance =
        pipeline::instance_with_models(&registry, "firewall", "t", Default::default(), None, Some(s.manager.clone()))?;
    let entries =
        mcp_synth::GeneratedSamples.entries("firewall", 500).ok_or_else(|| anyhow::anyhow!("no firewall samples"))?;
    let batch = to_batch("firewall", &entries);
    let used = |instance: &mcp_sandbox::AgentInstance| instance.model_used().map(|(_, v)| v);
    instance.detect_batch(&batch)?;
    assert_eq!(used(&instance).as_deref(), Some("1"));
    s.manager.activate("firewall", "2")?;
    instance.detect_batch(&batch)?;
    assert_eq!(used(&instance).as_deref(), Some("2"), "the next batch uses the new version, no restart");
    s.manager.rollback("firewall")?;
    instance.detect_batch(&batch)?;
    assert_eq!(used(&instance).as_deref(), Some("1"));
    Ok(())
}

#[test]
fn adding_a_model_validates_it_first() -> anyhow::Result<()> {
    let s = store()?;
    let staging = s.dir.path().join("incoming");
    write_version(&staging, "dns", "7", &shipped_onnx("dns")?, |_| {})?;
    s.manager.add(&staging.join("dns/7"), "dns", "7")?;
    assert_eq!(s.manager.versions("dns"), ["7"]);
    write_version(&staging, "dns", "8", b"garbage", |_| {})?;
    assert!(s.manager.add(&staging.join("dns/8"), "dns", "8").is_err());
    assert_eq!(s.manager.versions("dns"), ["7"], "a refused model is not left in the store");
    assert!(s.manager.add(&staging.join("dns/7"), "dns", "7").is_err(), "versions are never overwritten");
    assert!(s.manager.add(&staging.join("dns/7"), "../dns", "7").is_err(), "names are plain path components");
    Ok(())
}

#[test]
fn anomalies_record_the_model_version_that_scored_them() -> anyhow::Result<()> {
    use mcp_fixtures::BUNDLED_SCHEMAS;
    use mcp_storage::schema::SchemaFiles;
    use mcp_storage::source::SqliteLogSource;
    use mcp_storage::store::AnomalyStore;

    let dir = tempfile::tempdir()?;
    let manager = Arc::new(ModelManager::open(shipped(), &dir.path().join("models.db"))?);
    let active = manager.active_version("dns")?.ok_or_else(|| anyhow::anyhow!("no shipped dns model"))?;
    let source =
        SqliteLogSource::open(&dir.path().join("logs.db"), Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS))))?;
    use mcp_storage::source::LogSource;
    source.append("t", "dns", &mcp_synth::to_rows(&mcp_synth::generate("dns", 5, 3_000)?))?;
    let mut store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    let registry = bundled_registry(sandbox())?;
    let settings = [("detection".to_string(), "model".to_string())].into_iter().collect();
    let mut instance = pipeline::instance_with_models(&registry, "dns", "t", settings, None, Some(manager))?;
    let spec = pipeline::RunSpec {
        tenant: "t",
        agent: "dns",
        log_source: "embedded",
        batch_size: 500,
        replay_ms: 0,
        up_to_id: None,
        follow: None,
    };
    let report = pipeline::run(&registry, &mut instance, &source, &mut store, &spec)?;
    assert_eq!(report.model, Some(("dns".to_string(), active.clone())));
    let stored = store.anomalies("t", "dns")?;
    assert!(!stored.is_empty(), "the model flags the generated tunnelling and DGA lookups");
    for anomaly in &stored {
        assert_eq!(anomaly.label, "dns_model", "model-only mode runs no rules");
        assert_eq!(anomaly.model.as_deref(), Some(format!("dns@{active}").as_str()));
    }
    Ok(())
}

#[test]
fn a_model_name_or_symlink_cannot_reach_outside_the_models_folder() -> anyhow::Result<()> {
    let s = store()?;
    let models = s.dir.path().join("models");
    let outside = tempfile::tempdir()?;
    let onnx = shipped_onnx("wifi")?;
    // The same valid version, once inside and once outside behind a symlink.
    write_version(&models, "wifi", "8", &onnx, |_| {})?;
    write_version(outside.path(), "wifi", "9", &onnx, |_| {})?;
    std::os::unix::fs::symlink(outside.path().join("wifi/9"), models.join("wifi/9"))?;
    assert!(s.manager.load("wifi", "8").is_ok(), "the copy inside loads");
    assert!(
        matches!(s.manager.load("wifi", "9"), Err(ModelError::NotFound { .. })),
        "a version behind a symlink out of the folder is not followed"
    );
    let outside_path = outside.path().join("wifi").display().to_string();
    for (agent, version) in
        [("wifi", ".."), ("wifi", "../wifi/8"), ("..", "wifi"), (outside_path.as_str(), "9"), ("wifi", "8\0")]
    {
        assert!(
            matches!(s.manager.load(agent, version), Err(ModelError::NotFound { .. })),
            "{agent:?}/{version:?} was not refused"
        );
    }
    Ok(())
}

/// Two nodes' ModelManagers over one PostgreSQL (`model_state =
/// "postgres"`) and the same models folder: what one activates or rolls
/// back is in force on the other from its watcher's next pass, with the
/// same history as one node's `models.db` keeps.
#[test]
fn activations_on_postgres_are_in_force_on_every_node() -> anyhow::Result<()> {
    let pg = crate::postgres::pg()?;
    let node = || -> anyhow::Result<Arc<mcp_storage::shared_store::SharedStore>> { Ok(Arc::new(pg.shared_store()?)) };
    let s = store()?;
    let root = s.manager.dir().to_path_buf();
    write_version(&root, "firewall", "1", &shipped_onnx("firewall")?, |_| {})?;
    firewall_v2(&root)?;
    let (a, b) = (ModelManager::open_shared(&root, node()?), ModelManager::open_shared(&root, node()?));
    let embedded = &s.manager;
    // The watchers' first passes: one node activates the versions it
    // finds, oldest first, as one node does; another finds them activated.
    let both = vec![("firewall".to_string(), "1".to_string()), ("firewall".to_string(), "2".to_string())];
    assert_eq!(a.scan(), both);
    assert_eq!(b.scan(), vec![], "versions activated by one node were activated again by another");
    assert_eq!(embedded.scan(), both);
    for manager in [&a, &b, embedded] {
        assert_eq!(manager.active_version("firewall")?.as_deref(), Some("2"));
    }
    // Node b rolls back; node a follows from its next pass.
    assert_eq!(b.rollback("firewall")?, "1");
    assert_eq!(embedded.rollback("firewall")?, "1");
    assert_eq!(a.active_version("firewall")?.as_deref(), Some("2"), "a holds its view until its next pass");
    a.scan();
    assert_eq!(a.active_version("firewall")?.as_deref(), Some("1"));
    // Node a activates 2 again; b follows.
    a.activate("firewall", "2")?;
    embedded.activate("firewall", "2")?;
    b.scan();
    for manager in [&a, &b, embedded] {
        assert_eq!(manager.active_version("firewall")?.as_deref(), Some("2"));
    }
    assert_eq!(a.rollback("firewall")?, "1");
    assert_eq!(embedded.rollback("firewall")?, "1");
    // A node that starts now activates nothing again, and serves 1.
    let c = ModelManager::open_shared(&root, node()?);
    assert_eq!(c.scan(), vec![]);
    assert_eq!(c.active_version("firewall")?.as_deref(), Some("1"));
    let history = |m: &ModelManager| -> anyhow::Result<Vec<String>> {
        Ok(m.events("firewall")?
            .into_iter()
            .filter(|e| e.action != "load")
            .map(|e| format!("{} {}", e.action, e.version))
            .collect())
    };
    assert_eq!(history(&c)?, history(embedded)?, "the shared history differs from one node's");
    // Nodes whose watchers find a new version in the same instant record
    // its activation once.
    let nodes: Vec<ModelManager> =
        (0..8).map(|_| Ok(ModelManager::open_shared(&root, node()?))).collect::<anyhow::Result<_>>()?;
    for node in &nodes {
        node.scan();
    }
    write_version(&root, "firewall", "3", &shipped_onnx("firewall")?, |_| {})?;
    let start = std::sync::Barrier::new(nodes.len());
    let found: Vec<usize> = std::thread::scope(|scope| {
        let passes: Vec<_> = nodes
            .iter()
            .map(|node| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    node.scan().len()
                })
            })
            .collect();
        passes.into_iter().map(|pass| pass.join().unwrap_or(usize::MAX)).collect()
    });
    // The store's own answer, without the race: a second first activation is none.
    let state = node()?;
    assert!(!state.model_activate_first("firewall", "3", 0)?, "a version recorded twice as first activated");
    assert_eq!(found.iter().sum::<usize>(), 1, "activations recorded by each node: {found:?}");
    let activations = history(&c)?.into_iter().filter(|e| e == "activate 3").count();
    assert_eq!(activations, 1, "{:?}", history(&c)?);
    for node in &nodes {
        assert_eq!(node.active_version("firewall")?.as_deref(), Some("3"));
    }
    Ok(())
}
