//! The read side of an export: a tenant's anomalies walked newest first in
//! windows of a fixed number of index entries, each window's entries that
//! pass the export's filters returned. A window costs the same whether its
//! filters keep every entry or none, so an export of a rare label over ten
//! million anomalies moves steadily instead of stalling inside one query,
//! and its progress is the share of the walk done.

use crate::store::{AnomalyRecord, AnomalyStore, DRIVING_FILTERS, RECORD_COLUMNS, StoreError, record};

/// What an export selects. Every list is "any of these"; an empty list
/// does not filter. Ranges include their start and exclude their end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportFilter {
    pub tenant: String,
    pub agents: Vec<String>,
    pub log_types: Vec<String>,
    pub labels: Vec<String>,
    pub severities: Vec<String>,
    pub sources: Vec<String>,
    /// `name@version` of the model that scored the batch.
    pub models: Vec<String>,
    pub min_score: Option<f64>,
    pub max_score: Option<f64>,
    /// Time of the log entry (ms since the epoch).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Time the anomaly was detected.
    pub detected_from_ms: Option<i64>,
    pub detected_to_ms: Option<i64>,
    /// Only anomalies stored up to this id: what the store held when the
    /// export started.
    pub up_to_id: Option<i64>,
}

/// A filter that can select nothing, named by its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FilterError {
    pub field: &'static str,
    pub reason: String,
}

impl ExportFilter {
    /// Refuses time ranges that end where or before they start (the end is
    /// exclusive), score ranges that end before they start, and scores
    /// outside 0..=1.
    pub fn check(&self) -> Result<(), FilterError> {
        let inverted = |field: &'static str, start: &'static str| FilterError {
            field,
            reason: format!("is before {start}; the range would select nothing"),
        };
        // A time range's end is exclusive: an end equal to its start
        // selects nothing either.
        let time_range = |field: &'static str, start: &'static str, from: Option<i64>, to: Option<i64>| match (from, to)
        {
            (Some(from), Some(to)) if to < from => Err(inverted(field, start)),
            (Some(from), Some(to)) if to == from => Err(FilterError {
                field,
                reason: format!("is not after {start} (the end is exclusive); the range would select nothing"),
            }),
            _ => Ok(()),
        };
        time_range("to_ms", "from_ms", self.from_ms, self.to_ms)?;
        time_range("detected_to_ms", "detected_from_ms", self.detected_from_ms, self.detected_to_ms)?;
        for (field, score) in [("min_score", self.min_score), ("max_score", self.max_score)] {
            if score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
                return Err(FilterError { field, reason: "must be between 0 and 1".into() });
            }
        }
        if let (Some(min), Some(max)) = (self.min_score, self.max_score)
            && max < min
        {
            return Err(inverted("max_score", "min_score"));
        }
        Ok(())
    }

    fn list(&self, column: &str) -> &[String] {
        match column {
            "agent" => &self.agents,
            "log_type" => &self.log_types,
            "label" => &self.labels,
            "severity" => &self.severities,
            "source" => &self.sources,
            _ => &[],
        }
    }

    /// The equality filter of one value that drives the walk, if any: its
    /// index holds only the entries that can pass.
    fn driving(&self) -> Option<(&'static str, &str)> {
        DRIVING_FILTERS.iter().find_map(|column| match self.list(column) {
            [only] => Some((*column, only.as_str())),
            _ => None,
        })
    }
}

/// Where a walk stands: the log time and id of the last entry it passed.
pub type ScanPosition = (i64, i64);

/// One window of the walk.
#[derive(Debug, Clone, Default)]
pub struct ScanWindow {
    /// The entries of the window that pass the filters, newest first.
    pub records: Vec<AnomalyRecord>,
    /// Index entries the window passed.
    pub examined: u64,
    /// Where the next window starts; `None` once the walk is complete.
    pub next: Option<ScanPosition>,
}

