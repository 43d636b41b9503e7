//! `mcp bench --cache`: whether a lookup pays to be cached in Redis. Each
//! lookup the host makes is timed as it is done now and as a Redis GET of
//! the same answer would cost; medians of many calls.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use mcp_engine::config::McpConfig;
use mcp_sandbox::registry;
use mcp_storage::jobstatus::SharedCache;

fn median_of(calls: usize, mut op: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        op()?;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    Ok(samples.get(samples.len() / 2).copied().unwrap_or_default())
}

pub fn run(config: &McpConfig, agents_dir: &Path) -> Result<()> {
    let url = config.redis_url.clone().unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    let redis = SharedCache::open(Some(&url), &format!("{}bench:", config.redis_prefix), config.retry)?;
    let info = serde_json::json!({"name": "dns", "log_type": "dns", "agent_version": "0.1.0"}).to_string();
    redis.put("agent-info", &info, Duration::from_secs(60))?;
    let redis_get = median_of(2_000, || redis.get("agent-info").map(|_| ()).map_err(Into::into))?;
    let local = SharedCache::open(None, "", config.retry)?;
    local.put("agent-info", &info, Duration::from_secs(60))?;
    let local_get = median_of(2_000, || local.get("agent-info").map(|_| ()).map_err(Into::into))?;

    let schemas = config.schema_files();
    let schema_lookup = median_of(2_000, || schemas.shape("dns").map(|_| ()).map_err(Into::into))?;

    let sandbox = std::sync::Arc::new(mcp_sandbox::Sandbox::new(
        config.sandbox.clone(),
        mcp_sandbox::CompileCache::new(Some(config.cache_dir())),
    )?);
    let bytes = std::fs::read(agents_dir.join("dns.wasm"))?;
    registry::validate(&sandbox, &bytes, "dns.wasm")?;
    let agent_info =
        median_of(50, || registry::validate(&sandbox, &bytes, "dns.wasm").map(|_| ()).map_err(Into::into))?;

    tracing::info!("cache bench done");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    #[allow(clippy::print_stdout)]
    {
        println!("lookup                                          median");
        println!("Redis GET of a small value (loopback)        {:>9.1} µs", us(redis_get));
        println!("in-process cache get                         {:>9.1} µs", us(local_get));
        println!("schema shape, file re-read and compared      {:>9.1} µs", us(schema_lookup));
        println!("agent info: cached load + instantiate + info {:>9.1} µs", us(agent_info));
    }
    Ok(())
}
