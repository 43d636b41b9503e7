//! The shared work table on the machine's PostgreSQL, node by node in one
//! process: claims hand each unit to one node, a lease that lapsed is taken
//! over with the unit's checkpoint and agent state, and the superseded
//! holder's commits are refused by the fencing token. The multi-process
//! test (kills, pauses, joins) is runtime/cli/tests/cluster.rs.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mcp_engine::config::McpConfig;
use mcp_engine::models::ModelManager;
use mcp_engine::worker::{self, WorkerContext, WorkerOptions};
use mcp_sandbox::registry::Registry;
use mcp_storage::control::ControlStore;

use mcp_engine::pipeline::{self, RunError, RunSpec};
use mcp_storage::cluster::{Backfill, Cluster, ClusterError, Lease, UnitKind, UnitView};
use mcp_storage::source::{LogSource, RetryPolicy};
use mcp_storage::store::AnomalyStore;
use mcp_synth as generator;

use crate::common::{bundled_registry, sandbox};
use crate::postgres::{Pg, database_url, pg};

fn node(pg: &Pg, name: &str, lease: Duration) -> anyhow::Result<Cluster> {
    let namespace = pg.0.namespace().ok_or_else(|| anyhow::anyhow!("the test source has no schema"))?;
    Ok(Cluster::connect(&database_url(), Some(namespace), name, lease, RetryPolicy::default())?)
}

/// The bundled agents' names: what a node with the bundled agents claims.
fn bundled() -> Vec<String> {
    ["dns", "firewall", "wifi"].map(String::from).to_vec()
}

fn dns_backfill(rows_per_unit: u64) -> Backfill<'static> {
    Backfill { tenant: "t", agent: "dns", log_type: "dns", rows_per_unit }
}

const WIFI: Backfill<'static> = Backfill { tenant: "t", agent: "wifi", log_type: "wifi", rows_per_unit: 0 };

fn spec(lease: &Lease) -> RunSpec<'_> {
    RunSpec {
        tenant: &lease.tenant,
        agent: &lease.agent,
        log_source: "postgres",
        batch_size: 500,
        replay_ms: 120_000,
        up_to_id: Some(lease.up_to),
        follow: None,
    }
}

