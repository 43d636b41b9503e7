//! The bearer token on every request, turned into a [`Caller`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, ApiState, Caller, Role};

impl FromRequestParts<Arc<ApiState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            ApiError::unauthorized("send `Authorization: Bearer <token>`; `mcp tokens create` makes a token")
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        state
            .control
            .authenticate(token.trim())
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::unauthorized("the token is not valid (revoked, or never issued here)"))
    }
}

impl Caller {
    /// Refuses the call unless the token's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this needs the {} role; the token has {}", role.name(), self.role.name())))
        }
    }
}
