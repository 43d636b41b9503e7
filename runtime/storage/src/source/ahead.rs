//! PostgreSQL pages fetched ahead: when a page comes back full, the next
//! one is asked for at once, on the source's runtime, while the caller
//! builds the batch of this one. The server's work and the row decoding
//! then overlap the batch build instead of waiting for it.

use std::collections::VecDeque;
use std::sync::Mutex;

use mcp_columns::LogQuery;
use tokio::task::JoinHandle;

use super::FetchedRow;

/// A fetch under way, for the reader that will ask for it.
pub(crate) type Fetch = JoinHandle<Result<Vec<FetchedRow>, sqlx::Error>>;

/// Which page a fetch is: a later read takes it only if it asks for exactly
/// this, so a follower whose settled end moved reads afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageKey {
    pub tenant: String,
    pub query: LogQuery,
    pub up_to_id: Option<u64>,
}

/// Pages kept waiting, one per run reading at once; the oldest beyond this
/// is abandoned (a run that stopped reading leaves one behind).
const KEPT: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct PagesAhead {
    pending: Mutex<VecDeque<(PageKey, Fetch)>>,
}

impl PagesAhead {
    /// The fetch of `key`, if one was started.
    pub(crate) fn take(&self, key: &PageKey) -> Option<Fetch> {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let position = pending.iter().position(|(waiting, _)| waiting == key)?;
        pending.remove(position).map(|(_, fetch)| fetch)
    }

    /// Keeps `fetch` for the read of `key`.
    pub(crate) fn put(&self, key: PageKey, fetch: Fetch) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.push_back((key, fetch));
        while pending.len() > KEPT {
            if let Some((_, abandoned)) = pending.pop_front() {
                abandoned.abort();
            }
        }
    }
}

impl Drop for PagesAhead {
    fn drop(&mut self) {
        let pending = self.pending.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, fetch) in pending.drain(..) {
            fetch.abort();
        }
    }
}
