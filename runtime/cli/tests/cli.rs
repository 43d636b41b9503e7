//! The `mcp` binary end to end on the embedded default: load a file, run an
//! agent, list what was quarantined, check components.

use std::path::Path;

mod common;
use common::{mcp, stdout};

#[test]
fn load_run_and_list_quarantine() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("mcp.toml"),
        format!("data_dir = {:?}\ntenant = \"acme\"\n", dir.path().join("data")),
    )?;
    let lines = [
        r#"{"timestamp_ms": 1, "source": "wlc-1", "fields": {"event": "beacon", "bssid": "aa", "ssid": "corp", "signal_dbm": -40}}"#,
        r#"{"timestamp_ms": 2, "source": "wlc-1", "fields": {"event": "data", "bssid": "aa", "rssi": -70}, "schema_version": 1}"#,
        r#"{"timestamp_ms": 3, "source": "wlc-1", "fields": {"event": "data", "bssid": "aa", "signal_dbm": "loud"}}"#,
        r#"this line is not JSON"#,
        r#"{"timestamp_ms": 5, "source": "wlc-1", "fields": {"event": "deauth", "bssid": "aa", "signal_dbm": -50}}"#,
        r#"{"ts": 6, "timestamp_ms": 6, "source": "wlc-1", "fields": {"event": "data", "bssid": "aa"}}"#,
        r#"{"timestamp_ms": 7, "source": "wlc-1", "fields": {"event": "deauth", "bssid": "aa", "signal_dbm": -52}, "label": "deauth_flood"}"#,
    ];
    std::fs::write(dir.path().join("wifi.jsonl"), lines.join("\n"))?;

    // Every line is stored; the status says two will only reach quarantine,
    // and why.
    let load = mcp(dir.path(), &["db", "load", "wifi.jsonl", "--log-type", "wifi"]);
    let text = stdout(&load);
    assert_eq!(load.status.code(), Some(1), "{load:?}");
    assert!(text.contains("loaded 7 'wifi' lines") && text.contains("2 unreadable"), "{text}");
    assert!(text.contains("line 6: unknown key(s) 'ts'"), "{text}");

    let run = mcp(dir.path(), &["run", "--agent", "wifi"]);
    assert!(run.status.success(), "{run:?}");
    assert!(stdout(&run).contains("4 entries") && stdout(&run).contains("3 quarantined"), "{}", stdout(&run));
    assert!(stdout(&run).contains("in-process (no redis_url set)"), "{}", stdout(&run));

    let list = mcp(dir.path(), &["quarantine", "list"]);
    let text = stdout(&list);
    assert!(list.status.success(), "{list:?}");
    assert!(text.contains("field 'signal_dbm' must be integer under wifi schema v2, found text"), "{text}");
    assert!(text.contains("unreadable line (mcp db load): expected ident at line 1"), "{text}");
    assert!(text.contains("unreadable line (mcp db load): unknown key(s) 'ts'"), "{text}");
    assert!(text.contains("3 quarantined rows for tenant acme"), "{text}");
    Ok(())
}

#[test]
fn generated_logs_end_now_and_runs_find_their_attacks() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("mcp.toml"),
        format!("data_dir = {:?}\ntenant = \"acme\"\n", dir.path().join("data")),
    )?;
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let generated = mcp(dir.path(), &["db", "generate", "--log-type", "firewall", "--entries", "2000"]);
    let text = stdout(&generated);
    assert!(generated.status.success(), "{generated:?}");
    assert!(text.contains("'firewall' entries") && text.contains("for tenant acme"), "{text}");
    assert!(!text.contains("'dns'"), "only the log type asked for: {text}");
    let run = mcp(dir.path(), &["run", "--agent", "firewall"]);
    assert!(run.status.success(), "{run:?}");
    let list = mcp(dir.path(), &["anomalies", "list", "--limit", "1"]);
    let text = stdout(&list);
    assert!(list.status.success() && text.contains("firewall"), "the run found anomalies: {text}");
    // The newest entry is now, so the data looks live in the console.
    let logs = rusqlite::Connection::open(dir.path().join("data").join("logs.db"))?;
    let newest: i64 = logs.query_row("SELECT MAX(ts_ms) FROM logs", [], |r| r.get(0))?;
    assert!((newest - before).abs() < 120_000, "the newest entry at {newest}, now {before}");
    Ok(())
}

