//! Builds the bundled agents and the hostile test fixture for wasm32-wasip2
//! with a nested cargo, so that a plain `cargo build` or `cargo test` yields
//! them. The nested build has its own target directory, so it never waits on
//! the lock of the build that runs this script.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

/// (package, its folder, file name the host sees, folder under OUT_DIR)
const GUESTS: &[(&str, &str, &str, &str)] = &[
    ("mcp-agent-wifi", "agents-wasm/wifi", "wifi.wasm", "agents"),
    ("mcp-agent-firewall", "agents-wasm/firewall", "firewall.wasm", "agents"),
    ("mcp-agent-dns", "agents-wasm/dns", "dns.wasm", "agents"),
    ("mcp-fixture-hostile", "tests/fixtures/hostile", "hostile.wasm", "fixtures"),
    ("mcp-fixture-boundary", "tests/fixtures/boundary", "boundary.wasm", "fixtures"),
    ("mcp-fixture-proxy", "tests/fixtures/proxy", "proxy.wasm", "fixtures"),
];

fn main() {
    if let Err(message) = build() {
        // A build script reports failure by panicking; the message is the point.
        #[allow(clippy::panic)]
        {
            panic!("\n\nmcp-agent-artifacts: {message}\n\n");
        }
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let root = manifest_dir.parent().and_then(Path::parent).ok_or("cannot find the workspace root")?.to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);

    let shared = ["wit", "sdk", "Cargo.lock", ".cargo/config.toml"];
    for watched in shared.iter().chain(GUESTS.iter().map(|(_, folder, _, _)| folder)) {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    ensure_target()?;

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = root.join("target").join("wasm-guests");
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--target", TARGET, "--profile", PROFILE, "--target-dir"])
        .arg(&target_dir);
    for (package, _, _, _) in GUESTS {
        command.args(["-p", package]);
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
        return Err(format!("building the agents for {TARGET} failed ({status}); the cargo output above says why"));
    }

    let built = target_dir.join(TARGET).join(PROFILE);
    let mut constants = String::new();
    for (package, _, file, folder) in GUESTS {
        let artifact = built.join(format!("{}.wasm", package.replace('-', "_")));
        let dest_dir = out_dir.join(folder);
        fs::create_dir_all(&dest_dir).map_err(|e| e.to_string())?;
        let dest = dest_dir.join(file);
        fs::copy(&artifact, &dest).map_err(|e| format!("copy {}: {e}", artifact.display()))?;
        let constant = file.trim_end_matches(".wasm").to_uppercase();
        constants.push_str(&format!(
            "/// The built `{package}` component.\npub const {constant}: &str = {:?};\n",
            dest.display().to_string()
        ));
    }
    constants.push_str(&format!(
        "/// The folder holding the bundled agents.\npub const AGENTS_DIR: &str = {:?};\n",
        out_dir.join("agents").display().to_string()
    ));
    fs::write(out_dir.join("artifacts.rs"), constants).map_err(|e| e.to_string())?;
    Ok(())
}

/// Installs the wasm32-wasip2 target through rustup when it is missing.
fn ensure_target() -> Result<(), String> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET) => Ok(()),
        Ok(_) => {
            let status = Command::new("rustup")
                .args(["target", "add", TARGET])
                .status()
                .map_err(|e| format!("cannot run rustup to add {TARGET}: {e}"))?;
            if status.success() {
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
