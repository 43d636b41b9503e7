//! Notifications end to end against real receivers on loopback: a webhook
//! receiver that checks the signature as docs/notifications.md says, one
//! that fails its first requests, one that hangs, and an SMTP sink. Routing,
//! the dedup window, the rate limit, retries, dead letters, admin retry and
//! drop, another tenant's view, bad settings named by field, secrets never
//! shown, internal addresses refused by default, and a real run's anomalies
//! reaching the receiver once each.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use mcp_api::Role;
use mcp_columns::{Anomaly, Severity};
use mcp_fixtures::receivers::{HttpReceiver, Mode, SmtpSink, expected_signature};
use mcp_storage::jobstatus::SharedCache;
use mcp_storage::notify::RouteBook;
use mcp_storage::store::{AnomalyStore, CheckpointKey, Provenance};
use serde_json::{Value, json};

use crate::api::{Api, api_configured, problem};

pub(crate) const KEY: &str = "a-signing-key-of-some-length";

/// The most channels a tenant may have, as docs/notifications.md says.
const MAX_CHANNELS: usize = 50;

/// The API of tenants alpha and beta with quick retries, short timeouts,
/// loopback allowed and a sealing key from a file.
fn notify_api(allow_private: bool) -> anyhow::Result<Api> {
    api_configured(SharedCache::open(None, "", Default::default())?, &["alpha", "beta"], |config, _| {
        let key_file = config.data_dir.join("secrets.key");
        std::fs::write(&key_file, "42".repeat(32))?;
        let n = &mut config.notifications;
        n.secrets_key_file = Some(key_file);
        n.allow_private_targets = allow_private;
        n.timeout_ms = 300;
        n.backoff_base_ms = 40;
        n.backoff_max_ms = 80;
        n.max_attempts = 3;
        n.public_url = Some("https://mcp.example".into());
        Ok(())
    })
}

pub(crate) fn put(api: &Api, tenant: &'static str, path: &str, body: Value) -> anyhow::Result<crate::api::Reply> {
    api.call("PUT", path, Some(api.token(tenant, Role::TenantAdmin)), Some(&body.to_string()))
}