#[test]
fn eval_reports_each_agent_mode_and_attack_kind_with_false_positives_per_million()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("mcp.toml"), format!("data_dir = {:?}\n", dir.path().join("data")))?;
    let eval = mcp(dir.path(), &["eval", "--entries", "1500", "--seed", "5"]);
    let text = stdout(&eval);
    assert!(eval.status.success(), "{eval:?}");
    assert!(text.starts_with("seed 5, realistic profile, 1500 normal entries"), "{text}");
    assert!(text.contains("FP/M"), "{text}");
    for agent in ["wifi", "firewall", "dns"] {
        for mode in ["rules", "model", "both"] {
            let row = text.lines().find(|line| line.split_whitespace().take(2).eq([agent, mode]));
            let fields: Vec<&str> = row.map(|r| r.split_whitespace().collect()).unwrap_or_default();
            // precision, recall, F1 in [0, 1]; false positives per million a count.
            let numbers: Vec<f64> = fields.iter().skip(2).take(4).filter_map(|f| f.parse().ok()).collect();
            assert_eq!(numbers.len(), 4, "{agent} {mode}: {text}");
            assert!(numbers[..3].iter().all(|x| (0.0..=1.0).contains(x)), "{agent} {mode}: {text}");
        }
    }
    // Recall per attack kind: the realistic DNS traffic's tunnels among them.
    let kinds = text.split("recall per attack kind").nth(1).unwrap_or_default();
    assert!(kinds.lines().any(|line| line.starts_with("dns") && line.contains("tunnel")), "{text}");
    assert!(kinds.lines().any(|line| line.starts_with("firewall")), "{text}");
    Ok(())
}

#[test]
fn agents_list_and_check() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("mcp.toml"), format!("data_dir = {:?}\n", dir.path().join("data")))?;
    let list = mcp(dir.path(), &["agents", "list"]);
    let text = stdout(&list);
    assert!(list.status.success(), "{list:?}");
    for name in ["wifi", "firewall", "dns"] {
        assert!(text.lines().any(|l| l.starts_with(name) && l.contains("0.1.0") && l.ends_with("runnable")), "{text}");
        let grant = format!("grants: log types [{name}], models [{name}], settings all");
        assert!(text.contains(&grant), "{text}");
    }
    // Quarantine shows in the list, with the faults, until released.
    let control = mcp_storage::control::ControlStore::open(&dir.path().join("data/control.db"))?;
    let faults = [("panic", "panicked or hit unreachable code".to_string())];
    let policy = mcp_engine::quarantine::QuarantinePolicy { faults: 1, ..Default::default() };
    mcp_engine::quarantine::record(&control, &policy, "default", "dns", &faults, true)?;
    let held = stdout(&mcp(dir.path(), &["agents", "list"]));
    assert!(held.lines().any(|l| l.starts_with("dns") && l.contains("quarantined until")), "{held}");
    assert!(held.contains("fault at") && held.contains("(panic)"), "{held}");
    let released = mcp(dir.path(), &["agents", "release", "dns"]);
    assert!(stdout(&released).contains("dns: released"), "{released:?}");
    let after = stdout(&mcp(dir.path(), &["agents", "list"]));
    assert!(after.lines().any(|l| l.starts_with("dns") && l.ends_with("runnable")), "{after}");
    let good = Path::new(mcp_fixtures::AGENTS_DIR).join("dns.wasm");
    let check = mcp(dir.path(), &["agents", "check", &good.display().to_string()]);
    assert!(check.status.success(), "{}", stdout(&check));
    assert!(stdout(&check).contains("conforms to mcp:agent@0.2.0"), "{}", stdout(&check));
    // A component built against 0.1.0, as it shipped, still conforms.
    let legacy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/legacy/dns-0.1.0.wasm");
    let check = mcp(dir.path(), &["agents", "check", &legacy.display().to_string()]);
    assert!(check.status.success(), "{}", stdout(&check));
    assert!(stdout(&check).contains("conforms to mcp:agent@0.1.0"), "{}", stdout(&check));
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm")?;
    let bad = mcp(dir.path(), &["agents", "check", "junk.wasm"]);
    assert!(!bad.status.success(), "a junk file passed the check");
    assert!(stdout(&bad).contains("FAIL") && stdout(&bad).contains("does not conform"), "{}", stdout(&bad));
    Ok(())
}

