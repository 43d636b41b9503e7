//! Criterion benches of the host's hot paths, one group each: JSON rows
//! into typed columns, a call into the sandbox, each bundled agent natively
//! and sandboxed, instantiation, tract per shipped model, and a store
//! commit. `cargo bench -p mcp-tests --bench hot_paths` measures them (the
//! release profile); `cargo test --benches`, which CI runs, runs each once
//! in the test build so that they keep compiling and working. Whole-pipeline
//! figures come from `mcp bench` (docs/performance.md).

use std::path::Path;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mcp_columns::{Anomaly, RawRow, Severity, build_shaped_batch};
use mcp_engine::models::ModelManager;
use mcp_sandbox::conformance::{to_batch, to_columns};
use mcp_sandbox::registry::Registry;
use mcp_sandbox::{CompileCache, GuestBatch, InstanceContext, LogEntry, Sandbox, SandboxLimits};
use mcp_sdk::Agent;
use mcp_storage::schema::SchemaFiles;
use mcp_storage::store::{AnomalyStore, CheckpointKey, Provenance};
use mcp_synth as generator;

/// Entries per batch: the pipeline's default.
const BATCH: usize = 1_000;

fn entries(log_type: &str) -> Vec<LogEntry> {
    match generator::generate(log_type, 99, BATCH) {
        Ok(logs) => generator::to_entries(log_type, &logs).into_iter().take(BATCH).collect(),
        Err(e) => panic!("cannot generate {log_type} entries: {e}"),
    }
}

fn registry() -> Registry {
    let cache = CompileCache::new(Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-compile-cache")));
    let sandbox = match Sandbox::new(SandboxLimits::default(), cache) {
        Ok(sandbox) => Arc::new(sandbox),
        Err(e) => panic!("cannot build the sandbox: {e}"),
    };
    let mut registry = Registry::new(sandbox);
    if let Err(e) = registry.discover(Path::new(mcp_fixtures::AGENTS_DIR)) {
        panic!("cannot load the bundled agents from {}: {e}", mcp_fixtures::AGENTS_DIR);
    }
    registry
}

fn ok<T, E: std::fmt::Debug>(what: &str, result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// The host's parse: JSON rows into the typed columns agents read, under
/// the bundled schema file of each log type.
fn row_parse(c: &mut Criterion) {
    let schemas = SchemaFiles::new(Path::new(mcp_fixtures::BUNDLED_SCHEMAS));
    let mut group = c.benchmark_group("build_batch");
    for &log_type in generator::LOG_TYPES {
        let shape = match schemas.shape(log_type) {
            Ok(Some(shape)) => shape,
            other => panic!("no schema file for {log_type}: {other:?}"),
        };
        let entries = entries(log_type);
        let rows: Vec<RawRow<'_>> = entries.iter().map(LogEntry::raw_row).collect();
        group.throughput(Throughput::Elements(rows.len() as u64));
        group.bench_function(log_type, |b| b.iter(|| build_shaped_batch(&shape, &rows)));
    }
    group.finish();
}

/// Each agent over one batch from fresh state, natively and in the sandbox
/// (the batch copied in, the findings lifted out).
fn agents(c: &mut Criterion) {
    let registry = registry();
    let mut group = c.benchmark_group("agent");
    for &log_type in generator::LOG_TYPES {
        let entries = entries(log_type);
        group.throughput(Throughput::Elements(entries.len() as u64));
        let columns = to_columns(log_type, &entries);
        let sdk_batch = mcp_sdk::LogBatch::from(columns.clone());
        let native = |b: &mut criterion::Bencher<'_>| match log_type {
            "wifi" => native_batch::<mcp_agent_wifi::WifiAgent>(b, &sdk_batch),
            "firewall" => native_batch::<mcp_agent_firewall::FirewallAgent>(b, &sdk_batch),
            _ => native_batch::<mcp_agent_dns::DnsAgent>(b, &sdk_batch),
        };
        group.bench_function(format!("{log_type}/native"), native);
        let guest_batch = GuestBatch::from(columns);
        group.bench_function(format!("{log_type}/sandboxed"), |b| {
            b.iter_batched(
                || ok("instantiate", registry.instantiate(log_type, InstanceContext::new(log_type, "bench"))),
                |mut instance| ok("detect", instance.detect_batch(&guest_batch)),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn native_batch<A: Agent>(b: &mut criterion::Bencher<'_>, batch: &mcp_sdk::LogBatch) {
    b.iter_batched(A::default, |mut agent| ok("native", mcp_sdk::run_batch(&mut agent, batch)), BatchSize::SmallInput)
}

/// What a call costs beyond the agent's work: an empty batch in and out.
fn crossing(c: &mut Criterion) {
    let registry = registry();
    let mut instance = ok("instantiate", registry.instantiate("wifi", InstanceContext::new("wifi", "bench")));
    let empty = to_batch("wifi", &[]);
    c.bench_function("crossing/empty_batch", |b| b.iter(|| ok("detect", instance.detect_batch(&empty))));
    c.bench_function("instantiate/wifi", |b| {
        b.iter(|| ok("instantiate", registry.instantiate("wifi", InstanceContext::new("wifi", "bench"))))
    });
}

/// Tract over each shipped model's active version, batches of 1,024 rows.
fn models(c: &mut Criterion) {
    let state = ok("a temporary directory", tempfile::tempdir());
    let manager = ok(
        "the shipped models",
        ModelManager::open(Path::new(mcp_fixtures::BUNDLED_MODELS), &state.path().join("models.db")),
    );
    let mut group = c.benchmark_group("tract");
    for &agent in generator::LOG_TYPES {
        let model = ok("the agent's model", manager.model(agent, None));
        let rows = 1024;
        let data: Vec<f32> = (0..rows * model.features()).map(|i| (i % 7) as f32).collect();
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(agent, |b| b.iter(|| ok("infer", model.infer(rows, &data))));
    }
    group.finish();
}

/// One commit of 100 new anomalies and a checkpoint into the embedded store.
fn store_commit(c: &mut Criterion) {
    let dir = ok("a temporary directory", tempfile::tempdir());
    let mut store = ok("the store", AnomalyStore::open(&dir.path().join("anomalies.db")));
    let key = CheckpointKey { tenant: "bench", agent: "dns", log_source: "bench", log_type: "dns" };
    let provenance = Provenance { agent_sha256: "bench", schema_version: 1, model: None };
    let mut next_id = 0u64;
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(100));
    group.bench_function("commit_100", |b| {
        b.iter_batched(
            || {
                let batch: Vec<_> = (0..100)
                    .map(|_| {
                        next_id += 1;
                        (anomaly(next_id), None)
                    })
                    .collect();
                (batch, next_id)
            },
            |(batch, last)| ok("commit", store.commit(&key, &provenance, &batch, last)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn anomaly(log_id: u64) -> Anomaly {
    Anomaly {
        agent: "dns".into(),
        log_id,
        log_type: "dns".into(),
        source: format!("host-{}", log_id % 50),
        log_timestamp_ms: 1_767_225_600_000 + log_id as i64,
        score: 0.9,
        label: "dns_tunnel".into(),
        severity: Severity::High,
        reason: "a long, high-entropy label under one domain".into(),
        detected_at_ms: 0,
    }
}

criterion_group!(hot_paths, row_parse, crossing, agents, models, store_commit);
criterion_main!(hot_paths);
