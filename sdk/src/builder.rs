//! Building a columnar [`LogBatch`] from JSON rows. The host builds every
//! batch it sends with this; agents use it to test on JSON fixtures.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::wit::mcp::agent::types::{Column, ColumnValues};
use crate::{LogBatch, TextColumn};

/// A scalar field value, borrowed from the JSON text where it can be.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Text(Cow<'a, str>),
    Integer(i64),
    Real(f64),
    Boolean(bool),
    Null,
    Nested,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Integer(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(Scalar::Integer).or(Ok(Scalar::Real(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Real(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Boolean(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The fields of one row, in order.
struct Row<'a>(Vec<(Cow<'a, str>, Scalar<'a>)>);

impl<'de> de::Deserialize<'de> for Row<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, Scalar<'de>>()? {
                    fields.push((key, value));
                }
                Ok(Row(fields))
            }
        }
        d.deserialize_map(RowVisitor)
    }
}

#[derive(Debug)]
enum Data {
    /// Only missing values so far; the first value decides the type.
    Unknown,
    Text { data: String, ends: Vec<u32> },
    Integer(Vec<i64>),
    Real(Vec<f64>),
    Boolean(Vec<bool>),
}

impl Data {
    fn kind(&self) -> &'static str {
        match self {
            Data::Unknown => "unknown",
            Data::Text { .. } => "text",
            Data::Integer(_) => "an integer",
            Data::Real(_) => "a real number",
            Data::Boolean(_) => "a boolean",
        }
    }
}

#[derive(Debug)]
struct ColumnBuilder {
    name: String,
    data: Data,
    missing: Vec<u32>,
    /// The row that last wrote this column, to find absent fields.
    written_at: usize,
}

impl ColumnBuilder {
    fn push_default(&mut self, row: u32) {
        self.missing.push(row);
        match &mut self.data {
            Data::Unknown => {}
            Data::Text { data, ends } => ends.push(text_end(data)),
            Data::Integer(v) => v.push(0),
            Data::Real(v) => v.push(0.0),
            Data::Boolean(v) => v.push(false),
        }
    }

    /// Gives an untyped column its type, with defaults for earlier rows.
    fn adopt(&mut self, value: &Scalar<'_>, rows: usize) {
        if !matches!(self.data, Data::Unknown) {
            return;
        }
        self.data = match value {
            Scalar::Text(_) => Data::Text { data: String::new(), ends: vec![0; rows] },
            Scalar::Integer(_) => Data::Integer(vec![0; rows]),
            Scalar::Real(_) => Data::Real(vec![0.0; rows]),
            Scalar::Boolean(_) => Data::Boolean(vec![false; rows]),
            Scalar::Null | Scalar::Nested => Data::Unknown,
        };
    }

    /// Whether `value` fits this column, allowing integers into reals and
    /// promoting an integer column when a real arrives.
    fn accepts(&self, value: &Scalar<'_>) -> bool {
        matches!(
            (&self.data, value),
            (_, Scalar::Null)
                | (Data::Unknown, _)
                | (Data::Text { .. }, Scalar::Text(_))
                | (Data::Integer(_), Scalar::Integer(_) | Scalar::Real(_))
                | (Data::Real(_), Scalar::Integer(_) | Scalar::Real(_))
                | (Data::Boolean(_), Scalar::Boolean(_))
        )
    }

    fn push(&mut self, value: Scalar<'_>, row: u32, rows: usize) {
        if let (Data::Integer(v), Scalar::Real(_)) = (&self.data, &value) {
            self.data = Data::Real(v.iter().map(|i| *i as f64).collect());
        }
        self.adopt(&value, rows);
        match (&mut self.data, value) {
            (Data::Text { data, ends }, Scalar::Text(t)) => {
                data.push_str(&t);
                ends.push(text_end(data));
            }
            (Data::Integer(v), Scalar::Integer(i)) => v.push(i),
            (Data::Real(v), Scalar::Integer(i)) => v.push(i as f64),
            (Data::Real(v), Scalar::Real(r)) => v.push(r),
            (Data::Boolean(v), Scalar::Boolean(b)) => v.push(b),
            _ => self.push_default(row),
        }
    }

    fn finish(self, rows: usize) -> Column {
        let values = match self.data {
            // A field that was null everywhere: text, all missing.
            Data::Unknown => ColumnValues::Text(TextColumn { data: String::new(), ends: vec![0; rows] }),
            Data::Text { data, ends } => ColumnValues::Text(TextColumn { data, ends }),
            Data::Integer(v) => ColumnValues::Integer(v),
            Data::Real(v) => ColumnValues::Real(v),
            Data::Boolean(v) => ColumnValues::Boolean(v),
        };
        Column { name: self.name, values, missing: self.missing }
    }
}

