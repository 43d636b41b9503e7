//! Runs as a bounded queue: how many run at once (in all and per tenant),
//! how many may wait, one run per (tenant, agent) at a time, and which
//! waiting run goes next — tenants take turns, so one that floods the queue
//! delays only its own runs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde::Deserialize;

/// The limits, from `[runs]` in config/mcp.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunLimits {
    /// Runs going at once, all tenants together: one worker thread each.
    pub running: usize,
    /// Runs waiting, all tenants together.
    pub queued: usize,
    /// Runs of one tenant going at once.
    pub running_per_tenant: usize,
    /// Runs of one tenant waiting.
    pub queued_per_tenant: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits { running: 4, queued: 256, running_per_tenant: 2, queued_per_tenant: 16 }
    }
}

/// Why a run was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("agent '{agent}' already has run {id} queued or going; one run per agent at a time")]
    AgentBusy { agent: String, id: String },
    #[error("this tenant has {limit} runs waiting, its limit; wait for one to start")]
    TenantFull { limit: usize },
    #[error("the server has {limit} runs waiting, its limit; try again later")]
    Full { limit: usize },
    #[error("the run queue is shutting down")]
    Closed,
}

/// The work a queued run does when its turn comes.
pub type RunWork = Box<dyn FnOnce() + Send + 'static>;

struct Waiting {
    id: String,
    agent: String,
    work: RunWork,
}

#[derive(Default)]
struct State {
    /// Waiting runs per tenant, oldest first.
    waiting: BTreeMap<String, VecDeque<Waiting>>,
    waiting_total: usize,
    /// Runs going per tenant.
    running: HashMap<String, usize>,
    /// The run id of each (tenant, agent) waiting or going.
    busy: HashMap<(String, String), String>,
    /// The tenant that started a run last: the next turn goes to the one after it.
    last_served: Option<String>,
    closed: bool,
}

impl State {
    /// The next run to start: tenants in name order from the one after the
    /// last served, the first with a waiting run and room under its limit.
    fn next(&mut self, per_tenant: usize) -> Option<(String, Waiting)> {
        let after = self.last_served.clone();
        let tenants: Vec<&String> = self.waiting.keys().collect();
        let start = after.as_ref().map_or(0, |last| tenants.partition_point(|t| *t <= last));
        let order = tenants[start..].iter().chain(&tenants[..start]);
        let chosen = order
            .filter(|tenant| self.running.get(**tenant).copied().unwrap_or(0) < per_tenant)
            .map(|tenant| (*tenant).clone())
            .next()?;
        let queue = self.waiting.get_mut(&chosen)?;
        let run = queue.pop_front()?;
        if queue.is_empty() {
            self.waiting.remove(&chosen);
        }
        self.waiting_total -= 1;
        *self.running.entry(chosen.clone()).or_default() += 1;
        self.last_served = Some(chosen.clone());
        Some((chosen, run))
    }

    fn finished(&mut self, tenant: &str, agent: &str, id: &str) {
        if let Some(count) = self.running.get_mut(tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.running.remove(tenant);
            }
        }
        self.release(tenant, agent, id);
    }

    fn release(&mut self, tenant: &str, agent: &str, id: &str) {
        let key = (tenant.to_string(), agent.to_string());
        if self.busy.get(&key).is_some_and(|busy| busy == id) {
            self.busy.remove(&key);
        }
    }
}

/// What the queue holds now, for `/metrics` and the run views.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueLoad {
    pub running: usize,
    pub waiting: usize,
}

/// The queue and its workers.
pub struct RunQueue {
    limits: RunLimits,
    state: Mutex<State>,
    changed: Condvar,
}

