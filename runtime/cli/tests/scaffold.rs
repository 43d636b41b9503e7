//! `mcp agents new` as an author outside this repository uses it: the
//! project it writes, in Rust, Python or JavaScript, builds on its own (the
//! SDK written into it, its language's registry only), its test passes, and
//! the component passes `agents check` and scores F1 1 on the sample file it
//! came with, unchanged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mcp(dir: &Path, args: &[&str]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_mcp")).args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run mcp: {e}"),
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A cargo for the scaffolded project with none of this build's settings
/// (coverage flags, wrappers, target dir); its target folder is kept
/// between runs under this workspace's, so only the first run compiles the
/// SDK's dependencies.
fn project_cargo(project: &Path, target_dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args).arg("--offline").arg("--target-dir").arg(target_dir).current_dir(project);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "LLVM_PROFILE_FILE",
        "CARGO_LLVM_COV",
        "CARGO_LLVM_COV_TARGET_DIR",
        "CARGO_INCREMENTAL",
    ] {
        command.env_remove(var);
    }
    match command.output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run cargo: {e}"),
    }
}

fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/scaffolded-agents")
}

#[test]
fn a_new_rust_agent_for_an_own_log_type_builds_checks_and_scores() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let made = mcp(dir.path(), &["agents", "new", "burst-finder", "--log-type", "bgl"]);
    assert!(made.status.success(), "{}", text(&made));
    let project = dir.path().join("burst-finder");
    for file in ["Cargo.toml", "src/lib.rs", "schemas/bgl.yaml", "samples/bgl.jsonl", "mcp.toml", "README.md"] {
        assert!(project.join(file).is_file(), "{file} missing: {}", text(&made));
    }
    assert!(project.join("vendor/mcp-sdk/wit/0.2.0/agent.wit").is_file());
    let again = mcp(dir.path(), &["agents", "new", "burst-finder", "--log-type", "bgl"]);
    assert!(!again.status.success() && text(&again).contains("exists already"), "{}", text(&again));

    let target = shared_target();
    let tested = project_cargo(&project, &target, &["test"]);
    assert!(tested.status.success(), "the project's own test: {}", text(&tested));
    let built = project_cargo(&project, &target, &["build", "--release", "--target", "wasm32-wasip2"]);
    assert!(built.status.success(), "{}", text(&built));
    let wasm = target.join("wasm32-wasip2/release/burst_finder.wasm");
    let wasm = wasm.to_str().ok_or("path")?;

    let check = mcp(&project, &["--config", "mcp.toml", "agents", "check", wasm]);
    assert!(check.status.success(), "{}", text(&check));
    let scored = mcp(
        &project,
        &["--config", "mcp.toml", "agents", "test", wasm, "--logs", "samples/bgl.jsonl", "--labels", "label"],
    );
    assert!(scored.status.success(), "{}", text(&scored));
    assert!(text(&scored).contains("F1 1.000 (tp 150, fp 0, fn 0)"), "{}", text(&scored));

    // A shadow run: the build above deployed, a deliberately changed build
    // (threshold 10 instead of 100, so the five normal sources' 80 entries
    // each are flagged too) compared with it over the loaded samples.
    let loaded = mcp(&project, &["--config", "mcp.toml", "db", "load", "samples/bgl.jsonl", "--log-type", "bgl"]);
    assert!(loaded.status.success(), "{}", text(&loaded));
    std::fs::create_dir_all(project.join("agents"))?;
    std::fs::copy(wasm, project.join("agents/burst_finder.wasm"))?;
    let source = std::fs::read_to_string(project.join("src/lib.rs"))?;
    std::fs::write(
        project.join("src/lib.rs"),
        source.replace("DEFAULT_THRESHOLD: usize = 100", "DEFAULT_THRESHOLD: usize = 10"),
    )?;
    let rebuilt = project_cargo(&project, &target, &["build", "--release", "--target", "wasm32-wasip2"]);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt));
    let shadow = |candidate: &str, extra: &[&str]| {
        let args = ["--config", "mcp.toml", "--agents-dir", "agents", "agents", "shadow", candidate, "--against"];
        mcp(&project, &[&args[..], &["burst-finder"], extra].concat())
    };
    let compared = shadow(wasm, &["--format", "json"]);
    assert!(compared.status.success(), "{}", text(&compared));
    let report: serde_json::Value = serde_json::from_slice(&compared.stdout)?;
    let counts = ["entries", "both", "only_candidate", "only_active"].map(|k| report[k].as_u64());
    assert_eq!(counts, [Some(550), Some(150), Some(400), Some(0)], "{report}");
    assert!(
        report["only_candidate_examples"][0]["reason"].as_str().is_some_and(|r| r.contains("80 entries")),
        "{report}"
    );
    assert!(text(&shadow(wasm, &[])).contains("only by the candidate: 400; only by burst-finder: 0"));
    // Nothing was stored: no anomaly store was even made.
    assert!(
        !project.join(".mcp/anomalies.db").exists() || {
            let listed = mcp(&project, &["--config", "mcp.toml", "anomalies", "list"]);
            text(&listed).contains("0 anomalies")
        }
    );
    // A candidate of another log type is refused.
    let other = project.join(".mcp/bundled/agents/dns.wasm");
    let refused = shadow(other.to_str().ok_or("path")?, &[]);
    assert!(
        !refused.status.success() && text(&refused).contains("candidate dns reads 'dns' logs"),
        "{}",
        text(&refused)
    );
    Ok(())
}

