//! Exports: a tenant's anomalies that pass a filter, walked window by
//! window from the store (so memory stays flat however many rows) and
//! written as JSON Lines, CSV or Parquet under a temporary name inside the
//! export folder, renamed when complete, with the file's size and sha256.
//! A failed or cancelled export leaves no file behind.

mod parquet;
mod text;

use std::io::Write;
use std::ops::ControlFlow;

use sha2::{Digest, Sha256};

use mcp_storage::export_scan::ExportFilter;
use mcp_storage::reads::AnomalyReads;
use mcp_storage::store::StoreError;

/// The columns of every format, in order: the fields of an anomaly record.
pub const COLUMNS: [&str; 15] = [
    "id",
    "agent",
    "agent_sha256",
    "log_type",
    "log_id",
    "source",
    "log_ts_ms",
    "score",
    "label",
    "severity",
    "reason",
    "detected_at_ms",
    "schema_version",
    "model",
    "entry_fields",
];

/// The formats an export is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    JsonLines,
    /// A header row, then one row per anomaly.
    Csv,
    /// Typed columns in row groups, Snappy-compressed.
    Parquet,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 3] = [ExportFormat::JsonLines, ExportFormat::Csv, ExportFormat::Parquet];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::JsonLines => "jsonl",
            ExportFormat::Csv => "csv",
            ExportFormat::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::JsonLines => "application/jsonl",
            ExportFormat::Csv => "text/csv",
            ExportFormat::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Why an export did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Read(#[from] mcp_storage::reads::ReadError),
    #[error("{0}")]
    Unavailable(String),
    #[error("writing the export file: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing a CSV row: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing a JSON line: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing Parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("the export reached its limit of {limit} rows; narrow the filters")]
    TooManyRows { limit: u64 },
    #[error("cancelled")]
    Cancelled,
}

/// A complete export file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// How far an export has gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportProgress {
    /// Rows written.
    pub rows: u64,
    /// Bytes written to the file.
    pub bytes: u64,
    /// Anomalies looked at so far: those within the walk's index range.
    pub examined: u64,
    /// Anomalies the walk will look at in all (counted when it starts), an
    /// upper bound of the rows.
    pub to_examine: u64,
    /// Set on the last report, made when the file is whole but not yet in
    /// place: a cancellation seen then still leaves no file.
    pub complete: bool,
}

impl ExportProgress {
    /// The share of the walk done, 0 to 100.
    pub fn percent(&self) -> f64 {
        if self.to_examine == 0 { 100.0 } else { (self.examined as f64 * 100.0 / self.to_examine as f64).min(100.0) }
    }
}

/// Counts and hashes what passes through to the file.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hash.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What one export is: its filters, its format and its bounds.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub filter: ExportFilter,
    pub format: ExportFormat,
    /// Anomalies looked at per window of the walk.
    pub page_rows: u32,
    /// The most rows one export may hold.
    pub max_rows: u64,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
}

/// Where rows go, by format.
enum Sink<W: Write + Send> {
    JsonLines(W),
    Csv(W),
    Parquet(Box<parquet::ParquetWriter<W>>),
}

impl<W: Write + Send> Sink<W> {
    fn open(format: ExportFormat, mut out: W, row_group_rows: usize) -> Result<Self, ExportError> {
        Ok(match format {
            ExportFormat::JsonLines => Sink::JsonLines(out),
            ExportFormat::Csv => {
                text::csv_header(&mut out)?;
                Sink::Csv(out)
            }
            ExportFormat::Parquet => Sink::Parquet(Box::new(parquet::ParquetWriter::new(out, row_group_rows)?)),
        })
    }

    fn write(&mut self, records: &[mcp_storage::store::AnomalyRecord]) -> Result<(), ExportError> {
        match self {
            Sink::JsonLines(out) => text::json_lines(out, records),
            Sink::Csv(out) => text::csv_rows(out, records),
            Sink::Parquet(writer) => writer.write(records),
        }
    }

    fn finish(self) -> Result<W, ExportError> {
        match self {
            Sink::JsonLines(out) | Sink::Csv(out) => Ok(out),
            Sink::Parquet(writer) => writer.finish(),
        }
    }
}

/// Writes the export of `spec` as `file_name` inside `dir`, showing
/// `progress` how far it has gone after each window (it may cancel).
pub fn write_export(
    store: AnomalyReads<'_>,
    spec: &ExportSpec,
    dir: &cap_std::fs::Dir,
    file_name: &str,
    progress: &mut dyn FnMut(&ExportProgress) -> ControlFlow<()>,
) -> Result<ExportedFile, ExportError> {
    let partial = format!("{file_name}.part");
    let written = write_partial(store, spec, dir, &partial, progress)
        .and_then(|exported| dir.rename(&partial, dir, file_name).map(|()| exported).map_err(ExportError::from));
    match written {
        Ok(exported) => Ok(exported),
        Err(error) => {
            if let Err(e) = dir.remove_file(&partial) {
                tracing::warn!(file = partial, "cannot remove a partial export: {e}");
            }
            Err(error)
        }
    }
}

fn write_partial(
    store: AnomalyReads<'_>,
    spec: &ExportSpec,
    dir: &cap_std::fs::Dir,
    partial: &str,
    progress: &mut dyn FnMut(&ExportProgress) -> ControlFlow<()>,
) -> Result<ExportedFile, ExportError> {
    let file = dir.create(partial)?;
    let out = Hashing { inner: std::io::BufWriter::new(file), hash: Sha256::new(), bytes: 0 };
    let mut sink = Sink::open(spec.format, out, spec.row_group_rows)?;
    // Anomalies stored after the export starts are not in it: the file is
    // the store as it was, however long the walk takes.
    let filter = ExportFilter { up_to_id: Some(store.last_anomaly_id()?), ..spec.filter.clone() };
    let mut done = ExportProgress { to_examine: store.export_walk_length(&filter)?, ..Default::default() };
    let mut after = None;
    loop {
        let window = store.export_window(&filter, after, spec.page_rows)?;
        if done.rows + window.records.len() as u64 > spec.max_rows {
            return Err(ExportError::TooManyRows { limit: spec.max_rows });
        }
        sink.write(&window.records)?;
        done.rows += window.records.len() as u64;
        done.examined += window.examined;
        done.bytes = match &sink {
            Sink::JsonLines(out) | Sink::Csv(out) => out.bytes,
            Sink::Parquet(writer) => writer.bytes_written(),
        };
        if progress(&done).is_break() {
            return Err(ExportError::Cancelled);
        }
        match window.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut out = sink.finish()?;
    out.flush()?;
    let Hashing { inner, hash, bytes } = out;
    let file = inner.into_inner().map_err(|e| ExportError::Io(e.into_error()))?;
    file.sync_all()?;
    done.bytes = bytes;
    done.examined = done.examined.max(done.to_examine);
    done.complete = true;
    if progress(&done).is_break() {
        return Err(ExportError::Cancelled);
    }
    Ok(ExportedFile { rows: done.rows, bytes, sha256: hex::encode(hash.finalize()) })
}
