//! config/notifications.toml: channels and routes the operator keeps in a
//! file, applied at every start (the file is their truth; the API cannot
//! change them). Secrets in it are environment variables only.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::SecretKey;
use crate::spec::{ChannelSpec, Owner};
use mcp_engine::config::NotificationsConfig;
use mcp_storage::control::{ControlError, ControlStore};
use mcp_storage::notify::{ChannelRecord, Managed, RouteRecord};

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsFile {
    #[serde(default)]
    pub channel: Vec<FileChannel>,
    #[serde(default)]
    pub route: Vec<FileRoute>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileChannel {
    pub tenant: String,
    pub name: String,
    #[serde(flatten)]
    pub spec: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    pub tenant: String,
    #[serde(flatten)]
    pub route: RouteRecord,
}

/// What is wrong with the file, with where.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// The file `config` names, else config/notifications.toml when it exists.
pub fn seed_path(config: &NotificationsConfig) -> Option<PathBuf> {
    config.file.clone().or_else(|| Some(PathBuf::from("config/notifications.toml")).filter(|p| p.exists()))
}

/// What the file holds: channels, and routes with their tenant.
pub type Seed = (Vec<ChannelRecord>, Vec<(String, RouteRecord)>);

/// Reads and checks the file: every channel's settings, every route's
/// channel and names.
pub fn read(path: &Path, defaults: &NotificationsConfig) -> Result<Seed, SeedError> {
    let shown = path.display().to_string();
    let bad = |message: String| SeedError::File { path: shown.clone(), message };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let file: NotificationsFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut channels = Vec::new();
    for (i, entry) in file.channel.iter().enumerate() {
        let at = format!("channel[{i}] ({}/{})", entry.tenant, entry.name);
        check_name(&entry.name).map_err(|m| bad(format!("{at}: name: {m}")))?;
        let json = serde_json::to_value(&entry.spec).map_err(|e| bad(format!("{at}: {e}")))?;
        let spec = ChannelSpec::from_json(json).map_err(|e| bad(format!("{at}: {e}")))?;
        spec.validate(&Owner::Operator).map_err(|e| bad(format!("{at}: {e}")))?;
        // Only environment references reach here, which need no key.
        let record = spec
            .to_record(&entry.tenant, &entry.name, &SecretKey::none(), defaults, Managed::Config)
            .map_err(|e| bad(format!("{at}: {e}")))?;
        channels.push(record);
    }
    let mut routes = Vec::new();
    for (i, entry) in file.route.iter().enumerate() {
        let at = format!("route[{i}] ({}/{})", entry.tenant, entry.route.name);
        check_name(&entry.route.name).map_err(|m| bad(format!("{at}: name: {m}")))?;
        check_route(&entry.route).map_err(|m| bad(format!("{at}: {m}")))?;
        if !channels.iter().any(|c| c.tenant == entry.tenant && c.name == entry.route.channel) {
            return Err(bad(format!(
                "{at}: channel: no channel '{}' of tenant '{}' in this file",
                entry.route.channel, entry.tenant
            )));
        }
        routes.push((entry.tenant.clone(), entry.route.clone()));
    }
    Ok((channels, routes))
}

/// Applies the file `config` names (if any) to `control`; returns how many
/// channels and routes it holds.
pub fn apply(control: &ControlStore, config: &NotificationsConfig) -> Result<(usize, usize), SeedError> {
    let path = seed_path(config);
    if path.is_none() && control.is_shared() {
        // On a control store every node shares, a node started without the
        // file must not take away the channels the other nodes' file made.
        tracing::info!("no notifications file: the shared control store's channels and routes are left as they are");
        return Ok((0, 0));
    }
    let (channels, routes) = match &path {
        Some(path) => read(path, config)?,
        None => (Vec::new(), Vec::new()),
    };
    control.seed_notifications(&channels, &routes)?;
    let tenants = control.tenants()?;
    for channel in channels.iter().filter(|c| !tenants.contains(&c.tenant)) {
        tracing::warn!(
            tenant = %channel.tenant,
            channel = %channel.name,
            file = %path.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
            "the notifications file names a tenant that does not exist (yet) in this node's control store: its \
             channel gets nothing until it does (`mcp tenants create`)"
        );
    }
    Ok((channels.len(), routes.len()))
}

/// A channel's or route's name: what a URL path segment holds safely.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid { Ok(()) } else { Err("1 to 64 of a-z, 0-9, '-' and '_'".into()) }
}

/// The severities a route may name.
pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// Checks a route's fields, naming the first wrong one.
pub fn check_route(route: &RouteRecord) -> Result<(), String> {
    check_name(&route.channel).map_err(|m| format!("channel: {m}"))?;
    for severity in &route.severities {
        if !SEVERITIES.contains(&severity.as_str()) {
            return Err(format!("severities: '{severity}' is not one of {}", SEVERITIES.join(", ")));
        }
    }
    for (field, values) in [
        ("severities", &route.severities),
        ("agents", &route.agents),
        ("log_types", &route.log_types),
        ("labels", &route.labels),
    ] {
        if values.len() > 50 {
            return Err(format!("{field}: at most 50 values"));
        }
        if values.iter().any(|v| v.is_empty() || v.chars().count() > 256) {
            return Err(format!("{field}: each value 1 to 256 characters"));
        }
    }
    if !(0.0..=1.0).contains(&route.min_score) {
        return Err("min_score: must be from 0 to 1".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notifications.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn the_shipped_file_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/notifications.toml");
        let (channels, routes) = read(&path, &NotificationsConfig::default()).unwrap();
        assert!(!channels.is_empty() && !routes.is_empty());
    }

    #[test]
    fn mistakes_in_the_file_name_the_entry_and_field() {
        let (_d, path) = write(
            "[[channel]]\ntenant = \"a\"\nname = \"ops\"\nkind = \"slack\"\nurl = { value = \"https://hooks.example/x\" }\n",
        );
        let e = read(&path, &NotificationsConfig::default()).unwrap_err().to_string();
        assert!(e.contains("channel[0] (a/ops): url:") && e.contains("never by value"), "{e}");
        let (_d, path) = write(
            "[[channel]]\ntenant = \"a\"\nname = \"ops\"\nkind = \"log\"\n[[route]]\ntenant = \"a\"\nname = \"r\"\nchannel = \"nope\"\n",
        );
        let e = read(&path, &NotificationsConfig::default()).unwrap_err().to_string();
        assert!(e.contains("route[0] (a/r): channel: no channel 'nope'"), "{e}");
        let (_d, path) =
            write("[[route]]\ntenant = \"a\"\nname = \"r\"\nchannel = \"ops\"\nseverities = [\"urgent\"]\n");
        let e = read(&path, &NotificationsConfig::default()).unwrap_err().to_string();
        assert!(e.contains("severities: 'urgent'"), "{e}");
    }
}
