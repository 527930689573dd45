//! The authorizer against DynamoDB Local: keys, revocation, expiry, blocks,
//! plans, the cache (with an injected clock), store failures under both
//! policies, and the number of DynamoDB requests per decision.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use authorizer::{Authorizer, Config};
use support::*;
use tollgate_core::{Block, FailurePolicy, Identity, MeterName, OveragePolicy, Window};
use tollgate_store::KeysStore;

fn day_block(used: u64) -> Block {
    Block {
        meter: MeterName::requests(),
        period: Window::Day.period_of(NOW).expect("period"),
        limit: used,
        used,
    }
}

#[tokio::test]
async fn a_known_key_is_allowed_and_an_unknown_one_denied() {
    let (_h, store) = seeded("keys").await;
    let (a, _) = authorizer(store, Config::default()).await;
    let v = respond(&a, &key_event(&demo_key())).await;
    assert!(allowed(&v), "{v}");
    assert_eq!(v["principalId"], format!("key:{}", demo_key().key_id()));
    assert_eq!(v["context"]["customer"], "demo");
    assert_eq!(v["context"]["plan"], "pro");
    // An unknown key is Unauthorized (401), not a policy.
    assert_unauthorized(&a, &key_event(&new_key())).await;
}

#[tokio::test]
async fn revocation_takes_effect_when_the_cache_expires() {
    let (_h, store) = seeded("revoke").await;
    let key = new_key();
    create_key(&store, &key, "acme", "pro", None).await;
    let (a, clock) = authorizer(store.clone(), Config::default()).await;
    assert!(allowed(&respond(&a, &key_event(&key)).await));
    assert!(store
        .revoke_key("acme", &key.key_id())
        .await
        .expect("revoke"));
    // Still cached (TOLLGATE_CACHE_SECONDS = 5).
    clock.advance(Duration::from_millis(4_999));
    assert!(allowed(&respond(&a, &key_event(&key)).await));
    clock.advance(Duration::from_millis(1));
    assert_unauthorized(&a, &key_event(&key)).await;
}

#[tokio::test]
async fn expired_keys_are_denied() {
    let (_h, store) = seeded("expiry").await;
    let key = new_key();
    create_key(&store, &key, "acme", "pro", Some(NOW + 1_000)).await;
    let (a, clock) = authorizer(store, Config::default()).await;
    assert!(allowed(&respond(&a, &key_event(&key)).await));
    // Expiry is checked on every decision, cached or not.
    clock.advance(Duration::from_secs(1));
    assert_unauthorized(&a, &key_event(&key)).await;
}

#[tokio::test]
async fn a_key_block_denies_with_its_reset_time_until_cleared() {
    let (_h, store) = seeded("blocks").await;
    let key = new_key();
    create_key(&store, &key, "acme", "pro", None).await;
    let identity = Identity::key(&key.key_id()).expect("identity");
    store
        .put_block(&identity, &day_block(1500))
        .await
        .expect("block");
    let (a, clock) = authorizer(store.clone(), Config::default()).await;
    let v = respond(&a, &key_event(&key)).await;
    assert_eq!(reason(&v), "quota_exceeded", "{v}");
    assert_eq!(v["context"]["status"], 429);
    let reset = day_block(1).period.end();
    assert_eq!(v["context"]["reset_at"], reset);
    assert_eq!(v["context"]["reset_at_rfc3339"], "2030-11-22T00:00:00Z");
    store.clear_blocks(&identity).await.expect("clear");
    clock.advance(Duration::from_secs(5));
    assert!(allowed(&respond(&a, &key_event(&key)).await));
}

#[tokio::test]
async fn soft_plans_are_never_blocked() {
    let (_h, store) = seeded("soft").await;
    let key = new_key();
    create_key(&store, &key, "acme", "metered", None).await;
    let identity = Identity::key(&key.key_id()).expect("identity");
    store
        .put_block(&identity, &day_block(99_999))
        .await
        .expect("block");
    let (a, _) = authorizer(store, Config::default()).await;
    let v = respond(&a, &key_event(&key)).await;
    assert!(allowed(&v));
    assert_eq!(v["context"]["plan"], "metered");
}

