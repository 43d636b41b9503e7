//! Loading JSON Lines files into a log source (`mcp db load`). Every line is
//! stored, even one that cannot be read: it then reaches quarantine, with the
//! reason it could not be read, at the next run, instead of disappearing at
//! load time.

use std::io::BufRead;

use serde::Deserialize;

use super::{LogSource, NewRow, SourceError};

/// One line of a log file: the envelope every log type shares, with the
/// log type's own fields inside `fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    timestamp_ms: i64,
    source: String,
    /// Kept as written, so that the schema check sees a key given twice.
    fields: Box<serde_json::value::RawValue>,
    #[serde(default)]
    schema_version: u32,
    /// Ground truth for evaluation (`mcp agents test --labels`, the demo's
    /// scoring), read by [`ground_truth`].
    #[serde(default)]
    label: serde_json::Value,
}

/// A label value as ground truth: null, false, 0, and the texts "",
/// "normal", "benign", "0" and "false" (any case) are normal traffic; true
/// and other numbers are an attack of kind "attack"; other text is the
/// attack's kind.
pub fn ground_truth(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(false) => None,
        Value::Bool(true) => Some("attack".to_string()),
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        Value::Number(_) => Some("attack".to_string()),
        Value::String(s)
            if matches!(s.trim().to_ascii_lowercase().as_str(), "" | "normal" | "benign" | "0" | "false") =>
        {
            None
        }
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The keys a line may have, for the message that names a stray one.
const ENVELOPE_KEYS: &str = "timestamp_ms, source, fields, and optionally schema_version and label";

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub lines: u64,
    /// Lines stored as they were because their envelope could not be read;
    /// they will be quarantined with the reason.
    pub unreadable: u64,
    /// The first few unreadable lines: (line number, why).
    pub first_unreadable: Vec<(usize, String)>,
}

/// How many unreadable lines a report names.
const NAMED_UNREADABLE: usize = 5;

/// Why a line is not an envelope, in the author's terms: serde's message for
/// an unknown key lists the expected keys in its own words, ours says what a
/// line is.
fn unreadable_reason(line: &str, error: &serde_json::Error) -> String {
    let message = error.to_string();
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(line) {
        let stray: Vec<&str> = object
            .keys()
            .map(String::as_str)
            .filter(|k| !matches!(*k, "timestamp_ms" | "source" | "fields" | "schema_version" | "label"))
            .collect();
        if !stray.is_empty() {
            return format!("unknown key(s) {} (a line has {ENVELOPE_KEYS})", quoted(&stray));
        }
        let missing: Vec<&str> =
            ["timestamp_ms", "source", "fields"].into_iter().filter(|k| !object.contains_key(*k)).collect();
        if !missing.is_empty() {
            return format!("missing key(s) {} (a line has {ENVELOPE_KEYS})", quoted(&missing));
        }
    }
    message
}

fn quoted(keys: &[&str]) -> String {
    keys.iter().map(|k| format!("'{}'", k.escape_debug())).collect::<Vec<_>>().join(", ")
}

/// Reads one line into the row to store: the envelope's values, or the whole
/// line with why it could not be read in `load_error`.
pub fn parse_line(line: &str) -> NewRow {
    match serde_json::from_str::<Line>(line) {
        Ok(parsed) => NewRow {
            timestamp_ms: parsed.timestamp_ms,
            source: parsed.source,
            fields: parsed.fields.get().to_string(),
            schema_version: parsed.schema_version,
            label: ground_truth(&parsed.label),
            load_error: None,
        },
        Err(e) => NewRow { load_error: Some(unreadable_reason(line, &e)), ..NewRow::new(0, "", line) },
    }
}

/// Reads `input` line by line into `tenant`'s logs of `log_type`.
pub fn load_json_lines(
    source: &dyn LogSource,
    tenant: &str,
    log_type: &str,
    input: impl BufRead,
) -> Result<LoadReport, LoadError> {
    load_json_lines_observed(source, tenant, log_type, input, &mut |_| {})
}

/// As [`load_json_lines`], telling `progress` the bytes read so far after
/// each chunk is stored.
pub fn load_json_lines_observed(
    source: &dyn LogSource,
    tenant: &str,
    log_type: &str,
    input: impl BufRead,
    progress: &mut dyn FnMut(u64),
) -> Result<LoadReport, LoadError> {
    let mut report = LoadReport::default();
    let mut bytes_read = 0u64;
    let mut pending = Vec::with_capacity(CHUNK);
    for (number, line) in input.lines().enumerate() {
        let line = line.map_err(|e| LoadError::Read { line: number + 1, source: e })?;
        bytes_read += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let row = parse_line(&line);
        if let Some(reason) = &row.load_error {
            tracing::warn!(line = number + 1, "stored as it is, to be quarantined: {reason}");
            report.unreadable += 1;
            if report.first_unreadable.len() < NAMED_UNREADABLE {
                report.first_unreadable.push((number + 1, reason.clone()));
            }
        }
        pending.push(row);
        if pending.len() == CHUNK {
            report.lines += source.append(tenant, log_type, &pending)?;
            pending.clear();
            progress(bytes_read);
        }
    }
    report.lines += source.append(tenant, log_type, &pending)?;
    Ok(report)
}

/// Rows sent to the source at once.
const CHUNK: usize = 10_000;

/// Errors of a load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read line {line}: {source}")]
    Read { line: usize, source: std::io::Error },
    #[error(transparent)]
    Source(#[from] SourceError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stray_key_is_named_as_the_cause() {
        let reason = |line: &str| parse_line(line).load_error.unwrap_or_default();
        let stray = r#"{"ts": 1, "timestamp_ms": 1, "source": "a", "fields": {}}"#;
        assert!(reason(stray).contains("unknown key(s) 'ts'"), "{}", reason(stray));
        assert_eq!(parse_line(stray).fields, stray, "the whole line is kept");
        let missing = r#"{"source": "a", "fields": {}}"#;
        assert!(reason(missing).contains("missing key(s) 'timestamp_ms'"), "{}", reason(missing));
        assert!(reason("not json").contains("expected"), "{}", reason("not json"));
    }

    #[test]
    fn a_label_is_carried_as_ground_truth() {
        let row = parse_line(r#"{"timestamp_ms": 1, "source": "a", "fields": {"x": 1}, "label": "tunnel"}"#);
        assert_eq!((row.label.as_deref(), row.load_error), (Some("tunnel"), None));
        for normal in ["null", "\"normal\"", "\"Benign\"", "false", "0", "\"\""] {
            let row =
                parse_line(&format!(r#"{{"timestamp_ms": 1, "source": "a", "fields": {{}}, "label": {normal}}}"#));
            assert_eq!((row.label, row.load_error), (None, None), "{normal}");
        }
        let row = parse_line(r#"{"timestamp_ms": 1, "source": "a", "fields": {}, "label": true}"#);
        assert_eq!(row.label.as_deref(), Some("attack"));
        // Fields are kept as written: a key given twice reaches the schema check.
        let row = parse_line(r#"{"timestamp_ms": 1, "source": "a", "fields": {"s": 500, "s": 200}}"#);
        assert_eq!(row.fields, r#"{"s": 500, "s": 200}"#);
    }
}
