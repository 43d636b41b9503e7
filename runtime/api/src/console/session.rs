//! Console sessions: a token given once on the sign-in form becomes an
//! HttpOnly, SameSite=Strict cookie naming a session held here, so the
//! token is never in a URL, a page or the browser's script. Each request
//! authenticates the session's token again exactly as the API does, so a
//! revoked token or a disabled tenant ends its sessions at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ConsoleError;
use crate::{ApiState, Caller};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "mcp_session";
/// The sign-in form's own CSRF cookie, before there is a session.
pub(crate) const SIGN_IN_COOKIE: &str = "mcp_sign_in";
/// A session idle this long is over.
const IDLE: Duration = Duration::from_secs(60 * 60);
/// A session this old is over, however busy.
const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// Sessions kept at most; past it the least recently used session of the
/// tenant holding the most goes, so signing in again and again grows
/// neither the server's memory nor one tenant's share at another's cost.
const MAX_SESSIONS: usize = 10_000;
/// Sessions of one token kept at most.
const MAX_PER_TOKEN: usize = 16;

#[derive(Debug)]
struct Session {
    token: String,
    token_id: i64,
    tenant: String,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// The console's sessions, by the SHA-256 of their cookie's value: a
/// memory dump shows no cookie a browser holds.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic elsewhere while holding the lock leaves a map that is
        // still whole: every change is one insert or remove.
        self.by_hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `token` (already authenticated as `caller`);
    /// returns the cookie value.
    fn open(&self, token: String, caller: &Caller) -> String {
        let id = random_hex();
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| now.duration_since(s.last_seen) < IDLE && now.duration_since(s.created) < LIFETIME);
        let mut same_token: Vec<([u8; 32], Instant)> =
            sessions.iter().filter(|(_, s)| s.token_id == caller.token_id).map(|(k, s)| (*k, s.last_seen)).collect();
        if same_token.len() >= MAX_PER_TOKEN {
            same_token.sort_by_key(|(_, seen)| *seen);
            for (key, _) in &same_token[..=same_token.len() - MAX_PER_TOKEN] {
                sessions.remove(key);
            }
        }
        if sessions.len() >= MAX_SESSIONS {
            let mut per_tenant: HashMap<&str, usize> = HashMap::new();
            for session in sessions.values() {
                *per_tenant.entry(session.tenant.as_str()).or_default() += 1;
            }
            let busiest = per_tenant.into_iter().max_by_key(|(_, n)| *n).map(|(t, _)| t.to_string());
            let oldest = sessions
                .iter()
                .filter(|(_, s)| Some(&s.tenant) == busiest.as_ref())
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        let session = Session {
            token,
            token_id: caller.token_id,
            tenant: caller.tenant.clone(),
            csrf: random_hex(),
            created: now,
            last_seen: now,
        };
        sessions.insert(digest(&id), session);
        id
    }

