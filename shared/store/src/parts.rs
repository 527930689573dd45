//! Placing anonymous identities' counters in their bucket's parts (see
//! `tollgate_core::bucket`): a writer remembers each bucket's open part and
//! the bytes reserved in it, finds it with one Query the first time, and
//! finds it again, strongly consistent, when a write finds the part full.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tollgate_core::bucket::{member_bytes, OpenPart};
use tollgate_core::{Cell, ItemKey, UsageKey};

use crate::{StoreError, UsageStore};

/// How many buckets' open parts a placer remembers before it starts over.
const REMEMBERED: usize = 200_000;

/// How many open parts are looked up at once.
const LOOKUPS: usize = 16;

/// The open part of every bucket item a writer has written, shared by its
/// clones (one per container).
#[derive(Debug, Clone, Default)]
pub struct PartPlacer {
    open: Arc<Mutex<HashMap<ItemKey, OpenPart>>>,
}

impl PartPlacer {
    /// A placer that knows no part yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<ItemKey, OpenPart>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the part of every anonymous identity's key in `keys`, in order:
    /// each bucket's counters fill its open part, then the next ones, each
    /// part within `PART_MEMBER_BYTES` of reservations. Parts not known yet
    /// (or all of them with `fresh`, after a write found its part full) are
    /// found first with one Query each (strongly consistent with `fresh`).
    /// API keys' counters are left alone (part 0).
    pub async fn place(
        &self,
        store: &UsageStore,
        mut keys: Vec<&mut UsageKey>,
        fresh: bool,
    ) -> Result<(), StoreError> {
        keys.retain(|k| k.counter.identity.is_anonymous());
        for key in keys.iter_mut() {
            key.part = 0;
        }
        let unknown: BTreeSet<ItemKey> = {
            let open = self.open();
            keys.iter()
                .map(|k| k.item())
                .filter(|item| fresh || !open.contains_key(item))
                .collect()
        };
        let by_item: HashMap<ItemKey, &UsageKey> = keys.iter().map(|k| (k.item(), &**k)).collect();
        let lookups: Vec<_> = unknown
            .iter()
            .filter_map(|item| by_item.get(item).copied())
            .map(|key| async move {
                store
                    .open_part(key, fresh)
                    .await
                    .map(|part| (key.item(), part))
            })
            .collect();
        let found: Vec<Result<(ItemKey, OpenPart), StoreError>> = futures::stream::iter(lookups)
            .buffer_unordered(LOOKUPS)
            .collect()
            .await;
        let mut open = self.open();
        if open.len() + found.len() > REMEMBERED {
            open.clear();
        }
        for result in found {
            let (item, part) = result?;
            open.insert(item, part);
        }
        for key in keys {
            let Cell::Member(identity) = key.cell() else {
                continue;
            };
            let item = key.item();
            let slot = open.entry(item).or_default();
            key.part = slot
                .place(member_bytes(&identity))
                .map_err(StoreError::from)?;
        }
        Ok(())
    }
}

/// Installs this process's bucket secret from `TOLLGATE_BUCKET_SECRET`
/// (see `tollgate_core::bucket`), warning when it is not set and the public
/// default is used. Call it once at start-up, before any Usage key is built.
pub fn install_bucket_secret_from_env() -> Result<(), StoreError> {
    use tollgate_core::bucket::{install_secret_from, BUCKET_SECRET_VAR};
    let value = std::env::var(BUCKET_SECRET_VAR).ok();
    if install_secret_from(value.as_deref())? {
        tracing::warn!(
            variable = BUCKET_SECRET_VAR,
            "no bucket secret set: anonymous identities are bucketed with the public default, which lets an outsider aim identities at one bucket; set it per deployment"
        );
    }
    Ok(())
}
