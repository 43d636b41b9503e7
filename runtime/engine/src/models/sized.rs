//! Plans for the batch sizes a model sees again and again. The plan with a
//! symbolic batch serves every size, but tract optimises a plan whose
//! shapes are all known further (its matrix products set up for the size):
//! at 1,024 rows the shipped Wi-Fi model ran in 68 µs instead of 91 and the
//! firewall's in 41 instead of 69 (docs/performance.md). A size gets a plan
//! of its own the second time it is seen, so the last, shorter batch of a
//! run does not pay for one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;

/// Plans kept per model; the least recently used goes first.
const MAX_PLANS: usize = 4;
/// Below this, a batch is cheap anyway and the symbolic plan serves it.
const MIN_ROWS: usize = 64;
/// Sizes counted before the counts start again, so that a caller cycling
/// through sizes cannot grow the map.
const MAX_COUNTED: usize = 64;
/// Run states kept per plan between calls.
const MAX_STATES: usize = 8;
/// Least time between two plans built for one model: batch sizes come from
/// guests, and one cycling through sizes must not keep the model's lock
/// busy building plans for the tenants that share it.
const MIN_BUILD_INTERVAL: Duration = Duration::from_secs(5);

/// The model before optimisation, and its plans per batch size.
#[derive(Debug)]
pub(super) struct SizedPlans {
    decluttered: TypedModel,
    batch: Symbol,
    inner: Mutex<Inner>,
    pub(super) min_build_interval: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    /// How often each size without a plan was asked for; `None` for a size
    /// whose plan could not be built.
    seen: HashMap<usize, Option<u32>>,
    /// Most recently used last.
    plans: Vec<SizedPlan>,
    last_build: Option<Instant>,
}

#[derive(Debug)]
struct SizedPlan {
    rows: usize,
    plan: Arc<TypedRunnableModel>,
    states: Vec<TypedSimpleState>,
}

impl SizedPlans {
    /// `decluttered` is the model with `batch` as its symbolic batch size.
    pub(super) fn new(decluttered: TypedModel, batch: Symbol) -> Self {
        SizedPlans { decluttered, batch, inner: Mutex::default(), min_build_interval: MIN_BUILD_INTERVAL }
    }

    /// A run state of the plan for exactly `rows` rows, when that size has
    /// earned a plan; `None` sends the caller to the symbolic plan.
    pub(super) fn take(&self, rows: usize) -> Option<TypedSimpleState> {
        if rows < MIN_ROWS {
            return None;
        }
        let mut inner = self.inner.lock().ok()?;
        if let Some(index) = inner.plans.iter().position(|p| p.rows == rows) {
            let mut used = inner.plans.remove(index);
            let state = used.states.pop().map_or_else(|| used.plan.spawn().ok(), Some);
            inner.plans.push(used);
            return state;
        }
        if inner.seen.len() >= MAX_COUNTED && !inner.seen.contains_key(&rows) {
            inner.seen.clear();
        }
        let seen = inner.seen.entry(rows).or_insert(Some(0));
        let Some(count) = seen else { return None };
        *count += 1;
        if *count < 2 || inner.last_build.is_some_and(|at| at.elapsed() < self.min_build_interval) {
            return None;
        }
        inner.last_build = Some(Instant::now());
        // Built under the lock: rare (once per size), about a millisecond.
        match self.plan_for(rows) {
            Ok(plan) => {
                inner.seen.remove(&rows);
                if inner.plans.len() >= MAX_PLANS {
                    inner.plans.remove(0);
                }
                let state = plan.spawn().ok();
                inner.plans.push(SizedPlan { rows, plan, states: Vec::new() });
                state
            }
            Err(error) => {
                tracing::warn!(rows, error = %error, "no plan of its own for this batch size; the general plan serves it");
                inner.seen.insert(rows, None);
                None
            }
        }
    }

    /// Gives back a state [`SizedPlans::take`] handed out for `rows` rows.
    pub(super) fn give_back(&self, rows: usize, state: TypedSimpleState) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if let Some(plan) = inner.plans.iter_mut().find(|p| p.rows == rows)
            && plan.states.len() < MAX_STATES
        {
            plan.states.push(state);
        }
    }

    fn plan_for(&self, rows: usize) -> TractResult<Arc<TypedRunnableModel>> {
        let size = i64::try_from(rows)?;
        let values = HashMap::from([(self.batch.clone(), TDim::Val(size))]);
        self.decluttered.set_symbols(&values)?.into_optimized()?.into_runnable()
    }

    #[cfg(test)]
    pub(super) fn sizes(&self) -> Vec<usize> {
        self.inner.lock().map(|inner| inner.plans.iter().map(|p| p.rows).collect()).unwrap_or_default()
    }
}