#[test]
fn unknown_config_keys_are_refused() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("mcp.toml"), "data_dir = \"d\"\nbatchsize = 10\n")?;
    let out = mcp(dir.path(), &["agents", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `batchsize`"), "{err}");
    Ok(())
}

#[test]
fn run_status_reaches_jobs_list_through_redis() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let prefix = format!("mcp-test-cli:{}:", std::process::id());
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("mcp.toml"),
        format!(
            "data_dir = {:?}\ntenant = \"acme\"\nredis_url = {url:?}\nredis_prefix = {prefix:?}\n",
            dir.path().join("data")
        ),
    )?;
    let line = r#"{"timestamp_ms": 1, "source": "fw-1", "fields": {"action": "allow", "src_ip": "10.0.0.1", "dst_ip": "10.0.0.2", "dst_port": 443, "protocol": "tcp", "bytes": 10}}"#;
    std::fs::write(dir.path().join("fw.jsonl"), format!("{line}\n{line}\n"))?;
    assert!(mcp(dir.path(), &["db", "load", "fw.jsonl", "--log-type", "firewall"]).status.success());

    let run = mcp(dir.path(), &["run", "--agent", "firewall"]);
    let cache = mcp_storage::jobstatus::SharedCache::open(Some(&url), &prefix, Default::default())?;
    let list = mcp(dir.path(), &["jobs", "list"]);
    if let mcp_storage::jobstatus::SharedCache::Redis(redis) = &cache {
        redis.clear_prefix()?;
    }
    assert!(run.status.success(), "{run:?}");
    assert!(stdout(&run).contains("Redis at"), "start Redis for this test (see docs/deployment.md): {}", stdout(&run));
    let text = stdout(&list);
    assert!(list.status.success(), "{list:?}");
    assert!(text.contains("completed") && text.contains("entries=2"), "{text}");
    assert!(text.contains("1 jobs for tenant acme"), "{text}");
    Ok(())
}

#[test]
fn tokens_and_tenants_are_managed_from_the_command_line() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("mcp.toml"), format!("data_dir = {:?}\n", dir.path().join("data")))?;
    let made =
        mcp(dir.path(), &["tokens", "create", "--tenant", "acme", "--role", "read_only", "--name", "dashboards"]);
    assert!(made.status.success() && stdout(&made).starts_with("mcp_"), "{made:?}");
    let listed = stdout(&mcp(dir.path(), &["tokens", "list", "--tenant", "acme"]));
    let id = listed
        .lines()
        .find(|l| l.contains("dashboards"))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
        .ok_or_else(|| format!("no token listed: {listed}"))?;
    assert!(listed.contains("read_only") && listed.contains("command line"), "{listed}");
    assert!(mcp(dir.path(), &["tokens", "revoke", "--tenant", "acme", &id]).status.success());
    assert!(!stdout(&mcp(dir.path(), &["tokens", "list", "--tenant", "acme"])).contains("dashboards"));
    assert!(!mcp(dir.path(), &["tokens", "revoke", "--tenant", "acme", &id]).status.success(), "revoked twice");

    assert!(mcp(dir.path(), &["tenants", "create", "globex"]).status.success());
    assert!(mcp(dir.path(), &["tenants", "disable", "globex"]).status.success());
    let tenants = stdout(&mcp(dir.path(), &["tenants", "list"]));
    let globex = tenants.lines().find(|l| l.starts_with("globex")).unwrap_or_default();
    assert!(!globex.contains(" - "), "disabled shows a time: {tenants}");
    assert!(!mcp(dir.path(), &["tenants", "disable", "default"]).status.success(), "the deployment's own tenant");
    assert!(mcp(dir.path(), &["tenants", "delete", "globex"]).status.success());
    assert!(!stdout(&mcp(dir.path(), &["tenants", "list"])).contains("globex"));
    Ok(())
}

