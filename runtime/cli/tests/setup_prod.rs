//! scripts/setup_prod.sh into a staging root: the installed binary starts
//! from the installed config and env file with no source tree, answers
//! /healthz and stops cleanly at SIGTERM; a second install changes nothing
//! and keeps an operator's edit; the unit passes `systemd-analyze verify`;
//! `--uninstall` leaves the data, the config and the environment file and
//! nothing else, `--purge` not even those.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

mod common;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn setup(stage: &Path, port: u16, more: &[&str]) -> Result<String> {
    let out = Command::new("bash")
        .arg(repository().join("scripts/setup_prod.sh"))
        .arg("--prefix")
        .arg(stage)
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_mcp"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(more)
        .output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "setup_prod.sh failed:\n{said}");
    Ok(said)
}

/// Every file under `root` with its modification time and mode.
fn files(root: &Path) -> Result<BTreeMap<PathBuf, (SystemTime, u32)>> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            }
            found.insert(entry.path().strip_prefix(root)?.to_path_buf(), (meta.modified()?, meta.permissions().mode()));
        }
    }
    Ok(found)
}

/// KEY=VALUE lines of an environment file, as systemd reads them.
fn environment_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect())
}

fn healthz(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

#[test]
fn a_staged_install_runs_alone_is_idempotent_and_uninstalls_to_its_data_and_config() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let stage = tempfile::tempdir()?;
    let root = stage.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let first = setup(root, port, &[])?;
    for installed in ["bin/mcp", "etc/mcp/mcp.toml", "etc/mcp/mcp.env", "etc/systemd/system/mcp.service"] {
        assert!(root.join(installed).is_file(), "{installed} not installed:\n{first}");
    }
    for dir in ["var/lib/mcp", "var/lib/mcp/agents", "var/lib/mcp/exports"] {
        assert!(root.join(dir).is_dir(), "{dir} not made:\n{first}");
    }
    let env_mode = std::fs::metadata(root.join("etc/mcp/mcp.env"))?.permissions().mode() & 0o777;
    assert_eq!(env_mode, 0o600, "the environment file may hold secrets");
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/mcp.service"))?;
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "User=mcp",
        "Restart=on-failure",
        "StartLimitBurst=5",
    ] {
        assert!(unit.contains(hardening), "the unit lacks {hardening}:\n{unit}");
    }
    let data = root.join("var/lib/mcp");
    assert!(unit.contains(&format!("ReadWritePaths={}", data.display())), "{unit}");
    let memory_max = unit.lines().find_map(|l| l.strip_prefix("MemoryMax=")).ok_or("no MemoryMax")?;
    assert!(memory_max.parse::<u64>()? > 1 << 30, "MemoryMax={memory_max}");
    assert!(unit.lines().any(|l| l.strip_prefix("TasksMax=").is_some_and(|v| v.parse::<u64>().is_ok())), "{unit}");

    // The unit as systemd reads it (the ExecStart binary, the directives).
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(root.join("etc/systemd/system/mcp.service"))
        .output()
        .map_err(|e| format!("systemd-analyze (Debian's systemd package) is needed to check the unit: {e}"))?;
    let complaints = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success() && !complaints.contains("mcp.service"), "systemd-analyze verify: {complaints}");

    // Again: nothing changes, not even a time stamp.
    let before = files(root)?;
    let second = setup(root, port, &[])?;
    assert!(second.contains("nothing to change"), "{second}");
    assert_eq!(files(root)?, before, "a second run changed the installation:\n{second}");

    // A config nobody edited follows what the script ships (here another
    // address), with nothing left beside it.
    let config = root.join("etc/mcp/mcp.toml");
    let other_port = port.wrapping_add(1).max(1024);
    let moved = setup(root, other_port, &[])?;
    assert!(std::fs::read_to_string(&config)?.contains(&format!("127.0.0.1:{other_port}")), "{moved}");
    assert!(!root.join("etc/mcp/mcp.toml.new").exists(), "an unedited config was treated as edited:\n{moved}");
    setup(root, port, &[])?;

    // An operator's edit survives, the shipped file goes beside it.
    let edited = format!("{}\nbatch_size = 500\n", std::fs::read_to_string(&config)?.replace("batch_size = 1000", ""));
    std::fs::write(&config, &edited)?;
    let third = setup(root, port, &[])?;
    assert_eq!(std::fs::read_to_string(&config)?, edited, "the edited config was overwritten:\n{third}");
    assert!(root.join("etc/mcp/mcp.toml.new").is_file() && third.contains("mcp.toml.new"), "{third}");

    // The installed binary alone: run from an empty folder with the env file.
    let elsewhere = tempfile::tempdir()?;
    let mut server = Command::new(root.join("bin/mcp"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .current_dir(elsewhere.path())
        .env_clear()
        .envs(environment_file(&root.join("etc/mcp/mcp.env"))?)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    let answer = loop {
        if let Some(answer) = healthz(port) {
            break answer;
        }
        if let Some(status) = server.try_wait()? {
            let mut said = String::new();
            if let Some(mut err) = server.stderr.take() {
                err.read_to_string(&mut said)?;
            }
            return Err(format!("the installed server exited: {status}\n{said}").into());
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no answer on /healthz within 120 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(data.join("control.db").is_file(), "the server did not keep its data in the installed data folder");
    let status = common::terminate(&mut server, Duration::from_secs(60))?;
    assert!(status.success(), "SIGTERM: {status}");

    // Uninstall: the data and the operator's config and environment stay,
    // nothing else; a purge takes those too.
    let uninstall = |purge: bool| -> Result<()> {
        let mut command = Command::new("bash");
        command.arg(repository().join("scripts/setup_prod.sh")).arg("--prefix").arg(root).arg("--uninstall");
        if purge {
            command.arg("--purge");
        }
        let removed = command.output()?;
        assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
        Ok(())
    };
    uninstall(false)?;
    let left: Vec<PathBuf> = files(root)?
        .into_keys()
        .filter(|p| !p.starts_with("var"))
        .filter(|p| !root.join(p).is_dir())
        .filter(|p| !["mcp.toml", "mcp.env", ".installed", ".shipped"].iter().any(|kept| p.ends_with(kept)))
        .collect();
    assert!(left.is_empty(), "--uninstall left {left:?}");
    assert!(!root.join("bin/mcp").exists() && !root.join("etc/systemd/system/mcp.service").exists());
    assert!(config.is_file() && data.join("control.db").is_file(), "--uninstall removed the config or the data");
    uninstall(true)?;
    let left: Vec<PathBuf> = files(root)?.into_keys().filter(|p| !root.join(p).is_dir()).collect();
    assert!(left.is_empty(), "--uninstall --purge left {left:?}");
    Ok(())
}
