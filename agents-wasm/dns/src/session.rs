//! What one client sends to one registered domain over a window: a tunnel
//! of short chunks (`1.pjmwnf.evil.example`) looks harmless name by name,
//! and shows only as many distinct names carrying data under one domain,
//! most of them answered (a tunnel needs answers to carry data back; a
//! random-subdomain flood is mostly NXDOMAIN, which the burst rule finds).

use std::collections::VecDeque;

use mcp_sdk::hashing::KeyedMap;

use mcp_sdk::EntryRef;
use mcp_sdk::window::{key_of, make_room};

/// When a client's names under one domain make a tunnel.
#[derive(Debug, Clone, Copy)]
pub struct SessionRule {
    pub window_ms: i64,
    /// Distinct names under the domain within the window.
    pub min_names: usize,
    /// Bytes of those names left of the domain (the data they can carry).
    pub min_bytes: usize,
}

impl Default for SessionRule {
    fn default() -> Self {
        SessionRule { window_ms: 60_000, min_names: 40, min_bytes: 250 }
    }
}

impl SessionRule {
    fn is_tunnel(&self, level: SessionLevel) -> bool {
        level.names >= self.min_names && level.bytes >= self.min_bytes && level.answered_percent >= 50
    }
}

/// What a session's window holds when it is flagged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionLevel {
    pub names: usize,
    pub bytes: usize,
    pub answered_percent: usize,
}

#[derive(Debug)]
struct Event {
    timestamp_ms: i64,
    name: u64,
    bytes: usize,
    answered: bool,
    entry: EntryRef,
    /// Already reported: a window that falls below the bar and rises again
    /// reports only what it has not.
    flagged: bool,
}

#[derive(Debug, Default)]
struct Session {
    events: VecDeque<Event>,
    /// How many events of the window carry each name.
    names: KeyedMap<u64, u32>,
    bytes: usize,
    answered: usize,
}

impl Session {
    fn expire(&mut self, horizon: i64) {
        while self.events.front().is_some_and(|e| e.timestamp_ms < horizon) {
            let Some(old) = self.events.pop_front() else { break };
            self.bytes -= old.bytes;
            self.answered -= usize::from(old.answered);
            if let Some(count) = self.names.get_mut(&old.name) {
                *count -= 1;
                if *count == 0 {
                    self.names.remove(&old.name);
                }
            }
        }
    }

    fn level(&self) -> SessionLevel {
        let answered_percent = self.answered * 100 / self.events.len().max(1);
        SessionLevel { names: self.names.len(), bytes: self.bytes, answered_percent }
    }
}

/// Sessions per (client, registered domain), at most `max_keys` of them,
/// the stalest dropped first.
#[derive(Debug)]
pub struct Sessions {
    rule: SessionRule,
    max_keys: usize,
    sessions: KeyedMap<u64, Session>,
}

impl Sessions {
    pub fn new(rule: SessionRule, max_keys: usize) -> Self {
        Sessions { rule, max_keys: max_keys.max(1), sessions: KeyedMap::default() }
    }

    /// Adds one lookup of `subdomain` (the name left of `domain`, never
    /// empty) by `client`. Returns the entries to flag: the whole window
    /// when it first makes a tunnel, then each new entry while it does;
    /// never one entry twice.
    pub fn push(
        &mut self,
        client: &str,
        domain: &str,
        subdomain: &str,
        answered: bool,
        entry: EntryRef,
    ) -> (Vec<EntryRef>, SessionLevel) {
        let key = key_of(&(client, domain));
        if !self.sessions.contains_key(&key) && self.sessions.len() >= self.max_keys {
            self.evict(entry.timestamp_ms);
        }
        let session = self.sessions.entry(key).or_default();
        session.expire(entry.timestamp_ms - self.rule.window_ms);
        let name = key_of(subdomain);
        *session.names.entry(name).or_default() += 1;
        session.bytes += subdomain.len();
        session.answered += usize::from(answered);
        session.events.push_back(Event {
            timestamp_ms: entry.timestamp_ms,
            name,
            bytes: subdomain.len(),
            answered,
            entry,
            flagged: false,
        });
        let level = session.level();
        if !self.rule.is_tunnel(level) {
            return (Vec::new(), level);
        }
        let mut hits = Vec::new();
        for event in session.events.iter_mut().filter(|e| !e.flagged) {
            event.flagged = true;
            hits.push(event.entry);
        }
        (hits, level)
    }

    /// Whether `client`'s window under `domain` holds `subdomain` now.
    pub fn holds(&self, client: &str, domain: &str, subdomain: &str) -> bool {
        self.sessions.get(&key_of(&(client, domain))).is_some_and(|s| s.names.contains_key(&key_of(subdomain)))
    }

    /// Whether a window at `level` is a tunnel by this rule.
    pub fn is_tunnel(&self, level: SessionLevel) -> bool {
        self.rule.is_tunnel(level)
    }

    fn evict(&mut self, now_ms: i64) {
        let horizon = now_ms - self.rule.window_ms;
        make_room(&mut self.sessions, self.max_keys, |s| s.events.back().map_or(i64::MIN, |e| e.timestamp_ms), horizon);
    }
}

