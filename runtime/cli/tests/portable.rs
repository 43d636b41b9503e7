//! The `mcp` binary carries what it needs: copied alone into an empty
//! folder, it runs the demo with its embedded agents, log schemas and
//! models, and finds the injected attacks.

use std::process::Command;

#[test]
fn a_copied_binary_runs_the_demo_in_an_empty_folder() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let binary = dir.path().join("mcp");
    std::fs::copy(env!("CARGO_BIN_EXE_mcp"), &binary)?;
    let out = Command::new(&binary).args(["demo", "--entries", "3000"]).current_dir(dir.path()).env_clear().output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    // The agents, schemas and models came from the binary, into its data folder.
    let bundled = dir.path().join("mcp-data/bundled");
    for file in [
        "agents/wifi.wasm",
        "agents/dns.wasm",
        "examples/dns-py.wasm",
        "log_schemas/dns.yaml",
        "models/dns/2/model.onnx",
    ] {
        assert!(bundled.join(file).is_file(), "{file} was not installed from the binary");
    }
    let mut scored = 0;
    for (agent, language) in [("wifi", "Rust"), ("firewall", "Rust"), ("dns", "Rust"), ("dns-py", "Python")] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(agent) && l.split_whitespace().count() == 9)
            .ok_or_else(|| anyhow::anyhow!("no result line for {agent}:\n{stdout}"))?;
        assert_eq!(line.split_whitespace().nth(1), Some(language), "{line}");
        let f1: f64 = line.split_whitespace().nth(6).unwrap_or_default().parse()?;
        assert!(f1 >= 0.9, "{agent}: F1 {f1} from the copied binary:\n{stdout}");
        scored += 1;
        if language == "Rust" {
            // The version the binary installed: the one it carries.
            let installed = std::fs::read_dir(bundled.join("models").join(agent))?
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .max_by_key(|version| version.parse::<u64>().unwrap_or(0))
                .ok_or_else(|| anyhow::anyhow!("no model of {agent} installed"))?;
            let model_line = format!("model {agent} version {installed}");
            assert!(stdout.contains(&model_line), "{agent} did not use its embedded model:\n{stdout}");
        }
    }
    assert_eq!(scored, 4);
    Ok(())
}
