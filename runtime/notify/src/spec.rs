//! A channel's settings as given (API body or config/notifications.toml),
//! checked field by field, stored with its secrets sealed, and shown with
//! them hidden.

use serde::{Deserialize, Serialize};

use crate::secret::{SECRET_ENV_PREFIX, Secret, SecretError, SecretKey};
use mcp_engine::config::NotificationsConfig;
use mcp_storage::notify::{ChannelRecord, Managed};

/// The kinds of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A JSON POST signed with HMAC-SHA256 (docs/notifications.md).
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// Email over SMTP.
    Email,
    /// A line in the server's log; needs nothing.
    Log,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Slack => "slack",
            Kind::Email => "email",
            Kind::Log => "log",
        }
    }
}

/// How an email channel secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: for a relay on this machine only.
    None,
}

/// A channel's settings. Fields that do not apply to its kind are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    pub kind: Kind,
    /// webhook, slack: where to POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret>,
    /// webhook: the HMAC key the receiver checks signatures with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<Secret>,
    /// email: the SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 253)]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SmtpTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 20)]
    pub to: Vec<String>,
    /// Anomalies of the same agent, source and label within this many
    /// seconds of the first are folded into one notification (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole")]
    #[schema(maximum = 86400)]
    pub dedup_window_s: Option<u64>,
    /// The most messages this channel sends a minute.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 600000)]
    pub rate_per_minute: Option<u32>,
    #[serde(default = "enabled", skip_serializing_if = "Clone::clone")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// A whole number written either way JSON Schema's `integer` allows (`5`
/// or `5.0`), in the range of `T`.
fn whole<'de, D: serde::Deserializer<'de>, T: TryFrom<i64>>(deserializer: D) -> Result<Option<T>, D::Error> {
    let number: Option<serde_json::Number> = Deserialize::deserialize(deserializer)?;
    let Some(number) = number else { return Ok(None) };
    number
        .as_i64()
        .or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18).map(|f| f as i64))
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{number} is not a whole number in range")))
}

/// A setting refused, with the field that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn refuse(field: &str, message: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), message: message.into() }
}

/// Who configures a channel, which decides the forms its secrets may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A tenant through the API: values only, sealed before they are
    /// stored. The server's environment is the operator's: no tenant names
    /// a variable of it (no naming rule keeps `acme` from `acme-eu`'s, or
    /// from the deployment's).
    Tenant(String),
    /// The operator's config/notifications.toml: `MCP_SECRET_…` variables
    /// only, never values in the file.
    Operator,
}

/// The longest dedup window: a day.
pub const MAX_DEDUP_WINDOW_S: u64 = 86_400;
/// The fastest channel: 10,000 messages a second (a webhook receiver of
/// the SOC's own may take that; Slack and mail want far less).
pub const MAX_RATE_PER_MINUTE: u32 = 600_000;
/// The longest secret (or variable name) a channel takes.
pub const MAX_SECRET_CHARS: usize = 4096;
/// Recipients of one email channel.
pub const MAX_RECIPIENTS: usize = 20;

