//! The Python project: the agent and the SDK under src/, built by
//! componentize-py pinned by hash (PyPI only) in a virtualenv of its own.

use std::path::PathBuf;

use super::{LanguageProject, fill, wit_files};

const AGENT: &str = include_str!("templates/app.py.txt");
const BUILD: &str = include_str!("templates/build.sh.txt");
const TEST: &str = include_str!("templates/test.sh.txt");
const SDK: &str = include_str!("../../../../sdk/python/mcp_agent/__init__.py");
/// The pin the bundled Python agent builds with.
const REQUIREMENTS: &str = include_str!("../../../../agents-wasm/dns-py/requirements.txt");

pub(super) fn project(name: &str, log_type: &str) -> LanguageProject {
    let mut files = vec![
        (PathBuf::from("src/app.py"), fill(AGENT, name, log_type)),
        (PathBuf::from("src/mcp_agent/__init__.py"), SDK.as_bytes().to_vec()),
        (PathBuf::from("requirements.txt"), REQUIREMENTS.as_bytes().to_vec()),
        (PathBuf::from("build.sh"), fill(BUILD, name, log_type)),
        (PathBuf::from("test.sh"), fill(&TEST.replace("{{BUILD}}", "bash build.sh"), name, log_type)),
    ];
    files.extend(wit_files());
    LanguageProject {
        files,
        ignored: "/build/\n/.venv/\n__pycache__/\n",
        build: vec!["bash build.sh".into()],
        test: "bash test.sh".into(),
        wasm: format!("build/{name}.wasm"),
        sdk_note: "`src/mcp_agent` is the MCP SDK for Python (protocol 0.2.0) and `wit/` the protocol; `build.sh` installs componentize-py from PyPI, pinned by hash, into `.venv` on its first run.",
    }
}
