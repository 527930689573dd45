#![allow(clippy::unwrap_used)]

use super::*;
use crate::cache::ManualClock;
use tollgate_core::decision::Subject;
use tollgate_core::{
    Block, DenyReason, KeyRecord, KeyStatus, Limit, MeterName, OveragePolicy, Window,
};
use tollgate_store::memory::{Failing, MemoryAllowances, MemoryKeys};

const NOW: UnixMillis = 1_795_000_000_000;
const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets";

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
        valid_until: None,
    }
}

/// An authorizer on a manual clock at [`NOW`], plans primed, over a store
/// whose every read fails (so a test that passes read nothing, or followed
/// the failure policy).
fn authorizer(config: Config) -> (Authorizer<MemoryKeys, MemoryAllowances>, ManualClock) {
    let clock = ManualClock::at(NOW);
    let a = Authorizer::new(
        config,
        MemoryKeys::failing(),
        one_region(),
        Arc::new(clock.clone()),
    );
    a.prime_plans(vec![
        plan("pro", OveragePolicy::Hard),
        plan("anonymous", OveragePolicy::Hard),
    ]);
    (a, clock)
}

/// The allowances of a deployment of one region.
fn one_region() -> MemoryAllowances {
    MemoryAllowances::deployment(1).remove(0)
}

fn rest_event(headers: &str) -> String {
    format!(
        r#"{{"type":"REQUEST","methodArn":"{ARN}","headers":{headers},"requestContext":{{"identity":{{"sourceIp":"192.0.2.1"}}}}}}"#
    )
}

async fn respond(a: &Authorizer<MemoryKeys, MemoryAllowances>, event: &str) -> serde_json::Value {
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
    assert_eq!(a.store().lookups(), 0);
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
    assert_eq!(a.store().lookups(), 0);
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
    // Every read fails: a read would be store_unavailable.
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
    assert_eq!(a.store().lookups(), 0);
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
    assert_eq!(a.store().lookups(), 1);
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
        MemoryKeys::failing(),
        one_region(),
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
    assert_eq!(a.store().plan_loads(), 1);
}

/// An authorizer over a store that reads fine, holding the key of
/// [`record`] under [`key`] and the plans.
fn reading(config: Config) -> (Authorizer<MemoryKeys, MemoryAllowances>, ManualClock) {
    let store = MemoryKeys::new();
    store.put_key(&key().digest(), record(&key()));
    store.put_plan(plan("pro", OveragePolicy::Hard));
    store.put_plan(plan("anonymous", OveragePolicy::Hard));
    let clock = ManualClock::at(NOW);
    let a = Authorizer::new(config, store, one_region(), Arc::new(clock.clone()));
    (a, clock)
}

