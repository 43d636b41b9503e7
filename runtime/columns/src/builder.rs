//! Building a columnar [`LogBatch`] from JSON rows. The host builds every
//! batch it sends with this; agents use it to test on JSON fixtures.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::shape::{Kind, Shape};
use crate::{Column, ColumnValues, LogBatch, TextColumn};

/// A scalar field value, borrowed from the JSON text where it can be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
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
    Text {
        data: String,
        ends: Vec<u32>,
    },
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
    /// The last row attempt that named this column, to find repeated and
    /// absent fields without scanning.
    seen_at: u64,
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
    attempt: u64,
    /// Reused per row: the column each field goes to (`None`: a new one).
    targets: Vec<Option<usize>>,
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
            attempt: 0,
            targets: Vec::new(),
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
        let row = parse_row(fields)?;
        self.push_row(id, timestamp_ms, source, row)
    }

    /// The column of field `name`, the `position`-th of its row. Rows of one
    /// source list their fields in the same order, so the column at the same
    /// position is tried first and the map only on a miss.
    fn column_of(&self, name: &str, position: usize) -> Option<usize> {
        match self.columns.get(position) {
            Some(column) if column.name == name => Some(position),
            _ => self.by_name.get(name).copied(),
        }
    }

    fn push_row(&mut self, id: u64, timestamp_ms: i64, source: &str, Row(row): Row<'_>) -> Result<(), String> {
        let rows = self.ids.len();
        let row_index = u32::try_from(rows).map_err(|_| "batch is full".to_string())?;
        if self.sources.len() + source.len() > MAX_TEXT_BYTES {
            return Err("batch text is full".into());
        }
        // Check everything before changing anything, so a refused row leaves
        // the batch as it was. `attempt` marks the columns this row names.
        self.attempt += 1;
        let attempt = self.attempt;
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        let checked = self.check_row(&row, attempt, &mut targets);
        if let Err(reason) = checked {
            self.targets = targets;
            return Err(reason);
        }
        for ((name, value), target) in row.into_iter().zip(targets.iter()) {
            let index = match target {
                Some(index) => *index,
                None => {
                    let mut column = ColumnBuilder {
                        name: name.to_string(),
                        data: Data::Unknown,
                        missing: (0..row_index).collect(),
                        seen_at: attempt,
                    };
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
            }
        }
        self.targets = targets;
        for column in self.columns.iter_mut().filter(|c| c.seen_at != attempt) {
            column.push_default(row_index);
        }
        self.ids.push(id);
        self.timestamps_ms.push(timestamp_ms);
        self.sources.push_str(source);
        self.source_ends.push(text_end(&self.sources));
        Ok(())
    }

    fn check_row(
        &mut self,
        row: &[(Cow<'_, str>, Scalar<'_>)],
        attempt: u64,
        targets: &mut Vec<Option<usize>>,
    ) -> Result<(), String> {
        for (position, (name, value)) in row.iter().enumerate() {
            if matches!(value, Scalar::Nested) {
                return Err(format!("field '{name}' is an object or array; fields must be scalars"));
            }
            let target = self.column_of(name, position);
            match target.and_then(|c| self.columns.get_mut(c)) {
                Some(column) => {
                    if column.seen_at == attempt {
                        return Err(format!("field '{name}' appears twice"));
                    }
                    column.seen_at = attempt;
                    if !column.accepts(value) {
                        return Err(format!(
                            "field '{name}' is {} in this batch but {} here",
                            column.data.kind(),
                            scalar_kind(value)
                        ));
                    }
                    if let (Data::Text { data, .. }, Scalar::Text(t)) = (&column.data, value)
                        && data.len() + t.len() > MAX_TEXT_BYTES
                    {
                        return Err("batch text is full".into());
                    }
                }
                // A field new to the batch: rare, so a scan for repeats is fine.
                None if row[..position].iter().any(|(other, _)| other == name) => {
                    return Err(format!("field '{name}' appears twice"));
                }
                None => {}
            }
            targets.push(target);
        }
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

fn parse_row(fields: &str) -> Result<Row<'_>, String> {
    serde_json::from_str::<Row<'_>>(fields).map_err(|e| format!("fields are not a JSON object: {e}"))
}

/// One raw row, as a source holds it.
#[derive(Debug, Clone, Copy)]
pub struct RawRow<'a> {
    /// The log id.
    pub id: u64,
    /// When it happened, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The device or sensor that logged it.
    pub source: &'a str,
    /// The fields, one JSON object.
    pub fields: &'a str,
    /// The schema version the row was written under; 0 when unknown, which
    /// is read as the current version.
    pub schema_version: u32,
}

