//! Tenants and tokens as resources: created, listed, disabled, deleted and
//! revoked through the control store. A disabled or deleted tenant's tokens
//! stop working at once in this process (the cache of recent tokens is
//! purged) and within [`crate::control::TOKEN_CACHE`] in any other.

use rusqlite::Connection;
use serde::Serialize;

use crate::control::{ControlError, ControlStore, Role};
use crate::control_sql::args;
use crate::jobstatus::now_ms;

/// One token, as its tenant's admins see it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// The token that created it; `None` for the command line.
    pub created_by: Option<i64>,
    pub created_ms: i64,
    /// When it was last seen (recorded at most every half minute).
    pub last_used_ms: Option<i64>,
}

/// One tenant, as the deployment's admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRecord {
    pub name: String,
    pub created_ms: i64,
    pub disabled_ms: Option<i64>,
    pub tokens: i64,
}

/// What deleting a tenant removes: its tokens and every control record
/// (uploads, flags, settings, grants, budgets, quarantine, faults, and its
/// notification routes and channels, whose sealed secrets must not outlive
/// it). Its audit trail is kept; its logs and anomalies stay in their stores.
const TENANT_RECORDS: [&str; 10] = [
    "tokens",
    "uploads",
    "agent_flags",
    "settings",
    "grants",
    "budgets",
    "agent_quarantine",
    "agent_faults",
    "notify_routes",
    "notify_channels",
];

/// Columns added after the first release, for control stores made before.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let added = [
        ("tokens", "name", "TEXT NOT NULL DEFAULT ''"),
        ("tokens", "created_by", "INTEGER"),
        ("tokens", "last_used_ms", "INTEGER"),
        ("tenants", "disabled_ms", "INTEGER"),
        ("exports", "examined", "INTEGER NOT NULL DEFAULT 0"),
        ("exports", "to_examine", "INTEGER NOT NULL DEFAULT 0"),
        ("exports", "cancel_requested", "INTEGER NOT NULL DEFAULT 0"),
    ];
    for (table, column, kind) in added {
        let present: bool =
            conn.prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))?.exists([column])?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    // The agents' quarantine was named `quarantine` until the control store
    // could live in PostgreSQL beside the log source's quarantine of rows.
    let old_quarantine: bool =
        conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'quarantine'")?.exists([])?;
    if old_quarantine {
        conn.execute_batch(
            "INSERT OR REPLACE INTO agent_quarantine SELECT tenant, agent, since_ms, until_ms, level, reason FROM quarantine;
             DROP TABLE quarantine;",
        )?;
    }
    // A deleted tenant's logs, anomalies, runs and audit trail stay under its
    // name, so the name is never given again.
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS deleted_tenants (name TEXT PRIMARY KEY, deleted_ms INTEGER NOT NULL)",
    )
}

impl ControlStore {
    /// Creates a named token for an existing, enabled `tenant` and returns
    /// its id and secret: the only time the secret is shown.
    pub fn create_named_token(
        &self,
        tenant: &str,
        role: Role,
        name: &str,
        created_by: Option<i64>,
    ) -> Result<(i64, String), ControlError> {
        let secret: [u8; 32] = rand::random();
        let token = format!("mcp_{}", hex::encode(secret));
        let id = self.with(|c| {
            let made = c.one(
                "INSERT INTO tokens (tenant, role, sha256, created_ms, name, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 RETURNING id",
                &args![tenant, role.name(), crate::control::hash(&token), now_ms(), name, created_by],
                |r| r.get(0),
            );
            match made {
                // The tenant was deleted meanwhile (through another node).
                Err(e) if e.is_foreign_key() => Err(ControlError::DeletedTenant(tenant.into())),
                other => Ok(other?),
            }
        })?;
        Ok((id, token))
    }

    /// `tenant`'s tokens, oldest first.
    pub fn tokens(&self, tenant: &str) -> Result<Vec<TokenRecord>, ControlError> {
        self.with(|c| {
            Ok(c.rows(
                "SELECT id, name, role, created_by, created_ms, last_used_ms FROM tokens WHERE tenant = ?1 ORDER BY id",
                &args![tenant],
                |r| {
                    Ok(TokenRecord {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        role: r.get(2)?,
                        created_by: r.get(3)?,
                        created_ms: r.get(4)?,
                        last_used_ms: r.get(5)?,
                    })
                },
            )?)
        })
    }

