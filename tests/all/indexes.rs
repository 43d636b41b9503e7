//! Every filter a caller can send is served by an index: each combination
//! of the anomaly page's filters, sorts and cursor, and each log page a run
//! or a guest's `logs.query` reads, checked against the database's own
//! query plan (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN). A page
//! whose filters match too little of its index walk is refused, not served
//! slowly.

use std::path::Path;
use std::sync::Arc;

use axum::http::StatusCode;
use mcp_columns::{Anomaly, LogQuery, Severity};
use mcp_fixtures::BUNDLED_SCHEMAS;
use mcp_storage::schema::SchemaFiles;
use mcp_storage::source::SqliteLogSource;
use mcp_storage::store::{AnomalyQuery, AnomalySort, AnomalyStore, CheckpointKey, Provenance, page_index};

use crate::api::{api_configured, problem};
use mcp_storage::control::Role;
use mcp_storage::jobstatus::SharedCache;

fn anomaly(n: u64, score: f64) -> (Anomaly, Option<String>) {
    let anomaly = Anomaly {
        agent: "dns".into(),
        log_id: n,
        log_type: "dns".into(),
        source: format!("dev-{}", n % 7),
        log_timestamp_ms: 1_000_000 + n as i64,
        score: score as f32,
        label: ["dga", "dns_tunnel"][(n % 2) as usize].into(),
        severity: Severity::Medium,
        reason: "test".into(),
        detected_at_ms: 0,
    };
    (anomaly, None)
}

fn fill(store: &mut AnomalyStore, tenant: &str, count: u64, score: impl Fn(u64) -> f64) -> anyhow::Result<()> {
    let batch: Vec<_> = (1..=count).map(|n| anomaly(n, score(n))).collect();
    let key = CheckpointKey { tenant, agent: "dns", log_source: "test", log_type: "dns" };
    let provenance = Provenance { agent_sha256: "test", schema_version: 1, model: None };
    store.commit(&key, &provenance, &batch, count)?;
    Ok(())
}

/// Every subset of the equality filters, with and without min_score, a
/// time range and a cursor, in both sorts.
fn every_page_query() -> Vec<AnomalyQuery> {
    let mut queries = Vec::new();
    for mask in 0u32..32 {
        let pick = |bit: u32, value: &str| (mask & (1 << bit) != 0).then(|| value.to_string());
        for min_score in [None, Some(0.9)] {
            for (from_ms, to_ms) in [(None, None), (Some(1_000_100), None), (Some(1_000_100), Some(1_000_900))] {
                for sort in [AnomalySort::Time, AnomalySort::Score] {
                    for after in [None, Some((1_000_500.0, 500))] {
                        queries.push(AnomalyQuery {
                            tenant: "t".into(),
                            agent: pick(0, "dns"),
                            log_type: pick(1, "dns"),
                            label: pick(2, "dga"),
                            severity: pick(3, "medium"),
                            source: pick(4, "dev-3"),
                            min_score,
                            from_ms,
                            to_ms,
                            sort,
                            after,
                            limit: 100,
                        });
                    }
                }
            }
        }
    }
    queries
}

#[test]
fn every_anomaly_page_walks_an_index_in_its_order() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    fill(&mut store, "t", 2_000, |n| (n % 100) as f64 / 100.0)?;
    let queries = every_page_query();
    assert_eq!(queries.len(), 32 * 2 * 3 * 2 * 2);
    for query in &queries {
        let plan = store.query_plan(query)?;
        let index = page_index(query);
        let walk = plan.first().map(String::as_str).unwrap_or_default();
        assert!(
            walk.starts_with("SEARCH anomalies USING") && walk.contains(&format!("INDEX {index} (tenant=?")),
            "{query:?} is not served by {index}: {plan:?}"
        );
        assert!(plan.iter().all(|step| !step.contains("TEMP B-TREE")), "{query:?} sorts outside the index: {plan:?}");
        // The plan's answer is the query's answer.
        let page = store.query(query)?;
        assert!(page.len() <= 100);
    }
    Ok(())
}