#[test]
fn export_writes_a_file_with_its_sha256_and_refuses_what_it_cannot_do() -> Result<(), Box<dyn std::error::Error>> {
    use sha2::Digest;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("mcp.toml"),
        format!("data_dir = {:?}\ntenant = \"acme\"\n[exports]\npage_rows = 100\n", dir.path().join("data")),
    )?;
    let missing = mcp(dir.path(), &["export", "-o", "none.jsonl"]);
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("no anomaly store"));
    let fill = mcp(dir.path(), &["bench", "--fill-anomalies", "3000"]);
    assert!(fill.status.success(), "{fill:?}");
    let since = "2026-07-01T00:00:00Z";
    let args = ["export", "--format", "parquet", "--since", since, "--severity", "high", "--severity", "critical"];
    let export = mcp(dir.path(), &[&args[..], &["-o", "out/high.parquet"]].concat());
    assert!(!export.status.success(), "the output folder must exist: {export:?}");
    std::fs::create_dir(dir.path().join("out"))?;
    let export = mcp(dir.path(), &[&args[..], &["-o", "out/high.parquet"]].concat());
    assert!(export.status.success(), "{export:?}");
    let file = std::fs::read(dir.path().join("out/high.parquet"))?;
    let sha256 = hex::encode(sha2::Sha256::digest(&file));
    let text = stdout(&export);
    assert!(text.contains(&format!("{sha256}  out/high.parquet")), "{text}");

    // The rows are the store's that pass, counted here by SQL.
    let db = rusqlite::Connection::open(dir.path().join("data/anomalies.db"))?;
    let expected: i64 = db.query_row(
        "SELECT COUNT(*) FROM anomalies WHERE tenant = 'acme' AND severity IN ('high', 'critical') AND log_ts_ms >= 1782864000000",
        [],
        |r| r.get(0),
    )?;
    assert!(expected > 0);
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(std::fs::File::open(
        dir.path().join("out/high.parquet"),
    )?)?;
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), expected);
    assert!(text.contains(&format!("wrote {expected} anomalies of tenant acme")), "{text}");

    let again = mcp(dir.path(), &[&args[..], &["-o", "out/high.parquet"]].concat());
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--force"), "{again:?}");
    let inverted = mcp(dir.path(), &["export", "--since", "1d", "--until", "2d", "-o", "x.csv"]);
    assert!(String::from_utf8_lossy(&inverted.stderr).contains("--until: is before --since"), "{inverted:?}");
    // Only a regular file is replaced, and filters that select nothing are named.
    std::fs::create_dir_all(dir.path().join("a-folder"))?;
    for (args, said) in [
        (vec!["export", "-o", "a-folder", "--force"], "not a regular file"),
        (vec!["export", "-o", "-"], "-o needs a file"),
        (vec!["export", "--agent", "nobody", "-o", "n.csv"], "--agent: tenant acme has no anomalies"),
        (vec!["export", "--tenant", "acmee", "-o", "n.csv"], "--tenant: no tenant named 'acmee'"),
    ] {
        let refused = mcp(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && stderr.contains(said), "{args:?}: {stderr}");
    }
    assert!(dir.path().join("a-folder").is_dir() && !dir.path().join("a-folder.part").exists());
    assert!(!dir.path().join("n.csv").exists(), "a refused export wrote a file");
    let control = mcp_storage::control::ControlStore::open(&dir.path().join("data/control.db"))?;
    let audit = control.audit_trail("acme", None, 10)?;
    assert!(audit.iter().any(|e| e.action == "export.cli" && e.detail.contains(&sha256)), "{audit:?}");
    Ok(())
}