#[test]
fn a_lapsed_lease_is_taken_over_and_the_old_holders_commits_are_refused() -> anyhow::Result<()> {
    let pg = pg()?;
    pg.0.append("t", "wifi", &generator::to_rows(&generator::generate("wifi", 5, 4_000)?))?;
    let lease_time = Duration::from_millis(800);
    let first = node(&pg, "first", lease_time)?;
    let second = node(&pg, "second", lease_time)?;
    first.join()?;
    second.join()?;
    assert_eq!(first.plan_backfill(&WIFI)?, 1);
    assert_eq!(second.plan_backfill(&WIFI)?, 0, "planning again added a unit for the same rows");

    let registry = bundled_registry(sandbox())?;
    let held = first.claim(UnitKind::Range, &bundled())?.ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;
    assert_eq!(second.claim(UnitKind::Range, &bundled())?, None, "a held unit was handed out twice");
    assert_eq!(first.nodes()?.iter().find(|n| n.name == "first").map(|n| n.leases.clone()), Some(vec![held.unit]));

    // The first node commits two batches, then goes silent.
    let mut instance = pipeline::instance_for(&registry, "wifi", "t", Default::default(), None)?;
    let mut batches = 0;
    let stopped =
        pipeline::run_observed(&registry, &mut instance, &pg.0, &mut first.store(&held), &spec(&held), &mut |_| {
            batches += 1;
            if batches == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
    let Err(RunError::Cancelled { after_id, .. }) = stopped else { anyhow::bail!("the run did not stop: {stopped:?}") };
    std::thread::sleep(lease_time + Duration::from_millis(300));

    let taken = second
        .claim(UnitKind::Range, &bundled())?
        .ok_or_else(|| anyhow::anyhow!("the lapsed lease was not taken over"))?;
    assert_eq!((taken.unit, taken.token, taken.checkpoint, taken.claims), (held.unit, held.token + 1, after_id, 2));
    assert_eq!(
        first.beat(std::slice::from_ref(&held))?.lost,
        vec![held.unit],
        "the old holder's beat kept a lost lease"
    );

    // The old holder wakes and commits: refused, and nothing it found lands.
    let mut late = pipeline::instance_for(&registry, "wifi", "t", Default::default(), None)?;
    let refused = pipeline::run(&registry, &mut late, &pg.0, &mut first.store(&held), &spec(&held));
    assert!(
        matches!(&refused, Err(RunError::RunStore(e)) if e.is_fenced()),
        "the superseded holder's commit was not refused: {refused:?}"
    );
    let stored_before = second.anomaly_keys("t")?.len();
    let unit = second.units()?.into_iter().find(|u| u.id == held.unit).ok_or_else(|| anyhow::anyhow!("unit gone"))?;
    assert_eq!(u64::try_from(unit.checkpoint)?, after_id, "the refused commit moved the checkpoint");
    assert!(matches!(first.finish(&held), Err(ClusterError::Fenced { .. })), "the old holder could mark it done");

    // The new holder resumes with the unit's checkpoint and agent state.
    let mut resumed = pipeline::instance_for(&registry, "wifi", "t", Default::default(), None)?;
    let report = pipeline::run(&registry, &mut resumed, &pg.0, &mut second.store(&taken), &spec(&taken))?;
    // The Wi-Fi agent's learned access points come back only with its
    // state, so the comparison below fails if the unit's state is lost.
    assert!(report.restored_state_bytes > 0, "the new holder started without the unit's state: {report:?}");
    second.finish(&taken)?;
    assert!(second.anomaly_keys("t")?.len() >= stored_before);

    // The same anomalies as one uninterrupted run into the embedded store.
    let dir = tempfile::tempdir()?;
    let mut store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    let mut whole = pipeline::instance_for(&registry, "wifi", "t", Default::default(), None)?;
    let whole_spec = RunSpec { up_to_id: None, log_source: pg.0.name(), ..spec(&taken) };
    pipeline::run(&registry, &mut whole, &pg.0, &mut store, &whole_spec)?;
    let expected: BTreeSet<_> =
        store.anomalies("t", "wifi")?.into_iter().map(|a| ("wifi".to_string(), a.log_id, a.label)).collect();
    let found: BTreeSet<_> = second.anomaly_keys("t")?.into_iter().collect();
    assert!(!expected.is_empty());
    assert_eq!(found, expected);
    Ok(())
}

#[test]
fn a_unit_a_lost_node_left_half_done_is_taken_before_fresh_ones() -> anyhow::Result<()> {
    let pg = pg()?;
    pg.0.append("t", "dns", &generator::to_rows(&generator::generate("dns", 13, 6_000)?))?;
    let lease_time = Duration::from_millis(800);
    let lost = node(&pg, "lost", lease_time)?;
    lost.join()?;
    assert!(lost.plan_backfill(&dns_backfill(1_000))? >= 3);
    let untouched = lost.claim(UnitKind::Range, &bundled())?.ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;
    let half_done = lost.claim(UnitKind::Range, &bundled())?.ok_or_else(|| anyhow::anyhow!("one unit only"))?;
    assert!(untouched.unit < half_done.unit);

    // The lost node commits one batch of its second unit, then goes silent.
    let registry = bundled_registry(sandbox())?;
    let mut instance = pipeline::instance_for(&registry, "dns", "t", Default::default(), None)?;
    let stopped = pipeline::run_observed(
        &registry,
        &mut instance,
        &pg.0,
        &mut lost.store(&half_done),
        &spec(&half_done),
        &mut |_| ControlFlow::Break(()),
    );
    assert!(matches!(stopped, Err(RunError::Cancelled { .. })), "the run did not stop: {stopped:?}");
    std::thread::sleep(lease_time + Duration::from_millis(300));

    let next = node(&pg, "next", Duration::from_secs(30))?;
    let first = next.claim(UnitKind::Range, &bundled())?.ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;
    assert_eq!(first.unit, half_done.unit, "a fresh unit went before the one left half done");
    assert!(first.checkpoint > half_done.checkpoint);
    let second = next.claim(UnitKind::Range, &bundled())?.ok_or_else(|| anyhow::anyhow!("nothing left"))?;
    assert_eq!(second.unit, untouched.unit, "the units without progress go in the order planned");
    Ok(())
}

#[test]
fn concurrent_claims_hand_each_unit_to_one_node() -> anyhow::Result<()> {
    let pg = pg()?;
    pg.0.append("t", "dns", &generator::to_rows(&generator::generate("dns", 6, 3_000)?))?;
    let planner = node(&pg, "planner", Duration::from_secs(30))?;
    let planned = planner.plan_backfill(&dns_backfill(100))?;
    assert!(planned >= 30, "only {planned} units");
    let claimed = std::thread::scope(|scope| -> anyhow::Result<Vec<Vec<i64>>> {
        let nodes: Vec<_> = (0..4)
            .map(|i| {
                let pg = &pg;
                scope.spawn(move || -> anyhow::Result<Vec<i64>> {
                    let me = node(pg, &format!("n{i}"), Duration::from_secs(30))?;
                    let mut mine = Vec::new();
                    while let Some(lease) = me.claim(UnitKind::Range, &["dns".to_string()])? {
                        mine.push(lease.unit);
                    }
                    Ok(mine)
                })
            })
            .collect();
        nodes.into_iter().map(|n| n.join().map_err(|_| anyhow::anyhow!("a node panicked"))?).collect()
    })?;
    let all: Vec<i64> = claimed.iter().flatten().copied().collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a unit was claimed twice");
    assert_eq!(distinct.len(), planned, "units were left unclaimed");
    Ok(())
}

#[test]
fn planning_again_covers_only_the_rows_that_came_since() -> anyhow::Result<()> {
    let pg = pg()?;
    let rows = generator::to_rows(&generator::generate("dns", 7, 2_000)?);
    let (older, newer) = rows.split_at(1_000);
    pg.0.append("t", "dns", older)?;
    let planner = node(&pg, "planner", Duration::from_secs(30))?;
    assert_eq!(planner.plan_backfill(&dns_backfill(400))?, 3, "1,000 rows in units of 400");
    assert_eq!(planner.plan_backfill(&dns_backfill(400))?, 0);
    pg.0.append("t", "dns", newer)?;
    let added = planner.plan_backfill(&dns_backfill(0))?;
    assert_eq!(added, 1);
    let units = planner.units()?;
    for pair in units.windows(2) {
        assert_eq!(pair[0].up_to, pair[1].start_after, "units leave a gap or overlap: {pair:?}");
    }
    assert_eq!(units.first().map(|u| u.start_after), Some(0));
    let last_row = pg.0.labels("t", "dns")?.last().map(|(id, _)| *id);
    assert_eq!(units.last().map(|u| u.up_to.unsigned_abs()), last_row, "the last rows are not covered");
    Ok(())
}

#[test]
fn a_worker_without_postgres_says_what_to_set() {
    let config = mcp_engine::config::McpConfig::default();
    let refused = config.cluster("n", Duration::from_secs(1));
    let Err(error) = refused else { panic!("a cluster without database_url connected") };
    assert!(error.to_string().contains("database_url"), "{error}");
}

/// A node working in a thread of its own until dropped.
struct Node<'scope> {
    stop: &'scope std::sync::atomic::AtomicBool,
}

/// Another connection to the test's schema, for a worker to own.
fn second_source(pg: &Pg) -> anyhow::Result<Arc<dyn LogSource>> {
    let namespace = pg.0.namespace().ok_or_else(|| anyhow::anyhow!("the test source has no schema"))?;
    let schemas = Arc::new(mcp_storage::schema::SchemaFiles::new(std::path::Path::new(mcp_fixtures::BUNDLED_SCHEMAS)));
    Ok(Arc::new(mcp_storage::source::PgLogSource::connect(&database_url(), Some(namespace), schemas)?))
}

/// What a worker in this process runs with: a configuration for the
/// test's schema, a control store of its own, the bundled agents and
/// models, and a connection of its own to the logs.
struct WorkerSetup {
    _dir: tempfile::TempDir,
    config: McpConfig,
    control: ControlStore,
    registry: Arc<Registry>,
    source: Arc<dyn LogSource>,
    models: Arc<ModelManager>,
}

impl WorkerSetup {
    fn new(pg: &Pg) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let namespace = pg.0.namespace().ok_or_else(|| anyhow::anyhow!("the test source has no schema"))?;
        let config = McpConfig {
            data_dir: dir.path().to_path_buf(),
            schema_dir: Some(mcp_fixtures::BUNDLED_SCHEMAS.into()),
            models_dir: Some(mcp_fixtures::BUNDLED_MODELS.into()),
            database_url: Some(database_url()),
            database_schema: Some(namespace.to_string()),
            batch_size: 500,
            replay_ms: 120_000,
            ..McpConfig::default()
        };
        let control = ControlStore::open(&dir.path().join("control.db"))?;
        let models = config.model_manager()?;
        Ok(WorkerSetup {
            _dir: dir,
            config,
            control,
            registry: Arc::new(bundled_registry(sandbox())?),
            source: second_source(pg)?,
            models,
        })
    }

    fn context(&self) -> WorkerContext<'_> {
        WorkerContext {
            config: &self.config,
            registry: self.registry.clone(),
            source: self.source.clone(),
            control: &self.control,
            models: self.models.clone(),
        }
    }
}

