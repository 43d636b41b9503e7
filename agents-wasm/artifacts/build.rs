//! Builds the bundled agents for wasm32-wasip2, so that a plain `cargo build`
//! yields them and the `mcp` binary can embed them; and the agents in other
//! languages (`EXAMPLES`), each by its own toolchain's script.

use std::path::PathBuf;
use std::process::Command;

use mcp_guest_build::{Guest, build, fail};

const AGENTS: &[Guest] = &[
    Guest { package: "mcp-agent-wifi", folder: "agents-wasm/wifi", file: "wifi.wasm" },
    Guest { package: "mcp-agent-firewall", folder: "agents-wasm/firewall", file: "firewall.wasm" },
    Guest { package: "mcp-agent-dns", folder: "agents-wasm/dns", file: "dns.wasm" },
];

/// An agent in another language, built by its toolchain's script.
struct Example {
    folder: &'static str,
    script: &'static str,
    file: &'static str,
    /// Its SDK's folder: a change there rebuilds it.
    sdk: &'static str,
}

const EXAMPLES: &[Example] = &[
    Example { folder: "agents-wasm/dns-py", script: "build.sh", file: "dns-py.wasm", sdk: "sdk/python" },
    Example { folder: "agents-wasm/dns-js", script: "build.sh", file: "dns-js.wasm", sdk: "sdk/js" },
];

fn main() {
    if let Err(message) = build(AGENTS, 2) {
        fail("mcp-agent-artifacts", &message);
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../..");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    for Example { folder, script, file, sdk } in EXAMPLES {
        for watched in [folder, sdk, &"wit/0.2.0"] {
            println!("cargo:rerun-if-changed={}", root.join(watched).display());
        }
        let status = Command::new("bash").arg(root.join(folder).join(script)).arg(out_dir.join(file)).status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => {
                fail("mcp-agent-artifacts", &format!("{folder}/{script} failed ({status}); its output above says why"))
            }
            Err(e) => fail("mcp-agent-artifacts", &format!("cannot run bash for {folder}/{script}: {e}")),
        }
    }
}
