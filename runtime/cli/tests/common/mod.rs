//! What the binary's process tests share: reading back what a run stored.

use std::collections::BTreeSet;
use std::path::Path;

/// (agent, log id, label)
pub type Stored = BTreeSet<(String, i64, String)>;

/// Every stored (agent, log id, label) under `dir/data`, and how many rows
/// hold them: fewer distinct than rows means an anomaly stored twice.
pub fn stored(dir: &Path) -> Result<(Stored, usize), Box<dyn std::error::Error>> {
    let conn = rusqlite::Connection::open(dir.join("data").join("anomalies.db"))?;
    let mut stmt = conn.prepare("SELECT agent, log_id, label FROM anomalies")?;
    let rows: Vec<(String, i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
    let count = rows.len();
    Ok((rows.into_iter().collect(), count))
}
