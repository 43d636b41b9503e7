//! A node's worker (`mcp worker`): claims units of work from the shared
//! table, runs each through the one run service with the unit's leased
//! store, beats while it runs, and gives back what fails. A unit it lost
//! (another node took it over while this one was silent) stops at its next
//! batch, and its commits are refused in any case.
//!
//! Ranges (backfills) are run by `concurrency` threads, one unit at a time
//! each. Following units (continuous detection) never end, so each gets a
//! thread of its own while held; a node takes at most its fair share of
//! them (all following units over the nodes alive, rounded up) and gives
//! one back when nodes joined and it holds more, so following spreads
//! over the nodes as they come and go.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mcp_sandbox::registry::Registry;
use mcp_storage::cluster::{Cluster, ClusterError, Lease, UnitKind, UnitView};
use mcp_storage::control::ControlStore;
use mcp_storage::source::LogSource;

use crate::config::McpConfig;
use crate::models::ModelManager;
use crate::pipeline::RunError;
use crate::runs::RunBuilder;

/// How a worker goes about its work.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Units run at once, each on its own thread.
    pub concurrency: usize,
    /// Stop once every range is done or failed, instead of waiting for more
    /// (following units never end: they are left to other nodes).
    pub until_done: bool,
    /// The wait between two looks for work when none is open.
    pub poll: Duration,
    /// Failed runs of a unit before it is marked failed and left alone.
    pub max_failures: i32,
    /// Take following units (continuous detection); off with `until_done`.
    pub follow: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 1,
            until_done: false,
            poll: Duration::from_millis(500),
            max_failures: 3,
            follow: true,
        }
    }
}

/// What a worker did.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Units it finished.
    pub finished: AtomicU64,
    pub entries: AtomicU64,
    pub anomalies: AtomicU64,
    /// Units it lost to another node (its lease expired while it was
    /// silent); their later commits were refused.
    pub lost: AtomicU64,
    /// Runs that failed; their units were given back.
    pub failed: AtomicU64,
    /// Following units given back to even out the nodes' shares.
    pub rebalanced: AtomicU64,
    /// Units left at their checkpoint when the node stopped.
    pub left: AtomicU64,
}

/// What a worker's runs are made of.
#[derive(Clone)]
pub struct WorkerContext<'a> {
    pub config: &'a McpConfig,
    pub registry: Arc<Registry>,
    pub source: Arc<dyn LogSource>,
    pub control: &'a ControlStore,
    pub models: Arc<ModelManager>,
}

/// The leases a node holds now, which its beats keep alive, and those it
/// lost, which its runs stop on.
#[derive(Debug, Default)]
struct Held {
    leases: Mutex<Vec<Lease>>,
    lost: Mutex<HashSet<i64>>,
    /// Taken while a following unit is judged and given back, so that the
    /// node's followers give back one at a time, each counting the last.
    giving_way: Mutex<()>,
    /// Set when another live process took this node's name: this one
    /// stops, and leaves that one's units alone.
    evicted: AtomicBool,
}

impl Held {
    fn hold(&self, lease: &Lease) {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner).push(lease.clone());
    }

    fn release(&self, lease: &Lease) {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner).retain(|held| held.unit != lease.unit);
        self.lost.lock().unwrap_or_else(PoisonError::into_inner).remove(&lease.unit);
    }

    fn current(&self) -> Vec<Lease> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn mark_lost(&self, units: &[i64]) {
        self.lost.lock().unwrap_or_else(PoisonError::into_inner).extend(units);
    }

    fn is_lost(&self, unit: i64) -> bool {
        self.lost.lock().unwrap_or_else(PoisonError::into_inner).contains(&unit)
    }

    fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// What a node's threads share.
struct NodeWork<'a> {
    context: &'a WorkerContext<'a>,
    /// The agents this node can run: it claims no unit of another, which a
    /// node that has it may run.
    agents: Vec<String>,
    cluster: &'a Cluster,
    options: &'a WorkerOptions,
    stop: &'a AtomicBool,
    held: Held,
    report: WorkerReport,
}

