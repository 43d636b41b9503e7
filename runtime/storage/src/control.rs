//! The control plane's own records: tenants, API tokens (only their
//! sha256 is kept) with a role each, and the audit trail of changes made
//! through the API. They live in SQLite under `data_dir`, or in the
//! PostgreSQL every node shares (`control_store = "postgres"`); export
//! records stay in the node's file either way, beside the files they
//! describe.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::control_sql::{Db, PgControl, SqlError, args};
use crate::jobstatus::now_ms;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants (name),
    role TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    tenant TEXT NOT NULL REFERENCES tenants (name),
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS agent_flags (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS settings (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE IF NOT EXISTS grants (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    manifest TEXT NOT NULL,
    approved_ms INTEGER,
    approved_by INTEGER,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS budgets (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE IF NOT EXISTS agent_faults (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    agent TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_faults_by_agent ON agent_faults (tenant, agent, at_ms);
CREATE TABLE IF NOT EXISTS agent_quarantine (
    tenant TEXT NOT NULL,
    agent TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    level INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (tenant, agent)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    token_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit (tenant, id);
";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read its tenant's resources.
    ReadOnly,
    /// Read and change its tenant's resources.
    TenantAdmin,
    /// All of that, plus making admin tokens of its tenant.
    Admin,
    /// The deployment's own administrator: tenants, budgets, the models of
    /// the bundled agents, metrics. Its tokens belong to
    /// [`DEPLOYMENT_TENANT`], which holds no data, so it acts on no
    /// tenant's agents, logs or anomalies.
    DeploymentAdmin,
}

/// The tenant that holds the deployment's own tokens (the deployment
/// admin's, and read-only ones for a metrics scraper). Its name cannot be
/// given to a tenant: tenant names made through the API and the CLI do
/// not start with '_'.
pub const DEPLOYMENT_TENANT: &str = "_deployment";

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::ReadOnly => "read_only",
            Role::TenantAdmin => "tenant_admin",
            Role::Admin => "admin",
            Role::DeploymentAdmin => "deployment_admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read_only" => Some(Role::ReadOnly),
            "tenant_admin" => Some(Role::TenantAdmin),
            "admin" => Some(Role::Admin),
            "deployment_admin" => Some(Role::DeploymentAdmin),
            _ => None,
        }
    }
}

/// Who is calling, as their token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: i64,
    pub tenant: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control store {path}: {source}")]
    Db { path: String, source: SqlError },
    #[error("control_store = \"postgres\" needs database_url (or MCP_DATABASE_URL)")]
    NoDatabase,
    #[error("the control store to copy into already has tenants; records are copied into an empty store only")]
    NotEmpty,
    #[error("tenant name '{0}' must be 1 to 64 of a-z, 0-9, '-' and '_', not starting with '_'")]
    BadTenant(String),
    #[error("control store lock poisoned")]
    Poisoned,
    #[error("a tenant keeps at most {limit} settings; delete some (set them to null) first")]
    TooManySettings { limit: usize },
    #[error(
        "tenant '{0}' was deleted and its logs, anomalies and audit trail are kept under its name; choose another name"
    )]
    DeletedTenant(String),
}

impl From<SqlError> for ControlError {
    /// A statement's failure inside the store's work; the store names
    /// itself when the work returns ([`ControlError::named`]).
    fn from(source: SqlError) -> Self {
        ControlError::Db { path: String::new(), source }
    }
}

impl From<rusqlite::Error> for ControlError {
    fn from(source: rusqlite::Error) -> Self {
        SqlError::Sqlite(source).into()
    }
}

impl ControlError {
    /// Whether the store could not be reached (PostgreSQL down, its
    /// connections gone): worth trying again later, not a fault.
    pub fn unavailable(&self) -> bool {
        match self {
            ControlError::Db { source: SqlError::Connect(_), .. } => true,
            ControlError::Db { source: SqlError::Postgres(error), .. } => crate::source::postgres::transient(error),
            _ => false,
        }
    }

    pub(crate) fn named(self, store: &str) -> Self {
        match self {
            ControlError::Db { path, source } if path.is_empty() => ControlError::Db { path: store.into(), source },
            other => other,
        }
    }
}

