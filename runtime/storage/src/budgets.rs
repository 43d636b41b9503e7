//! Each tenant's overrides of the deployment's budgets, by budget name.
//! The names and their meaning are the sandbox's; this keeps the numbers.

use rusqlite::params;

use crate::control::{ControlError, ControlStore};

impl ControlStore {
    /// The budget overrides of `tenant`, by key.
    pub fn budget_overrides(&self, tenant: &str) -> Result<Vec<(String, u64)>, ControlError> {
        self.with(|c| {
            let mut s = c.prepare("SELECT key, value FROM budgets WHERE tenant = ?1 ORDER BY key")?;
            s.query_map([tenant], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?.collect()
        })
    }

    /// Sets (`Some`) or removes (`None`) one budget override of `tenant`.
    pub fn set_budget_override(&self, tenant: &str, key: &str, value: Option<u64>) -> Result<(), ControlError> {
        self.with(|c| {
            match value {
                Some(value) => c.execute(
                    "INSERT INTO budgets (tenant, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
                    params![tenant, key, i64::try_from(value).unwrap_or(i64::MAX)],
                )?,
                None => c.execute("DELETE FROM budgets WHERE tenant = ?1 AND key = ?2", params![tenant, key])?,
            };
            Ok(())
        })
    }
}