pub(crate) fn webhook(receiver: &HttpReceiver, extra: Value) -> Value {
    let mut body = json!({"kind": "webhook", "url": {"value": receiver.url("/hook")}, "signing_key": {"value": KEY}});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

pub(crate) fn ok(reply: crate::api::Reply, status: StatusCode) -> anyhow::Result<Value> {
    anyhow::ensure!(reply.status == status, "{} instead of {status}: {}", reply.status, reply.body);
    Ok(reply.body)
}

static LOG_IDS: AtomicU64 = AtomicU64::new(1_000_000);

/// Stores anomalies of `tenant`'s dns agent as a run's commit would, with
/// the server's routes; (source, label, severity, score) each.
fn commit(api: &Api, tenant: &str, anomalies: &[(&str, &str, Severity, f32)]) -> anyhow::Result<usize> {
    let mut store = AnomalyStore::open(&api.state.anomalies_db)?;
    store.route_with(Arc::new(RouteBook::open(&api.state.config.control_db())?));
    let found: Vec<(Anomaly, Option<String>)> = anomalies
        .iter()
        .map(|(source, label, severity, score)| {
            let anomaly = Anomaly {
                agent: "dns".into(),
                log_id: LOG_IDS.fetch_add(1, Ordering::Relaxed),
                log_type: "dns".into(),
                source: (*source).into(),
                log_timestamp_ms: 0,
                score: *score,
                label: (*label).into(),
                severity: *severity,
                reason: "a reason".into(),
                detected_at_ms: 0,
            };
            (anomaly, None)
        })
        .collect();
    let key = CheckpointKey { tenant, agent: "dns", log_source: "test", log_type: "dns" };
    let provenance = Provenance { agent_sha256: "test", schema_version: 1, model: None };
    Ok(store.commit(&key, &provenance, &found, LOG_IDS.load(Ordering::Relaxed))?)
}

fn outbox(api: &Api, tenant: &'static str, query: &str) -> anyhow::Result<Vec<Value>> {
    let page =
        ok(api.get(&format!("/v1/notifications/outbox{query}"), api.token(tenant, Role::ReadOnly))?, StatusCode::OK)?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

/// Delivers until `done` holds, at most 10 s (retries wait their backoff).
fn deliver_until(api: &Api, what: &str, done: impl Fn() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        api.deliver()?;
        if done()? {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the Python receiver example of docs/notifications.md over a
/// request the server sent, and over the same request with one byte of the
/// body changed (which it must refuse).
fn docs_python_verifies(request: &mcp_fixtures::receivers::Received) -> anyhow::Result<bool> {
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/notifications.md"))?;
    let example = docs
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or_else(|| anyhow::anyhow!("no Python example in docs/notifications.md"))?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("body"), &request.body)?;
    let headers: serde_json::Map<String, Value> = ["X-MCP-Timestamp", "X-MCP-Signature", "X-MCP-Delivery"]
        .iter()
        .map(|name| (name.to_string(), json!(request.headers[&name.to_ascii_lowercase()])))
        .collect();
    let script = format!(
        "{example}\nimport json, sys\nbody = open(sys.argv[1], 'rb').read()\nheaders = json.loads(sys.argv[2])\n\
         tampered = body.replace(b'10.0.0.1', b'10.0.0.2')\n\
         print(verify({KEY:?}.encode(), headers, body, set()), verify({KEY:?}.encode(), headers, tampered, set()))\n"
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path().join("body"))
        .arg(Value::Object(headers).to_string())
        .output()
        .map_err(|e| anyhow::anyhow!("python3 is needed to check the documented receiver: {e}"))?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "True False")
}

#[test]
fn a_signed_webhook_gets_what_its_route_admits_with_a_link() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    ok(put(&api, "alpha", "/v1/notifications/channels/soc", webhook(&receiver, json!({})))?, StatusCode::CREATED)?;
    let route = json!({"channel": "soc", "severities": ["critical"], "agents": ["dns"], "min_score": 0.9});
    ok(put(&api, "alpha", "/v1/notifications/routes/crit", route)?, StatusCode::CREATED)?;
    commit(
        &api,
        "alpha",
        &[
            ("10.0.0.1", "tunnel", Severity::Critical, 0.95),
            ("10.0.0.2", "tunnel", Severity::Critical, 0.5),
            ("10.0.0.3", "tunnel", Severity::High, 0.99),
        ],
    )?;
    commit(&api, "beta", &[("10.0.0.1", "tunnel", Severity::Critical, 0.95)])?;
    assert_eq!(api.deliver()?, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 1, "only the critical one over 0.9");
    let request = &received[0];
    assert_eq!(request.signature_ok, Some(true));
    let timestamp = &request.headers["x-mcp-timestamp"];
    assert_eq!(request.headers["x-mcp-signature"], expected_signature(KEY, timestamp, &request.body));
    assert!(docs_python_verifies(request)?, "the receiver example of docs/notifications.md refused a real delivery");
    let body: Value = serde_json::from_slice(&request.body)?;
    assert_eq!(body["anomaly"]["source"], "10.0.0.1");
    assert_eq!(body["tenant"], "alpha");
    assert_eq!(body["delivery_id"], request.delivery());
    let id = body["anomaly"]["id"].as_i64().unwrap_or_default();
    assert_eq!(body["link"], format!("https://mcp.example/v1/anomalies/{id}"));
    // A route change applies to the next commit.
    ok(
        put(&api, "alpha", "/v1/notifications/routes/crit", json!({"channel": "soc", "severities": ["high"]}))?,
        StatusCode::OK,
    )?;
    commit(&api, "alpha", &[("10.0.0.4", "tunnel", Severity::High, 0.2)])?;
    api.deliver()?;
    assert_eq!(receiver.accepted().len(), 2);
    let delivered = outbox(&api, "alpha", "?state=delivered")?;
    assert_eq!(delivered.len(), 2);
    let metrics = api.get("/metrics", api.token(crate::api::DEPLOYMENT, Role::ReadOnly))?;
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(text.contains("mcp_notifications_delivered_total{tenant=\"alpha\",channel=\"soc\"} 2"), "{text}");
    Ok(())
}

#[test]
fn the_same_kind_within_the_window_is_folded_and_counted() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    ok(
        put(&api, "alpha", "/v1/notifications/channels/soc", webhook(&receiver, json!({"dedup_window_s": 600})))?,
        StatusCode::CREATED,
    )?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "soc"}))?, StatusCode::CREATED)?;
    let storm: Vec<_> = (0..313).map(|_| ("10.0.0.9", "tunnel", Severity::High, 0.9)).collect();
    commit(&api, "alpha", &storm)?;
    commit(&api, "alpha", &[("10.0.0.8", "tunnel", Severity::High, 0.9)])?;
    api.deliver()?;
    let bodies: Vec<Value> =
        receiver.received().iter().map(|r| serde_json::from_slice(&r.body)).collect::<Result<_, _>>()?;
    assert_eq!(bodies.len(), 2, "one per (agent, source, label): {bodies:?}");
    let storm_notice = bodies.iter().find(|b| b["anomaly"]["source"] == "10.0.0.9").expect("the storm's notice");
    assert_eq!(storm_notice["folded"], 312, "and 312 more like it");
    // After it went, more of the kind wait for the window's end in a digest.
    commit(&api, "alpha", &[("10.0.0.9", "tunnel", Severity::High, 0.9), ("10.0.0.9", "tunnel", Severity::High, 0.9)])?;
    api.deliver()?;
    assert_eq!(receiver.received().len(), 2, "the digest is not due before the window ends");
    let digests: Vec<Value> = outbox(&api, "alpha", "")?.into_iter().filter(|e| e["kind"] == "digest").collect();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0]["folded"], 2);
    assert_eq!(digests[0]["state"], "pending");
    assert!(digests[0]["next_attempt_ms"].as_i64() >= Some(mcp_storage::jobstatus::now_ms() + 500_000));
    let metrics = api.get("/metrics", api.token(crate::api::DEPLOYMENT, Role::ReadOnly))?;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap_or_default()
            .contains("mcp_notifications_folded_total{tenant=\"alpha\",channel=\"soc\"} 312")
    );
    Ok(())
}

