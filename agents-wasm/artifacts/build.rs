//! Builds the bundled agents for wasm32-wasip2, so that a plain `cargo build`
//! yields them and the `mcp` binary can embed them.

use mcp_guest_build::{Guest, build, fail};

const AGENTS: &[Guest] = &[
    Guest { package: "mcp-agent-wifi", folder: "agents-wasm/wifi", file: "wifi.wasm" },
    Guest { package: "mcp-agent-firewall", folder: "agents-wasm/firewall", file: "firewall.wasm" },
    Guest { package: "mcp-agent-dns", folder: "agents-wasm/dns", file: "dns.wasm" },
];

fn main() {
    if let Err(message) = build(AGENTS, 2) {
        fail("mcp-agent-artifacts", &message);
    }
}
