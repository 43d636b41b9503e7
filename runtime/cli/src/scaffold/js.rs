//! The JavaScript project: the agent and the SDK under src/, built by
//! componentize-js pinned with integrity hashes by package-lock.json (npm
//! only).

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{LanguageProject, check_and_score, fill, wit_files};

const AGENT: &str = include_str!("templates/app.js.txt");
const SDK: &str = include_str!("../../../../sdk/js/mcp_agent.js");
/// The lock the bundled JavaScript agent builds with.
const LOCK: &str = include_str!("../../../../agents-wasm/dns-js/package-lock.json");

pub(super) fn project(name: &str, log_type: &str) -> Result<LanguageProject> {
    let wasm = format!("build/{name}.wasm");
    let [check, score] = check_and_score(log_type, &wasm);
    let lock: serde_json::Value = serde_json::from_str(LOCK).context("the embedded package-lock.json")?;
    let dev_dependencies = lock["packages"][""]["devDependencies"].clone();
    let manifest = serde_json::json!({
        "name": name,
        "version": "0.1.0",
        "private": true,
        "type": "module",
        "scripts": {
            // `node --check` first: componentize-js reports a syntax error without its place.
            "build": format!(
                "node --check src/app.js && mkdir -p build && componentize-js src/app.js --wit wit/0.2.0 -n agent -d stdio random clocks http fetch-event -o {wasm}"
            ),
            "check": check,
            "test": format!("npm run build && npm run check && {score}"),
        },
        "devDependencies": dev_dependencies,
    });
    let files = vec![
        (PathBuf::from("src/app.js"), fill(AGENT, name, log_type)),
        (PathBuf::from("src/mcp_agent.js"), SDK.as_bytes().to_vec()),
        (PathBuf::from("package.json"), pretty(&manifest)?),
        (PathBuf::from("package-lock.json"), pretty(&renamed(lock, name))?),
    ];
    Ok(LanguageProject {
        files: files.into_iter().chain(wit_files()).collect(),
        ignored: "/build/\n/node_modules/\n",
        build: vec!["npm ci".into(), "npm run build".into()],
        test: "npm test".into(),
        wasm,
        sdk_note: "`src/mcp_agent.js` is the MCP SDK for JavaScript (protocol 0.2.0) and `wit/` the protocol; `npm ci` installs componentize-js from npm, pinned with integrity hashes by `package-lock.json`.",
    })
}

/// The lock with the project's name for the bundled agent's.
fn renamed(mut lock: serde_json::Value, name: &str) -> serde_json::Value {
    lock["name"] = name.into();
    if let Some(root) = lock["packages"][""].as_object_mut() {
        root.insert("name".into(), name.into());
        root.remove("license");
    }
    lock
}

fn pretty(value: &serde_json::Value) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}
