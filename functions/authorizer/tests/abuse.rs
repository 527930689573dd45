//! The free tier and the authorizer cannot be gamed (issue 17), against
//! DynamoDB Local: IPv6 clients are their /64, addresses carrying IPv4 are
//! that address, `UnprocessedKeys` are a store failure (never "absent"),
//! and made-up keys are Unauthorized, charged to a blocked IP as its quota
//! denial, and cost no read when malformed.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authorizer::Config;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::Client;
use support::*;
use tollgate_core::{
    ApiKey, Block, FailurePolicy, Identity, Ipv6Prefix, MeterName, OveragePolicy, Window,
};
use tollgate_store::{KeysStore, RequestCounter};
use tollgate_tests::Harness;

fn day_block(used: u64) -> Block {
    Block {
        meter: MeterName::requests(),
        period: Window::Day.period_of(NOW).expect("period"),
        limit: used,
        used,
    }
}

fn ip(text: &str) -> Identity {
    Identity::parse_anonymous_ip(text, Ipv6Prefix::DEFAULT).unwrap()
}

/// Lets DynamoDB Local answer each `BatchGetItem`, then rewrites the answer
/// of the next `left` ones into what a throttled table sends: no item, and
/// every requested key back as `UnprocessedKeys`.
#[derive(Debug, Clone, Default)]
struct Unprocessed {
    left: Arc<AtomicU32>,
    /// The `RequestItems` of the request in flight.
    requested: Arc<Mutex<Option<serde_json::Value>>>,
    answered: Arc<AtomicU32>,
}

impl Unprocessed {
    fn answer_next(&self, n: u32) {
        self.left.store(n, Ordering::SeqCst);
    }
}

impl Intercept for Unprocessed {
    fn name(&self) -> &'static str {
        "test::Unprocessed"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let items = target
            .ends_with(".BatchGetItem")
            .then(|| request.body().bytes())
            .flatten()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .map(|v| v["RequestItems"].clone());
        *self.requested.lock().unwrap() = items;
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(requested) = self.requested.lock().unwrap().take() else {
            return Ok(());
        };
        let left = self.left.load(Ordering::SeqCst);
        if left == 0 {
            return Ok(());
        }
        self.left.store(left - 1, Ordering::SeqCst);
        self.answered.fetch_add(1, Ordering::SeqCst);
        let body = serde_json::json!({"Responses": {}, "UnprocessedKeys": requested}).to_string();
        let response = context.response_mut();
        response
            .headers_mut()
            .insert("content-length", body.len().to_string());
        *response.body_mut() = body.into();
        Ok(())
    }
}

/// A store on a client that counts its requests and can answer `UnprocessedKeys`.
fn throttled_store(h: &Harness) -> (KeysStore, RequestCounter, Unprocessed) {
    let (client, counter) = h.counted_client(false);
    let unprocessed = Unprocessed::default();
    let conf = client
        .config()
        .to_builder()
        .interceptor(unprocessed.clone())
        .build();
    (
        KeysStore::new(Client::from_conf(conf), h.tables.keys.clone()),
        counter,
        unprocessed,
    )
}

