//! The control store on PostgreSQL (`control_store = "postgres"`) against
//! the embedded one: the same calls keep and answer the same records, and
//! servers sharing the PostgreSQL one share tenants, tokens, settings and
//! channels.

use axum::http::StatusCode;
use mcp_engine::config::StoreKind;
use mcp_storage::control::{Caller, ControlError, ControlStore, Role};
use mcp_storage::control_sql::PgControl;
use mcp_storage::notify::channels::ChannelDeletion;
use mcp_storage::notify::{ChannelRecord, Managed, RouteRecord};
use mcp_storage::quarantine::Quarantine;
use serde_json::json;

use crate::api::{Api, api_configured};
use crate::postgres::{Pg, database_url, pg};

fn on_postgres(pg: &Pg, local: &std::path::Path) -> anyhow::Result<ControlStore> {
    let shared = PgControl::connect(&database_url(), Some(&pg.schema()?))?;
    Ok(ControlStore::open_shared(shared, local)?)
}

fn channel(tenant: &str, name: &str, enabled: bool) -> ChannelRecord {
    ChannelRecord {
        tenant: tenant.into(),
        name: name.into(),
        kind: "log".into(),
        spec: "{\"kind\":\"log\"}".into(),
        dedup_window_ms: 60_000,
        rate_per_minute: 30,
        enabled,
        managed_by: Managed::Api,
        updated_ms: 0,
    }
}

fn route(name: &str, channel: &str) -> RouteRecord {
    RouteRecord {
        name: name.into(),
        channel: channel.into(),
        severities: vec!["high".into(), "critical".into()],
        agents: vec!["dns".into()],
        log_types: vec![],
        labels: vec![],
        min_score: 0.75,
    }
}

