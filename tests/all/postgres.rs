//! The PostgreSQL log source against the machine's real PostgreSQL: each
//! test works in a schema of its own and drops it at the end.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use mcp_columns::LogQuery;
use mcp_engine::pipeline::{self, RunSpec};
use mcp_fixtures::BUNDLED_SCHEMAS;
use mcp_storage::schema::SchemaFiles;
use mcp_storage::source::{LogSource, NewRow, PgLogSource, SqliteLogSource};
use mcp_storage::store::AnomalyStore;
use mcp_synth as generator;

use crate::common::{bundled_registry, sandbox};

/// The database tests use; `MCP_TEST_DATABASE_URL` overrides it.
pub(crate) fn database_url() -> String {
    std::env::var("MCP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A source in a fresh schema, dropped when the guard goes.
pub(crate) struct Pg(pub(crate) PgLogSource);

impl Drop for Pg {
    fn drop(&mut self) {
        if let Err(e) = self.0.drop_namespace() {
            eprintln!("could not drop the test schema: {e}");
        }
    }
}

pub(crate) fn pg() -> anyhow::Result<Pg> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let namespace = format!("mcp_test_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let schemas = Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS)));
    let source = PgLogSource::connect(&database_url(), Some(&namespace), schemas).map_err(|e| {
        anyhow::anyhow!(
            "{e}\nThese tests need PostgreSQL at {} (start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)",
            database_url()
        )
    })?;
    let guard = Pg(source);
    guard.0.migrate()?;
    Ok(guard)
}

impl Pg {
    /// The test's schema, where its tables are.
    pub(crate) fn schema(&self) -> anyhow::Result<String> {
        Ok(self.0.namespace().ok_or_else(|| anyhow::anyhow!("the test source has no schema"))?.to_string())
    }

    /// The anomaly store on PostgreSQL in the test's schema, migrated.
    pub(crate) fn shared_store(&self) -> anyhow::Result<mcp_storage::shared_store::SharedStore> {
        let store = mcp_storage::shared_store::SharedStore::connect(
            &database_url(),
            Some(&self.schema()?),
            4,
            Default::default(),
            std::time::Duration::from_secs(10),
        )?;
        store.migrate()?;
        Ok(store)
    }

    /// A worker node of the test's schema that runs `tenant`'s DNS history
    /// as one unit, committing through `routes` when given; the node.
    pub(crate) fn run_dns_unit(
        &self,
        tenant: &str,
        routes: Option<Arc<mcp_storage::notify::RouteBook>>,
    ) -> anyhow::Result<mcp_storage::cluster::Cluster> {
        let mut worker = mcp_storage::cluster::Cluster::connect(
            &database_url(),
            Some(&self.schema()?),
            "worker",
            std::time::Duration::from_secs(30),
            Default::default(),
        )?;
        worker.migrate()?;
        if let Some(routes) = routes {
            worker.route_with(routes);
        }
        worker.plan_backfill(&mcp_storage::cluster::Backfill {
            tenant,
            agent: "dns",
            log_type: "dns",
            rows_per_unit: 0,
        })?;
        let registry = bundled_registry(sandbox())?;
        let names = ["dns", "firewall", "wifi"].map(String::from);
        let held = worker
            .claim(mcp_storage::cluster::UnitKind::Range, &names)?
            .ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;
        let mut instance = pipeline::instance_for(&registry, "dns", tenant, Default::default(), None)?;
        let spec = RunSpec {
            tenant,
            agent: "dns",
            log_source: "postgres",
            batch_size: 400,
            replay_ms: 120_000,
            up_to_id: Some(held.up_to),
            follow: None,
        };
        pipeline::run(&registry, &mut instance, &self.0, &mut worker.store(&held), &spec)?;
        worker.finish(&held)?;
        Ok(worker)
    }
}

fn query(log_type: &str, limit: u32) -> LogQuery {
    LogQuery { log_type: log_type.into(), after_id: 0, from_ms: None, to_ms: None, source: None, limit }
}

fn run_dns(source: &dyn LogSource, store: &mut AnomalyStore) -> anyhow::Result<BTreeSet<(u64, String)>> {
    let registry = bundled_registry(sandbox())?;
    let mut instance = pipeline::instance_for(&registry, "dns", "t", Default::default(), None)?;
    let spec = RunSpec {
        tenant: "t",
        agent: "dns",
        log_source: source.name(),
        batch_size: 700,
        replay_ms: 0,
        up_to_id: None,
        follow: None,
    };
    let report = pipeline::run(&registry, &mut instance, source, store, &spec)?;
    anyhow::ensure!(report.entries > 0, "nothing was read");
    Ok(store.anomalies("t", "dns")?.into_iter().map(|a| (a.log_id, a.label)).collect())
}

#[test]
fn postgres_and_sqlite_give_the_same_anomalies() -> anyhow::Result<()> {
    let rows: Vec<NewRow> = generator::to_rows(&generator::generate("dns", 11, 3_000)?);
    let dir = tempfile::tempdir()?;
    let pg = pg()?;
    assert_eq!(pg.0.append("t", "dns", &rows)?, rows.len() as u64);
    let sqlite =
        SqliteLogSource::open(&dir.path().join("logs.db"), Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS))))?;
    sqlite.append("t", "dns", &rows)?;
    let from_pg = run_dns(&pg.0, &mut AnomalyStore::open(&dir.path().join("pg-anomalies.db"))?)?;
    let from_sqlite = run_dns(&sqlite, &mut AnomalyStore::open(&dir.path().join("sqlite-anomalies.db"))?)?;
    assert!(from_pg.len() > 50, "only {} anomalies", from_pg.len());
    assert_eq!(from_pg, from_sqlite);
    assert_eq!(pg.0.labels("t", "dns")?, sqlite.labels("t", "dns")?);
    Ok(())
}