/// One entry of a tenant's audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at_ms: i64,
    pub token_id: i64,
    pub action: String,
    pub detail: String,
}

#[derive(Debug)]
pub struct ControlStore {
    home: Home,
    path: String,
    /// Tokens seen lately, by hash: every request authenticates, and a
    /// query under the connection's lock costs more than the rest of a
    /// small request. Entries live for `TOKEN_CACHE`.
    recent: std::sync::RwLock<std::collections::HashMap<String, (Caller, std::time::Instant)>>,
}

/// Where the records are.
#[derive(Debug)]
enum Home {
    Embedded(Mutex<Connection>),
    /// On PostgreSQL, with this node's file for its export records.
    Shared {
        pg: Arc<PgControl>,
        local: Mutex<Connection>,
        local_path: String,
    },
}

/// How long an authenticated token is trusted without asking the store
/// again (so a token removed from the store stops working within this).
pub const TOKEN_CACHE: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn valid_tenant(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether `name` may be given to a new tenant: a valid name, and not the
/// deployment's own (`_`-prefixed names are kept for it).
pub fn valid_new_tenant(name: &str) -> bool {
    valid_tenant(name) && !name.starts_with('_')
}

impl ControlStore {
    /// The store in this node's SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, ControlError> {
        let conn = open_file(path)?;
        Ok(ControlStore {
            home: Home::Embedded(Mutex::new(conn)),
            path: path.display().to_string(),
            recent: Default::default(),
        })
    }

    /// The store on PostgreSQL, shared by every node, with this node's
    /// export records in the file at `local`.
    pub fn open_shared(pg: Arc<PgControl>, local: &Path) -> Result<Self, ControlError> {
        let conn = open_file(local)?;
        Ok(ControlStore {
            path: pg.label.clone(),
            home: Home::Shared { pg, local: Mutex::new(conn), local_path: local.display().to_string() },
            recent: Default::default(),
        })
    }

    /// Whether the records are on PostgreSQL, shared by every node.
    pub fn is_shared(&self) -> bool {
        matches!(self.home, Home::Shared { .. })
    }

    /// Runs `work` on the store's connection.
    pub(crate) fn with<T: Send>(
        &self,
        work: impl FnOnce(&mut Db<'_>) -> Result<T, ControlError> + Send,
    ) -> Result<T, ControlError> {
        self.run(false, work)
    }

    /// Runs `work` in one transaction: all of it is kept, or none.
    pub(crate) fn with_tx<T: Send>(
        &self,
        work: impl FnOnce(&mut Db<'_>) -> Result<T, ControlError> + Send,
    ) -> Result<T, ControlError> {
        self.run(true, work)
    }

    fn run<T: Send>(
        &self,
        atomic: bool,
        work: impl FnOnce(&mut Db<'_>) -> Result<T, ControlError> + Send,
    ) -> Result<T, ControlError> {
        match &self.home {
            Home::Embedded(conn) => {
                let conn = conn.lock().map_err(|_| ControlError::Poisoned)?;
                let outcome = if atomic {
                    // Dropped uncommitted when `work` fails: rolled back.
                    conn.unchecked_transaction().map_err(ControlError::from).and_then(|tx| {
                        let done = work(&mut Db::Sqlite(&tx))?;
                        tx.commit()?;
                        Ok(done)
                    })
                } else {
                    work(&mut Db::Sqlite(&conn))
                };
                outcome.map_err(|e| e.named(&self.path))
            }
            Home::Shared { pg, .. } => pg.run(atomic, work),
        }
    }

    /// Runs `work` on this node's own file: export records, which stay
    /// with the node that writes the export.
    pub(crate) fn with_local<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, ControlError> {
        let (conn, path) = match &self.home {
            Home::Embedded(conn) => (conn, &self.path),
            Home::Shared { local, local_path, .. } => (local, local_path),
        };
        let conn = conn.lock().map_err(|_| ControlError::Poisoned)?;
        work(&conn).map_err(|source| ControlError::Db { path: path.clone(), source: source.into() })
    }

    /// What reads routes for commits, on a connection of its own.
    pub fn route_book(&self) -> Result<crate::notify::RouteBook, ControlError> {
        match &self.home {
            Home::Embedded(_) => crate::notify::RouteBook::open(Path::new(&self.path)),
            Home::Shared { pg, .. } => Ok(crate::notify::RouteBook::shared(pg.clone())),
        }
    }

    /// Whether the store answers: one cheap statement.
    pub fn ping(&self) -> Result<(), ControlError> {
        self.with(|c| Ok(c.one("SELECT 1", &[], |_| Ok(()))?))
    }

    /// The caller of `token` when it was authenticated within
    /// [`TOKEN_CACHE`]: no lock held across a query, so async code may ask.
    pub fn recently_authenticated(&self, token: &str) -> Option<Caller> {
        let recent = self.recent.read().ok()?;
        let (caller, at) = recent.get(&hash(token))?;
        (at.elapsed() < TOKEN_CACHE).then(|| caller.clone())
    }

    /// Creates `tenant` if it does not exist.
    pub fn ensure_tenant(&self, tenant: &str) -> Result<(), ControlError> {
        self.create_tenant(tenant).map(|_| ())
    }

    /// Creates `tenant`; false when it exists already. One statement, so
    /// of two nodes creating the same tenant at once one is told it exists.
    pub fn create_tenant(&self, tenant: &str) -> Result<bool, ControlError> {
        if !valid_tenant(tenant) {
            return Err(ControlError::BadTenant(tenant.into()));
        }
        if self.was_deleted(tenant)? {
            return Err(ControlError::DeletedTenant(tenant.into()));
        }
        self.with(|c| {
            let added = c.execute(
                "INSERT INTO tenants (name, created_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                &args![tenant, now_ms()],
            )?;
            Ok(added == 1)
        })
    }

    pub fn tenants(&self) -> Result<Vec<String>, ControlError> {
        self.with(|c| Ok(c.rows("SELECT name FROM tenants ORDER BY name", &[], |r| r.get(0))?))
    }

    /// Creates a token for `tenant` (and the tenant, if new) and returns it:
    /// the only time it is ever shown.
    pub fn create_token(&self, tenant: &str, role: Role) -> Result<String, ControlError> {
        self.ensure_tenant(tenant)?;
        self.create_named_token(tenant, role, "", None).map(|(_, token)| token)
    }

    pub fn token_count(&self) -> Result<i64, ControlError> {
        self.with(|c| Ok(c.one("SELECT COUNT(*) FROM tokens", &[], |r| r.get(0))?))
    }

    /// The caller a bearer token stands for, if it is one of ours.
    pub fn authenticate(&self, token: &str) -> Result<Option<Caller>, ControlError> {
        if let Some(caller) = self.recently_authenticated(token) {
            return Ok(Some(caller));
        }
        self.authenticate_fresh(token)
    }

    /// The caller a token stands for as the store says now, not as this
    /// process remembers it: what a change must be made with, so a token
    /// revoked (or a tenant disabled or deleted) through another node
    /// changes nothing, even within [`TOKEN_CACHE`].
    pub fn authenticate_fresh(&self, token: &str) -> Result<Option<Caller>, ControlError> {
        let hashed = hash(token);
        // A token of a disabled or deleted tenant is no token; each lookup
        // also records when the token was last used.
        let found: Option<(i64, String, String)> = self.with(|c| {
            let found = c.first(
                "SELECT tokens.id, tokens.tenant, tokens.role FROM tokens JOIN tenants ON tenants.name = tokens.tenant
                 WHERE tokens.sha256 = ?1 AND tenants.disabled_ms IS NULL",
                &args![hashed],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            if let Some((id, _, _)) = &found {
                c.execute("UPDATE tokens SET last_used_ms = ?2 WHERE id = ?1", &args![id, now_ms()])?;
            }
            Ok(found)
        })?;
        let caller =
            found.and_then(|(token_id, tenant, role)| Role::parse(&role).map(|role| Caller { token_id, tenant, role }));
        if let Ok(mut recent) = self.recent.write() {
            match &caller {
                // A token the store no longer holds is forgotten here too.
                None => {
                    recent.remove(&hashed);
                }
                Some(caller) => {
                    // Unknown tokens are not remembered: a flood of forged ones must not grow the map.
                    if recent.len() > 10_000 {
                        recent.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE);
                    }
                    recent.insert(hashed, (caller.clone(), std::time::Instant::now()));
                }
            }
        }
        Ok(caller)
    }

    /// Drops remembered tokens whose caller matches, so a revocation or a
    /// disabled tenant takes effect in this process at once.
    pub(crate) fn forget_cached(&self, matches: impl Fn(&Caller) -> bool) {
        if let Ok(mut recent) = self.recent.write() {
            recent.retain(|_, (caller, _)| !matches(caller));
        }
    }

    /// Agents uploaded by tenants: (tenant, name, sha256).
    pub fn uploads(&self) -> Result<Vec<(String, String, String)>, ControlError> {
        self.with(|c| {
            Ok(c.rows("SELECT tenant, name, sha256 FROM uploads ORDER BY tenant, name", &[], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?)
        })
    }

    pub fn record_upload(&self, tenant: &str, name: &str, sha256: &str) -> Result<(), ControlError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO uploads (tenant, name, sha256, uploaded_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, name) DO UPDATE SET sha256 = excluded.sha256, uploaded_ms = excluded.uploaded_ms",
                &args![tenant, name, sha256, now_ms()],
            )?;
            Ok(())
        })
    }

    pub fn forget_upload(&self, tenant: &str, name: &str) -> Result<(), ControlError> {
        self.with_tx(|c| {
            for table in ["uploads", "grants", "agent_flags"] {
                c.execute(&format!("DELETE FROM {table} WHERE tenant = ?1 AND name = ?2"), &args![tenant, name])?;
            }
            Ok(())
        })
    }

    /// Whether `tenant` has `name` enabled (agents are, until disabled).
    pub fn agent_enabled(&self, tenant: &str, name: &str) -> Result<bool, ControlError> {
        let flag: Option<bool> = self.with(|c| {
            Ok(c.first("SELECT enabled FROM agent_flags WHERE tenant = ?1 AND name = ?2", &args![tenant, name], |r| {
                r.get(0)
            })?)
        })?;
        Ok(flag.unwrap_or(true))
    }

    pub fn set_agent_enabled(&self, tenant: &str, name: &str, enabled: bool) -> Result<(), ControlError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO agent_flags (tenant, name, enabled) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, name) DO UPDATE SET enabled = excluded.enabled",
                &args![tenant, name, enabled],
            )?;
            Ok(())
        })
    }

    /// The settings `tenant` has changed through the API.
    pub fn settings(&self, tenant: &str) -> Result<Vec<(String, String)>, ControlError> {
        self.with(|c| {
            Ok(c.rows("SELECT key, value FROM settings WHERE tenant = ?1 ORDER BY key", &args![tenant], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?)
        })
    }

    pub fn set_setting(&self, tenant: &str, key: &str, value: &str) -> Result<(), ControlError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO settings (tenant, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
                &args![tenant, key, value],
            )?;
            Ok(())
        })
    }

    /// Applies `changes` to `caller`'s tenant (`None` deletes a setting)
    /// and records them as one audit entry, in one transaction; refused
    /// whole when the tenant would keep more than `max_kept` settings.
    pub fn change_settings(
        &self,
        caller: &Caller,
        changes: &[(String, Option<String>)],
        max_kept: usize,
    ) -> Result<(), ControlError> {
        self.with_tx(|tx| {
            for (key, value) in changes {
                match value {
                    Some(value) => tx.execute(
                        "INSERT INTO settings (tenant, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
                        &args![caller.tenant, key, value],
                    ),
                    None => {
                        tx.execute("DELETE FROM settings WHERE tenant = ?1 AND key = ?2", &args![caller.tenant, key])
                    }
                }?;
            }
            let kept: i64 =
                tx.one("SELECT COUNT(*) FROM settings WHERE tenant = ?1", &args![caller.tenant], |r| r.get(0))?;
            if usize::try_from(kept).unwrap_or(usize::MAX) > max_kept {
                return Err(ControlError::TooManySettings { limit: max_kept });
            }
            // One entry per change request, values cut short: a request of many
            // keys must not flush the trail.
            let shown: serde_json::Map<String, serde_json::Value> = changes
                .iter()
                .map(|(key, value)| {
                    let value = value.as_ref().map_or(serde_json::Value::Null, |v| {
                        let mut end = v.len().min(256);
                        while !v.is_char_boundary(end) {
                            end -= 1;
                        }
                        serde_json::Value::String(v[..end].to_string())
                    });
                    (key.clone(), value)
                })
                .collect();
            tx.execute(
                "INSERT INTO audit (at_ms, tenant, token_id, action, detail) VALUES (?1, ?2, ?3, 'config.change', ?4)",
                &args![now_ms(), caller.tenant, caller.token_id, serde_json::Value::Object(shown).to_string()],
            )?;
            Ok(())
        })
    }

    /// Records a change that affects every tenant (a model of the bundled
    /// agents) in every tenant's trail.
    pub fn audit_everywhere(&self, caller: &Caller, action: &str, detail: &str) -> Result<(), ControlError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO audit (at_ms, tenant, token_id, action, detail)
                 SELECT ?1, name, ?2, ?3, ?4 FROM tenants",
                &args![now_ms(), caller.token_id, action, detail],
            )?;
            Ok(())
        })
    }

    /// Records a change made through the API.
    pub fn audit(&self, caller: &Caller, action: &str, detail: &str) -> Result<(), ControlError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO audit (at_ms, tenant, token_id, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                &args![now_ms(), caller.tenant, caller.token_id, action, detail],
            )?;
            Ok(())
        })
    }

    /// The audit trail of `tenant`, newest first, from before entry
    /// `before` when given.
    pub fn audit_trail(&self, tenant: &str, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>, ControlError> {
        self.with(|c| {
            Ok(c.rows(
                "SELECT id, at_ms, token_id, action, detail FROM audit WHERE tenant = ?1 AND id < ?2
                 ORDER BY id DESC LIMIT ?3",
                &args![tenant, before.unwrap_or(i64::MAX), limit],
                |r| {
                    Ok(AuditRecord {
                        id: r.get(0)?,
                        at_ms: r.get(1)?,
                        token_id: r.get(2)?,
                        action: r.get(3)?,
                        detail: r.get(4)?,
                    })
                },
            )?)
        })
    }
}

