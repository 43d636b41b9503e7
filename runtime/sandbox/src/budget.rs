//! What one run of an agent may use, and what it used.
//!
//! A budget is per tenant: the operator sets defaults in `[budgets]` and
//! overrides them per tenant; the engine gives each instance its tenant's
//! budget through [`crate::InstanceContext`]. The per-call limits of
//! [`crate::SandboxLimits`] bound one call; these bound a whole run, so an
//! agent that stays just under the per-call deadline still ends.

use serde::{Deserialize, Serialize};

/// One run's budget. Every field is a ceiling; a hit ends the call with
/// [`crate::Fault::Budget`] naming it, and ends the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunBudget {
    /// Wall-clock budget of one call (one batch), in milliseconds.
    pub call_timeout_ms: u64,
    /// Fuel for one call, with `budget = "fuel"`.
    pub fuel_per_call: u64,
    /// Milliseconds a run may spend inside agent calls.
    pub run_agent_ms: u64,
    /// Fuel for a whole run, with `budget = "fuel"`.
    pub fuel_per_run: u64,
    /// Bytes of linear memory one instance may hold, over all its memories;
    /// never more than the operator's `sandbox.memory_bytes`.
    pub memory_bytes: usize,
    /// Agent instances of this tenant alive at once in the process.
    pub max_instances: u32,
    /// Log rows the `logs.query` import may return in one run.
    pub log_rows: u64,
    /// Calls of the model's `infer` in one run.
    pub inferences: u64,
    /// Findings (returned and reported) in one run.
    pub findings: u64,
    /// Lines through the `log` import in one run (stdout and stderr have
    /// their own cap per instance).
    pub log_lines: u64,
    /// Bytes of those lines in one run.
    pub log_bytes: u64,
    /// Bytes an agent hands the host in one run to keep: findings' texts
    /// and error messages (states replace each other and have their own cap).
    pub returned_bytes: u64,
    /// Largest component this tenant may upload, in bytes; never more than
    /// the operator's `max_upload_bytes`.
    pub upload_bytes: u64,
    /// API requests this tenant's tokens may make per minute.
    pub requests_per_minute: u64,
    /// Agents this tenant may have uploaded at once (each keeps compiled
    /// code in the host's memory).
    pub agents: u64,
}

impl Default for RunBudget {
    fn default() -> Self {
        RunBudget {
            call_timeout_ms: 2_000,
            fuel_per_call: 2_000_000_000,
            run_agent_ms: 600_000,
            fuel_per_run: 2_000_000_000_000,
            memory_bytes: 64 << 20,
            max_instances: 16,
            log_rows: 10_000_000,
            inferences: 1_000_000,
            findings: 1_000_000,
            log_lines: 100_000,
            log_bytes: 16 << 20,
            returned_bytes: 64 << 20,
            upload_bytes: 32 << 20,
            requests_per_minute: 60_000,
            agents: 100,
        }
    }
}

/// The budget a limit belongs to, by its stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    CallTimeout,
    FuelPerCall,
    RunAgentMs,
    FuelPerRun,
    MemoryBytes,
    MaxInstances,
    LogRows,
    Inferences,
    Findings,
    LogLines,
    LogBytes,
    ReturnedBytes,
    UploadBytes,
    RequestsPerMinute,
    Agents,
}

impl Budget {
    /// Every budget, in the order documents list them.
    pub const ALL: [Budget; 15] = [
        Budget::CallTimeout,
        Budget::FuelPerCall,
        Budget::RunAgentMs,
        Budget::FuelPerRun,
        Budget::MemoryBytes,
        Budget::MaxInstances,
        Budget::LogRows,
        Budget::Inferences,
        Budget::Findings,
        Budget::LogLines,
        Budget::LogBytes,
        Budget::ReturnedBytes,
        Budget::UploadBytes,
        Budget::RequestsPerMinute,
        Budget::Agents,
    ];

