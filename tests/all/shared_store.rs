//! The anomaly store on PostgreSQL (`anomaly_store = "postgres"`) against
//! the embedded one: the same runs give the same anomalies, pages, charts,
//! checkpoints and agent states in both; and with it, every node's API
//! serves what the nodes' units and its own runs stored.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use mcp_engine::config::StoreKind;
use mcp_engine::pipeline::{self, RunSpec};
use mcp_storage::control::Role;
use mcp_storage::export_scan::ExportFilter;
use mcp_storage::histogram::HistogramGroup;
use mcp_storage::reads::AnomalyReads;
use mcp_storage::run_store::RunStore;
use mcp_storage::shared_store::SharedStore;
use mcp_storage::source::{LogSource, RetryPolicy};
use mcp_storage::store::{AnomalyQuery, AnomalyRecord, AnomalySort, AnomalyStore, CheckpointKey};
use mcp_synth as generator;

use crate::api::{api_configured, problem};
use crate::common::{bundled_registry, sandbox};
use crate::postgres::{Pg, database_url, pg};

fn shared(pg: &Pg) -> anyhow::Result<SharedStore> {
    pg.shared_store()
}

const AGENTS: [&str; 3] = ["dns", "firewall", "wifi"];

fn spec<'a>(tenant: &'a str, agent: &'a str, log_source: &'a str) -> RunSpec<'a> {
    RunSpec { tenant, agent, log_source, batch_size: 400, replay_ms: 120_000, up_to_id: None, follow: None }
}

/// Every page of `query`, following the cursors as a client does.
fn all_pages(store: AnomalyReads<'_>, query: &AnomalyQuery) -> anyhow::Result<Vec<AnomalyRecord>> {
    let mut query = query.clone();
    let mut records = Vec::new();
    loop {
        let page = store.query(&query)?;
        let Some(last) = page.last() else { break };
        query.after = Some(match query.sort {
            AnomalySort::Time => (last.log_ts_ms as f64, last.id),
            AnomalySort::Score => (last.score, last.id),
        });
        let full = page.len() == query.limit as usize;
        records.extend(page);
        if !full {
            break;
        }
    }
    // When each was stored differs between two runs; the rest may not.
    Ok(records.into_iter().map(|r| AnomalyRecord { detected_at_ms: 0, ..r }).collect())
}

fn queries(tenant: &str, first_ms: i64) -> Vec<AnomalyQuery> {
    let base = AnomalyQuery {
        tenant: tenant.into(),
        agent: None,
        log_type: None,
        label: None,
        severity: None,
        source: None,
        min_score: None,
        from_ms: None,
        to_ms: None,
        sort: AnomalySort::Time,
        after: None,
        limit: 9,
    };
    vec![
        base.clone(),
        AnomalyQuery { sort: AnomalySort::Score, ..base.clone() },
        AnomalyQuery { agent: Some("dns".into()), ..base.clone() },
        AnomalyQuery { log_type: Some("wifi".into()), sort: AnomalySort::Score, ..base.clone() },
        AnomalyQuery { severity: Some("high".into()), ..base.clone() },
        AnomalyQuery { label: Some("port_scan".into()), min_score: Some(0.5), ..base.clone() },
        AnomalyQuery { from_ms: Some(first_ms + 60_000), to_ms: Some(first_ms + 3_600_000), ..base.clone() },
        AnomalyQuery { min_score: Some(0.9), sort: AnomalySort::Score, limit: 1, ..base.clone() },
    ]
}