/// Waits until `done` holds, failing after a minute with `what`.
fn eventually(what: &str, mut done: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done()? {
        anyhow::ensure!(Instant::now() < deadline, "waited a minute for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn following_units_detect_rows_written_after_the_start_as_a_one_off_run_does() -> anyhow::Result<()> {
    let pg = pg()?;
    let setup = WorkerSetup::new(&pg)?;
    // The Wi-Fi agent learns its access points from the first entries it
    // sees: the following unit finds what a one-off run finds only if it
    // starts from the backfill's final state.
    let rows = generator::to_rows(&generator::generate("wifi", 8, 6_000)?);
    let (before, after) = rows.split_at(2_000);
    pg.0.append("t", "wifi", before)?;
    let planner = node(&pg, "planner", Duration::from_secs(1))?;
    assert_eq!(planner.plan_backfill(&WIFI)?, 1);
    assert!(planner.plan_follow("t", "wifi", "wifi")?);
    assert!(!planner.plan_follow("t", "wifi", "wifi")?, "a second following unit for the same agent");
    assert_eq!(planner.plan_backfill(&WIFI)?, 0, "a range planned after a following unit");

    let context = setup.context();
    let worker_node = node(&pg, "follower", Duration::from_secs(1))?;
    let stop = AtomicBool::new(false);
    let options = WorkerOptions { poll: Duration::from_millis(20), ..WorkerOptions::default() };
    let report = std::thread::scope(|scope| -> anyhow::Result<_> {
        let working = scope.spawn(|| worker::work(&context, &worker_node, &options, &stop));
        let _stop_on_exit = Node { stop: &stop };
        eventually("the history to be followed", || Ok(planner.follow_backlog("t")? == 0))?;
        // Rows written while it follows, in three bursts.
        for part in after.chunks(1_400) {
            pg.0.append("t", "wifi", part)?;
            std::thread::sleep(Duration::from_millis(50));
        }
        eventually("the new rows to be followed", || Ok(planner.follow_backlog("t")? == 0))?;
        stop.store(true, Ordering::Relaxed);
        working.join().map_err(|_| anyhow::anyhow!("the worker panicked"))?.map_err(anyhow::Error::from)
    })?;
    assert_eq!(report.failed.load(Ordering::Relaxed), 0);
    let units = planner.units()?;
    assert_eq!(units.first().map(|u| u.status.as_str()), Some("done"), "{units:?}");
    let unit = units.last().ok_or_else(|| anyhow::anyhow!("no unit"))?;
    assert!(unit.follows() && unit.status != "done", "a following unit ended: {unit:?}");

    let store_dir = tempfile::tempdir()?;
    let mut store = AnomalyStore::open(&store_dir.path().join("anomalies.db"))?;
    let mut whole = pipeline::instance_with_models(
        &setup.registry,
        "wifi",
        "t",
        Default::default(),
        None,
        Some(setup.models.clone()),
    )?;
    let whole_spec = RunSpec {
        tenant: "t",
        agent: "wifi",
        log_source: "postgres",
        batch_size: 500,
        replay_ms: 120_000,
        up_to_id: None,
        follow: None,
    };
    pipeline::run(&setup.registry, &mut whole, &pg.0, &mut store, &whole_spec)?;
    let expected: BTreeSet<_> =
        store.anomalies("t", "wifi")?.into_iter().map(|a| ("wifi".to_string(), a.log_id, a.label)).collect();
    assert!(!expected.is_empty());
    let found: BTreeSet<_> = planner.anomaly_keys("t")?.into_iter().collect();
    let missing: Vec<_> = expected.difference(&found).take(5).collect();
    let extra: Vec<_> = found.difference(&expected).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    Ok(())
}

impl Drop for Node<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn following_units_spread_over_the_nodes_as_they_join() -> anyhow::Result<()> {
    let pg = pg()?;
    let setup = WorkerSetup::new(&pg)?;
    let planner = node(&pg, "planner", Duration::from_millis(600))?;
    for (tenant, seed) in [("t1", 1), ("t2", 2), ("t3", 3)] {
        pg.0.append(tenant, "dns", &generator::to_rows(&generator::generate("dns", seed, 500)?))?;
        assert!(planner.plan_follow(tenant, "dns", "dns")?);
    }
    let context = setup.context();
    let options = WorkerOptions { poll: Duration::from_millis(20), ..WorkerOptions::default() };
    let first = node(&pg, "first", Duration::from_millis(600))?;
    let second = node(&pg, "second", Duration::from_millis(600))?;
    let (stop_first, stop_second) = (AtomicBool::new(false), AtomicBool::new(false));
    let holders = || -> anyhow::Result<Vec<String>> {
        Ok(planner.units()?.into_iter().filter(|u| u.status == "held").filter_map(|u| u.holder).collect())
    };
    let (first_report, second_report) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let _stop_first = Node { stop: &stop_first };
        let _stop_second = Node { stop: &stop_second };
        let first_working = scope.spawn(|| worker::work(&context, &first, &options, &stop_first));
        eventually("the first node to follow all three", || Ok(holders()? == ["first", "first", "first"]))?;
        let second_working = scope.spawn(|| worker::work(&context, &second, &options, &stop_second));
        eventually("the second node to take a share", || {
            let now = holders()?;
            Ok(now.len() == 3 && now.iter().filter(|h| *h == "second").count() == 1)
        })?;
        stop_first.store(true, Ordering::Relaxed);
        let first_report = first_working.join().map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        // The node that stays takes over what the one that left gave back.
        eventually("the second node to follow all three", || Ok(holders()? == ["second", "second", "second"]))?;
        stop_second.store(true, Ordering::Relaxed);
        let second_report = second_working.join().map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        Ok((first_report, second_report))
    })?;
    assert!(first_report.rebalanced.load(Ordering::Relaxed) >= 1, "the first node gave nothing back");
    assert_eq!(first_report.failed.load(Ordering::Relaxed) + second_report.failed.load(Ordering::Relaxed), 0);
    Ok(())
}

