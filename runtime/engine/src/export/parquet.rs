//! Parquet: typed columns (timestamps as UTC milliseconds, the score as a
//! double, optional strings as optional) in row groups. Parquet writes a
//! row group column by column, so a group's rows are gathered first; a
//! group ends at a row count or a byte size, whichever comes first, which
//! is what bounds an export's memory.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::parser::parse_message_type;

use mcp_storage::store::AnomalyRecord;

use super::ExportError;

/// The file's schema: the columns of the other formats, in their order.
const SCHEMA: &str = "
message anomaly {
    REQUIRED INT64 id;
    REQUIRED BYTE_ARRAY agent (STRING);
    REQUIRED BYTE_ARRAY agent_sha256 (STRING);
    REQUIRED BYTE_ARRAY log_type (STRING);
    REQUIRED INT64 log_id;
    REQUIRED BYTE_ARRAY source (STRING);
    REQUIRED INT64 log_ts_ms (TIMESTAMP(MILLIS,true));
    REQUIRED DOUBLE score;
    REQUIRED BYTE_ARRAY label (STRING);
    REQUIRED BYTE_ARRAY severity (STRING);
    REQUIRED BYTE_ARRAY reason (STRING);
    REQUIRED INT64 detected_at_ms (TIMESTAMP(MILLIS,true));
    REQUIRED INT32 schema_version;
    OPTIONAL BYTE_ARRAY model (STRING);
    OPTIONAL BYTE_ARRAY entry_fields (STRING);
}";

/// Text gathered for one row group before it is written, whatever its rows.
const ROW_GROUP_BYTES: usize = 32 << 20;

/// Writes anomalies to a Parquet file a row group at a time.
pub(super) struct ParquetWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    group: Vec<AnomalyRecord>,
    group_bytes: usize,
    group_rows: usize,
}

impl<W: Write + Send> ParquetWriter<W> {
    pub(super) fn new(out: W, group_rows: usize) -> Result<Self, ExportError> {
        let schema = Arc::new(parse_message_type(SCHEMA)?);
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("mcp {}", env!("CARGO_PKG_VERSION")))
            .build();
        let file = SerializedFileWriter::new(out, schema, Arc::new(properties))?;
        Ok(ParquetWriter { file, group: Vec::new(), group_bytes: 0, group_rows: group_rows.max(1) })
    }

    pub(super) fn write(&mut self, records: &[AnomalyRecord]) -> Result<(), ExportError> {
        for record in records {
            self.group_bytes += text_bytes(record);
            self.group.push(record.clone());
            if self.group.len() >= self.group_rows || self.group_bytes >= ROW_GROUP_BYTES {
                self.flush_group()?;
            }
        }
        Ok(())
    }

    /// Bytes handed to the file so far.
    pub(super) fn bytes_written(&self) -> u64 {
        self.file.bytes_written() as u64
    }

    /// Writes what is gathered and the footer; the writer it was given.
    pub(super) fn finish(mut self) -> Result<W, ExportError> {
        self.flush_group()?;
        Ok(self.file.into_inner()?)
    }

    fn flush_group(&mut self) -> Result<(), ExportError> {
        if self.group.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.group);
        self.group_bytes = 0;
        let mut group = self.file.next_row_group()?;
        let mut column = 0;
        while let Some(mut writer) = group.next_column()? {
            write_column(&mut writer, column, &rows)?;
            writer.close()?;
            column += 1;
        }
        group.close()?;
        Ok(())
    }
}

fn text_bytes(r: &AnomalyRecord) -> usize {
    r.agent.len()
        + r.agent_sha256.len()
        + r.log_type.len()
        + r.source.len()
        + r.label.len()
        + r.severity.len()
        + r.reason.len()
        + r.model.as_ref().map_or(0, String::len)
        + r.entry_fields.as_ref().map_or(0, String::len)
}

fn strings<'a>(rows: &'a [AnomalyRecord], field: impl Fn(&'a AnomalyRecord) -> &'a str) -> Vec<ByteArray> {
    rows.iter().map(|r| ByteArray::from(field(r))).collect()
}

/// An optional column's present values and its definition levels.
fn optional_strings<'a>(
    rows: &'a [AnomalyRecord],
    field: impl Fn(&'a AnomalyRecord) -> Option<&'a str>,
) -> (Vec<ByteArray>, Vec<i16>) {
    let values = rows.iter().filter_map(|r| field(r).map(ByteArray::from)).collect();
    let levels = rows.iter().map(|r| i16::from(field(r).is_some())).collect();
    (values, levels)
}

