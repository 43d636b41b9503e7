//! Each tenant's notification channels (where messages go) and routes
//! (which anomalies go there), in the control store.

use serde::{Deserialize, Serialize};

use crate::control::{ControlError, ControlStore};
use crate::control_sql::{Db, Row, SqlError, args};
use crate::jobstatus::now_ms;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_channels (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    -- The channel's settings as JSON; secrets in it are environment
    -- variable names or sealed (encrypted) values, never plain.
    spec TEXT NOT NULL,
    dedup_window_ms INTEGER NOT NULL,
    rate_per_minute INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    managed_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS notify_routes (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    channel TEXT NOT NULL,
    -- JSON arrays; an empty one matches everything.
    severities TEXT NOT NULL,
    agents TEXT NOT NULL,
    log_types TEXT NOT NULL,
    labels TEXT NOT NULL,
    min_score REAL NOT NULL,
    managed_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
";

/// Who owns a channel or route: the API, or config/notifications.toml
/// (which is applied again at every start, so the API may not change it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Managed {
    Api,
    Config,
}

impl Managed {
    pub fn as_str(self) -> &'static str {
        match self {
            Managed::Api => "api",
            Managed::Config => "config",
        }
    }

    fn parse(text: &str) -> Managed {
        if text == "config" { Managed::Config } else { Managed::Api }
    }
}

/// A channel as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRecord {
    pub tenant: String,
    pub name: String,
    pub kind: String,
    pub spec: String,
    pub dedup_window_ms: i64,
    pub rate_per_minute: i64,
    pub enabled: bool,
    pub managed_by: Managed,
    pub updated_ms: i64,
}

/// A route: anomalies matching every non-empty list and the minimum score
/// go to `channel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteRecord {
    pub name: String,
    pub channel: String,
    #[serde(default)]
    pub severities: Vec<String>,
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub log_types: Vec<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub min_score: f64,
}

/// What putting a channel or route through the API did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiPut {
    Created,
    Replaced,
    /// The operator's notifications file keeps it.
    ManagedByConfig,
    /// The tenant has as many as it may.
    OverLimit,
    /// The route's channel does not exist (any more).
    NoChannel,
}

/// Why a channel could not be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelDeletion {
    Deleted,
    NotFound,
    /// Routes still send to it: delete or move them first.
    InUse(Vec<String>),
}

