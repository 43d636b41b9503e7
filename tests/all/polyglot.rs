//! Agents in other languages than Rust: the Python DNS agent (componentize-py,
//! agents-wasm/dns-py) and the JavaScript one (componentize-js,
//! agents-wasm/dns-js) are agents like any other, passing the conformance
//! check, and find on the demo's data what the Rust DNS agent's rules find,
//! with the same settings, in any letter case.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mcp_engine::pipeline::{self, RunSpec};
use mcp_sandbox::conformance::{self, Outcome};
use mcp_sandbox::registry::Registry;
use mcp_storage::source::{LogSource, SqliteLogSource};
use mcp_storage::store::AnomalyStore;

use crate::common::{bundled_registry, sandbox};

fn example(agent: &str) -> anyhow::Result<&'static [u8]> {
    let file = format!("{agent}.wasm");
    mcp_agent_artifacts::EXAMPLES
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, _, bytes)| *bytes)
        .ok_or_else(|| anyhow::anyhow!("{file} is not among the examples"))
}

fn conforms(agent: &str) -> anyhow::Result<()> {
    let file = format!("{agent}.wasm");
    let report = conformance::check(&sandbox(), example(agent)?, &file, &mcp_synth::GeneratedSamples);
    let failed: Vec<_> = report.checks.iter().filter(|c| !matches!(c.outcome, Outcome::Passed(_))).collect();
    assert!(failed.is_empty(), "{agent}: {failed:?}");
    assert_eq!(report.agent.map(|a| (a.info.name, a.info.log_type)), Some((agent.into(), "dns".into())));
    Ok(())
}

#[test]
fn the_python_dns_agent_conforms() -> anyhow::Result<()> {
    conforms("dns-py")
}

#[test]
fn the_javascript_dns_agent_conforms() -> anyhow::Result<()> {
    conforms("dns-js")
}

/// The demo's DNS data (seed 42, 10,000 normal entries); `shouted`: every
/// query in alternating letter case with the root's trailing dot, as a
/// resolver may log 0x20-encoded queries.
fn dns_logs(shouted: bool) -> anyhow::Result<Vec<mcp_synth::GeneratedLog>> {
    let mut logs = mcp_synth::generate("dns", 42, 10_000)?;
    if shouted {
        for log in &mut logs {
            if let Some(query) = log.fields["query"].as_str() {
                let mixed: String = query
                    .chars()
                    .enumerate()
                    .map(|(n, c)| if n % 2 == 0 { c.to_ascii_uppercase() } else { c })
                    .collect();
                log.fields["query"] = format!("{mixed}.").into();
            }
        }
    }
    Ok(logs)
}

/// (log id, label) of every anomaly `agent` (the bundled `dns` with its
/// rules only, or an example) stores running over `logs` with `settings`.
fn found_by(
    agent: &str,
    logs: &[mcp_synth::GeneratedLog],
    settings: &[(&str, &str)],
) -> anyhow::Result<BTreeSet<(u64, String)>> {
    found_in_runs(agent, &[logs], settings, 0)
}

/// As [`found_by`], with `parts` of the logs arriving one after another and
/// a fresh instance for each (a restart between them), replaying
/// `replay_ms` of history before each run's checkpoint.
fn found_in_runs(
    agent: &str,
    parts: &[&[mcp_synth::GeneratedLog]],
    settings: &[(&str, &str)],
    replay_ms: i64,
) -> anyhow::Result<BTreeSet<(u64, String)>> {
    let dir = tempfile::tempdir()?;
    let schemas = Arc::new(mcp_storage::schema::SchemaFiles::new(std::path::Path::new(mcp_fixtures::BUNDLED_SCHEMAS)));
    let source = SqliteLogSource::open(&dir.path().join("logs.db"), schemas)?;
    let mut store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    let mut settings: BTreeMap<String, String> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let registry = if agent == "dns" {
        settings.insert("detection".into(), "rules".into());
        bundled_registry(sandbox())?
    } else {
        let mut registry = Registry::new(sandbox());
        registry.register_bytes(example(agent)?, &format!("{agent}.wasm"))?;
        registry
    };
    let spec = RunSpec {
        tenant: "t",
        agent,
        log_source: "embedded",
        batch_size: 1_000,
        replay_ms,
        up_to_id: None,
        follow: None,
    };
    for part in parts {
        source.append("t", "dns", &mcp_synth::to_rows(part))?;
        let mut instance = pipeline::instance_for(&registry, agent, "t", settings.clone(), None)?;
        pipeline::run(&registry, &mut instance, &source, &mut store, &spec)?;
    }
    Ok(store.anomalies("t", agent)?.into_iter().map(|a| (a.log_id, a.label)).collect())
}

/// What the Rust rules and `agent` each find on the demo's DNS data, with
/// `settings` given to both: the difference is bounded; and how many
/// entries the Rust rules found.
fn compared_with_rust(agent: &str, settings: &[(&str, &str)]) -> anyhow::Result<usize> {
    compared_with_rust_on(agent, &dns_logs(false)?, settings)
}

/// As [`compared_with_rust`], over `logs`.
fn compared_with_rust_on(
    agent: &str,
    logs: &[mcp_synth::GeneratedLog],
    settings: &[(&str, &str)],
) -> anyhow::Result<usize> {
    let by_rust = found_by("dns", logs, settings)?;
    let by_other = found_by(agent, logs, settings)?;

    // Entropy is f32 in Rust and f64 in Python and JavaScript: a label
    // exactly at a threshold could fall either side. None does on this
    // data; the bound below says how many may before the difference is a bug.
    let differ: Vec<_> = by_rust.symmetric_difference(&by_other).collect();
    assert!(by_rust.len() > 100, "the rules found {} entries", by_rust.len());
    // With no tunnel domain allowed, the comparison covers the windowed
    // rule too: the generator's tunnels are also many names under one domain.
    let sessions = by_rust.iter().any(|(_, label)| label == "dns_tunnel_session");
    assert!(sessions || !settings.is_empty(), "no tunnel session found");
    assert!(
        differ.len() * 1000 <= by_rust.len(),
        "{agent}: {} of {} findings differ: {differ:?}",
        differ.len(),
        by_rust.len()
    );
    Ok(by_rust.len())
}