#[test]
fn a_storm_is_held_to_the_channels_rate() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    let channel = webhook(&receiver, json!({"dedup_window_s": 0, "rate_per_minute": 3}));
    ok(put(&api, "alpha", "/v1/notifications/channels/slow", channel)?, StatusCode::CREATED)?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "slow"}))?, StatusCode::CREATED)?;
    let storm: Vec<_> = (0..20)
        .map(|i| if i % 2 == 0 { ("a", "x", Severity::Low, 0.1) } else { ("b", "y", Severity::Low, 0.1) })
        .collect();
    commit(&api, "alpha", &storm)?;
    api.deliver()?;
    api.deliver()?;
    assert_eq!(receiver.received().len(), 3, "a minute's allowance, no more");
    let waiting = outbox(&api, "alpha", "?state=pending")?;
    assert_eq!(waiting.len(), 17);
    assert!(waiting.iter().all(|e| e["attempts"] == 0), "held back, not failed");
    assert!(waiting.iter().all(|e| e["next_attempt_ms"].as_i64() > Some(mcp_storage::jobstatus::now_ms())));
    Ok(())
}

#[test]
fn failures_are_retried_then_dead_lettered_and_an_admin_retries_or_drops() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let flaky = HttpReceiver::start(Some(KEY), Mode::FailFirst(2))?;
    ok(
        put(&api, "alpha", "/v1/notifications/channels/flaky", webhook(&flaky, json!({"dedup_window_s": 0})))?,
        StatusCode::CREATED,
    )?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "flaky"}))?, StatusCode::CREATED)?;
    commit(&api, "alpha", &[("h1", "x", Severity::Medium, 0.5)])?;
    deliver_until(&api, "delivered after two failures", || Ok(flaky.accepted().len() == 1))?;
    let id = outbox(&api, "alpha", "")?[0]["id"].as_i64().unwrap_or_default();
    let entry =
        ok(api.get(&format!("/v1/notifications/outbox/{id}"), api.token("alpha", Role::ReadOnly))?, StatusCode::OK)?;
    assert_eq!(entry["state"], "delivered");
    let statuses: Vec<_> = entry["attempt_log"].as_array().into_iter().flatten().map(|a| a["status"].clone()).collect();
    assert_eq!(statuses, [json!(500), json!(500), json!(200)]);
    assert!(entry["attempt_log"][0]["error"].as_str().is_some_and(|e| e.contains("500")), "{entry}");
    assert_eq!(flaky.accepted(), vec![format!("mcp-{id}")], "one delivery id, accepted once");
    let same_id: Vec<_> = flaky.received().iter().map(|r| r.delivery()).collect();
    assert!(same_id.iter().all(|d| *d == format!("mcp-{id}")), "every attempt carries the same id: {same_id:?}");

    // Three failures: dead. Then an admin retries one and drops another.
    flaky.set_mode(Mode::FailFirst(1_000));
    commit(&api, "alpha", &[("h2", "x", Severity::Medium, 0.5), ("h3", "x", Severity::Medium, 0.5)])?;
    deliver_until(&api, "two dead letters", || Ok(outbox(&api, "alpha", "?state=dead")?.len() == 2))?;
    let dead = outbox(&api, "alpha", "?state=dead")?;
    assert!(dead.iter().all(|e| e["attempts"] == 3 && e["last_error"].as_str().is_some_and(|x| x.contains("500"))));
    let (first, second) = (dead[0]["id"].as_i64().unwrap_or_default(), dead[1]["id"].as_i64().unwrap_or_default());
    let read_only = api.token("alpha", Role::ReadOnly);
    problem(
        &api.call("POST", &format!("/v1/notifications/outbox/{first}/retry"), Some(read_only), None)?,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let admin = api.token("alpha", Role::TenantAdmin);
    let retried =
        ok(api.call("POST", &format!("/v1/notifications/outbox/{first}/retry"), Some(admin), None)?, StatusCode::OK)?;
    assert_eq!((retried["state"].clone(), retried["attempts"].clone()), (json!("pending"), json!(0)));
    let dropped =
        ok(api.call("POST", &format!("/v1/notifications/outbox/{second}/drop"), Some(admin), None)?, StatusCode::OK)?;
    assert_eq!(dropped["state"], "dropped");
    flaky.set_mode(Mode::Ok);
    deliver_until(&api, "the retried one delivered", || Ok(flaky.accepted().contains(&format!("mcp-{first}"))))?;
    assert!(!flaky.accepted().contains(&format!("mcp-{second}")), "a dropped one is not sent");
    problem(
        &api.call("POST", &format!("/v1/notifications/outbox/{first}/drop"), Some(admin), None)?,
        StatusCode::CONFLICT,
        "conflict",
    );
    let metrics = api.get("/metrics", api.token(crate::api::DEPLOYMENT, Role::ReadOnly))?;
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(text.contains("mcp_notifications_dead_lettered_total{tenant=\"alpha\",channel=\"flaky\"} 2"), "{text}");
    assert!(text.contains("mcp_notifications_retried_total{tenant=\"alpha\",channel=\"flaky\"} 6"), "{text}");
    Ok(())
}

