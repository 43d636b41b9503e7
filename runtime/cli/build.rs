//! Lists the log schema files and shipped models to embed in the binary
//! (`src/assets.rs`), so adding a schema or a model version needs no code.

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
