//! The pages a run reads, in id order. A run that ends at the end of its
//! source reads the next page on a thread of its own while the agent works
//! on this one: PostgreSQL's row decoding and the host's batch build are
//! most of a row's cost, and the machine has another core for them.

use std::sync::mpsc::{self, Receiver};
use std::thread::Scope;

use mcp_columns::LogQuery;
use mcp_storage::source::{LogSource, SourceBatch, SourceError};

/// Pages read ahead of the agent: the one being built while the agent
/// works, and one waiting. More would only hold memory, since the agent
/// and the reader take about as long per page.
const PAGES_AHEAD: usize = 1;

/// Where a run's next page comes from.
pub(crate) enum Pages {
    /// Read when asked: a following run's end moves with what has settled,
    /// so it cannot be read before the previous page is committed.
    OnDemand,
    /// Read ahead in order by a reader thread, which stops after the last
    /// page (one that moved no further), after an error, or when the run
    /// stops listening.
    Ahead(Receiver<Result<SourceBatch, SourceError>>),
}

impl Pages {
    /// Starts a reader in `scope` for the pages of `query` from its
    /// `after_id`, none past `up_to_id`.
    pub(crate) fn ahead<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        source: &'env dyn LogSource,
        tenant: &'env str,
        mut query: LogQuery,
        up_to_id: Option<u64>,
    ) -> Pages {
        let (pages, receiver) = mpsc::sync_channel(PAGES_AHEAD);
        scope.spawn(move || {
            loop {
                let page = source.read_range(tenant, &query, up_to_id);
                let moved_to = match &page {
                    Ok(read) if read.last_id != query.after_id => Some(read.last_id),
                    _ => None,
                };
                // A closed channel: the run stopped (cancelled, or an error)
                // and wants no more pages.
                if pages.send(page).is_err() {
                    return;
                }
                match moved_to {
                    Some(last_id) => query.after_id = last_id,
                    None => return,
                }
            }
        });
        Pages::Ahead(receiver)
    }

    /// The page after `query.after_id`: read now, or the reader's next.
    /// `None` when the reader is gone without a last page, which only a
    /// panic does (the scope then carries the panic on).
    pub(crate) fn next(
        &mut self,
        source: &dyn LogSource,
        tenant: &str,
        query: &LogQuery,
        up_to_id: Option<u64>,
    ) -> Option<Result<SourceBatch, SourceError>> {
        match self {
            Pages::OnDemand => Some(source.read_range(tenant, query, up_to_id)),
            Pages::Ahead(receiver) => receiver.recv().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mcp_storage::schema::SchemaFiles;
    use mcp_storage::source::{NewRow, SqliteLogSource};

    use super::*;

    fn source_with(rows: usize) -> anyhow::Result<(tempfile::TempDir, SqliteLogSource)> {
        let dir = tempfile::tempdir()?;
        let schemas = Arc::new(SchemaFiles::new(&dir.path().join("no-schemas")));
        let source = SqliteLogSource::open(&dir.path().join("logs.db"), schemas)?;
        let rows: Vec<NewRow> = (0..rows).map(|i| NewRow::new(i as i64, "s", format!(r#"{{"n": {i}}}"#))).collect();
        source.append("t", "counter", &rows)?;
        Ok((dir, source))
    }

    fn page_after(after_id: u64) -> LogQuery {
        LogQuery { log_type: "counter".into(), after_id, from_ms: None, to_ms: None, source: None, limit: 10 }
    }

    #[test]
    fn pages_read_ahead_come_in_order_and_end_with_one_that_moves_no_further() -> anyhow::Result<()> {
        let (_dir, source) = source_with(25)?;
        let ids = std::thread::scope(|scope| -> anyhow::Result<Vec<u64>> {
            let mut pages = Pages::ahead(scope, &source, "t", page_after(0), None);
            let (mut after_id, mut ids) = (0, Vec::new());
            loop {
                let page = pages
                    .next(&source, "t", &page_after(after_id), None)
                    .ok_or_else(|| anyhow::anyhow!("reader gone"))??;
                if page.last_id == after_id {
                    break;
                }
                ids.extend(page.batch.ids.iter().copied());
                after_id = page.last_id;
            }
            // The reader stopped after the last page: nothing more comes.
            assert!(pages.next(&source, "t", &page_after(after_id), None).is_none());
            Ok(ids)
        })?;
        assert_eq!(ids, (1..=25).collect::<Vec<u64>>());
        Ok(())
    }

    #[test]
    fn a_run_that_stops_early_lets_its_reader_go() -> anyhow::Result<()> {
        let (_dir, source) = source_with(1_000)?;
        // The scope returns only when the reader has ended: were it to wait
        // on a page nobody takes, this would hang.
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let mut pages = Pages::ahead(scope, &source, "t", page_after(0), None);
            let first =
                pages.next(&source, "t", &page_after(0), None).ok_or_else(|| anyhow::anyhow!("reader gone"))??;
            assert_eq!(first.batch.ids.first(), Some(&1));
            drop(pages);
            Ok(())
        })
    }

    #[test]
    fn pages_read_on_demand_follow_the_query_asked() -> anyhow::Result<()> {
        let (_dir, source) = source_with(25)?;
        let page = Pages::OnDemand
            .next(&source, "t", &page_after(20), Some(22))
            .ok_or_else(|| anyhow::anyhow!("no page"))??;
        assert_eq!(page.batch.ids, vec![21, 22]);
        Ok(())
    }
}