/// How many clients asked for names under each registered domain within a
/// window, counted up to a cap: a tunnel's domain is the attacker's, asked
/// for by the one client it runs on, where a CDN's many names are asked for
/// by many clients. Only the `cap + 1` clients seen last are kept per domain.
#[derive(Debug)]
pub struct Audience {
    window_ms: i64,
    cap: usize,
    max_keys: usize,
    domains: KeyedMap<u64, Vec<(u64, i64)>>,
}

impl Audience {
    pub fn new(window_ms: i64, cap: usize, max_keys: usize) -> Self {
        Audience { window_ms, cap, max_keys: max_keys.max(1), domains: KeyedMap::default() }
    }

    /// Counts `client` asking under `domain` at `timestamp_ms`; returns the
    /// clients seen under it within the window, at most `cap + 1`.
    pub fn push(&mut self, domain: &str, client: &str, timestamp_ms: i64) -> usize {
        let key = key_of(domain);
        if !self.domains.contains_key(&key) && self.domains.len() >= self.max_keys {
            let horizon = timestamp_ms - self.window_ms;
            make_room(&mut self.domains, self.max_keys, |seen| seen.first().map_or(i64::MIN, |s| s.1), horizon);
        }
        let seen = self.domains.entry(key).or_default();
        let client = key_of(client);
        seen.retain(|(who, _)| *who != client);
        // Newest first.
        seen.insert(0, (client, timestamp_ms));
        seen.truncate(self.cap.saturating_add(1));
        let horizon = timestamp_ms - self.window_ms;
        seen.iter().filter(|(_, at)| *at >= horizon).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: u64, seconds: i64) -> EntryRef {
        EntryRef { id, timestamp_ms: seconds * 1000 }
    }

    #[test]
    fn many_distinct_answered_names_under_one_domain_are_flagged_once_then_each() {
        let mut sessions = Sessions::new(SessionRule { window_ms: 60_000, min_names: 5, min_bytes: 10 }, 8);
        for i in 0..4u64 {
            let (hits, _) = sessions.push("10.0.0.1", "evil.example", &format!("{i}.abc"), true, at(i, i as i64));
            assert!(hits.is_empty());
        }
        let (hits, level) = sessions.push("10.0.0.1", "evil.example", "4.abc", true, at(4, 4));
        assert_eq!(hits.len(), 5);
        assert_eq!(level, SessionLevel { names: 5, bytes: 25, answered_percent: 100 });
        let (hits, _) = sessions.push("10.0.0.1", "evil.example", "5.abc", true, at(5, 5));
        assert_eq!(hits, vec![at(5, 5)]);
        // Unanswered names pull the share under half, then answered ones
        // lift it again: only the entries not yet reported come back.
        for i in 6..20u64 {
            let (hits, _) = sessions.push("10.0.0.1", "evil.example", &format!("{i}.abc"), false, at(i, i as i64));
            assert!(hits.len() <= 1);
        }
        let mut seen = std::collections::HashSet::new();
        let mut again = 0;
        for i in 20..50u64 {
            let (hits, _) = sessions.push("10.0.0.1", "evil.example", &format!("{i}.abc"), true, at(i, i as i64));
            again += hits.len();
            assert!(hits.iter().all(|h| seen.insert(h.id)), "an entry came back twice: {hits:?}");
        }
        assert!(again > 30, "the window rose over the bar again and its unreported entries came back: {again}");
    }

    #[test]
    fn repeats_unanswered_names_other_clients_and_old_names_do_not_add_up() {
        let rule = SessionRule { window_ms: 10_000, min_names: 3, min_bytes: 1 };
        let mut sessions = Sessions::new(rule, 8);
        for i in 0..10u64 {
            // The same name again and again: one name.
            assert!(sessions.push("a", "d.example", "www", true, at(i, i as i64)).0.is_empty());
            // Distinct names, but never answered: a flood, not a tunnel.
            assert!(sessions.push("b", "d.example", &format!("x{i}"), false, at(100 + i, i as i64)).0.is_empty());
            // Distinct names, each from another client.
            assert!(
                sessions
                    .push(&format!("c{i}"), "d.example", &format!("y{i}"), true, at(200 + i, i as i64))
                    .0
                    .is_empty()
            );
            // Distinct names, too far apart for the window.
            assert!(sessions.push("e", "d.example", &format!("z{i}"), true, at(300 + i, i as i64 * 20)).0.is_empty());
        }
    }

    #[test]
    fn an_audience_counts_distinct_recent_clients_up_to_its_cap() {
        let mut audience = Audience::new(10_000, 2, 4);
        assert_eq!(audience.push("rare.example", "a", 0), 1);
        assert_eq!(audience.push("rare.example", "a", 1_000), 1, "the same client again");
        assert_eq!(audience.push("rare.example", "b", 2_000), 2);
        for (i, client) in ["c", "d", "e", "f"].iter().enumerate() {
            assert_eq!(audience.push("cdn.example", client, i as i64), (i + 1).min(3), "capped at 3");
        }
        assert_eq!(audience.push("rare.example", "a", 30_000), 1, "b has left the window");
        for i in 0..100 {
            audience.push(&format!("d{i}.example"), "a", 40_000 + i);
        }
        assert!(audience.domains.len() <= 4);
    }

    #[test]
    fn keys_are_bounded() {
        let mut sessions = Sessions::new(SessionRule::default(), 4);
        for i in 0..100u64 {
            sessions.push(&format!("client-{i}"), "d.example", "x", true, at(i, i as i64));
        }
        assert!(sessions.sessions.len() <= 4);
    }
}
