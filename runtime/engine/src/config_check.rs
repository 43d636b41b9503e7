//! `mcp config check`: every problem of a configuration at once, each with
//! where it came from, so an operator fixes them in one pass instead of one
//! failed start at a time. Loading stops at the first problem; this looks
//! at each key and each `MCP_*` variable alone, then at what the values
//! point to (folders, PostgreSQL, Redis, schema files, models).

use std::path::Path;

use crate::config::{McpConfig, apply_env, config_path, resolve_paths_against};

/// One problem: where it came from (a file and key, a variable, a service)
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: String,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.origin, self.detail)
    }
}

/// What a check found: the problems, and what was looked at and found
/// sound (for the report a person reads).
#[derive(Debug, Default)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    pub checked: Vec<String>,
}

impl CheckReport {
    pub fn problem(&mut self, origin: impl Into<String>, detail: impl Into<String>) {
        self.problems.push(Problem { origin: origin.into(), detail: detail.into() });
    }
}

/// Checks the file at `path` (or config/mcp.toml, or the defaults) and the
/// `MCP_*` variables of `env`; with `services`, connects to PostgreSQL and
/// Redis when they are configured.
pub fn check(path: Option<&Path>, env: Vec<(String, String)>, services: bool) -> CheckReport {
    let mut report = CheckReport::default();
    let path = config_path(path);
    let mut table = match &path {
        Some(path) => file_table(path, &mut report),
        None => Some(toml::Table::new()),
    };
    if let (Some(table), Some(folder)) = (table.as_mut(), path.as_deref().and_then(Path::parent)) {
        resolve_paths_against(table, folder);
    }
    let Some(table) = table else { return report };
    let file = path.as_ref().map_or("built-in defaults".to_string(), |p| p.display().to_string());
    // Each part alone; those found wrong are left out of what is checked
    // whole next, so that the rest is still looked at.
    let mut sound = table.clone();
    for bad in each_key(&file, &table, &mut report) {
        match bad {
            (key, None) => drop(sound.remove(&key)),
            (key, Some(inner)) => {
                if let Some(toml::Value::Table(section)) = sound.get_mut(&key) {
                    section.remove(&inner);
                }
            }
        }
    }
    let env = each_variable(env, &mut report);
    let origin = match apply_env(&mut sound, env) {
        Ok(applied) if applied.is_empty() => file.clone(),
        Ok(applied) => format!("{file} with {}", applied.join(", ")),
        Err(e) => {
            report.problem(file, e.to_string());
            return report;
        }
    };
    let config = match McpConfig::from_table(sound, origin) {
        Ok(config) => config,
        Err(e) => {
            report.problem(file, e.to_string());
            return report;
        }
    };
    report.checked.push(format!("configuration from {}", config.origin()));
    addresses(&config, &mut report);
    stores(&config, &mut report);
    folders(&config, &mut report);
    schema_files(&config, &mut report);
    models(&config, &mut report);
    if services {
        postgres(&config, &mut report);
        redis(&config, &mut report);
    }
    report
}

/// The limits a service manager should hold the server to on this
/// machine, from the sandbox's ceilings: every instance at its memory
/// ceiling plus a GiB for the stores, models and export buffers; a thread
/// per run and export worker, two per core (the async runtime's workers and
/// blocking threads start per core) and room for the database pools.
pub fn service_limits(config: &McpConfig) -> (u64, u64) {
    let instances = u64::from(config.sandbox.max_instances) * config.sandbox.memory_bytes as u64;
    let memory = instances.saturating_add(1 << 30);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let tasks = 256 + 2 * cores + config.runs.running as u64 + config.exports.running as u64;
    (memory, tasks)
}

fn file_table(path: &Path, report: &mut CheckReport) -> Option<toml::Table> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            report.problem(name, format!("cannot read it: {e}"));
            return None;
        }
    };
    match toml::from_str::<toml::Table>(&text) {
        Ok(table) => Some(table),
        Err(e) => {
            report.problem(name, format!("not TOML: {}", e.to_string().trim_end()));
            None
        }
    }
}