#[tokio::test]
async fn a_block_past_its_period_no_longer_denies() {
    let (_h, store) = seeded("pastblock").await;
    let key = new_key();
    create_key(&store, &key, "acme", "pro", None).await;
    let identity = Identity::key(&key.key_id()).expect("identity");
    store
        .put_block(&identity, &day_block(1500))
        .await
        .expect("block");
    let (a, clock) = authorizer(store, Config::default()).await;
    assert_eq!(
        reason(&respond(&a, &key_event(&key)).await),
        "quota_exceeded"
    );
    // The next day, even with the entry re-read, the block is over.
    clock.set(day_block(1).period.end());
    assert!(allowed(&respond(&a, &key_event(&key)).await));
}

#[tokio::test]
async fn anonymous_callers_follow_the_anonymous_plan_and_ip_blocks() {
    let (_h, store) = seeded("anon").await;
    let ip = Identity::parse_anonymous_ip("203.0.113.10", tollgate_core::Ipv6Prefix::DEFAULT)
        .expect("ip");
    let (a, clock) = authorizer(store.clone(), Config::default()).await;
    let event = rest_event("{}", "203.0.113.10");
    let v = respond(&a, &event).await;
    assert!(allowed(&v));
    assert_eq!(v["principalId"], "ip:203.0.113.10");
    assert_eq!(v["context"]["plan"], "anonymous");
    store.put_block(&ip, &day_block(100)).await.expect("block");
    clock.advance(Duration::from_secs(5));
    let v = respond(&a, &event).await;
    assert_eq!(reason(&v), "quota_exceeded");
    // Another IP is not blocked.
    assert!(allowed(
        &respond(&a, &rest_event("{}", "203.0.113.11")).await
    ));
}

#[tokio::test]
async fn referer_blocks_count_only_when_configured() {
    let (_h, store) = seeded("referer").await;
    let host = Identity::referer("blog.example.com").expect("referer");
    store
        .put_block(&host, &day_block(100))
        .await
        .expect("block");
    let event = rest_event(
        r#"{"Referer":"https://Blog.Example.com/post/1"}"#,
        "203.0.113.10",
    );
    let (plain, _) = authorizer(store.clone(), Config::default()).await;
    assert!(allowed(&respond(&plain, &event).await));
    let (with_referer, _) = authorizer(
        store,
        Config {
            anonymous_referer: true,
            ..Config::default()
        },
    )
    .await;
    let v = respond(&with_referer, &event).await;
    assert_eq!(reason(&v), "quota_exceeded");
    assert_eq!(v["context"]["referer"], "referer:blog.example.com");
    assert_eq!(v["principalId"], "ip:203.0.113.10");
}

#[tokio::test]
async fn a_soft_anonymous_plan_needs_no_read() {
    let (h, store) = seeded("softanon").await;
    store
        .put_plan(&plan(
            "anonymous",
            OveragePolicy::Soft,
            FailurePolicy::Closed,
            100,
        ))
        .await
        .expect("plan");
    store
        .put_block(
            &Identity::parse_anonymous_ip("203.0.113.10", tollgate_core::Ipv6Prefix::DEFAULT)
                .expect("ip"),
            &day_block(100),
        )
        .await
        .expect("block");
    let (client, counter) = h.counted_client(false);
    let (a, _) = authorizer(
        KeysStore::new(client, h.tables.keys.clone()),
        Config::default(),
    )
    .await;
    counter.reset();
    let v = respond(&a, &rest_event("{}", "203.0.113.10")).await;
    assert!(allowed(&v), "soft: never blocked");
    assert_eq!(counter.total_requests(), 0);
}

#[tokio::test]
async fn a_missing_anonymous_plan_is_a_configuration_error() {
    let (_h, store) = seeded("noanon").await;
    let (a, _) = authorizer(
        store,
        Config {
            anonymous_plan: "free".into(),
            ..Config::default()
        },
    )
    .await;
    let v = respond(&a, &rest_event("{}", "203.0.113.10")).await;
    assert!(!allowed(&v));
    assert_eq!(reason(&v), "unknown_plan");
    assert_eq!(v["context"]["plan"], "free");
}