#[test]
fn a_receiver_that_hangs_times_out_and_is_tried_again() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Hang(Duration::from_secs(5)))?;
    ok(put(&api, "alpha", "/v1/notifications/channels/slow", webhook(&receiver, json!({})))?, StatusCode::CREATED)?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "slow"}))?, StatusCode::CREATED)?;
    commit(&api, "alpha", &[("h1", "x", Severity::High, 0.5)])?;
    let started = Instant::now();
    api.deliver()?;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the worker waited {:?} for a hung receiver",
        started.elapsed()
    );
    let entry = &outbox(&api, "alpha", "")?[0];
    assert_eq!(entry["state"], "pending");
    assert!(entry["last_error"].as_str().is_some_and(|e| e.contains("no answer within 300 ms")), "{entry}");
    receiver.set_mode(Mode::Ok);
    deliver_until(&api, "delivered once the receiver answers", || Ok(receiver.accepted().len() == 1))?;
    Ok(())
}

#[test]
fn email_goes_through_smtp_with_authentication() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let sink = SmtpSink::start("mcp", "smtp-password")?;
    let channel = json!({"kind": "email", "host": "127.0.0.1", "port": sink.port, "tls": "none",
        "username": "mcp", "password": {"value": "smtp-password"},
        "from": "MCP <mcp@example.com>", "to": ["soc@example.com", "oncall@example.com"]});
    ok(put(&api, "alpha", "/v1/notifications/channels/mail", channel)?, StatusCode::CREATED)?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "mail"}))?, StatusCode::CREATED)?;
    commit(&api, "alpha", &[("10.9.9.9", "exfiltration", Severity::Critical, 0.97)])?;
    api.deliver()?;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.auth, Some(("mcp".into(), "smtp-password".into())));
    assert_eq!(mail.to, ["<soc@example.com>", "<oncall@example.com>"]);
    assert!(mail.data.contains("Subject: [MCP critical] exfiltration on 10.9.9.9 (dns)"), "{}", mail.data);
    assert!(
        mail.data.contains("Reason: a reason") && mail.data.contains("https://mcp.example/v1/anomalies/"),
        "{}",
        mail.data
    );
    let entry = &outbox(&api, "alpha", "")?[0];
    let id = entry["id"].as_i64().unwrap_or_default();
    let entry =
        ok(api.get(&format!("/v1/notifications/outbox/{id}"), api.token("alpha", Role::ReadOnly))?, StatusCode::OK)?;
    assert_eq!(entry["attempt_log"][0]["status"], 250, "the SMTP reply code: {entry}");
    // The test endpoint answers with what the server said.
    let test = ok(
        api.call("POST", "/v1/notifications/channels/mail/test", Some(api.token("alpha", Role::TenantAdmin)), None)?,
        StatusCode::OK,
    )?;
    assert_eq!(test["delivered"], true, "{test}");
    assert_eq!(test["status"], 250);
    assert!(sink.mails().last().is_some_and(|m| m.data.contains("test message")));
    // A wrong password is an error the attempt records.
    let wrong = json!({"kind": "email", "host": "127.0.0.1", "port": sink.port, "tls": "none",
        "username": "mcp", "password": {"value": "wrong"}, "from": "mcp@example.com", "to": ["soc@example.com"]});
    ok(put(&api, "alpha", "/v1/notifications/channels/mail", wrong)?, StatusCode::OK)?;
    let test = ok(
        api.call("POST", "/v1/notifications/channels/mail/test", Some(api.token("alpha", Role::TenantAdmin)), None)?,
        StatusCode::OK,
    )?;
    assert_eq!(test["delivered"], false);
    assert_eq!(test["status"], 535, "{test}");
    Ok(())
}

