//! `mcp bench --fill-anomalies N`: fills the configured anomaly store (the
//! embedded one, or PostgreSQL's with `anomaly_store = "postgres"`) with N
//! synthetic anomalies of the configured tenant (three agents, their
//! labels, all severities, a year of timestamps in the order logs arrive), so that the API's page
//! queries can be load-tested over a realistic store (scripts/bench_api.sh).

use anyhow::Result;
use mcp_columns::{Anomaly, Severity};
use mcp_engine::config::McpConfig;
use mcp_storage::run_store::{ConfiguredStore, RunStore};
use mcp_storage::store::{AnomalyStore, CheckpointKey, Provenance};
use rand::{Rng, SeedableRng};

const KINDS: [(&str, &str, &[&str]); 3] = [
    ("wifi", "wifi", &["deauth_flood", "rogue_ap", "auth_bruteforce", "evil_twin", "rf_jamming"]),
    ("firewall", "firewall", &["port_scan", "deny_burst", "exfiltration", "suspicious_port"]),
    ("dns", "dns", &["dga", "dns_tunnel", "nxdomain_burst"]),
];
const SEVERITIES: [Severity; 5] = [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

pub fn fill(config: &McpConfig, count: usize) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let shared = config.shared_store()?;
    let (mut store, into) = match &shared {
        Some(shared) => {
            shared.migrate()?;
            (ConfiguredStore::Shared(shared), "PostgreSQL's anomaly store".to_string())
        }
        None => {
            let embedded = AnomalyStore::open(&config.anomalies_db())?;
            // Entries arrive in time order, as logs do: the time indexes
            // then grow at their end instead of at random pages (ten
            // million rows took half an hour here, where random order had
            // not reached four million in as long); a larger page cache
            // holds the indexes that are not in time order (score) while
            // they grow.
            embedded.tune_for_bulk_writes()?;
            (ConfiguredStore::Embedded(embedded), config.anomalies_db().display().to_string())
        }
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let year_ms: i64 = 365 * 24 * 3600 * 1000;
    let start_ms = 1_767_225_600_000; // 2026-01-01
    let chunk = 20_000;
    let mut written = 0;
    let mut next_id: u64 = 1;
    let step_ms = (year_ms / count.max(1) as i64).max(1);
    while written < count {
        let n = chunk.min(count - written);
        for (agent, log_type, labels) in KINDS {
            let batch: Vec<(Anomaly, Option<String>)> = (0..n / 3 + 1)
                .map(|_| {
                    next_id += 1;
                    let label = labels[rng.random_range(0..labels.len())];
                    let anomaly = Anomaly {
                        agent: agent.into(),
                        log_id: next_id,
                        log_type: log_type.into(),
                        source: format!("dev-{}", rng.random_range(0..50)),
                        log_timestamp_ms: start_ms + next_id as i64 * step_ms + rng.random_range(0..step_ms),
                        score: rng.random_range(0.0..=1.0),
                        label: label.into(),
                        severity: SEVERITIES[rng.random_range(0..SEVERITIES.len())],
                        reason: format!("synthetic {label} for the API benchmark"),
                        detected_at_ms: start_ms + year_ms,
                    };
                    (anomaly, Some("{\"synthetic\":true}".to_string()))
                })
                .collect();
            let key = CheckpointKey { tenant: &config.tenant, agent, log_source: "bench", log_type };
            let provenance = Provenance { agent_sha256: "bench", schema_version: 1, model: None };
            store.commit_with_state(&key, &provenance, &batch, next_id, None)?;
            written += batch.len();
        }
    }
    #[allow(clippy::print_stdout)]
    {
        println!("wrote {written} synthetic anomalies for tenant {} into {into}", config.tenant);
    }
    Ok(())
}
