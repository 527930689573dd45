//! `tollgate-idempotency` run mode against DynamoDB Local: exactly once
//! under concurrency, fenced leases, payload validation, missing keys,
//! expiry, releases, replay, the cache, the wait policy, the Lambda wrapper
//! and request counts.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tollgate_idempotency::{
    Deadline, Failure, Idempotency, IdempotencyConfig, IdempotencyError, ManualClock,
    MissingKeyPolicy, Status, StoredData, WaitPolicy,
};
use tollgate_tests::Harness;

fn config(h: &Harness) -> IdempotencyConfig {
    IdempotencyConfig::new(&h.tables.idempotency)
        .namespace("test")
        .key_path("id")
        .unwrap()
}

fn deadline_in(secs: u64) -> Deadline {
    let now = std::time::SystemTime::now() + Duration::from_secs(secs);
    Deadline::from(now)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Receipt {
    order: u64,
    amount: f64,
    note: String,
    tags: Vec<String>,
}

#[tokio::test]
async fn thirty_two_concurrent_calls_with_one_key_run_the_closure_once() {
    let h = Harness::new("idem-conc").await;
    let idem = Idempotency::new(h.client(), config(&h));
    let runs = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (idem, runs) = (idem.clone(), runs.clone());
        tasks.push(tokio::spawn(async move {
            idem.run(&json!({"id": "order-1"}), deadline_in(30), || async {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, std::io::Error>(json!({"done": 1}))
            })
            .await
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(v) => {
                assert_eq!(v, json!({"done": 1}));
                ok += 1;
            }
            Err(IdempotencyError::AlreadyInProgress {
                lease_expires_at_ms,
                ..
            }) => {
                assert!(lease_expires_at_ms > 0);
                busy += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the closure ran exactly once"
    );
    assert_eq!(ok + busy, 32);
    assert!(ok >= 1);
    // Afterwards every call gets the stored response.
    let again: Value = idem
        .run(&json!({"id": "order-1"}), deadline_in(30), || async {
            Ok::<_, std::io::Error>(json!("never"))
        })
        .await
        .unwrap();
    assert_eq!(again, json!({"done": 1}));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_callers_that_wait_all_get_the_stored_response() {
    let h = Harness::new("idem-wait").await;
    let idem = Idempotency::new(
        h.client(),
        config(&h).wait(WaitPolicy {
            max_wait: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        }),
    );
    let runs = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (idem, runs) = (idem.clone(), runs.clone());
        tasks.push(tokio::spawn(async move {
            idem.run(&json!({"id": "w"}), deadline_in(30), || async {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, std::io::Error>(7u32)
            })
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 7);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_holder_gets_lease_lost() {
    let h = Harness::new("idem-lease").await;
    let clock = ManualClock::starting_now();
    let idem = Idempotency::new(
        h.client(),
        config(&h)
            .clock(clock.clone())
            .in_progress_without_deadline(Duration::from_secs(10)),
    );
    let event = json!({"id": "lease"});
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let first = {
        let (idem, event) = (idem.clone(), event.clone());
        tokio::spawn(async move {
            idem.run(&event, Deadline::none(), || async move {
                started_tx.send(()).unwrap();
                go_rx.await.unwrap();
                Ok::<_, std::io::Error>("first".to_owned())
            })
            .await
        })
    };
    started_rx.await.unwrap();
    // While the lease is live, a second caller is refused.
    let busy = idem
        .run(&event, Deadline::none(), || async {
            Ok::<_, std::io::Error>("x".to_owned())
        })
        .await;
    assert!(
        matches!(busy, Err(IdempotencyError::AlreadyInProgress { .. })),
        "{busy:?}"
    );
    // The lease ends; a second caller takes the record over and completes.
    clock.advance(Duration::from_secs(11));
    let second = idem
        .run(&event, Deadline::none(), || async {
            Ok::<_, std::io::Error>("second".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(second, "second");
    // The first holder finishes late: it must not overwrite the new result.
    go_tx.send(()).unwrap();
    let late = first.await.unwrap();
    assert!(
        matches!(late, Err(IdempotencyError::LeaseLost { .. })),
        "{late:?}"
    );
    let key = idem.key_for(&event).unwrap().unwrap().key;
    let record = idem.get_record(&key).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Completed);
    assert_eq!(record.data, Some(StoredData::Json("\"second\"".into())));
}

#[tokio::test]
async fn a_late_holder_cannot_release_the_new_holders_record() {
    let h = Harness::new("idem-release").await;
    let clock = ManualClock::starting_now();
    let idem = Idempotency::new(
        h.client(),
        config(&h)
            .clock(clock.clone())
            .in_progress_without_deadline(Duration::from_secs(5)),
    );
    let event = json!({"id": "rel"});
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let first = {
        let (idem, event) = (idem.clone(), event.clone());
        tokio::spawn(async move {
            idem.run(&event, Deadline::none(), || async move {
                started_tx.send(()).unwrap();
                go_rx.await.unwrap();
                Err::<String, _>("boom")
            })
            .await
        })
    };
    started_rx.await.unwrap();
    clock.advance(Duration::from_secs(6));
    let (started2_tx, started2_rx) = tokio::sync::oneshot::channel::<()>();
    let (go2_tx, go2_rx) = tokio::sync::oneshot::channel::<()>();
    let second = {
        let (idem, event) = (idem.clone(), event.clone());
        tokio::spawn(async move {
            idem.run(&event, Deadline::none(), || async move {
                started2_tx.send(()).unwrap();
                go2_rx.await.unwrap();
                Ok::<_, &str>("second".to_owned())
            })
            .await
        })
    };
    started2_rx.await.unwrap();
    // The first holder fails now: its release must leave the second's lease.
    go_tx.send(()).unwrap();
    assert!(matches!(
        first.await.unwrap(),
        Err(IdempotencyError::Handler("boom"))
    ));
    let key = idem.key_for(&event).unwrap().unwrap().key;
    let record = idem.get_record(&key).await.unwrap().unwrap();
    assert_eq!(
        record.status,
        Status::InProgress,
        "the second holder's lease survives"
    );
    go2_tx.send(()).unwrap();
    assert_eq!(second.await.unwrap().unwrap(), "second");
}

#[tokio::test]
async fn the_in_progress_expiry_comes_from_the_deadline() {
    let h = Harness::new("idem-deadline").await;
    let clock = ManualClock::new(1_800_000_000_000);
    let idem = Idempotency::new(
        h.client(),
        config(&h)
            .clock(clock.clone())
            .in_progress(Duration::from_millis(500), Duration::from_secs(2)),
    );
    let key = idem.key_for(&json!({"id": 1})).unwrap().unwrap().key;
    let check = |deadline: u64, expected: u64| {
        let (idem, key) = (idem.clone(), key.clone());
        async move {
            let seen = idem
                .run(&json!({"id": 1}), deadline, || async {
                    let r = idem.get_record(&key).await.unwrap().unwrap();
                    Ok::<_, std::io::Error>(r.in_progress_expiry_ms)
                })
                .await
                .unwrap();
            assert_eq!(seen, Some(expected));
            idem.delete_record(&key).await.unwrap();
        }
    };
    check(1_800_000_030_000, 1_800_000_029_500).await;
    check(1_800_000_000_100, 1_800_000_002_000).await; // the floor
}

#[tokio::test]
async fn the_same_key_with_another_payload_is_a_mismatch() {
    let h = Harness::new("idem-mismatch").await;
    let idem = Idempotency::new(h.client(), config(&h).payload_path("body").unwrap());
    let ok = |v: &'static str| move || async move { Ok::<_, std::io::Error>(v.to_owned()) };
    let first = idem
        .run(
            &json!({"id": 1, "body": {"amount": 10}}),
            deadline_in(30),
            ok("a"),
        )
        .await
        .unwrap();
    assert_eq!(first, "a");
    // Same payload, other key order: a replay.
    let same = idem
        .run(
            &json!({"body": {"amount": 10}, "id": 1, "noise": true}),
            deadline_in(30),
            ok("b"),
        )
        .await
        .unwrap();
    assert_eq!(same, "a");
    let other = idem
        .run(
            &json!({"id": 1, "body": {"amount": 11}}),
            deadline_in(30),
            ok("c"),
        )
        .await;
    assert!(
        matches!(other, Err(IdempotencyError::PayloadMismatch { .. })),
        "{other:?}"
    );
}

#[tokio::test]
async fn a_missing_key_is_an_error_or_runs_without_idempotency() {
    let h = Harness::new("idem-missing").await;
    let (client, counter) = h.counted_client(false);
    let runs = AtomicU32::new(0);
    let f = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(1)
    };
    let strict = Idempotency::new(client.clone(), config(&h));
    let err = strict.run(&json!({"other": 1}), deadline_in(30), f).await;
    assert!(
        matches!(&err, Err(IdempotencyError::MissingKey { selector }) if selector == "id"),
        "{err:?}"
    );
    let err = strict.run(&json!({"id": null}), deadline_in(30), f).await;
    assert!(matches!(err, Err(IdempotencyError::MissingKey { .. })));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let lax = Idempotency::new(
        client,
        config(&h).missing_key(MissingKeyPolicy::RunWithoutIdempotency),
    );
    lax.run(&json!({"other": 1}), deadline_in(30), f)
        .await
        .unwrap();
    lax.run(&json!({"other": 1}), deadline_in(30), f)
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(counter.total_requests(), 0);
}

#[tokio::test]
async fn an_expired_record_executes_again_even_before_ttl_deletes_it() {
    let h = Harness::new("idem-expiry").await;
    let clock = ManualClock::starting_now();
    let idem = Idempotency::new(
        h.client(),
        config(&h)
            .clock(clock.clone())
            .expiry(Duration::from_secs(60)),
    );
    let runs = AtomicU32::new(0);
    let f = || async { Ok::<_, std::io::Error>(runs.fetch_add(1, Ordering::SeqCst)) };
    let event = json!({"id": "exp"});
    assert_eq!(idem.run(&event, deadline_in(30), f).await.unwrap(), 0);
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        idem.run(&event, deadline_in(30), f).await.unwrap(),
        0,
        "still live"
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        idem.run(&event, deadline_in(30), f).await.unwrap(),
        1,
        "expired: executes again"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_handler_error_releases_the_lease() {
    let h = Harness::new("idem-err").await;
    let idem = Idempotency::new(h.client(), config(&h));
    let event = json!({"id": "err"});
    let err = idem
        .run(&event, deadline_in(30), || async {
            Err::<u32, _>("transient")
        })
        .await;
    assert!(matches!(err, Err(IdempotencyError::Handler("transient"))));
    let key = idem.key_for(&event).unwrap().unwrap().key;
    assert_eq!(idem.get_record(&key).await.unwrap(), None, "released");
    let ok = idem
        .run(&event, deadline_in(30), || async { Ok::<_, &str>(5u32) })
        .await
        .unwrap();
    assert_eq!(ok, 5);
}

#[tokio::test]
async fn a_deterministic_failure_is_stored_and_replayed() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Declined {
        reason: String,
    }
    let h = Harness::new("idem-fail").await;
    let idem = Idempotency::new(h.client(), config(&h));
    let event = json!({"id": "card"});
    let runs = AtomicU32::new(0);
    let f = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        Err::<u32, _>(Failure::Deterministic(Declined {
            reason: "insufficient funds".into(),
        }))
    };
    let first = idem.run_storing_failures(&event, deadline_in(30), f).await;
    assert!(
        matches!(&first, Err(IdempotencyError::Handler(d)) if d.reason == "insufficient funds")
    );
    let second = idem.run_storing_failures(&event, deadline_in(30), f).await;
    assert!(
        matches!(&second, Err(IdempotencyError::ReplayedFailure(d)) if d.reason == "insufficient funds")
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // A retryable failure is not stored.
    let event = json!({"id": "card-2"});
    let retry = || async {
        Err::<u32, _>(Failure::Retryable(Declined {
            reason: "timeout".into(),
        }))
    };
    assert!(idem
        .run_storing_failures(&event, deadline_in(30), retry)
        .await
        .is_err());
    let ok = idem.run_storing_failures(&event, deadline_in(30), || async {
        Ok::<_, Failure<Declined>>(3)
    });
    assert_eq!(ok.await.unwrap(), 3);
}

#[tokio::test]
async fn the_stored_response_replays_byte_equal() {
    let h = Harness::new("idem-replay").await;
    let idem = Idempotency::new(h.client(), config(&h));
    let receipt = Receipt {
        order: 42,
        amount: 0.1 + 0.2,
        note: "naïve \"quoted\" \u{1F600}".into(),
        tags: vec!["b".into(), "a".into()],
    };
    let event = json!({"id": 42});
    let r = receipt.clone();
    let first: Receipt = idem
        .run(&event, deadline_in(30), || async move {
            Ok::<_, std::io::Error>(r)
        })
        .await
        .unwrap();
    let replayed: Receipt = idem
        .run(&event, deadline_in(30), || async {
            Ok::<_, std::io::Error>(unreachable_receipt())
        })
        .await
        .unwrap();
    assert_eq!(first, receipt);
    assert_eq!(replayed, receipt);
    let original = serde_json::to_string(&receipt).unwrap();
    assert_eq!(serde_json::to_string(&replayed).unwrap(), original);
    let key = idem.key_for(&event).unwrap().unwrap().key;
    let stored = idem.get_record(&key).await.unwrap().unwrap();
    assert_eq!(
        stored.data,
        Some(StoredData::Json(original)),
        "stored as serialized, byte for byte"
    );
}

fn unreachable_receipt() -> Receipt {
    panic!("a duplicate must not execute")
}

#[tokio::test]
async fn a_large_response_is_compressed_and_a_too_large_one_is_refused_before_storing() {
    let h = Harness::new("idem-large").await;
    let idem = Idempotency::new(h.client(), config(&h));
    // ~600 KB of JSON that compresses well: stored gzip-compressed.
    let big: Vec<String> = (0..20_000)
        .map(|i| format!("item-{:08}", i % 1000))
        .collect();
    let event = json!({"id": "big"});
    let b = big.clone();
    let first: Vec<String> = idem
        .run(&event, deadline_in(30), || async move {
            Ok::<_, std::io::Error>(b)
        })
        .await
        .unwrap();
    assert_eq!(first, big);
    let key = idem.key_for(&event).unwrap().unwrap().key;
    let stored = idem.get_record(&key).await.unwrap().unwrap();
    assert!(matches!(stored.data, Some(StoredData::Gzip(_))));
    let replayed: Vec<String> = idem
        .run(&event, deadline_in(30), || async {
            Ok::<_, std::io::Error>(vec![])
        })
        .await
        .unwrap();
    assert_eq!(replayed, big);
    // ~1 MB of random hex does not compress below the limit.
    let noise: Vec<String> = (0..16_000)
        .map(|_| {
            format!(
                "{:032x}{:032x}",
                rand::random::<u128>(),
                rand::random::<u128>()
            )
        })
        .collect();
    let event = json!({"id": "noise"});
    let err = idem
        .run(&event, deadline_in(30), || async move {
            Ok::<_, std::io::Error>(noise)
        })
        .await;
    assert!(
        matches!(&err, Err(IdempotencyError::ResponseTooLarge { size, limit: 350_000, .. }) if *size > 350_000),
        "{err:?}"
    );
    let key = idem.key_for(&event).unwrap().unwrap().key;
    assert_eq!(
        idem.get_record(&key).await.unwrap(),
        None,
        "the lease was released"
    );
}

#[tokio::test]
async fn requests_per_call_first_two_duplicate_one_cached_zero() {
    let h = Harness::new("idem-count").await;
    let (client, counter) = h.counted_client(true);
    let idem = Idempotency::new(client.clone(), config(&h));
    let event = json!({"id": "count", "body": "x".repeat(1000)});
    let f = || async { Ok::<_, std::io::Error>(json!({"ok": true})) };
    idem.run(&event, deadline_in(30), f).await.unwrap();
    assert_eq!(
        counter.total_requests(),
        2,
        "first execution: {:?}",
        counter.snapshot()
    );
    assert_eq!(
        (counter.requests("PutItem"), counter.requests("UpdateItem")),
        (1, 1)
    );
    counter.reset();
    idem.run(&event, deadline_in(30), f).await.unwrap();
    assert_eq!(
        counter.total_requests(),
        1,
        "duplicate: {:?}",
        counter.snapshot()
    );
    assert_eq!(counter.requests("PutItem"), 1);
    counter.reset();
    let cached = Idempotency::new(client, config(&h).cache_capacity(16));
    cached.run(&event, deadline_in(30), f).await.unwrap();
    assert_eq!(counter.total_requests(), 1, "a cache miss: one request");
    cached.run(&event, deadline_in(30), f).await.unwrap();
    cached.run(&event, deadline_in(30), f).await.unwrap();
    assert_eq!(counter.total_requests(), 1, "cache hits: no request");
}

#[tokio::test]
async fn the_lambda_handler_wrapper_runs_once_per_key() {
    use lambda_runtime::{Context, LambdaEvent, Service};
    let h = Harness::new("idem-lambda").await;
    let idem = Idempotency::new(h.client(), config(&h));
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let handler = move |event: LambdaEvent<Value>| {
        let r = r.clone();
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            Ok::<_, lambda_runtime::Error>(json!({"echo": event.payload["id"]}))
        }
    };
    let mut service = lambda_runtime::service_fn(idem.handler(handler));
    let mut ctx = Context::default();
    ctx.deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 30_000;
    for _ in 0..3 {
        let out = service
            .call(LambdaEvent::new(json!({"id": "l1"}), ctx.clone()))
            .await
            .unwrap();
        assert_eq!(out, json!({"echo": "l1"}));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let err = service
        .call(LambdaEvent::new(json!({"nope": 1}), ctx))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no idempotency key"), "{err}");
}

#[tokio::test]
async fn a_table_with_a_sort_key_uses_a_static_partition() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let h = Harness::new("idem-sk").await;
    let client: Client = h.client();
    let table = format!("{}-sk", h.tables.idempotency);
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&table)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let idem = Idempotency::new(
        client.clone(),
        IdempotencyConfig::new(&table)
            .key_path("id")
            .unwrap()
            .composite_key("pk", "idempotency", "sk"),
    );
    let runs = AtomicU32::new(0);
    let f = || async { Ok::<_, std::io::Error>(runs.fetch_add(1, Ordering::SeqCst)) };
    assert_eq!(
        idem.run(&json!({"id": 1}), deadline_in(30), f)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        idem.run(&json!({"id": 1}), deadline_in(30), f)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        idem.mark("m").await.unwrap(),
        tollgate_idempotency::MarkOutcome::New
    );
    assert_eq!(
        idem.mark("m").await.unwrap(),
        tollgate_idempotency::MarkOutcome::Duplicate
    );
    let items = client.scan().table_name(&table).send().await.unwrap();
    assert_eq!(items.count(), 2);
    for item in items.items() {
        assert_eq!(
            item.get("pk"),
            Some(&AttributeValue::S("idempotency".into()))
        );
    }
    let _ = client.delete_table().table_name(&table).send().await;
}