/// Works until `stop` is set (or, with `until_done`, until no unit is left),
/// with `options.concurrency` units at once.
pub fn work(
    context: &WorkerContext<'_>,
    cluster: &Cluster,
    options: &WorkerOptions,
    stop: &AtomicBool,
) -> Result<WorkerReport, ClusterError> {
    cluster.join()?;
    let agents = context.registry.list().map(|agent| agent.info.name.clone()).collect();
    let node =
        NodeWork { context, agents, cluster, options, stop, held: Held::default(), report: WorkerReport::default() };
    let workers_done = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| beat_until(cluster, &node.held, &workers_done));
        let mut runners: Vec<_> =
            (0..options.concurrency.max(1)).map(|_| scope.spawn(|| node.claim_and_run())).collect();
        if options.follow && !options.until_done {
            runners.push(scope.spawn(|| node.follow_share(scope)));
        }
        let mut result = Ok(());
        for runner in runners {
            match runner.join() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => result = Err(error),
                Err(_) => tracing::error!("a worker thread panicked"),
            }
        }
        workers_done.store(true, Ordering::Relaxed);
        result
    });
    if node.held.evicted() {
        return Err(ClusterError::NodeNameTaken { node: cluster.node().to_string() });
    }
    // Leaving gives back whatever is still held, so others need not wait
    // for the leases to expire.
    cluster.leave()?;
    outcome.map(|()| node.report)
}

/// Beats every third of the lease time until the runners are done.
fn beat_until(cluster: &Cluster, held: &Held, done: &AtomicBool) {
    let every = cluster.lease_ttl() / 3;
    let step = Duration::from_millis(50).min(every);
    let mut since = Duration::ZERO;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        since += step;
        if since < every {
            continue;
        }
        since = Duration::ZERO;
        match cluster.beat(&held.current()) {
            Ok(beat) => {
                if !beat.lost.is_empty() {
                    tracing::warn!(node = cluster.node(), lost = ?beat.lost, "leases lost: another node holds them now");
                    held.mark_lost(&beat.lost);
                }
                if !beat.registered {
                    rejoin(cluster, held);
                }
            }
            // A missed beat is what leases are for: if PostgreSQL stays
            // away past the lease time, others take the units over and this
            // node's commits are refused.
            Err(error) => tracing::warn!(node = cluster.node(), "heartbeat failed: {error}"),
        }
    }
}

/// The node's row is gone (forgotten by an operator, or another process
/// took the name while this one was silent): joins again if the name is
/// free, and stops if another live process has it.
fn rejoin(cluster: &Cluster, held: &Held) {
    match cluster.join() {
        Ok(()) => tracing::warn!(node = cluster.node(), "this node's row was gone; joined again"),
        Err(error @ ClusterError::NodeNameTaken { .. }) => {
            tracing::error!(node = cluster.node(), "stopping: {error}");
            held.evicted.store(true, Ordering::Relaxed);
        }
        Err(error) => tracing::warn!(node = cluster.node(), "joining again failed: {error}"),
    }
}

