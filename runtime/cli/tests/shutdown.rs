//! A clean stop: `mcp serve` sent SIGTERM while a run goes and another
//! waits exits 0; the going run stops at a committed batch and says why,
//! the waiting one is recorded as never started, and `mcp run` afterwards
//! resumes from the checkpoint to exactly the anomalies an uninterrupted
//! run stores, each once.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_fixtures::BUNDLED_SCHEMAS;
use mcp_storage::schema::SchemaFiles;
use mcp_storage::source::{LogSource, SqliteLogSource};
use serde_json::Value;

mod common;
use common::{request, stored};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const TENANT: &str = "acme";
const WIFI_ROWS: usize = 40_000;

fn redis_url() -> String {
    std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A config over `dir/data`, job status in Redis under a prefix of its own
/// (so the test can read it after the server is gone), one run at a time.
fn write_config(dir: &Path, port: u16) -> Result<()> {
    let prefix = format!("mcp-test-shutdown-{}-{port}:", std::process::id());
    std::fs::write(
        dir.join("mcp.toml"),
        format!(
            "data_dir = {:?}\ntenant = \"{TENANT}\"\nbatch_size = 200\nstatus_interval_ms = 50\n\
             listen = \"127.0.0.1:{port}\"\nredis_url = {:?}\nredis_prefix = {prefix:?}\n\
             shutdown_timeout_ms = 60000\n[runs]\nrunning = 1\n",
            dir.join("data"),
            redis_url(),
        ),
    )?;
    Ok(())
}

fn mcp(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp"));
    command.arg("--config").arg(dir.join("mcp.toml")).current_dir(dir);
    command
}

fn load_logs(dir: &Path) -> Result<()> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let source = SqliteLogSource::open(&data.join("logs.db"), Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS))))?;
    source.append(TENANT, "wifi", &mcp_synth::to_rows(&mcp_synth::generate("wifi", 7, WIFI_ROWS)?))?;
    source.append(TENANT, "dns", &mcp_synth::to_rows(&mcp_synth::generate("dns", 8, 2_000)?))?;
    Ok(())
}

fn wait_for_server(port: u16, token: &str, server: &mut Child) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Some(status) = server.try_wait()? {
            return Err(format!("the server exited at start: {status}").into());
        }
        if request(port, "GET", "/healthz", token, None).is_ok_and(|(code, _)| code == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the server did not answer /healthz within 120 s".into())
}

fn start_run(port: u16, token: &str, agent: &str) -> Result<String> {
    let (code, run) = request(port, "POST", "/v1/runs", token, Some(&format!("{{\"agent\":\"{agent}\"}}")))?;
    assert_eq!(code, 202, "{run}");
    Ok(run["id"].as_str().ok_or("no run id")?.to_string())
}

fn run_status(dir: &Path, id: &str) -> Result<Value> {
    let out = mcp(dir).args(["jobs", "list"]).output()?;
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let line = listing.lines().find(|l| l.starts_with(id)).ok_or_else(|| format!("no job {id} in:\n{listing}"))?;
    let error =
        listing.lines().skip_while(|l| !l.starts_with(id)).nth(1).filter(|l| l.trim_start().starts_with("error:"));
    Ok(serde_json::json!({ "line": line, "error": error.map(str::trim) }))
}

/// Every checkpoint the store holds, for a failure's message.
fn checkpoints(dir: &Path) -> Result<Vec<(String, String, String, i64)>> {
    let conn = rusqlite::Connection::open(dir.join("data").join("anomalies.db"))?;
    let mut stmt = conn.prepare("SELECT tenant, agent, log_source, last_id FROM checkpoints")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The entries `mcp run` says the wifi agent read.
fn wifi_entries(said: &str) -> Result<u64> {
    Ok(said
        .lines()
        .find(|l| l.starts_with("wifi"))
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or_else(|| format!("no wifi line in {said}"))?
        .parse()?)
}

#[test]
fn sigterm_stops_runs_at_a_committed_batch_and_the_next_run_resumes() -> Result<()> {
    // The reference: the same logs, run once without a stop.
    let whole = tempfile::tempdir()?;
    write_config(whole.path(), free_port()?)?;
    load_logs(whole.path())?;
    let out = mcp(whole.path()).args(["run", "--agent", "wifi"]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reference_entries = wifi_entries(&String::from_utf8_lossy(&out.stdout))?;
    let (expected, _) = stored(whole.path())?;
    assert!(!expected.is_empty(), "the reference run found nothing to compare");

    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    write_config(dir.path(), port)?;
    load_logs(dir.path())?;
    let token = mcp(dir.path()).args(["tokens", "create", "--tenant", TENANT, "--role", "admin"]).output()?;
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout)?.trim().to_string();
    let mut server = mcp(dir.path()).arg("serve").stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    wait_for_server(port, &token, &mut server)?;

    let going = start_run(port, &token, "wifi")?;
    let waiting = start_run(port, &token, "dns")?;
    // SIGTERM once the run has committed a batch, well before its end.
    let started = Instant::now();
    loop {
        let (_, run) = request(port, "GET", &format!("/v1/runs/{going}"), &token, None)?;
        let entries = run["counters"]["entries"].as_u64().unwrap_or(0);
        assert!(
            run["state"] == "running" || run["state"] == "queued",
            "the run ended before the stop ({run}); it needs more rows to be stopped mid-way"
        );
        // A few committed batches, so that the stop falls between two.
        if entries >= 1_000 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the run did not start: {run}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = common::terminate(&mut server, Duration::from_secs(90))?;
    let mut said = String::new();
    if let Some(mut stdout) = server.stdout.take() {
        stdout.read_to_string(&mut said)?;
    }
    assert!(status.success(), "the server exited with {status} at SIGTERM:\n{said}");
    assert!(said.contains("1 waiting runs") && said.contains("stopped at a committed batch"), "{said}");

    let stopped = run_status(dir.path(), &going)?;
    assert!(stopped["line"].as_str().is_some_and(|l| l.contains("cancelled")), "{stopped}");
    assert!(stopped["error"].as_str().is_some_and(|e| e.contains("server shut down")), "{stopped}");
    let checkpoint: u64 = stopped["line"]
        .as_str()
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("checkpoint=")))
        .ok_or_else(|| format!("no checkpoint in {stopped}"))?
        .parse()?;
    assert!(checkpoint > 0 && checkpoint < WIFI_ROWS as u64, "stopped mid-way: checkpoint {checkpoint}");
    let withdrawn = run_status(dir.path(), &waiting)?;
    assert!(withdrawn["line"].as_str().is_some_and(|l| l.contains("cancelled")), "{withdrawn}");
    assert!(withdrawn["error"].as_str().is_some_and(|e| e.contains("before the run's turn")), "{withdrawn}");

    // The next run takes it from the checkpoint: nothing lost, nothing twice.
    let out = mcp(dir.path()).args(["run", "--agent", "wifi"]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = String::from_utf8_lossy(&out.stdout);
    let entries = wifi_entries(&resumed)?;
    assert!(
        entries < reference_entries,
        "the second run read {entries} entries of {reference_entries}: it did not start at the checkpoint \
         ({checkpoint}): {resumed}\ncheckpoints: {:?}",
        checkpoints(dir.path())
    );
    let (got, rows) = stored(dir.path())?;
    assert_eq!(rows, got.len(), "an anomaly was stored twice");
    assert_eq!(got, expected, "the stopped and resumed run differs from the uninterrupted one");
    Ok(())
}
