//! Notifications across a SIGKILL: `mcp serve` killed after a run committed
//! its anomalies (and with deliveries in flight to a receiver that hangs),
//! then restarted: every notification reaches the receiver, each delivery
//! id accepted once. Also `mcp notify test` and `mcp run` delivering what
//! it queued, from the command line, with secrets from the environment.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_fixtures::BUNDLED_SCHEMAS;
use mcp_fixtures::receivers::{HttpReceiver, Mode};
use mcp_storage::schema::SchemaFiles;
use mcp_storage::source::{LogSource, SqliteLogSource};

mod common;
use common::request;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const TENANT: &str = "acme";
const KEY: &str = "the-receivers-signing-key";

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A config whose notifications file sends everything of the tenant to a
/// webhook named by environment variables, and a log channel.
fn write_config(dir: &Path, port: u16) -> Result<()> {
    std::fs::write(
        dir.join("mcp.toml"),
        format!(
            "data_dir = {:?}\ntenant = \"{TENANT}\"\nbatch_size = 200\nlisten = \"127.0.0.1:{port}\"\n\
             [notifications]\nfile = {:?}\nallow_private_targets = true\ntimeout_ms = 1000\npoll_ms = 50\n\
             backoff_base_ms = 100\nbackoff_max_ms = 200\nmax_attempts = 1000\n",
            dir.join("data"),
            dir.join("notifications.toml"),
        ),
    )?;
    std::fs::write(
        dir.join("notifications.toml"),
        format!(
            "[[channel]]\ntenant = \"{TENANT}\"\nname = \"hook\"\nkind = \"webhook\"\n\
             url = {{ env = \"MCP_SECRET_HOOK_URL\" }}\nsigning_key = {{ env = \"MCP_SECRET_HOOK_KEY\" }}\n\
             dedup_window_s = 0\nrate_per_minute = 6000\n\
             [[route]]\ntenant = \"{TENANT}\"\nname = \"everything\"\nchannel = \"hook\"\n"
        ),
    )?;
    Ok(())
}

fn mcp(dir: &Path, receiver: &HttpReceiver) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp"));
    command
        .arg("--config")
        .arg(dir.join("mcp.toml"))
        .current_dir(dir)
        .env("MCP_SECRET_HOOK_URL", receiver.url("/hook"))
        .env("MCP_SECRET_HOOK_KEY", KEY);
    command
}

