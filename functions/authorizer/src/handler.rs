//! The authorizer: event bytes in, response JSON (or `Unauthorized`) out.
//! It runs the request's steps in order (the event and its caller, the
//! decision, the response) and makes the decision itself: caches, store
//! ports, `tollgate_core`'s rules.
//!
//! Cost: a decision makes at most one store read, and with DynamoDB
//! (`tollgate_store::KeysStore`) that is one request (one `GetItem`, or one
//! `BatchGetItem` for a key item, its block item and the source IP's block
//! item, or an anonymous caller's IP and Referer block items), and not at
//! all when the per-container cache holds a fresh entry. Plans are cached for
//! `TOLLGATE_PLAN_CACHE_SECONDS` and reloaded with one `Query` when stale;
//! a key whose plan is missing from the cache forces at most one early
//! reload per `TOLLGATE_CACHE_SECONDS` (a plan created after the cache was
//! filled). Nothing here writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::value::RawValue;
use tollgate_core::decision::{anonymous_needs_blocks, failure_policy};
use tollgate_core::lease::LeaseBook;
use tollgate_core::{
    charge_source, decide, ApiKey, Decision, FailurePolicy, Identity, KeyDigest, KeyRecord, Lookup,
    Plan, UnixMillis,
};
use tollgate_store::{Allowances, KeyLookup, PlanSource, StoreError};

use crate::cache::{Cached, Clock, Found, LookupCache};
use crate::config::Config;
use crate::event::{Caller, Event, EventError, EventKind, Incoming};
use crate::response::{respond, Outcome, Unauthorized, UNIDENTIFIED};

/// The plans as last loaded.
#[derive(Debug, Default)]
struct PlanCache {
    plans: Option<Arc<HashMap<String, Plan>>>,
    loaded_at: UnixMillis,
    /// No reload is tried before this time (after a failure, or a forced reload).
    next_attempt: UnixMillis,
    last_forced: Option<UnixMillis>,
}

/// After a failed plan load, wait this long before trying again.
const PLAN_RETRY: Duration = Duration::from_secs(5);