/// Writes column `index` of [`SCHEMA`] for `rows`.
fn write_column(
    writer: &mut SerializedColumnWriter<'_>,
    index: usize,
    rows: &[AnomalyRecord],
) -> Result<(), ExportError> {
    let int64 = |writer: &mut SerializedColumnWriter<'_>, values: Vec<i64>| {
        writer.typed::<Int64Type>().write_batch(&values, None, None).map(drop)
    };
    let text = |writer: &mut SerializedColumnWriter<'_>, values: Vec<ByteArray>| {
        writer.typed::<ByteArrayType>().write_batch(&values, None, None).map(drop)
    };
    let optional_text = |writer: &mut SerializedColumnWriter<'_>, (values, levels): (Vec<ByteArray>, Vec<i16>)| {
        writer.typed::<ByteArrayType>().write_batch(&values, Some(&levels), None).map(drop)
    };
    match index {
        0 => int64(writer, rows.iter().map(|r| r.id).collect()),
        1 => text(writer, strings(rows, |r| &r.agent)),
        2 => text(writer, strings(rows, |r| &r.agent_sha256)),
        3 => text(writer, strings(rows, |r| &r.log_type)),
        4 => int64(writer, rows.iter().map(|r| i64::try_from(r.log_id).unwrap_or(i64::MAX)).collect()),
        5 => text(writer, strings(rows, |r| &r.source)),
        6 => int64(writer, rows.iter().map(|r| r.log_ts_ms).collect()),
        7 => {
            let scores: Vec<f64> = rows.iter().map(|r| r.score).collect();
            writer.typed::<DoubleType>().write_batch(&scores, None, None).map(drop)
        }
        8 => text(writer, strings(rows, |r| &r.label)),
        9 => text(writer, strings(rows, |r| &r.severity)),
        10 => text(writer, strings(rows, |r| &r.reason)),
        11 => int64(writer, rows.iter().map(|r| r.detected_at_ms).collect()),
        12 => {
            let versions: Vec<i32> = rows.iter().map(|r| i32::try_from(r.schema_version).unwrap_or(i32::MAX)).collect();
            writer.typed::<Int32Type>().write_batch(&versions, None, None).map(drop)
        }
        13 => optional_text(writer, optional_strings(rows, |r| r.model.as_deref())),
        14 => optional_text(writer, optional_strings(rows, |r| r.entry_fields.as_deref())),
        _ => return Err(ExportError::Parquet(parquet::errors::ParquetError::General(format!("no column {index}")))),
    }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    fn anomaly(id: i64, model: Option<&str>) -> AnomalyRecord {
        AnomalyRecord {
            id,
            agent: "wifi".into(),
            agent_sha256: "00".into(),
            log_type: "wifi".into(),
            log_id: id as u64 * 10,
            source: "ap-1".into(),
            log_ts_ms: 1_700_000_000_000 + id,
            score: 0.25,
            label: "deauth".into(),
            severity: "low".into(),
            reason: "r".into(),
            detected_at_ms: 1_800_000_000_000,
            schema_version: 2,
            model: model.map(String::from),
            entry_fields: None,
        }
    }

    #[test]
    fn columns_are_typed_and_groups_split_at_the_row_count() -> Result<(), ExportError> {
        let mut writer = ParquetWriter::new(tempfile::tempfile()?, 2)?;
        writer.write(&[anomaly(1, Some("m@1")), anomaly(2, None), anomaly(3, None)])?;
        let reader = SerializedFileReader::new(writer.finish()?)?;
        assert_eq!(reader.metadata().num_row_groups(), 2);
        let rows: Vec<_> = reader.get_row_iter(None)?.collect::<Result<_, _>>()?;
        assert_eq!(rows.len(), 3);
        let first: Vec<(String, Field)> = rows[0].get_column_iter().map(|(n, f)| (n.clone(), f.clone())).collect();
        assert_eq!(first[0], ("id".to_string(), Field::Long(1)));
        assert_eq!(first[6], ("log_ts_ms".to_string(), Field::TimestampMillis(1_700_000_000_001)));
        assert_eq!(first[7], ("score".to_string(), Field::Double(0.25)));
        assert_eq!(first[13], ("model".to_string(), Field::Str("m@1".into())));
        assert_eq!(rows[1].get_column_iter().nth(13).map(|(_, f)| f.clone()), Some(Field::Null));
        Ok(())
    }
}
