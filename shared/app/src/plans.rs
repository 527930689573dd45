//! Which plan applies to an identity, cached in the container for a short
//! time: plans (one Query for all of them) and key plans (one GetItem per
//! key id), read through the store's ports ([`PlanSource`], [`KeyPlans`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tollgate_core::clock::{Clock, SystemClock};
use tollgate_core::{Identity, Plan, UnixMillis};
use tollgate_store::{KeyPlans, KeysStore, PlanSource, StoreError};

/// At most this many key plans are kept; beyond it the map starts afresh.
const MAX_KEY_PLANS: usize = 50_000;

/// The plans and key plans of one Keys table (any adapter of its ports,
/// DynamoDB's by default), cached for `ttl`.
#[derive(Debug)]
pub struct PlanCache<K = KeysStore> {
    keys: K,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    anonymous: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    plans: Option<(UnixMillis, Arc<HashMap<String, Plan>>)>,
    key_plans: HashMap<String, (UnixMillis, Option<String>)>,
}

impl<K: PlanSource> PlanCache<K> {
    /// A cache over `keys`; identities without a key use the plan named `anonymous`.
    pub fn new(keys: K, ttl: Duration, anonymous: impl Into<String>) -> Self {
        PlanCache {
            keys,
            ttl,
            clock: Arc::new(SystemClock),
            anonymous: anonymous.into(),
            state: Mutex::new(State::default()),
        }
    }

    /// The same cache, on `clock`'s time (a simulation's, say).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the maps inconsistent: keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every plan, by name.
    pub async fn plans(&self) -> Result<Arc<HashMap<String, Plan>>, StoreError> {
        if let Some((at, plans)) = &self.state().plans {
            if self.clock.is_within(*at, self.ttl) {
                return Ok(plans.clone());
            }
        }
        let plans: Arc<HashMap<String, Plan>> = Arc::new(
            self.keys
                .list_plans()
                .await?
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
        );
        self.state().plans = Some((self.clock.now_millis(), plans.clone()));
        Ok(plans)
    }

    /// The store the plans are read from.
    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// The plan identities without a key are on.
    pub fn anonymous_plan(&self) -> &str {
        &self.anonymous
    }
}

impl<K: PlanSource + KeyPlans> PlanCache<K> {
    /// The name of the plan `identity` is on: its key's plan (`None` for an
    /// unknown key), or the anonymous plan.
    pub async fn plan_name(&self, identity: &Identity) -> Result<Option<String>, StoreError> {
        let key_id = match identity {
            Identity::Key(id) => id,
            _ => return Ok(Some(self.anonymous.clone())),
        };
        if let Some((at, plan)) = self.state().key_plans.get(key_id) {
            if self.clock.is_within(*at, self.ttl) {
                return Ok(plan.clone());
            }
        }
        let plan = self.keys.plan_of_key(key_id).await?;
        let mut state = self.state();
        if state.key_plans.len() >= MAX_KEY_PLANS {
            state.key_plans.clear();
        }
        state
            .key_plans
            .insert(key_id.clone(), (self.clock.now_millis(), plan.clone()));
        Ok(plan)
    }

    /// The plan `identity` is on, if it and the plan are known.
    pub async fn plan_for(&self, identity: &Identity) -> Result<Option<Plan>, StoreError> {
        let Some(name) = self.plan_name(identity).await? else {
            return Ok(None);
        };
        Ok(self.plans().await?.get(&name).cloned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tollgate_core::clock::ManualClock;
    use tollgate_core::{ApiKey, KeyRecord, KeyStatus};
    use tollgate_store::memory::MemoryKeys;

    fn plan(name: &str) -> Plan {
        Plan {
            name: name.into(),
            limits: vec![],
            overage: Default::default(),
            failure: Default::default(),
        }
    }

    #[tokio::test]
    async fn reads_plans_and_key_plans_once_per_ttl() {
        let keys = MemoryKeys::new();
        keys.put_plan(plan("pro"));
        keys.put_plan(plan("anonymous"));
        let key = ApiKey::generate([2u8; 32]);
        keys.put_key(
            &key.digest(),
            KeyRecord {
                key_id: key.key_id(),
                customer: "acme".into(),
                plan: "pro".into(),
                status: KeyStatus::Active,
                expires_at: None,
                valid_until: None,
            },
        );
        let clock = ManualClock::at(1_795_000_000_000);
        let ttl = Duration::from_secs(60);
        let cache = PlanCache::new(keys, ttl, "anonymous").with_clock(Arc::new(clock.clone()));
        let id = Identity::Key(key.key_id());
        let ip: Identity = "ip:192.0.2.1".parse().unwrap();
        let unknown = Identity::Key("k_unknown".into());
        for _ in 0..3 {
            assert_eq!(cache.plan_for(&id).await.unwrap().unwrap().name, "pro");
            assert_eq!(
                cache.plan_for(&ip).await.unwrap().unwrap().name,
                "anonymous"
            );
            assert_eq!(cache.plan_for(&unknown).await.unwrap(), None);
        }
        // One plan load; one key plan read per key id (anonymous: none).
        assert_eq!(
            (cache.keys.plan_loads(), cache.keys.key_plan_reads()),
            (1, 2)
        );
        clock.advance(ttl + Duration::from_millis(1));
        assert_eq!(cache.plan_for(&id).await.unwrap().unwrap().name, "pro");
        assert_eq!(
            (cache.keys.plan_loads(), cache.keys.key_plan_reads()),
            (2, 3)
        );
        // A failed read is an error, never "no plan".
        cache.keys.fail(tollgate_store::memory::Failing::Everything);
        clock.advance(ttl + Duration::from_millis(1));
        assert!(cache.plan_for(&id).await.is_err());
    }
}
