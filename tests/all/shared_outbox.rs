//! The notification outbox on PostgreSQL (`anomaly_store = "postgres"`):
//! the same commits queue, fold, claim and settle the same notifications as
//! in the embedded store; two nodes claiming at once never take the same
//! one; and anomalies a unit or an API run stores reach a real receiver
//! once each, whichever node's delivery worker sends them.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use mcp_api::Role;
use mcp_columns::{Anomaly, Severity};
use mcp_engine::config::StoreKind;
use mcp_fixtures::receivers::{HttpReceiver, Mode};
use mcp_storage::control::ControlStore;
use mcp_storage::jobstatus::now_ms;
use mcp_storage::notify::outbox::{AdminAction, AfterAttempt, Attempt};
use mcp_storage::notify::{ChannelRecord, Managed, OutboxFilter, OutboxState, OutboxStore, RouteBook, RouteRecord};
use mcp_storage::run_store::RunStore;
use mcp_storage::shared_store::SharedStore;
use mcp_storage::source::LogSource;
use mcp_storage::store::{AnomalyStore, AnomalyWithEntry, CheckpointKey, Provenance};
use mcp_synth as generator;
use serde_json::json;

use crate::api::api_configured;
use crate::notifications::{KEY, ok, put, webhook};
use crate::postgres::{Pg, database_url, pg};

fn shared(pg: &Pg, routes: &Arc<RouteBook>) -> anyhow::Result<SharedStore> {
    let mut store = pg.shared_store()?;
    store.route_with(routes.clone());
    Ok(store)
}

