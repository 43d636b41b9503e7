//! Many nodes on loopback sharing one PostgreSQL: a backfill of a million
//! rows (two tenants, three log types) split between `mcp worker`
//! processes stores exactly the anomalies that single-node `mcp run`s
//! store, while one node is SIGKILLed holding a unit, another is SIGSTOPped
//! past its lease and resumed (its late commits are refused), a fourth
//! joins mid-run, and every PostgreSQL backend of the deployment is
//! terminated once.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use mcp_storage::cluster::{Cluster, UnitView};
use mcp_storage::source::{LogSource, RetryPolicy};
use mcp_synth as generator;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

mod common;
use common::{database_url, namespace, quiet_mcp, stored};

const TENANTS: [&str; 2] = ["t1", "t2"];
/// Normal entries per tenant and log type: with the attacks on top, a
/// little over a million rows in all.
const ENTRIES: usize = 167_000;
const LEASE: &str = "2s";

fn worker(dir: &Path, node: &str) -> Result<Child> {
    let log = std::fs::File::create(dir.join(format!("{node}.log")))?;
    Ok(quiet_mcp(dir)
        .args(["worker", "--node", node, "--until-done", "--lease-ttl", LEASE, "--poll", "100ms"])
        .env("RUST_LOG", "info")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

/// Worker processes, killed if the test ends before they do: declared
/// after the schema they work in, they are dropped (and killed) before it
/// is, so a failing test leaves no worker behind against a dropped schema.
struct Workers(Vec<(String, Child)>);

impl Workers {
    /// Waits up to five minutes for every `--until-done` worker to exit,
    /// each successfully (its log, in `dir`, shown if not).
    fn finish(&mut self, dir: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        for (name, child) in &mut self.0 {
            loop {
                if let Some(status) = child.try_wait()? {
                    let log = std::fs::read_to_string(dir.join(format!("{name}.log")))?;
                    assert!(status.success(), "node {name} failed: {status}\n{log}");
                    break;
                }
                assert!(Instant::now() < deadline, "the nodes did not finish in 5 minutes");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn signal(child: &Child, name: &str) -> Result<()> {
    let sent = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status()?;
    assert!(sent.success(), "kill -{name} failed");
    Ok(())
}

/// Polls the shared table until `pick` finds a unit, for at most three
/// minutes: with one node left running, a takeover waits for the unit in
/// its hands (a whole Wi-Fi history under the coverage build).
fn wait_for(cluster: &Cluster, what: &str, pick: impl Fn(&[UnitView]) -> Option<UnitView>) -> Result<UnitView> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(unit) = pick(&cluster.units()?) {
            return Ok(unit);
        }
        assert!(Instant::now() < deadline, "waited three minutes for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A unit one of `nodes` holds and has committed part of, with more to go.
fn held_midway(nodes: &[&str]) -> impl Fn(&[UnitView]) -> Option<UnitView> {
    move |units| {
        units
            .iter()
            .find(|u| {
                u.status == "held"
                    && u.holder.as_deref().is_some_and(|holder| nodes.contains(&holder))
                    && u.checkpoint > u.start_after
                    && u.checkpoint < u.up_to
            })
            .cloned()
    }
}

/// The one row `sql` answers with `text` as its argument, on a connection
/// of the test's own.
fn one_row<T>(sql: &str, text: &str) -> Result<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let row = runtime.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&database_url()).await?;
        let row = sqlx::query_as(sql).bind(text).fetch_one(&pool).await?;
        pool.close().await;
        Ok::<T, sqlx::Error>(row)
    })?;
    Ok(row)
}

/// A connection to the shared tables of `schema` that holds no lease.
fn observer(schema: &str) -> Result<Cluster> {
    Ok(Cluster::connect(
        &database_url(),
        Some(schema),
        "test-observer",
        Duration::from_secs(2),
        RetryPolicy::default(),
    )?)
}

fn terminate_backends(namespace: &str) -> Result<i64> {
    let (killed,): (i64,) = one_row(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
        &format!("mcp:{namespace}"),
    )?;
    Ok(killed)
}

#[test]
fn nodes_split_a_backfill_through_a_kill_a_pause_a_join_and_lost_connections() -> Result<()> {
    let ns = namespace("cluster")?;
    let mut rows = 0;
    for (seed, tenant) in TENANTS.iter().enumerate() {
        for log_type in ["wifi", "firewall", "dns"] {
            let batch = generator::to_rows(&generator::generate(log_type, 31 + seed as u64, ENTRIES)?);
            rows += ns.source.append(tenant, log_type, &batch)?;
        }
    }
    assert!(rows >= 1_000_000, "only {rows} rows");

    // The reference: one node, `mcp run` per tenant into its embedded store.
    let mut expected = BTreeSet::new();
    for tenant in TENANTS {
        let dir = tempfile::tempdir()?;
        ns.write_config(dir.path(), "t1")?;
        let status = quiet_mcp(dir.path()).arg("run").env("MCP_TENANT", tenant).status()?;
        assert!(status.success(), "the single-node run of {tenant} failed");
        let (keys, _) = stored(dir.path())?;
        expected.extend(keys.into_iter().map(|(agent, id, label)| (tenant, agent, id.unsigned_abs(), label)));
    }
    assert!(expected.len() > 4_000, "only {} anomalies", expected.len());

    let dir = tempfile::tempdir()?;
    ns.write_config(dir.path(), "t1")?;
    for tenant in TENANTS {
        // The Wi-Fi agent learns its access points from the first entries
        // it sees, so it gets one unit a tenant; the others are split.
        let plans: [&[&str]; 3] = [
            &["--agent", "wifi"],
            &["--agent", "firewall", "--rows-per-unit", "40000"],
            &["--agent", "dns", "--rows-per-unit", "40000"],
        ];
        for plan in plans {
            let status = quiet_mcp(dir.path()).args(["backfill", "plan", "--tenant", tenant]).args(plan).status()?;
            assert!(status.success(), "planning {plan:?} for {tenant} failed");
        }
    }
    let observer = observer(&ns.name)?;
    let planned = observer.units()?;
    assert!(planned.len() >= 20, "only {} units planned", planned.len());

    let mut nodes = Workers(
        ["a", "b", "c"]
            .into_iter()
            .map(|name| Ok((name.to_string(), worker(dir.path(), name)?)))
            .collect::<Result<_>>()?,
    );
    let logs = |dir: &Path| -> String {
        ["a", "b", "c", "d"]
            .iter()
            .map(|n| {
                format!("--- node {n}\n{}", std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default())
            })
            .collect()
    };

    // A node dies holding a unit it has committed part of.
    let killed = wait_for(&observer, "a node to hold a unit midway", held_midway(&["a", "b", "c"]))
        .map_err(|e| format!("{e}\n{}", logs(dir.path())))?;
    let killed_node = killed.holder.clone().unwrap_or_default();
    let position = nodes.0.iter().position(|(name, _)| *name == killed_node).ok_or("no such node")?;
    let (_, mut victim) = nodes.0.remove(position);
    victim.kill()?;
    victim.wait()?;

    // Another stops past its lease, and resumes once another node holds
    // its unit under a newer token.
    let alive: Vec<&str> = nodes.0.iter().map(|(name, _)| name.as_str()).collect();
    let paused = wait_for(&observer, "a node to hold a unit midway", held_midway(&alive))
        .map_err(|e| format!("{e}\n{}", logs(dir.path())))?;
    let paused_node = paused.holder.clone().unwrap_or_default();
    let sleeper = &nodes.0.iter().find(|(name, _)| *name == paused_node).ok_or("no such node")?.1;
    signal(sleeper, "STOP")?;
    let taken = wait_for(&observer, "another node to take the paused node's unit", |units| {
        units.iter().find(|u| u.id == paused.id && u.token > paused.token).cloned()
    });
    signal(sleeper, "CONT")?;
    let taken = taken.map_err(|e| format!("{e}\n{}", logs(dir.path())))?;

    // A node joins while the work goes on.
    nodes.0.push(("d".to_string(), worker(dir.path(), "d")?));
    // Every connection of the deployment is cut once.
    let cut = terminate_backends(&ns.name)?;

    let deadline = Instant::now() + Duration::from_secs(900);
    for (name, child) in &mut nodes.0 {
        loop {
            if let Some(status) = child.try_wait()? {
                assert!(status.success(), "node {name} failed: {status}\n{}", logs(dir.path()));
                break;
            }
            assert!(Instant::now() < deadline, "the nodes did not finish in 15 minutes");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let units = observer.units()?;
    let open: Vec<_> = units.iter().filter(|u| u.status != "done").collect();
    assert!(open.is_empty(), "units left undone: {open:?}");
    let killed_unit = units.iter().find(|u| u.id == killed.id).ok_or("the killed node's unit is gone")?;
    assert!(killed_unit.claims >= 2, "the killed node's unit was not taken over: {killed_unit:?}");
    let paused_log = std::fs::read_to_string(dir.path().join(format!("{paused_node}.log")))?;
    assert!(
        paused_log.contains("commit refused") || paused_log.contains("leases lost"),
        "node {paused_node} learnt nothing of losing unit {} (taken with token {}):\n{paused_log}",
        paused.id,
        taken.token
    );
    let d_log = std::fs::read_to_string(dir.path().join("d.log"))?;
    assert!(d_log.contains("claimed a unit"), "the node that joined took no share:\n{d_log}");
    eprintln!(
        "cut {cut} connections; unit {} taken over after node {killed_node} was killed, unit {} after node {paused_node} was paused",
        killed.id, paused.id
    );

    let mut found = BTreeSet::new();
    let mut found_count = 0;
    for tenant in TENANTS {
        let keys = observer.anomaly_keys(tenant)?;
        found_count += keys.len();
        found.extend(keys.into_iter().map(|(agent, id, label)| (tenant, agent, id, label)));
    }
    assert_eq!(found_count, found.len(), "an anomaly was stored twice");
    let missing: Vec<_> = expected.difference(&found).take(5).collect();
    let extra: Vec<_> = found.difference(&expected).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    let counted: i64 = units.iter().map(|u| u.anomalies).sum();
    assert_eq!(usize::try_from(counted)?, found.len(), "the units' counts disagree with the stored anomalies");
    Ok(())
}

/// The notifications of `tenant` in `schema`'s outbox: (rows, distinct
/// anomalies, attempts, delivered).
fn outbox_counts(schema: &str, tenant: &str) -> Result<(i64, i64, i64, i64)> {
    one_row(
        &format!(
            "SELECT count(*), count(DISTINCT anomaly_id), coalesce(sum(attempts), 0)::BIGINT,
                    count(*) FILTER (WHERE state = 'delivered')
             FROM \"{schema}\".notify_outbox WHERE tenant = $1"
        ),
        tenant,
    )
}

#[test]
fn worker_nodes_on_postgres_queue_and_deliver_each_notification_once() -> Result<()> {
    let ns = namespace("notify")?;
    for (seed, log_type) in [(41, "dns"), (42, "firewall")] {
        ns.source.append("t1", log_type, &generator::to_rows(&generator::generate(log_type, seed, 3_000)?))?;
    }
    let dir = tempfile::tempdir()?;
    ns.write_config(dir.path(), "t1")?;
    let config = std::fs::read_to_string(dir.path().join("mcp.toml"))?;
    std::fs::write(
        dir.path().join("mcp.toml"),
        format!("{config}anomaly_store = \"postgres\"\n[notifications]\nfile = \"notifications.toml\"\n"),
    )?;
    std::fs::write(
        dir.path().join("notifications.toml"),
        "[[channel]]\ntenant = \"t1\"\nname = \"log\"\nkind = \"log\"\ndedup_window_s = 0\nrate_per_minute = 6000\n\n\
         [[route]]\ntenant = \"t1\"\nname = \"all\"\nchannel = \"log\"\n",
    )?;
    for agent in ["dns", "firewall"] {
        let status = quiet_mcp(dir.path())
            .args(["backfill", "plan", "--tenant", "t1", "--agent", agent, "--rows-per-unit", "1000"])
            .status()?;
        assert!(status.success(), "planning {agent} failed");
    }
    let mut nodes = Workers(vec![("a".into(), worker(dir.path(), "a")?), ("b".into(), worker(dir.path(), "b")?)]);
    nodes.finish(dir.path())?;
    let observer = observer(&ns.name)?;
    let stored = i64::try_from(observer.anomaly_keys("t1")?.len())?;
    assert!(stored > 0, "the units found nothing to notify about");
    let (rows, anomalies, attempts, delivered) = outbox_counts(&ns.name, "t1")?;
    assert_eq!((rows, anomalies), (stored, stored), "one notification per anomaly stored");
    assert_eq!((delivered, attempts), (stored, stored), "each delivered once, by one node");
    // `mcp notify outbox` lists PostgreSQL's outbox, not the node's file.
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_mcp"))
        .arg("--config")
        .arg(dir.path().join("mcp.toml"))
        .args(["notify", "outbox", "--tenant", "t1", "--state", "delivered", "--limit", "3"])
        .current_dir(dir.path())
        .output()?;
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{text}{}", String::from_utf8_lossy(&listed.stderr));
    assert_eq!(text.lines().filter(|line| line.contains("delivered")).count(), 3, "{text}");
    // `mcp jobs list` points at the units, whose status is in PostgreSQL.
    let jobs = std::process::Command::new(env!("CARGO_BIN_EXE_mcp"))
        .arg("--config")
        .arg(dir.path().join("mcp.toml"))
        .args(["jobs", "list"])
        .current_dir(dir.path())
        .output()?;
    let text = String::from_utf8_lossy(&jobs.stdout);
    let done = observer.units()?.len();
    assert!(
        text.contains(&format!(
            "work units of tenant t1 (PostgreSQL, shared by every node): 0 held, 0 open, {done} done, 0 failed"
        )),
        "{text}"
    );
    Ok(())
}

/// `mcp` with `dir/mcp.toml`, its output kept.
fn mcp_output(dir: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp"))
        .arg("--config")
        .arg(dir.join("mcp.toml"))
        .args(args)
        .current_dir(dir)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "mcp {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    Ok(text)
}

#[test]
fn nodes_on_a_postgres_control_store_share_tokens_and_the_channels_of_the_file() -> Result<()> {
    let ns = namespace("control")?;
    ns.source.append("t1", "dns", &generator::to_rows(&generator::generate("dns", 41, 3_000)?))?;
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    for (dir, file) in [(a.path(), true), (b.path(), false)] {
        ns.write_config(dir, "t1")?;
        let config = std::fs::read_to_string(dir.join("mcp.toml"))?;
        let notifications = if file { "[notifications]\nfile = \"notifications.toml\"\n" } else { "" };
        std::fs::write(
            dir.join("mcp.toml"),
            format!("{config}anomaly_store = \"postgres\"\ncontrol_store = \"postgres\"\n{notifications}"),
        )?;
    }
    std::fs::write(
        a.path().join("notifications.toml"),
        "[[channel]]\ntenant = \"t1\"\nname = \"log\"\nkind = \"log\"\ndedup_window_s = 0\nrate_per_minute = 6000\n\n\
         [[route]]\ntenant = \"t1\"\nname = \"all\"\nchannel = \"log\"\n",
    )?;
    // A token made on one node is listed, and kept, on the other.
    let token =
        mcp_output(b.path(), &["tokens", "create", "--tenant", "t1", "--role", "read_only", "--name", "from-b"])?;
    assert!(token.trim().starts_with("mcp_"), "{token}");
    let listed = mcp_output(a.path(), &["tokens", "list", "--tenant", "t1"])?;
    assert!(listed.contains("from-b"), "{listed}");
    // Node a applies its file; node b, which has none, leaves it be.
    mcp_output(a.path(), &["notify", "outbox", "--tenant", "t1"])?;
    mcp_output(b.path(), &["notify", "outbox", "--tenant", "t1"])?;
    let status = quiet_mcp(a.path()).args(["backfill", "plan", "--tenant", "t1", "--agent", "dns"]).status()?;
    assert!(status.success(), "planning failed");
    // Node b alone works: its commits are routed by the route of a's file.
    Workers(vec![("b".into(), worker(b.path(), "b")?)]).finish(b.path())?;
    let stored = i64::try_from(observer(&ns.name)?.anomaly_keys("t1")?.len())?;
    assert!(stored > 0, "the unit found nothing to notify about");
    let (rows, anomalies, attempts, delivered) = outbox_counts(&ns.name, "t1")?;
    assert_eq!((rows, anomalies), (stored, stored), "one notification per anomaly stored");
    assert_eq!((delivered, attempts), (stored, stored), "each delivered once");
    Ok(())
}
