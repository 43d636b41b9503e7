//! The control store's record of what each uploaded agent asked to reach
//! (its manifest, as JSON) and whether a tenant admin approved it. The
//! sandbox checks every host call against the approved grant; this keeps
//! the record.

use crate::control::{ControlError, ControlStore};
use crate::control_sql::args;
use crate::jobstatus::now_ms;

/// One uploaded agent's manifest and its approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// The component the manifest is for: a new upload needs a new approval.
    pub sha256: String,
    /// The manifest, as JSON.
    pub manifest: String,
    /// When and by which token it was approved; `None` while it waits.
    pub approved: Option<(i64, i64)>,
}

impl ControlStore {
    /// Records what `tenant`'s `name` (component `sha256`) asks for, waiting
    /// for approval again.
    pub fn request_grant(&self, tenant: &str, name: &str, sha256: &str, manifest: &str) -> Result<(), ControlError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO grants (tenant, name, sha256, manifest, approved_ms, approved_by) VALUES (?1, ?2, ?3, ?4, NULL, NULL)
                 ON CONFLICT (tenant, name) DO UPDATE SET sha256 = excluded.sha256, manifest = excluded.manifest,
                 approved_ms = NULL, approved_by = NULL",
                &args![tenant, name, sha256, manifest],
            )?;
            Ok(())
        })
    }

    /// Approves the manifest of `tenant`'s `name` as recorded for `sha256`;
    /// false when there is none for that component.
    pub fn approve_grant(&self, tenant: &str, name: &str, sha256: &str, token_id: i64) -> Result<bool, ControlError> {
        self.with(|c| {
            let changed = c.execute(
                "UPDATE grants SET approved_ms = ?4, approved_by = ?5 WHERE tenant = ?1 AND name = ?2 AND sha256 = ?3",
                &args![tenant, name, sha256, now_ms(), token_id],
            )?;
            Ok(changed > 0)
        })
    }

    /// The manifest record of `tenant`'s `name`, if it has one.
    pub fn grant(&self, tenant: &str, name: &str) -> Result<Option<GrantRecord>, ControlError> {
        self.with(|c| {
            Ok(c.first(
                "SELECT sha256, manifest, approved_ms, approved_by FROM grants WHERE tenant = ?1 AND name = ?2",
                &args![tenant, name],
                |r| {
                    let at: Option<i64> = r.get(2)?;
                    let by: Option<i64> = r.get(3)?;
                    Ok(GrantRecord { sha256: r.get(0)?, manifest: r.get(1)?, approved: at.zip(by) })
                },
            )?)
        })
    }
}