#[test]
fn another_tenants_channels_and_notifications_are_invisible_and_unusable() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    ok(put(&api, "alpha", "/v1/notifications/channels/soc", webhook(&receiver, json!({})))?, StatusCode::CREATED)?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "soc"}))?, StatusCode::CREATED)?;
    commit(&api, "alpha", &[("h1", "x", Severity::High, 0.5)])?;
    let id = outbox(&api, "alpha", "")?[0]["id"].as_i64().unwrap_or_default();
    let beta = api.token("beta", Role::Admin);
    let listed = ok(api.get("/v1/notifications/channels", beta)?, StatusCode::OK)?;
    assert_eq!(listed["items"], json!([]));
    problem(&api.get("/v1/notifications/channels/soc", beta)?, StatusCode::NOT_FOUND, "not_found");
    problem(
        &api.call("POST", "/v1/notifications/channels/soc/test", Some(beta), None)?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &api.call("DELETE", "/v1/notifications/channels/soc", Some(beta), None)?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &put(&api, "beta", "/v1/notifications/routes/steal", json!({"channel": "soc"}))?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_channel",
    );
    assert_eq!(ok(api.get("/v1/notifications/routes", beta)?, StatusCode::OK)?["items"], json!([]));
    assert!(outbox(&api, "beta", "")?.is_empty());
    problem(&api.get(&format!("/v1/notifications/outbox/{id}"), beta)?, StatusCode::NOT_FOUND, "not_found");
    problem(
        &api.call("POST", &format!("/v1/notifications/outbox/{id}/retry"), Some(beta), None)?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &api.call("POST", &format!("/v1/notifications/outbox/{id}/drop"), Some(beta), None)?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Nor may beta name alpha's (or the deployment's) secrets: no tenant
    // names a variable of the server's environment.
    let stolen = json!({"kind": "slack", "url": {"env": "MCP_SECRET_ALPHA_SLACK"}});
    let refused = put(&api, "beta", "/v1/notifications/channels/mine", stolen)?;
    problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_channel");
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("url: ") && d.contains("belongs to the operator")),
        "{}",
        refused.body
    );
    // A sealed value copied from alpha's channel does not open as beta's.
    let stored: String = rusqlite::Connection::open(api.state.config.control_db())?.query_row(
        "SELECT spec FROM notify_channels WHERE tenant = 'alpha' AND name = 'soc'",
        [],
        |r| r.get(0),
    )?;
    let sealed: Value = serde_json::from_str(&stored)?;
    problem(
        &put(&api, "beta", "/v1/notifications/channels/mine", json!({"kind": "slack", "url": sealed["url"]}))?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_channel",
    );
    Ok(())
}

