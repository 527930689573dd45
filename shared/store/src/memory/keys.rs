//! Keys, blocks and plans in memory: reads counted, and a switch that makes
//! reads fail, so a handler's failure policies are tested without a dead
//! socket.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tollgate_core::{Block, Identity, KeyDigest, KeyRecord, Plan};

use crate::ports::{KeyAndBlocks, KeyLookup, KeyPlans, PlanSource};
use crate::StoreError;

/// Which reads fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Failing {
    /// None (the default).
    #[default]
    Nothing,
    /// Key and block lookups, and key plan reads.
    Lookups,
    /// Plan loads.
    Plans,
    /// Every read.
    Everything,
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<KeyDigest, KeyRecord>,
    blocks: HashMap<Identity, Vec<Block>>,
    plans: Vec<Plan>,
    failing: Failing,
    lookups: usize,
    plan_loads: usize,
    key_plan_reads: usize,
}

/// Keys, blocks and plans in memory, implementing [`KeyLookup`],
/// [`PlanSource`] and [`KeyPlans`].
#[derive(Debug, Default)]
pub struct MemoryKeys {
    state: Mutex<State>,
}

impl MemoryKeys {
    /// An empty store that reads fine.
    pub fn new() -> Self {
        MemoryKeys::default()
    }

    /// A store whose every read fails.
    pub fn failing() -> Self {
        let store = MemoryKeys::new();
        store.fail(Failing::Everything);
        store
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores (or replaces) the key of `digest`.
    pub fn put_key(&self, digest: &KeyDigest, record: KeyRecord) {
        self.state().keys.insert(digest.clone(), record);
    }

    /// Adds a block of `identity`.
    pub fn put_block(&self, identity: &Identity, block: Block) {
        self.state()
            .blocks
            .entry(identity.clone())
            .or_default()
            .push(block);
    }

    /// Stores (or replaces, by name) a plan.
    pub fn put_plan(&self, plan: Plan) {
        let mut state = self.state();
        state.plans.retain(|p| p.name != plan.name);
        state.plans.push(plan);
    }

    /// From now on, makes `what` fail.
    pub fn fail(&self, what: Failing) {
        self.state().failing = what;
    }

    /// Lookups asked for so far, failed ones included.
    pub fn lookups(&self) -> usize {
        self.state().lookups
    }

    /// Plan loads asked for so far, failed ones included.
    pub fn plan_loads(&self) -> usize {
        self.state().plan_loads
    }

    /// Key plan reads ([`KeyPlans::plan_of_key`]) asked for so far, failed
    /// ones included.
    pub fn key_plan_reads(&self) -> usize {
        self.state().key_plan_reads
    }
}

fn told_to_fail(operation: &'static str) -> StoreError {
    StoreError::Dynamo {
        operation,
        message: "the in-memory store was told to fail".to_owned(),
    }
}

impl KeyLookup for MemoryKeys {
    async fn lookup_each(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> Result<KeyAndBlocks, StoreError> {
        let mut state = self.state();
        state.lookups += 1;
        if matches!(state.failing, Failing::Lookups | Failing::Everything) {
            return Err(told_to_fail("lookup"));
        }
        let record = digest.and_then(|d| state.keys.get(d).cloned());
        let blocks = identities
            .iter()
            .map(|id| state.blocks.get(id).cloned().unwrap_or_default())
            .collect();
        Ok((record, blocks))
    }
}

impl PlanSource for MemoryKeys {
    async fn list_plans(&self) -> Result<Vec<Plan>, StoreError> {
        let mut state = self.state();
        state.plan_loads += 1;
        if matches!(state.failing, Failing::Plans | Failing::Everything) {
            return Err(told_to_fail("list plans"));
        }
        Ok(state.plans.clone())
    }
}

impl KeyPlans for MemoryKeys {
    async fn plan_of_key(&self, key_id: &str) -> Result<Option<String>, StoreError> {
        let mut state = self.state();
        state.key_plan_reads += 1;
        if matches!(state.failing, Failing::Lookups | Failing::Everything) {
            return Err(told_to_fail("key plan"));
        }
        Ok(state
            .keys
            .values()
            .find(|k| k.key_id == key_id)
            .map(|k| k.plan.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tollgate_core::{ApiKey, FailurePolicy, KeyStatus, MeterName, Window};

    fn block(limit: u64) -> Block {
        Block {
            meter: MeterName::requests(),
            period: Window::Day.period_of(0).unwrap(),
            limit,
            used: limit,
        }
    }

    #[tokio::test]
    async fn reads_what_was_put_in_the_order_asked() {
        let store = MemoryKeys::new();
        let key = ApiKey::generate([1u8; 32]);
        let record = KeyRecord {
            key_id: key.key_id(),
            customer: "acme".into(),
            plan: "pro".into(),
            status: KeyStatus::Active,
            expires_at: None,
            valid_until: None,
        };
        store.put_key(&key.digest(), record.clone());
        let id = Identity::Key(key.key_id());
        let ip: Identity = "ip:192.0.2.1".parse().unwrap();
        store.put_block(&ip, block(7));
        let (found, blocks) = store
            .lookup_each(Some(&key.digest()), &[id.clone(), ip.clone()])
            .await
            .unwrap();
        assert_eq!(found, Some(record));
        assert_eq!(blocks, vec![vec![], vec![block(7)]]);
        let (none, flat) = store.lookup(None, &[ip, id]).await.unwrap();
        assert_eq!((none, flat), (None, vec![block(7)]));
        assert_eq!(store.lookups(), 2);
    }

    #[tokio::test]
    async fn fails_when_told_and_counts_every_read() {
        let store = MemoryKeys::new();
        store.put_plan(plan("pro", FailurePolicy::Closed));
        store.put_plan(plan("pro", FailurePolicy::Open));
        assert_eq!(store.list_plans().await.unwrap().len(), 1);
        store.fail(Failing::Lookups);
        assert!(store.lookup_each(None, &[]).await.is_err());
        assert!(store.list_plans().await.is_ok());
        store.fail(Failing::Plans);
        assert!(store.lookup_each(None, &[]).await.is_ok());
        assert!(store.list_plans().await.is_err());
        let dead = MemoryKeys::failing();
        assert!(dead.lookup(None, &[]).await.is_err());
        assert!(dead.list_plans().await.is_err());
        assert_eq!((store.lookups(), store.plan_loads()), (2, 3));
    }

    fn plan(name: &str, failure: FailurePolicy) -> Plan {
        Plan {
            name: name.into(),
            limits: vec![],
            overage: Default::default(),
            failure,
        }
    }
}