#[test]
fn every_export_window_walks_a_time_index_in_its_order() -> anyhow::Result<()> {
    use mcp_storage::export_scan::ExportFilter;
    let dir = tempfile::tempdir()?;
    let mut store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    fill(&mut store, "t", 2_000, |n| (n % 100) as f64 / 100.0)?;
    let one = |value: &str| vec![value.to_string()];
    let two = vec!["dga".to_string(), "dns_tunnel".to_string()];
    let base = ExportFilter { tenant: "t".into(), ..ExportFilter::default() };
    let cases = [
        (base.clone(), "anomalies_time"),
        (ExportFilter { from_ms: Some(1_000_500), to_ms: Some(1_001_500), ..base.clone() }, "anomalies_time"),
        (ExportFilter { labels: two.clone(), min_score: Some(0.5), ..base.clone() }, "anomalies_time"),
        (ExportFilter { sources: one("dev-1"), labels: two, ..base.clone() }, "anomalies_source_time"),
        (ExportFilter { labels: one("dga"), agents: one("dns"), ..base.clone() }, "anomalies_label_time"),
        (ExportFilter { agents: one("dns"), models: one("m@1"), ..base.clone() }, "anomalies_agent_time"),
        (ExportFilter { log_types: one("dns"), detected_from_ms: Some(0), ..base.clone() }, "anomalies_log_type_time"),
        (
            ExportFilter { severities: one("medium"), from_ms: Some(1_000_100), ..base.clone() },
            "anomalies_severity_time",
        ),
    ];
    for (filter, index) in cases {
        let plan = store.export_window_plan(&filter)?;
        let walk = plan.first().map(String::as_str).unwrap_or_default();
        assert!(walk.contains(&format!("INDEX {index} (tenant=?")), "{filter:?} is not walked by {index}: {plan:?}");
        assert!(plan.iter().all(|step| !step.contains("TEMP B-TREE")), "{filter:?} sorts outside the index: {plan:?}");
        // Windows of 7 pass every entry of the walk once, newest first.
        let (mut after, mut examined, mut kept) = (None, 0, Vec::new());
        loop {
            let window = store.export_window(&filter, after, 7)?;
            examined += window.examined;
            kept.extend(window.records.iter().map(|r| (r.log_ts_ms, r.id)));
            match window.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(examined, store.export_walk_length(&filter)?, "{filter:?}");
        assert!(kept.windows(2).all(|pair| pair[0] > pair[1]), "newest first, no repeats");
    }
    Ok(())
}

#[test]
fn a_page_that_would_walk_too_far_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    // Twenty thousand low scores and one high one, the oldest.
    fill(&mut store, "t", 20_000, |n| if n == 1 { 0.999 } else { 0.1 })?;
    store.set_page_query_steps(50_000);
    let mut query = every_page_query().swap_remove(0);
    query.min_score = Some(0.99);
    // The same page meets the bound every time (a cached statement's step
    // count starts at zero).
    for _ in 0..5 {
        let refused = store.query(&query).expect_err("a time-sorted walk past 20,000 entries");
        assert!(refused.too_broad(), "{refused}");
    }
    // The same filter in score order is a range of the score index.
    query.sort = AnomalySort::Score;
    assert_eq!(store.query(&query)?.len(), 1);
    // A time range narrows the walk enough.
    query.sort = AnomalySort::Time;
    query.from_ms = Some(1_000_000);
    query.to_ms = Some(1_000_100);
    assert_eq!(store.query(&query)?.len(), 1);
    // The store goes on answering afterwards.
    query.min_score = None;
    assert_eq!(store.query(&query)?.len(), 99);
    Ok(())
}

#[test]
fn the_api_answers_a_too_broad_page_with_a_problem() -> anyhow::Result<()> {
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha"], |config, _| {
        config.page_query_steps = 50_000;
        let mut store = AnomalyStore::open(&config.anomalies_db())?;
        fill(&mut store, "alpha", 20_000, |n| if n == 1 { 0.999 } else { 0.1 })?;
        Ok(())
    })?;
    let token = api.token("alpha", Role::ReadOnly);
    let refused = api.get("/v1/anomalies?min_score=0.99", token)?;
    problem(&refused, StatusCode::BAD_REQUEST, "query_too_broad");
    let served = api.get("/v1/anomalies?min_score=0.99&sort=score", token)?;
    assert_eq!(served.body["items"].as_array().map(Vec::len), Some(1), "{}", served.body);
    Ok(())
}

