//! Cutting a backfill into units: one per (tenant, agent, log type) by
//! default, or ranges of a given number of rows. Planning is idempotent
//! (a unit is keyed by where it starts), so every node may plan at start,
//! and planning again later adds units for the rows that came since.

use sqlx::Row;

use super::{Cluster, ClusterError, FOLLOWS_ID};

/// What to plan: one agent of one tenant over one log type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill<'a> {
    pub tenant: &'a str,
    pub agent: &'a str,
    pub log_type: &'a str,
    /// Rows per unit; 0 puts every row not yet planned in one unit.
    pub rows_per_unit: u64,
}

impl Cluster {
    /// Adds a unit that follows `tenant`'s new rows of `log_type` with
    /// `agent` from where the planned units end (from the first row when
    /// none are planned), unless one does already. Returns whether it
    /// added one. Nothing is planned after it: it covers every later row.
    pub fn plan_follow(&self, tenant: &str, agent: &str, log_type: &str) -> Result<bool, ClusterError> {
        let added = self.with_retry("add a following unit", || async {
            sqlx::query(
                "INSERT INTO work_units (tenant, agent, log_type, start_after, up_to, checkpoint)
                 SELECT $1, $2, $3, planned, $4, planned FROM (
                     SELECT COALESCE(MAX(up_to), 0) AS planned FROM work_units
                     WHERE tenant = $1 AND agent = $2 AND log_type = $3) AS p
                 WHERE planned < $4
                 ON CONFLICT (tenant, agent, log_type, start_after) DO NOTHING",
            )
            .bind(tenant)
            .bind(agent)
            .bind(log_type)
            .bind(FOLLOWS_ID)
            .execute(&self.pool)
            .await
        })?;
        Ok(added.rows_affected() > 0)
    }

    /// Adds units covering `backfill`'s rows after those already planned;
    /// returns how many units it added.
    ///
    /// A unit that does not start at the first row starts its agent cold,
    /// with the entries of the replay window before it fed first (as a
    /// resumed run does). Agents whose state is bounded windows find the
    /// same anomalies that way; an agent that learns from the first
    /// entries it ever sees (the Wi-Fi agent without `known_bssids`) finds
    /// the same only with one unit per agent (`rows_per_unit` 0).
    pub fn plan_backfill(&self, backfill: &Backfill<'_>) -> Result<usize, ClusterError> {
        let Backfill { tenant, agent, log_type, rows_per_unit } = *backfill;
        let planned: i64 = self.with_retry("read the plan", || async {
            sqlx::query(
                "SELECT COALESCE(MAX(up_to), 0) FROM work_units WHERE tenant = $1 AND agent = $2 AND log_type = $3",
            )
            .bind(tenant)
            .bind(agent)
            .bind(log_type)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)
        })?;
        let last: Option<i64> = self.with_retry("find the last row", || async {
            sqlx::query("SELECT MAX(id) FROM logs WHERE tenant = $1 AND log_type = $2 AND id > $3")
                .bind(tenant)
                .bind(log_type)
                .bind(planned)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)
        })?;
        let Some(last) = last else { return Ok(0) };
        let mut bounds = Vec::new();
        let mut start_after = planned;
        while start_after < last {
            let up_to = if rows_per_unit == 0 {
                last
            } else {
                let offset = i64::try_from(rows_per_unit - 1).unwrap_or(i64::MAX);
                let found: Option<i64> = self.with_retry("find a unit's end", || async {
                    sqlx::query(
                        "SELECT id FROM logs WHERE tenant = $1 AND log_type = $2 AND id > $3 ORDER BY id OFFSET $4 LIMIT 1",
                    )
                    .bind(tenant)
                    .bind(log_type)
                    .bind(start_after)
                    .bind(offset)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()
                })?;
                found.unwrap_or(last).min(last)
            };
            bounds.push((start_after, up_to));
            start_after = up_to;
        }
        let added = self.with_retry("add units", || async {
            let mut tx = self.pool.begin().await?;
            let mut added = 0;
            for (start_after, up_to) in &bounds {
                added += sqlx::query(
                    "INSERT INTO work_units (tenant, agent, log_type, start_after, up_to, checkpoint)
                     VALUES ($1, $2, $3, $4, $5, $4) ON CONFLICT (tenant, agent, log_type, start_after) DO NOTHING",
                )
                .bind(tenant)
                .bind(agent)
                .bind(log_type)
                .bind(start_after)
                .bind(up_to)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(added)
        })?;
        Ok(usize::try_from(added).unwrap_or(usize::MAX))
    }
}
