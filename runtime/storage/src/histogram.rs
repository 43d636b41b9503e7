//! Anomalies counted over time: the console's chart and its totals. The
//! counts use a page query's filters and index and are held to the same
//! work bound, so a chart costs no more than a page may.

use crate::store::{AnomalyQuery, AnomalySort, AnomalyStore, StoreError, filter_sql, page_index};

/// What each bar of a histogram is split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramGroup {
    Severity,
    Agent,
}

impl HistogramGroup {
    pub(crate) fn column(self) -> &'static str {
        match self {
            HistogramGroup::Severity => "severity",
            HistogramGroup::Agent => "agent",
        }
    }
}

/// Counts of matching anomalies per time slot and group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// The start of the first slot (ms since the epoch, inclusive).
    pub from_ms: i64,
    /// The length of each slot in ms.
    pub slot_ms: i64,
    /// How many slots the range holds.
    pub slots: usize,
    /// (slot, group value, count), slots counted from `from_ms`.
    pub counts: Vec<(usize, String, u64)>,
}

impl Histogram {
    /// All anomalies counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, _, n)| n).sum()
    }
}

/// Slot lengths a chart reads well at, shortest first.
const SLOT_LENGTHS_MS: [i64; 12] = [
    1_000,
    10_000,
    60_000,
    5 * 60_000,
    15 * 60_000,
    3_600_000,
    3 * 3_600_000,
    6 * 3_600_000,
    86_400_000,
    7 * 86_400_000,
    30 * 86_400_000,
    365 * 86_400_000,
];

/// The shortest slot length that spans `range_ms` in at most `max_slots`:
/// one of [`SLOT_LENGTHS_MS`], or, for a range longer than they span, a
/// whole number of years.
pub fn slot_length(range_ms: i64, max_slots: usize) -> i64 {
    let max_slots = max_slots.max(1) as i64;
    SLOT_LENGTHS_MS.iter().copied().find(|slot| range_ms <= slot.saturating_mul(max_slots)).unwrap_or_else(|| {
        const YEAR_MS: i64 = 365 * 86_400_000;
        let per_slot = range_ms.max(0).saturating_add(max_slots - 1) / max_slots;
        per_slot.saturating_add(YEAR_MS - 1) / YEAR_MS * YEAR_MS
    })
}

impl AnomalyStore {
    /// `query`'s anomalies (its sort, position and limit ignored) counted in
    /// at most `max_slots` slots of a readable length, split by `group`. The
    /// range is the query's, or that of the matching anomalies.
    pub fn histogram(
        &self,
        query: &AnomalyQuery,
        group: HistogramGroup,
        max_slots: usize,
    ) -> Result<Histogram, StoreError> {
        let query = AnomalyQuery { sort: AnomalySort::Time, after: None, ..query.clone() };
        let index = page_index(&query);
        let (filters, args) = filter_sql(&query);
        let (from, to) = match (query.from_ms, query.to_ms) {
            (Some(from), Some(to)) => (from, to),
            (from, to) => {
                let sql = format!(
                    "SELECT MIN(log_ts_ms), MAX(log_ts_ms) + 1 FROM anomalies INDEXED BY {index} WHERE {filters}"
                );
                let found: (Option<i64>, Option<i64>) = self.db(self.bounded(|| {
                    self.conn.query_row(&sql, rusqlite::params_from_iter(args.iter()), |r| Ok((r.get(0)?, r.get(1)?)))
                }))?;
                match found {
                    (Some(first), Some(end)) => (from.unwrap_or(first), to.unwrap_or(end)),
                    _ => return Ok(Histogram::default()),
                }
            }
        };
        let Some(Slots { start, slot_ms, slots }) = Slots::spanning(from, to, max_slots) else {
            return Ok(Histogram::default());
        };
        let column = group.column();
        let sql = format!(
            "SELECT (log_ts_ms - {start}) / {slot_ms}, {column}, COUNT(*) FROM anomalies INDEXED BY {index} \
             WHERE {filters} AND log_ts_ms >= {start} GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let counts = self.db(self.bounded(|| {
            let mut statement = self.conn.prepare(&sql)?;
            let rows = statement.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        }))?;
        Ok(Slots { start, slot_ms, slots }.histogram(counts))
    }
}

/// The slots of a histogram over `[from, to)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slots {
    pub(crate) start: i64,
    pub(crate) slot_ms: i64,
    pub(crate) slots: usize,
}

impl Slots {
    /// At most `max_slots` slots of a readable length over `[from, to)`;
    /// `None` for an empty range.
    pub(crate) fn spanning(from: i64, to: i64, max_slots: usize) -> Option<Slots> {
        if to <= from {
            return None;
        }
        let slot_ms = slot_length(to - from, max_slots);
        // Slots start at a multiple of their length, so two charts of the
        // same data line up whatever their ranges.
        let start = from.div_euclid(slot_ms) * slot_ms;
        let slots = usize::try_from((to - 1 - start).div_euclid(slot_ms) + 1).unwrap_or(1);
        Some(Slots { start, slot_ms, slots })
    }

    /// The histogram of `counts` as (slot, group value, count) rows.
    pub(crate) fn histogram(self, counts: Vec<(i64, String, i64)>) -> Histogram {
        let counts = counts
            .into_iter()
            .filter_map(|(slot, value, n)| Some((usize::try_from(slot).ok()?, value, n.unsigned_abs())))
            .filter(|(slot, _, _)| *slot < self.slots)
            .collect();
        Histogram { from_ms: self.start, slot_ms: self.slot_ms, slots: self.slots, counts }
    }
}

#[cfg(test)]
mod tests {
    use super::slot_length;

    #[test]
    fn slot_lengths_fit_the_range_in_the_slots_asked_for() {
        assert_eq!(slot_length(30_000, 48), 1_000);
        assert_eq!(slot_length(48 * 60_000, 48), 60_000);
        assert_eq!(slot_length(48 * 60_000 + 1, 48), 5 * 60_000);
        assert_eq!(slot_length(86_400_000, 24), 3_600_000);
        // Past the longest length (a chart over a century): whole years,
        // few enough slots, and no overflow where the chart adds them up.
        let century = 100 * 365 * 86_400_000;
        let slot = slot_length(century, 24);
        assert!(slot % (365 * 86_400_000) == 0 && century <= slot * 24 && slot <= century, "{slot}");
    }
}
