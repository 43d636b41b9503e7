//! Sliding-window burst detection, the state most agents keep per source.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::EntryRef;
use crate::hashing::KeyedMap;

/// What a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Count {
    /// Every entry.
    Entries,
    /// Distinct tags (for example distinct destination ports).
    DistinctTags,
    /// Entries whose tag is already in the window: events that repeat
    /// (a frame sent again to the same target), not new ones. A burst of
    /// one event per target, however many targets, counts zero.
    Repeats,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct KeyWindow {
    events: VecDeque<(i64, u64, EntryRef)>,
    /// Events per tag in the window, kept only when counting tags.
    /// A short vector: windows hold few distinct tags, and one allocation per
    /// key beats a map's two.
    tags: Vec<(u64, u32)>,
    /// True while the window is over the threshold, so entries that keep the
    /// burst going are flagged one by one instead of re-flagging the window.
    alarmed: bool,
}

/// Counts events per key within `span_ms`; when the count reaches
/// `threshold`, every entry of the window is returned once, and each later
/// entry of the same burst as it comes.
///
/// It serialises with serde (windows ordered by key, so the same windows
/// give the same bytes), for an agent's state snapshot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound(serialize = "K: serde::Serialize + Ord", deserialize = "K: serde::Deserialize<'de> + Hash + Eq"))]
pub struct Burst<K> {
    span_ms: i64,
    threshold: usize,
    count: Count,
    max_keys: usize,
    #[serde(serialize_with = "sorted_by_key")]
    windows: KeyedMap<K, KeyWindow>,
}

fn sorted_by_key<K: serde::Serialize + Ord, V: serde::Serialize, S: serde::Serializer>(
    map: &KeyedMap<K, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(map.iter().collect::<std::collections::BTreeMap<_, _>>())
}

impl<K: Hash + Eq + Clone> Burst<K> {
    /// A window of `span_ms` milliseconds that alarms at `threshold`.
    /// At most `max_keys` keys are tracked; the stalest are dropped first.
    pub fn new(span_ms: i64, threshold: usize, count: Count, max_keys: usize) -> Self {
        Burst { span_ms, threshold: threshold.max(1), count, max_keys: max_keys.max(1), windows: KeyedMap::default() }
    }

    /// Takes the windows of `saved` (a restored snapshot), keeping this
    /// window's span, threshold and limits, which the operator's settings
    /// may have changed since. Windows that counted something else (an
    /// agent's earlier version) are dropped: their events carry no tags,
    /// or tags of another meaning.
    pub fn take_windows(&mut self, saved: Burst<K>) {
        if saved.count == self.count {
            self.windows = saved.windows;
        }
    }

    /// Records an event; returns the entries to flag now (empty when calm).
    pub fn push(&mut self, key: &K, timestamp_ms: i64, tag: u64, entry: EntryRef) -> Vec<EntryRef> {
        self.push_counted(key, timestamp_ms, tag, entry).0
    }

