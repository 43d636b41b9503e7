//! Each tenant's budget: what its runs may use (time, fuel, memory, host
//! calls, findings), how many instances it may hold, how large an upload
//! and how many requests a minute. Defaults come from `[budgets]`; the
//! deployment's admin overrides them per tenant, and every tenant reads its
//! own. A tenant's budget never passes the `[sandbox]` ceilings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiState, Caller};
use mcp_sandbox::{Budget, RunBudget};
use mcp_storage::control::Caller as Identity;

/// A tenant's budget in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetView {
    pub tenant: String,
    /// Every budget by name, as runs see it (overrides applied, within the
    /// deployment's ceilings).
    pub budget: BTreeMap<String, u64>,
    /// The names this tenant overrides, with their values.
    pub overrides: BTreeMap<String, u64>,
    /// Overrides above the deployment's `[sandbox]` ceilings: the ceiling
    /// applies, not the override.
    pub held_to_ceiling: Vec<String>,
}

/// How long a tenant's budget is kept in memory before it is read again, so
/// an override takes effect within this.
pub const BUDGET_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

impl ApiState {
    /// `tenant`'s budget, read at most every [`BUDGET_CACHE`].
    pub(crate) fn tenant_budget(&self, tenant: &str) -> Result<RunBudget, ApiError> {
        if let Ok(cache) = self.budgets.lock()
            && let Some((budget, at)) = cache.get(tenant)
            && at.elapsed() < BUDGET_CACHE
        {
            return Ok(budget.clone());
        }
        let budget = mcp_engine::runs::tenant_budget(&self.config.budgets, &self.control, tenant)?;
        let budget = self.registry.sandbox().clamp(budget);
        if let Ok(mut cache) = self.budgets.lock() {
            cache.insert(tenant.to_string(), (budget.clone(), Instant::now()));
        }
        Ok(budget)
    }

    /// Counts a request of `tenant` against its requests per minute.
    pub(crate) fn admit(&self, tenant: &str) -> Result<(), ApiError> {
        let limit = self.tenant_budget(tenant)?.requests_per_minute;
        let Ok(mut windows) = self.request_windows.lock() else { return Ok(()) };
        let (started, count) = windows.entry(tenant.to_string()).or_insert((Instant::now(), 0));
        if started.elapsed().as_secs() >= 60 {
            *started = Instant::now();
            *count = 0;
        }
        *count += 1;
        if *count > limit {
            let wait = 60u64.saturating_sub(started.elapsed().as_secs()).max(1);
            return Err(ApiError::too_many_requests(
                format!("tenant {tenant} is over its budget of {limit} requests per minute (requests_per_minute)"),
                wait,
            ));
        }
        Ok(())
    }

    fn budget_view(&self, tenant: &str) -> Result<BudgetView, ApiError> {
        let budget = self.tenant_budget(tenant)?;
        let overrides: BTreeMap<String, u64> = self.control.budget_overrides(tenant)?.into_iter().collect();
        let held_to_ceiling = overrides
            .iter()
            .filter(|(name, value)| Budget::parse(name).is_some_and(|b| budget.get(b) < **value))
            .map(|(name, _)| name.clone())
            .collect();
        Ok(BudgetView {
            tenant: tenant.to_string(),
            budget: Budget::ALL.iter().map(|b| (b.name().to_string(), budget.get(*b))).collect(),
            overrides,
            held_to_ceiling,
        })
    }
}

/// The caller's tenant's budget.
#[utoipa::path(
    get,
    path = "/v1/budgets",
    responses((status = OK, body = BudgetView), super::problem::Unauthorized)
)]
pub async fn get_budget(State(state): State<Arc<ApiState>>, caller: Caller) -> Result<Json<BudgetView>, ApiError> {
    state.budget_view(&caller.tenant).map(Json)
}

/// A change of budget overrides: budget names to a whole number from 1, or
/// null to remove the override. Only the budgets' names are properties.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct BudgetChange(BTreeMap<String, Option<serde_json::Number>>);

impl utoipa::PartialSchema for BudgetChange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type};
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("Budget names to a whole number from 1, or null to remove the override."))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for budget in Budget::ALL {
            let value = ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
                .minimum(Some(1))
                .maximum(Some(budget.max_value()));
            object = object.property(budget.name(), value);
        }
        object.into()
    }
}

impl utoipa::ToSchema for BudgetChange {}

/// Sets or removes (`null`) budget overrides of one tenant (the
/// deployment admin).
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/budgets",
    params(("tenant" = String, Path)),
    request_body = BudgetChange,
    responses(
        (status = OK, body = BudgetView),
        (status = BAD_REQUEST, description = "an unknown budget name, or a value that is not a whole number from 1", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn put_budget(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(tenant): Path<String>,
    change: Result<super::contract::JsonObject<BudgetChange>, ApiError>,
) -> Result<Json<BudgetView>, ApiError> {
    caller.require_deployment_admin()?;
    let super::contract::JsonObject(BudgetChange(numbers)) = change?;
    let mut change = BTreeMap::new();
    for (key, value) in numbers {
        let value = match value {
            None => None,
            Some(number) => Some(
                super::contract::whole(&number)
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| ApiError::bad_request(format!("{key}: {number} is not a whole number from 1")))?,
            ),
        };
        change.insert(key, value);
    }
    if !state.control.tenants()?.contains(&tenant) {
        return Err(ApiError::not_found(format!("no tenant named '{tenant}'")));
    }
    if change.len() > Budget::ALL.len() {
        return Err(ApiError::bad_request(format!("at most {} budgets", Budget::ALL.len())));
    }
    let mut checked = RunBudget::default();
    for (key, value) in &change {
        let budget = Budget::parse(key).ok_or_else(|| {
            let names: Vec<&str> = Budget::ALL.iter().map(|b| b.name()).collect();
            ApiError::bad_request(format!("no budget named '{key}'; budgets: {}", names.join(", ")))
        })?;
        if let Some(value) = value {
            checked.set(budget, *value).map_err(ApiError::bad_request)?;
        }
    }
    for (key, value) in &change {
        state.control.set_budget_override(&tenant, key, *value)?;
    }
    if let Ok(mut cache) = state.budgets.lock() {
        cache.remove(&tenant);
    }
    // Audited in the tenant it affects, naming the admin's token.
    let affected = Identity { token_id: caller.token_id, tenant: tenant.clone(), role: caller.role };
    let detail = change
        .iter()
        .map(|(k, v)| format!("{k}={}", v.map_or("default".to_string(), |v| v.to_string())))
        .collect::<Vec<_>>()
        .join(" ");
    state.control.audit(&affected, "budget.set", &detail)?;
    state.budget_view(&tenant).map(Json)
}
