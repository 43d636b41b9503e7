//! The shared work table on the machine's PostgreSQL, node by node in one
//! process: claims hand each unit to one node, a lease that lapsed is taken
//! over with the unit's checkpoint and agent state, and the superseded
//! holder's commits are refused by the fencing token. The multi-process
//! test (kills, pauses, joins) is runtime/cli/tests/cluster.rs.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::time::Duration;

use mcp_engine::pipeline::{self, RunError, RunSpec};
use mcp_storage::cluster::{Backfill, Cluster, ClusterError, Lease, UnitKind};
use mcp_storage::source::{LogSource, RetryPolicy};
use mcp_storage::store::AnomalyStore;
use mcp_synth as generator;

use crate::common::{bundled_registry, sandbox};
use crate::postgres::{Pg, database_url, pg};

fn node(pg: &Pg, name: &str, lease: Duration) -> anyhow::Result<Cluster> {
    let namespace = pg.0.namespace().ok_or_else(|| anyhow::anyhow!("the test source has no schema"))?;
    Ok(Cluster::connect(&database_url(), Some(namespace), name, lease, RetryPolicy::default())?)
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
    let held = first.claim(UnitKind::Range)?.ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;
    assert_eq!(second.claim(UnitKind::Range)?, None, "a held unit was handed out twice");
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

    let taken = second.claim(UnitKind::Range)?.ok_or_else(|| anyhow::anyhow!("the lapsed lease was not taken over"))?;
    assert_eq!((taken.unit, taken.token, taken.checkpoint, taken.claims), (held.unit, held.token + 1, after_id, 2));
    assert_eq!(first.beat(std::slice::from_ref(&held))?, vec![held.unit], "the old holder's beat kept a lost lease");

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
                    while let Some(lease) = me.claim(UnitKind::Range)? {
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
