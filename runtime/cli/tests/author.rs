//! An agent author's loop with the `mcp` binary alone, as someone outside
//! this repository works: a fourth log type with its own schema folder, a
//! component, `agents check` and `agents test` with labels and a release
//! gate, and the anomalies read back without a server.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{mcp, mcp_with, stdout};

const PROXY_SCHEMA: &str = "log_type: proxy\nversion: 1\nfields:\n  - { name: url, type: text, required: true }\n  - { name: status, type: integer, required: true }\n";

/// A config whose relative paths are the config file's folder's: the test
/// runs every command from elsewhere to show it.
fn author_setup(with_schema: bool) -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("etc/schemas"))?;
    if with_schema {
        std::fs::write(dir.path().join("etc/schemas/proxy.yaml"), PROXY_SCHEMA)?;
    }
    std::fs::write(dir.path().join("etc/mcp.toml"), "data_dir = \"../data\"\nschema_dir = \"schemas\"\n")?;
    std::fs::copy(mcp_fixtures::PROXY, dir.path().join("proxy.wasm"))?;
    // Labels: 502 and 503 are errors, 500 is a planned test (normal), the
    // slow 200 is an attack the agent cannot see: tp 2, fp 1, fn 1.
    let lines = [
        r#"{"timestamp_ms": 1, "source": "squid", "fields": {"url": "/a", "status": 200}}"#,
        r#"{"timestamp_ms": 2, "source": "squid", "fields": {"url": "/b", "status": 502}, "label": "error"}"#,
        r#"{"timestamp_ms": 3, "source": "squid", "fields": {"url": "/c", "status": 500}, "label": null}"#,
        r#"{"timestamp_ms": 4, "source": "squid", "fields": {"url": "/d", "status": 200}, "label": "slow"}"#,
        r#"{"timestamp_ms": 5, "source": "squid", "fields": {"url": "/e", "status": 503}, "label": "error"}"#,
    ];
    std::fs::write(dir.path().join("proxy.jsonl"), lines.join("\n"))?;
    Ok(dir)
}

/// `mcp` run from the temporary folder with the config in etc/.
fn author(dir: &Path, args: &[&str]) -> Output {
    mcp_with(&dir.join("etc/mcp.toml"), dir, args)
}

#[test]
fn a_fourth_log_type_passes_the_check_from_its_schema_file_or_a_sample_file() -> Result<(), Box<dyn std::error::Error>>
{
    // Without a schema file or samples the check cannot call the exports,
    // and says what to give it.
    let bare = author_setup(false)?;
    let check = author(bare.path(), &["agents", "check", "proxy.wasm"]);
    let text = stdout(&check);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    assert!(text.contains("give --samples FILE.jsonl"), "{text}");
    // A sample file is enough, with a note that runs need the schema file.
    let check = author(bare.path(), &["agents", "check", "proxy.wasm", "--samples", "proxy.jsonl"]);
    assert!(check.status.success(), "{}", stdout(&check));
    assert!(stdout(&check).contains("conforms to mcp:agent@"), "{}", stdout(&check));
    assert!(stdout(&check).contains("no proxy.yaml on the schema search path"), "{}", stdout(&check));
    // A field the agent declares that no sample entry has is named.
    let urlless = r#"{"timestamp_ms": 1, "source": "s", "fields": {"status": 502}}"#;
    std::fs::write(bare.path().join("urlless.jsonl"), format!("{urlless}\n{urlless}\n"))?;
    let check = author(bare.path(), &["agents", "check", "proxy.wasm", "--samples", "urlless.jsonl"]);
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    assert!(stdout(&check).contains("'url' is in no sample entry"), "{}", stdout(&check));

    // So is a schema file in the operator's folder; the bundled log types
    // stay on the search path beside it.
    let with_schema = author_setup(true)?;
    let check = author(with_schema.path(), &["agents", "check", "proxy.wasm"]);
    assert!(check.status.success(), "{}", stdout(&check));
    // Sample lines the schema refuses are left out, as a run would, not fed
    // to the agent mistyped.
    let mixed = r#"{"timestamp_ms": 1, "source": "s", "fields": {"url": "/a", "status": "200"}}"#;
    std::fs::write(
        with_schema.path().join("mixed.jsonl"),
        format!(
            "{mixed}
{}",
            std::fs::read_to_string(with_schema.path().join("proxy.jsonl"))?
        ),
    )?;
    let check = author(with_schema.path(), &["agents", "check", "proxy.wasm", "--samples", "mixed.jsonl"]);
    assert!(check.status.success(), "{}", stdout(&check));
    assert!(stdout(&check).contains("mixed.jsonl:1 left out: field 'status' must be integer"), "{}", stdout(&check));
    let bundled = with_schema.path().join("data/bundled/agents/dns.wasm");
    let check = author(with_schema.path(), &["agents", "check", bundled.to_str().ok_or("path")?]);
    assert!(check.status.success(), "the bundled types are still found: {}", stdout(&check));
    Ok(())
}

