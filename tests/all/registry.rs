//! Discovery, duplicates, unknown names, protocol mismatch, enable and disable.

use mcp_sandbox::registry::{Registry, RegistryError};
use mcp_sandbox::{InstanceContext, PROTOCOL_VERSION, PROTOCOL_VERSIONS, SandboxError};

use crate::common::{agents_dir, bundled_registry, sandbox};

/// The wifi component rewritten to export the detector at another protocol
/// version: the same bytes with the version in every occurrence of the
/// interface name replaced by one of equal length.
pub fn wifi_with_protocol(version: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(agents_dir().join("wifi.wasm"))?;
    let from = format!("mcp:agent/detector@{PROTOCOL_VERSION}");
    let to = format!("mcp:agent/detector@{version}");
    anyhow::ensure!(from.len() == to.len(), "versions must have the same length");
    let mut out = bytes.clone();
    let mut replaced = 0;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from.as_bytes() {
            out[i..i + from.len()].copy_from_slice(to.as_bytes());
            replaced += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    anyhow::ensure!(replaced > 0, "no export name found to rewrite");
    Ok(out)
}

#[test]
fn discovers_the_three_bundled_agents() -> anyhow::Result<()> {
    let registry = bundled_registry(sandbox())?;
    let names: Vec<(&str, &str)> = registry.list().map(|a| (a.info.name.as_str(), a.info.log_type.as_str())).collect();
    assert_eq!(names, vec![("dns", "dns"), ("firewall", "firewall"), ("wifi", "wifi")]);
    for agent in registry.list() {
        assert_eq!(agent.sha256.len(), 64);
        assert_eq!(agent.info.protocol_version, PROTOCOL_VERSION);
        assert!(agent.enabled);
    }
    Ok(())
}

#[test]
fn a_duplicate_name_is_refused_naming_both_files_and_the_first_kept() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(agents_dir().join("wifi.wasm"), dir.path().join("a-wifi.wasm"))?;
    std::fs::copy(agents_dir().join("wifi.wasm"), dir.path().join("b-wifi.wasm"))?;
    let mut registry = Registry::new(sandbox());
    let found = registry.discover(dir.path())?;
    assert_eq!(found.registered, ["wifi"]);
    match found.refused.as_slice() {
        [RegistryError::Duplicate { name, first, second }] => {
            assert_eq!(name, "wifi");
            assert!(first.ends_with("a-wifi.wasm") && second.ends_with("b-wifi.wasm"), "{first} {second}");
        }
        other => anyhow::bail!("expected one duplicate refusal, got {other:?}"),
    }
    assert!(registry.get("wifi")?.origin.ends_with("a-wifi.wasm"));
    Ok(())
}

#[test]
fn unknown_name_lists_what_is_available() -> anyhow::Result<()> {
    let registry = bundled_registry(sandbox())?;
    let error = registry.get("ids").map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(error, "no agent named 'ids'; available: dns, firewall, wifi");
    Ok(())
}

#[test]
fn another_protocol_version_is_refused_naming_both() -> anyhow::Result<()> {
    let bytes = wifi_with_protocol("0.9.0")?;
    let mut registry = Registry::new(sandbox());
    match registry.register_bytes(&bytes, "future-wifi.wasm") {
        Err(RegistryError::Invalid { origin, source: SandboxError::ProtocolMismatch { expected, found } }) => {
            assert_eq!(
                (origin.as_str(), expected.as_str(), found.as_str()),
                ("future-wifi.wasm", PROTOCOL_VERSIONS.join(" or ").as_str(), "0.9.0")
            );
        }
        other => anyhow::bail!("expected a protocol mismatch, got {other:?}"),
    }
    Ok(())
}

#[test]
fn garbage_is_not_a_component() -> anyhow::Result<()> {
    let mut registry = Registry::new(sandbox());
    let result = registry.register_bytes(b"\0asm not really", "garbage.wasm");
    assert!(matches!(result, Err(RegistryError::Invalid { source: SandboxError::Compile(_), .. })), "{result:?}");
    Ok(())
}

#[test]
fn disabled_agents_do_not_run_until_enabled() -> anyhow::Result<()> {
    let mut registry = bundled_registry(sandbox())?;
    registry.disable("dns")?;
    assert!(!registry.get("dns")?.enabled);
    let refused = registry.instantiate("dns", InstanceContext::new("dns", "t"));
    assert!(matches!(refused, Err(RegistryError::Disabled(ref n)) if n == "dns"), "{refused:?}");
    registry.enable("dns")?;
    registry.instantiate("dns", InstanceContext::new("dns", "t"))?;
    Ok(())
}

#[test]
fn unregister_forgets_an_agent() -> anyhow::Result<()> {
    let mut registry = bundled_registry(sandbox())?;
    let gone = registry.unregister("firewall")?;
    assert_eq!(gone.info.name, "firewall");
    assert!(matches!(registry.get("firewall"), Err(RegistryError::Unknown { .. })));
    assert!(matches!(registry.unregister("firewall"), Err(RegistryError::Unknown { .. })));
    Ok(())
}

#[test]
fn compile_cache_serves_the_second_load() -> anyhow::Result<()> {
    use mcp_sandbox::{CacheOutcome, CompileCache, Sandbox};
    let dir = tempfile::tempdir()?;
    let bytes = std::fs::read(agents_dir().join("dns.wasm"))?;
    let sha = mcp_sandbox::registry::sha256_hex(&bytes);
    let first = Sandbox::new(crate::common::test_limits(), CompileCache::new(Some(dir.path().to_path_buf())))?;
    assert_eq!(first.load(&bytes, &sha)?.1, CacheOutcome::Miss);
    let second = Sandbox::new(crate::common::test_limits(), CompileCache::new(Some(dir.path().to_path_buf())))?;
    assert_eq!(second.load(&bytes, &sha)?.1, CacheOutcome::Hit);
    // An engine with other settings cannot use that artifact; it compiles anew.
    let other = mcp_sandbox::SandboxLimits { budget: mcp_sandbox::BudgetKind::Fuel, ..crate::common::test_limits() };
    let third = Sandbox::new(other, CompileCache::new(Some(dir.path().to_path_buf())))?;
    assert_eq!(third.load(&bytes, &sha)?.1, CacheOutcome::Miss);
    Ok(())
}

#[test]
fn a_transient_load_leaves_nothing_in_the_compile_cache() -> anyhow::Result<()> {
    use mcp_sandbox::{CompileCache, Sandbox};
    let dir = tempfile::tempdir()?;
    let bytes = std::fs::read(agents_dir().join("wifi.wasm"))?;
    let sandbox = Sandbox::new(crate::common::test_limits(), CompileCache::new(Some(dir.path().to_path_buf())))?;
    let checked = mcp_sandbox::registry::validate_transient(&sandbox, &bytes, "candidate")?;
    assert_eq!(checked.info.name, "wifi");
    assert_eq!(std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0), 0, "a shadow's candidate left files");
    Ok(())
}
