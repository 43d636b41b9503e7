//! One run service: `mcp run` and `POST /v1/runs` give the same anomalies
//! and totals for the same tenant, logs and settings, and both refuse an
//! agent the tenant disabled.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mcp_api::{ApiState, ControlStore, Role};
use mcp_engine::config::McpConfig;
use mcp_engine::models::ModelManager;
use mcp_fixtures::{AGENTS_DIR, BUNDLED_MODELS, BUNDLED_SCHEMAS};
use mcp_sandbox::registry::Registry;
use mcp_sandbox::{CompileCache, Sandbox};
use mcp_storage::jobstatus::SharedCache;
use mcp_storage::schema::SchemaFiles;
use mcp_storage::source::{LogSource, SqliteLogSource};
use mcp_storage::store::{AnomalyStore, StoredAnomaly};
use serde_json::Value;
use tower::ServiceExt;

const TENANT: &str = "acme";

/// The same logs and tenant controls in `data_dir`: firewall and DNS
/// entries, the firewall agent on rules only, the DNS agent disabled.
fn prepare(data_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let schemas = Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS)));
    let source = SqliteLogSource::open(&data_dir.join("logs.db"), schemas)?;
    for (log_type, seed) in [("firewall", 31), ("dns", 32)] {
        source.append(TENANT, log_type, &mcp_synth::to_rows(&mcp_synth::generate(log_type, seed, 2_000)?))?;
    }
    let control = ControlStore::open(&data_dir.join("control.db"))?;
    control.ensure_tenant(TENANT)?;
    control.set_setting(TENANT, "agents.firewall.detection", "rules")?;
    control.set_agent_enabled(TENANT, "dns", false)?;
    Ok(())
}

fn stored(data_dir: &Path, agent: &str) -> anyhow::Result<Vec<StoredAnomaly>> {
    Ok(AnomalyStore::open(&data_dir.join("anomalies.db"))?.anomalies(TENANT, agent)?)
}

/// Runs `mcp run --agent AGENT` over `data_dir`; (exit success, stdout).
fn cli_run(dir: &Path, data_dir: &Path, agent: &str) -> anyhow::Result<(bool, String)> {
    let config = dir.join("mcp.toml");
    std::fs::write(&config, format!("data_dir = {:?}\ntenant = \"{TENANT}\"\n", data_dir))?;
    let out = Command::new(env!("CARGO_BIN_EXE_mcp"))
        .args(["--config"])
        .arg(&config)
        .args(["run", "--agent", agent])
        .current_dir(dir)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), stdout))
}

/// `N entries, M new anomalies` from the CLI's line for `agent`.
fn cli_totals(stdout: &str, agent: &str) -> Option<(u64, u64)> {
    let line = stdout.lines().find(|l| l.starts_with(agent))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let entries = words.get(1)?.parse().ok()?;
    let anomalies = words.get(3)?.parse().ok()?;
    Some((entries, anomalies))
}

struct Api {
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
    token: String,
}

impl Api {
    fn open(dir: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let config = McpConfig {
            data_dir: data_dir.to_path_buf(),
            schema_dir: Some(BUNDLED_SCHEMAS.into()),
            models_dir: Some(BUNDLED_MODELS.into()),
            tenant: TENANT.into(),
            ..McpConfig::default()
        };
        let sandbox = Arc::new(Sandbox::new(config.sandbox.clone(), CompileCache::new(Some(dir.join("cache"))))?);
        let mut registry = Registry::new(sandbox);
        registry.discover(Path::new(AGENTS_DIR))?;
        let control = ControlStore::open(&config.control_db())?;
        let token = control.create_token(TENANT, Role::TenantAdmin)?;
        let models = Arc::new(ModelManager::open(Path::new(BUNDLED_MODELS), &data_dir.join("models.db"))?);
        let cache = SharedCache::open(None, "", Default::default())?;
        let state = Arc::new(ApiState::new(config, control, Arc::new(registry), models, Arc::new(cache))?);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        Ok(Api { router: mcp_api::router(state), runtime, token })
    }

    fn call(&self, method: &str, uri: &str, body: Option<&str>) -> anyhow::Result<(StatusCode, Value)> {
        let mut request =
            Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {}", self.token));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await?;
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
            Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
        })
    }

    /// Starts a run and waits for it to end; its final status.
    fn run(&self, agent: &str) -> anyhow::Result<(StatusCode, Value)> {
        let (status, started) = self.call("POST", "/v1/runs", Some(&format!("{{\"agent\":\"{agent}\"}}")))?;
        if status != StatusCode::ACCEPTED {
            return Ok((status, started));
        }
        let id = started["id"].as_str().unwrap_or_default().to_string();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, run) = self.call("GET", &format!("/v1/runs/{id}"), None)?;
            if (run["state"] != "running" && run["state"] != "queued") || Instant::now() > deadline {
                return Ok((status, run));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn cli_and_api_give_the_same_anomalies_and_totals() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cli_data, api_data) = (dir.path().join("cli"), dir.path().join("api"));
    prepare(&cli_data)?;
    prepare(&api_data)?;

    let (ok, stdout) = cli_run(dir.path(), &cli_data, "firewall")?;
    assert!(ok, "mcp run --agent firewall failed:\n{stdout}");
    let cli = cli_totals(&stdout, "firewall").ok_or_else(|| anyhow::anyhow!("no totals in:\n{stdout}"))?;

    let api = Api::open(dir.path(), &api_data)?;
    let (status, run) = api.run("firewall")?;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["state"], "completed", "{run}");
    let counters = &run["counters"];
    let api_totals = (counters["entries"].as_u64().unwrap_or(0), counters["anomalies"].as_u64().unwrap_or(0));

    assert!(cli.0 >= 2_000 && cli.1 > 0, "the run did work: {cli:?}");
    assert_eq!(cli, api_totals, "entries and anomalies: CLI {cli:?}, API {api_totals:?}");
    let (from_cli, from_api) = (stored(&cli_data, "firewall")?, stored(&api_data, "firewall")?);
    assert_eq!(from_cli, from_api, "the same anomalies, field by field");
    // The tenant's `detection = rules` reached both: no model scored anything.
    assert!(from_cli.iter().all(|a| a.model.is_none()), "the tenant setting was ignored: {:?}", from_cli.first());
    Ok(())
}

#[test]
fn cli_and_api_both_refuse_an_agent_the_tenant_disabled() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cli_data, api_data) = (dir.path().join("cli"), dir.path().join("api"));
    prepare(&cli_data)?;
    prepare(&api_data)?;

    let (ok, stdout) = cli_run(dir.path(), &cli_data, "dns")?;
    assert!(!ok, "a disabled agent ran from the CLI:\n{stdout}");
    assert!(stdout.contains("disabled for this tenant"), "{stdout}");
    assert!(stored(&cli_data, "dns")?.is_empty());

    let api = Api::open(dir.path(), &api_data)?;
    let (status, problem) = api.run("dns")?;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("disabled for this tenant"), "{problem}");
    assert!(stored(&api_data, "dns")?.is_empty());
    Ok(())
}