#[test]
fn agents_test_scores_against_labels_and_gates_on_f1() -> Result<(), Box<dyn std::error::Error>> {
    let dir = author_setup(true)?;
    let args = ["agents", "test", "proxy.wasm", "--logs", "proxy.jsonl", "--labels", "label"];
    let tested = author(dir.path(), &args);
    let text = stdout(&tested);
    assert!(tested.status.success(), "{tested:?}");
    assert!(text.contains("5 entries in 1 batches, 0 quarantined, 0 unreadable lines, 3 findings"), "{text}");
    assert!(text.contains("precision 0.667, recall 0.667, F1 0.667 (tp 2, fp 1, fn 1)"), "{text}");
    assert!(text.contains("slow: 0 of 1 flagged") && text.contains("error: 2 of 2 flagged"), "{text}");

    let gate = |bar: &str| author(dir.path(), &[&args[..], &["--min-f1", bar]].concat());
    assert_eq!(gate("0.9").status.code(), Some(1), "below the bar fails");
    assert!(String::from_utf8_lossy(&gate("0.9").stderr).contains("F1 0.667 is below --min-f1 0.9"));
    assert!(gate("0.6").status.success(), "above the bar passes");
    let ungated = author(dir.path(), &["agents", "test", "proxy.wasm", "--logs", "proxy.jsonl", "--min-f1", "0.5"]);
    assert!(!ungated.status.success() && String::from_utf8_lossy(&ungated.stderr).contains("--min-f1 needs --labels"));

    let json = author(dir.path(), &[&args[..], &["--format", "json"]].concat());
    let document: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    let ids: Vec<u64> =
        document["findings"].as_array().into_iter().flatten().filter_map(|f| f["log_id"].as_u64()).collect();
    assert_eq!(ids, vec![2, 3, 5], "{document}");
    assert_eq!(document["score"]["true_positives"], 2, "{document}");
    assert!(document["usage"]["memory_high_water_bytes"].as_u64().is_some_and(|m| m > 0), "{document}");

    // Mistakes that would make the gate lie are refused.
    for (extra, expected) in [
        (vec!["--min-f1", "NaN"], "must be between 0 and 1"),
        (vec!["--min-f1", "1.5"], "must be between 0 and 1"),
        (vec!["--batch-size", "0"], "at least 1"),
        (vec!["--log-type", "dns"], "reads 'proxy' logs, not 'dns'"),
    ] {
        let refused = author(dir.path(), &[&args[..], &extra[..]].concat());
        let error = String::from_utf8_lossy(&refused.stderr).into_owned();
        assert!(!refused.status.success() && error.contains(expected), "{extra:?}: {error}");
    }
    for (column, expected) in [("nosuch", "no line of proxy.jsonl carries 'nosuch'"), ("status", "is a field of")] {
        let refused =
            author(dir.path(), &["agents", "test", "proxy.wasm", "--logs", "proxy.jsonl", "--labels", column]);
        let error = String::from_utf8_lossy(&refused.stderr).into_owned();
        assert!(!refused.status.success() && error.contains(expected), "{column}: {error}");
    }

    // Text from the log and the agent cannot drive the terminal, and
    // "normal" is normal however a label spells it.
    let hostile = concat!(
        r#"{"timestamp_ms": 1, "source": "s", "fields": {"url": "/x\u001b[2J\nFAKE\u202e", "status": 500}, "label": "Normal"}"#,
        "
",
        r#"{"timestamp_ms": 2, "source": "s", "fields": {"url": "/y", "status": 200}, "label": "benign"}"#,
    );
    std::fs::write(dir.path().join("hostile.jsonl"), hostile)?;
    let shown = author(dir.path(), &["agents", "test", "proxy.wasm", "--logs", "hostile.jsonl", "--labels", "label"]);
    let text = stdout(&shown);
    assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'), "{text:?}");
    assert!(text.contains("/x\\u{1b}[2J\\nFAKE\\u{202e} answered 500"), "{text}");
    assert!(text.contains("(tp 0, fp 1, fn 0)"), "{text}");

    // A label column among the fields is taken out before the agent sees it.
    let fielded = r#"{"timestamp_ms": 1, "source": "squid", "fields": {"url": "/z", "status": 500, "truth": "error"}}"#;
    std::fs::write(dir.path().join("fielded.jsonl"), fielded)?;
    let by_field =
        author(dir.path(), &["agents", "test", "proxy.wasm", "--logs", "fielded.jsonl", "--labels", "truth"]);
    assert!(stdout(&by_field).contains("F1 1.000 (tp 1, fp 0, fn 0)"), "{}", stdout(&by_field));
    Ok(())
}

