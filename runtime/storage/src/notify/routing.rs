//! Which channels an anomaly goes to: the tenant's routes, read from the
//! control store at each commit so a change applies to the next batch of
//! every run, in this process or another, without a restart.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mcp_columns::Anomaly;
use rusqlite::Connection;

use super::channels::{ROUTE_COLUMNS, RouteRecord, route_row};
use crate::control::ControlError;
use crate::control_sql::{Db, PgControl, args};
use crate::store::StoreError;

/// What the outbox needs of a channel an anomaly is routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelPolicy {
    /// Anomalies with the same agent, source and label within this long
    /// of the first are folded into one notification; 0 folds none.
    pub dedup_window_ms: i64,
}

/// A tenant's routes to its enabled channels, as of one read.
#[derive(Debug, Clone, Default)]
pub struct RouteSet {
    routes: Vec<RouteRecord>,
    channels: BTreeMap<String, ChannelPolicy>,
}

fn admits(allowed: &[String], value: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a == value)
}

impl RouteSet {
    pub fn new(routes: Vec<RouteRecord>, channels: BTreeMap<String, ChannelPolicy>) -> Self {
        RouteSet { routes, channels }
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The channels `anomaly` goes to, each once however many routes
    /// match, in name order.
    pub fn channels_for(&self, anomaly: &Anomaly) -> Vec<(&str, ChannelPolicy)> {
        let mut found: BTreeMap<&str, ChannelPolicy> = BTreeMap::new();
        for route in &self.routes {
            let Some(policy) = self.channels.get(&route.channel) else { continue };
            if admits(&route.severities, anomaly.severity.name())
                && admits(&route.agents, &anomaly.agent)
                && admits(&route.log_types, &anomaly.log_type)
                && admits(&route.labels, &anomaly.label)
                && f64::from(anomaly.score) >= route.min_score
            {
                found.insert(&route.channel, *policy);
            }
        }
        found.into_iter().collect()
    }
}

/// Reads routes from the control store on a connection of its own, so a
/// run's commit never waits on the API's lock of the control store.
#[derive(Debug)]
pub struct RouteBook {
    home: Home,
}

#[derive(Debug)]
enum Home {
    Embedded { conn: Mutex<Connection>, path: String },
    Shared(Arc<PgControl>),
}

impl RouteBook {
    /// Routes from the control store at `control_db` (created by
    /// `ControlStore::open`).
    pub fn open(control_db: &Path) -> Result<Self, ControlError> {
        let path = control_db.display().to_string();
        let wrap = |source: rusqlite::Error| ControlError::Db { path: path.clone(), source: source.into() };
        let conn = Connection::open(control_db).map_err(wrap)?;
        conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;").map_err(wrap)?;
        Ok(RouteBook { home: Home::Embedded { conn: Mutex::new(conn), path } })
    }

    /// Routes from the control store on PostgreSQL.
    pub(crate) fn shared(pg: Arc<PgControl>) -> Self {
        RouteBook { home: Home::Shared(pg) }
    }

    /// `tenant`'s routes to its enabled channels, as they are now.
    pub fn routes(&self, tenant: &str) -> Result<RouteSet, StoreError> {
        let read = |c: &mut Db<'_>| -> Result<RouteSet, ControlError> {
            let channels: BTreeMap<String, ChannelPolicy> = c
                .rows(
                    "SELECT name, dedup_window_ms FROM notify_channels WHERE tenant = ?1 AND enabled",
                    &args![tenant],
                    |r| Ok((r.get(0)?, ChannelPolicy { dedup_window_ms: r.get(1)? })),
                )?
                .into_iter()
                .collect();
            if channels.is_empty() {
                return Ok(RouteSet::default());
            }
            let sql = format!("SELECT {ROUTE_COLUMNS} FROM notify_routes WHERE tenant = ?1");
            let routes = c.rows(&sql, &args![tenant], route_row)?.into_iter().map(|(route, _)| route).collect();
            Ok(RouteSet::new(routes, channels))
        };
        let (read, path) = match &self.home {
            Home::Embedded { conn, path } => {
                // A panic elsewhere while holding the lock leaves the
                // connection as good as before: it only ever reads.
                let conn = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                (read(&mut Db::Sqlite(&conn)), path.as_str())
            }
            Home::Shared(pg) => (pg.run(false, read), pg.label.as_str()),
        };
        // The commit that asked fails with the route lookup's cause.
        read.map_err(|e| StoreError {
            path: path.to_string(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_columns::Severity;

    fn anomaly(severity: Severity, agent: &str, label: &str, score: f32) -> Anomaly {
        Anomaly {
            agent: agent.into(),
            log_id: 1,
            log_type: "dns".into(),
            source: "10.0.0.1".into(),
            log_timestamp_ms: 0,
            score,
            label: label.into(),
            severity,
            reason: "r".into(),
            detected_at_ms: 0,
        }
    }

    fn route(name: &str, channel: &str) -> RouteRecord {
        RouteRecord {
            name: name.into(),
            channel: channel.into(),
            severities: vec![],
            agents: vec![],
            log_types: vec![],
            labels: vec![],
            min_score: 0.0,
        }
    }

    #[test]
    fn every_non_empty_list_and_the_minimum_score_must_admit_the_anomaly() {
        let policy = ChannelPolicy { dedup_window_ms: 0 };
        let channels = BTreeMap::from([("pager".to_string(), policy), ("mail".to_string(), policy)]);
        let routes = vec![
            RouteRecord { severities: vec!["critical".into()], min_score: 0.9, ..route("crit", "pager") },
            RouteRecord { agents: vec!["dns".into()], labels: vec!["tunnel".into()], ..route("dns", "mail") },
            RouteRecord { agents: vec!["dns".into()], ..route("dns-too", "mail") },
            route("to-nowhere", "deleted-channel"),
        ];
        let set = RouteSet::new(routes, channels);
        let names = |a: &Anomaly| set.channels_for(a).into_iter().map(|(c, _)| c.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&anomaly(Severity::Critical, "dns", "tunnel", 0.95)), ["mail", "pager"]);
        assert_eq!(names(&anomaly(Severity::Critical, "wifi", "x", 0.89)), Vec::<String>::new());
        assert_eq!(names(&anomaly(Severity::Low, "dns", "other", 0.1)), ["mail"]);
    }
}