#[tokio::test]
async fn unprocessed_keys_are_a_store_failure_under_the_plans_policy() {
    let (h, store) = seeded("unproc").await;
    store
        .put_plan(&plan(
            "pro-open",
            OveragePolicy::Hard,
            FailurePolicy::Open,
            1500,
        ))
        .await
        .unwrap();
    let (closed_key, open_key) = (new_key(), new_key());
    create_key(&store, &closed_key, "acme", "pro", None).await;
    create_key(&store, &open_key, "acme", "pro-open", None).await;
    for k in [&closed_key, &open_key] {
        let id = Identity::key(&k.key_id()).unwrap();
        store.put_block(&id, &day_block(1500)).await.unwrap();
    }
    let (throttled, counter, unprocessed) = throttled_store(&h);
    let (a, clock) = authorizer(throttled, Config::default()).await;

    // Read once: both blocked.
    for k in [&closed_key, &open_key] {
        assert_eq!(reason(&respond(&a, &key_event(k)).await), "quota_exceeded");
    }
    // The entries go stale; now every BatchGetItem comes back unprocessed.
    clock.advance(Duration::from_secs(5));
    counter.reset();
    unprocessed.answer_next(u32::MAX);
    let v = respond(&a, &key_event(&closed_key)).await;
    assert!(!allowed(&v), "{v}");
    assert_eq!(
        reason(&v),
        "store_unavailable",
        "closed: denied, not 'absent'"
    );
    assert_eq!(
        counter.requests("BatchGetItem"),
        u64::from(tollgate_store::keys::UNPROCESSED_RETRIES) + 1,
        "bounded retries"
    );
    let v = respond(&a, &key_event(&open_key)).await;
    assert!(allowed(&v), "open: allowed, {v}");
    assert_eq!(v["context"]["degraded"], true);
    // A key never read before: the default policy (closed), never "unknown key".
    let v = respond(&a, &key_event(&new_key())).await;
    assert_eq!(reason(&v), "store_unavailable");
    // Nothing of the failure was cached: once DynamoDB answers, the blocks deny.
    unprocessed.answer_next(0);
    counter.reset();
    assert_eq!(
        reason(&respond(&a, &key_event(&closed_key)).await),
        "quota_exceeded"
    );
    assert_eq!(counter.requests("BatchGetItem"), 1);
    // Unprocessed once, then answered: the retry finds the block.
    clock.advance(Duration::from_secs(5));
    unprocessed.answer_next(1);
    counter.reset();
    assert_eq!(
        reason(&respond(&a, &key_event(&open_key)).await),
        "quota_exceeded"
    );
    assert_eq!(counter.requests("BatchGetItem"), 2);
    assert!(unprocessed.answered.load(Ordering::SeqCst) >= 5);
}

