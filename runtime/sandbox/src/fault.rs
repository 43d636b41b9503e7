//! Naming what went wrong when a guest call fails.

use wasmtime::Trap;

use super::budget::{Budget, BudgetExceeded};
use super::limits::LimitHit;

/// Why the sandbox stopped an agent call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("ran past its deadline of {timeout_ms} ms")]
    Deadline { timeout_ms: u64 },
    #[error("used up its fuel budget of {fuel}")]
    FuelExhausted { fuel: u64 },
    #[error("tried to grow memory to {desired} bytes, over its limit of {limit} bytes")]
    MemoryLimit { desired: usize, limit: usize },
    #[error("grew a table to {desired} elements, over the limit")]
    TableLimit { desired: usize },
    #[error("overflowed its wasm stack of {limit} bytes")]
    StackOverflow { limit: usize },
    #[error("panicked or hit unreachable code")]
    Panic,
    #[error("returned or reported {count} anomalies in one call, over the limit of {limit}")]
    TooManyAnomalies { count: usize, limit: usize },
    #[error("returned malformed findings: {0}")]
    BadFindings(String),
    #[error("returned a state of {bytes} bytes, over the limit of {limit}")]
    StateTooLarge { bytes: usize, limit: usize },
    #[error("{0}")]
    Wait(String),
    #[error("{0}")]
    Budget(BudgetExceeded),
    #[error("called exit with status {0}")]
    Exit(i32),
    #[error("held more than {limit} host handles at once")]
    Handles { limit: usize },
    #[error("trapped: {0}")]
    Trap(String),
}

impl Fault {
    /// A short stable name, for counters and the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Deadline { .. } => "deadline",
            Fault::FuelExhausted { .. } => "fuel",
            Fault::MemoryLimit { .. } => "memory",
            Fault::TableLimit { .. } => "table",
            Fault::StackOverflow { .. } => "stack",
            Fault::Panic => "panic",
            Fault::StateTooLarge { .. } => "state",
            Fault::TooManyAnomalies { .. } => "result-size",
            Fault::BadFindings(_) => "bad-findings",
            Fault::Wait(_) => "wait",
            Fault::Budget(_) => "budget",
            Fault::Exit(_) => "exit",
            Fault::Handles { .. } => "handles",
            Fault::Trap(_) => "trap",
        }
    }
}

/// The facts needed to name a fault.
#[derive(Debug, Clone, Copy)]
pub struct FaultContext {
    pub timeout_ms: u64,
    pub fuel: u64,
    pub memory_limit: usize,
    pub stack_limit: usize,
    pub limit_hit: Option<LimitHit>,
    /// The call's deadline was the run's remaining time, not the per-call one.
    pub deadline_is_run_budget: Option<u64>,
    /// The call's fuel was the run's remaining fuel, not the per-call amount.
    pub fuel_is_run_budget: Option<u64>,
}

/// Turns the error of a failed call into a [`Fault`].
pub fn classify(error: &wasmtime::Error, context: FaultContext) -> Fault {
    match context.limit_hit {
        Some(LimitHit::Memory { desired }) => {
            return Fault::MemoryLimit { desired, limit: context.memory_limit };
        }
        Some(LimitHit::Table { desired }) => return Fault::TableLimit { desired },
        None => {}
    }
    if let Some(denied) = error.downcast_ref::<crate::waits::WaitDenied>() {
        return Fault::Wait(denied.to_string());
    }
    if let Some(exceeded) = error.downcast_ref::<BudgetExceeded>() {
        return Fault::Budget(*exceeded);
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Fault::Exit(exit.0);
    }
    if let Some(wasmtime::component::ResourceTableError::Full) =
        error.downcast_ref::<wasmtime::component::ResourceTableError>()
    {
        return Fault::Handles { limit: crate::host::MAX_HANDLES };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => match context.deadline_is_run_budget {
            Some(limit) => Fault::Budget(BudgetExceeded { budget: Budget::RunAgentMs, limit }),
            None => Fault::Deadline { timeout_ms: context.timeout_ms },
        },
        Some(Trap::OutOfFuel) => match context.fuel_is_run_budget {
            Some(limit) => Fault::Budget(BudgetExceeded { budget: Budget::FuelPerRun, limit }),
            None => Fault::FuelExhausted { fuel: context.fuel },
        },
        Some(Trap::StackOverflow) => Fault::StackOverflow { limit: context.stack_limit },
        Some(Trap::UnreachableCodeReached) => Fault::Panic,
        Some(other) => Fault::Trap(other.to_string()),
        None => Fault::Trap(first_line(error)),
    }
}

/// Whether a failed instantiation was stopped by the guest's own code (a
/// trap, a limit, a denied wait or exit) rather than by the host.
pub fn is_guest_fault(error: &wasmtime::Error, limit_hit: Option<LimitHit>) -> bool {
    limit_hit.is_some()
        || error.downcast_ref::<Trap>().is_some()
        || error.downcast_ref::<crate::waits::WaitDenied>().is_some()
        || error.downcast_ref::<BudgetExceeded>().is_some()
        || error.downcast_ref::<wasmtime_wasi::I32Exit>().is_some()
}

/// The first line of an untyped error, bounded: backtraces and wasmtime's
/// context chains span lines, and this text reaches job records and the API.
pub fn first_line(error: &wasmtime::Error) -> String {
    let text = format!("{error:#}");
    let line = text.lines().next().unwrap_or("").trim();
    crate::text::bounded(crate::text::one_line(line), 512)
}

impl Fault {
    /// Whether retrying the call on a fresh instance cannot help: a spent
    /// run budget stays spent.
    pub fn is_budget(&self) -> bool {
        matches!(self, Fault::Budget(_))
    }
}
