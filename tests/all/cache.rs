//! Job status and the cache, in the machine's real Redis (each test under a
//! key prefix of its own) and in the in-process fallback; a run whose Redis
//! connections are killed, or whose Redis is unreachable, still completes.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use mcp_engine::jobs::{RunJob, request_cancel};
use mcp_engine::pipeline::{self, RunError, RunSpec};
use mcp_fixtures::BUNDLED_SCHEMAS;
use mcp_sandbox::registry::Registry;
use mcp_storage::jobstatus::{JobState, JobStatus, SharedCache};
use mcp_storage::schema::SchemaFiles;
use mcp_storage::source::{LogSource, RetryPolicy, SqliteLogSource};
use mcp_storage::store::AnomalyStore;
use mcp_synth as generator;

use crate::common::{bundled_registry, sandbox};

/// The Redis tests use; `MCP_TEST_REDIS_URL` overrides it.
fn redis_url() -> String {
    std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 8, base_delay_ms: 5, max_delay_ms: 100 }
}

/// A Redis cache under a fresh key prefix, whose keys are deleted when the
/// guard goes.
struct Redis(SharedCache);

impl Drop for Redis {
    fn drop(&mut self) {
        if let SharedCache::Redis(redis) = &self.0
            && let Err(e) = redis.clear_prefix()
        {
            eprintln!("could not delete the test keys: {e}");
        }
    }
}

fn test_redis() -> anyhow::Result<Redis> {
    test_redis_with(quick_retry())
}

fn test_redis_with(retry: RetryPolicy) -> anyhow::Result<Redis> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let prefix = format!("mcp-test:{}:{}:{nanos}:", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let cache = SharedCache::open(Some(&redis_url()), &prefix, retry)?;
    if let SharedCache::Redis(redis) = &cache {
        redis.ping().map_err(|e| {
            anyhow::anyhow!(
                "{e}\nThese tests need Redis at {} (start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log)",
                redis_url()
            )
        })?;
    }
    Ok(Redis(cache))
}

fn status(tenant: &str, id: &str, started_ms: i64) -> JobStatus {
    JobStatus {
        id: id.into(),
        tenant: tenant.into(),
        kind: "run".into(),
        state: JobState::Running,
        subject: "agent dns".into(),
        counters: [("entries".to_string(), 10)].into_iter().collect(),
        error: None,
        started_ms,
        updated_ms: started_ms,
        stopped_after_id: None,
        agent: Some("dns".into()),
    }
}

fn job_status_contract(cache: &SharedCache) -> anyhow::Result<()> {
    cache.put_job(&status("a", "run-1", 1_000))?;
    cache.put_job(&status("a", "run-2", 2_000))?;
    cache.put_job(&status("b", "run-3", 3_000))?;
    let mut done = status("a", "run-1", 1_000);
    done.state = JobState::Completed;
    cache.put_job(&done)?;
    assert_eq!(cache.job("a", "run-1")?, Some(done));
    let ids: Vec<String> = cache.jobs("a")?.into_iter().map(|j| j.id).collect();
    assert_eq!(ids, ["run-2", "run-1"], "newest first, only tenant a's");
    assert_eq!(cache.job("a", "run-3")?, None, "another tenant's job is not found");
    assert_eq!(cache.job("b", "run-3")?.map(|j| j.tenant), Some("b".to_string()));
    // A busy tenant's index keeps its newest jobs only.
    let many = mcp_storage::jobstatus::MAX_JOBS_PER_TENANT + 5;
    for n in 0..many {
        cache.put_job(&status("busy", &format!("run-{n:05}"), 10_000 + n as i64))?;
    }
    let kept = cache.job_ids("busy")?;
    assert_eq!(kept.len(), mcp_storage::jobstatus::MAX_JOBS_PER_TENANT);
    assert_eq!(kept.first().map(String::as_str), Some(format!("run-{:05}", many - 1).as_str()), "newest first");
    assert_eq!(cache.jobs_by_id("busy", &kept[..2])?.len(), 2);
    cache.put("lookup", "value", Duration::from_secs(60))?;
    assert_eq!(cache.get("lookup")?.as_deref(), Some("value"));
    cache.put("short", "value", Duration::from_millis(1))?;
    Ok(())
}

