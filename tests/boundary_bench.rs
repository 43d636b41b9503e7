#![allow(clippy::print_stdout)]
//! `cargo run --release -p mcp-tests --bin boundary-bench -- [ENTRIES BATCH
//! ROUNDS]` (formerly `mcp bench --boundary`): how a batch of Wi-Fi entries should cross into a
//! guest, typed field records or columns of JSON lines, measured on the same
//! entries and the same guest checksum (tests/fixtures/boundary).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mcp_synth as generator;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({ path: "fixtures/boundary/wit", world: "boundary" });

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn typed(log: &generator::GeneratedLog, id: u64) -> TypedEntry {
    let fields = log
        .fields
        .as_object()
        .map(|object| {
            object
                .iter()
                .map(|(name, value)| Field {
                    name: name.clone(),
                    value: match value {
                        serde_json::Value::String(s) => Value::Text(s.clone()),
                        serde_json::Value::Bool(b) => Value::Flag(*b),
                        serde_json::Value::Number(n) => match n.as_i64() {
                            Some(i) => Value::Integer(i),
                            None => Value::Real(n.as_f64().unwrap_or_default()),
                        },
                        other => Value::Text(other.to_string()),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    TypedEntry { id, timestamp_ms: log.timestamp_ms, source: log.source.clone(), fields }
}

fn columnar(logs: &[(u64, &generator::GeneratedLog)]) -> Columnar {
    Columnar {
        ids: logs.iter().map(|(id, _)| *id).collect(),
        timestamps_ms: logs.iter().map(|(_, l)| l.timestamp_ms).collect(),
        sources: logs.iter().map(|(_, l)| l.source.as_str()).collect::<Vec<_>>().join("\n"),
        fields: logs.iter().map(|(_, l)| l.fields.to_string()).collect::<Vec<_>>().join("\n"),
    }
}

/// wasmtime's error type is not a std error without its `anyhow` feature.
fn wasm<T>(result: wasmtime::Result<T>) -> Result<T> {
    result.map_err(|e| anyhow::anyhow!("{e:#}"))
}

/// The protocol's batch, built by the host's own builder, in this world's types.
fn typed_columns(logs: &[(u64, &generator::GeneratedLog)], fields: &[String]) -> TypedColumns {
    let rows: Vec<mcp_columns::RawRow<'_>> = logs
        .iter()
        .zip(fields)
        .map(|((id, l), f)| mcp_columns::RawRow {
            id: *id,
            timestamp_ms: l.timestamp_ms,
            source: &l.source,
            fields: f,
            schema_version: 0,
        })
        .collect();
    let (batch, _) = mcp_columns::build_batch("wifi", 1, &rows);
    let text = |t: mcp_columns::TextColumn| TextColumn { data: t.data, ends: t.ends };
    TypedColumns {
        ids: batch.ids,
        timestamps_ms: batch.timestamps_ms,
        sources: text(batch.sources),
        columns: batch
            .columns
            .into_iter()
            .map(|c| Column {
                name: c.name,
                missing: c.missing,
                values: match c.values {
                    mcp_columns::ColumnValues::Text(t) => ColumnValues::Text(text(t)),
                    mcp_columns::ColumnValues::Integer(v) => ColumnValues::Integer(v),
                    mcp_columns::ColumnValues::Real(v) => ColumnValues::Real(v),
                    mcp_columns::ColumnValues::Boolean(v) => ColumnValues::Boolean(v),
                },
            })
            .collect(),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let mut next = |default: usize| args.next().unwrap_or(Ok(default));
    let (entries, batch, rounds) = (next(10_000)?, next(1_000)?, next(5)?);
    run(entries, batch, rounds)
}

fn run(entries: usize, batch: usize, rounds: usize) -> Result<()> {
    let mut config = Config::new();
    config.wasm_component_model(true).concurrency_support(false).epoch_interruption(true);
    let engine = wasm(Engine::new(&config))?;
    let component =
        wasm(Component::from_file(&engine, mcp_fixtures::BOUNDARY)).context("loading the boundary fixture")?;
    let mut linker = Linker::new(&engine);
    wasm(wasmtime_wasi::p2::add_to_linker_sync(&mut linker))?;
    let mut store = Store::new(&engine, State { wasi: WasiCtx::builder().build(), table: ResourceTable::new() });
    store.set_epoch_deadline(u64::MAX / 2);
    let guest = wasm(Boundary::instantiate(&mut store, &component, &linker))?;

    let logs = generator::generate("wifi", 99, entries)?;
    let numbered: Vec<(u64, &generator::GeneratedLog)> =
        logs.iter().enumerate().map(|(i, l)| (i as u64 + 1, l)).collect();
    let typed_batches: Vec<Vec<TypedEntry>> =
        numbered.chunks(batch.max(1)).map(|c| c.iter().map(|(id, l)| typed(l, *id)).collect()).collect();
    let columnar_batches: Vec<Columnar> = numbered.chunks(batch.max(1)).map(columnar).collect();
    let json: Vec<String> = logs.iter().map(|l| l.fields.to_string()).collect();
    let json_batches: Vec<&[String]> = json.chunks(batch.max(1)).collect();
    let numbered_batches: Vec<&[(u64, &generator::GeneratedLog)]> = numbered.chunks(batch.max(1)).collect();
    let mut build_times = Vec::new();
    let mut typed_column_batches = Vec::new();
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        typed_column_batches = numbered_batches.iter().zip(&json_batches).map(|(l, f)| typed_columns(l, f)).collect();
        build_times.push(started.elapsed());
    }

    let (mut typed_times, mut columnar_times, mut column_times) = (Vec::new(), Vec::new(), Vec::new());
    let (mut typed_sum, mut columnar_sum, mut column_sum) = (0, 0, 0);
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        column_sum = 0;
        for b in &typed_column_batches {
            column_sum += wasm(guest.call_consume_columns(&mut store, b))?;
        }
        column_times.push(started.elapsed());
        let started = Instant::now();
        typed_sum = 0;
        for b in &typed_batches {
            typed_sum += wasm(guest.call_consume_typed(&mut store, b))?;
        }
        typed_times.push(started.elapsed());
        let started = Instant::now();
        columnar_sum = 0;
        for b in &columnar_batches {
            columnar_sum += wasm(guest.call_consume_columnar(&mut store, b))?;
        }
        columnar_times.push(started.elapsed());
    }
    anyhow::ensure!(
        typed_sum == columnar_sum && typed_sum == column_sum,
        "the encodings disagree (records {typed_sum}, JSON lines {columnar_sum}, columns {column_sum})"
    );
    let mut native_times = Vec::new();
    let mut native_sum = 0;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        native_sum = 0;
        for b in &columnar_batches {
            native_sum += native_columnar(b);
        }
        native_times.push(started.elapsed());
    }
    anyhow::ensure!(native_sum == columnar_sum, "native and guest disagree ({native_sum} against {columnar_sum})");
    let per_entry = |d: Duration| d.as_secs_f64() * 1e9 / logs.len() as f64;
    let n = per_entry(median(native_times));
    let (t, c) = (per_entry(median(typed_times)), per_entry(median(columnar_times)));
    println!(
        "\nboundary, {} Wi-Fi entries in batches of {batch}, median of {rounds} rounds, crossing plus reading the fields:",
        logs.len()
    );
    println!("  typed field records  {t:>7.0} ns per entry");
    println!("  columns + JSON lines {c:>7.0} ns per entry  ({:.2}x the typed cost)", c / t);
    println!("  the same JSON lines read natively {n:>7.0} ns per entry (guest at {:.2} of native speed)", n / c);
    let (k, b) = (per_entry(median(column_times)), per_entry(median(build_times)));
    println!(
        "  typed columns (the protocol) {k:>7.0} ns per entry, after the host parsed the JSON into columns at {b:.0} ns per entry"
    );
    Ok(())
}

#[derive(serde::Deserialize)]
struct Wifi<'a> {
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    bssid: std::borrow::Cow<'a, str>,
    signal_dbm: i64,
    retry_rate: f64,
}

/// The guest's `consume-columnar`, compiled natively, for the ratio.
fn native_columnar(batch: &Columnar) -> u64 {
    let mut sum = 0;
    for (id, line) in batch.ids.iter().zip(batch.fields.split('\n')) {
        if let Ok(w) = serde_json::from_str::<Wifi<'_>>(line) {
            let deauth = u64::from(w.event == "deauth");
            sum += deauth + w.bssid.len() as u64 + w.signal_dbm.unsigned_abs() + (w.retry_rate * 1000.0) as u64 + id;
        }
    }
    sum
}
