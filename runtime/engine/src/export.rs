//! Exports: a tenant's anomalies that pass a filter, written page by page
//! (keyset pages from the store, so memory stays flat however many rows)
//! to JSON Lines or CSV, under a temporary name inside the export folder
//! and renamed when complete, with the file's size and sha256. A failed or
//! cancelled export leaves no file behind.

use std::io::Write;
use std::ops::ControlFlow;

use sha2::{Digest, Sha256};

use mcp_storage::store::{AnomalyQuery, AnomalySort, AnomalyStore, StoreError};

/// The formats an export is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    JsonLines,
    /// A header row, then one row per anomaly.
    Csv,
}

impl ExportFormat {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "jsonl" => Some(ExportFormat::JsonLines),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::JsonLines => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::JsonLines => "application/jsonl",
            ExportFormat::Csv => "text/csv",
        }
    }
}

/// Why an export did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export file: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing a CSV row: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing a JSON line: {0}")]
    Json(#[from] serde_json::Error),
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

/// What one export is: its filters (the store's page query, whose `sort`,
/// `after` and `limit` are the export's own business), its format and its
/// bounds.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub query: AnomalyQuery,
    pub format: ExportFormat,
    /// Rows per page read from the store.
    pub page_rows: u32,
    /// The most rows one export may hold.
    pub max_rows: u64,
}

/// Writes the export of `spec` as `file_name` inside `dir`, showing
/// `progress` the rows and bytes written after each page (it may cancel).
pub fn write_export(
    store: &AnomalyStore,
    spec: &ExportSpec,
    dir: &cap_std::fs::Dir,
    file_name: &str,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<ExportedFile, ExportError> {
    let partial = format!("{file_name}.part");
    let written = write_partial(store, spec, dir, &partial, progress);
    match written {
        Ok(exported) => {
            dir.rename(&partial, dir, file_name)?;
            Ok(exported)
        }
        Err(error) => {
            if let Err(e) = dir.remove_file(&partial) {
                tracing::warn!(file = partial, "cannot remove a partial export: {e}");
            }
            Err(error)
        }
    }
}

fn write_partial(
    store: &AnomalyStore,
    spec: &ExportSpec,
    dir: &cap_std::fs::Dir,
    partial: &str,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<ExportedFile, ExportError> {
    let file = dir.create(partial)?;
    let mut out = Hashing { inner: std::io::BufWriter::new(file), hash: Sha256::new(), bytes: 0 };
    let mut csv_header = spec.format == ExportFormat::Csv;
    let mut query =
        AnomalyQuery { sort: AnomalySort::Time, after: None, limit: spec.page_rows.max(1), ..spec.query.clone() };
    let mut rows = 0u64;
    loop {
        let page = store.query(&query)?;
        let Some(last) = page.last() else { break };
        query.after = Some((last.log_ts_ms as f64, last.id));
        let full = page.len() == query.limit as usize;
        if rows + page.len() as u64 > spec.max_rows {
            return Err(ExportError::TooManyRows { limit: spec.max_rows });
        }
        match spec.format {
            ExportFormat::JsonLines => {
                for record in &page {
                    serde_json::to_writer(&mut out, record)?;
                    out.write_all(b"\n")?;
                }
            }
            ExportFormat::Csv => {
                let mut writer = csv::WriterBuilder::new().has_headers(csv_header).from_writer(&mut out);
                for record in &page {
                    writer.serialize(record)?;
                }
                writer.flush()?;
                csv_header = false;
            }
        }
        rows += page.len() as u64;
        if progress(rows, out.bytes).is_break() {
            return Err(ExportError::Cancelled);
        }
        if !full {
            break;
        }
    }
    out.flush()?;
    let Hashing { inner, hash, bytes } = out;
    let file = inner.into_inner().map_err(|e| ExportError::Io(e.into_error()))?;
    file.sync_all()?;
    Ok(ExportedFile { rows, bytes, sha256: hex::encode(hash.finalize()) })
}