#[test]
fn the_anomaly_store_on_postgres_answers_as_the_embedded_one() -> anyhow::Result<()> {
    let pg = pg()?;
    for (seed, agent) in AGENTS.iter().enumerate() {
        pg.0.append("t", agent, &generator::to_rows(&generator::generate(agent, 40 + seed as u64, 2_500)?))?;
    }
    pg.0.append("u", "dns", &generator::to_rows(&generator::generate("dns", 49, 1_000)?))?;
    let on_postgres = shared(&pg)?;
    let dir = tempfile::tempdir()?;
    let mut embedded = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    let registry = bundled_registry(sandbox())?;
    let source = pg.0.name();
    for (tenant, agent) in [("t", "dns"), ("t", "firewall"), ("t", "wifi"), ("u", "dns")] {
        for store in [&mut embedded as &mut dyn RunStore, &mut &on_postgres] {
            let mut instance = pipeline::instance_for(&registry, agent, tenant, Default::default(), None)?;
            pipeline::run(&registry, &mut instance, &pg.0, store, &spec(tenant, agent, source))?;
        }
    }
    let (embedded_reads, shared_reads) = (AnomalyReads::Embedded(&embedded), AnomalyReads::Shared(&on_postgres));

    for agent in AGENTS {
        let expected = embedded.anomalies("t", agent)?;
        assert!(!expected.is_empty(), "{agent} found nothing to compare");
        assert_eq!(on_postgres.anomalies("t", agent)?, expected, "{agent}");
        assert!(shared_reads.agent_has_anomalies("t", agent)?);
        let key = CheckpointKey { tenant: "t", agent, log_source: source, log_type: agent };
        assert_eq!((&on_postgres).checkpoint(&key)?, RunStore::checkpoint(&embedded, &key)?, "{agent}'s checkpoint");
        let build = registry.get(agent)?.sha256.clone();
        assert_eq!(
            (&on_postgres).agent_state(&key, &build)?.is_some(),
            RunStore::agent_state(&embedded, &key, &build)?.is_some(),
            "{agent}'s state"
        );
        assert_eq!((&on_postgres).agent_state(&key, "another build")?, None, "another build's state was given");
    }
    assert!(!shared_reads.agent_has_anomalies("u", "wifi")?);

    let first_ms = embedded_reads.query(&AnomalyQuery { sort: AnomalySort::Time, ..queries("t", 0)[0].clone() })?;
    let first_ms = first_ms.last().map_or(0, |r| r.log_ts_ms);
    for tenant in ["t", "u"] {
        for query in queries(tenant, first_ms) {
            let expected = all_pages(embedded_reads, &query)?;
            let unfiltered = [&query.agent, &query.log_type, &query.label, &query.severity].iter().all(|f| f.is_none())
                && query.from_ms.is_none()
                && query.min_score.is_none();
            assert!(!unfiltered || !expected.is_empty(), "nothing to compare for {query:?}");
            assert_eq!(all_pages(shared_reads, &query)?, expected, "{query:?}");
            for group in [HistogramGroup::Severity, HistogramGroup::Agent] {
                assert_eq!(
                    shared_reads.histogram(&query, group, 24)?,
                    embedded_reads.histogram(&query, group, 24)?,
                    "{group:?} {query:?}"
                );
            }
        }
    }
    // An export's walk, window by window, the same in both.
    let walk = |store: AnomalyReads<'_>, filter: &ExportFilter| -> anyhow::Result<Vec<AnomalyRecord>> {
        let filter = ExportFilter { up_to_id: Some(store.last_anomaly_id()?), ..filter.clone() };
        let (mut records, mut after, mut examined) = (Vec::new(), None, 0);
        loop {
            let window = store.export_window(&filter, after, 50)?;
            examined += window.examined;
            records.extend(window.records.into_iter().map(|r| AnomalyRecord { detected_at_ms: 0, ..r }));
            match window.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(examined, store.export_walk_length(&filter)?, "{filter:?}");
        Ok(records)
    };
    let everything = ExportFilter { tenant: "t".into(), ..ExportFilter::default() };
    for filter in [
        everything.clone(),
        ExportFilter { agents: vec!["dns".into(), "wifi".into()], min_score: Some(0.5), ..everything.clone() },
        ExportFilter { severities: vec!["high".into()], max_score: Some(0.99), ..everything.clone() },
        ExportFilter { labels: vec!["port_scan".into()], from_ms: Some(first_ms), ..everything.clone() },
    ] {
        let expected = walk(embedded_reads, &filter)?;
        assert_eq!(walk(shared_reads, &filter)?, expected, "{filter:?}");
    }
    assert_eq!(shared_reads.last_anomaly_id()?, embedded_reads.last_anomaly_id()?);

    let one = embedded_reads.query(&queries("t", 0)[0])?.remove(0);
    let got = shared_reads.get("t", one.id)?.map(|r| AnomalyRecord { detected_at_ms: 0, ..r });
    assert_eq!(got, Some(AnomalyRecord { detected_at_ms: 0, ..one.clone() }));
    assert_eq!(shared_reads.get("u", one.id)?, None, "another tenant's anomaly by id");

    // A second run resumes from the checkpoint and stores nothing again.
    let mut instance = pipeline::instance_for(&registry, "dns", "t", Default::default(), None)?;
    let again = pipeline::run(&registry, &mut instance, &pg.0, &mut &on_postgres, &spec("t", "dns", source))?;
    assert_eq!((again.entries, again.anomalies), (0, 0), "{again:?}");
    // Forgetting the state leaves the checkpoint; a commit without a
    // state keeps the one stored, an empty one removes it.
    let key = CheckpointKey { tenant: "t", agent: "wifi", log_source: source, log_type: "wifi" };
    let wifi_build = registry.get("wifi")?.sha256.clone();
    let checkpoint = (&on_postgres).checkpoint(&key)?;
    (&on_postgres).forget_agent_state(&key)?;
    assert_eq!((&on_postgres).agent_state(&key, &wifi_build)?, None);
    assert_eq!((&on_postgres).checkpoint(&key)?, checkpoint);
    let provenance = mcp_storage::store::Provenance { agent_sha256: &wifi_build, schema_version: 1, model: None };
    let mut writer = &on_postgres;
    writer.commit_with_state(&key, &provenance, &[], checkpoint, Some(b"kept"))?;
    writer.commit_with_state(&key, &provenance, &[], checkpoint + 1, None)?;
    assert_eq!((&on_postgres).agent_state(&key, &wifi_build)?.as_deref(), Some(&b"kept"[..]));
    writer.commit_with_state(&key, &provenance, &[], checkpoint + 2, Some(&[]))?;
    assert_eq!((&on_postgres).agent_state(&key, &wifi_build)?, None);
    assert_eq!((&on_postgres).checkpoint(&key)?, checkpoint + 2);
    Ok(())
}

