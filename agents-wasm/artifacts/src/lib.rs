//! The bundled agents as bytes, built for wasm32-wasip2 by this crate's build
//! script. The `mcp` binary embeds them, so it needs no source tree to run.

/// A bundled agent: its file name and component bytes.
pub const AGENTS: &[(&str, &[u8])] = &[
    ("wifi.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/wifi.wasm"))),
    ("firewall.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/firewall.wasm"))),
    ("dns.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/dns.wasm"))),
];

/// Agents in other languages than Rust: file name, language, component
/// bytes. Not run by default (`mcp run`, `serve`); `mcp demo` runs them
/// beside the bundled agents, and they are installed under
/// `<data_dir>/bundled/examples/` to copy from.
pub const EXAMPLES: &[(&str, &str, &[u8])] = &[
    ("dns-py.wasm", "Python", include_bytes!(concat!(env!("OUT_DIR"), "/dns-py.wasm"))),
    ("dns-js.wasm", "JavaScript", include_bytes!(concat!(env!("OUT_DIR"), "/dns-js.wasm"))),
];
