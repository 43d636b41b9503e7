//! What one agent instance may use: CPU per call, memory, stack, output.
//!
//! Every limit exists because agents are untrusted: an author's bug or
//! malice must cost the host one failed call, never the process.

use serde::{Deserialize, Serialize};

/// How a call's CPU budget is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetKind {
    /// A wall-clock deadline checked at loop heads and calls (epoch
    /// interruption); cheapest, measured in docs/performance.md.
    Epoch,
    /// A count of executed wasm operations (fuel); deterministic, slower.
    Fuel,
}

/// Per-instance limits, from the `[sandbox]` table of the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxLimits {
    /// Epoch deadlines or fuel.
    pub budget: BudgetKind,
    /// Wall-clock budget of one export call, with `budget = "epoch"`.
    pub call_timeout_ms: u64,
    /// Fuel for one export call, with `budget = "fuel"`.
    pub fuel_per_call: u64,
    /// Linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// Wasm stack one call may use.
    pub stack_bytes: usize,
    /// Agent instances alive at once in this process (pooling slots).
    pub max_instances: u32,
    /// Anomalies one call may return or report; more is a fault.
    pub max_anomalies_per_call: usize,
    /// Entries the `logs.query` import returns at most per page.
    pub max_query_page: u32,
    /// Bytes an agent's state snapshot may take (protocol 0.2.0).
    pub max_state_bytes: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            budget: BudgetKind::Epoch,
            call_timeout_ms: 2_000,
            fuel_per_call: 2_000_000_000,
            memory_bytes: 64 << 20,
            stack_bytes: 512 << 10,
            max_instances: 64,
            max_anomalies_per_call: 100_000,
            max_query_page: 10_000,
            max_state_bytes: 4 << 20,
        }
    }
}

/// Milliseconds between epoch ticks; a deadline is rounded up to ticks.
pub const EPOCH_TICK_MS: u64 = 5;

/// Which limit stopped a guest, when a limiter saw it happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Memory { desired: usize },
    Table { desired: usize },
}

/// Enforces the memory cap over all of an instance's memories together
/// (a component may have many), remembers the high-water mark, and
/// remembers that it refused, so the trap that follows can be named
/// precisely instead of as a bare `unreachable`.
#[derive(Debug)]
pub struct GuestLimiter {
    memory_bytes: usize,
    /// Bytes of all the instance's memories now.
    total: usize,
    pub(crate) high_water: usize,
    pub(crate) hit: Option<LimitHit>,
}

/// Elements one table may grow to.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Core instances, memories and tables one component may create: generous
/// for any toolchain's output (a Rust agent has 3, 1 and 2), small enough
/// that the per-instance memory cap cannot be multiplied.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 4;
pub const MAX_TABLES_PER_COMPONENT: u32 = 16;

impl GuestLimiter {
    pub fn new(memory_bytes: usize) -> Self {
        GuestLimiter { memory_bytes, total: 0, high_water: 0, hit: None }
    }
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        if total > self.memory_bytes {
            self.hit = Some(LimitHit::Memory { desired: total });
            wasmtime::bail!("memory limit of {} bytes reached (asked for {total} in all)", self.memory_bytes);
        }
        self.total = total;
        self.high_water = self.high_water.max(total);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = Some(LimitHit::Table { desired });
            wasmtime::bail!("table limit of {MAX_TABLE_ELEMENTS} elements reached");
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES_PER_COMPONENT as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_COMPONENT as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_COMPONENT as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_memory_cap_counts_every_memory_of_an_instance() {
        let mut limiter = GuestLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap_or(false));
        // A second memory of 60 would make 120 in all.
        assert!(limiter.memory_growing(0, 60, None).is_err());
        assert_eq!(limiter.hit, Some(LimitHit::Memory { desired: 120 }));
        // Growing the first memory within the cap still works.
        assert!(limiter.memory_growing(60, 90, None).unwrap_or(false));
        assert_eq!(limiter.high_water, 90);
    }
}
