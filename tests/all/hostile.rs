//! The hostile suite: attacks an untrusted agent author or tenant would
//! try, each through the public path a tenant has (upload through the API,
//! a setting that picks the attack, a run started and watched through the
//! API), each outcome asserted. Then the host still answers, and another
//! tenant's ordinary run finds what it found before the suite.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use mcp_api::Role;
use mcp_storage::jobstatus::SharedCache;
use mcp_storage::source::LogSource;
use serde_json::{Value, json};

use crate::api::{Api, api_configured, problem};

/// Wi-Fi entries of the attacking tenant: five batches of 1,000.
const ATTACKER_ENTRIES: usize = 5_000;

/// Three tenants: alpha attacks, beta and gamma have the same Wi-Fi logs and
/// run only the bundled agent. A model named for the hostile agent exists,
/// so the inference attacks reach the host's checks.
fn hostile_api(quarantine: mcp_engine::quarantine::QuarantinePolicy) -> anyhow::Result<Api> {
    hostile_api_with(|config| config.quarantine = quarantine)
}

fn hostile_api_with(configure: impl FnOnce(&mut mcp_engine::config::McpConfig)) -> anyhow::Result<Api> {
    let tenants = ["alpha", "beta", "gamma", "clock", "random", "forge", "labels"];
    api_configured(SharedCache::open(None, "", Default::default())?, &tenants, |config, source| {
        config.sandbox.call_timeout_ms = 500;
        config.budgets.call_timeout_ms = 500;
        // Small enough that a flood meets it well before the deadline.
        config.budgets.log_lines = 1_000;
        configure(config);
        source.append("alpha", "wifi", &mcp_synth::to_rows(&mcp_synth::generate("wifi", 3, ATTACKER_ENTRIES)?))?;
        for tenant in ["beta", "gamma"] {
            source.append(tenant, "wifi", &mcp_synth::to_rows(&mcp_synth::generate("wifi", 4, 3_000)?))?;
        }
        // Attacks whose runs complete, each with logs of its own tenant (a
        // completed run moves the checkpoint to the end of its tenant's logs).
        for tenant in ["clock", "random", "forge", "labels"] {
            source.append(tenant, "wifi", &mcp_synth::to_rows(&mcp_synth::generate("wifi", 5, 1_000)?))?;
        }
        Ok(())
    })
}

fn upload(api: &Api, tenant: &'static str, bytes: Vec<u8>) -> anyhow::Result<crate::api::Reply> {
    api.send("POST", "/v1/agents", Some(api.token(tenant, Role::TenantAdmin)), Some("application/wasm"), Some(bytes))
}

/// Uploads and approves, as a tenant admin does before running an upload.
fn upload_approved(api: &Api, tenant: &'static str, bytes: Vec<u8>) -> anyhow::Result<crate::api::Reply> {
    let created = upload(api, tenant, bytes)?;
    anyhow::ensure!(created.status == StatusCode::CREATED, "upload refused: {}", created.body);
    let name = created.body["name"].as_str().unwrap_or_default().to_string();
    let token = Some(api.token(tenant, Role::TenantAdmin));
    let approved = api.call("POST", &format!("/v1/agents/{name}/approve"), token, None)?;
    anyhow::ensure!(approved.body["grants"]["approved"] == true, "not approved: {}", approved.body);
    Ok(created)
}

