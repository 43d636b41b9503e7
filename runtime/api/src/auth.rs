//! The bearer token on every request, turned into a [`Caller`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use mcp_storage::control::{Caller as Identity, Role};

use super::{ApiError, ApiState};

/// Who is calling, as their bearer token says: the control store's identity,
/// extracted from each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: i64,
    pub tenant: String,
    pub role: Role,
}

impl From<Identity> for Caller {
    fn from(identity: Identity) -> Self {
        Caller { token_id: identity.token_id, tenant: identity.tenant, role: identity.role }
    }
}

impl FromRequestParts<Arc<ApiState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            ApiError::unauthorized("send `Authorization: Bearer <token>`; `mcp tokens create` makes a token")
        })?;
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        // A change is made only with a token the store holds now: one
        // revoked through another node is remembered here for a while.
        let fresh = !parts.method.is_safe();
        authenticate(state, token.trim().to_string(), fresh).await
    }
}

/// The caller a token names, admitted under its tenant's request rate: what
/// the API's bearer header and the console's session both go through, so
/// a revoked token or a disabled tenant ends both at once.
pub(crate) async fn authenticate(state: &Arc<ApiState>, token: String, fresh: bool) -> Result<Caller, ApiError> {
    // A token seen lately is answered from memory for reads; any other
    // needs the control store, whose connection is behind a blocking lock.
    let remembered = if fresh { None } else { state.control.recently_authenticated(&token) };
    let identity = match remembered {
        Some(identity) => Some(identity),
        None => {
            let shared = state.clone();
            tokio::task::spawn_blocking(move || shared.control.authenticate_fresh(&token)).await??
        }
    };
    let caller = identity
        .map(Caller::from)
        .ok_or_else(|| ApiError::unauthorized("the token is not valid (revoked, or never issued here)"))?;
    state.admit(&caller.tenant)?;
    Ok(caller)
}

impl Caller {
    /// The identity the control store records in its audit trail.
    pub fn identity(&self) -> Identity {
        Identity { token_id: self.token_id, tenant: self.tenant.clone(), role: self.role }
    }

    /// Refuses the call unless the token is the deployment's admin's.
    pub fn require_deployment_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::DeploymentAdmin {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "this is the deployment admin's (a deployment_admin token: `mcp tokens create --role deployment_admin`)",
        ))
    }

    /// Whether the token is one of the deployment's own (the deployment
    /// admin's, or a read-only one for a metrics scraper).
    pub fn is_deployment(&self) -> bool {
        self.tenant == mcp_storage::control::DEPLOYMENT_TENANT
    }

    /// Refuses the call unless the token's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role == Role::DeploymentAdmin && role != Role::DeploymentAdmin {
            return Err(ApiError::forbidden(
                "the deployment admin's token changes no tenant's resources; use a token of the tenant",
            ));
        }
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this needs the {} role; the token has {}", role.name(), self.role.name())))
        }
    }
}