/// Each key alone over the defaults: one wrong key cannot hide the next.
/// The wrong ones, as (key, key inside its section).
fn each_key(file: &str, table: &toml::Table, report: &mut CheckReport) -> Vec<(String, Option<String>)> {
    let mut wrong = Vec::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(section) if key != "agents" => {
                for (inner, value) in section {
                    let mut part = toml::Table::new();
                    part.insert(
                        key.clone(),
                        toml::Value::Table(toml::Table::from_iter([(inner.clone(), value.clone())])),
                    );
                    if let Err(e) = part.try_into::<McpConfig>() {
                        report.problem(format!("{file}: {key}.{inner}"), first_line(&e));
                        wrong.push((key.clone(), Some(inner.clone())));
                    }
                }
            }
            _ => {
                let part = toml::Table::from_iter([(key.clone(), value.clone())]);
                if let Err(e) = part.try_into::<McpConfig>() {
                    report.problem(format!("{file}: {key}"), first_line(&e));
                    wrong.push((key.clone(), None));
                }
            }
        }
    }
    wrong
}

/// Each `MCP_*` variable alone; the sound ones.
fn each_variable(env: Vec<(String, String)>, report: &mut CheckReport) -> Vec<(String, String)> {
    let mut sound = Vec::new();
    for (name, value) in env {
        if !name.starts_with("MCP_") {
            continue;
        }
        let mut part = toml::Table::new();
        if let Err(e) = apply_env(&mut part, [(name.clone(), value.clone())]) {
            report.problem(format!("environment: {name}"), e.to_string());
            continue;
        }
        if let Err(e) = part.try_into::<McpConfig>() {
            report.problem(format!("environment: {name}"), first_line(&e));
            continue;
        }
        sound.push((name, value));
    }
    sound
}

fn first_line(error: &toml::de::Error) -> String {
    let message = error.message().trim();
    message.lines().next().unwrap_or(message).to_string()
}

/// A store on PostgreSQL needs PostgreSQL.
fn stores(config: &McpConfig, report: &mut CheckReport) {
    if config.anomaly_store == crate::config::StoreKind::Postgres && config.database_url.is_none() {
        report.problem(
            "anomaly_store",
            "\"postgres\" keeps anomalies in the PostgreSQL of database_url, which is not set: set it (or \
             MCP_DATABASE_URL), or use anomaly_store = \"embedded\"",
        );
    }
    if config.model_state == crate::config::StoreKind::Postgres && config.database_url.is_none() {
        report.problem(
            "model_state",
            "\"postgres\" keeps model activations in the PostgreSQL of database_url, which is not set: set it (or \
             MCP_DATABASE_URL), or use model_state = \"embedded\"",
        );
    }
    if config.control_store == crate::config::StoreKind::Postgres && config.database_url.is_none() {
        report.problem(
            "control_store",
            "\"postgres\" keeps tenants, tokens and settings in the PostgreSQL of database_url, which is not set: \
             set it (or MCP_DATABASE_URL), or use control_store = \"embedded\"",
        );
    }
}

fn addresses(config: &McpConfig, report: &mut CheckReport) {
    let named = [("listen", Some(&config.listen)), ("metrics_listen", config.metrics_listen.as_ref())];
    for (key, address) in named {
        if let Some(address) = address
            && address.parse::<std::net::SocketAddr>().is_err()
        {
            report.problem(key, format!("'{address}' is not an address such as 127.0.0.1:8080"));
        }
    }
}

/// The data folder must be writable, or makeable where it is missing (the
/// check makes nothing); the folders read from must be readable.
fn folders(config: &McpConfig, report: &mut CheckReport) {
    let data = &config.data_dir;
    let existing = data.ancestors().find(|p| p.exists()).unwrap_or(Path::new("."));
    let existing = if existing.as_os_str().is_empty() { Path::new(".") } else { existing };
    match tempfile::tempfile_in(existing) {
        Ok(_) if existing == data => report.checked.push(format!("data_dir {} is writable", data.display())),
        Ok(_) => report.checked.push(format!("data_dir {} can be made in {}", data.display(), existing.display())),
        Err(e) if existing == data => {
            report.problem("data_dir", format!("{} is not a writable folder: {e}", data.display()))
        }
        Err(e) => report.problem(
            "data_dir",
            format!("{} does not exist and cannot be made in {}: {e}", data.display(), existing.display()),
        ),
    }
    let read =
        [("agents_dir", &config.agents_dir), ("schema_dir", &config.schema_dir), ("models_dir", &config.models_dir)];
    for (key, dir) in read {
        let Some(dir) = dir else { continue };
        match std::fs::read_dir(dir) {
            Ok(_) => report.checked.push(format!("{key} {} is readable", dir.display())),
            Err(e) => report.problem(key, format!("{} cannot be read: {e}", dir.display())),
        }
    }
}