/// Every kind of record the control store keeps, written, changed, read
/// and deleted, with what each call answered (times left out: the two
/// stores run a moment apart).
fn exercise(control: &ControlStore) -> anyhow::Result<Vec<String>> {
    let mut said = Vec::new();
    let mut say = |what: &str, answer: String| said.push(format!("{what}: {answer}"));

    // Tenants and tokens.
    say("bad tenant", format!("{:?}", control.ensure_tenant("Bad Name").err().map(|e| e.to_string())));
    control.ensure_tenant("alpha")?;
    control.ensure_tenant("alpha")?;
    let admin = control.create_token("alpha", Role::Admin)?;
    let (reader_id, reader) = control.create_named_token("alpha", Role::ReadOnly, "ci reader", Some(1))?;
    let beta = control.create_token("beta", Role::TenantAdmin)?;
    say("tenants", format!("{:?}", control.tenants()?));
    say("token count", control.token_count()?.to_string());
    let caller = control.authenticate(&admin)?.ok_or_else(|| anyhow::anyhow!("admin token refused"))?;
    say("admin", format!("{caller:?}"));
    say("reader", format!("{:?}", control.authenticate(&reader)?));
    say("forged", format!("{:?}", control.authenticate("mcp_forged")?));
    let tokens = control.tokens("alpha")?;
    let shown: Vec<_> =
        tokens.iter().map(|t| (t.id, &t.name, &t.role, t.created_by, t.last_used_ms.is_some())).collect();
    say("alpha's tokens", format!("{shown:?}"));
    say(
        "reader role",
        format!("{:?} {:?}", control.token_role("alpha", reader_id)?, control.token_role("beta", reader_id)?),
    );
    say("revoke as beta", control.revoke_token("beta", reader_id)?.to_string());
    say("revoke", control.revoke_token("alpha", reader_id)?.to_string());
    say("revoked reader", format!("{:?}", control.authenticate(&reader)?));
    say("disable", control.set_tenant_disabled("beta", true)?.to_string());
    say("disabled beta's token", format!("{:?}", control.authenticate(&beta)?));
    let records: Vec<_> =
        control.tenant_records()?.into_iter().map(|t| (t.name, t.disabled_ms.is_some(), t.tokens)).collect();
    say("tenant records", format!("{records:?}"));
    control.set_tenant_disabled("beta", false)?;
    say("enabled beta's token", format!("{:?}", control.authenticate(&beta)?.map(|c| c.tenant)));

    // Uploads, flags, grants.
    control.record_upload("alpha", "mine", "aa")?;
    control.record_upload("alpha", "mine", "bb")?;
    say("uploads", format!("{:?}", control.uploads()?));
    say("enabled by default", control.agent_enabled("alpha", "mine")?.to_string());
    control.set_agent_enabled("alpha", "mine", false)?;
    say("disabled", control.agent_enabled("alpha", "mine")?.to_string());
    control.request_grant("alpha", "mine", "bb", "{\"models\":[]}")?;
    say("approve another component", control.approve_grant("alpha", "mine", "cc", caller.token_id)?.to_string());
    say("approve", control.approve_grant("alpha", "mine", "bb", caller.token_id)?.to_string());
    let grant = control.grant("alpha", "mine")?;
    say("grant", format!("{:?}", grant.map(|g| (g.sha256, g.manifest, g.approved.map(|(_, by)| by)))));
    control.forget_upload("alpha", "mine")?;
    say(
        "forgotten",
        format!(
            "{:?} {:?} {}",
            control.uploads()?,
            control.grant("alpha", "mine")?,
            control.agent_enabled("alpha", "mine")?
        ),
    );

    // Settings: a change is kept whole or refused whole, and audited.
    let changes =
        [("batch_size".to_string(), Some("250".to_string())), ("agents.dns.x".to_string(), Some("1".to_string()))];
    control.change_settings(&caller, &changes, 10)?;
    let too_many: Vec<_> = (0..9).map(|n| (format!("k{n}"), Some("v".to_string()))).collect();
    say("too many", format!("{:?}", control.change_settings(&caller, &too_many, 10).err().map(|e| e.to_string())));
    control.change_settings(&caller, &[("agents.dns.x".to_string(), None)], 10)?;
    control.set_setting("alpha", "agents.dns.y", "nul\0inside")?;
    say("settings", format!("{:?}", control.settings("alpha")?));
    control.audit(&caller, "agent.upload", "mine")?;
    let nobody = Caller { token_id: 0, tenant: "nobody".into(), role: Role::DeploymentAdmin };
    control.audit_everywhere(&nobody, "model.activate", "dns 2")?;
    let trail: Vec<_> =
        control.audit_trail("alpha", None, 10)?.into_iter().map(|a| (a.token_id, a.action, a.detail)).collect();
    say("alpha's trail", format!("{trail:?}"));
    let newest = control.audit_trail("alpha", None, 1)?;
    let older = control.audit_trail("alpha", newest.first().map(|a| a.id), 2)?;
    say("older page", format!("{:?}", older.into_iter().map(|a| a.action).collect::<Vec<_>>()));
    say(
        "beta's trail",
        format!("{:?}", control.audit_trail("beta", None, 10)?.into_iter().map(|a| a.action).collect::<Vec<_>>()),
    );

    // Budgets.
    control.set_budget_override("alpha", "fuel", Some(u64::MAX))?;
    control.set_budget_override("alpha", "memory_bytes", Some(1 << 26))?;
    control.set_budget_override("alpha", "fuel", None)?;
    say("budgets", format!("{:?}", control.budget_overrides("alpha")?));

    // Faults and quarantine: the newest 100 faults are kept.
    for n in 0..105 {
        control.record_fault("alpha", "dns", 1_000 + n, "trap", &format!("fault {n}\0"))?;
    }
    say("faults since", control.faults_since("alpha", "dns", 1_050)?.to_string());
    say("recent", format!("{:?}", control.recent_faults("alpha", "dns", 2)?));
    let held = Quarantine { since_ms: 5, until_ms: 500, level: 3, reason: "traps".into() };
    control.set_quarantine("alpha", "dns", &held)?;
    say("quarantine", format!("{:?}", control.quarantine("alpha", "dns")?));
    say("release at 100", control.release_quarantine("alpha", "dns", 100, false)?.to_string());
    say("released", format!("{:?} {}", control.quarantine("alpha", "dns")?, control.faults_since("alpha", "dns", 0)?));
    say("forget", control.release_quarantine("alpha", "dns", 100, true)?.to_string());
    say("forgotten quarantine", format!("{:?}", control.quarantine("alpha", "dns")?));

    // Channels and routes, and the routes a commit reads.
    say("new channel", control.put_notify_channel(&channel("alpha", "ops", true))?.to_string());
    say("same channel", control.put_notify_channel(&channel("alpha", "ops", true))?.to_string());
    control.put_notify_channel(&channel("alpha", "quiet", false))?;
    control.put_notify_route("alpha", &route("crit", "ops"), Managed::Api)?;
    control.put_notify_route("alpha", &route("hushed", "quiet"), Managed::Api)?;
    let listed: Vec<_> =
        control.notify_channels("alpha")?.into_iter().map(|c| (c.name, c.enabled, c.rate_per_minute)).collect();
    say("channels", format!("{listed:?}"));
    say("enabled channels", format!("{:?}", control.enabled_notify_channels()?));
    say("all channels", format!("{:?}", control.all_notify_channels()?));
    say("one channel", format!("{:?}", control.notify_channel("alpha", "ops")?.map(|c| c.dedup_window_ms)));
    say("routes", format!("{:?}", control.notify_routes("alpha")?));
    let book = control.route_book()?;
    let anomaly = mcp_columns::Anomaly {
        agent: "dns".into(),
        log_id: 1,
        log_type: "dns".into(),
        source: "10.0.0.1".into(),
        log_timestamp_ms: 0,
        score: 0.9,
        label: "dga".into(),
        severity: mcp_columns::Severity::High,
        reason: "r".into(),
        detected_at_ms: 0,
    };
    let routed = book.routes("alpha")?;
    say("routed to", format!("{:?}", routed.channels_for(&anomaly)));
    say("beta routed", book.routes("beta")?.is_empty().to_string());
    say("delete used channel", format!("{:?}", control.delete_notify_channel("alpha", "ops")?));
    control
        .seed_notifications(&[channel("alpha", "from-file", true)], &[("alpha".into(), route("filed", "from-file"))])?;
    control.seed_notifications(&[channel("alpha", "from-file", true)], &[])?;
    let managed: Vec<_> = control.notify_channels("alpha")?.into_iter().map(|c| (c.name, c.managed_by)).collect();
    say(
        "after seeding",
        format!("{managed:?} {:?}", control.notify_routes("alpha")?.into_iter().map(|r| r.0.name).collect::<Vec<_>>()),
    );
    say("delete route", control.delete_notify_route("alpha", "crit")?.to_string());
    let deleted = control.delete_notify_channel("alpha", "ops")?;
    say("delete channel", format!("{:?}", deleted == ChannelDeletion::Deleted));

    // A deleted tenant's name is never given again, and its channels (with
    // their secrets) go with it.
    control.put_notify_channel(&channel("beta", "theirs", true))?;
    control.put_notify_route("beta", &route("theirs", "theirs"), Managed::Api)?;
    say("delete beta", control.delete_tenant("beta")?.to_string());
    say("beta's channels", format!("{:?} {:?}", control.notify_channels("beta")?, control.notify_routes("beta")?));
    say("delete beta again", control.delete_tenant("beta")?.to_string());
    say("was deleted", control.was_deleted("beta")?.to_string());
    say(
        "beta again",
        format!("{:?}", control.ensure_tenant("beta").err().map(|e| matches!(e, ControlError::DeletedTenant(_)))),
    );
    say("beta's token after deletion", format!("{:?}", control.authenticate(&beta)?));
    say("ping", format!("{:?}", control.ping().is_ok()));
    Ok(said)
}

