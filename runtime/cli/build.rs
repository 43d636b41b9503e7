//! Lists the log schema files and shipped models to embed in the binary
//! (`src/assets.rs`), so adding a schema or a model version needs no code;
//! and embeds the Rust SDK with the crate it uses, as a vendor tree that
//! builds outside this workspace (`mcp agents new`, `src/scaffold.rs`).

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("../..");
    let mut out = String::new();
    embed(&mut out, "SCHEMAS", &root.join("config/log_schemas"), &|p| p.extension().is_some_and(|e| e == "yaml"));
    embed(&mut out, "MODELS", &root.join("models"), &|p| {
        // Version folders only (models/<agent>/<version>/...): not the training pipeline.
        p.components().count() >= 3 && !p.starts_with("train")
    });
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    vendor_tree(&mut out, &root, &out_dir);
    if let Err(e) = std::fs::write(out_dir.join("bundled.rs"), out) {
        #[allow(clippy::panic)]
        {
            panic!("mcp-cli: cannot write bundled.rs: {e}");
        }
    }
}

fn embed(out: &mut String, constant: &str, dir: &Path, keep: &dyn Fn(&Path) -> bool) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.retain(|relative| keep(relative));
    files.sort();
    let _ = writeln!(
        out,
        "/// Embedded files: (path under the folder, bytes).\npub const {constant}: &[(&str, &[u8])] = &["
    );
    for relative in files {
        let absolute = dir.join(&relative);
        let _ = writeln!(
            out,
            "    ({:?}, include_bytes!({:?})),",
            relative.display().to_string(),
            absolute.display().to_string()
        );
    }
    out.push_str("];\n");
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            walk(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            files.push(relative.to_path_buf());
        }
    }
}

/// The crates an agent project vendors: (folder in vendor/, folder here).
const VENDORED: [(&str, &str); 2] = [("mcp-sdk", "sdk"), ("mcp-columns", "runtime/columns")];

/// `VENDOR`: the SDK's and mcp-columns' sources and WIT, with manifests
/// rewritten to stand alone: workspace keys replaced by the workspace's
/// values, paths to each other made vendor/-relative.
fn vendor_tree(out: &mut String, root: &Path, out_dir: &Path) {
    let workspace = read_toml(&root.join("Cargo.toml"));
    let _ = writeln!(
        out,
        "/// The SDK's vendor tree: (path under vendor/, bytes).\npub const VENDOR: &[(&str, &[u8])] = &["
    );
    for (name, folder) in VENDORED {
        let dir = root.join(folder);
        println!("cargo:rerun-if-changed={}", dir.join("Cargo.toml").display());
        let manifest = standalone_manifest(&read_toml(&dir.join("Cargo.toml")), &workspace);
        let written = out_dir.join(format!("{name}.Cargo.toml"));
        if let Err(e) = std::fs::write(&written, manifest) {
            fail(&format!("cannot write {}: {e}", written.display()));
        }
        let _ = writeln!(out, "    (\"{name}/Cargo.toml\", include_bytes!({:?})),", written.display().to_string());
        let mut files = Vec::new();
        for sub in ["src", "wit/0.2.0"] {
            // Only folders that exist: a watched path that does not makes
            // cargo run this script again on every build.
            if dir.join(sub).is_dir() {
                walk(&dir, &dir.join(sub), &mut files);
                println!("cargo:rerun-if-changed={}", dir.join(sub).display());
            }
        }
        files.sort();
        for relative in files {
            let _ = writeln!(
                out,
                "    (\"{name}/{}\", include_bytes!({:?})),",
                relative.display(),
                dir.join(&relative).display().to_string()
            );
        }
    }
    out.push_str("];\n");
}

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())));
    text.parse().unwrap_or_else(|e| fail(&format!("{} is not TOML: {e}", path.display())))
}

fn standalone_manifest(manifest: &toml::Table, workspace: &toml::Table) -> String {
    let section = |name: &str| workspace.get("workspace").and_then(|w| w.get(name)).and_then(toml::Value::as_table);
    let (package_keys, dependencies) = (section("package").cloned().unwrap_or_default(), section("dependencies"));
    let mut manifest = manifest.clone();
    manifest.remove("lints");
    if let Some(toml::Value::Table(package)) = manifest.get_mut("package") {
        package.remove("publish");
        for (key, value) in package.clone() {
            if value.get("workspace").is_some() {
                match package_keys.get(&key) {
                    Some(inherited) => package.insert(key, inherited.clone()),
                    None => package.remove(&key),
                };
            }
        }
    }
    for table in ["dependencies", "dev-dependencies"] {
        let Some(toml::Value::Table(deps)) = manifest.get_mut(table) else { continue };
        for (name, spec) in deps.clone() {
            if spec.get("workspace").is_none() {
                continue;
            }
            let vendored = VENDORED.iter().any(|(vendored, _)| *vendored == name);
            let resolved = match dependencies.and_then(|d| d.get(&name)) {
                _ if vendored => toml::Value::Table(toml::Table::from_iter([(
                    "path".to_string(),
                    toml::Value::String(format!("../{name}")),
                )])),
                Some(found) => found.clone(),
                None => fail(&format!("{name} is not a workspace dependency")),
            };
            deps.insert(name, resolved);
        }
    }
    // Dev-dependencies are this repository's tests', not an author's.
    manifest.remove("dev-dependencies");
    toml::to_string(&manifest).unwrap_or_else(|e| fail(&format!("cannot write a manifest: {e}")))
}

#[allow(clippy::panic)]
fn fail(message: &str) -> ! {
    panic!("mcp-cli build script: {message}")
}