#[test]
fn the_api_shows_nodes_and_units_to_the_deployment_admin_only() -> anyhow::Result<()> {
    use crate::api::{DEPLOYMENT, api_configured, problem};
    use axum::http::StatusCode;
    use mcp_storage::control::Role;

    let pg = pg()?;
    pg.0.append("t", "dns", &generator::to_rows(&generator::generate("dns", 9, 500)?))?;
    let namespace = pg.0.namespace().unwrap_or_default().to_string();
    let member = node(&pg, "member", Duration::from_secs(30))?;
    member.join()?;
    member.plan_backfill(&dns_backfill(0))?;
    assert!(member.plan_follow("t", "dns", "dns")?);
    let held = member.claim(UnitKind::Range, &bundled())?.ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;

    let cache = mcp_storage::jobstatus::SharedCache::open(None, "", Default::default())?;
    let api = api_configured(cache, &["alpha"], |config, _| {
        config.database_url = Some(database_url());
        config.database_schema = Some(namespace.clone());
        Ok(())
    })?;
    let shown = api.get("/v1/nodes", api.token(DEPLOYMENT, Role::DeploymentAdmin))?;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let nodes = shown.body["nodes"].as_array().cloned().unwrap_or_default();
    assert!(
        nodes
            .iter()
            .any(|n| n["name"] == "member" && n["alive"] == true && n["leases"] == serde_json::json!([held.unit])),
        "{}",
        shown.body
    );
    let units = shown.body["units"].as_array().cloned().unwrap_or_default();
    assert_eq!(units.len(), 2, "{}", shown.body);
    assert_eq!(units[0]["status"], "held");
    assert!(units[1]["up_to"].is_null(), "a following unit shows an end: {}", shown.body);
    // Nodes and units span every tenant: no tenant's token sees them.
    problem(&api.get("/v1/nodes", api.token("alpha", Role::Admin))?, StatusCode::FORBIDDEN, "forbidden");
    problem(&api.get("/v1/nodes", api.token(DEPLOYMENT, Role::ReadOnly))?, StatusCode::FORBIDDEN, "forbidden");
    // A unit that failed its last try shows in /metrics, for an operator's alert.
    member.give_up(&held, "the agent trapped", 1)?;
    let metrics = api.get("/metrics", api.token(DEPLOYMENT, Role::ReadOnly))?;
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(text.contains("mcp_work_units{tenant=\"t\",agent=\"dns\",status=\"failed\"} 1"), "{text}");
    assert!(text.contains("mcp_work_units{tenant=\"t\",agent=\"dns\",status=\"open\"} 1"), "{text}");
    let (_, open) = api.metrics_address("/metrics")?;
    assert!(open.contains("status=\"failed\"} 1"), "the metrics address says it too: {open}");

    let single = api_configured(
        mcp_storage::jobstatus::SharedCache::open(None, "", Default::default())?,
        &["alpha"],
        |_, _| Ok(()),
    )?;
    problem(
        &single.get("/v1/nodes", single.token(DEPLOYMENT, Role::DeploymentAdmin))?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, alone) = single.metrics_address("/metrics")?;
    assert!(!alone.contains("mcp_work_units"), "one node has no shared work: {alone}");
    Ok(())
}