#[test]
fn the_control_store_keeps_the_same_records_on_sqlite_and_postgres() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let embedded = exercise(&ControlStore::open(&dir.path().join("control.db"))?)?;
    let pg = pg()?;
    let shared = on_postgres(&pg, &dir.path().join("node.db"))?;
    anyhow::ensure!(shared.is_shared(), "the store is not on PostgreSQL");
    let on_postgres = exercise(&shared)?;
    for (sqlite, postgres) in embedded.iter().zip(&on_postgres) {
        assert_eq!(sqlite, postgres, "SQLite, then PostgreSQL");
    }
    assert_eq!(embedded.len(), on_postgres.len());
    // What the test compares says something: the records were there.
    assert!(embedded.iter().any(|line| line.contains("nul\u{FFFD}inside")), "{embedded:#?}");
    assert!(embedded.iter().any(|line| line.starts_with("routed to: [(\"ops\"")), "{embedded:#?}");
    Ok(())
}

/// Two API servers (two nodes) on one PostgreSQL control store, each with
/// its own data folder.
fn two_nodes(pg: &Pg) -> anyhow::Result<(Api, Api)> {
    let node = || {
        let schema = pg.schema()?;
        let cache = mcp_storage::jobstatus::SharedCache::open(None, "", Default::default())?;
        api_configured(cache, &["alpha", "beta"], |config, _| {
            config.database_url = Some(database_url());
            config.database_schema = Some(schema);
            config.control_store = StoreKind::Postgres;
            Ok(())
        })
    };
    Ok((node()?, node()?))
}

