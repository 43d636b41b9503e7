//! Each tenant's overrides of the deployment's budgets, by budget name.
//! The names and their meaning are the sandbox's; this keeps the numbers.

use crate::control::{ControlError, ControlStore};
use crate::control_sql::args;

impl ControlStore {
    /// The budget overrides of `tenant`, by key.
    pub fn budget_overrides(&self, tenant: &str) -> Result<Vec<(String, u64)>, ControlError> {
        self.with(|c| {
            Ok(c.rows("SELECT key, value FROM budgets WHERE tenant = ?1 ORDER BY key", &args![tenant], |r| {
                Ok((r.get(0)?, r.get::<i64>(1)?.unsigned_abs()))
            })?)
        })
    }

    /// Sets (`Some`) or removes (`None`) one budget override of `tenant`.
    pub fn set_budget_override(&self, tenant: &str, key: &str, value: Option<u64>) -> Result<(), ControlError> {
        self.with(|c| {
            match value {
                Some(value) => c.execute(
                    "INSERT INTO budgets (tenant, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
                    &args![tenant, key, i64::try_from(value).unwrap_or(i64::MAX)],
                )?,
                None => c.execute("DELETE FROM budgets WHERE tenant = ?1 AND key = ?2", &args![tenant, key])?,
            };
            Ok(())
        })
    }
}