/// Runs `sql` in the test's schema, as another process would change it.
pub(crate) fn execute(pg: &Pg, sql: &str) -> anyhow::Result<()> {
    let namespace = pg.0.namespace().ok_or_else(|| anyhow::anyhow!("the test source has no schema"))?;
    let sql = sql.replace("{schema}", &format!("\"{namespace}\""));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&database_url()).await?;
        sqlx::query(&sql).execute(&pool).await?;
        pool.close().await;
        Ok::<_, sqlx::Error>(())
    })?;
    Ok(())
}

#[test]
fn a_live_nodes_name_is_not_taken_twice() -> anyhow::Result<()> {
    let pg = pg()?;
    let first = node(&pg, "same", Duration::from_secs(30))?;
    first.join()?;
    first.join()?; // the same process again
    // Another process of that name, alive: refused.
    execute(&pg, "UPDATE {schema}.nodes SET pid = pid + 1 WHERE name = 'same'")?;
    let second = node(&pg, "same", Duration::from_secs(30))?;
    let refused = second.join();
    assert!(matches!(refused, Err(ClusterError::NodeNameTaken { .. })), "{refused:?}");
    // Once it stopped beating for longer than its lease, the name is free.
    execute(&pg, "UPDATE {schema}.nodes SET heartbeat_at = heartbeat_at - INTERVAL '1 minute' WHERE name = 'same'")?;
    second.join()?;
    Ok(())
}