#[test]
fn job_status_in_redis() -> anyhow::Result<()> {
    let redis = test_redis()?;
    job_status_contract(&redis.0)?;
    // The keys carry the prefix: another prefix sees none of them.
    let other = test_redis()?;
    assert!(other.0.jobs("a")?.is_empty());
    Ok(())
}

#[test]
fn job_status_in_process() -> anyhow::Result<()> {
    let cache = SharedCache::open(None, "unused:", quick_retry())?;
    assert!(cache.describe().contains("in-process"), "{}", cache.describe());
    job_status_contract(&cache)?;
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(cache.get("short")?, None, "expired values are gone");
    Ok(())
}

struct Logs {
    _dir: tempfile::TempDir,
    source: Arc<SqliteLogSource>,
    store_path: std::path::PathBuf,
}

fn dns_logs(entries: usize) -> anyhow::Result<Logs> {
    let dir = tempfile::tempdir()?;
    let source = Arc::new(SqliteLogSource::open(
        &dir.path().join("logs.db"),
        Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS))),
    )?);
    source.append("t", "dns", &generator::to_rows(&generator::generate("dns", 11, entries)?))?;
    let store_path = dir.path().join("anomalies.db");
    Ok(Logs { _dir: dir, source, store_path })
}

fn spec() -> RunSpec<'static> {
    RunSpec {
        tenant: "t",
        agent: "dns",
        log_source: "embedded",
        batch_size: 100,
        replay_ms: 0,
        up_to_id: None,
        follow: None,
    }
}

fn anomalies(store: &AnomalyStore) -> anyhow::Result<BTreeSet<(u64, String)>> {
    Ok(store.anomalies("t", "dns")?.into_iter().map(|a| (a.log_id, a.label)).collect())
}

/// Runs dns over `logs` with its status in `cache`, written after every batch.
fn observed_run(
    registry: &Registry,
    logs: &Logs,
    cache: &SharedCache,
) -> anyhow::Result<(Result<pipeline::RunReport, RunError>, String, u64)> {
    let mut store = AnomalyStore::open(&logs.store_path)?;
    let mut instance = pipeline::instance_for(registry, "dns", "t", Default::default(), None)?;
    let mut job = RunJob::start(cache, "t", "dns", "embedded", Duration::ZERO);
    let outcome =
        pipeline::run_observed(registry, &mut instance, &*logs.source, &mut store, &spec(), &mut |r| job.observe(r));
    job.finish(&outcome, &Default::default());
    Ok((outcome, job.id().to_string(), job.write_failures()))
}

fn uninterrupted(registry: &Registry, entries: usize) -> anyhow::Result<BTreeSet<(u64, String)>> {
    let logs = dns_logs(entries)?;
    let mut store = AnomalyStore::open(&logs.store_path)?;
    let mut instance = pipeline::instance_for(registry, "dns", "t", Default::default(), None)?;
    pipeline::run(registry, &mut instance, &*logs.source, &mut store, &spec())?;
    anomalies(&store)
}

