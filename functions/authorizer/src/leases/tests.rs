//! The lease step on the in-memory adapters: a hard limit holds in one
//! region and across regions, whatever the counts say (there are none
//! here: no block is ever written), and soft plans and `TOLLGATE_LEASES=off`
//! never take a lease.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::Value;
use tollgate_core::{
    ApiKey, FailurePolicy, KeyRecord, KeyStatus, Limit, MeterName, OveragePolicy, Plan, Region,
    UnixMillis, Window,
};
use tollgate_lambda::Peer;
use tollgate_store::memory::{MemoryAllowances, MemoryKeys};

use crate::cache::ManualClock;
use crate::{Authorizer, Config};

const NOW: UnixMillis = 1_795_000_000_000;
const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets";

fn plan(name: &str, overage: OveragePolicy, day: u64) -> Plan {
    Plan {
        name: name.into(),
        limits: vec![Limit {
            meter: MeterName::requests(),
            window: Window::Day,
            limit: day,
        }],
        overage,
        failure: FailurePolicy::Closed,
    }
}

/// The key's plan `pro` (`overage`, `day` a day) and a hard `anonymous`
/// plan of `anonymous` a day.
fn plans(overage: OveragePolicy, day: u64, anonymous: u64) -> Vec<Plan> {
    vec![
        plan("pro", overage, day),
        plan("anonymous", OveragePolicy::Hard, anonymous),
    ]
}

fn key() -> ApiKey {
    ApiKey::generate([5u8; 32])
}

/// Region `index` of a deployment of `regions` (named `local-a`, ...), over
/// a store holding [`key`] on plan `pro` and `plans`.
fn region(
    allowances: MemoryAllowances,
    index: usize,
    regions: usize,
    config: Config,
    plans: Vec<Plan>,
) -> Authorizer<MemoryKeys, MemoryAllowances> {
    let name = |i: usize| Region::new(&format!("local-{}", (b'a' + i as u8) as char)).unwrap();
    let store = MemoryKeys::new();
    let k = key();
    store.put_key(
        &k.digest(),
        KeyRecord {
            key_id: k.key_id(),
            customer: "acme".into(),
            plan: "pro".into(),
            status: KeyStatus::Active,
            expires_at: None,
            valid_until: None,
        },
    );
    let config = Config {
        region: Some(name(index)),
        peers: (0..regions)
            .filter(|&i| i != index)
            .map(|i| Peer {
                region: name(i),
                endpoint: None,
            })
            .collect(),
        ..config
    };
    let a = Authorizer::new(config, store, allowances, Arc::new(ManualClock::at(NOW)));
    a.prime_plans(plans);
    a
}

fn key_event() -> String {
    format!(
        r#"{{"type":"REQUEST","methodArn":"{ARN}","headers":{{"x-api-key":"{}"}},"requestContext":{{"identity":{{"sourceIp":"192.0.2.1"}}}}}}"#,
        key().expose_secret()
    )
}

fn anonymous_event(ip: &str) -> String {
    format!(
        r#"{{"type":"REQUEST","methodArn":"{ARN}","headers":{{}},"requestContext":{{"identity":{{"sourceIp":"{ip}"}}}}}}"#
    )
}

async fn call(a: &Authorizer<MemoryKeys, MemoryAllowances>, event: &str) -> Value {
    serde_json::from_str(a.handle_bytes(event.as_bytes()).await.unwrap().get()).unwrap()
}

fn allowed(v: &Value) -> bool {
    v["policyDocument"]["Statement"][0]["Effect"] == "Allow"
}

/// Plays `calls` key calls through `a`: how many were allowed, and checks
/// every denial is a quota denial with its reset.
async fn play(a: &Authorizer<MemoryKeys, MemoryAllowances>, calls: usize) -> usize {
    let mut n = 0;
    for _ in 0..calls {
        let v = call(a, &key_event()).await;
        if allowed(&v) {
            n += 1;
        } else {
            assert_eq!(v["context"]["reason"], "quota_exceeded", "{v}");
            let end = Window::Day.period_of(NOW).unwrap().end();
            assert_eq!(v["context"]["reset_at"], end);
        }
    }
    n
}

#[tokio::test]
async fn a_hard_limit_holds_in_one_region_without_any_count() {
    let mut d = MemoryAllowances::deployment(1);
    let a = region(
        d.remove(0),
        0,
        1,
        Config::default(),
        plans(OveragePolicy::Hard, 10, 5),
    );
    assert_eq!(play(&a, 25).await, 10);
    // 10 takes of one unit (0.5 % of 10 rounds up to 1), then one that
    // found the allowance spent; the 14 denials after it cost no call.
    assert_eq!(a.allowances().calls(), (11, 0));
}

