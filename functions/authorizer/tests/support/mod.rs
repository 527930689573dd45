//! Shared set-up for the authorizer's DynamoDB Local and runtime-API tests.
#![allow(dead_code)]

#[allow(unused_imports)] // not every test binary drives the real binary
pub use tollgate_tests::runtime_api;

use std::sync::Arc;
use std::time::Duration;

use authorizer::{Authorizer, Config, ManualClock};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use tollgate_core::{
    ApiKey, FailurePolicy, KeyRecord, KeyStatus, Limit, MeterName, OveragePolicy, Plan, UnixMillis,
    Window,
};
use tollgate_store::memory::MemoryAllowances;
use tollgate_store::{Allowances, KeyLookup, KeysStore, PlanSource};
use tollgate_tests::Harness;

/// The demo key of `events/authorizer/*demo-key.json`.
pub const DEMO_KEY: &str =
    "tg_live_000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// 2030-11-21T13:05:07Z: in the future, because DynamoDB Local's TTL sweeper deletes
/// items (such as blocks, which expire at their period's end) by the wall clock.
pub const NOW: UnixMillis = 1_921_496_707_000;

pub fn demo_key() -> ApiKey {
    ApiKey::parse(DEMO_KEY).expect("demo key")
}

/// A fresh random key.
pub fn new_key() -> ApiKey {
    ApiKey::generate(rand::random())
}

pub fn plan(name: &str, overage: OveragePolicy, failure: FailurePolicy, day: u64) -> Plan {
    Plan {
        name: name.into(),
        limits: vec![
            Limit {
                meter: MeterName::requests(),
                window: Window::Day,
                limit: day,
            },
            Limit {
                meter: MeterName::requests(),
                window: Window::Month,
                limit: day * 20,
            },
        ],
        overage,
        failure,
    }
}

/// Fresh tables with the plans `pro` (hard), `metered` (soft) and
/// `anonymous` (hard), and the demo key on `pro` for customer `demo`.
pub async fn seeded(label: &str) -> (Harness, KeysStore) {
    let h = Harness::new(label).await;
    let store = KeysStore::new(h.client(), h.tables.keys.clone());
    for p in [
        plan("pro", OveragePolicy::Hard, FailurePolicy::Closed, 1500),
        plan("metered", OveragePolicy::Soft, FailurePolicy::Open, 1500),
        plan("anonymous", OveragePolicy::Hard, FailurePolicy::Closed, 100),
    ] {
        store.put_plan(&p).await.expect("put plan");
    }
    create_key(&store, &demo_key(), "demo", "pro", None).await;
    (h, store)
}

pub async fn create_key(
    store: &KeysStore,
    key: &ApiKey,
    customer: &str,
    plan: &str,
    expires_at: Option<UnixMillis>,
) {
    let record = KeyRecord {
        key_id: key.key_id(),
        customer: customer.into(),
        plan: plan.into(),
        status: KeyStatus::Active,
        expires_at,
        valid_until: None,
    };
    store
        .create_key(&key.digest(), &record, NOW)
        .await
        .expect("create key");
}

/// The allowances of a deployment of one region, in memory (the leases'
/// DynamoDB adapter has tests of its own).
pub fn one_region() -> MemoryAllowances {
    MemoryAllowances::deployment(1).remove(0)
}

/// An authorizer over `store` on a manual clock at [`NOW`], plans loaded.
pub async fn authorizer(
    store: KeysStore,
    config: Config,
) -> (Authorizer<KeysStore, MemoryAllowances>, ManualClock) {
    let clock = ManualClock::at(NOW);
    let a = Authorizer::new(config, store, one_region(), Arc::new(clock.clone()));
    a.load_plans().await.expect("load plans");
    (a, clock)
}

/// A store whose endpoint refuses connections, failing fast.
pub fn dead_store() -> KeysStore {
    let conf = tollgate_store::client::local_config("http://127.0.0.1:9", "local-a")
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(200))
                .operation_timeout(Duration::from_millis(800))
                .build(),
        )
        .build();
    KeysStore::new(aws_sdk_dynamodb::Client::from_conf(conf), "tollgate-keys")
}

/// Reads an event file of `events/authorizer/`.
pub fn event_file(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../events/authorizer/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A REST REQUEST event with these headers and source IP.
pub fn rest_event(headers: &str, ip: &str) -> Vec<u8> {
    format!(
        r#"{{"type":"REQUEST","methodArn":"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets","headers":{headers},"requestContext":{{"identity":{{"sourceIp":"{ip}"}}}}}}"#
    )
    .into_bytes()
}

pub fn key_event(key: &ApiKey) -> Vec<u8> {
    rest_event(
        &format!(r#"{{"x-api-key":"{}"}}"#, key.expose_secret()),
        "192.0.2.1",
    )
}

/// Runs the handler and parses its response.
pub async fn respond<S: KeyLookup + PlanSource, A: Allowances>(
    a: &Authorizer<S, A>,
    event: &[u8],
) -> serde_json::Value {
    let out = a.handle_bytes(event).await.expect("a response");
    serde_json::from_str(out.get()).expect("response JSON")
}

/// Runs the handler and expects `Unauthorized` (API Gateway's 401).
pub async fn assert_unauthorized<S: KeyLookup + PlanSource, A: Allowances>(
    a: &Authorizer<S, A>,
    event: &[u8],
) {
    match a.handle_bytes(event).await {
        Err(e) => assert_eq!(e.to_string(), "Unauthorized"),
        Ok(v) => panic!("expected Unauthorized, got {}", v.get()),
    }
}

/// The effect of an IAM policy response, or `isAuthorized` of a simple one.
pub fn allowed(v: &serde_json::Value) -> bool {
    match v.get("isAuthorized") {
        Some(b) => b.as_bool().expect("bool"),
        None => v["policyDocument"]["Statement"][0]["Effect"] == "Allow",
    }
}

pub fn reason(v: &serde_json::Value) -> &str {
    v["context"]["reason"].as_str().unwrap_or("")
}
