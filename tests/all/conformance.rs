//! Every bundled agent passes the check `mcp agents check` runs; a component
//! of another protocol does not.

use mcp_sandbox::conformance::{self, Outcome};

use crate::common::{agents_dir, sandbox};

fn check_bundled(name: &str) -> anyhow::Result<()> {
    let path = agents_dir().join(format!("{name}.wasm"));
    let report = conformance::check(
        &sandbox(),
        &std::fs::read(&path)?,
        &path.display().to_string(),
        &mcp_synth::GeneratedSamples,
    );
    for check in &report.checks {
        assert!(matches!(check.outcome, Outcome::Passed(_)), "{name}: {} {:?}", check.name, check.outcome);
    }
    assert!(report.passed());
    assert_eq!(report.checks.len(), 6, "every check ran: {:?}", report.checks);
    Ok(())
}

#[test]
fn wifi_conforms() -> anyhow::Result<()> {
    check_bundled("wifi")
}

#[test]
fn firewall_conforms() -> anyhow::Result<()> {
    check_bundled("firewall")
}

#[test]
fn dns_conforms() -> anyhow::Result<()> {
    check_bundled("dns")
}

#[test]
fn other_protocol_fails_the_check() -> anyhow::Result<()> {
    let bytes = crate::registry::wifi_with_protocol("0.3.0")?;
    let report = conformance::check(&sandbox(), &bytes, "old.wasm", &mcp_synth::GeneratedSamples);
    assert!(!report.passed());
    let Some(first) = report.checks.first() else { anyhow::bail!("no checks ran") };
    match &first.outcome {
        Outcome::Failed(detail) => assert!(detail.contains("0.3.0") && detail.contains("0.2.0"), "{detail}"),
        other => anyhow::bail!("expected a failure, got {other:?}"),
    }
    Ok(())
}

#[test]
fn bad_agent_settings_are_a_config_error() -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    let registry = crate::common::bundled_registry(sandbox())?;
    let mut context = mcp_sandbox::InstanceContext::new("wifi", "t");
    context.config = Arc::new(BTreeMap::from([("deauth_threshold".to_string(), "lots".to_string())]));
    let mut wifi = registry.instantiate("wifi", context)?;
    match wifi.detect_batch(&crate::common::wifi_batch(5)) {
        Err(mcp_sandbox::SandboxError::Agent { message, .. }) => {
            assert!(message.contains("deauth_threshold") && message.contains("lots"), "{message}")
        }
        other => anyhow::bail!("expected a configuration error, got {other:?}"),
    }
    Ok(())
}
