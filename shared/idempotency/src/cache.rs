//! A bounded, expiry-aware, least-recently-used cache of completed records.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::record::{Record, Status};

#[derive(Debug)]
struct Inner {
    entries: HashMap<String, (Record, u64)>,
    by_use: BTreeMap<u64, String>,
    tick: u64,
}

/// Completed records by key; in-progress records are never kept.
#[derive(Debug)]
pub(crate) struct RecordCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl RecordCache {
    pub(crate) fn new(capacity: usize) -> Self {
        RecordCache {
            capacity,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
                tick: 0,
            }),
        }
    }

    /// The live record for `key`, if cached; an expired one is dropped.
    pub(crate) fn get(&self, key: &str, now_ms: u64) -> Option<Record> {
        let mut inner = self.inner.lock().ok()?;
        let inner = &mut *inner;
        let (record, used) = inner.entries.get_mut(key)?;
        if record.is_expired(now_ms) {
            let used = *used;
            inner.by_use.remove(&used);
            inner.entries.remove(key);
            return None;
        }
        inner.tick += 1;
        inner.by_use.remove(used);
        *used = inner.tick;
        inner.by_use.insert(inner.tick, key.to_owned());
        Some(record.clone())
    }

    /// Keeps a completed record, evicting the least recently used.
    pub(crate) fn put(&self, record: &Record) {
        if self.capacity == 0 || record.status != Status::Completed {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let inner = &mut *inner;
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((_, old)) = inner
            .entries
            .insert(record.key.clone(), (record.clone(), tick))
        {
            inner.by_use.remove(&old);
        }
        inner.by_use.insert(tick, record.key.clone());
        while inner.entries.len() > self.capacity {
            let Some((_, key)) = inner.by_use.pop_first() else {
                break;
            };
            inner.entries.remove(&key);
        }
    }

    /// Forgets a key.
    pub(crate) fn remove(&self, key: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some((_, used)) = inner.entries.remove(key) {
                inner.by_use.remove(&used);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().map(|i| i.entries.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, status: Status, expiration_s: u64) -> Record {
        Record {
            key: key.into(),
            status,
            expiration_s,
            in_progress_expiry_ms: None,
            lease: None,
            data: None,
            failed: false,
            validation: None,
        }
    }

    #[test]
    fn bounded_lru_expiry_aware_and_never_in_progress() {
        let c = RecordCache::new(2);
        c.put(&rec("a", Status::Completed, 100));
        c.put(&rec("b", Status::Completed, 100));
        assert!(c.get("a", 0).is_some()); // a is now the most recent
        c.put(&rec("c", Status::Completed, 100));
        assert!(c.get("b", 0).is_none(), "b was least recently used");
        assert!(c.get("a", 0).is_some() && c.get("c", 0).is_some());
        c.put(&rec("d", Status::InProgress, 100));
        assert!(c.get("d", 0).is_none());
        assert!(c.get("a", 101_000).is_none(), "expired");
        assert_eq!(c.len(), 1);
        c.remove("c");
        assert_eq!(c.len(), 0);
        let off = RecordCache::new(0);
        off.put(&rec("a", Status::Completed, 100));
        assert!(off.get("a", 0).is_none());
    }
}
