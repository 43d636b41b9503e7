//! Entries for an agent author's log types, which the generator does not
//! know: read from the author's own JSON Lines file (`--samples`, `--logs`),
//! or made up from the log type's schema file so that `mcp agents check`
//! works with nothing but a schema file and a component.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use mcp_columns::shape::{Kind, Shape};
use mcp_sandbox::LogEntry;
use mcp_sandbox::conformance::SampleEntries;
use mcp_storage::schema::SchemaFiles;
use mcp_storage::source::load::parse_line;
use serde_json::{Map, Value};

/// Errors reading an author's log file.
#[derive(Debug, thiserror::Error)]
pub enum AuthorFileError {
    #[error("cannot read {path}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} has no readable line{}", first_reasons(.unreadable))]
    Empty { path: String, unreadable: Vec<(usize, String)> },
}

/// One entry of an author's file with its ground truth: the attack kind, or
/// `None` for normal traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledEntry {
    pub entry: LogEntry,
    pub label: Option<String>,
    /// The line of the file it came from.
    pub line: usize,
}

fn first_reasons(unreadable: &[(usize, String)]) -> String {
    unreadable.iter().take(3).map(|(line, why)| format!("; line {line}: {why}")).collect()
}

/// An author's JSON Lines file, read as `mcp db load` reads one.
#[derive(Debug, Clone, Default)]
pub struct LogFile {
    pub entries: Vec<LabelledEntry>,
    /// Lines that are not a log line: (line number, why).
    pub unreadable: Vec<(usize, String)>,
    /// Readable lines that carried the label column at all.
    pub labelled_lines: usize,
}

/// Where the ground truth of a line is: the line's own `label`, or a field
/// of its `fields`, which is then taken out so the agent cannot read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelColumn {
    Envelope,
    Field(String),
}

impl LabelColumn {
    /// `label` names the line's own key; any other name a field.
    pub fn named(name: &str) -> Self {
        if name == "label" { LabelColumn::Envelope } else { LabelColumn::Field(name.to_string()) }
    }
}

/// A label value as ground truth, as `mcp db load` reads one.
pub use mcp_storage::source::load::ground_truth as label_of;

impl LogFile {
    /// Reads `path` as log lines of `log_type`, ids from 1 in line order,
    /// taking ground truth from `labels` when given.
    pub fn read(path: &Path, log_type: &str, labels: Option<&LabelColumn>) -> Result<Self, AuthorFileError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| AuthorFileError::Read { path: name.clone(), source })?;
        let read = Self::parse(std::io::BufReader::new(file), log_type, labels)
            .map_err(|source| AuthorFileError::Read { path: name.clone(), source })?;
        if read.entries.is_empty() {
            return Err(AuthorFileError::Empty { path: name, unreadable: read.unreadable });
        }
        Ok(read)
    }

    /// As [`LogFile::read`], from any reader.
    pub fn parse(input: impl BufRead, log_type: &str, labels: Option<&LabelColumn>) -> std::io::Result<Self> {
        let mut out = LogFile::default();
        for (number, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let mut row = parse_line(&line);
            if let Some(reason) = row.load_error.take() {
                out.unreadable.push((number + 1, reason));
                continue;
            }
            let (fields, label) = match labels {
                None => (row.fields, None),
                Some(LabelColumn::Envelope) => {
                    let carries =
                        serde_json::from_str::<Map<String, Value>>(&line).is_ok_and(|l| l.contains_key("label"));
                    out.labelled_lines += usize::from(carries);
                    (row.fields, row.label)
                }
                Some(LabelColumn::Field(name)) => match serde_json::from_str::<Value>(&row.fields) {
                    Ok(Value::Object(mut object)) => match object.remove(name) {
                        Some(value) => {
                            out.labelled_lines += 1;
                            (Value::Object(object).to_string(), label_of(&value))
                        }
                        None => (row.fields, None),
                    },
                    _ => (row.fields, None),
                },
            };
            let id = out.entries.len() as u64 + 1;
            let entry =
                LogEntry { id, timestamp_ms: row.timestamp_ms, source: row.source, log_type: log_type.into(), fields };
            out.entries.push(LabelledEntry { entry, label, line: number + 1 });
        }
        Ok(out)
    }

    /// The ground truth by id, for [`crate::scoring::Detection::score`].
    pub fn labels(&self) -> Vec<(u64, Option<String>)> {
        self.entries.iter().map(|e| (e.entry.id, e.label.clone())).collect()
    }
}

/// Samples from an author's file, for its own log type.
#[derive(Debug, Clone)]
pub struct FileSamples {
    log_type: String,
    entries: Vec<LogEntry>,
}

impl FileSamples {
    pub fn new(log_type: &str, file: LogFile) -> Self {
        FileSamples { log_type: log_type.into(), entries: file.entries.into_iter().map(|e| e.entry).collect() }
    }
}

