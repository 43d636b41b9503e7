//! Bytes one internal host sent to one external service over a window: an
//! exfiltration staged in uploads each under the single-connection bar
//! shows only as their sum.

use std::collections::VecDeque;

use mcp_sdk::EntryRef;
use mcp_sdk::hashing::KeyedMap;
use mcp_sdk::window::make_room;

#[derive(Debug, Default)]
struct Window {
    uploads: VecDeque<(EntryRef, u64, bool)>,
    bytes: u64,
}

/// Upload sums per key within `window_ms`, at most `max_keys` keys.
#[derive(Debug)]
pub struct Uploads {
    window_ms: i64,
    min_bytes: u64,
    max_keys: usize,
    windows: KeyedMap<u64, Window>,
}

impl Uploads {
    pub fn new(window_ms: i64, min_bytes: u64, max_keys: usize) -> Self {
        Uploads { window_ms, min_bytes, max_keys: max_keys.max(1), windows: KeyedMap::default() }
    }

    /// Adds an upload of `bytes` under `key`; returns the window's sum and,
    /// once it reaches the bar, the uploads not reported before.
    pub fn push(&mut self, key: u64, bytes: u64, entry: EntryRef) -> (Vec<EntryRef>, u64) {
        if !self.windows.contains_key(&key) && self.windows.len() >= self.max_keys {
            let horizon = entry.timestamp_ms - self.window_ms;
            make_room(
                &mut self.windows,
                self.max_keys,
                |w| w.uploads.back().map_or(i64::MIN, |u| u.0.timestamp_ms),
                horizon,
            );
        }
        let window = self.windows.entry(key).or_default();
        let horizon = entry.timestamp_ms - self.window_ms;
        while window.uploads.front().is_some_and(|u| u.0.timestamp_ms < horizon) {
            if let Some((_, old, _)) = window.uploads.pop_front() {
                window.bytes -= old;
            }
        }
        window.uploads.push_back((entry, bytes, false));
        window.bytes += bytes;
        if window.bytes < self.min_bytes {
            return (Vec::new(), window.bytes);
        }
        let mut hits = Vec::new();
        for upload in window.uploads.iter_mut().filter(|u| !u.2) {
            upload.2 = true;
            hits.push(upload.0);
        }
        (hits, window.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: u64, seconds: i64) -> EntryRef {
        EntryRef { id, timestamp_ms: seconds * 1000 }
    }

    #[test]
    fn uploads_add_up_within_the_window_and_are_reported_once() {
        let mut uploads = Uploads::new(60_000, 100, 4);
        assert!(uploads.push(1, 40, at(1, 0)).0.is_empty());
        assert!(uploads.push(1, 40, at(2, 10)).0.is_empty());
        assert!(uploads.push(2, 90, at(3, 10)).0.is_empty(), "another key");
        let (hits, sum) = uploads.push(1, 40, at(4, 20));
        assert_eq!((hits.len(), sum), (3, 120));
        assert_eq!(uploads.push(1, 1, at(5, 30)).0, vec![at(5, 30)]);
        // The first two have left the window: 40 + 1 + 10.
        assert_eq!(uploads.push(1, 10, at(6, 75)), (Vec::new(), 51));
        for key in 10..100 {
            uploads.push(key, 1, at(key, 100));
        }
        assert!(uploads.windows.len() <= 4);
    }
}