    /// The token and CSRF secret of a live session, marked as seen.
    fn touch(&self, id: &str) -> Option<(String, String)> {
        let now = Instant::now();
        let mut sessions = self.lock();
        let key = digest(id);
        let session = sessions.get_mut(&key)?;
        if now.duration_since(session.last_seen) >= IDLE || now.duration_since(session.created) >= LIFETIME {
            sessions.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some((session.token.clone(), session.csrf.clone()))
    }

    fn close(&self, id: &str) {
        self.lock().remove(&digest(id));
    }

    /// Ends every session of a revoked token.
    pub(crate) fn close_token(&self, token_id: i64) {
        self.lock().retain(|_, s| s.token_id != token_id);
    }

    /// Ends every session of a disabled or deleted tenant.
    pub(crate) fn close_tenant(&self, tenant: &str) {
        self.lock().retain(|_, s| s.tenant != tenant);
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the browser reached the server over TLS, as the proxy that
/// terminates it says: then cookies are marked Secure.
fn behind_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
    let forwarded = headers.get("forwarded").and_then(|v| v.to_str().ok());
    // Proxies append their hop: the first value is the browser's own.
    let first = |list: &str| list.split(',').next().unwrap_or_default().trim().to_ascii_lowercase();
    forwarded_proto.is_some_and(|p| first(p) == "https")
        || forwarded.is_some_and(|f| first(f).split(';').any(|pair| pair.trim() == "proto=https"))
}

/// A `Set-Cookie` value for the console's path; `max_age_s` 0 removes it.
pub(crate) fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age_s: u64) -> String {
    let secure = if behind_tls(headers) { "; Secure" } else { "" };
    format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

/// Whether `given` is `expected`, in time that does not tell how much of
/// it matched.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// A signed-in console user: the caller their session's token names, and
/// the CSRF secret every form of the session carries.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub caller: Caller,
    pub csrf: String,
}

impl Viewer {
    /// Refuses a form whose CSRF field is not this session's.
    pub(crate) fn check_csrf(&self, given: &str) -> Result<(), ConsoleError> {
        if same_secret(given, &self.csrf) {
            Ok(())
        } else {
            Err(ConsoleError::Api(crate::ApiError::forbidden(
                "the form's CSRF token is missing or not this session's; reload the page and try again",
            )))
        }
    }
}

impl FromRequestParts<Arc<ApiState>> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> Result<Self, Self::Rejection> {
        let id = cookie(&parts.headers, SESSION_COOKIE).ok_or(ConsoleError::SignIn)?;
        let (token, csrf) = state.console_sessions.touch(id).ok_or(ConsoleError::SignIn)?;
        match crate::auth::authenticate(state, token, !parts.method.is_safe()).await {
            Ok(caller) => Ok(Viewer { caller, csrf }),
            Err(error) if error.status == axum::http::StatusCode::UNAUTHORIZED => {
                state.console_sessions.close(id);
                Err(ConsoleError::SignIn)
            }
            Err(error) => Err(ConsoleError::Api(error)),
        }
    }
}

/// The sign-in form's fields.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub csrf: String,
}

/// The key the sign-in form's secrets are signed with; new each start, so
/// a sign-in page from before a restart needs a reload.
fn sign_in_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(random_hex)
}

fn sign_in_signature(nonce: &str) -> String {
    hex::encode(Sha256::digest(format!("mcp-console-sign-in\0{}\0{nonce}", sign_in_key()).as_bytes()))
}

/// Whether a sign-in secret is one this server issued: a nonce and its
/// signature, so a cookie planted by someone else does not pass.
fn issued_by_us(secret: &str) -> bool {
    secret.split_once('.').is_some_and(|(nonce, signature)| same_secret(signature, &sign_in_signature(nonce)))
}

/// A fresh CSRF secret for the sign-in form, and the cookie that carries it.
pub(crate) fn sign_in_secret(headers: &HeaderMap) -> (String, String) {
    let nonce = random_hex();
    let secret = format!("{nonce}.{}", sign_in_signature(&nonce));
    let cookie = set_cookie(headers, SIGN_IN_COOKIE, &secret, 3600);
    (secret, cookie)
}

