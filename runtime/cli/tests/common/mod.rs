//! What the binary's process tests share: a PostgreSQL schema of a test's
//! own, reading back what a run stored, stopping a server.

use std::collections::BTreeSet;
use std::path::Path;

/// (agent, log id, label)
pub type Stored = BTreeSet<(String, i64, String)>;

/// Every stored (agent, log id, label) under `dir/data`, and how many rows
/// hold them: fewer distinct than rows means an anomaly stored twice.
#[allow(dead_code)] // not every test binary that includes this module runs agents
pub fn stored(dir: &Path) -> Result<(Stored, usize), Box<dyn std::error::Error>> {
    let conn = rusqlite::Connection::open(dir.join("data").join("anomalies.db"))?;
    let mut stmt = conn.prepare("SELECT agent, log_id, label FROM anomalies")?;
    let rows: Vec<(String, i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
    let count = rows.len();
    Ok((rows.into_iter().collect(), count))
}

/// Sends SIGTERM to `server` and waits for it to exit, at most `limit`.
#[allow(dead_code)] // not every test binary that includes this module stops a server
pub fn terminate(
    server: &mut std::process::Child,
    limit: std::time::Duration,
) -> Result<std::process::ExitStatus, Box<dyn std::error::Error>> {
    let sent = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status()?;
    assert!(sent.success(), "kill -TERM {} failed", server.id());
    let stop = std::time::Instant::now();
    loop {
        if let Some(status) = server.try_wait()? {
            return Ok(status);
        }
        assert!(stop.elapsed() < limit, "the server did not stop within {limit:?} of SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request on its own connection; (status, JSON body).
#[allow(dead_code)] // not every test binary that includes this module talks to a server
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> Result<(u16, serde_json::Value), Box<dyn std::error::Error>> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.split_whitespace().nth(1).ok_or("no status line")?.parse()?;
    let json = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, serde_json::from_str(json).unwrap_or(serde_json::Value::Null)))
}

/// `mcp --config CONFIG ARGS` run in `dir`.
#[allow(dead_code)] // not every test binary that includes this module runs commands
pub fn mcp_with(config: &Path, dir: &Path, args: &[&str]) -> std::process::Output {
    match std::process::Command::new(env!("CARGO_BIN_EXE_mcp"))
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!("cannot run mcp: {e}"),
    }
}

/// `mcp ARGS` with `dir/mcp.toml`, run in `dir`.
#[allow(dead_code)] // not every test binary that includes this module runs commands
pub fn mcp(dir: &Path, args: &[&str]) -> std::process::Output {
    mcp_with(&dir.join("mcp.toml"), dir, args)
}

/// A command's standard output as text.
#[allow(dead_code)] // not every test binary that includes this module runs commands
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The database tests use; `MCP_TEST_DATABASE_URL` overrides it.
#[allow(dead_code)] // not every test binary that includes this module uses PostgreSQL
pub fn database_url() -> String {
    std::env::var("MCP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A PostgreSQL schema of a test's own, migrated, dropped at the end.
#[allow(dead_code)]
pub struct Namespace {
    pub name: String,
    pub source: mcp_storage::source::PgLogSource,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Err(e) = self.source.drop_namespace() {
            eprintln!("could not drop schema {}: {e}", self.name);
        }
    }
}

impl Namespace {
    /// Writes `dir/mcp.toml` for `tenant` on this schema. The replay is
    /// twice the longest window of the bundled agents (60 s), so windows
    /// come back through it, but far shorter than the Wi-Fi agent's
    /// learning of access points (10 min): that comes back only with its
    /// state.
    #[allow(dead_code)]
    pub fn write_config(&self, dir: &Path, tenant: &str) -> Result<(), Box<dyn std::error::Error>> {
        std::fs::write(
            dir.join("mcp.toml"),
            format!(
                "data_dir = {:?}\ntenant = {tenant:?}\nbatch_size = 2000\nreplay_ms = 120000\ndatabase_url = {:?}\ndatabase_schema = {:?}\n",
                dir.join("data"),
                database_url(),
                self.name
            ),
        )?;
        Ok(())
    }
}

/// `mcp` with `dir/mcp.toml`, in `dir`, its output dropped: a command to
/// spawn, wait for or kill.
#[allow(dead_code)]
pub fn quiet_mcp(dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mcp"));
    command
        .arg("--config")
        .arg(dir.join("mcp.toml"))
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// A fresh schema named after `tag`, this process and the time.
#[allow(dead_code)]
pub fn namespace(tag: &str) -> Result<Namespace, Box<dyn std::error::Error>> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let name = format!("mcp_{tag}_{}_{nanos}", std::process::id());
    let schemas = mcp_storage::schema::SchemaFiles::new(Path::new(mcp_fixtures::BUNDLED_SCHEMAS));
    let source = mcp_storage::source::PgLogSource::connect(&database_url(), Some(&name), std::sync::Arc::new(schemas))
        .map_err(|e| {
            format!(
                "{e}\nthis test needs PostgreSQL at {} (start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)",
                database_url()
            )
        })?;
    source.migrate()?;
    Ok(Namespace { name, source })
}