    /// Revokes `tenant`'s token `id`; false when the tenant has no such token.
    /// The role of `tenant`'s token `id`, if it has one.
    pub fn token_role(&self, tenant: &str, id: i64) -> Result<Option<Role>, ControlError> {
        let role: Option<String> = self.with(|c| {
            Ok(c.first("SELECT role FROM tokens WHERE tenant = ?1 AND id = ?2", &args![tenant, id], |r| r.get(0))?)
        })?;
        Ok(role.and_then(|r| Role::parse(&r)))
    }

    /// Whether `name` was a tenant that was deleted: its data stays under
    /// the name, so the name is not given again.
    pub fn was_deleted(&self, name: &str) -> Result<bool, ControlError> {
        self.with(|c| Ok(c.exists("SELECT 1 FROM deleted_tenants WHERE name = ?1", &args![name])?))
    }

    pub fn revoke_token(&self, tenant: &str, id: i64) -> Result<bool, ControlError> {
        let removed =
            self.with(|c| Ok(c.execute("DELETE FROM tokens WHERE tenant = ?1 AND id = ?2", &args![tenant, id])?))? > 0;
        self.forget_cached(|caller| caller.token_id == id);
        Ok(removed)
    }

    /// Every tenant with its state; not the deployment's own, which holds
    /// its tokens and no data.
    pub fn tenant_records(&self) -> Result<Vec<TenantRecord>, ControlError> {
        self.with(|c| {
            Ok(c.rows(
                "SELECT name, created_ms, disabled_ms, (SELECT COUNT(*) FROM tokens WHERE tokens.tenant = tenants.name)
                 FROM tenants WHERE name != ?1 ORDER BY name",
                &args![crate::control::DEPLOYMENT_TENANT],
                |r| {
                    Ok(TenantRecord {
                        name: r.get(0)?,
                        created_ms: r.get(1)?,
                        disabled_ms: r.get(2)?,
                        tokens: r.get(3)?,
                    })
                },
            )?)
        })
    }

    /// One tenant's record.
    pub fn tenant_record(&self, name: &str) -> Result<Option<TenantRecord>, ControlError> {
        Ok(self.tenant_records()?.into_iter().find(|t| t.name == name))
    }

    /// Disables (`true`) or enables `name`; false when there is no such tenant.
    pub fn set_tenant_disabled(&self, name: &str, disabled: bool) -> Result<bool, ControlError> {
        let at = disabled.then(now_ms);
        let found =
            self.with(|c| Ok(c.execute("UPDATE tenants SET disabled_ms = ?2 WHERE name = ?1", &args![name, at])?))? > 0;
        self.forget_cached(|caller| caller.tenant == name);
        Ok(found)
    }

    /// Deletes `name` and its control records ([`TENANT_RECORDS`]); false
    /// when there is no such tenant.
    pub fn delete_tenant(&self, name: &str) -> Result<bool, ControlError> {
        // A token made for the tenant between the deletion of its tokens and
        // of the tenant (through another node) fails the deletion: try again.
        let mut tries = 0;
        let found = loop {
            tries += 1;
            match self.delete_tenant_once(name) {
                Err(ControlError::Db { source, .. }) if source.is_foreign_key() && tries < 5 => continue,
                other => break other?,
            }
        };
        self.forget_cached(|caller| caller.tenant == name);
        Ok(found)
    }

    fn delete_tenant_once(&self, name: &str) -> Result<bool, ControlError> {
        self.with_tx(|tx| {
            for table in TENANT_RECORDS {
                tx.execute(&format!("DELETE FROM {table} WHERE tenant = ?1"), &args![name])?;
            }
            let found = tx.execute("DELETE FROM tenants WHERE name = ?1", &args![name])? > 0;
            if found {
                tx.execute(
                    "INSERT INTO deleted_tenants (name, deleted_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    &args![name, now_ms()],
                )?;
            }
            Ok(found)
        })
    }
}
