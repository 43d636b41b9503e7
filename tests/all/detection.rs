//! Each bundled agent finds the injected attack kinds with F1 of at least 0.9
//! on a generator seed that the tuning did not use (tuning used seed 42, the
//! demo's default; this seed was run once, after tuning).

use mcp_runtime::config::McpConfig;
use mcp_runtime::demo::{self, DemoOptions};

use crate::common::agents_dir;

const UNSEEN_SEED: u64 = 9001;

#[test]
fn every_agent_reaches_f1_of_0_9_on_an_unseen_seed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = McpConfig { data_dir: dir.path().to_path_buf(), ..McpConfig::default() };
    let outcomes = demo::run(&config, agents_dir(), &DemoOptions { seed: UNSEEN_SEED, entries_per_type: 10_000 })?;
    assert_eq!(outcomes.len(), 3);
    for outcome in &outcomes {
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
