//! The authorizer: event bytes in, response JSON (or `Unauthorized`) out.
//!
//! Cost: a decision reads DynamoDB at most once (one `GetItem`, or one
//! `BatchGetItem` for a key item, its block item and the source IP's block
//! item, or an anonymous caller's IP and Referer block items), and not at
//! all when the per-container cache holds a fresh entry. Plans are cached for
//! `TOLLGATE_PLAN_CACHE_SECONDS` and reloaded with one `Query` when stale;
//! a key whose plan is missing from the cache forces at most one early
//! reload per `TOLLGATE_CACHE_SECONDS` (a plan created after the cache was
//! filled). Nothing here writes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use tollgate_core::decision::{anonymous_needs_blocks, failure_policy};
use tollgate_core::{
    charge_source, decide, ApiKey, Decision, FailurePolicy, Identity, KeyDigest, Lookup, Plan,
    UnixMillis,
};
use tollgate_store::KeysStore;

use crate::cache::{Cached, Clock, Found, LookupCache};
use crate::config::Config;
use crate::event::{Caller, Event, EventError, EventKind};
use crate::response::{render, Outcome, UNIDENTIFIED};

/// The error API Gateway turns into 401: its message is exactly `Unauthorized`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthorized;

impl fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Unauthorized")
    }
}

impl std::error::Error for Unauthorized {}

impl From<Unauthorized> for lambda_runtime::Diagnostic {
    fn from(_: Unauthorized) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "Unauthorized".to_owned(),
            error_message: "Unauthorized".to_owned(),
        }
    }
}

/// The event as the Lambda runtime hands it over: its raw JSON, or nothing
/// if it was not JSON. Deserialising never fails, so a malformed event
/// reaches the handler and is answered with `Unauthorized` (rather than the
/// runtime's own deserialisation error, which API Gateway would turn into a
/// 500), and its content is never echoed into an error message.
pub struct Incoming(Option<Box<RawValue>>);

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the event: it may hold a key.
        f.write_str(match self.0 {
            Some(_) => "Incoming(<json>)",
            None => "Incoming(<malformed>)",
        })
    }
}

impl<'de> Deserialize<'de> for Incoming {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Incoming(Box::<RawValue>::deserialize(d).ok()))
    }
}

