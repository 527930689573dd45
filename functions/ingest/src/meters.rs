//! Meter definitions from the Keys table, cached in the process for a
//! short time: one Query per cache period, not per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tollgate_core::{MeterDef, MeterName};
use tollgate_store::{KeysStore, StoreError};

/// Meters by name.
pub type Meters = HashMap<MeterName, MeterDef>;

/// A cache of the meter definitions.
#[derive(Debug)]
pub struct MeterCache {
    keys: KeysStore,
    ttl: Duration,
    state: Mutex<Option<(Instant, Arc<Meters>)>>,
}

impl MeterCache {
    /// A cache over `keys` that keeps definitions for `ttl`.
    pub fn new(keys: KeysStore, ttl: Duration) -> Self {
        MeterCache {
            keys,
            ttl,
            state: Mutex::new(None),
        }
    }

    /// The definitions, read again when older than the cache period.
    pub async fn get(&self) -> Result<Arc<Meters>, StoreError> {
        self.get_fresher_than(self.ttl).await
    }

    /// The definitions, read again when older than `max_age` (so an
    /// unknown meter can trigger one early refresh).
    pub async fn get_fresher_than(&self, max_age: Duration) -> Result<Arc<Meters>, StoreError> {
        let mut state = self.state.lock().await;
        if let Some((at, meters)) = state.as_ref() {
            if at.elapsed() <= max_age {
                return Ok(meters.clone());
            }
        }
        let meters: Meters = self
            .keys
            .list_meters()
            .await?
            .into_iter()
            .map(|m| (m.name.clone(), m))
            .collect();
        let meters = Arc::new(meters);
        *state = Some((Instant::now(), meters.clone()));
        Ok(meters)
    }
}
