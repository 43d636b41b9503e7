//! Secrets of channels (webhook URLs, signing keys, SMTP passwords): named
//! environment variables, or values sealed with the deployment's key
//! (`MCP_SECRETS_KEY`) before they are stored. Neither form shows the
//! secret; it is revealed only to send a message.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

pub use mcp_engine::config::{SECRET_ENV_PREFIX, SECRETS_KEY_ENV};

/// A secret as given or stored: `{"env": "MCP_SECRET_…"}`,
/// `{"value": "…"}` (given to the API, sealed before it is stored) or
/// `{"sealed": "…"}` (as stored).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Secret {
    Env(String),
    Value(String),
    Sealed(String),
}

/// In the API's document a secret is given as one of its two request
/// forms; the stored form is never accepted there.
impl utoipa::PartialSchema for Secret {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let form = |key: &str, description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    key,
                    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(4096)),
                )
                .required(key)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                .description(Some(description))
        };
        OneOfBuilder::new()
            .item(form("env", "an MCP_SECRET_… environment variable of the server: config/notifications.toml only; the API refuses it (422)"))
            .item(form("value", "the secret itself, sealed with the deployment's key before it is stored"))
            .into()
    }
}

impl utoipa::ToSchema for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Env(name) => write!(f, "Secret::Env({name})"),
            Secret::Value(_) | Secret::Sealed(_) => f.write_str("Secret::<hidden>"),
        }
    }
}

/// What the API shows of a secret: the variable's name, or that a value
/// is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretView {
    Env(String),
    Stored(bool),
}

impl Secret {
    pub fn view(&self) -> SecretView {
        match self {
            Secret::Env(name) => SecretView::Env(name.clone()),
            Secret::Value(_) | Secret::Sealed(_) => SecretView::Stored(true),
        }
    }
}

/// Why a secret could not be sealed or revealed. No variant carries the
/// secret itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable {0} is not set (or not UTF-8) in the server's environment")]
    Unset(String),
    #[error(
        "{SECRETS_KEY_ENV} is not set: the server cannot store secrets; set it to 64 hex digits (`openssl rand -hex 32`), or reference an environment variable instead"
    )]
    NoKey,
    #[error("{SECRETS_KEY_ENV} (or secrets_key_file) must be 64 hex digits (32 bytes)")]
    BadKey,
    #[error("cannot read the secrets key file {0}")]
    KeyFile(String),
    #[error("a stored secret cannot be opened with this {SECRETS_KEY_ENV} (was the key changed?)")]
    Unopenable,
    #[error("a secret must be given as {{\"env\": …}} or {{\"value\": …}}")]
    SealedGiven,
}

/// The deployment's sealing key, read from the environment once.
#[derive(Clone)]
pub struct SecretKey(Option<[u8; 32]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", if self.0.is_some() { "set" } else { "unset" })
    }
}

impl SecretKey {
    /// The key in `MCP_SECRETS_KEY`, if set; a malformed one is an error
    /// now rather than at the first secret.
    pub fn from_env() -> Result<SecretKey, SecretError> {
        match std::env::var(SECRETS_KEY_ENV) {
            Ok(text) if !text.is_empty() => SecretKey::from_hex(&text),
            _ => Ok(SecretKey(None)),
        }
    }

    /// The key of `[notifications] secrets_key_file` when set, else of
    /// `MCP_SECRETS_KEY`.
    pub fn load(config: &mcp_engine::config::NotificationsConfig) -> Result<SecretKey, SecretError> {
        match &config.secrets_key_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| SecretError::KeyFile(format!("{}: {e}", path.display())))?;
                SecretKey::from_hex(&text)
            }
            None => SecretKey::from_env(),
        }
    }

    pub fn from_hex(text: &str) -> Result<SecretKey, SecretError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SecretError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(SecretKey(Some(key)))
    }

    pub fn none() -> SecretKey {
        SecretKey(None)
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305, SecretError> {
        let key = self.0.as_ref().ok_or(SecretError::NoKey)?;
        Ok(XChaCha20Poly1305::new(key.into()))
    }

    /// Seals a given value; `context` (tenant, channel, field) is bound in,
    /// so a sealed value copied to another channel or tenant does not open.
    pub fn seal(&self, secret: &Secret, context: &str) -> Result<Secret, SecretError> {
        match secret {
            Secret::Env(_) => Ok(secret.clone()),
            Secret::Sealed(_) => Err(SecretError::SealedGiven),
            Secret::Value(value) => {
                let nonce: [u8; 24] = rand::random();
                let sealed = self
                    .cipher()?
                    .encrypt(XNonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: context.as_bytes() })
                    .map_err(|_| SecretError::Unopenable)?;
                let mut out = nonce.to_vec();
                out.extend(sealed);
                Ok(Secret::Sealed(STANDARD.encode(out)))
            }
        }
    }

    /// The secret's value, to send a message with.
    pub fn reveal(&self, secret: &Secret, context: &str) -> Result<String, SecretError> {
        match secret {
            Secret::Env(name) => std::env::var(name).map_err(|_| SecretError::Unset(name.clone())),
            Secret::Value(value) => Ok(value.clone()),
            Secret::Sealed(text) => {
                let bytes = STANDARD.decode(text).map_err(|_| SecretError::Unopenable)?;
                if bytes.len() < 24 {
                    return Err(SecretError::Unopenable);
                }
                let (nonce, sealed) = bytes.split_at(24);
                let plain = self
                    .cipher()?
                    .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: context.as_bytes() })
                    .map_err(|_| SecretError::Unopenable)?;
                String::from_utf8(plain).map_err(|_| SecretError::Unopenable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = SecretKey::from_hex(KEY).unwrap();
        let sealed = key.seal(&Secret::Value("https://hooks.example/abc".into()), "a/ops/url").unwrap();
        let Secret::Sealed(text) = &sealed else { panic!("not sealed") };
        assert!(!text.contains("hooks"));
        assert_eq!(key.reveal(&sealed, "a/ops/url").unwrap(), "https://hooks.example/abc");
        assert_eq!(key.reveal(&sealed, "b/ops/url"), Err(SecretError::Unopenable), "another tenant's context");
        let other = SecretKey::from_hex(&KEY.replace("00", "ff")).unwrap();
        assert_eq!(other.reveal(&sealed, "a/ops/url"), Err(SecretError::Unopenable));
        assert_eq!(SecretKey::none().seal(&Secret::Value("x".into()), "c"), Err(SecretError::NoKey));
        assert_eq!(key.seal(&sealed, "a/ops/url"), Err(SecretError::SealedGiven));
        assert_eq!(format!("{sealed:?}"), "Secret::<hidden>");
        assert_eq!(SecretKey::from_hex("abcd").unwrap_err(), SecretError::BadKey);
    }
}