/// Every log page a run, a replay or a guest's query reads.
fn every_log_page() -> Vec<(LogQuery, Option<u64>)> {
    let mut pages = Vec::new();
    for after_id in [0, 500] {
        for (from_ms, to_ms) in [(None, None), (Some(10), None), (None, Some(900)), (Some(10), Some(900))] {
            for source in [None, Some("ap-1".to_string())] {
                for up_to in [None, Some(900)] {
                    let query = LogQuery {
                        log_type: "wifi".into(),
                        after_id,
                        from_ms,
                        to_ms,
                        source: source.clone(),
                        limit: 100,
                    };
                    pages.push((query, up_to));
                }
            }
        }
    }
    pages
}

#[test]
fn every_log_page_walks_an_index_in_sqlite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let schemas = Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS)));
    let source = SqliteLogSource::open(&dir.path().join("logs.db"), schemas)?;
    for (query, up_to) in every_log_page() {
        let plan = source.page_plan("t", &query, up_to)?;
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN logs")) && plan.iter().any(|s| s.contains("USING")),
            "{query:?} up to {up_to:?} scans the table: {plan:?}"
        );
    }
    Ok(())
}

#[test]
fn every_log_page_walks_an_index_in_postgres() -> anyhow::Result<()> {
    let pg = crate::postgres::pg()?;
    for (query, up_to) in every_log_page() {
        let plan = pg.0.page_plan("t", &query, up_to)?;
        assert!(
            plan.iter().all(|step| !step.contains("Seq Scan")) && plan.iter().any(|s| s.contains("Index")),
            "{query:?} up to {up_to:?} scans the table: {plan:?}"
        );
    }
    Ok(())
}

/// PostgreSQL's planner, unlike SQLite's, weighs its statistics: with
/// 120,000 anomalies of two tenants analysed, every page's plan (each
/// filter, sort, range and cursor) walks an index, never the whole table,
/// and sorts only the rows of a closed time window an index found.
#[test]
fn every_anomaly_page_on_postgres_walks_an_index_in_its_order() -> anyhow::Result<()> {
    use mcp_storage::run_store::RunStore;
    let pg = crate::postgres::pg()?;
    let namespace = pg.schema()?;
    let store = pg.shared_store()?;
    for tenant in ["t", "u"] {
        let batch: Vec<_> = (1..=60_000).map(|n| anomaly(n, (n % 100) as f64 / 100.0)).collect();
        let key = CheckpointKey { tenant, agent: "dns", log_source: "test", log_type: "dns" };
        let provenance = Provenance { agent_sha256: "test", schema_version: 1, model: None };
        (&store).commit_with_state(&key, &provenance, &batch, 60_000, None)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let pool =
            sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&crate::postgres::database_url()).await?;
        sqlx::query(&format!("ANALYZE \"{namespace}\".anomalies")).execute(&pool).await?;
        pool.close().await;
        Ok::<_, sqlx::Error>(())
    })?;
    let mut wrong = Vec::new();
    for query in every_page_query() {
        let plan = store.explain_page(&query)?;
        // A page by score of a closed time window may take the window's
        // rows from a time index and sort them, when the statistics say
        // they are few: the planner's better choice, bounded by the range.
        let window_sorted = query.sort == AnomalySort::Score
            && query.from_ms.is_some()
            && query.to_ms.is_some()
            && plan.lines().any(|line| line.contains("Index Scan using anomalies_by_") && line.contains("time on"));
        if plan.contains("Seq Scan") || (plan.contains("Sort") && !window_sorted) || !plan.contains("Index Scan") {
            wrong.push(format!("{query:?}\n{plan}"));
        }
        assert!(store.query(&query)?.len() <= 100);
    }
    assert!(wrong.is_empty(), "{} of 768 plans:\n{}", wrong.len(), wrong.join("\n\n"));
    Ok(())
}