/// The walk's index, its fixed conditions (tenant, driving value, log time
/// bounds) and their arguments.
pub(crate) fn walk(filter: &ExportFilter) -> (String, String, Vec<rusqlite::types::Value>) {
    let mut args: Vec<rusqlite::types::Value> = vec![filter.tenant.clone().into()];
    let mut conditions = "tenant = ?".to_string();
    let index = match filter.driving() {
        Some((column, value)) => {
            conditions.push_str(&format!(" AND {column} = ?"));
            args.push(value.to_string().into());
            format!("anomalies_{column}_time")
        }
        None => "anomalies_time".to_string(),
    };
    if let Some(from) = filter.from_ms {
        conditions.push_str(" AND log_ts_ms >= ?");
        args.push(from.into());
    }
    if let Some(to) = filter.to_ms {
        conditions.push_str(" AND log_ts_ms < ?");
        args.push(to.into());
    }
    (index, conditions, args)
}

/// The filters the walk's index does not apply, as one SQL truth value.
pub(crate) fn residual(filter: &ExportFilter) -> (String, Vec<rusqlite::types::Value>) {
    let driving = filter.driving().map(|(column, _)| column);
    let mut terms = Vec::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let lists = DRIVING_FILTERS.iter().map(|c| (*c, filter.list(c))).chain([("model", filter.models.as_slice())]);
    for (column, values) in lists {
        if values.is_empty() || Some(column) == driving {
            continue;
        }
        terms.push(format!("{column} IN ({})", vec!["?"; values.len()].join(", ")));
        args.extend(values.iter().map(|v| rusqlite::types::Value::from(v.clone())));
    }
    let bounds = [
        ("score >= ?", filter.min_score.map(rusqlite::types::Value::from)),
        ("score <= ?", filter.max_score.map(rusqlite::types::Value::from)),
        ("detected_at_ms >= ?", filter.detected_from_ms.map(rusqlite::types::Value::from)),
        ("detected_at_ms < ?", filter.detected_to_ms.map(rusqlite::types::Value::from)),
        ("id <= ?", filter.up_to_id.map(rusqlite::types::Value::from)),
    ];
    for (term, value) in bounds {
        if let Some(value) = value {
            terms.push(term.to_string());
            args.push(value);
        }
    }
    if terms.is_empty() { ("1".to_string(), args) } else { (terms.join(" AND "), args) }
}

impl AnomalyStore {
    /// The id of the newest anomaly stored, 0 when none.
    pub fn last_anomaly_id(&self) -> Result<i64, StoreError> {
        self.db(self.conn.query_row("SELECT COALESCE(MAX(id), 0) FROM anomalies", [], |r| r.get(0)))
    }

    /// Whether `agent` of `tenant` has any anomaly stored (an agent since
    /// deleted keeps its anomalies, and they can still be exported).
    pub fn agent_has_anomalies(&self, tenant: &str, agent: &str) -> Result<bool, StoreError> {
        let sql =
            "SELECT EXISTS (SELECT 1 FROM anomalies INDEXED BY anomalies_agent_time WHERE tenant = ?1 AND agent = ?2)";
        self.db(self.conn.query_row(sql, rusqlite::params![tenant, agent], |r| r.get(0)))
    }

    /// How many index entries a walk of `filter` passes: the total its
    /// progress is measured against.
    pub fn export_walk_length(&self, filter: &ExportFilter) -> Result<u64, StoreError> {
        let (index, conditions, args) = walk(filter);
        let sql = format!("SELECT COUNT(*) FROM anomalies INDEXED BY {index} WHERE {conditions}");
        let count: i64 = self.db(self.conn.query_row(&sql, rusqlite::params_from_iter(args), |r| r.get(0)))?;
        Ok(count.unsigned_abs())
    }