fn list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn json(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn channel_row(r: &Row) -> Result<ChannelRecord, SqlError> {
    Ok(ChannelRecord {
        tenant: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        spec: r.get(3)?,
        dedup_window_ms: r.get(4)?,
        rate_per_minute: r.get(5)?,
        enabled: r.get(6)?,
        managed_by: Managed::parse(&r.get::<String>(7)?),
        updated_ms: r.get(8)?,
    })
}

pub(crate) fn route_row(r: &Row) -> Result<(RouteRecord, Managed), SqlError> {
    Ok((
        RouteRecord {
            name: r.get(0)?,
            channel: r.get(1)?,
            severities: list(&r.get::<String>(2)?),
            agents: list(&r.get::<String>(3)?),
            log_types: list(&r.get::<String>(4)?),
            labels: list(&r.get::<String>(5)?),
            min_score: r.get(6)?,
        },
        Managed::parse(&r.get::<String>(7)?),
    ))
}

pub(crate) const CHANNEL_COLUMNS: &str =
    "tenant, name, kind, spec, dedup_window_ms, rate_per_minute, enabled, managed_by, updated_ms";
pub(crate) const ROUTE_COLUMNS: &str = "name, channel, severities, agents, log_types, labels, min_score, managed_by";

/// Creates or replaces a channel; true when it is new. The insert comes
/// first and alone, so of two nodes making the same channel at once one is
/// told it is new.
fn put_channel(c: &mut Db<'_>, channel: &ChannelRecord) -> Result<bool, SqlError> {
    let values = args![
        channel.tenant,
        channel.name,
        channel.kind,
        channel.spec,
        channel.dedup_window_ms,
        channel.rate_per_minute,
        channel.enabled,
        channel.managed_by.as_str(),
        now_ms(),
    ];
    let created = c.execute(
        &format!(
            "INSERT INTO notify_channels ({CHANNEL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (tenant, name) DO NOTHING"
        ),
        &values,
    )?;
    if created == 0 {
        c.execute(
            "UPDATE notify_channels SET kind = ?3, spec = ?4, dedup_window_ms = ?5, rate_per_minute = ?6, enabled = ?7,
               managed_by = ?8, updated_ms = ?9
             WHERE tenant = ?1 AND name = ?2",
            &values,
        )?;
    }
    Ok(created == 1)
}

fn put_route(c: &mut Db<'_>, tenant: &str, route: &RouteRecord, managed: Managed) -> Result<bool, SqlError> {
    let existed =
        c.exists("SELECT 1 FROM notify_routes WHERE tenant = ?1 AND name = ?2", &args![tenant, route.name])?;
    c.execute(
        "INSERT INTO notify_routes (tenant, name, channel, severities, agents, log_types, labels, min_score, managed_by, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (tenant, name) DO UPDATE SET channel = excluded.channel, severities = excluded.severities,
           agents = excluded.agents, log_types = excluded.log_types, labels = excluded.labels,
           min_score = excluded.min_score, managed_by = excluded.managed_by, updated_ms = excluded.updated_ms",
        &args![
            tenant,
            route.name,
            route.channel,
            json(&route.severities),
            json(&route.agents),
            json(&route.log_types),
            json(&route.labels),
            route.min_score,
            managed.as_str(),
            now_ms(),
        ],
    )?;
    Ok(!existed)
}

/// Takes the write lock of a tenant's row until the transaction ends, so
/// the tenant's channel and route writes are counted one at a time, on
/// whichever node they are made.
fn lock_tenant(c: &mut Db<'_>, tenant: &str) -> Result<u64, SqlError> {
    c.execute("UPDATE tenants SET created_ms = created_ms WHERE name = ?1", &args![tenant])
}

/// Whether a put of `name` in `table` may go ahead for `tenant`: not kept by
/// the file, and within `max` when it is new.
fn api_may_put(c: &mut Db<'_>, table: &str, tenant: &str, name: &str, max: usize) -> Result<Option<ApiPut>, SqlError> {
    let managed: Option<String> = c.first(
        &format!("SELECT managed_by FROM {table} WHERE tenant = ?1 AND name = ?2"),
        &args![tenant, name],
        |r| r.get(0),
    )?;
    match managed.as_deref() {
        Some("config") => Ok(Some(ApiPut::ManagedByConfig)),
        Some(_) => Ok(None),
        None => {
            let count: i64 =
                c.one(&format!("SELECT COUNT(*) FROM {table} WHERE tenant = ?1"), &args![tenant], |r| r.get(0))?;
            Ok((usize::try_from(count).unwrap_or(usize::MAX) >= max).then_some(ApiPut::OverLimit))
        }
    }
}

/// Takes the write lock of a channel's row (a row lock on PostgreSQL, the
/// file's on SQLite) until the transaction ends; the rows it found.
fn lock_channel(c: &mut Db<'_>, tenant: &str, name: &str) -> Result<u64, SqlError> {
    c.execute(
        "UPDATE notify_channels SET updated_ms = updated_ms WHERE tenant = ?1 AND name = ?2",
        &args![tenant, name],
    )
}

impl ControlStore {
    /// `tenant`'s channels, by name.
    pub fn notify_channels(&self, tenant: &str) -> Result<Vec<ChannelRecord>, ControlError> {
        self.with(|c| {
            let sql = format!("SELECT {CHANNEL_COLUMNS} FROM notify_channels WHERE tenant = ?1 ORDER BY name");
            Ok(c.rows(&sql, &args![tenant], channel_row)?)
        })
    }

    /// Every tenant's enabled channels, as (tenant, name): what a delivery
    /// worker takes turns over.
    pub fn enabled_notify_channels(&self) -> Result<Vec<(String, String)>, ControlError> {
        self.with(|c| {
            let sql = "SELECT tenant, name FROM notify_channels WHERE enabled ORDER BY tenant, name";
            Ok(c.rows(sql, &[], |r| Ok((r.get(0)?, r.get(1)?)))?)
        })
    }

    /// Every channel there is, enabled or not, as (tenant, name).
    pub fn all_notify_channels(&self) -> Result<Vec<(String, String)>, ControlError> {
        self.with(|c| {
            Ok(c.rows("SELECT tenant, name FROM notify_channels ORDER BY tenant, name", &[], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?)
        })
    }

    /// One of `tenant`'s channels.
    pub fn notify_channel(&self, tenant: &str, name: &str) -> Result<Option<ChannelRecord>, ControlError> {
        self.with(|c| {
            let sql = format!("SELECT {CHANNEL_COLUMNS} FROM notify_channels WHERE tenant = ?1 AND name = ?2");
            Ok(c.first(&sql, &args![tenant, name], channel_row)?)
        })
    }

    /// Creates or replaces a channel; true when it is new.
    pub fn put_notify_channel(&self, channel: &ChannelRecord) -> Result<bool, ControlError> {
        self.with(|c| Ok(put_channel(c, channel)?))
    }

    /// Creates or replaces a channel made through the API, unless the file
    /// keeps it or the tenant has `max` already. Counted under the tenant's
    /// row lock, so nodes writing at once cannot pass the limit together.
    pub fn put_api_channel(&self, channel: &ChannelRecord, max: usize) -> Result<ApiPut, ControlError> {
        self.with_tx(|tx| {
            lock_tenant(tx, &channel.tenant)?;
            if let Some(refused) = api_may_put(tx, "notify_channels", &channel.tenant, &channel.name, max)? {
                return Ok(refused);
            }
            let created = put_channel(tx, &ChannelRecord { managed_by: Managed::Api, ..channel.clone() })?;
            Ok(if created { ApiPut::Created } else { ApiPut::Replaced })
        })
    }

    /// Creates or replaces a route made through the API to a channel that
    /// exists, unless the file keeps it or the tenant has `max` already.
    /// Under the tenant's row lock (for the count) and the channel's (as a
    /// deletion of the channel takes it), so a route never outlives its
    /// channel and the limit holds, whichever nodes ask.
    pub fn put_api_route(&self, tenant: &str, route: &RouteRecord, max: usize) -> Result<ApiPut, ControlError> {
        self.with_tx(|tx| {
            lock_tenant(tx, tenant)?;
            if lock_channel(tx, tenant, &route.channel)? == 0 {
                return Ok(ApiPut::NoChannel);
            }
            if let Some(refused) = api_may_put(tx, "notify_routes", tenant, &route.name, max)? {
                return Ok(refused);
            }
            let created = put_route(tx, tenant, route, Managed::Api)?;
            Ok(if created { ApiPut::Created } else { ApiPut::Replaced })
        })
    }

    /// Deletes a channel no route sends to.
    pub fn delete_notify_channel(&self, tenant: &str, name: &str) -> Result<ChannelDeletion, ControlError> {
        self.with_tx(|tx| {
            lock_channel(tx, tenant, name)?;
            let users: Vec<String> = tx.rows(
                "SELECT name FROM notify_routes WHERE tenant = ?1 AND channel = ?2 ORDER BY name",
                &args![tenant, name],
                |r| r.get(0),
            )?;
            if !users.is_empty() {
                return Ok(ChannelDeletion::InUse(users));
            }
            let deleted =
                tx.execute("DELETE FROM notify_channels WHERE tenant = ?1 AND name = ?2", &args![tenant, name])?;
            Ok(if deleted == 0 { ChannelDeletion::NotFound } else { ChannelDeletion::Deleted })
        })
    }

    /// `tenant`'s routes, by name, with who manages each.
    pub fn notify_routes(&self, tenant: &str) -> Result<Vec<(RouteRecord, Managed)>, ControlError> {
        self.with(|c| {
            let sql = format!("SELECT {ROUTE_COLUMNS} FROM notify_routes WHERE tenant = ?1 ORDER BY name");
            Ok(c.rows(&sql, &args![tenant], route_row)?)
        })
    }

    /// Creates or replaces a route; true when it is new.
    pub fn put_notify_route(&self, tenant: &str, route: &RouteRecord, managed: Managed) -> Result<bool, ControlError> {
        self.with(|c| Ok(put_route(c, tenant, route, managed)?))
    }

    /// Deletes a route; false when there was none.
    pub fn delete_notify_route(&self, tenant: &str, name: &str) -> Result<bool, ControlError> {
        self.with(|c| {
            Ok(c.execute("DELETE FROM notify_routes WHERE tenant = ?1 AND name = ?2", &args![tenant, name])? > 0)
        })
    }

    /// Makes the config-managed channels and routes exactly `channels`
    /// and `routes` (by tenant), in one transaction: the file is their
    /// truth, so one removed from it goes. Channels and routes made through
    /// the API are left alone, except one of the same name, which the file
    /// takes over.
    pub fn seed_notifications(
        &self,
        channels: &[ChannelRecord],
        routes: &[(String, RouteRecord)],
    ) -> Result<(), ControlError> {
        self.with_tx(|tx| {
            tx.execute("DELETE FROM notify_routes WHERE managed_by = 'config'", &[])?;
            tx.execute("DELETE FROM notify_channels WHERE managed_by = 'config'", &[])?;
            for channel in channels {
                put_channel(tx, &ChannelRecord { managed_by: Managed::Config, ..channel.clone() })?;
            }
            for (tenant, route) in routes {
                put_route(tx, tenant, route, Managed::Config)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(tenant: &str, name: &str) -> ChannelRecord {
        ChannelRecord {
            tenant: tenant.into(),
            name: name.into(),
            kind: "log".into(),
            spec: "{\"kind\":\"log\"}".into(),
            dedup_window_ms: 600_000,
            rate_per_minute: 60,
            enabled: true,
            managed_by: Managed::Api,
            updated_ms: 0,
        }
    }

    fn route(name: &str, channel: &str) -> RouteRecord {
        RouteRecord {
            name: name.into(),
            channel: channel.into(),
            severities: vec!["critical".into()],
            agents: vec![],
            log_types: vec![],
            labels: vec![],
            min_score: 0.5,
        }
    }

    #[test]
    fn channels_and_routes_are_kept_per_tenant_and_a_used_channel_stays() {
        let dir = tempfile::tempdir().unwrap();
        let control = ControlStore::open(&dir.path().join("control.db")).unwrap();
        assert!(control.put_notify_channel(&channel("a", "ops")).unwrap());
        assert!(!control.put_notify_channel(&channel("a", "ops")).unwrap());
        assert!(control.put_notify_route("a", &route("crit", "ops"), Managed::Api).unwrap());
        assert!(control.notify_channels("b").unwrap().is_empty());
        assert!(control.notify_routes("b").unwrap().is_empty());
        assert_eq!(control.notify_routes("a").unwrap()[0].0, route("crit", "ops"));
        assert_eq!(control.delete_notify_channel("a", "ops").unwrap(), ChannelDeletion::InUse(vec!["crit".into()]));
        assert_eq!(control.delete_notify_channel("b", "ops").unwrap(), ChannelDeletion::NotFound);
        assert!(control.delete_notify_route("a", "crit").unwrap());
        assert_eq!(control.delete_notify_channel("a", "ops").unwrap(), ChannelDeletion::Deleted);
    }

    #[test]
    fn seeding_replaces_what_the_file_managed_and_keeps_the_apis() {
        let dir = tempfile::tempdir().unwrap();
        let control = ControlStore::open(&dir.path().join("control.db")).unwrap();
        control.put_notify_channel(&channel("a", "mine")).unwrap();
        control.seed_notifications(&[channel("a", "old")], &[("a".into(), route("r", "old"))]).unwrap();
        control.seed_notifications(&[channel("a", "new")], &[]).unwrap();
        let names: Vec<_> = control.notify_channels("a").unwrap().into_iter().map(|c| (c.name, c.managed_by)).collect();
        assert_eq!(names, vec![("mine".to_string(), Managed::Api), ("new".to_string(), Managed::Config)]);
        assert!(control.notify_routes("a").unwrap().is_empty());
    }
}