#[test]
fn bad_settings_are_named_by_field_and_secrets_never_come_back() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let admin = api.token("alpha", Role::TenantAdmin);
    let refused = |body: Value, status: StatusCode, field: &str| -> anyhow::Result<()> {
        let reply = api.call("PUT", "/v1/notifications/channels/c", Some(admin), Some(&body.to_string()))?;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(field), "{body}: the detail '{detail}' does not name {field}");
        Ok(())
    };
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    refused(json!({"kind": "webhook", "url": {"value": "https://h.example/x"}}), unprocessable, "signing_key")?;
    refused(json!({"kind": "slack", "url": {"value": "ftp://h.example/x"}}), unprocessable, "url")?;
    refused(json!({"kind": "log", "host": "smtp.example.com"}), unprocessable, "host")?;
    refused(
        json!({"kind": "email", "host": "smtp.example.com", "from": "a@example.com", "to": ["not an address"]}),
        unprocessable,
        "to[0]",
    )?;
    refused(
        json!({"kind": "email", "host": "smtp.example.com", "from": "a@example.com", "to": ["b@example.com"], "username": "u", "password": {"value": "p"}, "tls": "none"}),
        unprocessable,
        "tls",
    )?;
    refused(
        json!({"kind": "webhook", "url": {"value": "https://h.example"}, "signing_key": {"value": "short"}}),
        unprocessable,
        "signing_key",
    )?;
    refused(json!({"kind": "log", "colour": "red"}), StatusCode::BAD_REQUEST, "colour")?;
    refused(json!({"kind": "pager"}), StatusCode::BAD_REQUEST, "kind")?;
    refused(json!({"kind": "log", "rate_per_minute": 0}), StatusCode::BAD_REQUEST, "rate_per_minute")?;
    let bad_name = api.call("PUT", "/v1/notifications/channels/Bad%20Name", Some(admin), Some("{\"kind\":\"log\"}"))?;
    problem(&bad_name, StatusCode::BAD_REQUEST, "bad_request");
    problem(
        &put(&api, "alpha", "/v1/notifications/routes/r", json!({"channel": "none"}))?,
        unprocessable,
        "unknown_channel",
    );
    problem(
        &put(&api, "alpha", "/v1/notifications/routes/r", json!({"channel": "c", "severities": ["urgent"]}))?,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );

    let secret_url = "https://hooks.example/services/T000/B000/very-secret-token";
    let created = ok(
        put(&api, "alpha", "/v1/notifications/channels/c", json!({"kind": "slack", "url": {"value": secret_url}}))?,
        StatusCode::CREATED,
    )?;
    assert_eq!(created["settings"]["url"], json!({"stored": true}));
    for reply in [
        api.get("/v1/notifications/channels", admin)?,
        api.get("/v1/notifications/channels/c", admin)?,
        api.get("/v1/audit", admin)?,
    ] {
        assert!(!reply.body.to_string().contains("very-secret-token"), "a secret came back: {}", reply.body);
    }
    let stored: String = rusqlite::Connection::open(api.state.config.control_db())?.query_row(
        "SELECT spec FROM notify_channels WHERE tenant = 'alpha' AND name = 'c'",
        [],
        |r| r.get(0),
    )?;
    assert!(!stored.contains("very-secret-token"), "stored in the clear: {stored}");
    // A tenant's channels are bounded; replacing one at the bound is fine.
    for i in 1..MAX_CHANNELS {
        ok(
            put(&api, "alpha", &format!("/v1/notifications/channels/c{i}"), json!({"kind": "log"}))?,
            StatusCode::CREATED,
        )?;
    }
    problem(
        &put(&api, "alpha", "/v1/notifications/channels/one-more", json!({"kind": "log"}))?,
        StatusCode::CONFLICT,
        "over_budget",
    );
    ok(put(&api, "alpha", "/v1/notifications/channels/c1", json!({"kind": "log", "enabled": false}))?, StatusCode::OK)?;
    Ok(())
}

#[test]
fn internal_addresses_are_refused_unless_the_operator_allows_them() -> anyhow::Result<()> {
    let api = notify_api(false)?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    ok(put(&api, "alpha", "/v1/notifications/channels/inside", webhook(&receiver, json!({})))?, StatusCode::CREATED)?;
    let test = ok(
        api.call("POST", "/v1/notifications/channels/inside/test", Some(api.token("alpha", Role::TenantAdmin)), None)?,
        StatusCode::OK,
    )?;
    assert_eq!(test["delivered"], false);
    assert!(
        test["error"].as_str().is_some_and(|e| e.contains("internal address") && e.contains("allow_private_targets")),
        "{test}"
    );
    let by_name = json!({"kind": "webhook", "url": {"value": format!("http://localhost:{}/hook", receiver.port)}, "signing_key": {"value": KEY}});
    ok(put(&api, "alpha", "/v1/notifications/channels/inside", by_name)?, StatusCode::OK)?;
    let test = ok(
        api.call("POST", "/v1/notifications/channels/inside/test", Some(api.token("alpha", Role::TenantAdmin)), None)?,
        StatusCode::OK,
    )?;
    assert_eq!(test["delivered"], false, "a name that resolves inside is refused too: {test}");
    assert!(receiver.received().is_empty(), "the receiver was reached");
    Ok(())
}

