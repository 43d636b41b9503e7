//! `mcp agents new`: an agent project that builds outside this repository,
//! offline but for crates.io: the SDK and the crate it uses are vendored
//! from the binary, with a sample log file whose labels a test scores, a
//! schema file when the log type is the author's own, and a config that
//! points `mcp` at both.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mcp_engine::config::McpConfig;
use mcp_storage::schema::valid_log_type;
use mcp_synth::author::made_up_entries;

use crate::assets::VENDOR;

/// The languages `agents new` writes a project for.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    Python,
    Js,
}

/// How many normal entries the sample file holds, and how many the burst
/// the template agent finds.
const NORMAL_ENTRIES: usize = 400;
const BURST_ENTRIES: usize = 150;

/// Writes the project for agent `name` of `log_type` into `dir` (made; it
/// must not exist yet) and returns what to run next.
pub fn new_project(config: &McpConfig, name: &str, log_type: &str, language: Language, dir: &Path) -> Result<String> {
    if language != Language::Rust {
        bail!("only --lang rust is built yet; Python and JavaScript agents are on docs/ROADMAP.md");
    }
    if !valid_log_type(name) || name.starts_with(|c: char| c.is_ascii_digit()) {
        bail!(
            "agent name '{}' must be 1 to 64 of a-z, 0-9, '-' and '_', not starting with a digit",
            name.escape_debug()
        );
    }
    if !valid_log_type(log_type) {
        bail!("log type '{}' must be 1 to 64 of a-z, 0-9, '-' and '_'", log_type.escape_debug());
    }
    if dir.exists() {
        bail!("{} exists already; give another name or --dir", dir.display());
    }
    // The log type's schema as `mcp` finds it; a starter file when it has none.
    let (schema_text, own_schema) = match config.schema_files().shape(log_type)? {
        Some(_) => (None, false),
        None => (Some(starter_schema(log_type)), true),
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let schemas_dir = dir.join("schemas");
    if let Some(text) = &schema_text {
        files.push((schemas_dir.join(format!("{log_type}.yaml")), text.clone().into_bytes()));
    }
    let samples = sample_lines(config, log_type, schema_text.as_deref())?;
    files.push((dir.join("samples").join(format!("{log_type}.jsonl")), samples.into_bytes()));
    files.push((dir.join("Cargo.toml"), cargo_toml(name).into_bytes()));
    files.push((dir.join("src/lib.rs"), agent_source(name, log_type).into_bytes()));
    files.push((dir.join("mcp.toml"), "# `mcp --config mcp.toml ...` from this folder: your schema files before the bundled ones.\ndata_dir = \".mcp\"\nschema_dir = \"schemas\"\n".into()));
    files.push((dir.join(".gitignore"), "/target/\n/.mcp/\n".into()));
    files.push((dir.join("README.md"), readme(name, log_type, own_schema).into_bytes()));
    for (relative, bytes) in VENDOR {
        files.push((dir.join("vendor").join(relative), bytes.to_vec()));
    }
    for (path, bytes) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(next_steps(name, log_type, dir))
}

/// A schema file to start from for a log type `mcp` does not know.
fn starter_schema(log_type: &str) -> String {
    format!(
        "# Your log type: declare the fields your logs carry (docs/log_schemas.md).\n\
         log_type: {log_type}\nversion: 1\ndescription: {log_type} logs.\nfields:\n  \
         - {{ name: message, type: text, required: true }}\n  \
         - {{ name: code, type: integer, default: 0 }}\n"
    )
}

/// Normal entries made up from the schema from five sources, then a burst
/// from one more, labelled: what the template agent finds, and what
/// `mcp agents test --labels label` scores.
fn sample_lines(config: &McpConfig, log_type: &str, own_schema: Option<&str>) -> Result<String> {
    let shape = match own_schema {
        Some(text) => Some(std::sync::Arc::new(mcp_storage::schema::parse(text, log_type, "starter schema")?)),
        None => config.schema_files().shape(log_type)?,
    };
    let shape = shape.with_context(|| format!("no schema for '{log_type}' to make samples from"))?;
    let entries = made_up_entries(&shape, NORMAL_ENTRIES + BURST_ENTRIES);
    let mut lines = String::new();
    for (n, entry) in entries.into_iter().enumerate() {
        let burst = n >= NORMAL_ENTRIES;
        let fields: serde_json::Value = serde_json::from_str(&entry.fields)?;
        let line = serde_json::json!({
            "timestamp_ms": entry.timestamp_ms,
            "source": if burst { "noisy-1".to_string() } else { entry.source },
            "fields": fields,
            "label": if burst { Some("burst") } else { None },
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    Ok(lines)
}

fn cargo_toml(name: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [lib]\n# cdylib: the component; rlib: the native tests.\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
         [dependencies]\nmcp-sdk = {{ path = \"vendor/mcp-sdk\" }}\n\n\
         [profile.release]\nlto = true\ncodegen-units = 1\nstrip = \"debuginfo\"\n\n\
         # Its own workspace, wherever the folder is put.\n[workspace]\n"
    )
}

/// `burst-finder` -> `BurstFinder`.
fn type_name(name: &str) -> String {
    let mut out = String::new();
    for part in name.split(['-', '_']).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() { "Agent".into() } else { out }
}

fn agent_source(name: &str, log_type: &str) -> String {
    TEMPLATE.replace("{{NAME}}", name).replace("{{LOG_TYPE}}", log_type).replace("{{TYPE}}", &type_name(name))
}

const TEMPLATE: &str = r#"//! {{NAME}}: flags a source that sends more than `burst_threshold` entries
//! of `{{LOG_TYPE}}` logs in one batch. A starting point: replace `detect`
//! with your detection, and `samples/{{LOG_TYPE}}.jsonl` with your logs.

use std::collections::HashMap;

use mcp_sdk::{Agent, AgentError, AgentInfo, Batch, Config, Finding, Severity, finding};

/// Entries one source may send in a batch before it is a burst.
const DEFAULT_THRESHOLD: usize = 100;

pub struct {{TYPE}} {
    threshold: usize,
}

impl Default for {{TYPE}} {
    fn default() -> Self {
        {{TYPE}} { threshold: DEFAULT_THRESHOLD }
    }
}

impl Agent for {{TYPE}} {
    fn info() -> AgentInfo {
        mcp_sdk::info(
            "{{NAME}}",
            "{{LOG_TYPE}}",
            env!("CARGO_PKG_VERSION"),
            "Flags a source that sends a burst of entries in one batch.",
            // The fields detect reads: the host refuses to run it without them.
            &[],
        )
    }

    /// Settings from `[agents.{{NAME}}]` of the operator's config file.
    fn configure(&mut self, config: &Config) -> Result<(), AgentError> {
        self.threshold = config.parse_or("burst_threshold", DEFAULT_THRESHOLD)?;
        Ok(())
    }

    fn detect(&mut self, batch: &Batch<'_>) -> Result<Vec<Finding>, AgentError> {
        let mut per_source: HashMap<&str, usize> = HashMap::new();
        for i in 0..batch.len() {
            *per_source.entry(batch.source(i)).or_default() += 1;
        }
        let count = |i: usize| per_source.get(batch.source(i)).copied().unwrap_or(0);
        Ok((0..batch.len())
            .filter(|&i| count(i) > self.threshold)
            .map(|i| {
                let reason = format!("{} sent {} entries in one batch", batch.source(i), count(i));
                finding(&batch.entry(i), 0.7, "burst", Severity::Medium, reason)
            })
            .collect())
    }
}

// The component's exports, for wasm only: native builds are for the tests.
#[cfg(target_arch = "wasm32")]
mcp_sdk::export_agent!({{TYPE}});

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_sdk::{LogEntry, batch_from_entries, run_batch};

    fn entries(source: &str, count: usize, first_id: u64) -> Vec<LogEntry> {
        (0..count)
            .map(|i| LogEntry {
                id: first_id + i as u64,
                timestamp_ms: i as i64,
                source: source.into(),
                log_type: "{{LOG_TYPE}}".into(),
                fields: "{}".into(),
            })
            .collect()
    }

    #[test]
    fn a_burst_from_one_source_is_found_and_nothing_else() -> Result<(), AgentError> {
        let mut all = entries("quiet", 50, 1);
        all.extend(entries("noisy", 150, 51));
        let batch = batch_from_entries("{{LOG_TYPE}}", 1, &all)?;
        let found = run_batch(&mut {{TYPE}}::default(), &batch)?;
        assert_eq!(found.len(), 150);
        assert!(found.iter().all(|f| f.entry.id > 50));
        Ok(())
    }
}
"#;

fn readme(name: &str, log_type: &str, own_schema: bool) -> String {
    let schema = if own_schema {
        format!(
            "`schemas/{log_type}.yaml` describes your log type; edit it to your logs' fields (docs/log_schemas.md)."
        )
    } else {
        format!("`{log_type}` is a bundled log type; `schemas/` is for your own.")
    };
    format!(
        "# {name}\n\nAn MCP agent for `{log_type}` logs, made by `mcp agents new`. {schema}\n\n\
         ```sh\nrustup target add wasm32-wasip2\ncargo test\n\
         cargo build --release --target wasm32-wasip2\n\
         mcp --config mcp.toml agents check target/wasm32-wasip2/release/{crate_file}.wasm\n\
         mcp --config mcp.toml agents test target/wasm32-wasip2/release/{crate_file}.wasm \\\n    \
         --logs samples/{log_type}.jsonl --labels label --min-f1 0.9\n```\n\n\
         `vendor/` holds the MCP SDK (protocol 0.2.0) and the crate it uses, so the project\n\
         builds anywhere with crates.io. Hand the `.wasm` to your operator, or upload it:\n\
         `POST /v1/agents` (docs/api_usage.md).\n",
        crate_file = name.replace('-', "_")
    )
}

fn next_steps(name: &str, log_type: &str, dir: &Path) -> String {
    let wasm = format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"));
    format!(
        "agent project {name} for '{log_type}' logs written to {}\n\nnext:\n  cd {}\n  cargo test\n  \
         cargo build --release --target wasm32-wasip2\n  mcp --config mcp.toml agents check {wasm}\n  \
         mcp --config mcp.toml agents test {wasm} --logs samples/{log_type}.jsonl --labels label --min-f1 0.9",
        dir.display(),
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_rust_types() {
        assert_eq!(type_name("burst-finder"), "BurstFinder");
        assert_eq!(type_name("dns_tunnel2"), "DnsTunnel2");
    }

    #[test]
    fn the_vendor_tree_stands_alone() {
        let manifest = VENDOR.iter().find(|(p, _)| *p == "mcp-sdk/Cargo.toml").map(|(_, b)| String::from_utf8_lossy(b));
        let manifest = manifest.unwrap_or_default();
        assert!(manifest.contains("path = \"../mcp-columns\""), "{manifest}");
        assert!(!manifest.contains("workspace"), "{manifest}");
        assert!(VENDOR.iter().any(|(p, _)| *p == "mcp-sdk/wit/0.2.0/agent.wit"));
        assert!(VENDOR.iter().any(|(p, _)| *p == "mcp-columns/src/lib.rs"));
    }
}