#[tokio::test]
async fn plan_changes_arrive_with_the_plan_cache() {
    let (_h, store) = seeded("plans").await;
    let (a, clock) = authorizer(store.clone(), Config::default()).await;
    let key = new_key();
    // A plan created after the plans were loaded: the key's unknown plan
    // forces one early reload.
    store
        .put_plan(&plan(
            "late",
            OveragePolicy::Hard,
            FailurePolicy::Closed,
            10,
        ))
        .await
        .expect("plan");
    create_key(&store, &key, "acme", "late", None).await;
    let v = respond(&a, &key_event(&key)).await;
    assert!(allowed(&v), "{v}");
    assert_eq!(v["context"]["plan"], "late");
    // A plan turned soft is seen after TOLLGATE_PLAN_CACHE_SECONDS.
    let identity = Identity::key(&key.key_id()).expect("identity");
    store
        .put_block(&identity, &day_block(10))
        .await
        .expect("block");
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        reason(&respond(&a, &key_event(&key)).await),
        "quota_exceeded"
    );
    store
        .put_plan(&plan(
            "late",
            OveragePolicy::Soft,
            FailurePolicy::Closed,
            10,
        ))
        .await
        .expect("plan");
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        reason(&respond(&a, &key_event(&key)).await),
        "quota_exceeded",
        "plans still cached"
    );
    clock.advance(Duration::from_secs(30));
    assert!(allowed(&respond(&a, &key_event(&key)).await));
}

#[tokio::test]
async fn a_key_whose_plan_was_deleted_is_denied() {
    let (h, store) = seeded("planless").await;
    let key = new_key();
    create_key(&store, &key, "acme", "ghost", None).await;
    let (a, _) = authorizer(store, Config::default()).await;
    let v = respond(&a, &key_event(&key)).await;
    assert_eq!(reason(&v), "unknown_plan");
    drop(h);
}

#[tokio::test]
async fn unknown_keys_are_cached_for_a_shorter_time() {
    let (_h, store) = seeded("negative").await;
    let (client, counter) = _h.counted_client(false);
    let counted = KeysStore::new(client, _h.tables.keys.clone());
    let (a, clock) = authorizer(counted, Config::default()).await;
    counter.reset();
    let key = new_key();
    assert_unauthorized(&a, &key_event(&key)).await;
    assert_eq!(counter.total_requests(), 1);
    // The key is created; the negative entry holds for 2 s (not 5).
    create_key(&store, &key, "acme", "pro", None).await;
    clock.advance(Duration::from_millis(1_999));
    assert_unauthorized(&a, &key_event(&key)).await;
    assert_eq!(
        counter.total_requests(),
        1,
        "served from the negative cache"
    );
    clock.advance(Duration::from_millis(1));
    assert!(allowed(&respond(&a, &key_event(&key)).await));
    assert_eq!(counter.total_requests(), 2);
}