#[tokio::test]
async fn a_hard_limit_holds_across_regions_when_one_region_takes_every_call() {
    let d = MemoryAllowances::deployment(3);
    let pro = || plans(OveragePolicy::Hard, 3_000, 5);
    let hot = region(d[0].clone(), 0, 3, Config::default(), pro());
    let quiet = region(d[2].clone(), 2, 3, Config::default(), pro());
    // The quiet container leased 1 + 2 + 4 + 8 units (its clock stands
    // still, so leases double) and used 10.
    assert_eq!(play(&quiet, 10).await, 10);
    // The allowance is 3,030 (the limit and 1 %); region 0 starts with a
    // third and pulls the rest from its peers.
    assert_eq!(play(&hot, 4_000).await, 3_015);
    let (takes, pulls) = d[0].calls();
    assert!(pulls >= 1, "the hot region pulled");
    assert!(
        takes + pulls < 400,
        "leases cost far fewer store calls than calls: {takes} + {pulls}"
    );
    // The quiet container still has its 5 units, then nothing is left.
    assert_eq!(play(&quiet, 10).await, 5);
    assert_eq!(
        d[0].taken_everywhere(&tollgate_core::lease::LeaseKey {
            identity: tollgate_core::Identity::key(&key().key_id()).unwrap(),
            period: Window::Day.period_of(NOW).unwrap(),
        }),
        3_030
    );
}

#[tokio::test]
async fn a_region_that_is_down_keeps_its_share_and_nothing_passes_the_limit() {
    let d = MemoryAllowances::deployment(3);
    d[0].set_down(1, true);
    let pro = plans(OveragePolicy::Hard, 300, 5);
    let a = region(d[0].clone(), 0, 3, Config::default(), pro);
    // An allowance of 303 over 3 regions: region 1's 101 is out of reach.
    assert_eq!(play(&a, 400).await, 202);
}

#[tokio::test]
async fn anonymous_callers_are_held_to_the_anonymous_plan_per_ip() {
    let mut d = MemoryAllowances::deployment(1);
    let a = region(
        d.remove(0),
        0,
        1,
        Config::default(),
        plans(OveragePolicy::Hard, 10, 3),
    );
    let mut allowed_calls = [0, 0];
    for _ in 0..6 {
        for (i, ip) in ["192.0.2.1", "192.0.2.2"].iter().enumerate() {
            let v = call(&a, &anonymous_event(ip)).await;
            if allowed(&v) {
                allowed_calls[i] += 1;
            } else {
                assert_eq!(v["context"]["reason"], "quota_exceeded", "{v}");
            }
        }
    }
    assert_eq!(allowed_calls, [3, 3]);
}

#[tokio::test]
async fn soft_plans_and_leases_off_never_take_a_lease() {
    let mut d = MemoryAllowances::deployment(1);
    let soft = region(
        d.remove(0),
        0,
        1,
        Config::default(),
        plans(OveragePolicy::Soft, 10, 5),
    );
    assert_eq!(play(&soft, 20).await, 20);
    assert_eq!(soft.allowances().calls(), (0, 0));
    let mut d = MemoryAllowances::deployment(1);
    let off = region(
        d.remove(0),
        0,
        1,
        Config {
            leases: false,
            ..Config::default()
        },
        plans(OveragePolicy::Hard, 10, 5),
    );
    // Without leases only blocks deny, and there are none: the counting lag.
    assert_eq!(play(&off, 20).await, 20);
    assert_eq!(off.allowances().calls(), (0, 0));
}

#[tokio::test]
async fn a_store_failure_follows_the_plans_failure_policy() {
    let d = MemoryAllowances::deployment(1);
    d[0].set_down(0, true);
    let a = region(
        d[0].clone(),
        0,
        1,
        Config::default(),
        plans(OveragePolicy::Hard, 10, 5),
    );
    let v = call(&a, &key_event()).await;
    assert!(!allowed(&v));
    assert_eq!(v["context"]["reason"], "store_unavailable");
    let mut open = plan("pro", OveragePolicy::Hard, 10);
    open.failure = FailurePolicy::Open;
    a.prime_plans(vec![open, plan("anonymous", OveragePolicy::Hard, 5)]);
    assert!(allowed(&call(&a, &key_event()).await));
}