/// `mcp config check` names every problem of a broken deployment, each
/// with where it came from, and exits non-zero; a sound one passes.
#[test]
fn config_check_names_each_problem() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(&schemas)?;
    std::fs::write(schemas.join("dns.yaml"), "log_type: dns\nfields: [this is not a field list\n")?;
    let models = dir.path().join("models/dns/2");
    std::fs::create_dir_all(&models)?;
    std::fs::write(models.join("model.onnx"), b"not a model")?;
    std::fs::write(models.join("metadata.json"), "{}")?;
    let file = format!(
        "data_dir = {:?}\nbatch_sise = 10\nreplay_ms = \"soon\"\nlisten = \"everywhere\"\n\
         schema_dir = {schemas:?}\nmodels_dir = {:?}\nagents_dir = {:?}\n\
         database_url = \"postgres://nobody@127.0.0.1:1/none\"\nredis_url = \"redis://127.0.0.1:1/0\"\n\
         [sandbox]\nmax_instances = \"many\"\n[retry]\nmax_attempts = 1\n",
        dir.path().join("data"),
        dir.path().join("models"),
        dir.path().join("no-agents-here"),
    );
    std::fs::write(dir.path().join("mcp.toml"), file)?;
    let env_file = dir.path().join("mcp.env");
    std::fs::write(&env_file, "# secrets\nMCP_BATCH_SIZ=5\nMCP_SANDBOX_BUDGET=\"epoch\"\n")?;
    let env_arg = env_file.display().to_string();
    let checked = mcp(dir.path(), &["config", "check", "--env-file", &env_arg]);
    let said = stdout(&checked);
    assert!(!checked.status.success(), "{said}");
    for named in [
        "mcp.toml: batch_sise: unknown field",
        "mcp.toml: replay_ms: invalid type",
        "mcp.toml: sandbox.max_instances",
        "environment: MCP_BATCH_SIZ",
        "listen: 'everywhere'",
        "agents_dir: ",
        "dns.yaml",
        "models_dir: dns/2",
        "database_url: PostgreSQL does not answer",
        "redis_url: Redis does not answer",
    ] {
        assert!(said.contains(named), "`{named}` not named:\n{said}");
    }
    let problems: Vec<&str> = said.lines().filter(|l| l.starts_with("problem")).collect();
    assert_eq!(problems.len(), 10, "{said}");
    assert!(!problems.iter().any(|l| l.contains("MCP_SANDBOX_BUDGET")), "a sound variable was named:\n{said}");
    assert!(!dir.path().join("data").exists(), "the check made the data folder");

    std::fs::write(dir.path().join("mcp.toml"), format!("data_dir = {:?}\n", dir.path().join("data")))?;
    let sound = mcp(dir.path(), &["config", "check"]);
    assert!(sound.status.success(), "{}", stdout(&sound));
    assert!(stdout(&sound).contains("the configuration is sound"), "{}", stdout(&sound));
    Ok(())
}

#[test]
fn config_check_reads_the_notifications_file_and_its_secrets() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("mcp.toml"),
        format!("data_dir = {:?}\n[notifications]\nfile = \"notifications.toml\"\n", dir.path().join("data")),
    )?;
    let channel = "[[channel]]\ntenant = \"acme\"\nname = \"soc\"\nkind = \"webhook\"\n\
                   url = { env = \"MCP_SECRET_CHECK_TEST_URL\" }\nsigning_key = { env = \"MCP_SECRET_CHECK_TEST_KEY\" }\n";
    std::fs::write(dir.path().join("notifications.toml"), channel)?;
    let missing = mcp(dir.path(), &["config", "check", "--offline"]);
    let said = stdout(&missing);
    assert!(!missing.status.success(), "{said}");
    for name in ["MCP_SECRET_CHECK_TEST_URL", "MCP_SECRET_CHECK_TEST_KEY"] {
        assert!(said.contains(&format!("channel acme/soc: {name} is not set")), "{name}:\n{said}");
    }
    std::fs::write(
        dir.path().join("notifications.toml"),
        "[[channel]]\ntenant = \"acme\"\nname = \"BAD NAME\"\nkind = \"log\"\n",
    )?;
    let bad = mcp(dir.path(), &["config", "check", "--offline"]);
    assert!(
        stdout(&bad).contains("notifications.file: ") && stdout(&bad).contains("(acme/BAD NAME): name"),
        "{}",
        stdout(&bad)
    );
    std::fs::write(
        dir.path().join("notifications.toml"),
        "[[channel]]\ntenant = \"acme\"\nname = \"ops\"\nkind = \"log\"\n",
    )?;
    let sound = mcp(dir.path(), &["config", "check", "--offline"]);
    assert!(sound.status.success() && stdout(&sound).contains("1 channels, 0 routes"), "{}", stdout(&sound));
    Ok(())
}
