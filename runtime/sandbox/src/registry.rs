//! The agent registry: components found in a directory or registered by hand,
//! each validated against the world and the protocol before it is accepted,
//! and addressed by name and sha256.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::{AgentInfo, AgentInstance, CacheOutcome, InstanceContext, Protocol, Sandbox, SandboxError};

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{origin}: {source}")]
    Invalid { origin: String, source: SandboxError },
    #[error("{origin}: its info says protocol {found}, its exports are of protocol {expected}")]
    InfoProtocol { origin: String, expected: String, found: String },
    #[error("{origin}: {detail}")]
    BadInfo { origin: String, detail: String },
    #[error("two components are named '{name}': {first} and {second}")]
    Duplicate { name: String, first: String, second: String },
    #[error("no agent named '{name}'; available: {available}")]
    Unknown { name: String, available: String },
    #[error("agent '{0}' is disabled; enable it first")]
    Disabled(String),
}

/// One accepted agent.
#[derive(Debug, Clone)]
pub struct RegisteredAgent {
    pub info: AgentInfo,
    pub sha256: String,
    /// Where it came from: a file path or an upload name.
    pub origin: String,
    pub enabled: bool,
    pub cache: CacheOutcome,
    /// The protocol version it was built against.
    pub protocol: Protocol,
    component: Component,
    /// The component with its imports resolved once, for every instance.
    prepared: crate::PreparedComponent,
}

impl RegisteredAgent {
    /// The compiled component.
    pub fn component(&self) -> &Component {
        &self.component
    }
}

/// What [`Registry::discover`] found in a directory.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Names registered, in file name order.
    pub registered: Vec<String>,
    /// Components refused, each with its reason.
    pub refused: Vec<RegistryError>,
}

/// Longest description an agent's info may carry, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Most required fields an agent may name, and the longest name.
pub const MAX_REQUIRED_FIELDS: usize = 256;
const MAX_FIELD_NAME_BYTES: usize = 128;

/// A guest's string in a refusal: one line, at most 80 bytes.
fn shown(text: &str) -> String {
    crate::text::one_line(&crate::text::bounded(text.to_string(), 80))
}

/// Info strings reach listings, logs and the API: bounded like findings.
fn check_info_sizes(info: &AgentInfo) -> Result<(), String> {
    if info.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(format!("description of {} bytes (at most {MAX_DESCRIPTION_BYTES})", info.description.len()));
    }
    if info.agent_version.is_empty()
        || info.agent_version.len() > 64
        || info.agent_version.chars().any(char::is_control)
    {
        return Err("agent version must be 1 to 64 printable characters".into());
    }
    let fields = &info.schema.required_fields;
    if fields.len() > MAX_REQUIRED_FIELDS || fields.iter().any(|f| f.len() > MAX_FIELD_NAME_BYTES) {
        return Err(format!(
            "at most {MAX_REQUIRED_FIELDS} required fields of at most {MAX_FIELD_NAME_BYTES} bytes each"
        ));
    }
    Ok(())
}

/// The agents this host knows.
#[derive(Debug, Clone)]
pub struct Registry {
    sandbox: Arc<Sandbox>,
    agents: BTreeMap<String, RegisteredAgent>,
}

