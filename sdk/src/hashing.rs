//! The hash maps agents keep per source: foldhash instead of the standard
//! SipHash, which in a guest is most of what a map lookup costs
//! (docs/performance.md), keyed with secret random seeds so that sources an
//! attacker names in the logs are hard to choose to collide. foldhash
//! resists such choices less than keyed SipHash does: a map that an
//! attacker fills must also be bounded (the SDK's windows hold `max_keys`).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use foldhash::SharedSeed;
use foldhash::fast::{FoldHasher, SeedableRandomState};

/// A map keyed by values that come from logs.
pub type KeyedMap<K, V> = HashMap<K, V, KeyedHasher>;
/// A set of values that come from logs.
pub type KeyedSet<T> = HashSet<T, KeyedHasher>;

/// Builds foldhash hashers whose seeds come from the standard library's
/// random keys. foldhash's own `RandomState` seeds itself from addresses
/// and the clock, which a guest's fixed memory layout makes guessable; the
/// standard library's keys come from `wasi:random` in a guest.
#[derive(Clone, Debug)]
pub struct KeyedHasher(SeedableRandomState);

impl Default for KeyedHasher {
    fn default() -> Self {
        static SHARED: OnceLock<SharedSeed> = OnceLock::new();
        let shared = SHARED.get_or_init(|| SharedSeed::from_u64(random_u64()));
        KeyedHasher(SeedableRandomState::with_seed(random_u64(), shared))
    }
}

impl BuildHasher for KeyedHasher {
    type Hasher = FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// 64 random bits: each `RandomState` the standard library hands out has
/// fresh keys.
fn random_u64() -> u64 {
    RandomState::new().hash_one(0u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_maps_hash_the_same_key_differently() {
        let (a, b) = (KeyedHasher::default(), KeyedHasher::default());
        let key = "aa:bb:cc:dd:ee:ff";
        assert_ne!(a.hash_one(key), b.hash_one(key), "each map has a seed of its own");
        assert_eq!(a.hash_one(key), a.clone().hash_one(key), "a map hashes a key the same way every time");
    }

    #[test]
    fn maps_work_as_maps() {
        let mut map: KeyedMap<String, u32> = KeyedMap::default();
        for i in 0..1000 {
            *map.entry(format!("host-{}", i % 100)).or_default() += 1;
        }
        assert_eq!(map.len(), 100);
        assert!(map.values().all(|n| *n == 10));
    }
}