fn text_end(data: &str) -> u32 {
    u32::try_from(data.len()).unwrap_or(u32::MAX)
}

/// Most text one batch may hold per column (the offsets are u32).
const MAX_TEXT_BYTES: usize = u32::MAX as usize / 2;

/// Accumulates JSON rows into the columns of one batch.
#[derive(Debug)]
pub struct BatchBuilder {
    log_type: String,
    schema_version: u32,
    ids: Vec<u64>,
    timestamps_ms: Vec<i64>,
    sources: String,
    source_ends: Vec<u32>,
    columns: Vec<ColumnBuilder>,
    by_name: HashMap<String, usize>,
}

impl BatchBuilder {
    /// An empty batch of `log_type` at `schema_version`.
    pub fn new(log_type: &str, schema_version: u32) -> Self {
        BatchBuilder {
            log_type: log_type.into(),
            schema_version,
            ids: Vec::new(),
            timestamps_ms: Vec::new(),
            sources: String::new(),
            source_ends: Vec::new(),
            columns: Vec::new(),
            by_name: HashMap::new(),
        }
    }

    /// Entries added so far.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no entry was added.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds one row whose fields are a JSON object of scalars. A row that
    /// does not fit (not an object, a nested value, a duplicate field, or a
    /// type other than the batch's for that field) is refused with the
    /// reason, and the batch is left as it was.
    pub fn push_json(&mut self, id: u64, timestamp_ms: i64, source: &str, fields: &str) -> Result<(), String> {
        let Row(row) = serde_json::from_str::<Row<'_>>(fields).map_err(|e| format!("fields are not a JSON object: {e}"))?;
        let rows = self.ids.len();
        let row_index = u32::try_from(rows).map_err(|_| "batch is full".to_string())?;
        if self.sources.len() + source.len() > MAX_TEXT_BYTES {
            return Err("batch text is full".into());
        }
        for (i, (name, value)) in row.iter().enumerate() {
            if matches!(value, Scalar::Nested) {
                return Err(format!("field '{name}' is an object or array; fields must be scalars"));
            }
            if row[..i].iter().any(|(other, _)| other == name) {
                return Err(format!("field '{name}' appears twice"));
            }
            if let Some(column) = self.by_name.get(name.as_ref()).and_then(|&c| self.columns.get(c)) {
                if !column.accepts(value) {
                    return Err(format!("field '{name}' is {} in this batch but {} here", column.data.kind(), scalar_kind(value)));
                }
                if let (Data::Text { data, .. }, Scalar::Text(t)) = (&column.data, value)
                    && data.len() + t.len() > MAX_TEXT_BYTES
                {
                    return Err("batch text is full".into());
                }
            }
        }
        let generation = rows + 1;
        for (name, value) in row {
            let index = match self.by_name.get(name.as_ref()) {
                Some(&index) => index,
                None => {
                    let mut column = ColumnBuilder { name: name.to_string(), data: Data::Unknown, missing: (0..row_index).collect(), written_at: 0 };
                    column.adopt(&value, rows);
                    self.columns.push(column);
                    self.by_name.insert(name.into_owned(), self.columns.len() - 1);
                    self.columns.len() - 1
                }
            };
            if let Some(column) = self.columns.get_mut(index) {
                if matches!(value, Scalar::Null) {
                    column.push_default(row_index);
                } else {
                    column.push(value, row_index, rows);
                }
                column.written_at = generation;
            }
        }
        for column in self.columns.iter_mut().filter(|c| c.written_at != generation) {
            column.push_default(row_index);
            column.written_at = generation;
        }
        self.ids.push(id);
        self.timestamps_ms.push(timestamp_ms);
        self.sources.push_str(source);
        self.source_ends.push(text_end(&self.sources));
        Ok(())
    }

    /// The finished batch.
    pub fn finish(self) -> LogBatch {
        let rows = self.ids.len();
        LogBatch {
            log_type: self.log_type,
            schema_version: self.schema_version,
            ids: self.ids,
            timestamps_ms: self.timestamps_ms,
            sources: TextColumn { data: self.sources, ends: self.source_ends },
            columns: self.columns.into_iter().map(|c| c.finish(rows)).collect(),
        }
    }
}

fn scalar_kind(value: &Scalar<'_>) -> &'static str {
    match value {
        Scalar::Text(_) => "text",
        Scalar::Integer(_) => "an integer",
        Scalar::Real(_) => "a real number",
        Scalar::Boolean(_) => "a boolean",
        Scalar::Null => "null",
        Scalar::Nested => "nested",
    }
}