    /// The next `window` index entries of the walk after `after` (from the
    /// newest when `None`), with those that pass `filter`.
    pub fn export_window(
        &self,
        filter: &ExportFilter,
        after: Option<ScanPosition>,
        window: u32,
    ) -> Result<ScanWindow, StoreError> {
        let window = window.max(1);
        let (sql, args) = window_sql(filter, after, window);
        let mut statement = self.db(self.conn.prepare_cached(&sql))?;
        let mut rows = self.db(statement.query(rusqlite::params_from_iter(args)))?;
        let mut scanned = ScanWindow::default();
        let mut last = None;
        while let Some(row) = self.db(rows.next())? {
            scanned.examined += 1;
            // Only a kept entry is decoded whole.
            let kept: bool = self.db(row.get("keep"))?;
            last = Some((self.db(row.get::<_, i64>("log_ts_ms"))?, self.db(row.get::<_, i64>("id"))?));
            if kept {
                scanned.records.push(self.db(record(row))?);
            }
        }
        if scanned.examined == u64::from(window) {
            scanned.next = last;
        }
        Ok(scanned)
    }

    /// How SQLite runs a window of `filter`'s walk, one line per step.
    pub fn export_window_plan(&self, filter: &ExportFilter) -> Result<Vec<String>, StoreError> {
        let (sql, args) = window_sql(filter, Some((0, 0)), 1000);
        let mut statement = self.db(self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")))?;
        let rows = self.db(statement.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3)))?;
        self.db(rows.collect())
    }
}

/// A window's query and its arguments.
fn window_sql(
    filter: &ExportFilter,
    after: Option<ScanPosition>,
    window: u32,
) -> (String, Vec<rusqlite::types::Value>) {
    let (index, mut conditions, args) = walk(filter);
    let (keep, mut all_args) = residual(filter);
    // The residual's arguments come first: it is in the select list.
    all_args.extend(args);
    if let Some((ts, id)) = after {
        conditions.push_str(" AND (log_ts_ms, id) < (?, ?)");
        all_args.push(ts.into());
        all_args.push(id.into());
    }
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, COALESCE(({keep}), 0) AS keep FROM anomalies INDEXED BY {index}
         WHERE {conditions} ORDER BY log_ts_ms DESC, id DESC LIMIT {window}"
    );
    (sql, all_args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_inverted_ranges_and_scores_are_named() {
        let base = ExportFilter { tenant: "t".into(), ..ExportFilter::default() };
        assert_eq!(base.check(), Ok(()));
        let field = |f: ExportFilter| f.check().err().map(|e| e.field);
        assert_eq!(field(ExportFilter { from_ms: Some(5), to_ms: Some(4), ..base.clone() }), Some("to_ms"));
        // The end is exclusive: an equal end selects nothing either.
        assert_eq!(field(ExportFilter { from_ms: Some(5), to_ms: Some(5), ..base.clone() }), Some("to_ms"));
        assert_eq!(field(ExportFilter { from_ms: Some(5), to_ms: Some(6), ..base.clone() }), None);
        assert_eq!(
            field(ExportFilter { detected_from_ms: Some(9), detected_to_ms: Some(1), ..base.clone() }),
            Some("detected_to_ms")
        );
        assert_eq!(field(ExportFilter { min_score: Some(1.5), ..base.clone() }), Some("min_score"));
        assert_eq!(field(ExportFilter { min_score: Some(0.6), max_score: Some(0.5), ..base }), Some("max_score"));
    }

    #[test]
    fn one_value_drives_the_walk_and_many_are_kept_by_the_residual() {
        let filter = ExportFilter {
            tenant: "t".into(),
            agents: vec!["a".into(), "b".into()],
            labels: vec!["l".into()],
            ..ExportFilter::default()
        };
        let (index, conditions, _) = walk(&filter);
        assert_eq!(index, "anomalies_label_time");
        assert!(conditions.contains("label = ?"));
        let (keep, args) = residual(&filter);
        assert_eq!(keep, "agent IN (?, ?)");
        assert_eq!(args.len(), 2);
    }
}
