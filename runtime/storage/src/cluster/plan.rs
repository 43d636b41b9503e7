//! Cutting a backfill into units: one per (tenant, agent, log type) by
//! default, or ranges of a given number of rows. Planning is idempotent (a
//! unit is keyed by where it starts) and serialised per (tenant, agent, log
//! type) by an advisory lock, so every node may plan at start, two
//! planners never lay overlapping units, and planning again later adds
//! units for the rows that came since.

use sqlx::{Postgres, Row, Transaction};

use super::{Cluster, ClusterError, FOLLOWS_ID, horizon};

/// How long planning waits for transactions that were writing when it
/// looked to end.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What to plan: one agent of one tenant over one log type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill<'a> {
    pub tenant: &'a str,
    pub agent: &'a str,
    pub log_type: &'a str,
    /// Rows per unit; 0 puts every row not yet planned in one unit.
    pub rows_per_unit: u64,
}

/// Takes the planning lock of one (tenant, agent, log type) for the
/// transaction, and answers where its planned units end (0 when none).
async fn lock_and_read_end(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    agent: &str,
    log_type: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2 || chr(31) || $3, 17))")
        .bind(tenant)
        .bind(agent)
        .bind(log_type)
        .execute(&mut **tx)
        .await?;
    sqlx::query("SELECT COALESCE(MAX(up_to), 0) FROM work_units WHERE tenant = $1 AND agent = $2 AND log_type = $3")
        .bind(tenant)
        .bind(agent)
        .bind(log_type)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)
}

impl Cluster {
    /// Adds a unit that follows `tenant`'s new rows of `log_type` with
    /// `agent` from where the planned units end (from the first row when
    /// none are planned), unless one does already. Returns whether it
    /// added one. It is claimed once the units before it are done, and
    /// starts from the last one's agent state. Nothing is planned after it:
    /// it covers every later row.
    pub fn plan_follow(&self, tenant: &str, agent: &str, log_type: &str) -> Result<bool, ClusterError> {
        self.with_retry("add a following unit", || async {
            let mut tx = self.pool.begin().await?;
            let planned = lock_and_read_end(&mut tx, tenant, agent, log_type).await?;
            if planned == FOLLOWS_ID {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO work_units (tenant, agent, log_type, start_after, up_to, checkpoint)
                 VALUES ($1, $2, $3, $4, $5, $4)",
            )
            .bind(tenant)
            .bind(agent)
            .bind(log_type)
            .bind(planned)
            .bind(FOLLOWS_ID)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Adds units covering `backfill`'s rows after those already planned;
    /// returns how many units it added.
    ///
    /// A unit that does not start at the first row starts from the final
    /// agent state of the unit before it when that one is done by then,
    /// and otherwise cold, with the entries of the replay window before it
    /// fed first (as a resumed run does). Agents whose state is bounded
    /// windows find the same anomalies either way; an agent that learns
    /// from the first entries it ever sees (the Wi-Fi agent without
    /// `known_bssids`) finds the same only when the units run in turn, so
    /// give it one unit (`rows_per_unit` 0).
    pub fn plan_backfill(&self, backfill: &Backfill<'_>) -> Result<usize, ClusterError> {
        let Backfill { tenant, agent, log_type, rows_per_unit } = *backfill;
        let offset = i64::try_from(rows_per_unit.saturating_sub(1)).unwrap_or(i64::MAX);
        let added = self.with_retry("plan a backfill", || async {
            let mut tx = self.pool.begin().await?;
            let mut start_after = lock_and_read_end(&mut tx, tenant, agent, log_type).await?;
            // Rows may commit out of id order: plan only as far as every
            // row is final, waiting for the transactions that were writing.
            let seen = horizon(&mut *tx, tenant, log_type).await?;
            let waited = std::time::Instant::now();
            while horizon(&mut *tx, tenant, log_type).await?.xmin < seen.xmax {
                if waited.elapsed() > SETTLE_WAIT {
                    tx.rollback().await?;
                    return Ok(None);
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let last = seen.newest;
            if last <= start_after {
                tx.rollback().await?;
                return Ok(Some(0));
            }
            let mut added = 0;
            while start_after < last {
                let up_to = if rows_per_unit == 0 {
                    last
                } else {
                    let end: Option<i64> = sqlx::query(
                        "SELECT id FROM logs WHERE tenant = $1 AND log_type = $2 AND id > $3 ORDER BY id OFFSET $4 LIMIT 1",
                    )
                    .bind(tenant)
                    .bind(log_type)
                    .bind(start_after)
                    .bind(offset)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()?;
                    end.unwrap_or(last).min(last)
                };
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
                start_after = up_to;
            }
            tx.commit().await?;
            Ok(Some(added))
        })?;
        let Some(added) = added else {
            return Err(ClusterError::Unsettled { waited_s: SETTLE_WAIT.as_secs() });
        };
        Ok(usize::try_from(added).unwrap_or(usize::MAX))
    }
}