/// The authorizer with its per-container state. Build it once per container.
///
/// It takes its store as its ports, [`KeyLookup`] and [`PlanSource`]:
/// `tollgate_store::KeysStore` (DynamoDB) in the function, the in-memory
/// adapter in tests. Generic rather than `Arc<dyn ...>`: the ports return
/// `impl Future`, which a trait object could only offer as a boxed future,
/// an allocation and an indirect call on every read; monomorphised, a
/// lookup costs what calling the DynamoDB adapter directly costs, and a
/// cache hit never touches the store at all.
#[derive(Debug)]
pub struct Authorizer<S, A> {
    config: Config,
    store: S,
    allowances: A,
    clock: Arc<dyn Clock>,
    cache: Mutex<LookupCache>,
    plans: Mutex<PlanCache>,
    book: Mutex<LeaseBook>,
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl<S, A> Authorizer<S, A> {
    /// An authorizer over `store` (keys, blocks, plans) and `allowances`
    /// (the leases of hard request limits), with empty caches.
    pub fn new(config: Config, store: S, allowances: A, clock: Arc<dyn Clock>) -> Self {
        Authorizer {
            cache: Mutex::new(LookupCache::new(config.cache_max_entries)),
            plans: Mutex::new(PlanCache::default()),
            book: Mutex::new(LeaseBook::new(config.cache_max_entries)),
            config,
            store,
            allowances,
            clock,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store it reads.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The allowances it leases from.
    pub fn allowances(&self) -> &A {
        &self.allowances
    }

    /// The container's leases (never held across an await).
    pub(crate) fn book(&self) -> MutexGuard<'_, LeaseBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The time on the authorizer's clock.
    pub(crate) fn now(&self) -> UnixMillis {
        self.clock.now_millis()
    }
}

impl<S: KeyLookup + PlanSource, A: Allowances> Authorizer<S, A> {
    /// Loads the plans now (at start-up, so the first request does not pay for it).
    pub async fn load_plans(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_millis();
        let plans = self.store.list_plans().await?;
        let n = plans.len();
        self.set_plans(plans, now);
        Ok(n)
    }

    /// Installs plans as if just loaded (tests and benchmarks).
    pub fn prime_plans(&self, plans: Vec<Plan>) {
        self.set_plans(plans, self.clock.now_millis());
    }

    /// Caches what a read for `key` would return, as if just read (tests and benchmarks).
    pub fn prime_key(&self, key: &ApiKey, found: Found) {
        let now = self.clock.now_millis();
        let ttl = self.ttl_for(&found, true, now);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key_cache_key(&key.digest()), Arc::new(found), now, ttl);
        }
    }

    /// Entries in the lookup cache.
    pub fn cached_entries(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn set_plans(&self, plans: Vec<Plan>, now: UnixMillis) {
        let map: HashMap<String, Plan> = plans.into_iter().map(|p| (p.name.clone(), p)).collect();
        if let Ok(mut p) = self.plans.lock() {
            p.plans = Some(Arc::new(map));
            p.loaded_at = now;
            p.next_attempt = now;
        }
    }

    /// Handles an event from the Lambda runtime (the entry point).
    pub async fn handle_incoming(&self, event: Incoming) -> Result<Box<RawValue>, Unauthorized> {
        let Some(json) = event.json() else {
            tracing::info!("unauthorized: the event is not JSON");
            crate::metrics::emit_unreadable();
            return Err(Unauthorized);
        };
        self.handle_bytes(json.as_bytes()).await
    }

    /// Handles one event given as JSON bytes: the response JSON, or
    /// `Unauthorized` for an event that is not a readable authorizer event
    /// and for a key that cannot be used (unknown, malformed, revoked,
    /// expired).
    pub async fn handle_bytes(&self, body: &[u8]) -> Result<Box<RawValue>, Unauthorized> {
        let event = Event::parse(body).map_err(|e| unreadable(&e))?;
        self.handle_event(&event).await
    }

    /// Handles one parsed event, one way: who calls (`event`), the
    /// decision (here), the response (`response`, rendered once).
    pub async fn handle_event(&self, event: &Event<'_>) -> Result<Box<RawValue>, Unauthorized> {
        if event.kind != EventKind::HttpV2 && event.resource.is_none() {
            return Err(unreadable(&EventError::MissingArn));
        }
        let caller = event.caller(&self.config);
        let outcome = self.authorize(caller).await;
        log_outcome(&outcome);
        respond(
            event,
            &outcome,
            self.config.usage_identifier_key,
            self.clock.now_millis(),
        )
    }

    /// Decides about one caller.
    pub async fn authorize(&self, caller: Caller) -> Outcome {
        match caller {
            Caller::MalformedKey => unidentified(Lookup::MalformedKey, self.clock.now_millis()),
            Caller::NoIdentity => unidentified(Lookup::NoIdentity, self.clock.now_millis()),
            Caller::Key { key, source } => self.authorize_key(&key, source).await,
            Caller::Anonymous { ip, referer } => self.authorize_anonymous(ip, referer).await,
        }
    }

    async fn authorize_key(&self, key: &ApiKey, source: Option<Identity>) -> Outcome {
        let digest = key.digest();
        let key_id = digest.key_id();
        let identity = Identity::Key(key_id.clone());
        let outcome = |decision: Decision| {
            let (principal, key_id) = match decision.subject().identity.as_ref() {
                // A quota denial charged to the source IP names the IP.
                Some(id @ Identity::Ip(_)) => (id.to_string(), key_id.clone()),
                // The record's key id: a secret issued by a roll has a
                // digest of its own but counts to its key's id.
                Some(id @ Identity::Key(k)) => (id.to_string(), k.clone()),
                _ => (identity.to_string(), key_id.clone()),
            };
            Outcome {
                decision,
                principal,
                referer: None,
                key_id: Some(key_id),
            }
        };
        let cache_key = key_cache_key(&digest);
        let Some(mut plans) = self.plans().await else {
            let now = self.clock.now_millis();
            let failure = self.config.failure_policy;
            tracing::warn!(identity = %identity, ?failure, "plans unavailable: applying the default failure policy");
            return outcome(unavailable(Some(identity.clone()), failure, now));
        };
        // The source IP matters only if the key proves unusable and the
        // anonymous plan can block it; its block item then rides along in
        // the key's read.
        let source = source.filter(|_| {
            plans
                .get(&self.config.anonymous_plan)
                .is_some_and(anonymous_needs_blocks)
        });
        let mut source_found = None;
        let found = match self.cached(&cache_key) {
            Cached::Fresh(found) => found,
            stale_or_missing => {
                let mut ids = vec![identity.clone()];
                ids.extend(source.clone());
                match self.store.lookup_each(Some(&digest), &ids).await {
                    Ok((record, mut blocks)) => {
                        if let Some(ip) = &source {
                            let found = Found {
                                record: None,
                                blocks: blocks.pop().unwrap_or_default(),
                            };
                            let key = anonymous_cache_key(std::slice::from_ref(ip));
                            source_found = Some(self.remember(key, found, false));
                        }
                        let mut blocks = blocks.pop().unwrap_or_default();
                        // A secret issued by a roll: its key's blocks are
                        // under the record's key id, not the digest's (a
                        // second read, on a cache miss only).
                        if let Some(r) = record.as_ref().filter(|r| r.key_id != key_id) {
                            let own = [Identity::Key(r.key_id.clone())];
                            match self.store.lookup(None, &own).await {
                                Ok((_, own_blocks)) => blocks = own_blocks,
                                Err(e) => {
                                    let failure = failure_policy(
                                        plans.get(&r.plan),
                                        self.config.failure_policy,
                                    );
                                    tracing::warn!(identity = %own[0], error = %e, ?failure, "block lookup of a rolled key failed: applying the failure policy");
                                    return outcome(unavailable(
                                        own.into_iter().next(),
                                        failure,
                                        self.clock.now_millis(),
                                    ));
                                }
                            }
                        }
                        self.remember(cache_key, Found { record, blocks }, true)
                    }
                    Err(e) => {
                        // The key's plan is known only from an earlier read.
                        let known = match &stale_or_missing {
                            Cached::Stale(f) => f.record.as_ref().and_then(|r| plans.get(&r.plan)),
                            _ => None,
                        };
                        let failure = failure_policy(known, self.config.failure_policy);
                        tracing::warn!(identity = %identity, error = %e, ?failure, "key lookup failed: applying the failure policy");
                        return outcome(unavailable(
                            Some(identity.clone()),
                            failure,
                            self.clock.now_millis(),
                        ));
                    }
                }
            }
        };
        if let Some(record) = &found.record {
            if !plans.contains_key(&record.plan) {
                if let Some(reloaded) = self.force_plan_reload().await {
                    plans = reloaded;
                }
                if !plans.contains_key(&record.plan) {
                    tracing::error!(identity = %identity, plan = %record.plan, "configuration error: the key's plan is not defined");
                }
            }
        }
        let now = self.clock.now_millis();
        let plan = found.record.as_ref().and_then(|r| plans.get(&r.plan));
        let decision = decide(
            Lookup::Key {
                record: found.record.clone(),
                plan,
                blocks: &found.blocks,
            },
            now,
        );
        let unusable =
            matches!(&decision, Decision::Deny { reason, .. } if reason.is_unauthorized());
        let (Some(ip), true) = (source, unusable) else {
            let decision = match (plan, decision.subject().identity.clone()) {
                (Some(plan), Some(id)) => self.lease(decision, plan, &[id]).await,
                _ => decision,
            };
            return outcome(decision);
        };
        let Some(anon_plan) = plans.get(&self.config.anonymous_plan) else {
            return outcome(decision);
        };
        let source_found = match source_found {
            Some(found) => Some(found),
            None => self.anonymous_blocks(std::slice::from_ref(&ip)).await.ok(),
        };
        let Some(source_found) = source_found else {
            // The IP's blocks cannot be read: the key is still unusable.
            return outcome(decision);
        };
        outcome(charge_source(
            decision,
            Some(Lookup::Anonymous {
                identity: ip,
                plan: anon_plan,
                blocks: &source_found.blocks,
            }),
            now,
        ))
    }

    /// The block items of anonymous `identities`, from the cache or one read.
    async fn anonymous_blocks(&self, identities: &[Identity]) -> Result<Arc<Found>, StoreError> {
        let cache_key = anonymous_cache_key(identities);
        if let Cached::Fresh(found) = self.cached(&cache_key) {
            return Ok(found);
        }
        let (_, blocks) = self.store.lookup(None, identities).await?;
        Ok(self.remember(
            cache_key,
            Found {
                record: None,
                blocks,
            },
            false,
        ))
    }

    async fn authorize_anonymous(&self, ip: Identity, referer: Option<Identity>) -> Outcome {
        let outcome = |decision| Outcome {
            decision,
            principal: ip.to_string(),
            referer: referer.as_ref().map(Identity::to_string),
            key_id: None,
        };
        let Some(plans) = self.plans().await else {
            let failure = self.config.failure_policy;
            tracing::warn!(identity = %ip, ?failure, "plans unavailable: applying the default failure policy");
            return outcome(unavailable(
                Some(ip.clone()),
                failure,
                self.clock.now_millis(),
            ));
        };
        let Some(plan) = plans.get(&self.config.anonymous_plan) else {
            tracing::error!(
                plan = %self.config.anonymous_plan,
                "configuration error: the anonymous plan is not defined (TOLLGATE_ANONYMOUS_PLAN); denying anonymous requests"
            );
            return outcome(decide(
                Lookup::NoAnonymousPlan {
                    identity: ip.clone(),
                    plan: self.config.anonymous_plan.clone(),
                },
                self.clock.now_millis(),
            ));
        };
        let found = if anonymous_needs_blocks(plan) {
            let mut identities = vec![ip.clone()];
            identities.extend(referer.clone());
            match self.anonymous_blocks(&identities).await {
                Ok(found) => Some(found),
                Err(e) => {
                    let failure = failure_policy(Some(plan), self.config.failure_policy);
                    tracing::warn!(identity = %ip, error = %e, ?failure, "block lookup failed: applying the anonymous plan's failure policy");
                    return outcome(unavailable(
                        Some(ip.clone()),
                        failure,
                        self.clock.now_millis(),
                    ));
                }
            }
        } else {
            // Never blocked: no read needed.
            None
        };
        let decision = decide(
            Lookup::Anonymous {
                identity: ip.clone(),
                plan,
                blocks: found.as_ref().map_or(&[][..], |f| &f.blocks[..]),
            },
            self.clock.now_millis(),
        );
        let mut identities = vec![ip.clone()];
        identities.extend(referer.clone());
        outcome(self.lease(decision, plan, &identities).await)
    }

    fn cached(&self, key: &str) -> Cached {
        let now = self.clock.now_millis();
        self.cache
            .lock()
            .map(|c| c.get(key, now))
            .unwrap_or(Cached::Missing)
    }

    /// How long a read stays fresh: the cache times, but never past the end
    /// of a secret that is still usable at `now` (a rolled secret's grace
    /// end, a key's expiry), so no entry outlives it. A secret already past
    /// its end is refused by the rules and cached as usual.
    fn ttl_for(&self, found: &Found, is_key: bool, now: UnixMillis) -> Duration {
        let ttl = if is_key && found.record.is_none() {
            self.config.negative_cache_ttl
        } else {
            self.config.cache_ttl
        };
        match found.record.as_ref().and_then(KeyRecord::usable_until) {
            Some(end) if end > now => ttl.min(Duration::from_millis((end - now) as u64)),
            _ => ttl,
        }
    }

    fn remember(&self, key: String, found: Found, is_key: bool) -> Arc<Found> {
        let now = self.clock.now_millis();
        let ttl = self.ttl_for(&found, is_key, now);
        let found = Arc::new(found);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, found.clone(), now, ttl);
        }
        found
    }

