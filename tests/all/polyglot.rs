//! Agents in other languages than Rust: the Python DNS agent (componentize-py,
//! agents-wasm/dns-py) is an agent like any other, passing the conformance
//! check, and finds on the demo's data what the Rust DNS agent's rules find.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mcp_engine::pipeline::{self, RunSpec};
use mcp_sandbox::conformance::{self, Outcome};
use mcp_sandbox::registry::Registry;
use mcp_storage::source::{LogSource, SqliteLogSource};
use mcp_storage::store::AnomalyStore;

use crate::common::{bundled_registry, sandbox};

fn python_dns() -> anyhow::Result<&'static [u8]> {
    mcp_agent_artifacts::EXAMPLES
        .iter()
        .find(|(name, _, _)| *name == "dns-py.wasm")
        .map(|(_, _, bytes)| *bytes)
        .ok_or_else(|| anyhow::anyhow!("the Python DNS agent is not among the examples"))
}

#[test]
fn the_python_dns_agent_conforms() -> anyhow::Result<()> {
    let report = conformance::check(&sandbox(), python_dns()?, "dns-py.wasm", &mcp_synth::GeneratedSamples);
    let failed: Vec<_> = report.checks.iter().filter(|c| !matches!(c.outcome, Outcome::Passed(_))).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(report.agent.map(|a| (a.info.name, a.info.log_type)), Some(("dns-py".into(), "dns".into())));
    Ok(())
}

/// (log id, label) of every anomaly `agent` stores running over `source`.
fn findings(
    registry: &Registry,
    agent: &str,
    settings: BTreeMap<String, String>,
    source: &SqliteLogSource,
    store: &mut AnomalyStore,
) -> anyhow::Result<BTreeSet<(u64, String)>> {
    let mut instance = pipeline::instance_for(registry, agent, "t", settings, None)?;
    let spec = RunSpec { tenant: "t", agent, log_source: "embedded", batch_size: 1_000, replay_ms: 0 };
    pipeline::run(registry, &mut instance, source, store, &spec)?;
    Ok(store.anomalies("t", agent)?.into_iter().map(|a| (a.log_id, a.label)).collect())
}

#[test]
fn the_python_dns_agent_finds_what_the_rust_rules_find() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let schemas = Arc::new(mcp_storage::schema::SchemaFiles::new(std::path::Path::new(mcp_fixtures::BUNDLED_SCHEMAS)));
    let source = SqliteLogSource::open(&dir.path().join("logs.db"), schemas)?;
    let mut store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    source.append("t", "dns", &mcp_synth::to_rows(&mcp_synth::generate("dns", 42, 10_000)?))?;

    let rust = bundled_registry(sandbox())?;
    let rules = BTreeMap::from([("detection".to_string(), "rules".to_string())]);
    let by_rust = findings(&rust, "dns", rules, &source, &mut store)?;
    let mut python = Registry::new(sandbox());
    python.register_bytes(python_dns()?, "dns-py.wasm")?;
    let by_python = findings(&python, "dns-py", BTreeMap::new(), &source, &mut store)?;

    // Entropy is f32 in Rust and f64 in Python: a label exactly at a
    // threshold could fall either side. None does on this data; the bound
    // below says how many may before the difference is a bug.
    let differ: Vec<_> = by_rust.symmetric_difference(&by_python).collect();
    assert!(by_rust.len() > 100, "the rules found {} entries", by_rust.len());
    assert!(differ.len() * 1000 <= by_rust.len(), "{} of {} findings differ: {differ:?}", differ.len(), by_rust.len());
    Ok(())
}
