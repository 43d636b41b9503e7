//! Each bundled agent, with its shipped model, finds the injected attack
//! kinds with F1 of at least 0.9 on a generator seed that neither the rule
//! tuning nor the training used (tuning and training used seed 42, the
//! models' thresholds seed 7; this seed was run once, after tuning).

use mcp_cli::demo::{self, DemoOptions};
use mcp_engine::config::McpConfig;

use crate::common::agents_dir;

const UNSEEN_SEED: u64 = 9001;

#[test]
fn every_agent_reaches_f1_of_0_9_on_an_unseen_seed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The source tree's schemas and models, as the binary would install them.
    let config = McpConfig {
        data_dir: dir.path().to_path_buf(),
        schema_dir: Some(mcp_fixtures::BUNDLED_SCHEMAS.into()),
        models_dir: Some(mcp_fixtures::BUNDLED_MODELS.into()),
        ..McpConfig::default()
    };
    let models = config.model_manager()?;
    let options = DemoOptions {
        seed: UNSEEN_SEED,
        entries_per_type: 10_000,
        profile: mcp_synth::Profile::Easy,
        detection: None,
        examples_dir: None,
    };
    let outcomes = demo::run(&config, agents_dir(), Some(models), &options)?;
    assert_eq!(outcomes.len(), 3);
    for outcome in &outcomes {
        let used = outcome.run.model.as_ref().map(|(name, _)| name.as_str());
        assert_eq!(used, Some(outcome.run.agent.as_str()), "each agent uses its shipped model");
        let d = &outcome.detection;
        assert!(outcome.run.entries >= 10_000, "{}: only {} entries", outcome.run.agent, outcome.run.entries);
        assert!(
            d.f1() >= 0.9,
            "{}: F1 {:.3} (precision {:.3}, recall {:.3})",
            outcome.run.agent,
            d.f1(),
            d.precision(),
            d.recall()
        );
        for (kind, (found, total)) in &d.per_kind {
            assert!(*found * 2 >= *total, "{}: found only {found} of {total} '{kind}' entries", outcome.run.agent);
        }
        assert!(d.per_kind.len() >= 3, "{}: too few attack kinds injected: {:?}", outcome.run.agent, d.per_kind);
    }
    Ok(())
}