#[tokio::test]
async fn a_key_is_read_once_then_served_from_the_cache_until_it_expires() {
    let (a, clock) = reading(Config::default());
    assert_eq!(a.load_plans().await.unwrap(), 2);
    let ev = rest_event(&format!(r#"{{"x-api-key":"{}"}}"#, key().expose_secret()));
    for _ in 0..3 {
        let v = respond(&a, &ev).await;
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(v["context"]["customer"], "acme");
    }
    assert_eq!(a.store().lookups(), 1);
    clock.advance(Duration::from_secs(6));
    let _ = respond(&a, &ev).await;
    assert_eq!(a.store().lookups(), 2);
    assert_eq!(a.store().plan_loads(), 1);
}

#[tokio::test]
async fn an_unknown_key_from_a_blocked_ip_is_the_ips_quota_denial_in_one_read() {
    let (a, _) = reading(Config::default());
    a.load_plans().await.unwrap();
    let ip = Identity::parse_anonymous_ip("192.0.2.1", tollgate_core::Ipv6Prefix::DEFAULT).unwrap();
    let block = Block {
        meter: MeterName::requests(),
        period: Window::Day.period_of(NOW).unwrap(),
        limit: 100,
        used: 100,
    };
    a.store().put_block(&ip, block.clone());
    let unknown = ApiKey::generate([9u8; 32]);
    let ev = rest_event(&format!(r#"{{"x-api-key":"{}"}}"#, unknown.expose_secret()));
    let v = respond(&a, &ev).await;
    assert_eq!(v["context"]["reason"], "quota_exceeded");
    assert_eq!(v["context"]["reset_at"], block.period.end());
    assert_eq!(v["principalId"], "ip:192.0.2.1");
    assert_eq!(
        a.store().lookups(),
        1,
        "the IP's block rode in the key's read"
    );
    // The same unknown key from an IP that is not blocked: Unauthorized.
    let other = ev.replace("192.0.2.1", "192.0.2.2");
    assert_eq!(
        a.handle_bytes(other.as_bytes()).await.unwrap_err(),
        Unauthorized
    );
}

#[tokio::test]
async fn a_failed_plan_reload_keeps_the_plans_and_waits_before_retrying() {
    let (a, clock) = reading(Config::default());
    a.load_plans().await.unwrap();
    a.store().fail(Failing::Plans);
    clock.advance(Duration::from_secs(61));
    let out = a
        .authorize(Caller::Key {
            key: key(),
            source: None,
        })
        .await;
    assert!(
        out.decision.is_allowed()
            && !matches!(out.decision, Decision::Allow { degraded: true, .. })
    );
    assert_eq!(a.store().plan_loads(), 2);
    clock.advance(Duration::from_secs(1));
    let _ = a
        .authorize(Caller::Key {
            key: key(),
            source: None,
        })
        .await;
    assert_eq!(
        a.store().plan_loads(),
        2,
        "no reload within the retry pause"
    );
    clock.advance(PLAN_RETRY);
    let _ = a
        .authorize(Caller::Key {
            key: key(),
            source: None,
        })
        .await;
    assert_eq!(a.store().plan_loads(), 3);
}

#[tokio::test]
async fn a_rolled_key_serves_both_secrets_as_one_key_id_until_the_grace_ends() {
    let old = key();
    let new = ApiKey::generate([4u8; 32]);
    assert_ne!(new.key_id(), old.key_id());
    // The grace ends 3 s from now, before the 5 s cache time.
    let grace_end = NOW + 3_000;
    let store = MemoryKeys::new();
    store.put_key(
        &old.digest(),
        KeyRecord {
            valid_until: Some(grace_end),
            ..record(&old)
        },
    );
    // The new secret's record names the key's id, not its digest's.
    store.put_key(&new.digest(), record(&old));
    store.put_plan(plan("pro", OveragePolicy::Hard));
    store.put_plan(plan("anonymous", OveragePolicy::Hard));
    let clock = ManualClock::at(NOW);
    let a = Authorizer::new(
        Config::default(),
        store,
        one_region(),
        Arc::new(clock.clone()),
    );
    a.load_plans().await.unwrap();
    let event = |k: &ApiKey| rest_event(&format!(r#"{{"x-api-key":"{}"}}"#, k.expose_secret()));
    let principal = format!("key:{}", old.key_id());
    for k in [&old, &new] {
        let v = respond(&a, &event(k)).await;
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(v["principalId"], principal);
        assert_eq!(v["context"]["identity"], principal);
        assert_eq!(v["context"]["customer"], "acme");
    }
    // One read for the old secret; two for the new one (its key's blocks
    // are under the record's key id).
    assert_eq!(a.store().lookups(), 3);
    // Just before the grace end: still allowed, from the cache.
    clock.advance(Duration::from_millis(2_999));
    let v = respond(&a, &event(&old)).await;
    assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert_eq!(a.store().lookups(), 3);
    // At the grace end: the old secret is refused (401), its cache entry
    // having ended with the grace (read again, though 5 s have not passed);
    // the new secret goes on.
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        a.handle_bytes(event(&old).as_bytes()).await.unwrap_err(),
        Unauthorized
    );
    assert_eq!(a.store().lookups(), 4);
    let out = a
        .authorize(Caller::Key {
            key: old.clone(),
            source: None,
        })
        .await;
    assert!(matches!(
        out.decision,
        Decision::Deny {
            reason: DenyReason::RolledKey,
            ..
        }
    ));
    let v = respond(&a, &event(&new)).await;
    assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert_eq!(v["principalId"], principal);
    // The key's limits apply to the new secret: a block of the key id denies it.
    a.store().put_block(
        &Identity::Key(old.key_id()),
        Block {
            meter: MeterName::requests(),
            period: Window::Day.period_of(NOW).unwrap(),
            limit: 100,
            used: 100,
        },
    );
    clock.advance(Duration::from_secs(6));
    let v = respond(&a, &event(&new)).await;
    assert_eq!(v["context"]["reason"], "quota_exceeded");
    assert_eq!(v["principalId"], principal);
}