/// The API of `tenants` with its anomalies on the test's PostgreSQL, and a
/// sealing key and loopback receivers allowed for its channels.
fn api_on(pg: &Pg, tenants: &[&'static str]) -> anyhow::Result<crate::api::Api> {
    let namespace = pg.schema()?;
    let cache = mcp_storage::jobstatus::SharedCache::open(None, "", Default::default())?;
    api_configured(cache, tenants, |config, _| {
        config.database_url = Some(database_url());
        config.database_schema = Some(namespace);
        config.anomaly_store = StoreKind::Postgres;
        let key_file = config.data_dir.join("secrets.key");
        std::fs::write(&key_file, "42".repeat(32))?;
        config.notifications.secrets_key_file = Some(key_file);
        config.notifications.allow_private_targets = true;
        Ok(())
    })
}

/// Drains the outbox with the API's delivery worker and another node's at
/// once; how many each handled.
fn deliver_from_two_nodes(api: &crate::api::Api) -> anyhow::Result<(usize, usize)> {
    let other_node = mcp_notify::Deliverer::open(&api.state.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (mine, theirs) = std::thread::scope(|scope| {
        let mine = scope.spawn(|| api.deliver());
        let theirs = scope.spawn(|| runtime.block_on(other_node.drain()));
        (mine.join(), theirs.join())
    });
    let (Ok(mine), Ok(theirs)) = (mine, theirs) else { anyhow::bail!("a delivering thread panicked") };
    Ok((mine?, theirs?))
}

/// Tenant `a`'s channels: `now` (every critical anomaly, none folded) and
/// `fold` (everything, the same kind folded for ten minutes).
fn routes(dir: &Path) -> anyhow::Result<Arc<RouteBook>> {
    let control = ControlStore::open(&dir.join("control.db"))?;
    for (name, dedup_window_ms) in [("now", 0), ("fold", 600_000)] {
        control.put_notify_channel(&ChannelRecord {
            tenant: "a".into(),
            name: name.into(),
            kind: "log".into(),
            spec: "{}".into(),
            dedup_window_ms,
            rate_per_minute: 60,
            enabled: true,
            managed_by: Managed::Api,
            updated_ms: 0,
        })?;
    }
    let route = |name: &str, channel: &str, severities: Vec<String>| RouteRecord {
        name: name.into(),
        channel: channel.into(),
        severities,
        agents: vec![],
        log_types: vec![],
        labels: vec![],
        min_score: 0.0,
    };
    control.put_notify_route("a", &route("crit", "now", vec!["critical".into()]), Managed::Api)?;
    control.put_notify_route("a", &route("all", "fold", vec![]), Managed::Api)?;
    Ok(Arc::new(RouteBook::open(&dir.join("control.db"))?))
}

fn found(log_id: u64, source: &str, severity: Severity) -> AnomalyWithEntry {
    let anomaly = Anomaly {
        agent: "dns".into(),
        log_id,
        log_type: "dns".into(),
        source: source.into(),
        log_timestamp_ms: 1_000,
        score: 0.9,
        label: "tunnel".into(),
        severity,
        reason: "long names".into(),
        detected_at_ms: 0,
    };
    (anomaly, None)
}

fn commit(store: &mut dyn RunStore, tenant: &str, batch: &[AnomalyWithEntry], last_id: u64) -> anyhow::Result<usize> {
    let key = CheckpointKey { tenant, agent: "dns", log_source: "s", log_type: "dns" };
    let provenance = Provenance { agent_sha256: "x", schema_version: 1, model: None };
    Ok(store.commit_with_state(&key, &provenance, batch, last_id, None)?)
}

/// A notification without the store's own ids: (channel, kind, the log id
/// of its anomaly, folded, state, attempts).
type Seen = (String, String, u64, i64, OutboxState, i64);

fn seen(store: &OutboxStore<'_>, tenant: &str) -> anyhow::Result<Vec<Seen>> {
    let entries = store.outbox(tenant, &OutboxFilter { limit: 1_000, ..Default::default() })?;
    let mut seen = Vec::new();
    for e in entries {
        let anomaly = store.anomalies().get(tenant, e.anomaly_id)?.ok_or_else(|| anyhow::anyhow!("{e:?}"))?;
        seen.push((e.channel, e.kind, anomaly.log_id, e.folded, e.state, e.attempts));
    }
    seen.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    Ok(seen)
}

/// The id in `store` of `tenant`'s notification of `kind` on `channel` for
/// the anomaly of `log_id`.
fn id_of(store: &OutboxStore<'_>, channel: &str, kind: &str, log_id: u64) -> anyhow::Result<i64> {
    for e in store.outbox("a", &OutboxFilter { limit: 1_000, ..Default::default() })? {
        let anomaly = store.anomalies().get("a", e.anomaly_id)?;
        if e.channel == channel && e.kind == kind && anomaly.is_some_and(|a| a.log_id == log_id) {
            return Ok(e.id);
        }
    }
    anyhow::bail!("no {kind} on {channel} for entry {log_id}")
}

/// Runs `step` on both stores and asserts they answer alike.
fn alike<T: PartialEq + std::fmt::Debug>(
    embedded: &mut AnomalyStore,
    shared: &SharedStore,
    what: &str,
    mut step: impl FnMut(OutboxStore<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let theirs = step(OutboxStore::Embedded(embedded))?;
    let ours = step(OutboxStore::Shared(shared))?;
    assert_eq!(ours, theirs, "{what}: PostgreSQL (left) differs from the embedded store");
    Ok(ours)
}

#[test]
fn the_outbox_on_postgres_queues_folds_and_settles_as_the_embedded_one() -> anyhow::Result<()> {
    let pg = pg()?;
    let dir = tempfile::tempdir()?;
    let book = routes(dir.path())?;
    let on_postgres = shared(&pg, &book)?;
    let mut embedded = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    embedded.route_with(book);
    let first =
        [found(1, "h1", Severity::Critical), found(2, "h1", Severity::Critical), found(3, "h2", Severity::High)];
    let later = [found(4, "h1", Severity::High), found(5, "h1", Severity::High), found(6, "h3", Severity::High)];
    for (tenant, batch, last_id) in [("a", &first, 10), ("a", &first, 10), ("b", &first, 10)] {
        let stored = commit(&mut embedded, tenant, batch, last_id)?;
        assert_eq!(commit(&mut &on_postgres, tenant, batch, last_id)?, stored);
    }
    let queued = alike(&mut embedded, &on_postgres, "after the first batch", |s| seen(&s, "a"))?;
    let expected: Vec<Seen> = vec![
        ("fold".into(), "anomaly".into(), 1, 1, OutboxState::Pending, 0),
        ("fold".into(), "anomaly".into(), 3, 0, OutboxState::Pending, 0),
        ("now".into(), "anomaly".into(), 1, 0, OutboxState::Pending, 0),
        ("now".into(), "anomaly".into(), 2, 0, OutboxState::Pending, 0),
    ];
    assert_eq!(queued, expected, "a rerun queued again, or the folding differs from the embedded store's");
    assert!(alike(&mut embedded, &on_postgres, "tenant b", |s| seen(&s, "b"))?.is_empty(), "b has no routes");

    // The leads go out; what comes after them in the window is a digest.
    let now = now_ms();
    let claimed = alike(&mut embedded, &on_postgres, "claim", |mut s| {
        Ok(s.claim_channel("a", "fold", now, 10_000, 10)?.into_iter().map(|e| (e.kind, e.folded)).collect::<Vec<_>>())
    })?;
    assert_eq!(claimed.len(), 2);
    let stored = commit(&mut embedded, "a", &later, 20)?;
    assert_eq!(commit(&mut &on_postgres, "a", &later, 20)?, stored);
    alike(&mut embedded, &on_postgres, "claimed while the lease holds", |mut s| {
        Ok(s.claim_channel("a", "fold", now + 9_999, 10_000, 10)?.len())
    })?;
    let with_digest = alike(&mut embedded, &on_postgres, "after the second batch", |s| seen(&s, "a"))?;
    assert!(with_digest.contains(&("fold".into(), "digest".into(), 4, 2, OutboxState::Pending, 0)), "{with_digest:?}");

    // Attempts, an admin's drop and retry, and another tenant's ids.
    alike(&mut embedded, &on_postgres, "attempts", |mut s| {
        let lead = id_of(&s, "fold", "anomaly", 1)?;
        let other = id_of(&s, "fold", "anomaly", 3)?;
        let ok = Attempt { at_ms: now, status: Some(200), error: None, latency_ms: 4, answer: Some("ok\0".into()) };
        s.record_attempt(lead, &ok, AfterAttempt::Delivered)?;
        let failed = Attempt { at_ms: now, status: Some(503), error: Some("busy".into()), latency_ms: 9, answer: None };
        s.record_attempt(other, &failed, AfterAttempt::RetryAt(now + 5_000))?;
        let (entry, attempts) = s.outbox_entry("a", lead)?.ok_or_else(|| anyhow::anyhow!("gone"))?;
        let answers: Vec<_> = attempts.iter().map(|a| (a.status, a.latency_ms)).collect();
        let results = (
            entry.state,
            answers,
            s.outbox_entry("b", lead)?.is_none(),
            s.drop_notification("a", lead, now)?,
            s.drop_notification("a", other, now)?,
            s.drop_notification("a", other, now)?,
            s.retry_notification("b", other, now)?,
            s.retry_notification("a", other, now)?,
        );
        Ok(results)
    })
    .map(|(state, answers, hidden, delivered, dropped, again, theirs, retried)| {
        assert_eq!((state, answers, hidden), (OutboxState::Delivered, vec![(Some(200), 4)], true));
        assert_eq!(
            (delivered, dropped, again, theirs, retried),
            (
                AdminAction::Refused(OutboxState::Delivered),
                AdminAction::Done,
                AdminAction::Refused(OutboxState::Dropped),
                AdminAction::NotFound,
                AdminAction::Done
            )
        );
    })?;
    alike(&mut embedded, &on_postgres, "deferred by the rate limit", |mut s| {
        let claimed = s.claim_channel("a", "now", now, 10_000, 1)?;
        s.defer_notification(claimed[0].id, now + 60_000, Some("held"))?;
        Ok(s.claim_channel("a", "now", now, 10_000, 10)?.len())
    })?;
    let filtered = alike(&mut embedded, &on_postgres, "a filtered listing", |s| {
        let filter =
            OutboxFilter { state: Some(OutboxState::Pending), channel: Some("fold".into()), limit: 10, before: None };
        Ok(s.outbox("a", &filter)?.into_iter().map(|e| e.kind).collect::<Vec<_>>())
    })?;
    assert!(!filtered.is_empty());
    alike(&mut embedded, &on_postgres, "a channel name with a NUL", |s| {
        Ok(s.outbox("a", &OutboxFilter { channel: Some("fold\0".into()), limit: 10, ..Default::default() })?.len())
    })?;
    alike(&mut embedded, &on_postgres, "channels with work", |s| Ok(s.channels_with_work()?))?;
    alike(&mut embedded, &on_postgres, "a channel given up", |s| Ok(s.give_up_channel("a", "fold", "gone", now)?))?;
    alike(&mut embedded, &on_postgres, "the end", |s| seen(&s, "a"))?;
    Ok(())
}

/// What one node claims, a few at a time, until nothing is left.
fn claim_all(store: &SharedStore, now: i64) -> anyhow::Result<Vec<i64>> {
    let mut taken = Vec::new();
    loop {
        let claimed = store.claim_channel("a", "now", now, 60_000, 7)?;
        if claimed.is_empty() {
            return Ok(taken);
        }
        taken.extend(claimed.into_iter().map(|e| e.id));
    }
}

#[test]
fn two_nodes_claiming_at_once_take_each_notification_once() -> anyhow::Result<()> {
    let pg = pg()?;
    let dir = tempfile::tempdir()?;
    let book = routes(dir.path())?;
    let (one, two) = (shared(&pg, &book)?, shared(&pg, &book)?);
    let batch: Vec<_> = (1..=300).map(|id| found(id, &format!("h{id}"), Severity::Critical)).collect();
    commit(&mut &one, "a", &batch, 1_000)?;
    let now = now_ms();
    let claims = std::thread::scope(|scope| {
        let first = scope.spawn(|| claim_all(&one, now));
        let second = scope.spawn(|| claim_all(&two, now));
        (first.join(), second.join())
    });
    let (Ok(first), Ok(second)) = claims else { anyhow::bail!("a claiming thread panicked") };
    let (first, second) = (first?, second?);
    let (a, b): (BTreeSet<i64>, BTreeSet<i64>) = (first.iter().copied().collect(), second.iter().copied().collect());
    assert_eq!(a.len() + b.len(), first.len() + second.len(), "a node claimed one twice");
    assert!(a.is_disjoint(&b), "both nodes claimed {:?}", a.intersection(&b).collect::<Vec<_>>());
    assert_eq!(a.len() + b.len(), 300, "claimed {} and {}", a.len(), b.len());
    // A node that died mid-send: its rows come back when the lease ends.
    assert!(two.claim_channel("a", "now", now + 59_999, 60_000, 1_000)?.is_empty());
    let again = two.claim_channel("a", "now", now + 60_000, 60_000, 1_000)?;
    assert_eq!(again.len(), 300);
    // The try whose result was never recorded counts: the resend is attempt 2.
    assert!(again.iter().all(|e| e.attempts == 1), "{:?}", again.first().map(|e| e.attempts));
    Ok(())
}

#[test]
fn a_units_and_a_runs_anomalies_reach_the_receiver_once_whichever_node_sends() -> anyhow::Result<()> {
    let pg = pg()?;
    pg.0.append("alpha", "dns", &generator::to_rows(&generator::generate("dns", 71, 2_000)?))?;
    pg.0.append("alpha", "firewall", &generator::to_rows(&generator::generate("firewall", 72, 2_000)?))?;
    let api = api_on(&pg, &["alpha", "beta"])?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    let channel = webhook(&receiver, json!({"dedup_window_s": 0, "rate_per_minute": 60000}));
    ok(put(&api, "alpha", "/v1/notifications/channels/soc", channel)?, StatusCode::CREATED)?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "soc"}))?, StatusCode::CREATED)?;

    // A worker node runs alpha's DNS backfill as a unit, with the routes
    // of the control store it shares with the server.
    let worker = pg.run_dns_unit("alpha", Some(Arc::new(RouteBook::open(&api.state.config.control_db())?)))?;
    let from_unit = worker.anomaly_keys("alpha")?.len();
    anyhow::ensure!(from_unit > 0, "the unit found nothing to notify about");

    // And a run through the server's API.
    let admin = api.token("alpha", Role::TenantAdmin);
    let run = ok(api.call("POST", "/v1/runs", Some(admin), Some(r#"{"agent":"firewall"}"#))?, StatusCode::ACCEPTED)?;
    let id = run["id"].as_str().unwrap_or_default().to_string();
    let from_run = loop {
        let status = api.get(&format!("/v1/runs/{id}"), admin)?.body;
        if status["state"] == "completed" {
            break status["counters"]["anomalies"].as_u64().unwrap_or_default();
        }
        anyhow::ensure!(status["state"] != "failed", "{status}");
        std::thread::sleep(Duration::from_millis(20));
    };
    anyhow::ensure!(from_run > 0, "the run found nothing to notify about");
    let expected = from_unit + usize::try_from(from_run)?;

    // This server and another node deliver at once from the one outbox.
    let (mine, theirs) = deliver_from_two_nodes(&api)?;
    let accepted = receiver.accepted();
    let distinct: BTreeSet<_> = accepted.iter().collect();
    assert_eq!((accepted.len(), distinct.len()), (expected, expected), "each anomaly once (sent {mine} and {theirs})");
    assert_eq!(mine + theirs, expected, "a notification was handled by both nodes");

    // The outbox is the tenant's own, through the API.
    let page = api.get("/v1/notifications/outbox?state=delivered&limit=5", api.token("alpha", Role::ReadOnly))?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(5), "{}", page.body);
    let one = page.body["items"][0]["id"].as_i64().unwrap_or_default();
    let shown = api.get(&format!("/v1/notifications/outbox/{one}"), api.token("alpha", Role::ReadOnly))?;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let beta = api.token("beta", Role::TenantAdmin);
    let theirs = api.get("/v1/notifications/outbox", beta)?;
    assert_eq!(theirs.body["items"].as_array().map(Vec::len), Some(0), "{}", theirs.body);
    crate::api::problem(
        &api.get(&format!("/v1/notifications/outbox/{one}"), beta)?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let retried = api.call("POST", &format!("/v1/notifications/outbox/{one}/retry"), Some(beta), None)?;
    crate::api::problem(&retried, StatusCode::NOT_FOUND, "not_found");
    Ok(())
}

#[test]
fn a_channels_rate_limit_holds_across_nodes() -> anyhow::Result<()> {
    let pg = pg()?;
    let api = api_on(&pg, &["alpha"])?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    let channel = webhook(&receiver, json!({"dedup_window_s": 0, "rate_per_minute": 6}));
    ok(put(&api, "alpha", "/v1/notifications/channels/soc", channel)?, StatusCode::CREATED)?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "soc"}))?, StatusCode::CREATED)?;
    let store = shared(&pg, &Arc::new(RouteBook::open(&api.state.config.control_db())?))?;
    let storm: Vec<_> = (1..=20).map(|id| found(id, &format!("10.0.0.{id}"), Severity::Critical)).collect();
    assert_eq!(commit(&mut &store, "alpha", &storm, 100)?, 20);

    // Two nodes deliver at once: together they send one minute's allowance.
    let (mine, theirs) = deliver_from_two_nodes(&api)?;
    assert_eq!(
        receiver.accepted().len(),
        6,
        "the channel's 6 a minute were sent by each node (handled {mine} and {theirs})"
    );
    let waiting =
        store.outbox("alpha", &OutboxFilter { state: Some(OutboxState::Pending), limit: 100, ..Default::default() })?;
    assert_eq!(waiting.len(), 14);
    assert!(waiting.iter().all(|e| e.attempts == 0 && e.next_attempt_ms > now_ms()), "held, not failed: {waiting:?}");
    Ok(())
}