#[test]
fn killed_redis_connections_are_retried_and_the_run_completes() -> anyhow::Result<()> {
    let registry = bundled_registry(sandbox())?;
    let expected = uninterrupted(&registry, 20_000)?;
    // A connection is killed every 15 ms: on a loaded machine eight
    // attempts in a row can meet a kill, so this test allows more.
    let redis = test_redis_with(RetryPolicy { max_attempts: 30, ..quick_retry() })?;
    let SharedCache::Redis(ours) = &redis.0 else { anyhow::bail!("expected a Redis cache") };
    let logs = dns_logs(20_000)?;
    let stop = AtomicBool::new(false);
    let mut admin = redis::Client::open(redis_url())?.get_connection()?;
    let (outcome, id, failures, kills) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let killer = scope.spawn(|| {
            let mut kills = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(client) = ours.client_id() {
                    let killed: redis::RedisResult<i64> =
                        redis::cmd("CLIENT").arg("KILL").arg("ID").arg(client).query(&mut admin);
                    kills += u32::from(killed.is_ok_and(|n| n > 0));
                }
                std::thread::sleep(Duration::from_millis(15));
            }
            kills
        });
        let run = observed_run(&registry, &logs, &redis.0);
        stop.store(true, Ordering::Relaxed);
        let kills = killer.join().map_err(|_| anyhow::anyhow!("the killer thread panicked"))?;
        let (outcome, id, failures) = run?;
        Ok((outcome, id, failures, kills))
    })?;
    let report = outcome?;
    assert!(kills >= 3, "the test killed only {kills} connections");
    assert!(redis.0.retries() > 0, "killed connections must have been retried");
    assert_eq!(failures, 0, "every status write got through after retries");
    let job = redis.0.job("t", &id)?.ok_or_else(|| anyhow::anyhow!("job {id} not in Redis"))?;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.counters.get("entries"), Some(&report.entries));
    assert_eq!(job.counters.get("anomalies"), Some(&report.anomalies));
    assert_eq!(anomalies(&AnomalyStore::open(&logs.store_path)?)?, expected);
    Ok(())
}

#[test]
fn unreachable_redis_does_not_stop_a_run() -> anyhow::Result<()> {
    let registry = bundled_registry(sandbox())?;
    let expected = uninterrupted(&registry, 3_000)?;
    // Nothing listens on port 1: every connection is refused.
    let cache = SharedCache::open(
        Some("redis://127.0.0.1:1/0"),
        "mcp-test:",
        RetryPolicy { max_attempts: 2, base_delay_ms: 1, max_delay_ms: 2 },
    )?;
    assert!(cache.describe().contains("unreachable"), "{}", cache.describe());
    let logs = dns_logs(3_000)?;
    let (outcome, id, failures) = observed_run(&registry, &logs, &cache)?;
    let report = outcome?;
    assert!(report.entries >= 3_000, "{report:?}");
    assert!(failures > 0 && cache.retries() > 0, "failures {failures}, retries {}", cache.retries());
    let error = cache.job("t", &id).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("127.0.0.1:1") && error.contains("attempts"), "a clear error: {error}");
    assert_eq!(anomalies(&AnomalyStore::open(&logs.store_path)?)?, expected, "nothing lost");
    Ok(())
}

#[test]
fn a_cancelled_run_resumes_from_its_checkpoint() -> anyhow::Result<()> {
    let registry = bundled_registry(sandbox())?;
    let expected = uninterrupted(&registry, 3_000)?;
    let redis = test_redis()?;
    let logs = dns_logs(3_000)?;
    let mut store = AnomalyStore::open(&logs.store_path)?;
    let mut instance = pipeline::instance_for(&registry, "dns", "t", Default::default(), None)?;
    let mut job = RunJob::start(&redis.0, "t", "dns", "embedded", Duration::ZERO);
    let mut batches = 0;
    let outcome = pipeline::run_observed(&registry, &mut instance, &*logs.source, &mut store, &spec(), &mut |r| {
        batches += 1;
        if batches == 3 {
            request_cancel(&redis.0, "t", job.id()).ok();
        }
        job.observe(r)
    });
    job.finish(&outcome, &Default::default());
    assert!(matches!(outcome, Err(RunError::Cancelled { after_id, .. }) if after_id > 0), "{outcome:?}");
    let kept = redis.0.job("t", job.id())?.map(|j| j.state);
    assert_eq!(kept, Some(JobState::Cancelled));
    let rest = pipeline::run(&registry, &mut instance, &*logs.source, &mut store, &spec())?;
    assert!(rest.entries > 0);
    assert_eq!(anomalies(&store)?, expected, "the rerun completes what the cancelled run left");
    Ok(())
}