/// Checks the sign-in form against its cookie and the token against the
/// control store; on success, the session cookie and where to go.
pub(crate) async fn sign_in(
    state: &Arc<ApiState>,
    headers: &HeaderMap,
    form: SignInForm,
) -> Result<Response, ConsoleError> {
    let expected = cookie(headers, SIGN_IN_COOKIE).unwrap_or_default();
    if !same_secret(&form.csrf, expected) || !issued_by_us(expected) {
        return Err(ConsoleError::Api(crate::ApiError::forbidden(
            "the sign-in form's CSRF token is missing or stale; reload the sign-in page",
        )));
    }
    let token = form.token.trim().to_string();
    if token.is_empty() || token.len() > 256 {
        return Err(ConsoleError::SignInFailed("paste a token: the command mcp tokens create makes one".into()));
    }
    let caller = match crate::auth::authenticate(state, token.clone(), true).await {
        Ok(caller) => caller,
        Err(error) if error.status == axum::http::StatusCode::UNAUTHORIZED => {
            tracing::info!("console sign-in refused: {}", error.detail);
            return Err(ConsoleError::SignInFailed(error.detail));
        }
        Err(error) => return Err(ConsoleError::Api(error)),
    };
    let id = state.console_sessions.open(token, &caller);
    tracing::info!(tenant = %caller.tenant, token_id = caller.token_id, "console sign-in");
    let mut response = Redirect::to("/ui/anomalies").into_response();
    let cookies =
        [set_cookie(headers, SESSION_COOKIE, &id, LIFETIME.as_secs()), set_cookie(headers, SIGN_IN_COOKIE, "", 0)];
    for value in cookies {
        if let Ok(value) = value.parse() {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// Ends the session the request names and removes its cookie.
pub(crate) fn sign_out(state: &ApiState, headers: &HeaderMap) -> Response {
    if let Some(id) = cookie(headers, SESSION_COOKIE) {
        state.console_sessions.close(id);
    }
    let mut response = Redirect::to("/ui/sign-in").into_response();
    if let Ok(value) = set_cookie(headers, SESSION_COOKIE, "", 0).parse() {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_storage::control::Role;

    fn caller(token_id: i64) -> Caller {
        Caller { token_id, tenant: "alpha".into(), role: Role::ReadOnly }
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends_when_closed() {
        let sessions = Sessions::default();
        let id = sessions.open("mcp_secret".into(), &caller(1));
        let (token, csrf) = sessions.touch(&id).expect("the session just opened");
        assert_eq!(token, "mcp_secret");
        assert_eq!(csrf.len(), 64);
        assert!(sessions.touch("not-a-session").is_none());
        sessions.close(&id);
        assert!(sessions.touch(&id).is_none());
    }

    #[test]
    fn one_token_keeps_at_most_its_share_of_sessions() {
        let sessions = Sessions::default();
        let first = sessions.open("t".into(), &caller(7));
        let mut last = String::new();
        for _ in 0..MAX_PER_TOKEN {
            last = sessions.open("t".into(), &caller(7));
        }
        assert!(sessions.touch(&first).is_none(), "the least recently used session goes first");
        assert!(sessions.touch(&last).is_some());
        assert_eq!(sessions.lock().len(), MAX_PER_TOKEN);
    }

    #[test]
    fn a_full_server_evicts_from_the_tenant_holding_the_most() {
        let sessions = Sessions::default();
        let theirs = sessions.open("a".into(), &Caller { token_id: 1, tenant: "acme".into(), role: Role::ReadOnly });
        for token_id in 0..(MAX_SESSIONS as i64) {
            sessions
                .open("e".into(), &Caller { token_id: 100 + token_id, tenant: "evil".into(), role: Role::ReadOnly });
        }
        assert!(sessions.touch(&theirs).is_some(), "another tenant's flood does not sign acme out");
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
        sessions.close_tenant("evil");
        assert_eq!(sessions.lock().len(), 1);
        sessions.close_token(1);
        assert!(sessions.touch(&theirs).is_none());
    }

    #[test]
    fn only_sign_in_secrets_this_server_issued_pass() {
        let (secret, cookie) = sign_in_secret(&HeaderMap::new());
        assert!(issued_by_us(&secret) && cookie.contains(&secret));
        assert!(!issued_by_us("AAAA"));
        assert!(!issued_by_us(&format!("{}.{}", "0".repeat(64), "1".repeat(64))));
    }

    #[test]
    fn the_browsers_own_protocol_is_the_first_a_proxy_lists() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", "https, http".parse().unwrap());
        assert!(behind_tls(&headers));
        headers.insert("x-forwarded-proto", "http, https".parse().unwrap());
        assert!(!behind_tls(&headers));
        headers.remove("x-forwarded-proto");
        headers.insert("forwarded", "for=1.2.3.4;proto=https, for=5.6.7.8;proto=http".parse().unwrap());
        assert!(behind_tls(&headers));
    }

    #[test]
    fn secrets_compare_whole_and_never_empty() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn cookies_are_secure_only_behind_tls() {
        let mut headers = HeaderMap::new();
        assert!(!set_cookie(&headers, "a", "b", 1).contains("Secure"));
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        let value = set_cookie(&headers, "a", "b", 1);
        assert!(value.contains("; Secure") && value.contains("HttpOnly") && value.contains("SameSite=Strict"));
    }
}