#[test]
fn a_page_past_its_bound_on_postgres_is_refused_as_too_broad() -> anyhow::Result<()> {
    let pg = pg()?;
    let namespace = pg.0.namespace().unwrap_or_default().to_string();
    let slow =
        SharedStore::connect(&database_url(), Some(&namespace), 1, RetryPolicy::default(), Duration::from_millis(1))?;
    slow.migrate()?;
    // A chart of 50,000 anomalies counts every one of them whatever the
    // plan, far past 1 ms. (Kept small: planning a backfill in a test
    // beside this one waits for writing transactions to end.)
    let fill = "INSERT INTO {schema}.anomalies (tenant, agent, agent_sha256, log_type, log_id, source, log_ts_ms, score, label,
                  severity, reason, detected_at_ms, schema_version)
                SELECT 't', 'dns', '', 'dns', n, 's', n, 0.5, 'x', 'low', '', 0, 1 FROM generate_series(1, 50000) n";
    crate::cluster::execute(&pg, fill)?;
    let query = AnomalyQuery { limit: 5, ..queries("t", 0)[0].clone() };
    let refused = slow.histogram(&query, HistogramGroup::Severity, 24);
    assert!(matches!(&refused, Err(e) if e.too_broad()), "{refused:?}");
    // Under a 5 s bound the same data answers.
    let timely =
        SharedStore::connect(&database_url(), Some(&namespace), 1, RetryPolicy::default(), Duration::from_secs(5))?;
    assert_eq!(timely.query(&query)?.len(), 5);
    Ok(())
}