#[tokio::test]
async fn unprocessed_anonymous_blocks_follow_the_anonymous_plan() {
    let (h, store) = seeded("unprocanon").await;
    let host = Identity::referer("example.org").unwrap();
    store.put_block(&host, &day_block(100)).await.unwrap();
    let (throttled, _counter, unprocessed) = throttled_store(&h);
    let (a, _) = authorizer(
        throttled,
        Config {
            anonymous_referer: true,
            ..Config::default()
        },
    )
    .await;
    let event = rest_event(r#"{"referer":"https://example.org/"}"#, "198.51.100.9");
    unprocessed.answer_next(u32::MAX);
    assert_eq!(reason(&respond(&a, &event).await), "store_unavailable");
    unprocessed.answer_next(0);
    assert_eq!(reason(&respond(&a, &event).await), "quota_exceeded");
    // The same under an open anonymous plan: allowed, degraded.
    store
        .put_plan(&plan(
            "anonymous",
            OveragePolicy::Hard,
            FailurePolicy::Open,
            100,
        ))
        .await
        .unwrap();
    let (throttled, _counter, unprocessed) = throttled_store(&h);
    let (a, _) = authorizer(
        throttled,
        Config {
            anonymous_referer: true,
            ..Config::default()
        },
    )
    .await;
    unprocessed.answer_next(u32::MAX);
    let v = respond(&a, &event).await;
    assert!(allowed(&v));
    assert_eq!(v["context"]["degraded"], true);
}

/// A made-up key of the older shape (no checksum): it passes the shape
/// check, so it costs a read.
fn random_legacy_key(n: u64) -> String {
    let body: String = (0..40)
        .map(|i| {
            let x = (rand::random::<u8>() ^ (n >> (i % 8)) as u8) % 62;
            (match x {
                0..=9 => b'0' + x,
                10..=35 => b'a' + x - 10,
                _ => b'A' + x - 36,
            }) as char
        })
        .collect();
    format!("tg_live_{body}")
}

#[tokio::test]
async fn random_keys_from_a_blocked_ip_are_its_quota_denials() {
    let (h, store) = seeded("guess").await;
    store
        .put_block(&ip("203.0.113.50"), &day_block(100))
        .await
        .unwrap();
    let (client, counter) = h.counted_client(false);
    let (a, _) = authorizer(
        KeysStore::new(client, h.tables.keys.clone()),
        Config::default(),
    )
    .await;
    counter.reset();
    for n in 0..1_000u64 {
        // Half of the older shape, half checksummed (valid checksums).
        let key = if n % 2 == 0 {
            random_legacy_key(n)
        } else {
            ApiKey::generate(rand::random()).expose_secret().to_owned()
        };
        let event = rest_event(&format!(r#"{{"x-api-key":"{key}"}}"#), "203.0.113.50");
        let v = respond(&a, &event).await;
        assert!(!allowed(&v), "{v}");
        assert_eq!(reason(&v), "quota_exceeded", "{v}");
        assert_eq!(v["principalId"], "ip:203.0.113.50");
        assert_eq!(v["context"]["plan"], "anonymous");
        assert!(v["context"]["retry_after"].as_i64().unwrap() > 0);
    }
    // Each cost one read (the key, its block and the IP's block together).
    assert_eq!(counter.requests("BatchGetItem"), 1_000);
    assert_eq!(counter.total_requests(), 1_000);
    // The same keys from an IP that is not blocked: Unauthorized.
    counter.reset();
    for _ in 0..20 {
        let key = random_legacy_key(7);
        let event = rest_event(&format!(r#"{{"x-api-key":"{key}"}}"#), "203.0.113.51");
        assert_unauthorized(&a, &event).await;
    }
    assert_eq!(counter.total_requests(), 20);
    // A real key from the blocked IP is its key's decision.
    assert!(allowed(
        &respond(
            &a,
            &rest_event(
                &format!(r#"{{"x-api-key":"{}"}}"#, demo_key().expose_secret()),
                "203.0.113.50"
            )
        )
        .await
    ));
}

#[tokio::test]
async fn malformed_keys_cost_no_read() {
    let (h, _store) = seeded("malformed").await;
    let (client, counter) = h.counted_client(false);
    let (a, _) = authorizer(
        KeysStore::new(client, h.tables.keys.clone()),
        Config::default(),
    )
    .await;
    counter.reset();
    for n in 0..1_000u32 {
        // A checksummed key with one digit changed, or the wrong shape.
        let mut key = ApiKey::generate(rand::random()).expose_secret().to_owned();
        let key = match n % 3 {
            0 => {
                let last = key.pop().unwrap();
                key.push(if last == '0' { '1' } else { '0' });
                key
            }
            1 => format!("tg_live_{}", "a".repeat(65 + (n as usize % 7))),
            _ => format!("tg_live_short{n}"),
        };
        let event = rest_event(&format!(r#"{{"x-api-key":"{key}"}}"#), "203.0.113.60");
        assert_unauthorized(&a, &event).await;
    }
    assert_eq!(counter.total_requests(), 0, "no read for a malformed key");
}

#[tokio::test]
async fn an_ipv6_client_is_its_prefix_and_ipv4_forms_are_one_client() {
    let (h, store) = seeded("ipv6").await;
    store
        .put_block(&ip("2001:db8:5:6::1"), &day_block(100))
        .await
        .unwrap();
    store
        .put_block(&ip("198.51.100.4"), &day_block(100))
        .await
        .unwrap();
    let (client, counter) = h.counted_client(false);
    let (a, _) = authorizer(
        KeysStore::new(client, h.tables.keys.clone()),
        Config::default(),
    )
    .await;
    counter.reset();
    for n in 0..200u32 {
        let addr = format!(
            "2001:db8:5:6:{:x}:{:x}::{:x}",
            (n * 7919) & 0xffff,
            n,
            n + 1
        );
        let v = respond(&a, &rest_event("{}", &addr)).await;
        assert_eq!(reason(&v), "quota_exceeded", "{addr}");
        assert_eq!(v["principalId"], "ip:2001:db8:5:6::/64");
    }
    assert_eq!(counter.total_requests(), 1, "one identity, one cache entry");
    assert!(allowed(
        &respond(&a, &rest_event("{}", "2001:db8:5:7::1")).await
    ));
    for form in [
        "198.51.100.4",
        "::ffff:198.51.100.4",
        "2002:c633:6404::1",
        "64:ff9b::198.51.100.4",
    ] {
        let v = respond(&a, &rest_event("{}", form)).await;
        assert_eq!(reason(&v), "quota_exceeded", "{form}");
        assert_eq!(v["principalId"], "ip:198.51.100.4");
    }
    // With /128 each address is its own identity (and its own read).
    let (exact, _) = authorizer(
        KeysStore::new(h.client(), h.tables.keys.clone()),
        Config {
            anonymous_ipv6_prefix: Ipv6Prefix::new(128).unwrap(),
            ..Config::default()
        },
    )
    .await;
    let v = respond(&exact, &rest_event("{}", "2001:db8:5:6::1")).await;
    assert!(allowed(&v));
    assert_eq!(v["principalId"], "ip:2001:db8:5:6::1");
}