/// The hex sha256 of a component's bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Registry {
    pub fn new(sandbox: Arc<Sandbox>) -> Self {
        Registry { sandbox, agents: BTreeMap::new() }
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Registers every `*.wasm` in `dir`, in name order. A component that
    /// is invalid, or named like one registered before it, is refused with
    /// its reason (logged, and in the answer) and the rest still register:
    /// one bad file must not stop every agent beside it.
    pub fn discover(&mut self, dir: &Path) -> Result<Discovery, RegistryError> {
        let read_err = |source| RegistryError::Read { path: dir.display().to_string(), source };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        files.sort();
        let mut discovery = Discovery::default();
        for file in &files {
            match self.register_file(file) {
                Ok(agent) => discovery.registered.push(agent.info.name.clone()),
                Err(refusal) => {
                    tracing::error!(path = %file.display(), "agent refused: {refusal}");
                    discovery.refused.push(refusal);
                }
            }
        }
        Ok(discovery)
    }

    /// Validates and registers one component file.
    pub fn register_file(&mut self, path: &Path) -> Result<&RegisteredAgent, RegistryError> {
        let bytes =
            std::fs::read(path).map_err(|source| RegistryError::Read { path: path.display().to_string(), source })?;
        self.register_bytes(&bytes, &path.display().to_string())
    }

    /// Validates and registers a component given as bytes; `origin` names it
    /// in messages.
    pub fn register_bytes(&mut self, bytes: &[u8], origin: &str) -> Result<&RegisteredAgent, RegistryError> {
        let agent = validate(&self.sandbox, bytes, origin)?;
        self.insert(agent)
    }

    /// Registers an agent [`validate`] accepted, without asking its info
    /// again (a second answer could differ from the one checked).
    pub fn insert(&mut self, agent: RegisteredAgent) -> Result<&RegisteredAgent, RegistryError> {
        let name = agent.info.name.clone();
        let origin = agent.origin.as_str();
        if let Some(existing) = self.agents.get(&name) {
            return Err(RegistryError::Duplicate { name, first: existing.origin.clone(), second: origin.to_string() });
        }
        tracing::info!(agent = %name, sha256 = %agent.sha256, origin = %agent.origin, "agent registered");
        Ok(self.agents.entry(name).or_insert(agent))
    }

    /// Forgets an agent.
    pub fn unregister(&mut self, name: &str) -> Result<RegisteredAgent, RegistryError> {
        let available = self.available();
        self.agents.remove(name).ok_or_else(|| RegistryError::Unknown { name: name.into(), available })
    }

    fn available(&self) -> String {
        if self.agents.is_empty() { "none".into() } else { self.agents.keys().cloned().collect::<Vec<_>>().join(", ") }
    }

    /// One agent by name.
    pub fn get(&self, name: &str) -> Result<&RegisteredAgent, RegistryError> {
        self.agents.get(name).ok_or_else(|| RegistryError::Unknown { name: name.into(), available: self.available() })
    }

    /// Every agent, by name.
    pub fn list(&self) -> impl Iterator<Item = &RegisteredAgent> {
        self.agents.values()
    }

    fn set_enabled(&mut self, name: &str, enabled: bool) -> Result<(), RegistryError> {
        let available = self.available();
        let agent = self.agents.get_mut(name).ok_or_else(|| RegistryError::Unknown { name: name.into(), available })?;
        agent.enabled = enabled;
        Ok(())
    }

    pub fn enable(&mut self, name: &str) -> Result<(), RegistryError> {
        self.set_enabled(name, true)
    }

    pub fn disable(&mut self, name: &str) -> Result<(), RegistryError> {
        self.set_enabled(name, false)
    }

    /// A fresh instance of an enabled agent for `context`.
    pub fn instantiate(&self, name: &str, context: InstanceContext) -> Result<AgentInstance, RegistryError> {
        let slot = self.reserve(name, &context)?;
        self.instantiate_reserved(name, context, slot)
    }

    /// Takes an instance slot of `context`'s tenant for `name` now, to
    /// instantiate it later with [`Registry::instantiate_reserved`].
    pub fn reserve(&self, name: &str, context: &InstanceContext) -> Result<crate::TenantSlot, RegistryError> {
        let agent = self.get(name)?;
        if !agent.enabled {
            return Err(RegistryError::Disabled(name.into()));
        }
        self.sandbox.reserve(context).map_err(|source| RegistryError::Invalid { origin: agent.origin.clone(), source })
    }

    /// As [`Registry::instantiate`], in a slot [`Registry::reserve`] took.
    pub fn instantiate_reserved(
        &self,
        name: &str,
        mut context: InstanceContext,
        slot: crate::TenantSlot,
    ) -> Result<AgentInstance, RegistryError> {
        let agent = self.get(name)?;
        // A bundled agent's grant is what its info declared, checked at
        // registration; an upload's is the manifest its tenant approved.
        if context.grant.is_none() {
            context.grant = Some(Arc::new(crate::Grant::of_info(&agent.info)));
        }
        if !agent.enabled {
            return Err(RegistryError::Disabled(name.into()));
        }
        self.sandbox
            .instantiate_prepared(&agent.prepared, context, slot)
            .map_err(|source| RegistryError::Invalid { origin: agent.origin.clone(), source })
    }
}