#[test]
fn planners_at_once_lay_no_overlapping_units() -> anyhow::Result<()> {
    let pg = pg()?;
    pg.0.append("t", "dns", &generator::to_rows(&generator::generate("dns", 10, 5_000)?))?;
    let planned = std::thread::scope(|scope| -> anyhow::Result<usize> {
        let planners: Vec<_> = [0, 1_000, 1_500]
            .into_iter()
            .enumerate()
            .map(|(i, rows_per_unit)| {
                let pg = &pg;
                scope.spawn(move || -> anyhow::Result<usize> {
                    let planner = node(pg, &format!("planner{i}"), Duration::from_secs(30))?;
                    let added = planner.plan_backfill(&dns_backfill(rows_per_unit))?;
                    planner.plan_follow("t", "dns", "dns")?;
                    Ok(added)
                })
            })
            .collect();
        planners.into_iter().map(|p| p.join().map_err(|_| anyhow::anyhow!("a planner panicked"))?).sum()
    })?;
    let units = node(&pg, "reader", Duration::from_secs(30))?.units()?;
    assert_eq!(units.len(), planned + 1, "one following unit and the ranges: {units:?}");
    for pair in units.windows(2) {
        assert_eq!(pair[0].up_to, pair[1].start_after, "units overlap or leave a gap: {pair:?}");
    }
    assert!(units.last().is_some_and(UnitView::follows));
    Ok(())
}

