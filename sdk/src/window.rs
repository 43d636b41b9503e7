//! Sliding-window burst detection, the state most agents keep per source.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::EntryRef;

/// What a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Every entry.
    Entries,
    /// Distinct tags (for example distinct destination ports).
    DistinctTags,
}

#[derive(Debug, Default)]
struct KeyWindow {
    events: VecDeque<(i64, u64, EntryRef)>,
    /// Events per tag in the window, kept only when counting distinct tags.
    tags: HashMap<u64, u32>,
    /// True while the window is over the threshold, so entries that keep the
    /// burst going are flagged one by one instead of re-flagging the window.
    alarmed: bool,
}

/// Counts events per key within `span_ms`; when the count reaches
/// `threshold`, every entry of the window is returned once, and each later
/// entry of the same burst as it comes.
#[derive(Debug)]
pub struct Burst<K> {
    span_ms: i64,
    threshold: usize,
    count: Count,
    max_keys: usize,
    windows: HashMap<K, KeyWindow>,
}

impl<K: Hash + Eq + Clone> Burst<K> {
    /// A window of `span_ms` milliseconds that alarms at `threshold`.
    /// At most `max_keys` keys are tracked; the stalest are dropped first.
    pub fn new(span_ms: i64, threshold: usize, count: Count, max_keys: usize) -> Self {
        Burst { span_ms, threshold: threshold.max(1), count, max_keys: max_keys.max(1), windows: HashMap::new() }
    }

    /// Records an event; returns the entries to flag now (empty when calm).
    pub fn push(&mut self, key: &K, timestamp_ms: i64, tag: u64, entry: EntryRef) -> Vec<EntryRef> {
        if !self.windows.contains_key(key) && self.windows.len() >= self.max_keys {
            self.evict(timestamp_ms);
        }
        let window = self.windows.entry(key.clone()).or_default();
        let horizon = timestamp_ms - self.span_ms;
        let distinct = self.count == Count::DistinctTags;
        while window.events.front().is_some_and(|(ts, _, _)| *ts < horizon) {
            if let Some((_, old, _)) = window.events.pop_front() {
                if distinct {
                    forget_tag(&mut window.tags, old);
                }
            }
        }
        window.events.push_back((timestamp_ms, tag, entry));
        if distinct {
            *window.tags.entry(tag).or_default() += 1;
        }
        let level = if distinct { window.tags.len() } else { window.events.len() };
        if level < self.threshold {
            window.alarmed = false;
            return Vec::new();
        }
        if window.alarmed {
            return vec![entry];
        }
        window.alarmed = true;
        window.events.iter().map(|(_, _, e)| *e).collect()
    }

    /// The current level for `key`, for explanations.
    pub fn level(&self, key: &K) -> usize {
        self.windows.get(key).map_or(0, |w| match self.count {
            Count::Entries => w.events.len(),
            Count::DistinctTags => w.tags.len(),
        })
    }

    fn evict(&mut self, now_ms: i64) {
        let horizon = now_ms - self.span_ms;
        self.windows.retain(|_, w| w.events.back().is_some_and(|(ts, _, _)| *ts >= horizon));
        if self.windows.len() >= self.max_keys {
            // Still full of live keys: drop the one seen longest ago.
            let stalest = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.events.back().map_or(i64::MIN, |(ts, _, _)| *ts))
                .map(|(k, _)| k.clone());
            if let Some(key) = stalest {
                self.windows.remove(&key);
            }
        }
    }
}

/// Shannon entropy of a string's bytes, in bits per byte.
pub fn entropy(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in text.bytes() {
        counts[b as usize] += 1;
    }
    let len = text.len() as f32;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f32 / len;
            -p * p.log2()
        })
        .sum()
}

fn forget_tag(tags: &mut HashMap<u64, u32>, tag: u64) {
    if let Some(count) = tags.get_mut(&tag) {
        *count -= 1;
        if *count == 0 {
            tags.remove(&tag);
        }
    }
}

/// A 64-bit key for a window, so per-entry lookups need no owned strings.
/// Two sources share a window only on a 64-bit hash collision.
pub fn key_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}