/// Builds a batch from `rows`, typing each field by what most rows hold, so
/// that one odd row, wherever it sits, is refused instead of deciding the
/// type for the rest. Returns the batch and the refused rows (index into
/// `rows`, reason).
pub fn build_batch(log_type: &str, schema_version: u32, rows: &[RawRow<'_>]) -> (LogBatch, Vec<(usize, String)>) {
    let shape = Shape { log_type: log_type.to_string(), version: schema_version, ..Shape::default() };
    build_shaped_batch(&shape, rows)
}

/// Builds a batch from `rows` normalised to `shape`: renamed fields of older
/// rows take their current names, declared fields must have their declared
/// type, required fields must be there and defaults fill the rest. Fields the
/// shape does not declare are typed by what most rows hold. Returns the batch
/// and the refused rows (index into `rows`, reason).
pub fn build_shaped_batch(shape: &Shape, rows: &[RawRow<'_>]) -> (LogBatch, Vec<(usize, String)>) {
    let (log_type, schema_version) = (shape.log_type.as_str(), shape.version);
    let mut refused = Vec::new();
    let mut parsed = Vec::with_capacity(rows.len());
    // Fields in the order they first appear, so that columns follow the
    // rows' own order and `column_of` finds them by position.
    let mut votes: Vec<(&str, [usize; 4])> = Vec::new();
    for (index, raw) in rows.iter().enumerate() {
        let shaped = parse_row(raw.fields).and_then(|mut row| {
            let version = if raw.schema_version == 0 { shape.version } else { raw.schema_version };
            shape.normalise(&mut row.0, version).map(|()| row)
        });
        match shaped {
            Ok(row) => {
                for (position, (name, value)) in row.0.iter().enumerate() {
                    if shape.kind_of(name).is_some() {
                        continue;
                    }
                    let slot = match value {
                        Scalar::Text(_) => 0,
                        Scalar::Integer(_) => 1,
                        Scalar::Real(_) => 2,
                        Scalar::Boolean(_) => 3,
                        Scalar::Null | Scalar::Nested => continue,
                    };
                    let known = match votes.get(position) {
                        Some((n, _)) if *n == name.as_ref() => Some(position),
                        _ => votes.iter().position(|(n, _)| *n == name.as_ref()),
                    };
                    match (known, name) {
                        (Some(index), _) => votes[index].1[slot] += 1,
                        (None, Cow::Borrowed(name)) => {
                            let mut counts = [0; 4];
                            counts[slot] = 1;
                            votes.push((name, counts));
                        }
                        // An escaped name: its column is typed by its first row.
                        (None, Cow::Owned(_)) => {}
                    }
                }
                parsed.push((index, row));
            }
            Err(reason) => refused.push((index, reason)),
        }
    }
    let mut builder = BatchBuilder::new(log_type, schema_version);
    for spec in &shape.fields {
        let data = match spec.kind {
            Kind::Text => Data::Text { data: String::new(), ends: Vec::new() },
            Kind::Integer => Data::Integer(Vec::new()),
            Kind::Real => Data::Real(Vec::new()),
            Kind::Boolean => Data::Boolean(Vec::new()),
        };
        builder.columns.push(ColumnBuilder { name: spec.name.clone(), data, missing: Vec::new(), seen_at: 0 });
        builder.by_name.insert(spec.name.clone(), builder.columns.len() - 1);
    }
    for (name, [text, integer, real, boolean]) in votes {
        let numbers = integer + real;
        let data = if text >= numbers.max(boolean) {
            Data::Text { data: String::new(), ends: Vec::new() }
        } else if boolean > numbers {
            Data::Boolean(Vec::new())
        } else if real > 0 {
            Data::Real(Vec::new())
        } else {
            Data::Integer(Vec::new())
        };
        builder.columns.push(ColumnBuilder { name: name.to_string(), data, missing: Vec::new(), seen_at: 0 });
        builder.by_name.insert(name.to_string(), builder.columns.len() - 1);
    }
    for (index, row) in parsed {
        let raw = &rows[index];
        if let Err(reason) = builder.push_row(raw.id, raw.timestamp_ms, raw.source, row) {
            refused.push((index, reason));
        }
    }
    refused.sort_by_key(|(index, _)| *index);
    (builder.finish(), refused)
}

impl Scalar<'_> {
    pub(crate) fn kind_name(&self) -> &'static str {
        scalar_kind(self)
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
