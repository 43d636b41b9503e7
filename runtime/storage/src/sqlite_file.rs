//! Opening one of MCP's SQLite files the same way everywhere: a wait for
//! locks held by other processes, and write-ahead logging, which lets
//! readers go on while one process writes.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// How long a statement waits for another process's lock.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// Opens (and creates) the file at `path` in WAL mode. Switching a new file
/// to WAL needs it to itself, and SQLite answers "locked" at once rather
/// than waiting when processes started together open it: the switch is
/// tried again for up to [`BUSY_WAIT`].
pub fn open_wal(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_WAIT)?;
    let started = std::time::Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.map(|()| conn),
        }
    }
}