#[test]
fn a_runs_anomalies_reach_the_receiver_once_each() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    ok(
        put(
            &api,
            "alpha",
            "/v1/notifications/channels/soc",
            webhook(&receiver, json!({"dedup_window_s": 0, "rate_per_minute": 6000})),
        )?,
        StatusCode::CREATED,
    )?;
    ok(
        put(&api, "alpha", "/v1/notifications/routes/fw", json!({"channel": "soc", "agents": ["firewall"]}))?,
        StatusCode::CREATED,
    )?;
    let source = mcp_storage::source::SqliteLogSource::open(
        &api.state.config.logs_db(),
        Arc::new(mcp_storage::schema::SchemaFiles::new(Path::new(mcp_fixtures::BUNDLED_SCHEMAS))),
    )?;
    mcp_storage::source::LogSource::append(
        &source,
        "alpha",
        "firewall",
        &mcp_synth::to_rows(&mcp_synth::generate("firewall", 5, 3_000)?),
    )?;
    let admin = api.token("alpha", Role::TenantAdmin);
    let run = ok(api.call("POST", "/v1/runs", Some(admin), Some("{\"agent\":\"firewall\"}"))?, StatusCode::ACCEPTED)?;
    let id = run["id"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let anomalies = loop {
        let run = api.get(&format!("/v1/runs/{id}"), admin)?.body;
        if run["state"] == "completed" {
            break run["counters"]["anomalies"].as_u64().unwrap_or_default();
        }
        anyhow::ensure!(run["state"] != "failed" && Instant::now() < deadline, "run: {run}");
        std::thread::sleep(Duration::from_millis(50));
    };
    anyhow::ensure!(anomalies > 0, "the run found nothing to notify about");
    deliver_until(&api, "every anomaly of the run delivered", || Ok(receiver.accepted().len() as u64 >= anomalies))?;
    let accepted = receiver.accepted();
    let distinct: std::collections::BTreeSet<_> = accepted.iter().collect();
    assert_eq!((accepted.len() as u64, distinct.len() as u64), (anomalies, anomalies), "each once");
    Ok(())
}

#[test]
fn channels_the_operators_file_keeps_cannot_be_changed_through_the_api() -> anyhow::Result<()> {
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha"], |config, _| {
        let file = config.data_dir.join("notifications.toml");
        std::fs::write(
            &file,
            "[[channel]]\ntenant = \"alpha\"\nname = \"ops-log\"\nkind = \"log\"\n\
             [[route]]\ntenant = \"alpha\"\nname = \"everything\"\nchannel = \"ops-log\"\n",
        )?;
        config.notifications.file = Some(file);
        Ok(())
    })?;
    let listed = ok(api.get("/v1/notifications/channels", api.token("alpha", Role::ReadOnly))?, StatusCode::OK)?;
    assert_eq!(listed["items"][0]["managed_by"], "config");
    problem(
        &put(&api, "alpha", "/v1/notifications/channels/ops-log", json!({"kind": "log"}))?,
        StatusCode::CONFLICT,
        "managed_by_config",
    );
    problem(
        &api.call("DELETE", "/v1/notifications/routes/everything", Some(api.token("alpha", Role::TenantAdmin)), None)?,
        StatusCode::CONFLICT,
        "managed_by_config",
    );
    // The log channel delivers with nothing outside.
    commit(&api, "alpha", &[("h", "x", Severity::Info, 0.1)])?;
    api.deliver()?;
    assert_eq!(outbox(&api, "alpha", "?state=delivered")?.len(), 1);
    Ok(())
}