#[test]
fn every_language_judges_names_in_any_letter_case_alike() -> anyhow::Result<()> {
    let (plain, shouted) = (dns_logs(false)?, dns_logs(true)?);
    for agent in ["dns", "dns-py", "dns-js"] {
        let (as_logged, as_shouted) = (found_by(agent, &plain, &[])?, found_by(agent, &shouted, &[])?);
        assert!(as_logged.len() > 100, "{agent}: {}", as_logged.len());
        assert_eq!(as_logged, as_shouted, "{agent}");
    }
    Ok(())
}

/// The tunnel domains of the generator, given as an operator would: a TOML
/// list reaches an agent as a JSON array (mixed case, a trailing dot), a
/// setting typed by hand as comma-separated text.
const ALLOW_AS_LIST: &str = r#"["SYNC-UPDATES0.com.", "sync-updates1.COM", "sync-updates2.com", "sync-updates3.com"]"#;
const ALLOW_AS_TEXT: &str = "sync-updates0.com, SYNC-updates1.com., sync-updates2.com,sync-updates3.com";

#[test]
fn an_allow_list_silences_the_same_names_in_every_language() -> anyhow::Result<()> {
    let everything = compared_with_rust("dns-py", &[])?;
    for (agent, allow) in [("dns-py", ALLOW_AS_LIST), ("dns-js", ALLOW_AS_TEXT), ("dns-js", ALLOW_AS_LIST)] {
        let allowed = compared_with_rust(agent, &[("allow_domains", allow)])?;
        assert!(
            allowed + 300 < everything,
            "{agent}: {allowed} findings with the tunnel domains allowed, {everything} without"
        );
    }
    Ok(())
}

#[test]
fn the_python_dns_agent_finds_what_the_rust_rules_find() -> anyhow::Result<()> {
    compared_with_rust("dns-py", &[]).map(drop)
}

#[test]
fn the_javascript_dns_agent_finds_what_the_rust_rules_find() -> anyhow::Result<()> {
    compared_with_rust("dns-js", &[]).map(drop)
}

#[test]
fn every_language_finds_the_same_on_realistic_traffic() -> anyhow::Result<()> {
    // Real services' names, generated names scored by letter pairs, tunnels
    // slower than a minute: the rules the easy data hardly reaches.
    let logs = mcp_synth::generate_with("dns", 42, 10_000, mcp_synth::Profile::Realistic)?;
    let by_rust = found_by("dns", &logs, &[])?;
    for label in ["dga", "dns_slow_tunnel", "dns_tunnel_session", "nxdomain_burst"] {
        assert!(by_rust.iter().any(|(_, l)| l == label), "the Rust rules found no {label}");
    }
    for agent in ["dns-py", "dns-js"] {
        compared_with_rust_on(agent, &logs, &[])?;
    }
    Ok(())
}

#[test]
fn every_language_finds_a_tunnel_of_short_chunks_across_a_restart() -> anyhow::Result<()> {
    // The realistic profile's tunnels send names of a few characters each,
    // found only as a session of one client under one domain: a restart
    // inside one must not start its count again.
    let logs = mcp_synth::generate_with("dns", 42, 10_000, mcp_synth::Profile::Realistic)?;
    let tunnel = logs.iter().position(|l| l.label == Some("dns_tunnel")).unwrap_or(logs.len() / 2);
    let cut = (tunnel + 8).min(logs.len());
    for agent in ["dns", "dns-py", "dns-js"] {
        let whole = found_in_runs(agent, &[&logs], &[], 120_000)?;
        let sessions = whole.iter().filter(|(_, label)| label == "dns_tunnel_session").count();
        assert!(sessions > 0, "{agent}: no tunnel session found without a restart");
        let restarted = found_in_runs(agent, &[&logs[..cut], &logs[cut..]], &[], 120_000)?;
        let missing: Vec<_> = whole.difference(&restarted).take(5).collect();
        let extra: Vec<_> = restarted.difference(&whole).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{agent} after a restart: missing {missing:?}, extra {extra:?}"
        );
    }
    Ok(())
}

#[test]
fn every_sdk_carries_the_same_name_pair_costs_and_public_suffixes() {
    let costs = mcp_sdk::names::PAIR_COSTS;
    let python = include_str!("../../sdk/python/mcp_agent/__init__.py");
    let js = include_str!("../../sdk/js/mcp_agent.js");
    assert!(
        python.contains(&format!("NAME_PAIR_COSTS = \"{costs}\"\n")),
        "sdk/python's table differs from sdk/src/names.rs"
    );
    assert!(
        js.contains(&format!("const NAME_PAIR_COSTS = \"{costs}\";\n")),
        "sdk/js's table differs from sdk/src/names.rs"
    );
    let suffixes = mcp_sdk::names::ICANN_SUFFIXES;
    assert!(python.contains(&format!("PUBLIC_SUFFIXES = \"{suffixes}\"\n")), "sdk/python's suffixes differ");
    assert!(js.contains(&format!("const PUBLIC_SUFFIXES = \"{suffixes}\";\n")), "sdk/js's suffixes differ");
}
