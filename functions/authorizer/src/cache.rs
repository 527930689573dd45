//! The per-container cache of key and block lookups, and the clock it runs on.
//!
//! Entries live for a fixed time from when they were read (a shorter one
//! for unknown keys). The cache is bounded: when it is full, expired entries
//! go first, then the oldest tenth, so an insert costs O(1) amortised and a
//! flood of distinct callers cannot grow the container's memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tollgate_core::{Block, KeyRecord, UnixMillis};

pub use tollgate_core::clock::{Clock, ManualClock, SystemClock};

/// What one read found: the key record (for key lookups) and the blocks of
/// the identities read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    pub record: Option<KeyRecord>,
    pub blocks: Vec<Block>,
}

/// A cached read and whether it is still fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Fresh(Arc<Found>),
    /// Past its time: not used for decisions, only to pick the failure
    /// policy of a known key's plan when the store fails.
    Stale(Arc<Found>),
    Missing,
}

#[derive(Debug)]
struct Entry {
    value: Arc<Found>,
    stored_at: UnixMillis,
    expires_at: UnixMillis,
}

/// A bounded map from lookup key (a key digest, or anonymous identities) to
/// what was read.
#[derive(Debug)]
pub struct LookupCache {
    map: HashMap<String, Entry>,
    max_entries: usize,
}

impl LookupCache {
    /// An empty cache of at most `max_entries` entries.
    pub fn new(max_entries: usize) -> Self {
        LookupCache {
            map: HashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    /// The entry for `key` at `now`.
    pub fn get(&self, key: &str, now: UnixMillis) -> Cached {
        match self.map.get(key) {
            Some(e) if now < e.expires_at && now >= e.stored_at => Cached::Fresh(e.value.clone()),
            Some(e) => Cached::Stale(e.value.clone()),
            None => Cached::Missing,
        }
    }

    /// Stores what was read for `key` at `now`, fresh for `ttl`.
    pub fn insert(&mut self, key: String, value: Arc<Found>, now: UnixMillis, ttl: Duration) {
        if !self.map.contains_key(&key) && self.map.len() >= self.max_entries {
            self.make_room(now);
        }
        let expires_at = now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        self.map.insert(
            key,
            Entry {
                value,
                stored_at: now,
                expires_at,
            },
        );
    }

    /// Entries held, fresh or not.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops expired entries; if that frees less than a tenth of the room,
    /// drops the oldest entries until a tenth is free.
    fn make_room(&mut self, now: UnixMillis) {
        self.map.retain(|_, e| now < e.expires_at);
        let target = self.max_entries - (self.max_entries / 10).max(1);
        if self.map.len() <= target {
            return;
        }
        let excess = self.map.len() - target;
        let mut ages: Vec<UnixMillis> = self.map.values().map(|e| e.stored_at).collect();
        let (_, cutoff, _) = ages.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        // Everything older than the cutoff goes, then entries of exactly
        // the cutoff's age until enough room is made.
        self.map.retain(|_, e| e.stored_at >= cutoff);
        let mut to_drop = self.map.len().saturating_sub(target);
        self.map.retain(|_, e| {
            if to_drop > 0 && e.stored_at == cutoff {
                to_drop -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn found(n: u64) -> Arc<Found> {
        Arc::new(Found {
            record: None,
            blocks: vec![Block {
                meter: tollgate_core::MeterName::requests(),
                period: tollgate_core::Window::Day.period_of(0).unwrap(),
                limit: n,
                used: n,
            }],
        })
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn entries_expire_after_their_ttl() {
        let mut c = LookupCache::new(10);
        c.insert("a".into(), found(1), 1_000, 5 * S);
        assert_eq!(c.get("a", 1_000), Cached::Fresh(found(1)));
        assert_eq!(c.get("a", 5_999), Cached::Fresh(found(1)));
        assert_eq!(c.get("a", 6_000), Cached::Stale(found(1)));
        assert_eq!(c.get("b", 1_000), Cached::Missing);
        // A clock that went backwards does not make an entry fresh forever.
        assert_eq!(c.get("a", 999), Cached::Stale(found(1)));
        // A refresh replaces the entry.
        c.insert("a".into(), found(2), 6_000, 5 * S);
        assert_eq!(c.get("a", 6_001), Cached::Fresh(found(2)));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_zero_ttl_never_serves_fresh() {
        let mut c = LookupCache::new(10);
        c.insert("a".into(), found(1), 1_000, Duration::ZERO);
        assert_eq!(c.get("a", 1_000), Cached::Stale(found(1)));
    }

    #[test]
    fn size_is_bounded_expired_first_then_oldest() {
        let mut c = LookupCache::new(100);
        // 50 entries that expire at 10 s, 50 that live long.
        for i in 0..50 {
            c.insert(format!("short{i}"), found(i), 0, 10 * S);
        }
        for i in 0..50 {
            c.insert(format!("long{i}"), found(i), 1 + i as i64, 1000 * S);
        }
        assert_eq!(c.len(), 100);
        // Full: the next insert after expiry drops the 50 expired ones only.
        c.insert("new".into(), found(0), 20_000, 1000 * S);
        assert_eq!(c.len(), 51);
        assert_eq!(c.get("long0", 20_000), Cached::Fresh(found(0)));
        // Fill with fresh entries: the oldest tenth goes when full.
        for i in 0..49 {
            c.insert(format!("more{i}"), found(0), 30_000 + i, 1000 * S);
        }
        assert_eq!(c.len(), 100);
        c.insert("last".into(), found(0), 40_000, 1000 * S);
        assert!(c.len() <= 91, "{}", c.len());
        assert_eq!(c.get("long0", 40_000), Cached::Missing, "oldest evicted");
        assert!(matches!(c.get("last", 40_000), Cached::Fresh(_)));
        assert!(matches!(c.get("more48", 40_000), Cached::Fresh(_)));
    }

    #[test]
    fn never_exceeds_the_bound_under_churn() {
        let mut c = LookupCache::new(1000);
        for i in 0..20_000i64 {
            c.insert(format!("k{i}"), found(0), i, 3600 * S);
            assert!(c.len() <= 1000);
        }
        let mut tiny = LookupCache::new(1);
        tiny.insert("a".into(), found(0), 0, S);
        tiny.insert("b".into(), found(0), 0, S);
        assert_eq!(tiny.len(), 1);
        assert!(matches!(tiny.get("b", 0), Cached::Fresh(_)));
    }

    #[test]
    fn clocks() {
        let c = ManualClock::at(5);
        c.advance(Duration::from_millis(10));
        assert_eq!(c.now_millis(), 15);
        c.set(1);
        assert_eq!(c.now_millis(), 1);
        assert!(SystemClock.now_millis() > 1_700_000_000_000);
    }
}