    /// The plans, reloaded if stale. `None` only when they were never
    /// loaded and cannot be now. A failed reload keeps the old plans and
    /// waits [`PLAN_RETRY`] before trying again.
    async fn plans(&self) -> Option<Arc<HashMap<String, Plan>>> {
        let now = self.clock.now_millis();
        let current = {
            let p = self.plans.lock().ok()?;
            let fresh = now >= p.loaded_at
                && now - p.loaded_at < millis(self.config.plan_cache_ttl)
                && p.plans.is_some();
            if fresh || now < p.next_attempt {
                return p.plans.clone();
            }
            p.plans.clone()
        };
        self.reload_plans(now).await.or(current)
    }

    /// Reloads the plans early, at most once per `cache_ttl`.
    async fn force_plan_reload(&self) -> Option<Arc<HashMap<String, Plan>>> {
        let now = self.clock.now_millis();
        {
            let mut p = self.plans.lock().ok()?;
            if p.last_forced
                .is_some_and(|t| now >= t && now - t < millis(self.config.cache_ttl))
            {
                return None;
            }
            p.last_forced = Some(now);
        }
        self.reload_plans(now).await
    }

    async fn reload_plans(&self, now: UnixMillis) -> Option<Arc<HashMap<String, Plan>>> {
        match self.store.list_plans().await {
            Ok(plans) => {
                self.set_plans(plans, now);
                self.plans.lock().ok()?.plans.clone()
            }
            Err(e) => {
                tracing::warn!(error = %e, "loading plans failed; keeping the plans loaded before, if any");
                let mut p = self.plans.lock().ok()?;
                p.next_attempt = now + millis(PLAN_RETRY);
                None
            }
        }
    }
}

