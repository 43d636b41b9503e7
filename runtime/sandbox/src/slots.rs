//! Each tenant's share of the process's agent instances, so one tenant
//! cannot take every pooling slot and stop every other tenant's runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::budget::{Budget, BudgetExceeded};

/// Live instances per tenant.
#[derive(Debug, Default, Clone)]
pub struct TenantSlots {
    live: Arc<Mutex<HashMap<Arc<str>, u32>>>,
}

impl TenantSlots {
    /// One more instance for `tenant`, or the budget it would pass.
    pub fn take(&self, tenant: &Arc<str>, max: u32) -> Result<TenantSlot, BudgetExceeded> {
        let mut live = self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = live.entry(tenant.clone()).or_insert(0);
        if *count >= max {
            return Err(BudgetExceeded { budget: Budget::MaxInstances, limit: u64::from(max) });
        }
        *count += 1;
        Ok(TenantSlot { slots: self.clone(), tenant: tenant.clone() })
    }

    /// Instances `tenant` holds now.
    pub fn live(&self, tenant: &str) -> u32 {
        let live = self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        live.get(tenant).copied().unwrap_or(0)
    }
}

/// One held instance slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct TenantSlot {
    slots: TenantSlots,
    tenant: Arc<str>,
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut live = self.slots.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = live.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                live.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_cap_is_refused_and_others_are_not() {
        let slots = TenantSlots::default();
        let (acme, globex): (Arc<str>, Arc<str>) = ("acme".into(), "globex".into());
        let first = slots.take(&acme, 2);
        let second = slots.take(&acme, 2);
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(slots.take(&acme, 2).err().map(|e| e.budget), Some(Budget::MaxInstances));
        assert!(slots.take(&globex, 2).is_ok());
        drop(first);
        assert!(slots.take(&acme, 2).is_ok(), "a dropped instance gives its slot back");
        assert_eq!(slots.live("acme"), 1);
    }
}