    /// The key in `[budgets]` and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Budget::CallTimeout => "call_timeout_ms",
            Budget::FuelPerCall => "fuel_per_call",
            Budget::RunAgentMs => "run_agent_ms",
            Budget::FuelPerRun => "fuel_per_run",
            Budget::MemoryBytes => "memory_bytes",
            Budget::MaxInstances => "max_instances",
            Budget::LogRows => "log_rows",
            Budget::Inferences => "inferences",
            Budget::Findings => "findings",
            Budget::LogLines => "log_lines",
            Budget::LogBytes => "log_bytes",
            Budget::ReturnedBytes => "returned_bytes",
            Budget::UploadBytes => "upload_bytes",
            Budget::RequestsPerMinute => "requests_per_minute",
            Budget::Agents => "agents",
        }
    }

    /// The largest value the budget takes (stored as a signed 64-bit number).
    pub fn max_value(self) -> u64 {
        match self {
            Budget::MaxInstances => u64::from(u32::MAX),
            _ => i64::MAX as u64,
        }
    }

    pub fn parse(name: &str) -> Option<Budget> {
        Budget::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl RunBudget {
    /// The ceiling of `budget`, as a number.
    pub fn get(&self, budget: Budget) -> u64 {
        match budget {
            Budget::CallTimeout => self.call_timeout_ms,
            Budget::FuelPerCall => self.fuel_per_call,
            Budget::RunAgentMs => self.run_agent_ms,
            Budget::FuelPerRun => self.fuel_per_run,
            Budget::MemoryBytes => self.memory_bytes as u64,
            Budget::MaxInstances => u64::from(self.max_instances),
            Budget::LogRows => self.log_rows,
            Budget::Inferences => self.inferences,
            Budget::Findings => self.findings,
            Budget::LogLines => self.log_lines,
            Budget::LogBytes => self.log_bytes,
            Budget::ReturnedBytes => self.returned_bytes,
            Budget::UploadBytes => self.upload_bytes,
            Budget::RequestsPerMinute => self.requests_per_minute,
            Budget::Agents => self.agents,
        }
    }

    /// Sets `budget` to `value`; refuses 0 (a budget of nothing is a
    /// disabled agent, which has its own switch) and values that do not fit.
    pub fn set(&mut self, budget: Budget, value: u64) -> Result<(), String> {
        if value > budget.max_value() {
            return Err(format!("{budget} of {value} is too large (at most {})", budget.max_value()));
        }
        if value == 0 {
            return Err(format!("{budget} must be at least 1"));
        }
        let too_big = || format!("{budget} of {value} is too large");
        match budget {
            Budget::CallTimeout => self.call_timeout_ms = value,
            Budget::FuelPerCall => self.fuel_per_call = value,
            Budget::RunAgentMs => self.run_agent_ms = value,
            Budget::FuelPerRun => self.fuel_per_run = value,
            Budget::MemoryBytes => self.memory_bytes = usize::try_from(value).map_err(|_| too_big())?,
            Budget::MaxInstances => self.max_instances = u32::try_from(value).map_err(|_| too_big())?,
            Budget::LogRows => self.log_rows = value,
            Budget::Inferences => self.inferences = value,
            Budget::Findings => self.findings = value,
            Budget::LogLines => self.log_lines = value,
            Budget::LogBytes => self.log_bytes = value,
            Budget::ReturnedBytes => self.returned_bytes = value,
            Budget::UploadBytes => self.upload_bytes = value,
            Budget::RequestsPerMinute => self.requests_per_minute = value,
            Budget::Agents => self.agents = value,
        }
        Ok(())
    }
}

/// What an agent used, per call and summed over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Export calls made.
    pub calls: u64,
    /// Milliseconds inside agent calls.
    pub agent_ms: u64,
    /// Fuel burnt, with `budget = "fuel"`.
    pub fuel: u64,
    /// The most linear memory the instance held at once, in bytes.
    pub memory_high_water: u64,
    pub log_rows: u64,
    pub inferences: u64,
    pub findings: u64,
    pub log_lines: u64,
    pub log_bytes: u64,
    pub returned_bytes: u64,
}

impl Usage {
    /// Adds a call's usage to a run's.
    pub fn add(&mut self, call: &Usage) {
        self.calls += call.calls;
        self.agent_ms += call.agent_ms;
        self.fuel += call.fuel;
        self.memory_high_water = self.memory_high_water.max(call.memory_high_water);
        self.log_rows += call.log_rows;
        self.inferences += call.inferences;
        self.findings += call.findings;
        self.log_lines += call.log_lines;
        self.log_bytes += call.log_bytes;
        self.returned_bytes += call.returned_bytes;
    }