fn schema_files(config: &McpConfig, report: &mut CheckReport) {
    let Some(dir) = &config.schema_dir else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let files = config.schema_files();
    let mut count = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let Some(log_type) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        count += 1;
        if let Err(e) = files.shape(log_type) {
            report.problem(format!("schema_dir: {}", path.display()), e.to_string());
        }
    }
    report.checked.push(format!("{count} schema files in {}", dir.display()));
}

fn models(config: &McpConfig, report: &mut CheckReport) {
    let Some(dir) = config.models_dir.as_ref().filter(|dir| dir.is_dir()) else { return };
    // The versions are read as the server reads them; its record of
    // activations (in data_dir) is left alone: a scratch one stands in.
    let scratch = match tempfile::tempdir() {
        Ok(scratch) => scratch,
        Err(e) => return report.problem("models_dir", format!("no scratch folder to check the models in: {e}")),
    };
    let manager = match crate::models::ModelManager::open(dir, &scratch.path().join("models.db")) {
        Ok(manager) => manager,
        Err(e) => return report.problem("models_dir", e.to_string()),
    };
    match manager.list() {
        Ok(listing) => {
            for refused in listing.iter().filter(|v| v.refused.is_some()) {
                report.problem(
                    format!("models_dir: {}/{}", refused.agent, refused.version),
                    refused.refused.clone().unwrap_or_default(),
                );
            }
            report.checked.push(format!("{} model versions in {}", listing.len(), manager.dir().display()));
        }
        Err(e) => report.problem("models_dir", e.to_string()),
    }
}

fn postgres(config: &McpConfig, report: &mut CheckReport) {
    if config.database_url.is_none() {
        return;
    }
    match config.log_source().and_then(|source| source.ping()) {
        Ok(()) => report.checked.push("PostgreSQL answers".into()),
        Err(e) => report.problem("database_url", format!("PostgreSQL does not answer: {e}")),
    }
}

fn redis(config: &McpConfig, report: &mut CheckReport) {
    if config.redis_url.is_none() {
        return;
    }
    match config.shared_cache().and_then(|cache| cache.ping()) {
        Ok(()) => report.checked.push("Redis answers".into()),
        Err(e) => report.problem("redis_url", format!("Redis does not answer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_key_and_variable_is_named_at_once() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("mcp.toml");
        std::fs::write(
            &path,
            "batch_sise = 5\nbatch_size = \"many\"\nlisten = \"nowhere\"\n[sandbox]\nmemory_bytes = -1\nbudget = \"epoch\"\n[exports]\nrows = 1\n",
        )?;
        let env = vec![
            ("MCP_TENNANT".to_string(), "x".to_string()),
            ("MCP_REPLAY_MS".to_string(), "soon".to_string()),
            ("MCP_ANOMALY_STORE".to_string(), "postgres".to_string()),
            ("MCP_MODEL_STATE".to_string(), "postgres".to_string()),
            ("MCP_CONTROL_STORE".to_string(), "postgres".to_string()),
        ];
        let report = check(Some(&path), env, false);
        let origins: Vec<&str> = report.problems.iter().map(|p| p.origin.rsplit(": ").next().unwrap_or("")).collect();
        for expected in [
            "batch_sise",
            "batch_size",
            "sandbox.memory_bytes",
            "exports.rows",
            "MCP_TENNANT",
            "MCP_REPLAY_MS",
            "listen",
            "anomaly_store",
            "model_state",
            "control_store",
        ] {
            assert!(origins.contains(&expected), "{expected} not named in {:?}", report.problems);
        }
        assert!(!origins.contains(&"sandbox.budget"), "{:?}", report.problems);
        Ok(())
    }

    #[test]
    fn a_sound_configuration_has_no_problem() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("mcp.toml");
        std::fs::write(&path, format!("data_dir = {:?}\n", dir.path().join("data")))?;
        let report = check(Some(&path), Vec::new(), false);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        Ok(())
    }
}
