//! `mcp agents new`: an agent project in Rust, Python or JavaScript that
//! builds outside this repository with its language's registry only: the
//! SDK (and the WIT) is written from the binary into the project, with a
//! sample log file whose labels a test scores, a schema file when the log
//! type is the author's own, and a config that points `mcp` at both.

mod js;
mod python;
mod rust;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mcp_engine::config::McpConfig;
use mcp_storage::schema::valid_log_type;
use mcp_synth::author::made_up_entries;

use crate::assets::VENDOR;

/// What one language adds to a project.
struct LanguageProject {
    /// Its files, by path in the project.
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Lines of the project's .gitignore: build output and tools.
    ignored: &'static str,
    /// The commands that build the component, in order.
    build: Vec<String>,
    /// The command that runs the project's own test.
    test: String,
    /// Where the built component is, in the project.
    wasm: String,
    /// What the README says of where the SDK comes from.
    sdk_note: &'static str,
}

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
    match &schema_text {
        Some(text) => files.push((schemas_dir.join(format!("{log_type}.yaml")), text.clone().into_bytes())),
        // The folder mcp.toml names, so `config check` finds it.
        None => files.push((
            schemas_dir.join("README.md"),
            "Schema files of your own log types (docs/log_schemas.md); the bundled ones need none.\n".into(),
        )),
    }
    let samples = sample_lines(config, log_type, schema_text.as_deref())?;
    files.push((dir.join("samples").join(format!("{log_type}.jsonl")), samples.into_bytes()));
    let project = match language {
        Language::Rust => rust::project(name, log_type),
        Language::Python => python::project(name, log_type),
        Language::Js => js::project(name, log_type)?,
    };
    files.extend(project.files.iter().map(|(path, bytes)| (dir.join(path), bytes.clone())));
    files.push((dir.join("mcp.toml"), "# `mcp --config mcp.toml ...` from this folder: your schema files before the bundled ones.\ndata_dir = \".mcp\"\nschema_dir = \"schemas\"\n".into()));
    // /mcp-data/: what `mcp` makes when run here without `--config mcp.toml`.
    files.push((dir.join(".gitignore"), format!("{}/.mcp/\n/mcp-data/\n", project.ignored).into_bytes()));
    files.push((dir.join("README.md"), readme(name, log_type, own_schema, &project).into_bytes()));
    for (path, bytes) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(next_steps(name, log_type, dir, &project))
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

/// The WIT of the protocol the SDKs speak, from the vendored Rust SDK.
fn wit_files() -> impl Iterator<Item = (PathBuf, Vec<u8>)> {
    VENDOR.iter().filter_map(|(relative, bytes)| {
        relative.strip_prefix("mcp-sdk/").filter(|p| p.starts_with("wit/")).map(|p| (PathBuf::from(p), bytes.to_vec()))
    })
}

/// `burst-finder` -> `BurstFinder`: the agent's class or type name.
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

/// A template with the agent's name, log type and type name filled in.
fn fill(template: &str, name: &str, log_type: &str) -> Vec<u8> {
    template
        .replace("{{NAME}}", name)
        .replace("{{LOG_TYPE}}", log_type)
        .replace("{{TYPE}}", &type_name(name))
        .into_bytes()
}

/// The commands that check the built component and score it on the samples.
fn check_and_score(log_type: &str, wasm: &str) -> [String; 2] {
    [
        format!("mcp --config mcp.toml agents check {wasm}"),
        format!("mcp --config mcp.toml agents test {wasm} --logs samples/{log_type}.jsonl --labels label --min-f1 0.9"),
    ]
}

fn readme(name: &str, log_type: &str, own_schema: bool, project: &LanguageProject) -> String {
    let schema = if own_schema {
        format!(
            "`schemas/{log_type}.yaml` describes your log type; edit it to your logs' fields (docs/log_schemas.md)."
        )
    } else {
        format!("`{log_type}` is a bundled log type; `schemas/` is for your own.")
    };
    let commands = [project.build.clone(), check_and_score(log_type, &project.wasm).to_vec()].concat().join("\n");
    format!(
        "# {name}\n\nAn MCP agent for `{log_type}` logs, made by `mcp agents new`. {schema}\n\n\
         ```sh\n{commands}\n```\n\n`{test}` runs the project's test. {sdk}\n\n\
         Hand the `.wasm` to your operator, or upload it: `POST /v1/agents` (docs/api_usage.md).\n",
        test = project.test,
        sdk = project.sdk_note,
    )
}

fn next_steps(name: &str, log_type: &str, dir: &Path, project: &LanguageProject) -> String {
    let mut steps = vec![format!("cd {}", dir.display())];
    steps.extend(project.build.iter().cloned());
    steps.extend(check_and_score(log_type, &project.wasm));
    format!(
        "agent project {name} for '{log_type}' logs written to {}\n\nnext:\n  {}\n\nits test: {}",
        dir.display(),
        steps.join("\n  "),
        project.test
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