#[test]
fn postgres_rows_are_normalised_and_quarantined_like_embedded_ones() -> anyhow::Result<()> {
    let pg = pg()?;
    let row = |fields: &str, version: u32| NewRow {
        timestamp_ms: 5,
        source: "wlc".into(),
        fields: fields.into(),
        schema_version: version,
        label: None,
        load_error: None,
    };
    pg.0.append(
        "t",
        "wifi",
        &[
            row(r#"{"event": "data", "bssid": "aa", "rssi": -61}"#, 1),
            row(r#"{"event": "data", "bssid": "bb", "signal_dbm": "high"}"#, 0),
            row(r#"{"event": "beacon", "bssid": "cc", "signal_dbm": -40}"#, 2),
        ],
    )?;
    // A line the load could not read is quarantined with the load's reason.
    let unreadable = r#"{"ts": 5, "source": "wlc", "fields": {"event": "data"}}"#;
    pg.0.append("t", "wifi", &[mcp_storage::source::load::parse_line(unreadable)])?;
    let read = pg.0.read_batch("t", &query("wifi", 100))?;
    assert_eq!((read.batch.ids.clone(), read.quarantined, read.last_id), (vec![1, 3], 2, 4));
    let quarantined = pg.0.quarantined("t")?;
    assert_eq!(quarantined.len(), 2);
    assert_eq!(quarantined[1].raw, unreadable);
    assert!(quarantined[1].reason.contains("unknown key(s) 'ts'"), "{quarantined:?}");
    assert_eq!((quarantined[0].log_id, quarantined[0].schema_version), (2, 2));
    assert!(quarantined[0].reason.contains("'signal_dbm' must be integer"), "{quarantined:?}");
    let signal = read.batch.columns.iter().find(|c| c.name == "signal_dbm").map(|c| c.values.clone());
    assert!(matches!(signal, Some(mcp_columns::ColumnValues::Integer(ref v)) if v == &[-61, -40]), "{signal:?}");
    Ok(())
}

#[test]
fn postgres_reads_are_scoped_to_the_tenant_and_paged_by_id() -> anyhow::Result<()> {
    let pg = pg()?;
    let rows: Vec<NewRow> = generator::to_rows(&generator::generate("firewall", 4, 1_000)?);
    pg.0.append("tenant-a", "firewall", &rows)?;
    assert!(pg.0.read_batch("tenant-b", &query("firewall", 100))?.batch.ids.is_empty());
    let mut after_id = 0;
    let mut seen = 0;
    loop {
        let page = pg.0.read_batch("tenant-a", &LogQuery { after_id, ..query("firewall", 333) })?;
        if page.last_id == after_id {
            break;
        }
        assert!(page.batch.ids.iter().all(|id| *id > after_id));
        seen += page.batch.ids.len();
        after_id = page.last_id;
    }
    assert_eq!(seen, rows.len());
    Ok(())
}

/// Each full page has the next one fetched ahead while its batch is built;
/// the fetch must be served only to the read that asks for exactly it, and
/// rows appended after it was made must still be read, once, in order.
#[test]
fn pages_fetched_ahead_serve_only_their_own_read_and_lose_no_appended_row() -> anyhow::Result<()> {
    let pg = pg()?;
    let rows: Vec<NewRow> = generator::to_rows(&generator::generate("firewall", 4, 100)?);
    pg.0.append("t", "firewall", &rows[..25])?;
    let page = |after_id: u64, up_to: Option<u64>| {
        pg.0.read_range("t", &LogQuery { after_id, ..query("firewall", 10) }, up_to)
    };
    assert_eq!(page(0, None)?.batch.ids, (1..=10).collect::<Vec<u64>>());
    // The page after 10 was fetched ahead without an end; a read that asks
    // for one (a follower's settled end) gets only what it asked for.
    assert_eq!(page(10, Some(13))?.batch.ids, vec![11, 12, 13]);
    assert_eq!(page(0, None)?.batch.ids, (1..=10).collect::<Vec<u64>>());
    // Let the fetch ahead of the page after 10 finish before more rows come.
    std::thread::sleep(std::time::Duration::from_millis(200));
    pg.0.append("t", "firewall", &rows[25..50])?;
    let (mut after_id, mut ids) = (10, Vec::new());
    loop {
        let read = page(after_id, None)?;
        if read.last_id == after_id {
            break;
        }
        ids.extend(read.batch.ids.iter().copied());
        after_id = read.last_id;
    }
    assert_eq!(ids, (11..=50).collect::<Vec<u64>>());
    Ok(())
}

#[test]
fn copy_keeps_quotes_commas_and_line_breaks() -> anyhow::Result<()> {
    let pg = pg()?;
    let fields = r#"{"client_ip": "10.0.0.1", "query": "a,\"b\"\nc.example", "rcode": "NOERROR"}"#;
    pg.0.append(
        "t",
        "dns",
        &[NewRow {
            timestamp_ms: 1,
            source: "res,\"1\"".into(),
            fields: fields.into(),
            schema_version: 0,
            label: None,
            load_error: None,
        }],
    )?;
    let entry = pg.0.entry("t", 1)?.ok_or_else(|| anyhow::anyhow!("row 1 missing"))?;
    assert_eq!((entry.source.as_str(), entry.fields.as_str()), ("res,\"1\"", fields));
    Ok(())
}

/// Terminates every backend of the source connected in `namespace`, as an
/// operator or a failover would, from a connection of its own.
fn terminate_backends(namespace: &str) -> anyhow::Result<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let admin = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&database_url()).await?;
        let row: (i64,) =
            sqlx::query_as("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1")
                .bind(format!("mcp:{namespace}"))
                .fetch_one(&admin)
                .await?;
        admin.close().await;
        Ok(row.0.unsigned_abs())
    })
}

