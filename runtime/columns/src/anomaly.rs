//! The host's anomaly: what an agent found, with the provenance the host
//! completes itself. The guest's `findings` become these in the sandbox.

/// How serious an anomaly is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Unusual.
    Low,
    /// Suspicious.
    Medium,
    /// Likely an attack.
    High,
    /// An attack in progress.
    Critical,
}

impl Severity {
    /// The lower-case name stored and served.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The severity of a lower-case name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// One anomaly an agent reported about one log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// The agent, as the host knows it (never what the guest says).
    pub agent: String,
    /// The entry it names.
    pub log_id: u64,
    /// The entry's log type, set by the host.
    pub log_type: String,
    /// The entry's source, set by the host.
    pub source: String,
    /// The entry's time, set by the host.
    pub log_timestamp_ms: i64,
    /// In [0, 1].
    pub score: f32,
    /// A short machine-readable name of what was found.
    pub label: String,
    /// How serious it is.
    pub severity: Severity,
    /// Why, for a person.
    pub reason: String,
    /// When the host received it.
    pub detected_at_ms: i64,
}