impl NodeWork<'_> {
    /// Whether the node's runners should stop: it was told to, or another
    /// process took its name.
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.held.evicted()
    }

    /// Claims ranges and runs them, one at a time, until stopped (or, with
    /// `until_done`, until every range is settled).
    fn claim_and_run(&self) -> Result<(), ClusterError> {
        let cluster = self.cluster;
        while !self.stopping() {
            let lease = match cluster.claim(UnitKind::Range, &self.agents) {
                Ok(lease) => lease,
                // PostgreSQL away: try again after the poll, as when idle.
                Err(error) => {
                    tracing::warn!(node = cluster.node(), "claiming work failed: {error}");
                    None
                }
            };
            let Some(lease) = lease else {
                if self.options.until_done && cluster.units()?.iter().all(UnitView::settled) {
                    return Ok(());
                }
                std::thread::sleep(self.options.poll);
                continue;
            };
            self.held.hold(&lease);
            self.run_unit(&lease);
            self.held.release(&lease);
        }
        Ok(())
    }

    /// Claims following units up to this node's share, each followed on a
    /// thread of its own, until stopped.
    fn follow_share<'scope>(&'scope self, scope: &'scope std::thread::Scope<'scope, '_>) -> Result<(), ClusterError> {
        let cluster = self.cluster;
        while !self.stopping() {
            let claimed = match cluster.follow_share() {
                Ok((mine, share)) if mine < share => cluster.claim(UnitKind::Follow, &self.agents),
                Ok(_) => Ok(None),
                Err(error) => Err(error),
            };
            match claimed {
                Ok(Some(lease)) => {
                    self.held.hold(&lease);
                    scope.spawn(move || {
                        self.run_unit(&lease);
                        self.held.release(&lease);
                    });
                    // The next claim waits for this one's beat to count.
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(node = cluster.node(), "claiming a following unit failed: {error}"),
            }
            std::thread::sleep(self.options.poll);
        }
        Ok(())
    }

    fn run_unit(&self, lease: &Lease) {
        let (context, cluster, options, held, report) =
            (self.context, self.cluster, self.options, &self.held, &self.report);
        let span = tracing::info_span!("unit", unit = lease.unit, tenant = %lease.tenant, agent = %lease.agent);
        let _entered = span.enter();
        let built = RunBuilder::new(
            context.config,
            context.registry.clone(),
            context.source.clone(),
            &lease.tenant,
            &lease.agent,
        )
        .tenant_control(context.control)
        .and_then(|run| run.models(context.models.clone()).build());
        let run = match built {
            Ok(run) if lease.follows() => run.follow(options.poll),
            Ok(run) => run.up_to(lease.up_to),
            // The tenant's choice, not a fault: the unit waits, uncounted,
            // until the agent may run again.
            Err(error @ (RunError::Disabled { .. } | RunError::Quarantined { .. })) => {
                tracing::info!("unit given back: {error}");
                if let Err(back) = cluster.release(lease) {
                    tracing::warn!("giving the unit back failed (its lease expires instead): {back}");
                }
                std::thread::sleep(options.poll);
                return;
            }
            Err(error) => return give_back(cluster, options, report, lease, &error),
        };
        let mut store = cluster.store(lease);
        let mut rebalance = Rebalance::new(cluster, held, lease);
        // What the run committed, whatever ends it.
        let mut committed = (0, 0);
        let outcome = run.execute(&mut store, &mut |progress| {
            committed = (progress.entries, progress.anomalies);
            if held.is_lost(lease.unit) || self.stopping() || rebalance.over_share() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Ok(ran) = &outcome.result {
            committed = (ran.entries, ran.anomalies);
        }
        report.entries.fetch_add(committed.0, Ordering::Relaxed);
        report.anomalies.fetch_add(committed.1, Ordering::Relaxed);
        match outcome.result {
            Ok(ran) => match cluster.finish(lease) {
                Ok(()) => {
                    report.finished.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(entries = ran.entries, anomalies = ran.anomalies, "unit finished");
                }
                Err(error) => lost(report, &error),
            },
            Err(RunError::RunStore(error)) if error.is_fenced() => lost(report, &error),
            Err(RunError::Cancelled { after_id, .. }) if held.is_lost(lease.unit) => {
                report.lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(after_id, "unit lost to another node; stopped");
            }
            Err(RunError::Cancelled { after_id, .. }) if rebalance.gave_way => {
                report.rebalanced.fetch_add(1, Ordering::Relaxed);
                tracing::info!(after_id, "following unit given back: this node held more than its share");
            }
            // Stopping: the unit goes back as it stands, not as a failure.
            Err(RunError::Cancelled { after_id, .. }) => {
                report.left.fetch_add(1, Ordering::Relaxed);
                tracing::info!(after_id, "unit left at its checkpoint on stop");
            }
            Err(error) => give_back(cluster, options, report, lease, &error),
        }
    }
}

fn lost(report: &WorkerReport, error: &dyn std::fmt::Display) {
    report.lost.fetch_add(1, Ordering::Relaxed);
    tracing::warn!("{error}");
}

fn give_back(cluster: &Cluster, options: &WorkerOptions, report: &WorkerReport, lease: &Lease, error: &RunError) {
    report.failed.fetch_add(1, Ordering::Relaxed);
    tracing::warn!("unit failed and is given back: {error}");
    if let Err(back) = cluster.give_up(lease, &error.to_string(), options.max_failures) {
        // It expires instead.
        tracing::warn!("giving the unit back failed: {back}");
    }
}

/// Whether a following unit should go to another node: looked at once a
/// lease time, and given back at once when this node holds more than its
/// share.
struct Rebalance<'a> {
    cluster: &'a Cluster,
    held: &'a Held,
    lease: &'a Lease,
    last_look: std::time::Instant,
    gave_way: bool,
}

impl<'a> Rebalance<'a> {
    fn new(cluster: &'a Cluster, held: &'a Held, lease: &'a Lease) -> Self {
        Rebalance { cluster, held, lease, last_look: std::time::Instant::now(), gave_way: false }
    }

    fn over_share(&mut self) -> bool {
        if !self.lease.follows() || self.last_look.elapsed() < self.cluster.lease_ttl() {
            return false;
        }
        self.last_look = std::time::Instant::now();
        let _one_at_a_time = self.held.giving_way.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(self.cluster.follow_share(), Ok((mine, share)) if mine > share) {
            return false;
        }
        match self.cluster.release(self.lease) {
            Ok(()) => self.gave_way = true,
            Err(error) => tracing::warn!("giving a following unit back failed: {error}"),
        }
        self.gave_way
    }
}
