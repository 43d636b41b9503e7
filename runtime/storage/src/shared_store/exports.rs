//! The read side of an export on PostgreSQL: the embedded store's walk
//! (newest first, in windows of a fixed number of index entries, each
//! window's entries that pass the filters kept) over the same filters, so
//! an export of every node's anomalies moves as steadily as one of a
//! single node's.

use sqlx::Row;

use super::pages::{decoded, record};
use super::statement::{Arg, Statement};
use super::{SharedStore, SharedStoreError};
use crate::export_scan::{ExportFilter, ScanPosition, ScanWindow, residual, walk};
use crate::store::RECORD_COLUMNS;

/// `filter` without the values PostgreSQL's text cannot hold (a NUL),
/// which no stored anomaly has; `None` when a list held only such values,
/// so the export selects nothing.
fn representable(filter: &ExportFilter) -> Option<ExportFilter> {
    let mut kept = filter.clone();
    for list in [
        &mut kept.agents,
        &mut kept.log_types,
        &mut kept.labels,
        &mut kept.severities,
        &mut kept.sources,
        &mut kept.models,
    ] {
        let asked = !list.is_empty();
        list.retain(|value| !value.contains('\0'));
        if asked && list.is_empty() {
            return None;
        }
    }
    Some(kept)
}

impl SharedStore {
    /// The id of the newest anomaly stored, 0 when none.
    pub fn last_anomaly_id(&self) -> Result<i64, SharedStoreError> {
        let row = self.read("read the newest anomaly's id", || {
            sqlx::query("SELECT COALESCE(MAX(id), 0)::BIGINT FROM anomalies").fetch_one(&self.reads)
        })?;
        decoded("read the newest anomaly's id", row.try_get(0))
    }

    /// How many index entries a walk of `filter` passes: the total its
    /// progress is measured against.
    pub fn export_walk_length(&self, filter: &ExportFilter) -> Result<u64, SharedStoreError> {
        let Some(filter) = representable(filter) else { return Ok(0) };
        let (_, conditions, args) = walk(&filter);
        let mut statement = Statement::default();
        let sql = format!("SELECT COUNT(*) FROM anomalies WHERE {}", statement.carried(&conditions, args));
        let row = self.read("count an export's walk", || statement.query(&sql).fetch_one(&self.reads))?;
        let count: i64 = decoded("count an export's walk", row.try_get(0))?;
        Ok(count.unsigned_abs())
    }

    /// The next `window` index entries of the walk after `after` (from the
    /// newest when `None`), with those that pass `filter`.
    pub fn export_window(
        &self,
        filter: &ExportFilter,
        after: Option<ScanPosition>,
        window: u32,
    ) -> Result<ScanWindow, SharedStoreError> {
        let window = window.max(1);
        let Some(filter) = representable(filter) else { return Ok(ScanWindow::default()) };
        let filter = &filter;
        let mut statement = Statement::default();
        // The residual's arguments come first: it is in the select list.
        let (keep, keep_args) = residual(filter);
        let keep = if keep == "1" { "TRUE".to_string() } else { statement.carried(&keep, keep_args) };
        let (_, conditions, args) = walk(filter);
        let mut conditions = statement.carried(&conditions, args);
        if let Some((ts, id)) = after {
            let (ts, id) = (statement.bind(Arg::Int(ts)), statement.bind(Arg::Int(id)));
            conditions.push_str(&format!(" AND (log_ts_ms, id) < ({ts}, {id})"));
        }
        let sql = format!(
            "SELECT {RECORD_COLUMNS}, COALESCE(({keep}), FALSE) AS keep FROM anomalies
             WHERE {conditions} ORDER BY log_ts_ms DESC, id DESC LIMIT {window}"
        );
        let rows = self.read("read a window of an export", || statement.query(&sql).fetch_all(&self.reads))?;
        let mut scanned = ScanWindow::default();
        let mut last = None;
        // Only a kept entry is decoded whole.
        let read = |row: &sqlx::postgres::PgRow| -> Result<(ScanPosition, Option<_>), sqlx::Error> {
            let position = (row.try_get("log_ts_ms")?, row.try_get("id")?);
            let kept: bool = row.try_get("keep")?;
            Ok((position, if kept { Some(record(row)?) } else { None }))
        };
        for row in &rows {
            let (position, kept) = decoded("read a window of an export", read(row))?;
            scanned.examined += 1;
            last = Some(position);
            scanned.records.extend(kept);
        }
        if scanned.examined == u64::from(window) {
            scanned.next = last;
        }
        Ok(scanned)
    }
}