fn load_logs(dir: &Path) -> Result<()> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let source = SqliteLogSource::open(&data.join("logs.db"), Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS))))?;
    source.append(TENANT, "dns", &mcp_synth::to_rows(&mcp_synth::generate("dns", 8, 2_000)?))?;
    Ok(())
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let started = Instant::now();
    while !done()? {
        if started.elapsed() > limit {
            return Err(format!("not within {limit:?}: {what}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn serve(dir: &Path, receiver: &HttpReceiver, port: u16, token: &str) -> Result<Child> {
    let mut server = mcp(dir, receiver).arg("serve").stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let started = Instant::now();
    loop {
        if let Some(status) = server.try_wait()? {
            return Err(format!("the server exited at start: {status}").into());
        }
        if request(port, "GET", "/healthz", token, None).is_ok_and(|(code, _)| code == 200) {
            return Ok(server);
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err("the server did not answer /healthz within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (rows, rows by state) of the outbox.
fn outbox(dir: &Path) -> Result<(i64, Vec<(String, i64)>)> {
    let conn = rusqlite::Connection::open(dir.join("data").join("anomalies.db"))?;
    let total = conn.query_row("SELECT COUNT(*) FROM notify_outbox", [], |r| r.get(0))?;
    let mut s = conn.prepare("SELECT state, COUNT(*) FROM notify_outbox GROUP BY state ORDER BY state")?;
    let states = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    Ok((total, states))
}

#[test]
fn sigkill_between_commit_and_delivery_delivers_each_notification_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    write_config(dir.path(), port)?;
    load_logs(dir.path())?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Hang(Duration::from_secs(300)))?;
    let token =
        mcp(dir.path(), &receiver).args(["tokens", "create", "--tenant", TENANT, "--role", "admin"]).output()?;
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout)?.trim().to_string();

    let mut server = serve(dir.path(), &receiver, port, &token)?;
    let (code, run) = request(port, "POST", "/v1/runs", &token, Some("{\"agent\":\"dns\"}"))?;
    assert_eq!(code, 202, "{run}");
    let id = run["id"].as_str().ok_or("no run id")?.to_string();
    let mut anomalies = 0;
    wait_until("the run completed and a delivery is in flight", Duration::from_secs(120), || {
        let (_, run) = request(port, "GET", &format!("/v1/runs/{id}"), &token, None)?;
        assert_ne!(run["state"], "failed", "{run}");
        anomalies = run["counters"]["anomalies"].as_i64().unwrap_or(0);
        Ok(run["state"] == "completed" && !receiver.received().is_empty())
    })?;
    server.kill()?;
    server.wait()?;
    let (total, states) = outbox(dir.path())?;
    assert!(anomalies > 0, "the run found nothing");
    assert_eq!(total, anomalies, "one notification per anomaly (no dedup window): {states:?}");
    assert!(receiver.accepted().is_empty(), "the hanging receiver accepted something");
    assert!(states.iter().all(|(state, _)| state == "pending" || state == "sending"), "{states:?}");

    receiver.set_mode(Mode::Ok);
    let mut server = serve(dir.path(), &receiver, port, &token)?;
    // Rows claimed by the killed process come back when their lease ends.
    let waited = wait_until("every notification delivered after the restart", Duration::from_secs(90), || {
        Ok(outbox(dir.path())?.1 == vec![("delivered".to_string(), total)])
    });
    server.kill()?;
    server.wait()?;
    waited.map_err(|e| format!("{e}: {:?}", outbox(dir.path())))?;
    let accepted = receiver.accepted();
    let distinct: std::collections::BTreeSet<&String> = accepted.iter().collect();
    assert_eq!(accepted.len() as i64, total, "{} accepted for {total} notifications", accepted.len());
    assert_eq!(distinct.len(), accepted.len(), "a delivery id was accepted twice");
    assert!(receiver.received().iter().filter(|r| r.status == 200).all(|r| r.signature_ok == Some(true)));
    Ok(())
}

#[test]
fn notify_test_prints_the_receivers_answer_and_run_delivers_what_it_queued() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_config(dir.path(), free_port()?)?;
    load_logs(dir.path())?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    let test = mcp(dir.path(), &receiver).args(["notify", "test", "hook"]).output()?;
    let said = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "{said}{}", String::from_utf8_lossy(&test.stderr));
    assert!(said.contains("delivered in") && said.contains("status 200") && said.contains("answer: ok"), "{said}");
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(receiver.received()[0].signature_ok, Some(true));

    // Without the variable the secret cannot be had, and it says which.
    let unset =
        mcp(dir.path(), &receiver).env_remove("MCP_SECRET_HOOK_URL").args(["notify", "test", "hook"]).output()?;
    let said = String::from_utf8_lossy(&unset.stdout);
    assert!(!unset.status.success() && said.contains("MCP_SECRET_HOOK_URL is not set"), "{said}");

    let run = mcp(dir.path(), &receiver).args(["run", "--agent", "dns"]).output()?;
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{said}{}", String::from_utf8_lossy(&run.stderr));
    let (total, states) = outbox(dir.path())?;
    assert!(total > 0 && said.contains(&format!("notifications: {total} of {total} delivered")), "{said} {states:?}");
    assert_eq!(receiver.accepted().len() as i64, total + 1);
    let listing =
        mcp(dir.path(), &receiver).args(["notify", "outbox", "--state", "delivered", "--limit", "5"]).output()?;
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert_eq!(listing.lines().filter(|l| l.contains("delivered")).count(), 5, "{listing}");
    Ok(())
}
