//! The export history: one record per export job, kept in the control
//! store. It is the truth about an export (the job status cache only
//! mirrors its progress for watchers), and it carries a cancellation
//! request to the thread writing the export, so cancelling works with the
//! cache down.

use rusqlite::{OptionalExtension, params};

use crate::control::{ControlError, ControlStore};
use crate::jobstatus::now_ms;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS exports (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    token_id INTEGER NOT NULL,
    format TEXT NOT NULL,
    filters TEXT NOT NULL,
    state TEXT NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT,
    error TEXT,
    created_ms INTEGER NOT NULL,
    finished_ms INTEGER
);
CREATE INDEX IF NOT EXISTS exports_by_tenant ON exports (tenant, created_ms, id);
";

/// One export job, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRecord {
    pub id: String,
    pub tenant: String,
    /// The token that started it.
    pub token_id: i64,
    /// `jsonl`, `csv` or `parquet`.
    pub format: String,
    /// The filters, as JSON.
    pub filters: String,
    /// queued, running, completed, failed or cancelled.
    pub state: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
    /// Anomalies the export has looked at, of `to_examine`.
    pub examined: u64,
    pub to_examine: u64,
}

/// An export's progress, as recorded while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    pub rows: u64,
    pub bytes: u64,
    pub examined: u64,
    pub to_examine: u64,
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExportRecord> {
    Ok(ExportRecord {
        id: r.get(0)?,
        tenant: r.get(1)?,
        token_id: r.get(2)?,
        format: r.get(3)?,
        filters: r.get(4)?,
        state: r.get(5)?,
        rows: r.get::<_, i64>(6)?.unsigned_abs(),
        bytes: r.get::<_, i64>(7)?.unsigned_abs(),
        sha256: r.get(8)?,
        error: r.get(9)?,
        created_ms: r.get(10)?,
        finished_ms: r.get(11)?,
        examined: r.get::<_, i64>(12)?.unsigned_abs(),
        to_examine: r.get::<_, i64>(13)?.unsigned_abs(),
    })
}

const COLUMNS: &str = "id, tenant, token_id, format, filters, state, rows, bytes, sha256, error, created_ms, finished_ms, examined, to_examine";

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl ControlStore {
    /// Records a new export job as queued.
    pub fn create_export(
        &self,
        id: &str,
        tenant: &str,
        token_id: i64,
        format: &str,
        filters: &str,
    ) -> Result<(), ControlError> {
        self.with_local(|c| {
            c.execute(
                "INSERT INTO exports (id, tenant, token_id, format, filters, state, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
                params![id, tenant, token_id, format, filters, now_ms()],
            )
            .map(|_| ())
        })
    }

    /// Records an export's progress while it runs; whether it has been
    /// asked to stop.
    pub fn export_progress(&self, id: &str, counts: &ExportCounts) -> Result<bool, ControlError> {
        self.with_local(|c| {
            c.execute(
                "UPDATE exports SET state = 'running', rows = ?2, bytes = ?3, examined = ?4, to_examine = ?5
                 WHERE id = ?1 AND state IN ('queued', 'running')",
                params![id, count(counts.rows), count(counts.bytes), count(counts.examined), count(counts.to_examine)],
            )?;
            c.query_row("SELECT cancel_requested FROM exports WHERE id = ?1", [id], |r| r.get::<_, bool>(0))
                .optional()
                .map(|cancel| cancel.unwrap_or(true))
        })
    }

    /// Asks a queued or running export of `tenant` to stop; whether it was
    /// one.
    pub fn request_export_cancel(&self, tenant: &str, id: &str) -> Result<bool, ControlError> {
        self.with_local(|c| {
            c.execute(
                "UPDATE exports SET cancel_requested = 1 WHERE tenant = ?1 AND id = ?2 AND state IN ('queued', 'running')",
                params![tenant, id],
            )
        })
        .map(|n| n > 0)
    }

    /// Records how an export ended.
    pub fn finish_export(
        &self,
        id: &str,
        state: &str,
        counts: &ExportCounts,
        sha256: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), ControlError> {
        self.with_local(|c| {
            c.execute(
                "UPDATE exports SET state = ?2, rows = ?3, bytes = ?4, examined = ?5, to_examine = ?6,
                 sha256 = ?7, error = ?8, finished_ms = ?9 WHERE id = ?1",
                params![
                    id,
                    state,
                    count(counts.rows),
                    count(counts.bytes),
                    count(counts.examined),
                    count(counts.to_examine),
                    sha256,
                    error,
                    now_ms()
                ],
            )
            .map(|_| ())
        })
    }

    /// One export of `tenant`; `None` for an unknown id or another tenant's.
    pub fn export(&self, tenant: &str, id: &str) -> Result<Option<ExportRecord>, ControlError> {
        self.with_local(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM exports WHERE tenant = ?1 AND id = ?2"),
                params![tenant, id],
                record,
            )
            .optional()
        })
    }

    /// `tenant`'s exports, newest first, older than `before` (an id) when given.
    pub fn exports(&self, tenant: &str, before: Option<&str>, limit: u32) -> Result<Vec<ExportRecord>, ControlError> {
        self.with_local(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM exports WHERE tenant = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
            ))?;
            // Ids are `export-<ms>-<hex>`: their order is their age.
            s.query_map(params![tenant, before.unwrap_or("~"), limit], record)?.collect()
        })
    }

    /// Exports of `tenant` queued or running.
    pub fn active_exports(&self, tenant: &str) -> Result<u64, ControlError> {
        self.with_local(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM exports WHERE tenant = ?1 AND state IN ('queued', 'running')",
                [tenant],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(i64::unsigned_abs)
    }

    /// `tenant`'s exports kept (every record) and the bytes of its files.
    pub fn kept_exports(&self, tenant: &str) -> Result<(u64, u64), ControlError> {
        self.with_local(|c| {
            c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN state = 'completed' THEN bytes ELSE 0 END), 0)
                 FROM exports WHERE tenant = ?1",
                [tenant],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
        })
        .map(|(count, bytes)| (count.unsigned_abs(), bytes.unsigned_abs()))
    }

    /// Removes `tenant`'s export record `id`; whether it existed.
    pub fn forget_export(&self, tenant: &str, id: &str) -> Result<bool, ControlError> {
        self.with_local(|c| c.execute("DELETE FROM exports WHERE tenant = ?1 AND id = ?2", params![tenant, id]))
            .map(|n| n > 0)
    }

    /// Finished exports (of every tenant) that ended before `before_ms`,
    /// oldest first, at most `limit`.
    pub fn finished_exports_before(&self, before_ms: i64, limit: u32) -> Result<Vec<ExportRecord>, ControlError> {
        self.with_local(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM exports WHERE state NOT IN ('queued', 'running') AND finished_ms < ?1
                 ORDER BY finished_ms LIMIT ?2"
            ))?;
            s.query_map(params![before_ms, limit], record)?.collect()
        })
    }

    /// Marks every export left queued or running by a process that ended
    /// as failed: its partial file was never renamed into place. Returns
    /// how many.
    pub fn fail_interrupted_exports(&self) -> Result<u64, ControlError> {
        self.with_local(|c| {
            c.execute(
                "UPDATE exports SET state = 'failed', error = 'interrupted by a restart of the server; start it again', finished_ms = ?1
                 WHERE state IN ('queued', 'running')",
                [now_ms()],
            )
        })
        .map(|n| n as u64)
    }
}
