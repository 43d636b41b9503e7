//! `mcp bench --notify N`: the delivery worker's throughput against a
//! receiver on loopback (N signed webhook notifications, drained as the
//! server's worker does), the latency of each attempt, and what queueing
//! notifications adds to a run's commit, in the configured anomaly store
//! (embedded, or PostgreSQL with `anomaly_store = "postgres"`). Medians of
//! several rounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mcp_columns::{Anomaly, Severity};
use mcp_engine::config::McpConfig;
use mcp_engine::config::StoreKind;
use mcp_notify::spec::{ChannelSpec, MAX_RATE_PER_MINUTE};
use mcp_storage::notify::{Managed, RouteRecord};
use mcp_storage::run_store::{ConfiguredStore, RunStore};
use mcp_storage::store::{AnomalyStore, CheckpointKey, Provenance};

fn anomalies(count: usize, first_id: u64) -> Vec<(Anomaly, Option<String>)> {
    (0..count)
        .map(|i| {
            let anomaly = Anomaly {
                agent: "dns".into(),
                log_id: first_id + i as u64,
                log_type: "dns".into(),
                // Every one of its own kind: nothing is folded.
                source: format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
                log_timestamp_ms: 0,
                score: 0.9,
                label: "tunnel".into(),
                severity: Severity::High,
                reason: "long random labels under one domain".into(),
                detected_at_ms: 0,
            };
            (anomaly, None)
        })
        .collect()
}

/// Commits `count` anomalies of `tenant` in batches of 1,000; the time it
/// took.
fn commit(store: &mut dyn RunStore, tenant: &str, count: usize, first_id: u64) -> Result<Duration> {
    let key = CheckpointKey { tenant, agent: "dns", log_source: "bench", log_type: "dns" };
    let provenance = Provenance { agent_sha256: "bench", schema_version: 1, model: None };
    let all = anomalies(count, first_id);
    let started = Instant::now();
    for (i, batch) in all.chunks(1_000).enumerate() {
        store.commit_with_state(&key, &provenance, batch, first_id + ((i + 1) * 1_000) as u64, None)?;
    }
    Ok(started.elapsed())
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}

pub fn run(base: &McpConfig, count: usize, rounds: usize) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let address = listener.local_addr()?;
    runtime.spawn(async move { axum::serve(listener, receiver).await });

    let rounds = rounds.max(1);
    let config_for = |dir: &std::path::Path| -> Result<McpConfig> {
        let mut config = McpConfig {
            data_dir: dir.to_path_buf(),
            database_url: base.database_url.clone(),
            database_schema: base.database_schema.clone(),
            anomaly_store: base.anomaly_store,
            ..McpConfig::default()
        };
        let key_file = dir.join("secrets.key");
        std::fs::write(&key_file, hex::encode(rand::random::<[u8; 32]>()))?;
        config.notifications.secrets_key_file = Some(key_file);
        config.notifications.allow_private_targets = true;
        Ok(config)
    };
    let on_postgres = base.anomaly_store == StoreKind::Postgres;
    println!(
        "mcp bench --notify: {count} signed webhook notifications to a receiver on 127.0.0.1, {} at once, \
         median of {rounds} rounds; {} cores; the outbox in {}",
        McpConfig::default().notifications.concurrency,
        std::thread::available_parallelism().map_or(1, usize::from),
        if on_postgres { "PostgreSQL" } else { "the embedded store" }
    );
    let (mut rates, mut p50s, mut p99s, mut plain, mut routed) = (vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let dir = tempfile::tempdir()?;
        let config = config_for(dir.path())?;
        // PostgreSQL keeps what earlier rounds and runs stored: fresh
        // tenants make each round's anomalies new.
        let tenant = format!("bench-{}-{round}", std::process::id());
        let bare_tenant = format!("{tenant}-bare");
        let control = config.control_store()?;
        let spec = ChannelSpec::from_json(serde_json::json!({
            "kind": "webhook",
            "url": {"value": format!("http://{address}/hook")},
            "signing_key": {"value": "a-benchmark-signing-key"},
            "dedup_window_s": 0,
            "rate_per_minute": MAX_RATE_PER_MINUTE,
        }))?;
        let key = mcp_notify::secret::SecretKey::load(&config.notifications)?;
        control.put_notify_channel(&spec.to_record(&tenant, "hook", &key, &config.notifications, Managed::Api)?)?;
        let route = RouteRecord {
            name: "all".into(),
            channel: "hook".into(),
            severities: vec![],
            agents: vec![],
            log_types: vec![],
            labels: vec![],
            min_score: 0.0,
        };
        control.put_notify_route(&tenant, &route, Managed::Api)?;

        // The same commits without and with a route: what the outbox adds.
        let routes = Arc::new(control.route_book()?);
        let (bare_shared, routed_shared) = match config.shared_store()? {
            Some(bare) => {
                bare.migrate()?;
                let mut routed = config.shared_store()?.context("the store on PostgreSQL")?;
                routed.route_with(routes.clone());
                (Some(bare), Some(routed))
            }
            None => (None, None),
        };
        let mut bare = match &bare_shared {
            Some(shared) => ConfiguredStore::Shared(shared),
            None => ConfiguredStore::Embedded(AnomalyStore::open(&dir.path().join("bare.db"))?),
        };
        let mut store = match &routed_shared {
            Some(shared) => ConfiguredStore::Shared(shared),
            None => {
                let mut routed = AnomalyStore::open(&config.anomalies_db())?;
                routed.route_with(routes);
                ConfiguredStore::Embedded(routed)
            }
        };
        plain.push(commit(&mut bare, &bare_tenant, count, 1)?.as_secs_f64());
        routed.push(commit(&mut store, &tenant, count, 1)?.as_secs_f64());

        let deliverer = mcp_notify::Deliverer::open(&config)?;
        let before = received.load(Ordering::Relaxed);
        let started = Instant::now();
        let handled = runtime.block_on(deliverer.drain())?;
        let seconds = started.elapsed().as_secs_f64();
        let got = received.load(Ordering::Relaxed) - before;
        anyhow::ensure!(
            handled == count && got == count as u64,
            "round {round}: {handled} handled, {got} received of {count}"
        );
        let mut latencies: Vec<i64> = match &routed_shared {
            Some(shared) => shared.attempt_latencies(&tenant)?,
            None => {
                let conn = rusqlite::Connection::open(config.anomalies_db())?;
                conn.prepare("SELECT latency_ms FROM notify_attempts")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
                    .context("attempt latencies")?
            }
        };
        latencies.sort_unstable();
        rates.push(count as f64 / seconds);
        p50s.push(percentile(&latencies, 0.5) as f64);
        p99s.push(percentile(&latencies, 0.99) as f64);
        println!(
            "round {}: {:.0} notifications/s, attempt p50 {} ms, p99 {} ms",
            round + 1,
            count as f64 / seconds,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    let (plain, routed) = (median(plain), median(routed));
    println!(
        "\ndelivery: {:.0} notifications/s; attempt latency p50 {:.0} ms, p99 {:.0} ms",
        median(rates),
        median(p50s),
        median(p99s)
    );
    println!(
        "commit of {count} anomalies in batches of 1,000: {:.3} s without a route, {:.3} s with one ({:.2}x)",
        plain,
        routed,
        routed / plain.max(1e-9)
    );
    Ok(())
}
