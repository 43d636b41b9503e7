//! What the binary's process tests share: reading back what a run stored,
//! stopping a server.

use std::collections::BTreeSet;
use std::path::Path;

/// (agent, log id, label)
pub type Stored = BTreeSet<(String, i64, String)>;

/// Every stored (agent, log id, label) under `dir/data`, and how many rows
/// hold them: fewer distinct than rows means an anomaly stored twice.
#[allow(dead_code)] // not every test binary that includes this module runs agents
pub fn stored(dir: &Path) -> Result<(Stored, usize), Box<dyn std::error::Error>> {
    let conn = rusqlite::Connection::open(dir.join("data").join("anomalies.db"))?;
    let mut stmt = conn.prepare("SELECT agent, log_id, label FROM anomalies")?;
    let rows: Vec<(String, i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
    let count = rows.len();
    Ok((rows.into_iter().collect(), count))
}

/// Sends SIGTERM to `server` and waits for it to exit, at most `limit`.
#[allow(dead_code)] // not every test binary that includes this module stops a server
pub fn terminate(
    server: &mut std::process::Child,
    limit: std::time::Duration,
) -> Result<std::process::ExitStatus, Box<dyn std::error::Error>> {
    let sent = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status()?;
    assert!(sent.success(), "kill -TERM {} failed", server.id());
    let stop = std::time::Instant::now();
    loop {
        if let Some(status) = server.try_wait()? {
            return Ok(status);
        }
        assert!(stop.elapsed() < limit, "the server did not stop within {limit:?} of SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
