//! The Rust project: a crate with the SDK and the crate it uses vendored
//! (crates.io only), and a native test of the agent.

use std::path::PathBuf;

use super::{LanguageProject, fill};
use crate::assets::VENDOR;

const AGENT: &str = include_str!("templates/lib.rs.txt");

pub(super) fn project(name: &str, log_type: &str) -> LanguageProject {
    let mut files = vec![
        (PathBuf::from("Cargo.toml"), cargo_toml(name).into_bytes()),
        (PathBuf::from("src/lib.rs"), fill(AGENT, name, log_type)),
    ];
    files.extend(VENDOR.iter().map(|(relative, bytes)| (PathBuf::from("vendor").join(relative), bytes.to_vec())));
    LanguageProject {
        files,
        ignored: "/target/\n",
        build: vec!["rustup target add wasm32-wasip2".into(), "cargo build --release --target wasm32-wasip2".into()],
        test: "cargo test".into(),
        wasm: format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_")),
        sdk_note: "`vendor/` holds the MCP SDK (protocol 0.2.0) and the crate it uses, so the project builds anywhere with crates.io.",
    }
}

fn cargo_toml(name: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [lib]\n# cdylib: the component; rlib: the native tests.\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
         [dependencies]\nmcp-sdk = {{ path = \"vendor/mcp-sdk\" }}\n\n\
         [profile.release]\nlto = true\ncodegen-units = 1\nstrip = \"debuginfo\"\n\n\
         # Its own workspace, wherever the folder is put.\n[workspace]\n"
    )
}