/// Starts a run of `agent` for `tenant` and waits for it to end; its final view.
fn run_to_end(api: &Api, tenant: &'static str, agent: &str) -> anyhow::Result<Value> {
    let token = api.token(tenant, Role::TenantAdmin);
    let started = api.call("POST", "/v1/runs", Some(token), Some(&json!({ "agent": agent }).to_string()))?;
    anyhow::ensure!(started.status == StatusCode::ACCEPTED, "run of {agent} not started: {}", started.body);
    let id = started.body["id"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let view = api.get(&format!("/v1/runs/{id}"), token)?;
        if view.body["state"] != "running" && view.body["state"] != "queued" {
            return Ok(view.body);
        }
        anyhow::ensure!(Instant::now() < deadline, "run {id} of {agent} did not end: {}", view.body);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set_mode(api: &Api, mode: &str, spin_ms: u64) -> anyhow::Result<()> {
    set_mode_of(api, "alpha", mode, spin_ms)
}

fn set_mode_of(api: &Api, tenant: &'static str, mode: &str, spin_ms: u64) -> anyhow::Result<()> {
    let change = json!({ "agents": { "hostile": { "mode": mode, "spin_ms": spin_ms.to_string() } } });
    let reply =
        api.call("PATCH", "/v1/config", Some(api.token(tenant, Role::TenantAdmin)), Some(&change.to_string()))?;
    anyhow::ensure!(reply.status == StatusCode::OK, "mode {mode} not set: {}", reply.body);
    Ok(())
}

/// Runs the hostile agent in `mode` and returns how the run ended.
fn attack(api: &Api, mode: &str) -> anyhow::Result<(String, String)> {
    set_mode(api, mode, 0)?;
    let view = run_to_end(api, "alpha", "hostile")?;
    let state = view["state"].as_str().unwrap_or_default().to_string();
    let error = view["error"].as_str().unwrap_or_default().to_string();
    Ok((state, error))
}

fn anomaly_count(api: &Api, tenant: &'static str, agent: &str) -> anyhow::Result<(usize, Vec<u64>)> {
    let page = api.get(&format!("/v1/anomalies?agent={agent}&limit=1000"), api.token(tenant, Role::ReadOnly))?;
    let items = page.body["items"].as_array().cloned().unwrap_or_default();
    let ids = items.iter().filter_map(|a| a["log_id"].as_u64()).collect();
    Ok((items.len(), ids))
}

/// A component in the text format, for attacks no toolchain emits.
fn component(text: &str) -> anyhow::Result<Vec<u8>> {
    Ok(wat::parse_str(text)?)
}

#[test]
fn the_hostile_suite_is_stopped_attack_by_attack_and_the_host_carries_on() -> anyhow::Result<()> {
    let policy = mcp_engine::quarantine::QuarantinePolicy { faults: 10_000, ..Default::default() };
    let api = hostile_api(policy)?;
    let baseline = run_to_end(&api, "beta", "wifi")?;
    assert_eq!(baseline["state"], "completed", "{baseline}");
    let (beta_anomalies, _) = anomaly_count(&api, "beta", "wifi")?;
    assert!(beta_anomalies > 0, "the ordinary run finds something to compare");

    // Uploads that are refused with their reason.
    let refused = |bytes: Vec<u8>, expected: &str| -> anyhow::Result<()> {
        let reply = upload(&api, "alpha", bytes)?;
        problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_component");
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(expected), "expected '{expected}' in: {detail}");
        Ok(())
    };
    refused(b"MZ\x90\0 a windows executable".to_vec(), "not WebAssembly")?;
    refused(component("(module (func (export \"detect\")))")?, "core wasm module")?;
    refused(
        component(
            r#"(component
                (import "evil:net/socket@1.0.0" (instance))
                (instance $detector)
                (export "mcp:agent/detector@0.2.0" (instance $detector)))"#,
        )?,
        "evil:net/socket@1.0.0",
    )?;
    refused(
        component(r#"(component (instance $detector) (export "mcp:agent/detector@9.9.9" (instance $detector)))"#)?,
        "9.9.9, this host speaks 0.1.0 or 0.2.0",
    )?;
    // Many memories in one component, each under the cap, too many together.
    let memories: String =
        (0..6).map(|i| format!("(core module $m{i} (memory 512)) (core instance (instantiate $m{i}))")).collect();
    let many = component(&format!(
        r#"(component {memories} (instance $detector) (export "mcp:agent/detector@0.2.0" (instance $detector)))"#
    ))?;
    let reply = upload(&api, "alpha", many)?;
    problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_component");

    let hostile = std::fs::read(mcp_fixtures::HOSTILE)?;
    let created = upload_approved(&api, "alpha", hostile)?;
    assert_eq!(created.body["grants"]["log_types"], json!(["wifi"]), "{}", created.body);
    assert_eq!(created.body["grants"]["models"], json!([]), "no deployment model for an upload: {}", created.body);
    assert_eq!(created.body["active_model"], Value::Null, "{}", created.body);

    // Attacks that end the run with a named fault or error.
    for (mode, expected) in [
        ("loop", "deadline of 500 ms"),
        ("memory-bomb", "over its limit"),
        ("recursion", "overflowed its wasm stack"),
        ("huge-result", "over its limit"),
        ("report-flood", "returned_bytes budget"),
        ("log-flood", "log_lines budget"),
        ("host-spin", "log_lines budget"),
        ("other-log-type", "may read only the log types it was granted (wifi), not 'firewall'"),
        // An upload gets no deployment model, whatever its name: its
        // tenant's models only, and of those only what it was granted.
        ("other-model", "may load only the models it was granted (), not '../dns'"),
        ("lying-tensor", "may load only the models it was granted (), not 'hostile'"),
        ("nan", "score NaN"),
        ("read-file", "read-file denied"),
        ("socket", "socket denied"),
        ("environment", "environment empty"),
        ("sleep", "wait"),
        ("sleep-forever", "wait"),
        ("panic", "panicked"),
        ("panic-snapshot", "could not give its state"),
        ("exit", "called exit with status"),
        ("huge-error", "bytes cut"),
    ] {
        let started = Instant::now();
        let (state, error) = attack(&api, mode)?;
        assert_eq!(state, "failed", "{mode}: {error}");
        assert!(error.contains(expected), "{mode}: expected '{expected}' in: {error}");
        assert!(error.len() < 4096, "{mode}: an error of {} bytes reached the run record", error.len());
        assert!(!error.contains('\n'), "{mode}: a multi-line error: {error}");
        assert!(started.elapsed() < Duration::from_secs(60), "{mode} held the run for {:?}", started.elapsed());
    }
    // The logs query serves the agent's own tenant only.
    let own = mcp_synth::generate("wifi", 3, ATTACKER_ENTRIES)?.len();
    let (_, error) = attack(&api, "logs-all")?;
    assert!(error.contains(&format!("saw {own} wifi entries")), "beta's and gamma's were served too: {error}");

    // Allowed and harmless: reading the clocks and random numbers. Findings
    // for entries the agent was never given are dropped; the ones it was
    // given are stored under its own name.
    for tenant in ["clock", "random", "forge", "labels"] {
        upload_approved(&api, tenant, std::fs::read(mcp_fixtures::HOSTILE)?)?;
        set_mode_of(&api, tenant, tenant, 0)?;
        let view = run_to_end(&api, tenant, "hostile")?;
        assert_eq!(view["state"], "completed", "{tenant}: {view}");
        assert!(view["counters"]["batches"].as_u64().unwrap_or(0) > 0, "{tenant}: {view}");
    }
    // Forty findings on one entry of each batch, twenty labels: eight kept.
    let (labelled, label_ids) = anomaly_count(&api, "labels", "hostile")?;
    let entries = label_ids.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert!(entries > 0 && labelled == entries * 8, "{labelled} anomalies on {entries} entries");
    let (_, forged_ids) = anomaly_count(&api, "forge", "hostile")?;
    let largest_given = forged_ids.iter().copied().max().unwrap_or(0);
    assert!(!forged_ids.is_empty() && largest_given < 1_000_000, "forged ids stored: {forged_ids:?}");

    // A spin under the per-call deadline still ends at the run's budget.
    let admin = api.token(crate::api::DEPLOYMENT, Role::DeploymentAdmin);
    let set = api.call("PUT", "/v1/tenants/alpha/budgets", Some(admin), Some(r#"{"run_agent_ms": 1000}"#))?;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    set_mode(&api, "slow", 400)?;
    let slow = run_to_end(&api, "alpha", "hostile")?;
    let error = slow["error"].as_str().unwrap_or_default();
    assert!(error.contains("run_agent_ms budget of 1000"), "{slow}");
    assert!(slow["counters"]["usage.agent_ms"].as_u64().unwrap_or(0) >= 900, "usage is recorded: {slow}");
    // The failed run keeps how far it got: the batches it committed before
    // the budget stopped it, and the batch it stopped on.
    assert!(slow["counters"]["batches"].as_u64().unwrap_or(0) >= 1, "progress is kept: {slow}");
    assert!(slow["counters"]["entries"].as_u64().unwrap_or(0) >= 1_000, "progress is kept: {slow}");
    let stopped = slow["stopped_after_id"].as_u64().unwrap_or(0);
    assert!(stopped > 0 && Some(stopped) == slow["counters"]["checkpoint"].as_u64(), "{slow}");
    // Rows read through logs.query count, whether or not the page is full.
    api.call("PUT", "/v1/tenants/alpha/budgets", Some(admin), Some(r#"{"run_agent_ms": null, "log_rows": 100}"#))?;
    let (_, error) = attack(&api, "logs-all")?;
    assert!(error.contains("used up its log_rows budget of 100"), "{error}");
    let unset = api.call("PUT", "/v1/tenants/alpha/budgets", Some(admin), Some(r#"{"log_rows": null}"#))?;
    assert_eq!(unset.body["overrides"], json!({}), "{}", unset.body);

    // The host still answers, and another tenant's ordinary run finds what
    // the same run found before the suite.
    assert_eq!(api.call("GET", "/healthz", None, None)?.status, StatusCode::OK);
    let after = run_to_end(&api, "gamma", "wifi")?;
    assert_eq!(after["state"], "completed", "{after}");
    assert_eq!(anomaly_count(&api, "gamma", "wifi")?.0, beta_anomalies);
    // Usage per tenant and agent is in /metrics.
    let reply = api.get("/metrics", api.token(crate::api::DEPLOYMENT, Role::ReadOnly))?;
    let metrics = reply.body.as_str().unwrap_or_default();
    for series in ["mcp_agent_call_seconds_total", "mcp_agent_log_rows_total", "mcp_agent_memory_high_water_bytes"] {
        assert!(metrics.contains(&format!(r#"{series}{{tenant="alpha",agent="hostile"}}"#)), "{series}: {metrics}");
    }
    Ok(())
}

#[test]
fn budgets_are_the_admins_to_set_and_each_tenants_to_read() -> anyhow::Result<()> {
    let api = hostile_api(Default::default())?;
    let tenant_admin = api.token("alpha", Role::TenantAdmin);
    let body = r#"{"findings": 10}"#;
    let refused = api.call("PUT", "/v1/tenants/alpha/budgets", Some(tenant_admin), Some(body))?;
    problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    let other_admin = api.token("beta", Role::Admin);
    let refused = api.call("PUT", "/v1/tenants/beta/budgets", Some(other_admin), Some(body))?;
    problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    let admin = api.token(crate::api::DEPLOYMENT, Role::DeploymentAdmin);
    for bad in [r#"{"findings": 0}"#, r#"{"no_such_budget": 5}"#, r#"{"findings": -1}"#] {
        let reply = api.call("PUT", "/v1/tenants/beta/budgets", Some(admin), Some(bad))?;
        problem(&reply, StatusCode::BAD_REQUEST, "bad_request");
    }
    problem(
        &api.call("PUT", "/v1/tenants/nobody/budgets", Some(admin), Some(body))?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let set = api.call(
        "PUT",
        "/v1/tenants/beta/budgets",
        Some(admin),
        Some(r#"{"findings": 1, "memory_bytes": 999999999999}"#),
    )?;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let beta = api.get("/v1/budgets", api.token("beta", Role::ReadOnly))?;
    assert_eq!(beta.body["budget"]["findings"], 1, "{}", beta.body);
    assert_eq!(beta.body["budget"]["memory_bytes"], 64 << 20, "the [sandbox] ceiling holds: {}", beta.body);
    assert_eq!(beta.body["held_to_ceiling"], json!(["memory_bytes"]), "and says so: {}", beta.body);
    assert_eq!(api.get("/v1/budgets", tenant_admin)?.body["budget"]["findings"], 1_000_000, "alpha is untouched");
    let audit = api.get("/v1/audit", api.token("beta", Role::TenantAdmin))?;
    assert!(audit.body.to_string().contains("budget.set"), "audited in the tenant it affects: {}", audit.body);

    // A findings budget of 1: the bundled Wi-Fi agent's run stops naming it.
    let stopped = run_to_end(&api, "beta", "wifi")?;
    assert_eq!(stopped["state"], "failed", "{stopped}");
    assert!(stopped["error"].as_str().unwrap_or_default().contains("findings budget of 1 "), "{stopped}");

    // Requests per minute.
    api.call("PUT", "/v1/tenants/gamma/budgets", Some(admin), Some(r#"{"requests_per_minute": 3}"#))?;
    let gamma = api.token("gamma", Role::ReadOnly);
    let statuses: Vec<StatusCode> =
        (0..5).map(|_| api.get("/v1/agents", gamma).map(|r| r.status)).collect::<anyhow::Result<_>>()?;
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    let over = api.get("/v1/agents", gamma)?;
    problem(&over, StatusCode::TOO_MANY_REQUESTS, "over_budget");
    assert_eq!(api.get("/v1/agents", api.token("beta", Role::ReadOnly))?.status, StatusCode::OK, "others go on");

    // Upload size per tenant.
    api.call("PUT", "/v1/tenants/beta/budgets", Some(admin), Some(r#"{"upload_bytes": 1000}"#))?;
    let reply = upload(&api, "beta", std::fs::read(mcp_fixtures::HOSTILE)?)?;
    problem(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    Ok(())
}

#[test]
fn an_agent_that_keeps_faulting_is_quarantined_then_released() -> anyhow::Result<()> {
    let policy = mcp_engine::quarantine::QuarantinePolicy {
        faults: 3,
        window_ms: 60_000,
        backoff_ms: 1_500,
        max_backoff_ms: 60_000,
    };
    let api = hostile_api(policy)?;
    upload_approved(&api, "alpha", std::fs::read(mcp_fixtures::HOSTILE)?)?;
    set_mode(&api, "panic", 0)?;
    // Each run retries its batch once: two faults a run.
    assert_eq!(run_to_end(&api, "alpha", "hostile")?["state"], "failed");
    assert_eq!(run_to_end(&api, "alpha", "hostile")?["state"], "failed");
    let token = api.token("alpha", Role::TenantAdmin);
    let view = api.get("/v1/agents/hostile", token)?;
    assert_eq!(view.body["quarantine"]["level"], 1, "{}", view.body);
    assert_eq!(view.body["recent_faults"][0]["kind"], "panic", "{}", view.body);
    let refused = api.call("POST", "/v1/runs", Some(token), Some(r#"{"agent":"hostile"}"#))?;
    problem(&refused, StatusCode::CONFLICT, "conflict");
    assert!(refused.body["detail"].as_str().unwrap_or_default().contains("quarantined"), "{}", refused.body);
    // Only alpha's agent is held: beta's tenant does not have it, and
    // alpha's other agents run.
    assert_eq!(run_to_end(&api, "alpha", "wifi")?["state"], "completed");

    // After the backoff it runs again; faulting again holds it out longer.
    std::thread::sleep(Duration::from_millis(1_600));
    assert_eq!(run_to_end(&api, "alpha", "hostile")?["state"], "failed");
    let again = api.get("/v1/agents/hostile", token)?;
    assert_eq!(again.body["quarantine"]["level"], 2, "{}", again.body);
    let held_for = again.body["quarantine"]["until_ms"].as_i64().unwrap_or(0)
        - again.body["quarantine"]["since_ms"].as_i64().unwrap_or(0);
    assert_eq!(held_for, 3_000, "the backoff doubled");

    // A tenant admin releases it at once; a read-only token cannot.
    let read_only = api.token("alpha", Role::ReadOnly);
    problem(
        &api.call("POST", "/v1/agents/hostile/release", Some(read_only), None)?,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let released = api.call("POST", "/v1/agents/hostile/release", Some(token), None)?;
    assert_eq!(released.body["quarantine"], Value::Null, "{}", released.body);
    set_mode(&api, "behave", 0)?;
    assert_eq!(run_to_end(&api, "alpha", "hostile")?["state"], "completed");
    Ok(())
}

#[test]
fn a_tenant_flooding_runs_does_not_starve_another() -> anyhow::Result<()> {
    // Two runs at once in all, one per tenant; two may wait per tenant.
    let api = hostile_api_with(|config| {
        config.runs =
            mcp_engine::queue::RunLimits { running: 2, queued: 64, running_per_tenant: 1, queued_per_tenant: 2 };
    })?;
    // Alone: how long beta's ordinary run takes on this machine now.
    let alone_started = Instant::now();
    assert_eq!(run_to_end(&api, "beta", "wifi")?["state"], "completed");
    let alone = alone_started.elapsed();

    // Alpha runs a spinning agent (each batch spins 400 ms, under the 500 ms
    // deadline) and queues every other agent it has.
    upload_approved(&api, "alpha", std::fs::read(mcp_fixtures::HOSTILE)?)?;
    set_mode(&api, "slow", 400)?;
    let token = api.token("alpha", Role::TenantAdmin);
    let start = |agent: &str| api.call("POST", "/v1/runs", Some(token), Some(&json!({ "agent": agent }).to_string()));
    let mut flood = Vec::new();
    for agent in ["hostile", "wifi", "firewall"] {
        let started = start(agent)?;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
        flood.push(started.body["id"].as_str().unwrap_or_default().to_string());
    }
    // One run per agent at a time, and a bounded wait per tenant.
    let again = start("hostile")?;
    problem(&again, StatusCode::CONFLICT, "conflict");
    assert!(again.body["detail"].as_str().unwrap_or_default().contains(&flood[0]), "{}", again.body);
    let full = start("dns")?;
    problem(&full, StatusCode::TOO_MANY_REQUESTS, "queue_full");
    // An agent with a run queued or going is neither deleted nor replaced.
    problem(&api.call("DELETE", "/v1/agents/hostile", Some(token), None)?, StatusCode::CONFLICT, "conflict");
    problem(&upload(&api, "alpha", std::fs::read(mcp_fixtures::HOSTILE)?)?, StatusCode::CONFLICT, "conflict");
    let queued = api.get("/v1/runs?state=queued&limit=10", token)?;
    assert_eq!(queued.body["items"].as_array().map(Vec::len), Some(2), "{}", queued.body);

    // Gamma's run starts on the worker alpha may not take, and ends in
    // about the time it takes alone: its batches wait only for the guest
    // calls already going (one per core, 500 ms at most each).
    let contended_started = Instant::now();
    assert_eq!(run_to_end(&api, "gamma", "wifi")?["state"], "completed");
    let contended = contended_started.elapsed();
    let bound = alone * 3 + Duration::from_millis(3 * 2 * 500 + 1_000);
    assert!(
        contended <= bound,
        "gamma's run took {contended:?} beside the flood, {alone:?} alone; the bound is {bound:?}"
    );
    // Alpha's queued runs are still waiting behind its own spinning one.
    let waiting = api.get(&format!("/v1/runs/{}", flood[2]), token)?;
    assert_eq!(waiting.body["state"], "queued", "{}", waiting.body);
    // A queued run withdrawn is cancelled at once; the running one stops.
    for id in flood.iter().rev() {
        api.call("POST", &format!("/v1/runs/{id}/cancel"), Some(token), None)?;
    }
    assert_eq!(api.get(&format!("/v1/runs/{}", flood[2]), token)?.body["state"], "cancelled");
    assert_eq!(run_state_eventually(&api, token, &flood[0], "cancelled")?, "cancelled");
    Ok(())
}

/// The state of run `id` once it is `wanted`, or the last seen after 60 s.
fn run_state_eventually(api: &Api, token: &str, id: &str, wanted: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = api.get(&format!("/v1/runs/{id}"), token)?.body["state"].as_str().unwrap_or_default().to_string();
        if state == wanted || Instant::now() > deadline {
            return Ok(state);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_bad_file_in_an_agents_folder_does_not_stop_the_others() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for name in ["dns.wasm", "wifi.wasm"] {
        std::fs::copy(Path::new(mcp_fixtures::AGENTS_DIR).join(name), dir.path().join(name))?;
    }
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm\x0d\0\x01\0 truncated")?;
    let mut registry = mcp_sandbox::registry::Registry::new(crate::common::sandbox());
    let found = registry.discover(dir.path())?;
    assert_eq!(found.registered, ["dns", "wifi"]);
    assert_eq!(found.refused.len(), 1);
    assert!(found.refused[0].to_string().contains("broken.wasm"), "{}", found.refused[0]);
    Ok(())
}

#[test]
fn a_tenant_cannot_hold_every_instance() -> anyhow::Result<()> {
    let sandbox = crate::common::sandbox();
    let registry = crate::common::bundled_registry(sandbox.clone())?;
    let budget = mcp_sandbox::RunBudget { max_instances: 2, ..Default::default() };
    let take = |tenant: &str| {
        mcp_engine::pipeline::instance_with_budget(
            &registry,
            "dns",
            tenant,
            Default::default(),
            None,
            None,
            budget.clone(),
        )
    };
    let held = [take("acme")?, take("acme")?];
    let third = take("acme").map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(third.contains("max_instances budget of 2"), "{third}");
    assert!(take("globex").is_ok(), "another tenant still gets an instance");
    drop(held);
    assert!(take("acme").is_ok(), "ended instances give their slots back");
    Ok(())
}

#[test]
fn the_model_import_refuses_other_models_a_lying_tensor_and_a_handle_flood() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let version = dir.path().join("models/hostile/1");
    std::fs::create_dir_all(&version)?;
    let shipped = Path::new(mcp_fixtures::FOUR_FEATURE_MODEL);
    std::fs::copy(shipped.join("model.onnx"), version.join("model.onnx"))?;
    let metadata = std::fs::read_to_string(shipped.join("metadata.json"))?;
    std::fs::write(version.join("metadata.json"), metadata.replace("\"agent\": \"wifi\"", "\"agent\": \"hostile\""))?;
    let models = std::sync::Arc::new(mcp_engine::models::ModelManager::open(
        &dir.path().join("models"),
        &dir.path().join("models.db"),
    )?);
    let mut registry = mcp_sandbox::registry::Registry::new(crate::common::sandbox());
    registry.register_file(&crate::common::hostile_path())?;
    let budget = mcp_sandbox::RunBudget { inferences: 50, ..Default::default() };
    for (mode, expected) in [
        ("other-model", "may load only the models it was granted (hostile), not '../dns'"),
        ("lying-tensor", "takes 4 features per row"),
        ("handles", "limit"),
        ("infer-flood", "used up its inferences budget of 50"),
    ] {
        let settings = std::collections::BTreeMap::from([("mode".to_string(), mode.to_string())]);
        let mut instance = mcp_engine::pipeline::instance_with_budget(
            &registry,
            "hostile",
            "acme",
            settings,
            None,
            Some(models.clone()),
            budget.clone(),
        )?;
        let error =
            instance.detect_batch(&crate::common::wifi_batch(2)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains(expected), "{mode}: expected '{expected}' in: {error}");
        // The instance is still usable after a refused import.
        assert!(instance.usage().calls >= 1);
    }
    Ok(())
}

#[test]
fn a_tenant_cannot_upload_without_end() -> anyhow::Result<()> {
    let api = hostile_api(Default::default())?;
    let admin = api.token(crate::api::DEPLOYMENT, Role::DeploymentAdmin);
    api.call("PUT", "/v1/tenants/beta/budgets", Some(admin), Some(r#"{"agents": 1}"#))?;
    assert_eq!(upload(&api, "beta", std::fs::read(mcp_fixtures::PROXY)?)?.status, StatusCode::CREATED);
    // Replacing the one it has is fine; a second name is over its budget.
    assert_eq!(upload(&api, "beta", std::fs::read(mcp_fixtures::PROXY)?)?.status, StatusCode::CREATED);
    problem(&upload(&api, "beta", std::fs::read(mcp_fixtures::HOSTILE)?)?, StatusCode::CONFLICT, "over_budget");
    Ok(())
}

#[test]
fn with_fuel_a_run_ends_at_its_fuel_budget() -> anyhow::Result<()> {
    let limits = mcp_sandbox::SandboxLimits { budget: mcp_sandbox::BudgetKind::Fuel, ..crate::common::test_limits() };
    let mut registry = mcp_sandbox::registry::Registry::new(crate::common::sandbox_with(limits));
    registry.register_file(&crate::common::hostile_path())?;
    let budget = mcp_sandbox::RunBudget { fuel_per_run: 5_000_000, ..Default::default() };
    let settings = std::collections::BTreeMap::from([("mode".to_string(), "loop".to_string())]);
    let mut instance =
        mcp_engine::pipeline::instance_with_budget(&registry, "hostile", "acme", settings, None, None, budget)?;
    let error = instance.detect_batch(&crate::common::wifi_batch(2)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("used up its fuel_per_run budget of 5000000"), "{error}");
    assert!(instance.usage().fuel <= 5_000_000, "{:?}", instance.usage());
    Ok(())
}

#[test]
fn an_upload_runs_only_with_an_approved_manifest_and_reaches_only_what_it_grants() -> anyhow::Result<()> {
    let api = hostile_api(Default::default())?;
    let admin = api.token("alpha", Role::TenantAdmin);
    let created = upload(&api, "alpha", std::fs::read(mcp_fixtures::HOSTILE)?)?;
    assert_eq!(created.body["grants"]["approved"], false, "{}", created.body);
    let waiting = api.call("POST", "/v1/runs", Some(admin), Some(r#"{"agent":"hostile"}"#))?;
    problem(&waiting, StatusCode::CONFLICT, "conflict");
    assert!(waiting.body["detail"].as_str().unwrap_or_default().contains("approve"), "{}", waiting.body);

    // A manifest the host cannot grant is refused; a read-only token cannot declare or approve.
    let declare =
        |token: &str, manifest: &str| api.call("PUT", "/v1/agents/hostile/manifest", Some(token), Some(manifest));
    for (bad, expected) in [
        (r#"{"log_types":["firewall"]}"#, "own log type"),
        (r#"{"log_types":["wifi"],"models":["../dns"]}"#, "../dns"),
        (r#"{"log_types":["wifi","../etc"]}"#, "../etc"),
    ] {
        let reply = declare(admin, bad)?;
        problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "manifest_refused");
        assert!(reply.body["detail"].as_str().unwrap_or_default().contains(expected), "{}", reply.body);
    }
    let read_only = api.token("alpha", Role::ReadOnly);
    problem(&declare(read_only, r#"{"log_types":["wifi"]}"#)?, StatusCode::FORBIDDEN, "forbidden");
    problem(
        &api.call("POST", "/v1/agents/hostile/approve", Some(read_only), None)?,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    problem(&api.call("POST", "/v1/agents/wifi/approve", Some(admin), None)?, StatusCode::CONFLICT, "conflict");

    // It asks for firewall logs too and sees two settings; once approved, so it runs.
    let manifest = r#"{"log_types":["wifi","firewall"],"settings":["mode","spin_ms"]}"#;
    let declared = declare(admin, manifest)?;
    assert_eq!(declared.body["grants"]["log_types"], json!(["wifi", "firewall"]), "{}", declared.body);
    assert_eq!(declared.body["grants"]["approved"], false);
    let change = json!({ "agents": { "hostile": { "mode": "settings-seen", "secret": "s3cret" } } });
    api.call("PATCH", "/v1/config", Some(admin), Some(&change.to_string()))?;
    problem(
        &api.call("POST", "/v1/runs", Some(admin), Some(r#"{"agent":"hostile"}"#))?,
        StatusCode::CONFLICT,
        "conflict",
    );
    let approved = api.call("POST", "/v1/agents/hostile/approve", Some(admin), None)?;
    assert_eq!(approved.body["grants"]["approved"], true, "{}", approved.body);
    let audit = api.get("/v1/audit", admin)?.body.to_string();
    assert!(audit.contains("agent.approve") && audit.contains("firewall"), "{audit}");

    // The settings it was not granted stay hidden.
    let seen = run_to_end(&api, "alpha", "hostile")?;
    let error = seen["error"].as_str().unwrap_or_default();
    assert!(error.contains("keys [mode], the hidden value absent"), "{seen}");

    // The firewall logs it was granted are served.
    set_mode(&api, "other-log-type", 0)?;
    let run = run_to_end(&api, "alpha", "hostile")?;
    assert_eq!(run["state"], "completed", "the granted firewall logs were served: {run}");
    assert!(run["counters"]["usage.log_rows"].as_u64().unwrap_or(0) > 0, "{run}");

    // The same component again keeps its approval and manifest.
    let again = upload(&api, "alpha", std::fs::read(mcp_fixtures::HOSTILE)?)?;
    assert_eq!(again.body["grants"]["approved"], true, "{}", again.body);
    assert_eq!(again.body["grants"]["log_types"], json!(["wifi", "firewall"]), "{}", again.body);
    Ok(())
}

#[test]
fn a_tenants_uploaded_agent_uses_the_tenants_own_models_and_no_one_elses() -> anyhow::Result<()> {
    let api = hostile_api(Default::default())?;
    let admin = api.token("alpha", Role::TenantAdmin);
    let created = upload(&api, "alpha", std::fs::read(mcp_fixtures::HOSTILE)?)?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let manifest = json!({ "log_types": ["wifi"], "models": ["hostile"] }).to_string();
    let granted = api.call("PUT", "/v1/agents/hostile/manifest", Some(admin), Some(&manifest))?;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    api.call("POST", "/v1/agents/hostile/approve", Some(admin), None)?;

    // Alpha's own model for it: a four-feature distance model under its name.
    let shipped = Path::new(mcp_fixtures::FOUR_FEATURE_MODEL);
    let metadata = std::fs::read_to_string(shipped.join("metadata.json"))?
        .replace("\"agent\": \"wifi\"", "\"agent\": \"hostile\"");
    let body = crate::api::model_parts(&std::fs::read(shipped.join("model.onnx"))?, &metadata);
    let kind = Some("multipart/form-data; boundary=XBOUNDARY");
    let read_only =
        api.send("POST", "/v1/models/hostile/1", Some(api.token("alpha", Role::ReadOnly)), kind, Some(body.clone()))?;
    problem(&read_only, StatusCode::FORBIDDEN, "forbidden");
    let added = api.send("POST", "/v1/models/hostile/1", Some(admin), kind, Some(body.clone()))?;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.body["scope"], "tenant");
    let active = api.call("POST", "/v1/models/hostile/1/activate", Some(admin), None)?;
    assert_eq!(active.status, StatusCode::OK, "{}", active.body);

    // Nobody else sees or changes it: not another tenant, not the deployment admin.
    let theirs = api.get("/v1/models", api.token("beta", Role::ReadOnly))?;
    assert!(theirs.body.as_array().into_iter().flatten().all(|m| m["agent"] != "hostile"), "{}", theirs.body);
    let ours = api.get("/v1/models", admin)?;
    assert!(ours.body.as_array().into_iter().flatten().any(|m| m["agent"] == "hostile" && m["scope"] == "tenant"));
    let beta_admin = api.token("beta", Role::TenantAdmin);
    for uri in ["/v1/models/hostile/1/activate", "/v1/models/hostile/rollback"] {
        let refused = api.call("POST", uri, Some(beta_admin), None)?;
        assert!(refused.status == StatusCode::FORBIDDEN || refused.status == StatusCode::NOT_FOUND, "{}", refused.body);
    }
    let deployment = api.token(crate::api::DEPLOYMENT, Role::DeploymentAdmin);
    let refused = api.call("POST", "/v1/models/hostile/1/activate", Some(deployment), None)?;
    problem(&refused, StatusCode::NOT_FOUND, "not_found");

    // The upload loads its tenant's model: inferences run until the budget stops them.
    api.call("PUT", "/v1/tenants/alpha/budgets", Some(deployment), Some(r#"{"inferences": 50}"#))?;
    let (state, error) = attack(&api, "infer-flood")?;
    assert_eq!(state, "failed");
    assert!(error.contains("used up its inferences budget of 50"), "{error}");

    // Each change is in alpha's trail and no one else's.
    let trail = |token: &str| -> anyhow::Result<Vec<String>> {
        let page = api.get("/v1/audit?limit=1000", token)?;
        Ok(page.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["action"].as_str().map(String::from))
            .collect())
    };
    let alpha_trail = trail(admin)?;
    assert!(alpha_trail.contains(&"model.upload".to_string()) && alpha_trail.contains(&"model.activate".to_string()));
    assert!(!trail(beta_admin)?.iter().any(|a| a.starts_with("model.")), "beta's trail shows alpha's models");
    Ok(())
}