fn key_cache_key(digest: &KeyDigest) -> String {
    format!("key#{}", digest.0)
}

fn anonymous_cache_key(identities: &[Identity]) -> String {
    let mut k = String::from("anon");
    for id in identities {
        k.push('#');
        k.push_str(&id.to_string());
    }
    k
}

fn unidentified(lookup: Lookup<'_>, now: UnixMillis) -> Outcome {
    Outcome {
        decision: decide(lookup, now),
        principal: UNIDENTIFIED.to_owned(),
        referer: None,
        key_id: None,
    }
}

pub(crate) fn unavailable(
    identity: Option<Identity>,
    failure: FailurePolicy,
    now: UnixMillis,
) -> Decision {
    decide(Lookup::Unavailable { identity, failure }, now)
}

fn unreadable(e: &EventError) -> Unauthorized {
    tracing::info!(error = %e, "unauthorized: unreadable event");
    crate::metrics::emit_unreadable();
    Unauthorized
}

/// One log line per decision: denials at INFO, allows at DEBUG, degraded
/// allows at WARN. Only identities and codes, never a secret.
fn log_outcome(o: &Outcome) {
    crate::metrics::emit_decision(o);
    let subject = o.decision.subject();
    let plan = subject.plan.as_deref().unwrap_or("");
    match &o.decision {
        Decision::Allow { degraded: true, .. } => {
            tracing::warn!(identity = %o.principal, plan, "allowed without a lookup (store unavailable, open policy)")
        }
        Decision::Allow { .. } => tracing::debug!(identity = %o.principal, plan, "allowed"),
        Decision::Deny { reason, .. } => {
            tracing::info!(identity = %o.principal, plan, reason = reason.code(), "denied")
        }
    }
}

#[cfg(test)]
mod tests;