#[test]
fn servers_on_one_postgres_control_store_share_tokens_settings_tenants_and_channels() -> anyhow::Result<()> {
    let pg = pg()?;
    let (first, second) = two_nodes(&pg)?;
    let alpha_admin = first.token("alpha", Role::Admin);

    // A token made through one node works on the other at once.
    let made =
        first.call("POST", "/v1/tokens", Some(alpha_admin), Some(r#"{"name":"made on one","role":"read_only"}"#))?;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let token = made.body["token"].as_str().unwrap_or_default().to_string();
    let read = second.get("/v1/config", &token)?;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);

    // A setting changed through one is the other's.
    let changed = first.call("PATCH", "/v1/config", Some(alpha_admin), Some(r#"{"batch_size":321}"#))?;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(second.get("/v1/config", &token)?.body["batch_size"], 321);
    let audit = second.get("/v1/audit", second.token("alpha", Role::TenantAdmin))?;
    let actions: Vec<_> = audit.body["items"].as_array().into_iter().flatten().map(|a| a["action"].clone()).collect();
    assert_eq!(actions, [json!("config.change"), json!("token.create")], "{}", audit.body);
    let nul = first.call("PATCH", "/v1/config", Some(alpha_admin), Some(r#"{"agents":{"dns":{"x":"a\u0000b"}}}"#))?;
    crate::api::problem(&nul, StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting");

    // A channel and route made through one are listed, and routed, by the other.
    let body = json!({"kind": "log", "dedup_window_s": 0}).to_string();
    let put = first.call("PUT", "/v1/notifications/channels/ops", Some(alpha_admin), Some(&body))?;
    assert!(put.status.is_success(), "{}", put.body);
    let route = json!({"channel": "ops", "severities": ["critical"]}).to_string();
    let put = first.call("PUT", "/v1/notifications/routes/crit", Some(alpha_admin), Some(&route))?;
    assert!(put.status.is_success(), "{}", put.body);
    let listed = second.get("/v1/notifications/channels", &token)?;
    assert_eq!(listed.body["items"][0]["name"], "ops", "{}", listed.body);
    let book = second.state.control.route_book()?;
    assert!(!book.routes("alpha")?.is_empty(), "the other node reads the route");
    assert!(book.routes("beta")?.is_empty(), "another tenant's routes are its own");
    let beta_sees = second.get("/v1/notifications/channels", second.token("beta", Role::ReadOnly))?;
    assert_eq!(beta_sees.body["items"], json!([]), "{}", beta_sees.body);

    // A token the other node has used stops there within its cache's half
    // minute (docs/scaling.md); the shared store refuses it at once.
    let id = made.body["id"].as_i64().unwrap_or_default();
    let revoked = first.call("DELETE", &format!("/v1/tokens/{id}"), Some(alpha_admin), None)?;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    let shared = PgControl::connect(&database_url(), Some(&pg.schema()?))?;
    let another = ControlStore::open_shared(shared, &tempfile::tempdir()?.path().join("node.db"))?;
    assert!(another.authenticate(&token)?.is_none(), "the revoked token is gone from the shared store");
    // A change asks the store, not the node's memory: the revoked token
    // mints nothing on the node that remembers it, and is forgotten there.
    let minted = second.call("POST", "/v1/tokens", Some(&token), Some(r#"{"name":"persist","role":"read_only"}"#))?;
    assert_eq!(minted.status, StatusCode::UNAUTHORIZED, "{}", minted.body);
    assert_eq!(second.get("/v1/config", &token)?.status, StatusCode::UNAUTHORIZED);
    // A tenant disabled through one node is refused by the other, for a
    // token the other had not cached.
    let beta = first.token("beta", Role::ReadOnly);
    let deployment = first.token(crate::api::DEPLOYMENT, Role::DeploymentAdmin);
    let disabled = first.call("POST", "/v1/tenants/beta/disable", Some(deployment), None)?;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert_eq!(second.get("/v1/config", beta)?.status, StatusCode::UNAUTHORIZED);
    let tenants = second.get("/v1/tenants", second.token(crate::api::DEPLOYMENT, Role::DeploymentAdmin))?;
    let beta_record = tenants.body.as_array().and_then(|all| all.iter().find(|t| t["name"] == "beta").cloned());
    assert!(beta_record.is_some_and(|t| t["disabled_ms"].is_i64()), "{}", tenants.body);

    // Two nodes creating one tenant at once: one creates it, one is told.
    for round in 0..5 {
        let body = format!(r#"{{"name":"race-{round}"}}"#);
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| first.call("POST", "/v1/tenants", Some(deployment), Some(&body)));
            let b = scope.spawn(|| {
                second.call(
                    "POST",
                    "/v1/tenants",
                    Some(second.token(crate::api::DEPLOYMENT, Role::DeploymentAdmin)),
                    Some(&body),
                )
            });
            (a.join(), b.join())
        });
        let mut statuses =
            [a.map_err(|_| anyhow::anyhow!("panicked"))??.status, b.map_err(|_| anyhow::anyhow!("panicked"))??.status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "round {round}");
    }
    // A tenant deleted through one node while its admin makes a token
    // through the other: one of them wins, neither fails.
    for round in 0..10 {
        let made =
            first.call("POST", "/v1/tenants", Some(deployment), Some(&format!(r#"{{"name":"doomed-{round}"}}"#)))?;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        let admin = made.body["admin_token"]["token"].as_str().unwrap_or_default().to_string();
        let (deleted, minted) = std::thread::scope(|scope| {
            let deleted =
                scope.spawn(|| first.call("DELETE", &format!("/v1/tenants/doomed-{round}"), Some(deployment), None));
            let minted = scope.spawn(|| {
                second.call("POST", "/v1/tokens", Some(&admin), Some(r#"{"name":"late","role":"read_only"}"#))
            });
            (deleted.join(), minted.join())
        });
        let deleted = deleted.map_err(|_| anyhow::anyhow!("panicked"))??;
        let minted = minted.map_err(|_| anyhow::anyhow!("panicked"))??;
        assert!(deleted.status.is_success(), "round {round}: delete {} {}", deleted.status, deleted.body);
        assert!(
            [StatusCode::CREATED, StatusCode::UNAUTHORIZED, StatusCode::CONFLICT].contains(&minted.status),
            "round {round}: token {} {}",
            minted.status,
            minted.body
        );
        assert!(
            second.state.control.tokens(&format!("doomed-{round}"))?.is_empty(),
            "round {round}: a token outlived its tenant"
        );
    }

    // A channel deleted through one node while a route to it is made
    // through the other: never a route to a missing channel.
    let admin_two = second.token("alpha", Role::Admin);
    for round in 0..8 {
        let channel = format!("gone-{round}");
        let body = json!({"kind": "log"}).to_string();
        let made =
            first.call("PUT", &format!("/v1/notifications/channels/{channel}"), Some(alpha_admin), Some(&body))?;
        assert!(made.status.is_success(), "{}", made.body);
        let route = json!({"channel": channel}).to_string();
        let (deleted, routed) = std::thread::scope(|scope| {
            let deleted = scope.spawn(|| {
                first.call("DELETE", &format!("/v1/notifications/channels/{channel}"), Some(alpha_admin), None)
            });
            let routed = scope.spawn(|| {
                second.call("PUT", &format!("/v1/notifications/routes/to-{round}"), Some(admin_two), Some(&route))
            });
            (deleted.join(), routed.join())
        });
        let deleted = deleted.map_err(|_| anyhow::anyhow!("panicked"))??.status;
        let routed = routed.map_err(|_| anyhow::anyhow!("panicked"))??.status;
        let routes = second.state.control.notify_routes("alpha")?;
        let dangling = routes.iter().any(|(r, _)| r.channel == channel)
            && second.state.control.notify_channel("alpha", &channel)?.is_none();
        assert!(!dangling, "round {round}: delete {deleted}, route {routed}");
        assert!(
            (deleted == StatusCode::NO_CONTENT && routed == StatusCode::UNPROCESSABLE_ENTITY)
                || (deleted == StatusCode::CONFLICT && routed == StatusCode::CREATED),
            "round {round}: delete {deleted}, route {routed}"
        );
    }

    // Channels made through both nodes at once stop at the tenant's limit
    // (50), and one made on both at once is new to one of them only.
    let have = second.state.control.notify_channels("alpha")?.len();
    let statuses: Vec<StatusCode> = std::thread::scope(|scope| {
        let puts: Vec<_> = (0..(56 - have))
            .map(|n| {
                let (api, token) = if n % 2 == 0 { (&first, alpha_admin) } else { (&second, admin_two) };
                scope.spawn(move || {
                    let body = json!({"kind": "log"}).to_string();
                    api.call("PUT", &format!("/v1/notifications/channels/many-{n}"), Some(token), Some(&body))
                        .map(|reply| reply.status)
                })
            })
            .collect();
        puts.into_iter().map(|put| put.join().ok().and_then(Result::ok).unwrap_or_default()).collect()
    });
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    assert_eq!(created, 50 - have, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 6, "{statuses:?}");
    assert_eq!(second.state.control.notify_channels("alpha")?.len(), 50);
    let enabled = first.call("POST", "/v1/tenants/beta/enable", Some(deployment), None)?;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    for round in 0..5 {
        let uri = format!("/v1/notifications/channels/twice-{round}");
        let body = json!({"kind": "log"}).to_string();
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| first.call("PUT", &uri, Some(first.token("beta", Role::Admin)), Some(&body)));
            let b = scope.spawn(|| second.call("PUT", &uri, Some(second.token("beta", Role::Admin)), Some(&body)));
            (a.join(), b.join())
        });
        let a = a.map_err(|_| anyhow::anyhow!("panicked"))??;
        let b = b.map_err(|_| anyhow::anyhow!("panicked"))??;
        let mut both = [a.status, b.status];
        both.sort();
        assert_eq!(both, [StatusCode::OK, StatusCode::CREATED], "round {round}: {} {}", a.body, b.body);
    }

    // Every node answers readiness with the shared store reachable.
    assert_eq!(second.get("/readyz", "")?.status, StatusCode::OK);
    Ok(())
}

/// What a control store holds, read through its own calls.
fn snapshot(control: &ControlStore) -> anyhow::Result<Vec<String>> {
    let mut seen = vec![format!("{:?}", control.tenant_records()?), format!("{:?}", control.uploads()?)];
    for tenant in control.tenants()? {
        seen.push(format!("{:?}", control.tokens(&tenant)?));
        seen.push(format!("{:?}", control.settings(&tenant)?));
        seen.push(format!("{:?}", control.budget_overrides(&tenant)?));
        seen.push(format!("{:?}", control.audit_trail(&tenant, None, 1000)?));
        seen.push(format!("{:?}", control.notify_channels(&tenant)?));
        seen.push(format!("{:?}", control.notify_routes(&tenant)?));
        for agent in ["dns", "mine"] {
            seen.push(format!("{:?}", control.quarantine(&tenant, agent)?));
            seen.push(format!("{:?}", control.recent_faults(&tenant, agent, 1000)?));
            seen.push(format!("{:?}", control.grant(&tenant, agent)?.map(|g| (g.sha256, g.approved))));
            seen.push(format!("{:?}", control.agent_enabled(&tenant, agent)?));
        }
    }
    seen.push(format!("{:?}", control.was_deleted("beta")?));
    Ok(seen)
}

#[test]
fn a_nodes_control_records_are_copied_into_postgres_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let embedded = ControlStore::open(&dir.path().join("control.db"))?;
    exercise(&embedded)?;
    embedded.ensure_tenant("gamma")?;
    let kept = embedded.create_token("gamma", Role::TenantAdmin)?;
    embedded.set_agent_enabled("gamma", "dns", false)?;
    embedded.record_upload("gamma", "mine", "ab")?;
    embedded.request_grant("gamma", "mine", "ab", "{}")?;
    let pg = pg()?;
    let shared = on_postgres(&pg, &dir.path().join("node.db"))?;
    let copied = mcp_storage::control_copy::copy_control_records(&embedded, &shared)?;
    assert!(copied.iter().any(|(table, rows)| *table == "audit" && *rows > 0), "{copied:?}");
    assert_eq!(snapshot(&embedded)?, snapshot(&shared)?, "SQLite, then PostgreSQL after the copy");
    let caller = shared.authenticate(&kept)?.ok_or_else(|| anyhow::anyhow!("a copied token is refused"))?;
    assert_eq!((caller.tenant.as_str(), caller.role), ("gamma", Role::TenantAdmin));
    // New ids come after the copied ones.
    let newest = embedded.tokens("gamma")?.iter().map(|t| t.id).max().unwrap_or_default();
    let (id, _) = shared.create_named_token("gamma", Role::ReadOnly, "after", None)?;
    assert!(id > newest, "token {id} after the copied {newest}");
    let refused = mcp_storage::control_copy::copy_control_records(&embedded, &shared);
    assert!(matches!(refused, Err(ControlError::NotEmpty)), "{refused:?}");
    Ok(())
}