#[test]
fn every_node_serves_what_the_units_and_its_own_runs_stored_on_postgres() -> anyhow::Result<()> {
    let pg = pg()?;
    let namespace = pg.0.namespace().unwrap_or_default().to_string();
    pg.0.append("alpha", "dns", &generator::to_rows(&generator::generate("dns", 61, 2_000)?))?;
    pg.0.append("alpha", "firewall", &generator::to_rows(&generator::generate("firewall", 62, 2_000)?))?;
    // A worker node runs alpha's DNS backfill as a unit.
    let worker = pg.run_dns_unit("alpha", None)?;
    let stored: BTreeSet<_> = worker.anomaly_keys("alpha")?.into_iter().map(|(_, id, label)| (id, label)).collect();
    assert!(!stored.is_empty());

    let cache = mcp_storage::jobstatus::SharedCache::open(None, "", Default::default())?;
    let api = api_configured(cache, &["alpha", "beta"], |config, _| {
        config.database_url = Some(database_url());
        config.database_schema = Some(namespace.clone());
        config.anomaly_store = StoreKind::Postgres;
        Ok(())
    })?;
    let alpha = api.token("alpha", Role::TenantAdmin);
    let served = |agent: &str| -> anyhow::Result<Vec<serde_json::Value>> {
        let mut items = Vec::new();
        let mut uri = format!("/v1/anomalies?agent={agent}&limit=50");
        loop {
            let page = api.get(&uri, alpha)?;
            anyhow::ensure!(page.status == StatusCode::OK, "{}", page.body);
            items.extend(page.body["items"].as_array().cloned().unwrap_or_default());
            match page.body["next_cursor"].as_str() {
                Some(cursor) => uri = format!("/v1/anomalies?agent={agent}&limit=50&cursor={cursor}"),
                None => return Ok(items),
            }
        }
    };
    let dns = served("dns")?;
    let shown: BTreeSet<_> = dns
        .iter()
        .map(|a| (a["log_id"].as_u64().unwrap_or_default(), a["label"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(shown, stored, "the API does not serve what the unit stored");
    // Not the embedded store's: api_configured ran firewall there for alpha.
    assert!(served("firewall")?.is_empty(), "the embedded store's anomalies were served");

    // A value PostgreSQL's text cannot hold matches nothing, as in the
    // embedded store, rather than failing the page.
    for uri in ["/v1/anomalies?label=%00", "/v1/anomalies?agent=dns%00&sort=score"] {
        let page = api.get(uri, alpha)?;
        assert_eq!((page.status, page.body["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{uri}");
    }

    // Beta sees none of them, by list or by id.
    let beta = api.token("beta", Role::ReadOnly);
    let theirs = api.get("/v1/anomalies?limit=10", beta)?;
    assert_eq!(theirs.body["items"].as_array().map(Vec::len), Some(0), "{}", theirs.body);
    let id = dns[0]["id"].as_i64().unwrap_or_default();
    assert_eq!(api.get(&format!("/v1/anomalies/{id}"), alpha)?.status, StatusCode::OK);
    problem(&api.get(&format!("/v1/anomalies/{id}"), beta)?, StatusCode::NOT_FOUND, "not_found");

    // A run through this node's API commits to PostgreSQL too, once.
    let run_once = || -> anyhow::Result<serde_json::Value> {
        let run = api.call("POST", "/v1/runs", Some(alpha), Some(r#"{"agent":"firewall"}"#))?;
        anyhow::ensure!(run.status == StatusCode::ACCEPTED, "{}", run.body);
        let id = run.body["id"].as_str().unwrap_or_default().to_string();
        for _ in 0..1_500 {
            let status = api.get(&format!("/v1/runs/{id}"), alpha)?.body;
            if status["state"] != "running" && status["state"] != "queued" {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!("the run did not end")
    };
    let first = run_once()?;
    assert_eq!(first["state"], "completed", "{first}");
    let firewall = served("firewall")?;
    assert!(!firewall.is_empty());
    assert_eq!(first["counters"]["anomalies"].as_u64(), Some(firewall.len() as u64), "{first}");
    let second = run_once()?;
    assert_eq!(
        (second["state"].as_str(), second["counters"]["anomalies"].as_u64()),
        (Some("completed"), Some(0)),
        "{second}"
    );
    assert_eq!(served("firewall")?.len(), firewall.len(), "a second run stored some again");

    // Exports walk PostgreSQL's anomalies: the unit's and the run's.
    let mut everything = served("dns")?;
    everything.extend(firewall);
    for request in [
        serde_json::json!({"format": "jsonl"}),
        serde_json::json!({"format": "jsonl", "agents": ["dns", "firewall"], "min_score": 0.5}),
        serde_json::json!({"format": "csv", "labels": [everything[0]["label"]]}),
    ] {
        let view = crate::exports::export(&api, alpha, &request)?;
        assert_eq!(view["state"], "completed", "{request}: {view}");
        let file = crate::exports::download(&api, alpha, &view)?;
        let rows = String::from_utf8(file)?.lines().count() - usize::from(request["format"] == "csv");
        let expected = everything.iter().filter(|a| crate::exports::passes(a, &request)).count();
        assert!(expected > 0, "{request} selects nothing to compare");
        assert_eq!(rows, expected, "{request}");
    }
    let theirs = crate::exports::export(&api, beta, &serde_json::json!({"format": "jsonl"}))?;
    assert_eq!((theirs["state"].as_str(), theirs["rows"].as_u64()), (Some("completed"), Some(0)), "{theirs}");
    let ready = api.get("/readyz", alpha)?;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);

    // The console over HTTP serves the same anomalies, its tenant's only.
    let session = api.console_session(alpha)?;
    let (status, page) = api.get_with("/ui/anomalies?agent=dns", &[("cookie", &session)])?;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(&format!("/ui/anomalies/{id}")), "the console's page lists no anomaly {id}");
    let (status, shown) = api.get_with(&format!("/ui/anomalies/{id}"), &[("cookie", &session)])?;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(shown.contains(dns[0]["source"].as_str().unwrap_or("?")), "the anomaly's page lacks its source");
    let theirs = api.console_session(beta)?;
    let (status, _) = api.get_with(&format!("/ui/anomalies/{id}"), &[("cookie", &theirs)])?;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's console shows the anomaly");
    let (status, listed) = api.get_with("/ui/anomalies", &[("cookie", &theirs)])?;
    assert!(status == StatusCode::OK && !listed.contains(&format!("/ui/anomalies/{id}")), "{listed}");
    Ok(())
}

#[test]
fn a_postgres_store_that_cannot_be_reached_answers_503_and_not_ready() -> anyhow::Result<()> {
    let cache = mcp_storage::jobstatus::SharedCache::open(None, "", Default::default())?;
    let api = api_configured(cache, &["alpha"], |config, _| {
        // Nothing listens on port 9 of loopback.
        config.database_url = Some("postgres://postgres@127.0.0.1:9/test".into());
        config.anomaly_store = StoreKind::Postgres;
        config.retry = RetryPolicy { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 20 };
        Ok(())
    })?;
    let alpha = api.token("alpha", Role::ReadOnly);
    problem(&api.get("/v1/anomalies?limit=5", alpha)?, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let ready = api.get("/readyz", alpha)?;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.body);
    let checks = ready.body["checks"].as_array().cloned().unwrap_or_default();
    assert!(checks.iter().any(|c| c["name"] == "anomaly_store" && c["ok"] == false), "{}", ready.body);
    // Opened directly (as `mcp serve` does at start), it says why.
    let refused = SharedStore::connect(
        "postgres://postgres@127.0.0.1:9/test",
        None,
        2,
        RetryPolicy::default(),
        Duration::from_secs(2),
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("refused") && !message.contains("log source"), "{message}");
    Ok(())
}

/// Ends every connection of the test's schema, as an operator's
/// `pg_terminate_backend` or a failover would; returns how many.
fn cut_connections(namespace: &str) -> anyhow::Result<i64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(runtime.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&database_url()).await?;
        let (cut,): (i64,) =
            sqlx::query_as("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1")
                .bind(format!("mcp:{namespace}"))
                .fetch_one(&pool)
                .await?;
        pool.close().await;
        Ok::<_, sqlx::Error>(cut)
    })?)
}

#[test]
fn pages_asked_while_connections_are_cut_answer_or_say_unavailable() -> anyhow::Result<()> {
    let pg = pg()?;
    let namespace = pg.0.namespace().unwrap_or_default().to_string();
    let store = shared(&pg)?;
    let batch: Vec<_> = (1..=3_000u64)
        .map(|n| {
            let anomaly = mcp_columns::Anomaly {
                agent: "dns".into(),
                log_id: n,
                log_type: "dns".into(),
                source: format!("10.0.0.{}", n % 50),
                log_timestamp_ms: 1_000_000 + n as i64,
                score: (n % 100) as f32 / 100.0,
                label: "tunnel".into(),
                severity: mcp_columns::Severity::High,
                reason: "r".into(),
                detected_at_ms: 0,
            };
            (anomaly, None)
        })
        .collect();
    let key = CheckpointKey { tenant: "alpha", agent: "dns", log_source: "s", log_type: "dns" };
    let provenance = mcp_storage::store::Provenance { agent_sha256: "x", schema_version: 1, model: None };
    (&store).commit_with_state(&key, &provenance, &batch, 3_000, None)?;
    let cache = mcp_storage::jobstatus::SharedCache::open(None, "", Default::default())?;
    let api = api_configured(cache, &["alpha"], |config, _| {
        config.database_url = Some(database_url());
        config.database_schema = Some(namespace.clone());
        config.anomaly_store = StoreKind::Postgres;
        config.retry = RetryPolicy { max_attempts: 3, base_delay_ms: 10, max_delay_ms: 50 };
        Ok(())
    })?;
    let alpha = api.token("alpha", Role::ReadOnly);
    assert_eq!(api.get("/v1/anomalies?limit=5", alpha)?.status, StatusCode::OK);

    let cutting = std::sync::atomic::AtomicBool::new(true);
    let (cuts, answers) = std::thread::scope(|scope| -> anyhow::Result<(i64, Vec<(StatusCode, String)>)> {
        let cutter = scope.spawn(|| -> anyhow::Result<i64> {
            let mut cut = 0;
            while cutting.load(std::sync::atomic::Ordering::Relaxed) {
                cut += cut_connections(&namespace)?;
                std::thread::sleep(Duration::from_millis(30));
            }
            Ok(cut)
        });
        let clients: Vec<_> = (0..3)
            .map(|client| {
                let api = &api;
                scope.spawn(move || -> anyhow::Result<Vec<(StatusCode, String)>> {
                    let mut answers = Vec::new();
                    let mut uri = format!("/v1/anomalies?limit=50&sort={}", ["time", "score", "time"][client]);
                    for _ in 0..40 {
                        let page = api.get(&uri, alpha)?;
                        answers.push((page.status, page.body["code"].as_str().unwrap_or_default().to_string()));
                        if let Some(cursor) = page.body["next_cursor"].as_str() {
                            uri = format!("/v1/anomalies?limit=50&cursor={cursor}");
                        }
                    }
                    Ok(answers)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for client in clients {
            answers.extend(client.join().map_err(|_| anyhow::anyhow!("a client panicked"))??);
        }
        cutting.store(false, std::sync::atomic::Ordering::Relaxed);
        let cuts = cutter.join().map_err(|_| anyhow::anyhow!("the cutter panicked"))??;
        Ok((cuts, answers))
    })?;
    assert!(cuts > 0, "no connection was cut");
    let odd: Vec<_> = answers
        .iter()
        .filter(|(status, code)| {
            *status != StatusCode::OK && !(*status == StatusCode::SERVICE_UNAVAILABLE && code == "unavailable")
        })
        .collect();
    assert!(odd.is_empty(), "answers other than 200 or 503 unavailable while {cuts} connections were cut: {odd:?}");
    let served = answers.iter().filter(|(status, _)| *status == StatusCode::OK).count();
    assert!(served > 0, "no page was served while connections were cut");
    eprintln!("{served} of {} pages served while {cuts} connections were cut", answers.len());
    assert_eq!(api.get("/v1/anomalies?limit=5", alpha)?.status, StatusCode::OK, "not served after the cuts");
    Ok(())
}