    /// As [`Burst::push`], with the key's level after the event, so that
    /// an agent whose model reads the window's count looks the key up once.
    pub fn push_counted(&mut self, key: &K, timestamp_ms: i64, tag: u64, entry: EntryRef) -> (Vec<EntryRef>, usize) {
        if !self.windows.contains_key(key) && self.windows.len() >= self.max_keys {
            self.evict(timestamp_ms);
        }
        let window = self.windows.entry(key.clone()).or_default();
        let horizon = timestamp_ms - self.span_ms;
        let distinct = self.count != Count::Entries;
        while window.events.front().is_some_and(|(ts, _, _)| *ts < horizon) {
            if let Some((_, old, _)) = window.events.pop_front()
                && distinct
            {
                forget_tag(&mut window.tags, old);
            }
        }
        window.events.push_back((timestamp_ms, tag, entry));
        if distinct {
            match window.tags.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, count)) => *count += 1,
                None => window.tags.push((tag, 1)),
            }
        }
        let level = match self.count {
            Count::Entries => window.events.len(),
            Count::DistinctTags => window.tags.len(),
            Count::Repeats => window.events.len().saturating_sub(window.tags.len()),
        };
        if level < self.threshold {
            window.alarmed = false;
            return (Vec::new(), level);
        }
        if window.alarmed {
            return (vec![entry], level);
        }
        window.alarmed = true;
        (window.events.iter().map(|(_, _, e)| *e).collect(), level)
    }

    /// Whether this window counts the same events as `other` (span, what
    /// it counts, how many keys), whatever the two alarm at.
    pub fn counts_as(&self, other: &Burst<K>) -> bool {
        self.span_ms == other.span_ms && self.count == other.count && self.max_keys == other.max_keys
    }

    /// Whether no key has a window.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The level at which a key's window is flagged.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The current level for `key`, for explanations.
    pub fn level(&self, key: &K) -> usize {
        self.windows.get(key).map_or(0, |w| match self.count {
            Count::Entries => w.events.len(),
            Count::DistinctTags => w.tags.len(),
            Count::Repeats => w.events.len().saturating_sub(w.tags.len()),
        })
    }

    fn evict(&mut self, now_ms: i64) {
        let horizon = now_ms - self.span_ms;
        make_room(&mut self.windows, self.max_keys, |w| w.events.back().map_or(i64::MIN, |(ts, _, _)| *ts), horizon);
    }
}