#[test]
fn a_new_agent_for_a_bundled_log_type_uses_the_bundled_schema() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let made = mcp(dir.path(), &["agents", "new", "dns-bursts", "--log-type", "dns", "--dir", "here"]);
    assert!(made.status.success(), "{}", text(&made));
    let project = dir.path().join("here");
    assert!(!project.join("schemas/dns.yaml").exists(), "no copy of a bundled schema");
    let samples = std::fs::read_to_string(project.join("samples/dns.jsonl"))?;
    assert_eq!(samples.lines().count(), 550);
    let first: serde_json::Value = serde_json::from_str(samples.lines().next().unwrap_or_default())?;
    for field in ["client_ip", "query", "rcode"] {
        assert!(first["fields"].get(field).is_some(), "{field} missing in {first}");
    }
    for (args, expected) in [
        (vec!["agents", "new", "x", "--log-type", "dns", "--lang", "cobol"], "invalid value 'cobol'"),
        (vec!["agents", "new", "../evil", "--log-type", "dns"], "must be 1 to 64"),
        (vec!["agents", "new", "ok", "--log-type", "../dns"], "must be 1 to 64"),
    ] {
        let refused = mcp(dir.path(), &args);
        assert!(!refused.status.success() && text(&refused).contains(expected), "{args:?}: {}", text(&refused));
    }
    assert!(!dir.path().join("evil").exists() && !dir.path().parent().is_some_and(|p| p.join("evil").exists()));
    Ok(())
}

/// The author's shell: `mcp` (the binary under test) first on PATH.
fn author_path() -> std::ffi::OsString {
    let mcp_dir = Path::new(env!("CARGO_BIN_EXE_mcp")).parent().map(Path::to_path_buf).unwrap_or_default();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(mcp_dir).chain(std::env::split_paths(&rest))).unwrap_or(rest)
}

fn author_runs(project: &Path, program: &str, args: &[&str]) -> Output {
    match Command::new(program).args(args).current_dir(project).env("PATH", author_path()).output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run {program} (install it to run this test): {e}"),
    }
}

/// What the project's own test prints when the template agent finds the
/// sample file's burst and nothing else.
fn assert_scored(output: &Output) {
    assert!(output.status.success(), "{}", text(output));
    let printed = text(output);
    assert!(printed.contains("conforms"), "{printed}");
    assert!(printed.contains("F1 1.000 (tp 150, fp 0, fn 0)"), "{printed}");
}

#[test]
fn a_new_python_agent_builds_checks_and_scores() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let made = mcp(dir.path(), &["agents", "new", "burst-py", "--lang", "python", "--log-type", "bgl"]);
    assert!(made.status.success(), "{}", text(&made));
    assert!(text(&made).contains("bash build.sh"), "{}", text(&made));
    let project = dir.path().join("burst-py");
    for file in ["src/app.py", "src/mcp_agent/__init__.py", "wit/0.2.0/agent.wit", "requirements.txt", "test.sh"] {
        assert!(project.join(file).is_file(), "{file} missing: {}", text(&made));
    }
    assert!(std::fs::read_to_string(project.join("src/app.py"))?.contains("class BurstPy:"));
    assert_scored(&author_runs(&project, "bash", &["test.sh"]));
    Ok(())
}

#[test]
fn a_new_javascript_agent_builds_checks_and_scores() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let made = mcp(dir.path(), &["agents", "new", "burst-js", "--lang", "js", "--log-type", "firewall"]);
    assert!(made.status.success(), "{}", text(&made));
    let project = dir.path().join("burst-js");
    for file in ["src/app.js", "src/mcp_agent.js", "wit/0.2.0/agent.wit", "package.json", "package-lock.json"] {
        assert!(project.join(file).is_file(), "{file} missing: {}", text(&made));
    }
    assert!(!project.join("schemas/firewall.yaml").exists(), "no copy of a bundled schema");
    let installed = author_runs(&project, "npm", &["ci", "--no-audit", "--no-fund"]);
    assert!(installed.status.success(), "npm ci: {}", text(&installed));
    assert_scored(&author_runs(&project, "npm", &["test"]));
    Ok(())
}
