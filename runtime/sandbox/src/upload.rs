//! What a component must be before the host compiles or keeps it: wasm, a
//! component rather than a core module, and importing nothing outside the
//! agent world of the protocol version it exports.

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::{Protocol, SandboxError};

/// The first four bytes of every wasm binary.
const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// Version and layer of a core module, then of a component.
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// The WASI 0.2 interfaces a wasm32-wasip2 toolchain's standard library
/// imports. They are linked with nothing behind them that reaches the host:
/// no preopened directory, no socket, no environment, no waiting.
const WASI_PACKAGES: &[&str] =
    &["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/", "wasi:sockets/"];

/// The host interfaces of the agent world.
const MCP_INTERFACES: &[&str] = &["types", "logs", "model", "report", "log", "config"];

/// Refuses bytes that are not a wasm component, saying what they are.
pub fn check_header(bytes: &[u8]) -> Result<(), SandboxError> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(SandboxError::Refused("not WebAssembly: the bytes do not start with the wasm magic number".into()));
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return Err(SandboxError::Refused(
            "a core wasm module, not a component: build for wasm32-wasip2 (or run `wasm-tools component new`)".into(),
        ));
    }
    Ok(())
}

/// Refuses a component that imports anything but the agent world of
/// `protocol` and WASI 0.2, naming the first import that is not.
pub fn check_imports(engine: &Engine, component: &Component, protocol: Protocol) -> Result<(), SandboxError> {
    for (name, _) in component.component_type().imports(engine) {
        if !allowed_import(name, protocol) {
            return Err(SandboxError::Refused(format!(
                "imports '{name}', which is outside the mcp:agent@{} world; agents may import only mcp:agent/{{{}}}@{} and WASI 0.2",
                protocol.version(),
                MCP_INTERFACES.join(","),
                protocol.version()
            )));
        }
    }
    Ok(())
}

fn allowed_import(name: &str, protocol: Protocol) -> bool {
    if let Some(rest) = name.strip_prefix("mcp:agent/") {
        return rest
            .split_once('@')
            .is_some_and(|(interface, version)| MCP_INTERFACES.contains(&interface) && version == protocol.version());
    }
    WASI_PACKAGES.iter().any(|package| name.starts_with(package))
        && name.rsplit_once('@').is_some_and(|(_, version)| version.starts_with("0.2."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_a_component_are_refused_with_what_they_are() {
        let refused = |bytes: &[u8]| check_header(bytes).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused(b"#!/bin/sh\nrm -rf /").contains("not WebAssembly"));
        assert!(refused(b"\0asm\x01\0\0\0").contains("core wasm module"));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn only_the_world_and_wasi_may_be_imported() {
        assert!(allowed_import("mcp:agent/logs@0.2.0", Protocol::V0_2));
        assert!(!allowed_import("mcp:agent/logs@0.1.0", Protocol::V0_2));
        assert!(!allowed_import("mcp:agent/admin@0.2.0", Protocol::V0_2));
        assert!(allowed_import("wasi:cli/environment@0.2.6", Protocol::V0_2));
        assert!(!allowed_import("wasi:http/outgoing-handler@0.2.6", Protocol::V0_2));
        assert!(!allowed_import("wasi:cli/environment@0.3.0", Protocol::V0_2));
        assert!(!allowed_import("evil:net/socket@1.0.0", Protocol::V0_2));
    }
}
