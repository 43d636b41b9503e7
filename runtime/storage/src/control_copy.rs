//! Moving a node's control records into the control store every node
//! shares: what switching a deployment to `control_store = "postgres"`
//! needs, so its tenants, tokens and channels do not have to be made again.

use crate::control::{ControlError, ControlStore};
use crate::control_sql::{Row, Value};

/// A table's columns; `true` marks a truth value SQLite keeps as an integer.
type Columns = &'static [(&'static str, bool)];

/// The tables copied, parents before the rows that refer to them.
const TABLES: [(&str, Columns); 13] = [
    ("tenants", &[("name", false), ("created_ms", false), ("disabled_ms", false)]),
    ("deleted_tenants", &[("name", false), ("deleted_ms", false)]),
    (
        "tokens",
        &[
            ("id", false),
            ("tenant", false),
            ("role", false),
            ("sha256", false),
            ("created_ms", false),
            ("name", false),
            ("created_by", false),
            ("last_used_ms", false),
        ],
    ),
    ("uploads", &[("tenant", false), ("name", false), ("sha256", false), ("uploaded_ms", false)]),
    ("agent_flags", &[("tenant", false), ("name", false), ("enabled", true)]),
    ("settings", &[("tenant", false), ("key", false), ("value", false)]),
    (
        "grants",
        &[
            ("tenant", false),
            ("name", false),
            ("sha256", false),
            ("manifest", false),
            ("approved_ms", false),
            ("approved_by", false),
        ],
    ),
    ("budgets", &[("tenant", false), ("key", false), ("value", false)]),
    (
        "agent_faults",
        &[("id", false), ("tenant", false), ("agent", false), ("at_ms", false), ("kind", false), ("message", false)],
    ),
    (
        "agent_quarantine",
        &[
            ("tenant", false),
            ("agent", false),
            ("since_ms", false),
            ("until_ms", false),
            ("level", false),
            ("reason", false),
        ],
    ),
    (
        "audit",
        &[
            ("id", false),
            ("at_ms", false),
            ("tenant", false),
            ("token_id", false),
            ("action", false),
            ("detail", false),
        ],
    ),
    (
        "notify_channels",
        &[
            ("tenant", false),
            ("name", false),
            ("kind", false),
            ("spec", false),
            ("dedup_window_ms", false),
            ("rate_per_minute", false),
            ("enabled", true),
            ("managed_by", false),
            ("updated_ms", false),
        ],
    ),
    (
        "notify_routes",
        &[
            ("tenant", false),
            ("name", false),
            ("channel", false),
            ("severities", false),
            ("agents", false),
            ("log_types", false),
            ("labels", false),
            ("min_score", false),
            ("managed_by", false),
            ("updated_ms", false),
        ],
    ),
];

/// Tables whose ids PostgreSQL hands out: after copying, their sequences
/// start past the copied ids.
const IDENTITIES: [&str; 3] = ["tokens", "agent_faults", "audit"];

/// Copies every control record of `from` into `to`, in one transaction;
/// the rows copied per table. Refused when `to` already has a tenant, so
/// two deployments' ids are never merged.
pub fn copy_control_records(
    from: &ControlStore,
    to: &ControlStore,
) -> Result<Vec<(&'static str, usize)>, ControlError> {
    if !to.tenants()?.is_empty() {
        return Err(ControlError::NotEmpty);
    }
    let mut read: Vec<(&'static str, Columns, Vec<Row>)> = Vec::new();
    for (table, columns) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let sql = format!("SELECT {} FROM {table}", names.join(", "));
        let rows = from.with(|c| Ok(c.rows(&sql, &[], |row| Ok(row.clone()))?))?;
        read.push((table, columns, rows));
    }
    let shared = to.is_shared();
    to.with_tx(|c| {
        let mut copied = Vec::new();
        for (table, columns, rows) in &read {
            let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
            let marks: Vec<String> = (1..=columns.len()).map(|n| format!("?{n}")).collect();
            let sql = format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), marks.join(", "));
            for row in rows {
                let mut values = Vec::with_capacity(columns.len());
                for (column, (_, truth)) in columns.iter().enumerate() {
                    values.push(if *truth { Value::Bool(row.get(column)?) } else { row.value(column) });
                }
                c.execute(&sql, &values)?;
            }
            copied.push((*table, rows.len()));
        }
        if shared {
            for table in IDENTITIES {
                c.rows(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT MAX(id) FROM {table}), 1))"
                    ),
                    &[],
                    |_| Ok(()),
                )?;
            }
        }
        Ok(copied)
    })
}
