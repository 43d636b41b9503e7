//! Builds guest crates of this workspace for wasm32-wasip2 from a build
//! script, with a nested cargo that has its own target directory (so it never
//! waits on the lock of the build that runs the script), and copies the
//! components into `OUT_DIR`.
//!
//! Used by `mcp-agent-artifacts` (the bundled agents, which the `mcp` binary
//! embeds) and `mcp-fixtures` (hostile and measurement guests, for tests).
#![allow(clippy::print_stdout)]

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every guest is built for.
pub const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

/// One guest crate to build.
#[derive(Debug, Clone, Copy)]
pub struct Guest {
    /// Its package name.
    pub package: &'static str,
    /// Its folder, from the workspace root.
    pub folder: &'static str,
    /// The file name it is copied to under `OUT_DIR`.
    pub file: &'static str,
}

/// Builds `guests`, copies them into `OUT_DIR` and returns their paths there.
/// `root_from_manifest` is how many folders up the workspace root is.
pub fn build(guests: &[Guest], root_from_manifest: usize) -> Result<Vec<PathBuf>, String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let mut root = manifest_dir.as_path();
    for _ in 0..root_from_manifest {
        root = root.parent().ok_or("cannot find the workspace root")?;
    }
    let root = root.to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);

    // Only files that exist: a watched path that does not exist makes cargo
    // rerun the script, and rebuild everything above it, on every build.
    let shared = ["wit", "sdk", "runtime/columns", "Cargo.lock"];
    for watched in shared.iter().chain(guests.iter().map(|g| &g.folder)) {
        let path = root.join(watched);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    ensure_target()?;

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = root.join("target").join("wasm-guests");
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--locked", "--target", TARGET, "--profile", PROFILE, "--target-dir"])
        .arg(&target_dir);
    for guest in guests {
        command.args(["-p", guest.package]);
    }
    // The outer build's flags, wrappers (clippy-driver) and target settings are
    // for the host; the guests get a clean slate.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "CLIPPY_ARGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    let status = command.status().map_err(|e| format!("cannot run cargo for the guests: {e}"))?;
    if !status.success() {
        return Err(format!("building the guests for {TARGET} failed ({status}); the cargo output above says why"));
    }

    let built = target_dir.join(TARGET).join(PROFILE);
    let mut paths = Vec::new();
    for guest in guests {
        let artifact = built.join(format!("{}.wasm", guest.package.replace('-', "_")));
        let dest = out_dir.join(guest.file);
        copy_if_changed(&artifact, &dest)?;
        paths.push(dest);
    }
    Ok(paths)
}

/// Copies unless the destination already holds the same bytes, so that an
/// unchanged guest leaves its dependents' fingerprints alone.
fn copy_if_changed(from: &Path, to: &Path) -> Result<(), String> {
    let bytes = fs::read(from).map_err(|e| format!("read {}: {e}", from.display()))?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    if fs::read(to).ok().as_deref() == Some(bytes.as_slice()) {
        return Ok(());
    }
    fs::write(to, bytes).map_err(|e| format!("write {}: {e}", to.display()))
}

/// Installs the wasm32-wasip2 target through rustup when it is missing.
fn target_installed() -> Result<bool, std::io::Error> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET))
}

/// Whether another install of the target completes within `wait`.
fn installed_within(wait: std::time::Duration) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < wait {
        if target_installed().unwrap_or(false) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    false
}

fn ensure_target() -> Result<(), String> {
    match target_installed() {
        Ok(true) => Ok(()),
        Ok(false) => {
            let status = Command::new("rustup")
                .args(["target", "add", TARGET])
                .status()
                .map_err(|e| format!("cannot run rustup to add {TARGET}: {e}"))?;
            // Two build scripts may race to install it; the loser's rustup
            // fails with a conflict while the winner's install completes.
            if status.success() || installed_within(std::time::Duration::from_secs(120)) {
                Ok(())
            } else {
                Err(format!("`rustup target add {TARGET}` failed; install the target by hand and build again"))
            }
        }
        Err(e) => Err(format!(
            "rustup is needed to install the {TARGET} target ({e}); install it with `rustup target add {TARGET}` by other means"
        )),
    }
}

/// Ends a build script with `message` (a build script reports failure by panicking).
pub fn fail(crate_name: &str, message: &str) -> ! {
    #[allow(clippy::panic)]
    {
        panic!("\n\n{crate_name}: {message}\n\n");
    }
}