    /// The counter a host call or a returned value adds to, for the budgets
    /// that count what an agent hands over or asks for.
    fn counter_mut(&mut self, budget: Budget) -> Option<&mut u64> {
        match budget {
            Budget::LogRows => Some(&mut self.log_rows),
            Budget::Inferences => Some(&mut self.inferences),
            Budget::Findings => Some(&mut self.findings),
            Budget::LogLines => Some(&mut self.log_lines),
            Budget::LogBytes => Some(&mut self.log_bytes),
            Budget::ReturnedBytes => Some(&mut self.returned_bytes),
            _ => None,
        }
    }

    /// Takes `amount` of `budget` under `limit`, or names the budget when
    /// `amount` would pass it; `already` is what was used elsewhere first.
    pub(crate) fn take(&mut self, budget: Budget, amount: u64, limit: u64, already: u64) -> Result<(), BudgetExceeded> {
        if already.saturating_add(self.of(budget)).saturating_add(amount) > limit {
            return Err(BudgetExceeded { budget, limit });
        }
        if let Some(counter) = self.counter_mut(budget) {
            *counter += amount;
        }
        Ok(())
    }

    /// The amount of a countable budget used so far.
    pub fn of(&self, budget: Budget) -> u64 {
        match budget {
            Budget::RunAgentMs => self.agent_ms,
            Budget::FuelPerRun => self.fuel,
            Budget::LogRows => self.log_rows,
            Budget::Inferences => self.inferences,
            Budget::Findings => self.findings,
            Budget::LogLines => self.log_lines,
            Budget::LogBytes => self.log_bytes,
            Budget::ReturnedBytes => self.returned_bytes,
            Budget::MemoryBytes => self.memory_high_water,
            Budget::CallTimeout
            | Budget::FuelPerCall
            | Budget::MaxInstances
            | Budget::UploadBytes
            | Budget::RequestsPerMinute
            | Budget::Agents => 0,
        }
    }
}

/// The error a host import raises when a call would pass a run budget; it
/// traps the call, so a guest cannot ignore it and keep asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("used up its {budget} budget of {limit} for this run")]
pub struct BudgetExceeded {
    pub budget: Budget,
    pub limit: u64,
}

/// What a Store may still use in one call: the run's budget minus what the
/// run used before the call, and what the call has used so far.
#[derive(Debug, Clone)]
pub(crate) struct CallQuota {
    pub budget: RunBudget,
    pub before: Usage,
    pub used: Usage,
}

impl CallQuota {
    pub fn new(budget: RunBudget) -> Self {
        CallQuota { budget, before: Usage::default(), used: Usage::default() }
    }

    /// Takes `amount` of `budget`, or fails naming it when the run would
    /// pass its ceiling.
    pub fn take(&mut self, budget: Budget, amount: u64) -> Result<(), BudgetExceeded> {
        self.used.take(budget, amount, self.budget.get(budget), self.before.of(budget))
    }

    /// What is left of `budget` for the rest of the run.
    pub fn left(&self, budget: Budget) -> u64 {
        self.budget.get(budget).saturating_sub(self.before.of(budget) + self.used.of(budget))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_refuses_what_passes_the_run_budget_and_names_it() {
        let budget = RunBudget { log_lines: 3, ..RunBudget::default() };
        let mut quota = CallQuota::new(budget);
        quota.before.log_lines = 2;
        assert_eq!(quota.take(Budget::LogLines, 1), Ok(()));
        assert_eq!(quota.take(Budget::LogLines, 1), Err(BudgetExceeded { budget: Budget::LogLines, limit: 3 }));
        assert_eq!(quota.used.log_lines, 1);
    }

    #[test]
    fn every_budget_round_trips_by_name_and_zero_is_refused() {
        let mut budget = RunBudget::default();
        for b in Budget::ALL {
            assert_eq!(Budget::parse(b.name()), Some(b));
            assert!(budget.set(b, 0).is_err());
            assert_eq!(budget.set(b, 7), Ok(()));
            assert_eq!(budget.get(b), 7);
        }
    }
}