impl std::fmt::Debug for RunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunQueue").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl RunQueue {
    /// A queue with `limits` and its worker threads, started now.
    pub fn start(limits: RunLimits) -> std::io::Result<Arc<Self>> {
        let limits = RunLimits {
            running: limits.running.max(1),
            running_per_tenant: limits.running_per_tenant.max(1),
            ..limits
        };
        let queue = Arc::new(RunQueue { limits, state: Mutex::default(), changed: Condvar::new() });
        for worker in 0..limits.running {
            let queue = queue.clone();
            std::thread::Builder::new().name(format!("mcp-run-{worker}")).spawn(move || queue.work())?;
        }
        Ok(queue)
    }

    pub fn limits(&self) -> RunLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside a run is caught before it reaches the lock, so a
        // poisoned lock holds consistent counts: keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues run `id` of `agent` for `tenant`; `work` runs on a worker
    /// when the run's turn comes.
    pub fn submit(&self, tenant: &str, agent: &str, id: &str, work: RunWork) -> Result<(), QueueError> {
        let mut state = self.lock();
        if state.closed {
            return Err(QueueError::Closed);
        }
        let key = (tenant.to_string(), agent.to_string());
        if let Some(busy) = state.busy.get(&key) {
            return Err(QueueError::AgentBusy { agent: agent.to_string(), id: busy.clone() });
        }
        let tenant_waiting = state.waiting.get(tenant).map_or(0, VecDeque::len);
        if tenant_waiting >= self.limits.queued_per_tenant {
            return Err(QueueError::TenantFull { limit: self.limits.queued_per_tenant });
        }
        if state.waiting_total >= self.limits.queued {
            return Err(QueueError::Full { limit: self.limits.queued });
        }
        state.busy.insert(key, id.to_string());
        state.waiting.entry(tenant.to_string()).or_default().push_back(Waiting {
            id: id.to_string(),
            agent: agent.to_string(),
            work,
        });
        state.waiting_total += 1;
        drop(state);
        self.changed.notify_all();
        Ok(())
    }

    /// Takes run `id` of `tenant` out of the queue if it has not started;
    /// whether it was waiting.
    pub fn withdraw(&self, tenant: &str, id: &str) -> bool {
        let mut state = self.lock();
        let Some(queue) = state.waiting.get_mut(tenant) else { return false };
        let Some(at) = queue.iter().position(|run| run.id == id) else { return false };
        let removed = queue.remove(at);
        if queue.is_empty() {
            state.waiting.remove(tenant);
        }
        match removed {
            Some(run) => {
                state.waiting_total -= 1;
                state.busy.remove(&(tenant.to_string(), run.agent));
                true
            }
            None => false,
        }
    }

    /// Lets `agent` of `tenant` run again before run `id` has quite ended:
    /// a run calls it once its outcome is recorded, so that whoever sees
    /// the run ended can start the next at once.
    pub fn release_agent(&self, tenant: &str, agent: &str, id: &str) {
        self.lock().release(tenant, agent, id);
    }

    /// The run of `agent` of `tenant` waiting or going, if there is one.
    pub fn busy_run(&self, tenant: &str, agent: &str) -> Option<String> {
        self.lock().busy.get(&(tenant.to_string(), agent.to_string())).cloned()
    }

    /// Runs waiting and going, all tenants together.
    pub fn load(&self) -> QueueLoad {
        let state = self.lock();
        QueueLoad { running: state.running.values().sum(), waiting: state.waiting_total }
    }

    /// Runs waiting and going of one tenant.
    pub fn load_of(&self, tenant: &str) -> QueueLoad {
        let state = self.lock();
        QueueLoad {
            running: state.running.get(tenant).copied().unwrap_or(0),
            waiting: state.waiting.get(tenant).map_or(0, VecDeque::len),
        }
    }

    /// Stops taking runs; workers finish the run they have and end.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Stops taking runs and takes every waiting one out of the queue,
    /// for a server that shuts down: (tenant, id) of each, never started.
    pub fn close_and_drain(&self) -> Vec<(String, String)> {
        let mut state = self.lock();
        state.closed = true;
        let waiting = std::mem::take(&mut state.waiting);
        state.waiting_total = 0;
        let mut drained = Vec::new();
        for (tenant, runs) in waiting {
            for run in runs {
                state.busy.remove(&(tenant.clone(), run.agent));
                drained.push((tenant.clone(), run.id));
            }
        }
        drop(state);
        self.changed.notify_all();
        drained
    }

    /// Waits until no run is going, at most `timeout`; whether none is.
    pub fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.lock();
        while !state.running.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            state = match self.changed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    fn work(&self) {
        loop {
            let (tenant, run) = {
                let mut state = self.lock();
                loop {
                    if state.closed {
                        return;
                    }
                    if let Some(next) = state.next(self.limits.running_per_tenant) {
                        break next;
                    }
                    state = self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            };
            let Waiting { id, agent, work } = run;
            // A panic in one run must not take the worker (and its share of
            // the server's runs) with it.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_err() {
                tracing::error!(tenant, agent, run = id, "a run panicked; its worker goes on");
            }
            self.lock().finished(&tenant, &agent, &id);
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn limits(running: usize, per_tenant: usize) -> RunLimits {
        RunLimits { running, queued: 8, running_per_tenant: per_tenant, queued_per_tenant: 4 }
    }

    /// A run that reports its start on `started` and waits for `release`.
    fn held(name: &str, started: &mpsc::Sender<String>, release: &Arc<(Mutex<bool>, Condvar)>) -> RunWork {
        let (name, started, release) = (name.to_string(), started.clone(), release.clone());
        Box::new(move || {
            let _ = started.send(name);
            let (open, cv) = &*release;
            let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
            while !*open {
                open = cv.wait(open).unwrap_or_else(|p| p.into_inner());
            }
        })
    }

    fn open(release: &Arc<(Mutex<bool>, Condvar)>) {
        *release.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        release.1.notify_all();
    }

    #[test]
    fn tenants_take_turns_whoever_queued_first() -> Result<(), Box<dyn std::error::Error>> {
        let queue = RunQueue::start(limits(1, 1))?;
        let (started, starts) = mpsc::channel();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        queue.submit("acme", "a1", "r1", held("acme-1", &started, &gate))?;
        assert_eq!(starts.recv_timeout(Duration::from_secs(5))?, "acme-1");
        for n in 2..=4 {
            queue.submit("acme", &format!("a{n}"), &format!("r{n}"), held(&format!("acme-{n}"), &started, &gate))?;
        }
        queue.submit("globex", "g1", "g1", held("globex-1", &started, &gate))?;
        open(&gate);
        let order = (0..4).map(|_| starts.recv_timeout(Duration::from_secs(5))).collect::<Result<Vec<_>, _>>()?;
        assert_eq!(order, ["globex-1", "acme-2", "acme-3", "acme-4"]);
        Ok(())
    }

    #[test]
    fn one_run_per_agent_and_bounded_waiting() -> Result<(), Box<dyn std::error::Error>> {
        let queue = RunQueue::start(limits(1, 1))?;
        let (started, starts) = mpsc::channel();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        queue.submit("acme", "dns", "r1", held("r1", &started, &gate))?;
        starts.recv_timeout(Duration::from_secs(5))?;
        let again = queue.submit("acme", "dns", "r2", held("r2", &started, &gate));
        assert_eq!(again, Err(QueueError::AgentBusy { agent: "dns".into(), id: "r1".into() }));
        for n in 0..4 {
            queue.submit("acme", &format!("x{n}"), &format!("x{n}"), held("x", &started, &gate))?;
        }
        assert_eq!(
            queue.submit("acme", "y", "y", held("y", &started, &gate)),
            Err(QueueError::TenantFull { limit: 4 })
        );
        assert_eq!(queue.load_of("acme"), QueueLoad { running: 1, waiting: 4 });
        assert!(queue.withdraw("acme", "x0"));
        assert!(!queue.withdraw("acme", "x0"), "a run leaves the queue once");
        assert!(!queue.withdraw("globex", "x1"), "another tenant's run is not found");
        queue.submit("acme", "x0", "x0-again", held("x", &started, &gate))?;
        open(&gate);
        for _ in 0..4 {
            starts.recv_timeout(Duration::from_secs(5))?;
        }
        // Every run ended: the agent may run again.
        for _ in 0..100 {
            if queue.load() == QueueLoad::default() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(queue.load(), QueueLoad::default());
        queue.submit("acme", "dns", "r3", held("r3", &started, &gate))?;
        assert_eq!(starts.recv_timeout(Duration::from_secs(5))?, "r3");
        queue.close();
        Ok(())
    }

    #[test]
    fn a_run_releases_its_agent_before_it_ends() -> Result<(), Box<dyn std::error::Error>> {
        let queue = RunQueue::start(limits(1, 1))?;
        let (started, starts) = mpsc::channel();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let releasing = queue.clone();
        let hold = held("r1", &started, &gate);
        queue.submit(
            "acme",
            "dns",
            "r1",
            Box::new(move || {
                releasing.release_agent("acme", "dns", "r1");
                hold();
            }),
        )?;
        starts.recv_timeout(Duration::from_secs(5))?;
        // r1 still holds the worker, but its agent may be queued again.
        assert_eq!(queue.busy_run("acme", "dns"), None);
        queue.submit("acme", "dns", "r2", held("r2", &started, &gate))?;
        assert_eq!(queue.busy_run("acme", "dns").as_deref(), Some("r2"));
        // r1's end does not free r2's claim.
        open(&gate);
        assert_eq!(starts.recv_timeout(Duration::from_secs(5))?, "r2");
        queue.close();
        Ok(())
    }

    #[test]
    fn a_panicking_run_frees_its_worker() -> Result<(), Box<dyn std::error::Error>> {
        let queue = RunQueue::start(limits(1, 1))?;
        queue.submit("acme", "bad", "r1", Box::new(|| panic!("boom")))?;
        let (done, finished) = mpsc::channel();
        queue.submit(
            "acme",
            "good",
            "r2",
            Box::new(move || {
                let _ = done.send(());
            }),
        )?;
        finished.recv_timeout(Duration::from_secs(5))?;
        Ok(())
    }
}