#[test]
fn a_run_survives_its_connections_being_terminated() -> anyhow::Result<()> {
    static NEXT: AtomicU32 = AtomicU32::new(100);
    let namespace = format!("mcp_test_fault_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let schemas = Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS)));
    let source = Pg(PgLogSource::connect(&database_url(), Some(&namespace), schemas.clone())?);
    source.0.migrate()?;
    let rows: Vec<NewRow> = generator::to_rows(&generator::generate("dns", 12, 20_000)?);
    source.0.append("t", "dns", &rows)?;

    let dir = tempfile::tempdir()?;
    let sqlite = SqliteLogSource::open(&dir.path().join("logs.db"), schemas)?;
    sqlite.append("t", "dns", &rows)?;
    let expected = run_dns(&sqlite, &mut AnomalyStore::open(&dir.path().join("sqlite.db"))?)?;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let saboteur = std::thread::spawn({
        let (stop, namespace) = (stop.clone(), namespace.clone());
        move || -> anyhow::Result<u64> {
            let mut terminated = 0;
            while !stop.load(Ordering::Relaxed) {
                terminated += terminate_backends(&namespace)?;
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
            Ok(terminated)
        }
    });
    let result = run_dns(&source.0, &mut AnomalyStore::open(&dir.path().join("pg.db"))?);
    stop.store(true, Ordering::Relaxed);
    let terminated = saboteur.join().map_err(|_| anyhow::anyhow!("saboteur panicked"))??;
    let found = result?;
    assert!(terminated > 0, "no backend was terminated; the test proved nothing");
    assert!(source.0.retries() > 0, "terminated {terminated} backends but nothing was retried");
    assert_eq!(found, expected);
    Ok(())
}

#[test]
fn a_permanent_failure_fails_at_once_with_its_cause() -> anyhow::Result<()> {
    // A schema without the tables: not something a retry can fix.
    let pg = pg()?;
    pg.0.drop_namespace()?;
    let started = std::time::Instant::now();
    let error = pg.0.read_batch("t", &query("dns", 10)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("does not exist"), "{error}");
    assert_eq!(pg.0.retries(), 0);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    Ok(())
}