#[tokio::test]
async fn at_most_one_request_per_decision_and_none_on_a_hit() {
    let (h, _store) = seeded("count").await;
    let (client, counter) = h.counted_client(false);
    let (a, clock) = authorizer(
        KeysStore::new(client, h.tables.keys.clone()),
        Config {
            anonymous_referer: true,
            ..Config::default()
        },
    )
    .await;
    assert_eq!(counter.requests("Query"), 1, "plans loaded at start-up");
    counter.reset();

    // A key: one BatchGetItem (the key item, its block item and the
    // source IP's block item), then hits.
    assert!(allowed(&respond(&a, &key_event(&demo_key())).await));
    assert_eq!(counter.total_requests(), 1);
    assert_eq!(counter.requests("BatchGetItem"), 1);
    for _ in 0..50 {
        assert!(allowed(&respond(&a, &key_event(&demo_key())).await));
    }
    assert_eq!(counter.total_requests(), 1, "cache hits read nothing");

    // An anonymous IP alone: one GetItem.
    counter.reset();
    assert!(allowed(
        &respond(&a, &rest_event("{}", "198.51.100.7")).await
    ));
    assert_eq!(counter.requests("GetItem"), 1);
    assert_eq!(counter.total_requests(), 1);
    // IP and Referer: both block items in one BatchGetItem.
    counter.reset();
    let with_referer = rest_event(r#"{"referer":"https://example.org/"}"#, "198.51.100.7");
    assert!(allowed(&respond(&a, &with_referer).await));
    assert_eq!(counter.requests("BatchGetItem"), 1);
    assert_eq!(counter.total_requests(), 1);
    assert!(allowed(&respond(&a, &with_referer).await));
    assert_eq!(counter.total_requests(), 1);

    // Shape failures and unidentified callers never read.
    counter.reset();
    for event in [
        rest_event(r#"{"x-api-key":"tg_live_nope"}"#, "198.51.100.7"),
        rest_event("{}", "not-an-ip"),
        b"{\"type\":\"TOKEN\"".to_vec(),
    ] {
        let _ = a.handle_bytes(&event).await;
    }
    assert_eq!(counter.total_requests(), 0);

    // After the TTL: one read again. After the plan TTL: one Query more,
    // once per interval, not per decision.
    clock.advance(Duration::from_secs(5));
    assert!(allowed(&respond(&a, &key_event(&demo_key())).await));
    assert_eq!(counter.total_requests(), 1);
    counter.reset();
    clock.advance(Duration::from_secs(60));
    for _ in 0..10 {
        assert!(allowed(&respond(&a, &key_event(&demo_key())).await));
    }
    assert_eq!(counter.requests("Query"), 1);
    assert_eq!(counter.requests("BatchGetItem"), 1);
    assert_eq!(counter.total_requests(), 2);
    // Nothing is ever written.
    let writes: u64 = [
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "TransactWriteItems",
        "BatchWriteItem",
    ]
    .iter()
    .map(|op| counter.requests(op))
    .sum();
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let (h, store) = seeded("bounded").await;
    let (a, _) = authorizer(
        store,
        Config {
            cache_max_entries: 20,
            ..Config::default()
        },
    )
    .await;
    for i in 0..60 {
        let _ = respond(&a, &rest_event("{}", &format!("198.51.100.{i}"))).await;
        assert!(a.cached_entries() <= 20);
    }
    drop(h);
}

#[tokio::test]
async fn store_failure_denies_under_the_closed_policy() {
    let (a, _) = {
        let clock = authorizer::ManualClock::at(NOW);
        let a = Authorizer::new(
            Config::default(),
            dead_store(),
            one_region(),
            std::sync::Arc::new(clock.clone()),
        );
        a.prime_plans(vec![plan(
            "anonymous",
            OveragePolicy::Hard,
            FailurePolicy::Closed,
            100,
        )]);
        (a, clock)
    };
    let v = respond(&a, &key_event(&demo_key())).await;
    assert!(!allowed(&v));
    assert_eq!(reason(&v), "store_unavailable");
    assert_eq!(v["context"]["status"], 503);
    let v = respond(&a, &rest_event("{}", "192.0.2.1")).await;
    assert_eq!(reason(&v), "store_unavailable");
}

#[tokio::test]
async fn store_failure_allows_under_the_open_policy() {
    let clock = authorizer::ManualClock::at(NOW);
    let a = Authorizer::new(
        Config {
            failure_policy: FailurePolicy::Open,
            ..Config::default()
        },
        dead_store(),
        one_region(),
        std::sync::Arc::new(clock),
    );
    a.prime_plans(vec![plan(
        "anonymous",
        OveragePolicy::Hard,
        FailurePolicy::Open,
        100,
    )]);
    let v = respond(&a, &key_event(&demo_key())).await;
    assert!(allowed(&v));
    assert_eq!(v["context"]["degraded"], true);
    let v = respond(&a, &rest_event("{}", "192.0.2.1")).await;
    assert!(allowed(&v));
    assert_eq!(v["context"]["degraded"], true);
}

#[tokio::test]
async fn an_outage_after_a_read_uses_the_keys_plan_policy() {
    // Read once from DynamoDB Local, then lose the store: the stale entry
    // names the key's plan, whose failure policy (open) applies, although
    // the default (TOLLGATE_FAILURE_POLICY) is closed.
    let (h, store) = seeded("outage").await;
    let key = new_key();
    create_key(&store, &key, "acme", "metered", None).await;
    let (a, clock) = authorizer(store, Config::default()).await;
    assert!(allowed(&respond(&a, &key_event(&key)).await));
    drop(h); // deletes the tables: every read now fails
    clock.advance(Duration::from_secs(5));
    let v = respond(&a, &key_event(&key)).await;
    assert!(allowed(&v), "{v}");
    assert_eq!(v["context"]["degraded"], true);
    // A key never seen falls back to the default, closed.
    let v = respond(&a, &key_event(&new_key())).await;
    assert_eq!(reason(&v), "store_unavailable");
}