/// Compiles a component, checks its protocol and its info, and returns it
/// ready to register.
pub fn validate(sandbox: &Sandbox, bytes: &[u8], origin: &str) -> Result<RegisteredAgent, RegistryError> {
    validate_compiled(sandbox, bytes, origin, false)
}

/// As [`validate`], leaving nothing in the compile cache (`Sandbox::load_transient`).
pub fn validate_transient(sandbox: &Sandbox, bytes: &[u8], origin: &str) -> Result<RegisteredAgent, RegistryError> {
    validate_compiled(sandbox, bytes, origin, true)
}

fn validate_compiled(
    sandbox: &Sandbox,
    bytes: &[u8],
    origin: &str,
    transient: bool,
) -> Result<RegisteredAgent, RegistryError> {
    let invalid = |source| RegistryError::Invalid { origin: origin.to_string(), source };
    let sha256 = sha256_hex(bytes);
    let loaded = if transient { sandbox.load_transient(bytes, &sha256) } else { sandbox.load(bytes, &sha256) };
    let (component, cache) = loaded.map_err(invalid)?;
    // Named for where it came from: it has no name of its own until its
    // info is checked, and faults must say which file failed.
    let probe_name = format!("(validating {})", crate::text::bounded(origin.to_string(), 80));
    let prepared = sandbox.prepare(&component, &probe_name).map_err(invalid)?;
    let probe_context = InstanceContext::new(&probe_name, "registry");
    let probe_slot = sandbox.reserve(&probe_context).map_err(invalid)?;
    let mut probe = sandbox.instantiate_prepared(&prepared, probe_context, probe_slot).map_err(invalid)?;
    let info = {
        let _turn = sandbox.turns().take("registry");
        probe.info().map_err(invalid)?
    };
    let protocol = probe.protocol();
    if info.protocol_version != protocol.version() {
        return Err(RegistryError::InfoProtocol {
            origin: origin.into(),
            expected: protocol.version().into(),
            found: shown(&info.protocol_version),
        });
    }
    if !valid_name(&info.name) {
        return Err(RegistryError::BadInfo {
            origin: origin.into(),
            detail: format!("agent name '{}' must be 1 to 64 of a-z, 0-9, '-' and '_'", shown(&info.name)),
        });
    }
    check_info_sizes(&info).map_err(|detail| RegistryError::BadInfo { origin: origin.into(), detail })?;
    if !valid_name(&info.log_type) || info.schema.log_type != info.log_type {
        return Err(RegistryError::BadInfo {
            origin: origin.into(),
            detail: format!(
                "log type '{}' and schema log type '{}' must be equal, 1 to 64 of a-z, 0-9, '-' and '_'",
                shown(&info.log_type),
                shown(&info.schema.log_type)
            ),
        });
    }
    if info.schema.min_version > info.schema.max_version {
        return Err(RegistryError::BadInfo {
            origin: origin.into(),
            detail: format!("schema versions {}..{} are reversed", info.schema.min_version, info.schema.max_version),
        });
    }
    Ok(RegisteredAgent {
        info,
        sha256,
        origin: origin.to_string(),
        enabled: true,
        cache,
        protocol,
        component,
        prepared,
    })
}
