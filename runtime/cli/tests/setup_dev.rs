//! scripts/setup_dev.sh: a development database is made and migrated once;
//! a second run changes nothing and says so.

use std::path::Path;
use std::process::Command;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn setup_dev(database: &str) -> Result<String> {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup_dev.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_mcp"), "--database", database])
        .output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "setup_dev.sh failed (it needs PostgreSQL on 127.0.0.1:5432 and Redis on 6379, or apt to install them):\n{said}"
    );
    Ok(said)
}

fn psql(sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qtA", "-c", sql])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        if let Err(e) = psql(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.0)) {
            eprintln!("could not drop database {}: {e}", self.0);
        }
    }
}

#[test]
fn a_second_run_changes_nothing() -> Result<()> {
    let database = format!("mcp_dev_test_{}", std::process::id());
    let _dropped = DropDatabase(database.clone());
    let first = setup_dev(&database)?;
    assert!(first.contains(&format!("created the database {database}")), "{first}");
    assert!(first.contains(&format!("migrated the log tables of {database}")), "{first}");
    let tables = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &database, "-qtA", "-c"])
        .arg("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('logs', 'quarantine')")
        .output()?;
    assert_eq!(String::from_utf8_lossy(&tables.stdout).trim(), "2", "the log tables are not there");
    let second = setup_dev(&database)?;
    assert!(second.contains("nothing to change"), "{second}");
    assert!(second.contains(&format!("the log tables of {database}")) && second.contains("Next:"), "{second}");
    Ok(())
}