#[test]
fn a_dead_node_is_forgotten_and_its_units_are_free_at_once() -> anyhow::Result<()> {
    let pg = pg()?;
    pg.0.append("t", "dns", &generator::to_rows(&generator::generate("dns", 11, 500)?))?;
    let dead = node(&pg, "dead", Duration::from_secs(1))?;
    dead.join()?;
    dead.plan_backfill(&dns_backfill(0))?;
    let held = dead.claim(UnitKind::Range, &bundled())?.ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;
    let operator = node(&pg, "operator", Duration::from_secs(30))?;
    assert_eq!(operator.forget_node("dead", false)?, None, "a node that beats just now was forgotten");
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(operator.forget_node("dead", false)?, Some(1));
    assert!(operator.nodes()?.iter().all(|n| n.name != "dead"));
    let taken =
        operator.claim(UnitKind::Range, &bundled())?.ok_or_else(|| anyhow::anyhow!("the unit was not freed"))?;
    assert_eq!((taken.unit, taken.token), (held.unit, held.token + 1));
    // The forgotten node hears it at its next beat, and cannot commit.
    let beat = dead.beat(std::slice::from_ref(&held))?;
    assert!(!beat.registered && beat.lost == vec![held.unit], "{beat:?}");
    assert!(matches!(dead.finish(&held), Err(ClusterError::Fenced { .. })));
    assert_eq!(operator.forget_node("nobody", true)?, None);
    Ok(())
}

#[test]
fn a_worker_until_done_leaves_following_units_to_others() -> anyhow::Result<()> {
    let pg = pg()?;
    let setup = WorkerSetup::new(&pg)?;
    pg.0.append("t", "dns", &generator::to_rows(&generator::generate("dns", 12, 1_000)?))?;
    let planner = node(&pg, "planner", Duration::from_secs(30))?;
    planner.plan_backfill(&dns_backfill(0))?;
    assert!(planner.plan_follow("t", "dns", "dns")?);
    let context = setup.context();
    let options = WorkerOptions { poll: Duration::from_millis(20), until_done: true, ..WorkerOptions::default() };
    let stop = AtomicBool::new(false);
    let member = node(&pg, "w", Duration::from_secs(2))?;
    let finished = std::thread::scope(|scope| -> anyhow::Result<bool> {
        let _stop_on_exit = Node { stop: &stop };
        let working = scope.spawn(|| worker::work(&context, &member, &options, &stop));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !working.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let finished = working.is_finished();
        stop.store(true, Ordering::Relaxed);
        let report = working.join().map_err(|_| anyhow::anyhow!("the worker panicked"))??;
        assert_eq!(report.finished.load(Ordering::Relaxed), 1);
        Ok(finished)
    })?;
    assert!(finished, "the worker did not exit with only a following unit left");
    let units = planner.units()?;
    assert!(units[0].status == "done" && units[1].status == "open", "{units:?}");
    Ok(())
}

#[test]
fn a_unit_that_failed_is_left_until_it_is_retried() -> anyhow::Result<()> {
    let pg = pg()?;
    pg.0.append("t", "dns", &generator::to_rows(&generator::generate("dns", 13, 500)?))?;
    let member = node(&pg, "member", Duration::from_secs(30))?;
    member.plan_backfill(&dns_backfill(0))?;
    for attempt in 1..=3 {
        let lease =
            member.claim(UnitKind::Range, &bundled())?.ok_or_else(|| anyhow::anyhow!("attempt {attempt}: nothing"))?;
        member.give_up(&lease, &format!("failure {attempt}"), 3)?;
    }
    assert_eq!(member.claim(UnitKind::Range, &bundled())?, None, "a unit that failed 3 times was handed out");
    let unit = member.units()?.remove(0);
    assert_eq!((unit.status.as_str(), unit.failures, unit.last_error.as_deref()), ("failed", 3, Some("failure 3")));
    assert!(!member.retry_unit(unit.id + 1)?, "a unit that had not failed was reopened");
    assert!(member.retry_unit(unit.id)?);
    let again =
        member.claim(UnitKind::Range, &bundled())?.ok_or_else(|| anyhow::anyhow!("the retried unit was not open"))?;
    assert_eq!((again.unit, again.claims), (unit.id, 4));
    Ok(())
}