#[test]
fn a_tenant_whose_receiver_hangs_does_not_hold_up_another() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let hanging = HttpReceiver::start(Some(KEY), Mode::Hang(Duration::from_secs(30)))?;
    let prompt = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    let flood = json!({"dedup_window_s": 0, "rate_per_minute": 600000});
    ok(put(&api, "beta", "/v1/notifications/channels/stuck", webhook(&hanging, flood.clone()))?, StatusCode::CREATED)?;
    ok(put(&api, "beta", "/v1/notifications/routes/all", json!({"channel": "stuck"}))?, StatusCode::CREATED)?;
    ok(put(&api, "alpha", "/v1/notifications/channels/soc", webhook(&prompt, flood))?, StatusCode::CREATED)?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "soc"}))?, StatusCode::CREATED)?;
    let backlog: Vec<_> = (0..60).map(|_| ("h", "x", Severity::Low, 0.1)).collect();
    commit(&api, "beta", &backlog)?;
    commit(&api, "alpha", &[("h", "x", Severity::Critical, 0.99)])?;
    let deliverer = api.state.deliverer.clone();
    let worker = std::thread::spawn(move || -> anyhow::Result<usize> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        Ok(runtime.block_on(deliverer.drain())?)
    });
    let started = Instant::now();
    while prompt.accepted().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(3), "alpha waited behind beta's hanging receiver");
        std::thread::sleep(Duration::from_millis(10));
    }
    let waiting = outbox(&api, "beta", "?state=pending")?.len() + outbox(&api, "beta", "?state=sending")?.len();
    assert!(waiting > 40, "beta's backlog was not still waiting ({waiting}): the test proves nothing");
    assert!(
        hanging.received().len() <= 4,
        "beta had more than its share of sends at once: {}",
        hanging.received().len()
    );
    worker.join().map_err(|_| anyhow::anyhow!("the worker thread panicked"))??;
    Ok(())
}

#[test]
fn a_node_without_the_channels_secret_costs_no_attempt() -> anyhow::Result<()> {
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha"], |config, _| {
        let file = config.data_dir.join("notifications.toml");
        std::fs::write(
            &file,
            "[[channel]]\ntenant = \"alpha\"\nname = \"soc\"\nkind = \"webhook\"\n\
             url = { env = \"MCP_SECRET_NOT_ON_THIS_NODE_URL\" }\nsigning_key = { env = \"MCP_SECRET_NOT_ON_THIS_NODE_KEY\" }\n\
             [[route]]\ntenant = \"alpha\"\nname = \"everything\"\nchannel = \"soc\"\n",
        )?;
        config.notifications.file = Some(file);
        config.notifications.max_attempts = 1;
        Ok(())
    })?;
    commit(&api, "alpha", &[("10.0.0.1", "tunnel", Severity::Critical, 0.9)])?;
    for _ in 0..3 {
        api.deliver()?;
    }
    let waiting = outbox(&api, "alpha", "")?;
    assert_eq!(waiting.len(), 1);
    let entry = &waiting[0];
    assert_eq!((entry["state"].as_str(), entry["attempts"].as_i64()), (Some("pending"), Some(0)), "{entry}");
    let error = entry["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("not sent by this node") && error.contains("MCP_SECRET_NOT_ON_THIS_NODE"), "{error}");
    Ok(())
}

#[test]
fn a_notification_of_a_deleted_channel_cannot_be_retried() -> anyhow::Result<()> {
    let api = notify_api(true)?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::FailFirst(u32::MAX))?;
    ok(put(&api, "alpha", "/v1/notifications/channels/soc", webhook(&receiver, json!({})))?, StatusCode::CREATED)?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "soc"}))?, StatusCode::CREATED)?;
    commit(&api, "alpha", &[("10.0.0.1", "tunnel", Severity::Critical, 0.9)])?;
    let admin = api.token("alpha", Role::TenantAdmin);
    assert_eq!(api.call("DELETE", "/v1/notifications/routes/all", Some(admin), None)?.status, StatusCode::NO_CONTENT);
    assert_eq!(api.call("DELETE", "/v1/notifications/channels/soc", Some(admin), None)?.status, StatusCode::NO_CONTENT);
    let dead = outbox(&api, "alpha", "?state=dead")?;
    assert_eq!(dead.len(), 1, "the deleted channel's notification is dead");
    let id = dead[0]["id"].as_i64().unwrap_or_default();
    // The tenant who makes the channel again may send it there on purpose;
    // with no channel of its name, a retry would wait for whichever comes.
    ok(put(&api, "alpha", "/v1/notifications/channels/soc", webhook(&receiver, json!({})))?, StatusCode::CREATED)?;
    let retried = api.call("POST", &format!("/v1/notifications/outbox/{id}/retry"), Some(admin), None)?;
    assert_eq!(retried.status, StatusCode::OK, "the channel exists again under its name: {}", retried.body);
    assert_eq!(api.call("DELETE", "/v1/notifications/channels/soc", Some(admin), None)?.status, StatusCode::NO_CONTENT);
    crate::api::problem(
        &api.call("POST", &format!("/v1/notifications/outbox/{id}/retry"), Some(admin), None)?,
        StatusCode::CONFLICT,
        "conflict",
    );
    Ok(())
}
