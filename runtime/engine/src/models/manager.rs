//! The ModelManager: finds versions on disk, validates them, serves the
//! active one (or a named one) to agents, records activations and
//! rollbacks, and picks up new version directories as they appear.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use super::state::State;
use super::{LoadedModel, ModelError, ModelEvent, ModelMetadata, valid_component};
use mcp_storage::jobstatus::now_ms;

/// One version found on disk, as `mcp models list` shows it.
#[derive(Debug, Clone)]
pub struct VersionListing {
    pub agent: String,
    pub version: String,
    pub active: bool,
    pub family: Option<String>,
    /// `None` when it validates; why not otherwise.
    pub refused: Option<String>,
    /// When it was trained, as its metadata says.
    pub created: Option<String>,
    /// Its metadata's figures (precision, recall, F1 on training and
    /// validation data); empty for a refused version.
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// What a version directory looked like when it was last validated.
type Fingerprint = Vec<(u64, Option<SystemTime>)>;

#[derive(Debug)]
pub struct ModelManager {
    dir: PathBuf,
    state: Mutex<State>,
    loaded: RwLock<HashMap<(String, String), Arc<LoadedModel>>>,
    /// Versions seen by the watcher, with what their files looked like.
    seen: Mutex<HashMap<(String, String), Fingerprint>>,
    /// The version in force per agent, as last read from the state: every
    /// inference asks, and SQLite costs more than the inference of one row.
    /// Cleared by each watcher pass, so changes made by another process
    /// arrive within one interval.
    active: RwLock<HashMap<String, Option<String>>>,
}

/// Orders versions as people do: "2" before "10", "1.2" before "1.10".
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(v: &str) -> Vec<(u64, String)> {
        v.trim_start_matches('v')
            .split(['.', '-', '_'])
            .map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                (digits.parse().unwrap_or(0), p[digits.len()..].to_string())
            })
            .collect()
    }
    parts(a).cmp(&parts(b)).then_with(|| a.cmp(b))
}

fn fingerprint(dir: &Path) -> Fingerprint {
    ["model.onnx", "metadata.json"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map_or((0, None), |m| (m.len(), m.modified().ok())))
        .collect()
}

fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| valid_component(n) && !n.starts_with('.'))
        .collect();
    names.sort_by(|a, b| version_order(a, b));
    names
}

impl ModelManager {
    /// Models under `dir`; activations and events in the SQLite file `state`.
    pub fn open(dir: &Path, state: &Path) -> Result<Self, ModelError> {
        Ok(ModelManager {
            dir: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
            state: Mutex::new(State::open(state)?),
            loaded: RwLock::default(),
            seen: Mutex::default(),
            active: RwLock::default(),
        })
    }