#[test]
fn an_agent_that_reads_a_schema_version_is_refused_without_its_schema_file() -> Result<(), Box<dyn std::error::Error>> {
    let dir = author_setup(false)?;
    assert!(author(dir.path(), &["db", "load", "proxy.jsonl", "--log-type", "proxy"]).status.success());
    let tested = author(dir.path(), &["agents", "test", "proxy.wasm", "--logs", "proxy.jsonl"]);
    let error = String::from_utf8_lossy(&tested.stderr).into_owned();
    assert!(!tested.status.success(), "{tested:?}");
    assert!(error.contains("reads 'proxy' schema versions 1 to 1, but no proxy.yaml"), "{error}");
    // And a run refuses it the same way, storing nothing.
    std::fs::create_dir_all(dir.path().join("agents"))?;
    std::fs::copy(dir.path().join("proxy.wasm"), dir.path().join("agents/proxy.wasm"))?;
    let run = author(dir.path(), &["--agents-dir", "agents", "run", "--agent", "proxy"]);
    assert!(!run.status.success() && stdout(&run).contains("but no proxy.yaml"), "{}", stdout(&run));
    Ok(())
}

#[test]
fn anomalies_are_listed_and_shown_without_a_server() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("mcp.toml"), "data_dir = \"data\"\ntenant = \"acme\"\n")?;
    let lines: Vec<String> = mcp_synth::generate("firewall", 3, 2_000)?
        .iter()
        .map(|log| {
            serde_json::json!({"timestamp_ms": log.timestamp_ms, "source": log.source, "fields": log.fields, "label": log.label})
                .to_string()
        })
        .collect();
    std::fs::write(dir.path().join("fw.jsonl"), lines.join("\n"))?;
    assert!(mcp(dir.path(), &["db", "load", "fw.jsonl", "--log-type", "firewall"]).status.success());
    assert!(mcp(dir.path(), &["run", "--agent", "firewall"]).status.success());

    let listed = mcp(dir.path(), &["anomalies", "list", "--agent", "firewall", "--limit", "5", "--json"]);
    assert!(listed.status.success(), "{listed:?}");
    let records: Vec<serde_json::Value> =
        stdout(&listed).lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(records.len(), 5, "{}", stdout(&listed));
    let id = records[0]["id"].as_i64().ok_or("no id")?;
    let table = stdout(&mcp(dir.path(), &["anomalies", "list", "--severity", "high", "--sort", "score"]));
    assert!(table.contains("anomalies of tenant acme"), "{table}");
    let shown = mcp(dir.path(), &["anomalies", "show", &id.to_string()]);
    assert!(shown.status.success() && stdout(&shown).contains(&format!("anomaly {id} of agent firewall")));
    assert!(stdout(&shown).contains("fields         {"), "{}", stdout(&shown));

    // Another tenant's command line sees none of them.
    let other = Command::new(env!("CARGO_BIN_EXE_mcp"))
        .env("MCP_TENANT", "other")
        .args(["--config", "mcp.toml", "anomalies", "show", &id.to_string()])
        .current_dir(dir.path())
        .output()?;
    assert!(!other.status.success() && String::from_utf8_lossy(&other.stderr).contains("has no anomaly"));
    let bad = mcp(dir.path(), &["anomalies", "list", "--severity", "urgent"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("severity 'urgent' is not"), "{bad:?}");

    // The labels loaded with the lines score a test of the same file.
    let wasm = dir.path().join("data/bundled/agents/firewall.wasm");
    let args = ["agents", "test", wasm.to_str().ok_or("path")?, "--logs", "fw.jsonl", "--labels", "label"];
    let tested = mcp(dir.path(), &args);
    assert!(stdout(&tested).contains("against the labels: precision"), "{}", stdout(&tested));
    Ok(())
}

/// The release gate scores what a run would store: findings naming entries
/// the agent was not given, or the same (entry, label) twice, are dropped
/// and said, not credited.
#[test]
fn agents_test_does_not_credit_findings_a_run_would_drop() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("mcp.toml"), "data_dir = \"data\"\n[agents.hostile]\nmode = \"forge\"\n")?;
    std::fs::copy(mcp_fixtures::HOSTILE, dir.path().join("hostile.wasm"))?;
    // Twenty Wi-Fi entries, the last of each batch of ten labelled: "forge"
    // names that entry, one a million ids on, and the last possible id.
    let logs = mcp_synth::generate("wifi", 3, 20)?;
    let lines: Vec<String> = logs
        .iter()
        .take(20)
        .enumerate()
        .map(|(i, log)| {
            let label = if i % 10 == 9 { serde_json::json!("forged") } else { serde_json::Value::Null };
            serde_json::json!({"timestamp_ms": log.timestamp_ms, "source": log.source, "fields": log.fields, "label": label})
                .to_string()
        })
        .collect();
    std::fs::write(dir.path().join("wifi.jsonl"), lines.join("\n"))?;
    let args = ["agents", "test", "hostile.wasm", "--logs", "wifi.jsonl", "--labels", "label", "--batch-size", "10"];
    let tested = mcp(dir.path(), &args);
    let text = stdout(&tested);
    assert!(tested.status.success(), "{text}{}", String::from_utf8_lossy(&tested.stderr));
    assert!(text.contains("2 findings") && text.contains("4 findings dropped, as a run drops them"), "{text}");
    assert!(text.contains("F1 1.000 (tp 2, fp 0, fn 0)"), "{text}");
    Ok(())
}
