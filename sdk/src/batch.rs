//! Reading a columnar [`LogBatch`]: typed columns, resolved once per batch,
//! read per entry without parsing.

use crate::wit::mcp::agent::types::{Column, ColumnValues};
use crate::{AgentError, InvalidEntry, LogBatch, TextColumn as WitTextColumn};

/// A reference to an entry, for agents that remember entries of a window
/// and report them later. It is two numbers, so keeping one per event costs
/// no allocation; the host fills in the rest of the entry from its log id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryRef {
    /// The source log id.
    pub id: u64,
    /// When the event happened, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// A validated view of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    raw: &'a LogBatch,
}

fn invalid(batch: &LogBatch, reason: String) -> AgentError {
    AgentError::InvalidEntry(InvalidEntry { log_id: batch.ids.first().copied().unwrap_or(0), reason })
}

fn check_text(batch: &LogBatch, name: &str, column: &WitTextColumn) -> Result<(), AgentError> {
    if column.ends.len() != batch.ids.len() {
        return Err(invalid(
            batch,
            format!("field '{name}' has {} values for {} entries", column.ends.len(), batch.ids.len()),
        ));
    }
    let mut start = 0usize;
    for &end in &column.ends {
        let end = end as usize;
        if end < start || column.data.get(start..end).is_none() {
            return Err(invalid(batch, format!("field '{name}' has a bad text offset {end}")));
        }
        start = end;
    }
    Ok(())
}

impl<'a> Batch<'a> {
    /// Checks that every column has one value per entry and that text
    /// offsets are in range, so that reads never fail later.
    pub fn new(raw: &'a LogBatch) -> Result<Self, AgentError> {
        let len = raw.ids.len();
        if raw.timestamps_ms.len() != len {
            return Err(invalid(raw, format!("{} timestamps for {len} entries", raw.timestamps_ms.len())));
        }
        check_text(raw, "source", &raw.sources)?;
        for column in &raw.columns {
            let values = match &column.values {
                ColumnValues::Text(text) => {
                    check_text(raw, &column.name, text)?;
                    len
                }
                ColumnValues::Integer(v) => v.len(),
                ColumnValues::Real(v) => v.len(),
                ColumnValues::Boolean(v) => v.len(),
            };
            if values != len {
                return Err(invalid(raw, format!("field '{}' has {values} values for {len} entries", column.name)));
            }
            if column.missing.iter().any(|&m| m as usize >= len) || !column.missing.is_sorted() {
                return Err(invalid(
                    raw,
                    format!("field '{}' lists missing entries out of order or range", column.name),
                ));
            }
        }
        Ok(Batch { raw })
    }

    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.raw.ids.len()
    }

    /// True when the batch has no entries.
    pub fn is_empty(&self) -> bool {
        self.raw.ids.is_empty()
    }

    /// The log type of every entry.
    pub fn log_type(&self) -> &'a str {
        &self.raw.log_type
    }

    /// The log id of entry `index`.
    pub fn id(&self, index: usize) -> u64 {
        self.raw.ids.get(index).copied().unwrap_or_default()
    }

    /// When entry `index` happened, in milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self, index: usize) -> i64 {
        self.raw.timestamps_ms.get(index).copied().unwrap_or_default()
    }

    /// The device or sensor that logged entry `index`.
    pub fn source(&self, index: usize) -> &'a str {
        Text { data: &self.raw.sources.data, ends: &self.raw.sources.ends, missing: &[] }.get(index).unwrap_or("")
    }

    /// A reference to entry `index`, for anomalies.
    pub fn entry(&self, index: usize) -> EntryRef {
        EntryRef { id: self.id(index), timestamp_ms: self.timestamp_ms(index) }
    }

    fn column(&self, name: &str) -> Option<&'a Column> {
        self.raw.columns.iter().find(|c| c.name == name)
    }

    fn required<T>(&self, name: &str, kind: &str, found: Option<T>) -> Result<T, AgentError> {
        found.ok_or_else(|| match self.column(name) {
            Some(_) => invalid(self.raw, format!("field '{name}' is not {kind}")),
            None if self.is_empty() => invalid(self.raw, format!("no field '{name}'")),
            None => invalid(self.raw, format!("no entry of the batch has field '{name}'")),
        })
    }

    /// The text field `name`, if the batch has it.
    pub fn text_opt(&self, name: &str) -> Option<Text<'a>> {
        match &self.column(name)?.values {
            ColumnValues::Text(t) => Some(Text { data: &t.data, ends: &t.ends, missing: &self.column(name)?.missing }),
            _ => None,
        }
    }

    /// The text field `name`; an error when the batch lacks it.
    pub fn text(&self, name: &str) -> Result<Text<'a>, AgentError> {
        self.required(name, "text", self.text_opt(name))
    }

    /// The integer field `name`, if the batch has it.
    pub fn integer_opt(&self, name: &str) -> Option<Values<'a, i64>> {
        let column = self.column(name)?;
        match &column.values {
            ColumnValues::Integer(v) => Some(Values { values: v, missing: &column.missing }),
            _ => None,
        }
    }

    /// The integer field `name`; an error when the batch lacks it.
    pub fn integer(&self, name: &str) -> Result<Values<'a, i64>, AgentError> {
        self.required(name, "an integer", self.integer_opt(name))
    }

    /// The numeric field `name` (integer or real), if the batch has it.
    pub fn number_opt(&self, name: &str) -> Option<Number<'a>> {
        let column = self.column(name)?;
        match &column.values {
            ColumnValues::Integer(v) => Some(Number::Integer(Values { values: v, missing: &column.missing })),
            ColumnValues::Real(v) => Some(Number::Real(Values { values: v, missing: &column.missing })),
            _ => None,
        }
    }

    /// The numeric field `name`; an error when the batch lacks it.
    pub fn number(&self, name: &str) -> Result<Number<'a>, AgentError> {
        self.required(name, "a number", self.number_opt(name))
    }

    /// The boolean field `name`, if the batch has it.
    pub fn boolean_opt(&self, name: &str) -> Option<Values<'a, bool>> {
        let column = self.column(name)?;
        match &column.values {
            ColumnValues::Boolean(v) => Some(Values { values: v, missing: &column.missing }),
            _ => None,
        }
    }
}