    /// Models under `dir`; activations and events in the PostgreSQL of
    /// `store`, shared by every node (`model_state = "postgres"`).
    pub fn open_shared(dir: &Path, store: std::sync::Arc<mcp_storage::shared_store::SharedStore>) -> Self {
        ModelManager {
            dir: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
            state: Mutex::new(State::Shared(store)),
            loaded: RwLock::default(),
            seen: Mutex::default(),
            active: RwLock::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Agents with a model directory.
    pub fn agents(&self) -> Vec<String> {
        subdirs(&self.dir).into_iter().filter(|a| !a.eq_ignore_ascii_case("train")).collect()
    }

    /// An agent's versions on disk, oldest first.
    pub fn versions(&self, agent: &str) -> Vec<String> {
        if !valid_component(agent) {
            return Vec::new();
        }
        subdirs(&self.dir.join(agent))
    }

    fn record(&self, agent: &str, version: &str, action: &str, detail: &str) {
        match action {
            "refuse" => tracing::warn!(agent, version, "model refused: {detail}"),
            _ => tracing::info!(agent, version, action, "{detail}"),
        }
        let event = ModelEvent {
            at_ms: now_ms(),
            agent: agent.into(),
            version: version.into(),
            action: action.into(),
            detail: detail.into(),
        };
        match self.state.lock() {
            Ok(mut state) => {
                if let Err(e) = state.record(&event) {
                    tracing::error!(agent, version, "cannot record the model event: {e}");
                }
            }
            Err(_) => tracing::error!(agent, version, "cannot record the model event: state lock poisoned"),
        }
    }

    /// Reads and checks a version's metadata, then loads it with tract.
    fn validate(&self, agent: &str, version: &str) -> Result<LoadedModel, ModelError> {
        if !valid_component(agent) || !valid_component(version) {
            return Err(ModelError::NotFound { agent: agent.into(), version: Some(version.into()) });
        }
        // Read through a capability directory: the names were checked above,
        // and a symlink inside the models folder that points out of it is
        // not followed.
        let not_found = || ModelError::NotFound { agent: agent.into(), version: Some(version.into()) };
        let root =
            cap_std::fs::Dir::open_ambient_dir(&self.dir, cap_std::ambient_authority()).map_err(|_| not_found())?;
        let Ok(dir) = root.open_dir(agent).and_then(|a| a.open_dir(version)) else {
            return Err(not_found());
        };
        let shown = |file: &str| self.dir.join(agent).join(version).join(file).display().to_string();
        let text = dir
            .read_to_string("metadata.json")
            .map_err(|source| ModelError::Io { path: shown("metadata.json"), source })?;
        let metadata: ModelMetadata = serde_json::from_str(&text).map_err(|e| ModelError::Invalid {
            agent: agent.into(),
            version: version.into(),
            detail: format!("metadata.json: {e}"),
        })?;
        if metadata.agent != agent || metadata.version != version {
            return Err(ModelError::Invalid {
                agent: agent.into(),
                version: version.into(),
                detail: format!(
                    "metadata.json says agent '{}' version '{}'; it sits in {agent}/{version}",
                    metadata.agent, metadata.version
                ),
            });
        }
        let onnx = dir.read("model.onnx").map_err(|source| ModelError::Io { path: shown("model.onnx"), source })?;
        LoadedModel::load_checked(&onnx, metadata)
    }

    /// A version, loaded once and shared; validated on first load.
    pub fn load(&self, agent: &str, version: &str) -> Result<Arc<LoadedModel>, ModelError> {
        let found = self
            .loaded
            .read()
            .map_err(|_| ModelError::Poisoned)?
            .iter()
            .find(|((a, v), _)| a == agent && v == version)
            .map(|(_, model)| model.clone());
        if let Some(model) = found {
            return Ok(model);
        }
        let key = (agent.to_string(), version.to_string());
        let model = match self.validate(agent, version) {
            Ok(model) => Arc::new(model),
            Err(e) => {
                if !matches!(e, ModelError::NotFound { .. }) {
                    self.record(agent, version, "refuse", &e.to_string());
                }
                return Err(e);
            }
        };
        self.record(
            agent,
            version,
            "load",
            &format!("{} model loaded and checked against its reference outputs", model.metadata.family),
        );
        self.loaded.write().map_err(|_| ModelError::Poisoned)?.insert(key, model.clone());
        Ok(model)
    }

    /// The version in force: the last activation not rolled back, else the
    /// newest version on disk that validates.
    pub fn active_version(&self, agent: &str) -> Result<Option<String>, ModelError> {
        if let Some(known) = self.active.read().map_err(|_| ModelError::Poisoned)?.get(agent) {
            return Ok(known.clone());
        }
        let recorded = self.state.lock().map_err(|_| ModelError::Poisoned)?.active(agent)?;
        let version = match recorded {
            Some(version) => Some(version),
            None => self.versions(agent).into_iter().rev().find(|v| self.load(agent, v).is_ok()),
        };
        self.active.write().map_err(|_| ModelError::Poisoned)?.insert(agent.to_string(), version.clone());
        Ok(version)
    }

    fn forget_active(&self, agent: &str) {
        if let Ok(mut active) = self.active.write() {
            active.remove(agent);
        }
    }

    /// The model to serve: `version`, or the active one.
    pub fn model(&self, agent: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, ModelError> {
        match version {
            Some(version) => self.load(agent, version),
            None => {
                let version = self
                    .active_version(agent)?
                    .ok_or_else(|| ModelError::NotFound { agent: agent.into(), version: None })?;
                self.load(agent, &version)
            }
        }
    }

    /// Validates `version` and puts it in force. A version that fails
    /// validation is refused and the one in force stays.
    pub fn activate(&self, agent: &str, version: &str) -> Result<Arc<LoadedModel>, ModelError> {
        let model = self.load(agent, version)?;
        self.state.lock().map_err(|_| ModelError::Poisoned)?.activate(agent, version, now_ms())?;
        self.forget_active(agent);
        self.record(agent, version, "activate", "activated");
        Ok(model)
    }

    /// Puts a version the watcher found in force unless it was ever in
    /// force (here or, with shared state, on another node); whether this
    /// call did.
    fn activate_new(&self, agent: &str, version: &str) -> Result<bool, ModelError> {
        self.load(agent, version)?;
        let added = self.state.lock().map_err(|_| ModelError::Poisoned)?.activate_first(agent, version, now_ms())?;
        if added {
            self.forget_active(agent);
            self.record(agent, version, "activate", "activated");
        }
        Ok(added)
    }

    /// Puts the version in force before the current one back in force.
    pub fn rollback(&self, agent: &str) -> Result<String, ModelError> {
        let rolled = self.state.lock().map_err(|_| ModelError::Poisoned)?.roll_back(agent)?;
        let Some((from, to)) = rolled else { return Err(ModelError::NoPrevious { agent: agent.into() }) };
        self.forget_active(agent);
        self.load(agent, &to)?;
        self.record(agent, &to, "rollback", &format!("rolled back from {from}"));
        Ok(to)
    }

    /// The recorded events of an agent's models, oldest first.
    pub fn events(&self, agent: &str) -> Result<Vec<ModelEvent>, ModelError> {
        self.state.lock().map_err(|_| ModelError::Poisoned)?.events(agent)
    }

    /// Every version on disk, validated.
    pub fn list(&self) -> Result<Vec<VersionListing>, ModelError> {
        let mut listing = Vec::new();
        for agent in self.agents() {
            let active = self.active_version(&agent)?;
            for version in self.versions(&agent) {
                let loaded = self.load(&agent, &version);
                listing.push(VersionListing {
                    active: active.as_deref() == Some(version.as_str()),
                    family: loaded.as_ref().ok().map(|m| m.metadata.family.clone()),
                    created: loaded.as_ref().ok().map(|m| m.metadata.created.clone()),
                    metrics: loaded.as_ref().map(|m| m.metadata.metrics.clone()).unwrap_or_default(),
                    refused: loaded.err().map(|e| e.to_string()),
                    agent: agent.clone(),
                    version,
                });
            }
        }
        Ok(listing)
    }

    /// Copies a model (a directory holding model.onnx and metadata.json) in
    /// as `agent`/`version`, after checking it; a refused copy is removed.
    pub fn add(&self, from: &Path, agent: &str, version: &str) -> Result<Arc<LoadedModel>, ModelError> {
        if !valid_component(agent) || !valid_component(version) {
            return Err(ModelError::Invalid {
                agent: agent.into(),
                version: version.into(),
                detail: "agent and version must be 1 to 64 of a-z, A-Z, 0-9, '.', '-' and '_'".into(),
            });
        }
        let target = self.dir.join(agent).join(version);
        if target.exists() {
            return Err(ModelError::Invalid {
                agent: agent.into(),
                version: version.into(),
                detail: format!("{agent}/{version} exists already; versions are never overwritten"),
            });
        }
        let source =
            if from.is_dir() { from.to_path_buf() } else { from.parent().unwrap_or(Path::new(".")).to_path_buf() };
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| ModelError::Io { path, source }
        };
        // Copy into a hidden staging folder first so the watcher never sees
        // half a version.
        let staging = self.dir.join(agent).join(format!(".adding-{version}"));
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        for file in ["model.onnx", "metadata.json"] {
            let result = std::fs::copy(source.join(file), staging.join(file)).map_err(io(&source.join(file)));
            if let Err(e) = result {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        }
        std::fs::rename(&staging, &target).map_err(io(&target))?;
        match self.load(agent, version) {
            Ok(model) => Ok(model),
            Err(e) => {
                if let Err(cleanup) = std::fs::remove_dir_all(&target) {
                    tracing::error!(agent, version, "cannot remove the refused model: {cleanup}");
                }
                Err(e)
            }
        }
    }

    /// One pass of the watcher: validates versions that are new or whose
    /// files changed, and activates a version never activated before that
    /// is newer than the one in force. Returns the versions activated.
    pub fn scan(&self) -> Vec<(String, String)> {
        let mut activated = Vec::new();
        if let Ok(mut active) = self.active.write() {
            active.clear();
        }
        for agent in self.agents() {
            for version in self.versions(&agent) {
                let dir = self.dir.join(&agent).join(&version);
                let print = fingerprint(&dir);
                let key = (agent.clone(), version.clone());
                let Ok(mut seen) = self.seen.lock() else { return activated };
                let known = seen.get(&key).cloned();
                if known.as_ref() == Some(&print) {
                    continue;
                }
                seen.insert(key.clone(), print);
                drop(seen);
                if known.is_some() {
                    // Changed files: drop the cached copy so the version is checked again.
                    if let Ok(mut loaded) = self.loaded.write() {
                        loaded.remove(&key);
                    }
                }
                let Ok(model) = self.load(&agent, &version) else { continue };
                // Only a version never put in force is activated: one rolled
                // back from must stay rolled back after a restart.
                let Ok(state) = self.state.lock() else { return activated };
                let recorded = state.active(&agent).ok().flatten();
                let fresh = !state.ever_activated(&agent, &version).unwrap_or(true);
                drop(state);
                let newer = recorded.as_deref().is_none_or(|a| version_order(&version, a).is_gt());
                if fresh && newer && self.activate_new(&agent, &version).unwrap_or(false) {
                    tracing::info!(agent, version, family = %model.metadata.family, "new model version picked up");
                    activated.push(key);
                }
            }
        }
        activated
    }

    /// Scans every `interval` on a thread of its own until the manager is
    /// dropped by everyone else.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> std::thread::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        std::thread::spawn(move || {
            while let Some(manager) = weak.upgrade() {
                manager.scan();
                drop(manager);
                std::thread::sleep(interval);
            }
        })
    }
}