impl Authorizer {
    /// Handles an event from the Lambda runtime (the entry point): the
    /// response as raw JSON, rendered once.
    pub async fn handle_incoming(&self, event: Incoming) -> Result<Box<RawValue>, Unauthorized> {
        let Some(raw) = event.0 else {
            tracing::info!("unauthorized: the event is not JSON");
            return Err(Unauthorized);
        };
        self.handle_bytes(raw.get().as_bytes()).await
    }
}

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
#[derive(Debug)]
pub struct Authorizer {
    config: Config,
    store: KeysStore,
    clock: Arc<dyn Clock>,
    cache: Mutex<LookupCache>,
    plans: Mutex<PlanCache>,
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Authorizer {
    /// An authorizer over `store`, with empty caches.
    pub fn new(config: Config, store: KeysStore, clock: Arc<dyn Clock>) -> Self {
        Authorizer {
            cache: Mutex::new(LookupCache::new(config.cache_max_entries)),
            plans: Mutex::new(PlanCache::default()),
            config,
            store,
            clock,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Loads the plans now (at start-up, so the first request does not pay for it).
    pub async fn load_plans(&self) -> Result<usize, tollgate_store::StoreError> {
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
        let ttl = self.ttl_for(&found, true);
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

    /// Handles one event given as JSON bytes: the response JSON, or
    /// `Unauthorized` for an event that is not a readable authorizer event
    /// and for a key that cannot be used (unknown, malformed, revoked,
    /// expired).
    pub async fn handle_bytes(&self, body: &[u8]) -> Result<Box<RawValue>, Unauthorized> {
        let event = Event::parse(body).map_err(|e| unreadable(&e))?;
        self.handle_event(&event).await
    }

    /// Handles one parsed event: who calls, the decision, the response,
    /// rendered once.
    pub async fn handle_event(&self, event: &Event<'_>) -> Result<Box<RawValue>, Unauthorized> {
        if event.kind != EventKind::HttpV2 && event.resource.is_none() {
            return Err(unreadable(&EventError::MissingArn));
        }
        let caller = event.caller(&self.config);
        let outcome = self.authorize(caller).await;
        log_outcome(&outcome);
        if matches!(&outcome.decision, Decision::Deny { reason, .. } if reason.is_unauthorized()) {
            return Err(Unauthorized);
        }
        Ok(render(
            event.kind,
            event.resource.as_deref(),
            &outcome,
            self.config.usage_identifier_key,
            self.clock.now_millis(),
        ))
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
            // A quota denial charged to the source IP names the IP.
            let principal = match decision.subject().identity.as_ref() {
                Some(id @ Identity::Ip(_)) => id.to_string(),
                _ => identity.to_string(),
            };
            Outcome {
                decision,
                principal,
                referer: None,
                key_id: Some(key_id.clone()),
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
                        let blocks = blocks.pop().unwrap_or_default();
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
    async fn anonymous_blocks(
        &self,
        identities: &[Identity],
    ) -> Result<Arc<Found>, tollgate_store::StoreError> {
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
        outcome(decision)
    }

    fn cached(&self, key: &str) -> Cached {
        let now = self.clock.now_millis();
        self.cache
            .lock()
            .map(|c| c.get(key, now))
            .unwrap_or(Cached::Missing)
    }

    fn ttl_for(&self, found: &Found, is_key: bool) -> Duration {
        if is_key && found.record.is_none() {
            self.config.negative_cache_ttl
        } else {
            self.config.cache_ttl
        }
    }

    fn remember(&self, key: String, found: Found, is_key: bool) -> Arc<Found> {
        let ttl = self.ttl_for(&found, is_key);
        let found = Arc::new(found);
        let now = self.clock.now_millis();
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

fn unavailable(identity: Option<Identity>, failure: FailurePolicy, now: UnixMillis) -> Decision {
    decide(Lookup::Unavailable { identity, failure }, now)
}

fn unreadable(e: &EventError) -> Unauthorized {
    tracing::info!(error = %e, "unauthorized: unreadable event");
    Unauthorized
}

/// One log line per decision: denials at INFO, allows at DEBUG, degraded
/// allows at WARN. Only identities and codes, never a secret.
fn log_outcome(o: &Outcome) {
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
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::cache::ManualClock;
    use tollgate_core::decision::Subject;
    use tollgate_core::{Block, KeyRecord, KeyStatus, Limit, MeterName, OveragePolicy, Window};

    const NOW: UnixMillis = 1_795_000_000_000;
    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets";

    /// A store that cannot be reached: any read fails fast.
    fn dead_store() -> KeysStore {
        let conf = tollgate_store::client::local_config("http://127.0.0.1:9", "local-a")
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_millis(500))
                    .build(),
            )
            .build();
        KeysStore::new(aws_sdk_dynamodb::Client::from_conf(conf), "t")
    }

    fn plan(name: &str, overage: OveragePolicy) -> Plan {
        Plan {
            name: name.into(),
            limits: vec![Limit {
                meter: MeterName::requests(),
                window: Window::Day,
                limit: 100,
            }],
            overage,
            failure: FailurePolicy::Closed,
        }
    }

    fn key() -> ApiKey {
        ApiKey::generate([3u8; 32])
    }

    fn record(k: &ApiKey) -> KeyRecord {
        KeyRecord {
            key_id: k.key_id(),
            customer: "acme".into(),
            plan: "pro".into(),
            status: KeyStatus::Active,
            expires_at: None,
        }
    }

    fn authorizer(config: Config) -> (Authorizer, ManualClock) {
        let clock = ManualClock::at(NOW);
        let a = Authorizer::new(config, dead_store(), Arc::new(clock.clone()));
        a.prime_plans(vec![
            plan("pro", OveragePolicy::Hard),
            plan("anonymous", OveragePolicy::Hard),
        ]);
        (a, clock)
    }

    fn rest_event(headers: &str) -> String {
        format!(
            r#"{{"type":"REQUEST","methodArn":"{ARN}","headers":{headers},"requestContext":{{"identity":{{"sourceIp":"192.0.2.1"}}}}}}"#
        )
    }

    async fn respond(a: &Authorizer, event: &str) -> serde_json::Value {
        serde_json::from_str(a.handle_bytes(event.as_bytes()).await.unwrap().get()).unwrap()
    }

    #[tokio::test]
    async fn a_cached_key_is_allowed_without_the_store() {
        let (a, _) = authorizer(Config::default());
        let k = key();
        a.prime_key(
            &k,
            Found {
                record: Some(record(&k)),
                blocks: vec![],
            },
        );
        let v = respond(
            &a,
            &rest_event(&format!(r#"{{"x-api-key":"{}"}}"#, k.expose_secret())),
        )
        .await;
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(v["principalId"], format!("key:{}", k.key_id()));
        assert_eq!(v["context"]["customer"], "acme");
        assert_eq!(v["context"]["plan"], "pro");
    }

    #[tokio::test]
    async fn cached_blocks_deny_with_a_reset_time() {
        let (a, _) = authorizer(Config::default());
        let k = key();
        let block = Block {
            meter: MeterName::requests(),
            period: Window::Day.period_of(NOW).unwrap(),
            limit: 100,
            used: 100,
        };
        a.prime_key(
            &k,
            Found {
                record: Some(record(&k)),
                blocks: vec![block.clone()],
            },
        );
        let v = respond(
            &a,
            &rest_event(&format!(r#"{{"x-api-key":"{}"}}"#, k.expose_secret())),
        )
        .await;
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert_eq!(v["context"]["reason"], "quota_exceeded");
        assert_eq!(v["context"]["reset_at"], block.period.end());
    }

    #[tokio::test]
    async fn unreadable_events_are_unauthorized() {
        let (a, _) = authorizer(Config::default());
        for bad in [
            "",
            "{",
            "{}",
            r#"{"type":"TOKEN","authorizationToken":"x"}"#,
            r#"{"type":"COGNITO_USER_POOLS"}"#,
        ] {
            let err = a.handle_bytes(bad.as_bytes()).await.unwrap_err();
            assert_eq!(err.to_string(), "Unauthorized");
            let d: lambda_runtime::Diagnostic = err.into();
            assert_eq!(d.error_message, "Unauthorized");
        }
    }

    #[tokio::test]
    async fn malformed_keys_are_unauthorized_without_a_read() {
        // The store is dead: a read would fail as store_unavailable.
        let (a, _) = authorizer(Config::default());
        let mut bad_sum = ApiKey::generate([5u8; 32]).expose_secret().to_owned();
        bad_sum.pop();
        bad_sum.push('x');
        for bad in ["tg_live_nope".to_owned(), bad_sum] {
            let ev = rest_event(&format!(r#"{{"x-api-key":"{bad}"}}"#));
            assert_eq!(
                a.handle_bytes(ev.as_bytes()).await.unwrap_err(),
                Unauthorized
            );
            let out = a.authorize(Caller::MalformedKey).await;
            assert_eq!(out.principal, UNIDENTIFIED);
        }
        assert_eq!(a.cached_entries(), 0);
    }

    #[tokio::test]
    async fn store_failure_follows_the_policies() {
        // Closed by default: deny, 503.
        let (a, _) = authorizer(Config::default());
        let k = key();
        let ev = rest_event(&format!(r#"{{"x-api-key":"{}"}}"#, k.expose_secret()));
        let v = respond(&a, &ev).await;
        assert_eq!(v["context"]["reason"], "store_unavailable");
        assert_eq!(v["context"]["status"], 503);
        // Open: allow, marked degraded.
        let (a, _) = authorizer(Config {
            failure_policy: FailurePolicy::Open,
            ..Config::default()
        });
        let v = respond(&a, &ev).await;
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(v["context"]["degraded"], true);
    }

    #[tokio::test]
    async fn a_stale_entry_picks_the_known_plans_failure_policy() {
        let (a, clock) = authorizer(Config::default());
        let mut open = plan("pro", OveragePolicy::Hard);
        open.failure = FailurePolicy::Open;
        a.prime_plans(vec![open]);
        let k = key();
        a.prime_key(
            &k,
            Found {
                record: Some(record(&k)),
                blocks: vec![],
            },
        );
        clock.advance(Duration::from_secs(6));
        let out = a
            .authorize(Caller::Key {
                key: k,
                source: None,
            })
            .await;
        assert_eq!(
            out.decision,
            Decision::Allow {
                subject: Subject {
                    identity: Some(Identity::Key(out.key_id.clone().unwrap())),
                    ..Subject::default()
                },
                degraded: true
            }
        );
    }

    #[tokio::test]
    async fn the_anonymous_plan_must_exist() {
        let (a, _) = authorizer(Config {
            anonymous_plan: "free".into(),
            ..Config::default()
        });
        let v = respond(&a, &rest_event("{}")).await;
        assert_eq!(v["context"]["reason"], "unknown_plan");
        assert_eq!(v["context"]["plan"], "free");
        assert_eq!(v["principalId"], "ip:192.0.2.1");
    }

    #[tokio::test]
    async fn anonymous_store_failure_uses_the_anonymous_plans_policy() {
        let (a, _) = authorizer(Config::default());
        let mut anon = plan("anonymous", OveragePolicy::Hard);
        anon.failure = FailurePolicy::Open;
        a.prime_plans(vec![anon]);
        let v = respond(&a, &rest_event("{}")).await;
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(v["context"]["degraded"], true);
    }

    #[tokio::test]
    async fn missing_plans_fall_back_to_the_configured_policy() {
        let clock = ManualClock::at(NOW);
        let a = Authorizer::new(
            Config {
                failure_policy: FailurePolicy::Open,
                ..Config::default()
            },
            dead_store(),
            Arc::new(clock.clone()),
        );
        let out = a
            .authorize(Caller::Key {
                key: key(),
                source: None,
            })
            .await;
        assert!(matches!(
            out.decision,
            Decision::Allow { degraded: true, .. }
        ));
        // Within the retry pause the store is not asked again (fast answer).
        let t = std::time::Instant::now();
        let out = a
            .authorize(Caller::Anonymous {
                ip: Identity::parse_anonymous_ip("192.0.2.1", tollgate_core::Ipv6Prefix::DEFAULT)
                    .unwrap(),
                referer: None,
            })
            .await;
        assert!(out.decision.is_allowed());
        assert!(t.elapsed() < Duration::from_millis(50));
    }
}