#[test]
fn a_follower_does_not_pass_a_row_still_being_written_with_a_lower_id() -> anyhow::Result<()> {
    let pg = pg()?;
    let setup = WorkerSetup::new(&pg)?;
    let namespace = pg.0.namespace().unwrap_or_default().to_string();
    pg.0.append("t", "dns", &generator::to_rows(&generator::generate("dns", 14, 300)?))?;
    let planner = node(&pg, "planner", Duration::from_secs(30))?;
    assert!(planner.plan_follow("t", "dns", "dns")?);
    let context = setup.context();
    let options = WorkerOptions { poll: Duration::from_millis(20), ..WorkerOptions::default() };
    let (stop, member) = (AtomicBool::new(false), node(&pg, "follower", Duration::from_secs(30))?);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let pool = runtime.block_on(sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&database_url()))?;
    // A row that fails its schema is quarantined with its id when read: the
    // quarantine shows which rows the follower read.
    let insert = format!(
        "INSERT INTO \"{namespace}\".logs (tenant, log_type, ts_ms, source, fields) VALUES ('t', 'dns', 0, 'probe', '{{') RETURNING id"
    );
    let checkpoint = || -> anyhow::Result<i64> { Ok(planner.units()?.first().map_or(0, |u| u.checkpoint)) };
    let (slow, fast) = std::thread::scope(|scope| -> anyhow::Result<(i64, i64)> {
        let _stop_on_exit = Node { stop: &stop };
        let working = scope.spawn(|| worker::work(&context, &member, &options, &stop));
        eventually("the history to be followed", || Ok(planner.follow_backlog("t")? == 0))?;
        // A writer takes an id and holds its transaction open while another
        // commits a higher id.
        let mut open = runtime.block_on(pool.begin())?;
        let (slow,): (i64,) = runtime.block_on(sqlx::query_as(&insert).fetch_one(&mut *open))?;
        let (fast,): (i64,) = runtime.block_on(sqlx::query_as(&insert).fetch_one(&pool))?;
        assert!(fast > slow);
        std::thread::sleep(Duration::from_millis(400));
        assert!(checkpoint()? < slow, "the follower passed id {slow} while it was being written");
        runtime.block_on(open.commit())?;
        eventually("both rows to be read", || Ok(checkpoint()? >= fast))?;
        stop.store(true, Ordering::Relaxed);
        working.join().map_err(|_| anyhow::anyhow!("the worker panicked"))??;
        Ok((slow, fast))
    })?;
    runtime.block_on(pool.close());
    let quarantined: Vec<u64> = pg.0.quarantined("t")?.into_iter().map(|q| q.log_id).collect();
    for id in [slow, fast] {
        assert!(quarantined.contains(&id.unsigned_abs()), "row {id} was never read: {quarantined:?}");
    }
    Ok(())
}

#[test]
fn a_node_claims_only_units_of_agents_it_has() -> anyhow::Result<()> {
    let pg = pg()?;
    pg.0.append("t", "wifi", &generator::to_rows(&generator::generate("wifi", 15, 500)?))?;
    let member = node(&pg, "dns-only", Duration::from_secs(30))?;
    assert_eq!(member.plan_backfill(&WIFI)?, 1);
    assert!(member.plan_follow("t", "wifi", "wifi")?);
    let dns_only = ["dns".to_string()];
    assert_eq!(member.claim(UnitKind::Range, &dns_only)?, None, "a node without the Wi-Fi agent took its range");
    assert_eq!(member.claim(UnitKind::Follow, &dns_only)?, None);
    assert!(member.claim(UnitKind::Range, &bundled())?.is_some());
    Ok(())
}