#[test]
fn a_node_that_lacks_a_channel_leaves_its_notifications_to_the_node_that_has_it() -> anyhow::Result<()> {
    let pg = pg()?;
    let api = api_on(&pg, &["alpha"])?;
    let receiver = HttpReceiver::start(Some(KEY), Mode::Ok)?;
    let channel = webhook(&receiver, json!({"dedup_window_s": 0, "rate_per_minute": 60000}));
    ok(put(&api, "alpha", "/v1/notifications/channels/soc", channel)?, StatusCode::CREATED)?;
    ok(put(&api, "alpha", "/v1/notifications/routes/all", json!({"channel": "soc"}))?, StatusCode::CREATED)?;
    let store = shared(&pg, &Arc::new(RouteBook::open(&api.state.config.control_db())?))?;
    let batch: Vec<_> = (1..=5).map(|id| found(id, &format!("10.0.0.{id}"), Severity::Critical)).collect();
    commit(&mut &store, "alpha", &batch, 10)?;

    // A node with a control store of its own, which never heard of `soc`.
    let elsewhere = tempfile::tempdir()?;
    let other_config =
        mcp_engine::config::McpConfig { data_dir: elsewhere.path().to_path_buf(), ..api.state.config.clone() };
    let other_node = mcp_notify::Deliverer::open(&other_config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    assert_eq!(runtime.block_on(other_node.drain())?, 0);
    let pending = OutboxFilter { state: Some(OutboxState::Pending), limit: 100, ..Default::default() };
    assert_eq!(store.outbox("alpha", &pending)?.len(), 5, "another node's channel was dead-lettered");
    assert_eq!(api.deliver()?, 5);
    assert_eq!(receiver.accepted().len(), 5);
    Ok(())
}