/// Makes room in a map of at most `max_keys` windows that is full: drops
/// the windows last seen before `horizon`, then, while the map is over
/// `max_keys` less a sixteenth, the windows seen longest ago. Freeing a
/// sixteenth at once means a flood of new keys (spoofed sources) pays the
/// scans this takes once per many keys, not for each key.
pub fn make_room<K: Hash + Eq + Clone, V>(
    windows: &mut KeyedMap<K, V>,
    max_keys: usize,
    last_seen_ms: impl Fn(&V) -> i64,
    horizon: i64,
) {
    windows.retain(|_, w| last_seen_ms(w) >= horizon);
    let keep = max_keys.saturating_sub((max_keys / 16).max(1));
    let excess = windows.len().saturating_sub(keep);
    if excess == 0 {
        return;
    }
    let mut by_age: Vec<(i64, K)> = windows.iter().map(|(k, w)| (last_seen_ms(w), k.clone())).collect();
    if excess < by_age.len() {
        by_age.select_nth_unstable_by_key(excess - 1, |(seen, _)| *seen);
    }
    for (_, key) in by_age.into_iter().take(excess) {
        windows.remove(&key);
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

fn forget_tag(tags: &mut Vec<(u64, u32)>, tag: u64) {
    if let Some(index) = tags.iter().position(|(t, _)| *t == tag) {
        tags[index].1 -= 1;
        if tags[index].1 == 0 {
            tags.swap_remove(index);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_of_live_keys_frees_a_sixteenth_of_the_stalest_at_once() {
        let mut burst = Burst::new(60_000, 1_000, Count::Entries, 64);
        for key in 0..64u64 {
            burst.push(&key, 1_000 + key as i64, 0, at(key));
        }
        assert_eq!(burst.windows.len(), 64);
        burst.push(&1_000, 2_000, 0, at(1_000));
        assert_eq!(burst.windows.len(), 61, "four of the stalest went, and the new key came in");
        for gone in 0..4u64 {
            assert_eq!(burst.level(&gone), 0, "key {gone} was among the stalest");
        }
        assert_eq!(burst.level(&4), 1, "key 4 stays");
        assert_eq!(burst.level(&1_000), 1);
        // The next three new keys find room without another scan's worth of eviction.
        for key in 2_000..2_003u64 {
            burst.push(&key, 3_000, 0, at(key));
        }
        assert_eq!(burst.windows.len(), 64);
        // Expired windows go before live ones.
        burst.push(&5_000, 62_000, 0, at(5_000));
        assert!(
            burst.windows.len() <= 61 && burst.level(&2_000) == 1,
            "the windows last seen at 1,000..1,064 expired first"
        );
    }

    fn at(id: u64) -> EntryRef {
        EntryRef { id, timestamp_ms: id as i64 * 100 }
    }

    #[test]
    fn burst_flags_the_whole_window_once_then_each_new_entry() {
        let mut burst = Burst::new(1_000, 3, Count::Entries, 16);
        assert!(burst.push(&1u64, 100, 0, at(1)).is_empty());
        assert!(burst.push(&1u64, 200, 0, at(2)).is_empty());
        assert_eq!(burst.push(&1u64, 300, 0, at(3)), vec![at(1), at(2), at(3)]);
        assert_eq!(burst.push(&1u64, 400, 0, at(4)), vec![at(4)]);
        assert_eq!(burst.level(&1u64), 4);
    }

    #[test]
    fn old_events_leave_the_window() {
        let mut burst = Burst::new(1_000, 3, Count::Entries, 16);
        burst.push(&7u64, 0, 0, at(1));
        burst.push(&7u64, 500, 0, at(2));
        assert!(burst.push(&7u64, 1_600, 0, at(3)).is_empty(), "the first two are older than the span");
        assert_eq!(burst.level(&7u64), 1);
    }

    #[test]
    fn distinct_tags_count_each_tag_once() {
        let mut burst = Burst::new(10_000, 3, Count::DistinctTags, 16);
        for (i, tag) in [80, 80, 443, 443].into_iter().enumerate() {
            assert!(burst.push(&1u64, i as i64, tag, at(i as u64)).is_empty());
        }
        assert_eq!(burst.level(&1u64), 2);
        assert_eq!(burst.push(&1u64, 10, 22, at(9)).len(), 5);
    }

    #[test]
    fn repeats_count_events_again_for_a_tag_not_new_tags() {
        let mut burst = Burst::new(10_000, 3, Count::Repeats, 16);
        // One event for each of many tags repeats nothing.
        for tag in 0..20u64 {
            assert!(burst.push(&1u64, tag as i64, tag, at(tag)).is_empty());
        }
        assert_eq!(burst.level(&1u64), 0);
        assert!(burst.push(&1u64, 30, 4, at(30)).is_empty());
        assert!(burst.push(&1u64, 31, 4, at(31)).is_empty());
        // The third repeat flags the whole window, first events included.
        assert_eq!(burst.push(&1u64, 32, 9, at(32)).len(), 23);
        assert_eq!(burst.level(&1u64), 3);
        // The first events leave the window and their repeats stop counting.
        assert!(burst.push(&1u64, 20_000, 4, at(40)).is_empty());
        assert_eq!(burst.level(&1u64), 0);
    }

    #[test]
    fn windows_saved_counting_something_else_are_not_taken() {
        let mut saved = Burst::new(10_000, 3, Count::Entries, 16);
        for i in 0..5 {
            saved.push(&1u64, i, 0, at(i as u64));
        }
        let mut repeats = Burst::new(10_000, 3, Count::Repeats, 16);
        repeats.take_windows(saved.clone());
        assert!(repeats.is_empty(), "untagged events would count as repeats");
        let mut entries = Burst::new(20_000, 9, Count::Entries, 16);
        entries.take_windows(saved);
        assert_eq!(entries.level(&1u64), 5);
    }

    #[test]
    fn keys_are_bounded() {
        let mut burst = Burst::new(1_000, 100, Count::Entries, 4);
        for key in 0..100u64 {
            burst.push(&key, key as i64 * 10_000, 0, at(key));
        }
        assert!(burst.windows.len() <= 4);
    }

    #[test]
    fn entropy_separates_random_from_words() {
        assert!(entropy("aaaa") < 0.01);
        assert!(entropy("mail") < 2.1);
        assert!(entropy("x7qk2mzv9tbw4hnp") > 3.5);
    }
}