impl SampleEntries for FileSamples {
    fn entries(&self, log_type: &str, count: usize) -> Option<Vec<LogEntry>> {
        if log_type != self.log_type || self.entries.is_empty() {
            return None;
        }
        // A short file is cycled, with fresh ids, up to the count asked.
        Some(
            (0..count.max(1))
                .map(|i| LogEntry { id: i as u64 + 1, ..self.entries[i % self.entries.len()].clone() })
                .collect(),
        )
    }
}

/// Samples made up from a log type's schema file: every declared field with
/// a value of its type, varied from entry to entry.
#[derive(Debug, Clone)]
pub struct SchemaSamples {
    files: Arc<SchemaFiles>,
}

impl SchemaSamples {
    pub fn new(files: Arc<SchemaFiles>) -> Self {
        SchemaSamples { files }
    }
}

/// One made-up entry of `shape`, number `n`.
fn made_up(shape: &Shape, n: usize) -> Map<String, Value> {
    let mut fields = Map::new();
    for field in &shape.fields {
        let value = match field.kind {
            Kind::Text => Value::String(format!("{}-{}", field.name, n % 17)),
            Kind::Integer => Value::from((n % 100) as i64),
            Kind::Real => Value::from((n % 100) as f64 / 4.0),
            Kind::Boolean => Value::Bool(n.is_multiple_of(2)),
        };
        fields.insert(field.name.clone(), value);
    }
    fields
}

/// `count` entries of `shape`'s log type, ids from 1, one a second from
/// five sources, each with every declared field.
pub fn made_up_entries(shape: &Shape, count: usize) -> Vec<LogEntry> {
    (0..count)
        .map(|n| LogEntry {
            id: n as u64 + 1,
            timestamp_ms: crate::EPOCH_START_MS + n as i64 * 1_000,
            source: format!("sample-{}", n % 5),
            log_type: shape.log_type.clone(),
            fields: Value::Object(made_up(shape, n)).to_string(),
        })
        .collect()
}

impl SampleEntries for SchemaSamples {
    fn entries(&self, log_type: &str, count: usize) -> Option<Vec<LogEntry>> {
        let shape = self.files.shape(log_type).ok().flatten()?;
        Some(made_up_entries(&shape, count))
    }
}

/// Asks each source in turn; the first that knows the log type answers.
pub struct FirstOf<'a>(pub Vec<&'a dyn SampleEntries>);

impl SampleEntries for FirstOf<'_> {
    fn entries(&self, log_type: &str, count: usize) -> Option<Vec<LogEntry>> {
        self.0.iter().find_map(|samples| samples.entries(log_type, count))
    }
}

/// How many entries of each label a file holds, for a summary line.
pub fn label_counts(file: &LogFile) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in &file.entries {
        *counts.entry(e.label.clone().unwrap_or_else(|| "normal".into())).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_line_or_from_a_field_taken_out() -> std::io::Result<()> {
        let text = concat!(
            r#"{"timestamp_ms": 1, "source": "a", "fields": {"msg": "x", "truth": "-"}, "label": "flood"}"#,
            "\n",
            r#"{"timestamp_ms": 2, "source": "a", "fields": {"msg": "y", "truth": "KERNDTLB"}}"#,
            "\nnot json\n",
        );
        let envelope = LogFile::parse(text.as_bytes(), "bgl", Some(&LabelColumn::named("label")))?;
        assert_eq!(envelope.labels(), vec![(1, Some("flood".into())), (2, None)]);
        assert_eq!(envelope.unreadable.len(), 1);
        let field = LogFile::parse(text.as_bytes(), "bgl", Some(&LabelColumn::named("truth")))?;
        assert_eq!(field.labels(), vec![(1, Some("-".into())), (2, Some("KERNDTLB".into()))]);
        assert_eq!((envelope.labelled_lines, field.labelled_lines), (1, 2));
        assert!(!field.entries[0].entry.fields.contains("truth"), "the agent must not see its answer");
        Ok(())
    }

    #[test]
    fn normal_spellings_are_normal() {
        for normal in [Value::Null, Value::Bool(false), Value::from(0), Value::from("Normal"), Value::from("")] {
            assert_eq!(label_of(&normal), None, "{normal}");
        }
        assert_eq!(label_of(&Value::from(1)), Some("attack".into()));
        assert_eq!(label_of(&Value::from("scan")), Some("scan".into()));
    }

    #[test]
    fn schema_samples_give_every_declared_field() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("bgl.yaml"),
            "log_type: bgl\nversion: 1\nfields:\n  - { name: msg, type: text, required: true }\n  - { name: code, type: integer }\n",
        )?;
        let samples = SchemaSamples::new(Arc::new(SchemaFiles::new(dir.path())));
        let entries = samples.entries("bgl", 3).ok_or("no samples")?;
        assert_eq!(entries.len(), 3);
        assert!(entries[1].fields.contains(r#""msg":"msg-1""#) && entries[1].fields.contains(r#""code":1"#));
        assert!(samples.entries("netflow", 3).is_none());
        Ok(())
    }
}
