//! Reading entries out of a columnar [`LogBatch`].

use serde::Deserialize;

use crate::{AgentError, InvalidEntry, LogBatch, LogEntry};

/// One log entry, borrowed from a batch or a single-entry call.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The source log id.
    pub id: u64,
    /// When the event happened, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The device or sensor that logged it.
    pub source: &'a str,
    /// The log type, for example `wifi`.
    pub log_type: &'a str,
    /// The normalised fields, as one JSON object.
    pub fields: &'a str,
}

/// A reference to an entry, for agents that remember entries of a window
/// and report them later. It is two numbers, so keeping one per event costs
/// no allocation; the host fills in the rest of the entry from its log id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef {
    /// The source log id.
    pub id: u64,
    /// When the event happened, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

impl<'a> Entry<'a> {
    /// Borrows a single entry.
    pub fn from_log_entry(entry: &'a LogEntry) -> Self {
        Entry {
            id: entry.id,
            timestamp_ms: entry.timestamp_ms,
            source: &entry.source,
            log_type: &entry.log_type,
            fields: &entry.fields,
        }
    }

    /// Parses the fields into the agent's own type. A failure is an
    /// [`AgentError::InvalidEntry`] naming this entry.
    pub fn parse<T: Deserialize<'a>>(&self) -> Result<T, AgentError> {
        serde_json::from_str(self.fields).map_err(|e| {
            AgentError::InvalidEntry(InvalidEntry {
                log_id: self.id,
                reason: e.to_string(),
            })
        })
    }

    /// An owned reference to this entry.
    pub fn to_ref(&self) -> EntryRef {
        EntryRef {
            id: self.id,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// Iterates the entries of a batch in order.
#[derive(Debug)]
pub struct EntryIter<'a> {
    batch: &'a LogBatch,
    index: usize,
    sources: std::str::Split<'a, char>,
    fields: std::str::Split<'a, char>,
}

impl<'a> EntryIter<'a> {
    /// Starts at the first entry of `batch`.
    pub fn new(batch: &'a LogBatch) -> Self {
        EntryIter {
            batch,
            index: 0,
            sources: batch.sources.split('\n'),
            fields: batch.fields.split('\n'),
        }
    }
}

impl<'a> Iterator for EntryIter<'a> {
    type Item = Result<Entry<'a>, AgentError>;

    fn next(&mut self) -> Option<Self::Item> {
        let id = *self.batch.ids.get(self.index)?;
        let timestamp_ms = self.batch.timestamps_ms.get(self.index).copied();
        let source = self.sources.next();
        let fields = self.fields.next();
        self.index += 1;
        Some(match (timestamp_ms, source, fields) {
            (Some(timestamp_ms), Some(source), Some(fields)) => Ok(Entry {
                id,
                timestamp_ms,
                source,
                log_type: &self.batch.log_type,
                fields,
            }),
            _ => Err(AgentError::InvalidEntry(InvalidEntry {
                log_id: id,
                reason: "batch columns have different lengths".into(),
            })),
        })
    }
}

/// Packs single entries of one log type into a batch, as the host does.
pub fn batch_from_entries(log_type: &str, schema_version: u32, entries: &[LogEntry]) -> LogBatch {
    let mut batch = LogBatch {
        log_type: log_type.into(),
        schema_version,
        ids: Vec::with_capacity(entries.len()),
        timestamps_ms: Vec::with_capacity(entries.len()),
        sources: String::new(),
        fields: String::new(),
    };
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            batch.sources.push('\n');
            batch.fields.push('\n');
        }
        batch.ids.push(entry.id);
        batch.timestamps_ms.push(entry.timestamp_ms);
        batch.sources.push_str(&entry.source);
        batch.fields.push_str(&entry.fields);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, fields: &str) -> LogEntry {
        LogEntry {
            id,
            timestamp_ms: id as i64,
            source: format!("s{id}"),
            log_type: "dns".into(),
            fields: fields.into(),
        }
    }

    #[test]
    fn batch_round_trips_entries_in_order() {
        let entries = [entry(1, r#"{"a":1}"#), entry(5, r#"{"a":"x\ny"}"#)];
        let batch = batch_from_entries("dns", 1, &entries);
        let read: Vec<(u64, String, String)> = EntryIter::new(&batch)
            .map(|e| e.map(|e| (e.id, e.source.to_string(), e.fields.to_string())))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        assert_eq!(
            read,
            vec![
                (1, "s1".into(), r#"{"a":1}"#.into()),
                (5, "s5".into(), r#"{"a":"x\ny"}"#.into())
            ]
        );
    }

    #[test]
    fn ragged_columns_are_an_error_not_a_panic() {
        let mut batch = batch_from_entries("dns", 1, &[entry(1, "{}")]);
        batch.ids.push(2);
        let results: Vec<_> = EntryIter::new(&batch).collect();
        assert!(results[0].is_ok());
        assert!(matches!(
            results[1],
            Err(AgentError::InvalidEntry(InvalidEntry { log_id: 2, .. }))
        ));
    }
}