/// Whether `host` names this machine, where plain SMTP with a password
/// does not cross a network.
fn is_local_host(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl ChannelSpec {
    /// Reads a channel from JSON, naming the field of the first mistake.
    pub fn from_json(value: serde_json::Value) -> Result<ChannelSpec, SpecError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            refuse(if path == "." { "body" } else { &path }, e.into_inner().to_string())
        })
    }

    /// Checks the bounds the API's document declares (a request past them
    /// does not match the document).
    pub fn check_bounds(&self) -> Result<(), SpecError> {
        if let Some(host) = &self.host
            && (host.is_empty() || host.chars().count() > 253)
        {
            return Err(refuse("host", "1 to 253 characters"));
        }
        for (field, secret) in [("url", &self.url), ("signing_key", &self.signing_key), ("password", &self.password)] {
            if let Some(Secret::Env(text) | Secret::Value(text)) = secret
                && (text.is_empty() || text.chars().count() > MAX_SECRET_CHARS)
            {
                return Err(refuse(field, format!("1 to {MAX_SECRET_CHARS} characters")));
            }
        }
        if self.port == Some(0) {
            return Err(refuse("port", "must be 1 to 65535"));
        }
        if self.to.len() > MAX_RECIPIENTS {
            return Err(refuse("to", format!("at most {MAX_RECIPIENTS} recipients")));
        }
        if self.dedup_window_s.is_some_and(|s| s > MAX_DEDUP_WINDOW_S) {
            return Err(refuse("dedup_window_s", format!("at most {MAX_DEDUP_WINDOW_S} (a day)")));
        }
        if self.rate_per_minute.is_some_and(|r| r == 0 || r > MAX_RATE_PER_MINUTE) {
            return Err(refuse("rate_per_minute", format!("1 to {MAX_RATE_PER_MINUTE}")));
        }
        Ok(())
    }

    /// Checks every field against the kind; `owner` decides which
    /// environment variables secrets may name.
    pub fn validate(&self, owner: &Owner) -> Result<(), SpecError> {
        self.check_bounds()?;
        let applies: &[&str] = match self.kind {
            Kind::Webhook => &["url", "signing_key"],
            Kind::Slack => &["url"],
            Kind::Email => &["host", "port", "tls", "username", "password", "from", "to"],
            Kind::Log => &[],
        };
        let given = [
            ("url", self.url.is_some()),
            ("signing_key", self.signing_key.is_some()),
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("tls", self.tls.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("from", self.from.is_some()),
            ("to", !self.to.is_empty()),
        ];
        for (field, present) in given {
            if present && !applies.contains(&field) {
                return Err(refuse(field, format!("does not apply to {} channel", article(self.kind))));
            }
        }
        let required: &[&str] = match self.kind {
            Kind::Webhook => &["url", "signing_key"],
            Kind::Slack => &["url"],
            Kind::Email => &["host", "from", "to"],
            Kind::Log => &[],
        };
        for field in required {
            if !given.iter().any(|(name, present)| name == field && *present) {
                return Err(refuse(field, format!("is required for {} channel", article(self.kind))));
            }
        }
        for (field, secret) in [("url", &self.url), ("signing_key", &self.signing_key), ("password", &self.password)] {
            if let Some(secret) = secret {
                check_secret(field, secret, owner)?;
            }
        }
        if let Some(Secret::Value(url)) = &self.url {
            check_url(self.kind, url)?;
        }
        if let Some(Secret::Value(key)) = &self.signing_key
            && key.len() < 16
        {
            return Err(refuse("signing_key", "must be at least 16 characters"));
        }
        if let Some(host) = &self.host
            && host.contains(|c: char| c.is_whitespace() || c == '/')
        {
            return Err(refuse("host", "must be a host name or address"));
        }
        if self.username.is_some() != self.password.is_some() {
            let missing = if self.username.is_some() { "password" } else { "username" };
            return Err(refuse(missing, "username and password go together"));
        }
        if self.password.is_some()
            && self.tls == Some(SmtpTls::None)
            && !self.host.as_deref().is_some_and(is_local_host)
        {
            return Err(refuse("tls", "a password is never sent unencrypted over a network: use starttls or tls"));
        }
        if let Some(from) = &self.from {
            from.parse::<lettre::message::Mailbox>().map_err(|e| refuse("from", format!("not an address: {e}")))?;
        }
        for (i, to) in self.to.iter().enumerate() {
            to.parse::<lettre::message::Mailbox>()
                .map_err(|e| refuse(&format!("to[{i}]"), format!("not an address: {e}")))?;
        }
        Ok(())
    }

    /// The SMTP port: as given, else the one of the TLS mode.
    pub fn smtp_port(&self) -> u16 {
        self.port.unwrap_or(match self.tls.unwrap_or_default() {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }

    /// The record to store for `tenant`'s channel `name`: its secret values
    /// sealed with `key`, bound to the tenant, channel and field.
    pub fn to_record(
        &self,
        tenant: &str,
        name: &str,
        key: &SecretKey,
        defaults: &NotificationsConfig,
        managed_by: Managed,
    ) -> Result<ChannelRecord, SpecError> {
        let mut sealed = self.clone();
        for (field, secret) in
            [("url", &mut sealed.url), ("signing_key", &mut sealed.signing_key), ("password", &mut sealed.password)]
        {
            if let Some(secret) = secret.as_mut() {
                *secret =
                    key.seal(secret, &secret_context(tenant, name, field)).map_err(|e| refuse(field, e.to_string()))?;
            }
        }
        let spec = serde_json::to_string(&sealed).map_err(|e| refuse("body", e.to_string()))?;
        let window_s = self.dedup_window_s.unwrap_or(defaults.dedup_window_s);
        Ok(ChannelRecord {
            tenant: tenant.into(),
            name: name.into(),
            kind: self.kind.name().into(),
            spec,
            dedup_window_ms: i64::try_from(window_s.saturating_mul(1000)).unwrap_or(i64::MAX),
            rate_per_minute: i64::from(self.rate_per_minute.unwrap_or(defaults.rate_per_minute)),
            enabled: self.enabled,
            managed_by,
            updated_ms: 0,
        })
    }

    /// The stored settings of `record`.
    pub fn from_record(record: &ChannelRecord) -> Result<ChannelSpec, SpecError> {
        let value: serde_json::Value = serde_json::from_str(&record.spec)
            .map_err(|e| refuse("spec", format!("stored settings unreadable: {e}")))?;
        ChannelSpec::from_json(value)
    }

    /// The settings as the API shows them: secrets hidden.
    pub fn view(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            for (field, secret) in
                [("url", &self.url), ("signing_key", &self.signing_key), ("password", &self.password)]
            {
                if let Some(secret) = secret {
                    object.insert(field.into(), serde_json::to_value(secret.view()).unwrap_or_default());
                }
            }
        }
        value
    }
}

/// "a webhook", "an email": for messages.
fn article(kind: Kind) -> String {
    let name = kind.name();
    if name.starts_with(['a', 'e', 'i', 'o', 'u']) { format!("an {name}") } else { format!("a {name}") }
}

/// What a sealed secret is bound to.
pub fn secret_context(tenant: &str, channel: &str, field: &str) -> String {
    format!("{tenant}/{channel}/{field}")
}

fn check_secret(field: &str, secret: &Secret, owner: &Owner) -> Result<(), SpecError> {
    match secret {
        Secret::Env(_) if matches!(owner, Owner::Tenant(_)) => Err(refuse(
            field,
            "the server's environment belongs to the operator: give the secret as {\"value\": …} (sealed with the deployment's key), or ask the operator to keep the channel in config/notifications.toml",
        )),
        Secret::Env(name) => {
            let valid = name.len() > SECRET_ENV_PREFIX.len()
                && name.starts_with(SECRET_ENV_PREFIX)
                && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if valid {
                Ok(())
            } else {
                Err(refuse(field, format!("an environment variable named {SECRET_ENV_PREFIX}<NAME> (A-Z, 0-9, _)")))
            }
        }
        Secret::Value(value) if value.is_empty() => Err(refuse(field, "must not be empty")),
        Secret::Value(_) if *owner == Owner::Operator => Err(refuse(
            field,
            "config/notifications.toml names secrets by environment variable ({\"env\" = \"MCP_SECRET_…\"}), never by value",
        )),
        Secret::Value(_) => Ok(()),
        Secret::Sealed(_) => Err(refuse(field, SecretError::SealedGiven.to_string())),
    }
}

/// A URL a channel may post to: https, or http for a generic webhook.
pub fn check_url(kind: Kind, url: &str) -> Result<reqwest::Url, SpecError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| refuse("url", format!("not a URL: {e}")))?;
    let scheme_ok = match kind {
        Kind::Webhook => matches!(parsed.scheme(), "https" | "http"),
        _ => parsed.scheme() == "https",
    };
    if !scheme_ok {
        let allowed = if kind == Kind::Webhook { "http or https" } else { "https" };
        return Err(refuse("url", format!("a {} URL must be {allowed}", kind.name())));
    }
    if parsed.host_str().is_none() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse("url", "must name a host and carry no user or password"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(value: serde_json::Value) -> Result<ChannelSpec, SpecError> {
        let spec = ChannelSpec::from_json(value)?;
        spec.validate(&Owner::Tenant("acme-eu".into()))?;
        Ok(spec)
    }

    fn field(value: serde_json::Value) -> String {
        check(value).unwrap_err().field
    }

    #[test]
    fn each_mistake_names_its_field() {
        assert_eq!(field(json!({"kind": "pager"})), "kind");
        assert_eq!(field(json!({"kind": "log", "colour": "red"})), "colour");
        assert_eq!(field(json!({"kind": "log", "url": {"value": "https://x.example"}})), "url");
        assert_eq!(field(json!({"kind": "webhook", "url": {"value": "https://x.example"}})), "signing_key");
        assert_eq!(field(json!({"kind": "slack", "url": {"value": "http://hooks.example"}})), "url");
        assert_eq!(field(json!({"kind": "slack", "url": {"env": "MCP_SECRET_OTHER_URL"}})), "url");
        assert_eq!(
            field(json!({"kind": "slack", "url": {"env": "MCP_SECRET_ACME_EU_URL"}})),
            "url",
            "not even its own"
        );
        assert_eq!(field(json!({"kind": "slack", "url": {"env": "MCP_DATABASE_URL"}})), "url");
        assert_eq!(field(json!({"kind": "slack", "url": {"sealed": "AAAA"}})), "url");
        assert_eq!(
            field(json!({"kind": "email", "host": "smtp.example", "from": "a@example.com", "to": ["nope"]})),
            "to[0]"
        );
        assert_eq!(
            field(json!({"kind": "email", "host": "smtp.example", "from": "a@example.com", "to": ["b@example.com"],
                          "username": "u", "password": {"value": "p"}, "tls": "none"})),
            "tls"
        );
        assert_eq!(field(json!({"kind": "log", "rate_per_minute": 0})), "rate_per_minute");
        assert_eq!(field(json!({"kind": "log", "dedup_window_s": 100000})), "dedup_window_s");
        assert_eq!(
            field(
                json!({"kind": "email", "host": "smtp.example", "from": "a@example.com", "to": ["b@example.com"], "port": 0})
            ),
            "port"
        );
    }

    #[test]
    fn good_channels_pass_and_their_secrets_are_sealed_and_hidden() {
        let operators = ChannelSpec::from_json(json!({"kind": "webhook", "url": {"env": "MCP_SECRET_SOC_URL"},
                                "signing_key": {"env": "MCP_SECRET_SOC_KEY"}}))
        .unwrap();
        operators.validate(&Owner::Operator).unwrap();
        assert_eq!(operators.view()["signing_key"], json!({"env": "MCP_SECRET_SOC_KEY"}));
        let spec = check(json!({"kind": "webhook", "url": {"value": "https://hooks.example/abc"},
                                "signing_key": {"value": "a-signing-key-0123456789"}}))
        .unwrap();
        let key = SecretKey::from_hex(&"11".repeat(32)).unwrap();
        let record = spec.to_record("acme-eu", "ops", &key, &NotificationsConfig::default(), Managed::Api).unwrap();
        assert!(!record.spec.contains("hooks.example"), "{}", record.spec);
        let stored = ChannelSpec::from_record(&record).unwrap();
        assert_eq!(
            key.reveal(stored.url.as_ref().unwrap(), &secret_context("acme-eu", "ops", "url")).unwrap(),
            "https://hooks.example/abc"
        );
        let view = stored.view();
        assert_eq!(view["url"], json!({"stored": true}));
        assert_eq!(view["signing_key"], json!({"stored": true}));
        assert_eq!(record.dedup_window_ms, 600_000);
        check(json!({"kind": "email", "host": "127.0.0.1", "port": 2525, "tls": "none", "username": "u",
                     "password": {"value": "p"}, "from": "MCP <mcp@example.com>", "to": ["soc@example.com"]}))
        .unwrap();
        assert_eq!(
            SecretKey::none().seal(&Secret::Value("x".into()), "c").unwrap_err(),
            SecretError::NoKey,
            "a value needs the deployment's key"
        );
    }
}