fn is_missing(missing: &[u32], index: usize) -> bool {
    !missing.is_empty() && u32::try_from(index).is_ok_and(|i| missing.binary_search(&i).is_ok())
}

/// A text field of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    data: &'a str,
    ends: &'a [u32],
    missing: &'a [u32],
}

impl<'a> Text<'a> {
    /// The value of entry `index`; `None` when it is missing.
    pub fn get(&self, index: usize) -> Option<&'a str> {
        if is_missing(self.missing, index) {
            return None;
        }
        let end = *self.ends.get(index)? as usize;
        let start = if index == 0 { 0 } else { *self.ends.get(index - 1)? as usize };
        self.data.get(start..end)
    }

    /// The value of entry `index`, or "" when it is missing.
    pub fn or_empty(&self, index: usize) -> &'a str {
        self.get(index).unwrap_or("")
    }
}

/// An integer or boolean field of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a, T> {
    values: &'a [T],
    missing: &'a [u32],
}

impl<T: Copy + Default> Values<'_, T> {
    /// The value of entry `index`; `None` when it is missing.
    pub fn get(&self, index: usize) -> Option<T> {
        if is_missing(self.missing, index) { None } else { self.values.get(index).copied() }
    }

    /// The value of entry `index`, or the type's default when it is missing.
    pub fn or_default(&self, index: usize) -> T {
        self.get(index).unwrap_or_default()
    }
}

/// A numeric field, whichever way the host typed it.
#[derive(Debug, Clone, Copy)]
pub enum Number<'a> {
    /// Whole numbers.
    Integer(Values<'a, i64>),
    /// Real numbers.
    Real(Values<'a, f64>),
}

impl Number<'_> {
    /// The value of entry `index` as f64; `None` when it is missing.
    pub fn get(&self, index: usize) -> Option<f64> {
        match self {
            Number::Integer(v) => v.get(index).map(|i| i as f64),
            Number::Real(v) => v.get(index),
        }
    }

    /// The value of entry `index`, or 0 when it is missing.
    pub fn or_zero(&self, index: usize) -> f64 {
        self.get(index).unwrap_or(0.0)
    }
}