/// Opens (creating and migrating) a control store's SQLite file.
fn open_file(path: &Path) -> Result<Connection, ControlError> {
    let name = path.display().to_string();
    let wrap = |source: rusqlite::Error| ControlError::Db { path: name.clone(), source: source.into() };
    let mut conn = crate::sqlite_file::open_wal(path).map_err(wrap)?;
    conn.execute_batch("PRAGMA foreign_keys = ON;").map_err(wrap)?;
    // One process at a time creates and migrates the tables: two that
    // both saw a column missing would both add it, and one would fail.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(wrap)?;
    tx.execute_batch(SCHEMA).map_err(wrap)?;
    tx.execute_batch(crate::exports::SCHEMA).map_err(wrap)?;
    tx.execute_batch(crate::notify::channels::SCHEMA).map_err(wrap)?;
    crate::tenancy::migrate(&tx).map_err(wrap)?;
    tx.commit().map_err(wrap)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes started together on a fresh `data_dir` (two `mcp worker`s)
    /// each create and migrate the stores; none may fail for finding a
    /// column another has just added.
    #[test]
    fn stores_opened_at_once_on_a_fresh_folder_all_open() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let opened: Vec<Result<(), String>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..6)
                    .map(|n| {
                        let dir = dir.path();
                        scope.spawn(move || -> Result<(), String> {
                            ControlStore::open(&dir.join("control.db")).map_err(|e| e.to_string())?;
                            crate::store::AnomalyStore::open(&dir.join("anomalies.db")).map_err(|e| e.to_string())?;
                            let schemas =
                                std::sync::Arc::new(crate::schema::SchemaFiles::new(&dir.join(format!("s{n}"))));
                            crate::source::SqliteLogSource::open(&dir.join("logs.db"), schemas)
                                .map_err(|e| e.to_string())?;
                            Ok(())
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("panicked".into()))).collect()
            });
            let failed: Vec<_> = opened.into_iter().filter_map(Result::err).collect();
            assert!(failed.is_empty(), "{failed:?}");
        }
    }
}
