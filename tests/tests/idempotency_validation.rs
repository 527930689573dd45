//! Payload validation against DynamoDB Local, for the bugs that users of
//! Powertools for AWS Lambda reported in its idempotency utility:
//!
//! - the record that a failed conditional write returns
//!   (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) was replayed without
//!   checking its payload fingerprint, so a duplicate key with another
//!   payload got the first payload's response (Python #3781, TypeScript
//!   #2058, Java #2260);
//! - the record was put in the in-memory cache before it was validated
//!   (Python #3821);
//! - a completed record lost its fingerprint, so an identical retry was
//!   taken for a mismatch (TypeScript #5705, on its cache store).
//!
//! Each case uses a second `Idempotency` (another Lambda container, with an
//! empty cache) on the record that the first one stored, so that the record
//! it judges is the one DynamoDB returned.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;
use tollgate_idempotency::{
    Deadline, Failure, Idempotency, IdempotencyConfig, IdempotencyError, Status, StoredData,
    WaitPolicy,
};
use tollgate_tests::Harness;

/// Key `id`, fingerprint over `body`.
fn config(h: &Harness) -> IdempotencyConfig {
    IdempotencyConfig::new(&h.tables.idempotency)
        .namespace("validate")
        .key_path("id")
        .unwrap()
        .payload_path("body")
        .unwrap()
}

fn deadline_in(secs: u64) -> Deadline {
    Deadline::from(std::time::SystemTime::now() + Duration::from_secs(secs))
}

/// A typed event, so that the typed (no `serde_json::Value`) key path is
/// the one under test.
#[derive(Serialize)]
struct Order {
    id: &'static str,
    body: Body,
}

#[derive(Serialize)]
struct Body {
    amount: u64,
    currency: &'static str,
}

fn order(amount: u64) -> Order {
    Order {
        id: "order-7",
        body: Body {
            amount,
            currency: "EUR",
        },
    }
}

#[tokio::test]
async fn a_duplicate_with_another_payload_is_rejected_from_the_failed_conditional_write() {
    let h = Harness::new("idem-val-put").await;
    let first = Idempotency::new(h.client(), config(&h));
    let stored: String = first
        .run(&order(10), deadline_in(30), || async {
            Ok::<_, std::io::Error>("charged 10".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(stored, "charged 10");
    let key = first.key_for(&order(10)).unwrap().unwrap();
    let record = first.get_record(&key.key).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Completed);
    assert_eq!(
        record.validation, key.fingerprint,
        "the completed record keeps the fingerprint its acquire wrote"
    );
    let other = first.key_for(&order(99)).unwrap().unwrap();
    assert_eq!(other.key, key.key, "same key");
    assert_ne!(other.fingerprint, key.fingerprint, "other payload");

    // Another container: its acquire fails its condition and gets the
    // stored record back, which is all it reads.
    let (client, counter) = h.counted_client(false);
    let second = Idempotency::new(client, config(&h));
    let runs = AtomicU32::new(0);
    let result: Result<String, _> = second
        .run(&order(99), deadline_in(30), || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>("charged 99".to_owned())
        })
        .await;
    assert!(
        matches!(&result, Err(IdempotencyError::PayloadMismatch { key: k }) if *k == key.key),
        "{result:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the closure never ran");
    assert_eq!(
        (counter.total_requests(), counter.requests("PutItem")),
        (1, 1),
        "judged on the item the failed PutItem returned: {:?}",
        counter.snapshot()
    );
    assert_eq!(
        second.get_record(&key.key).await.unwrap(),
        Some(record.clone()),
        "the stored record is untouched"
    );

    // The same payload, whatever its key order and whatever lies outside
    // the fingerprint, still replays: the fingerprint survived completion.
    let same = json!({"extra": [1, 2], "body": {"currency": "EUR", "amount": 10}, "id": "order-7"});
    let replayed: String = second
        .run(&same, deadline_in(30), || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>("charged again".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(replayed, "charged 10");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(record.data, Some(StoredData::Json("\"charged 10\"".into())));
}

#[tokio::test]
async fn a_stored_failure_is_not_replayed_to_another_payload() {
    let h = Harness::new("idem-val-fail").await;
    let first = Idempotency::new(h.client(), config(&h));
    let declined: Result<String, _> = first
        .run_storing_failures(&order(10), deadline_in(30), || async {
            Err(Failure::Deterministic("card declined".to_owned()))
        })
        .await;
    assert!(matches!(declined, Err(IdempotencyError::Handler(ref m)) if m == "card declined"));
    let second = Idempotency::new(h.client(), config(&h));
    let replayed: Result<String, IdempotencyError<String>> = second
        .run_storing_failures(&order(10), deadline_in(30), || async {
            Ok::<_, Failure<String>>("never".to_owned())
        })
        .await;
    assert!(
        matches!(replayed, Err(IdempotencyError::ReplayedFailure(ref m)) if m == "card declined"),
        "{replayed:?}"
    );
    let other: Result<String, IdempotencyError<String>> = second
        .run_storing_failures(&order(11), deadline_in(30), || async {
            Ok::<_, Failure<String>>("never".to_owned())
        })
        .await;
    assert!(
        matches!(other, Err(IdempotencyError::PayloadMismatch { .. })),
        "{other:?}"
    );
}

#[tokio::test]
async fn an_in_progress_record_with_another_payload_is_a_mismatch_without_waiting() {
    let h = Harness::new("idem-val-busy").await;
    let first = Idempotency::new(h.client(), config(&h));
    let release = Arc::new(Notify::new());
    let holder = {
        let (first, release) = (first.clone(), release.clone());
        tokio::spawn(async move {
            first
                .run(&order(10), deadline_in(30), || async move {
                    release.notified().await;
                    Ok::<_, std::io::Error>("charged 10".to_owned())
                })
                .await
        })
    };
    let key = first.key_for(&order(10)).unwrap().unwrap();
    // Until the holder's acquire has landed.
    let mut record = None;
    for _ in 0..500 {
        record = first.get_record(&key.key).await.unwrap();
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(record.map(|r| r.status), Some(Status::InProgress));

    // A caller that would wait for the lease: another payload is refused
    // from the first returned item, not after waiting for the holder.
    let (client, counter) = h.counted_client(false);
    let waiting = config(&h).wait(WaitPolicy {
        max_wait: Duration::from_secs(20),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    });
    let second = Idempotency::new(client, waiting);
    let other: Result<String, _> = second
        .run(&order(99), deadline_in(30), || async {
            Ok::<_, std::io::Error>("charged 99".to_owned())
        })
        .await;
    assert!(
        matches!(other, Err(IdempotencyError::PayloadMismatch { .. })),
        "{other:?}"
    );
    assert_eq!(counter.total_requests(), 1, "{:?}", counter.snapshot());

    // Without a wait policy the same payload is only in progress.
    let impatient = Idempotency::new(h.client(), config(&h));
    let busy: Result<String, _> = impatient
        .run(&order(10), deadline_in(30), || async {
            Ok::<_, std::io::Error>("charged twice".to_owned())
        })
        .await;
    assert!(
        matches!(busy, Err(IdempotencyError::AlreadyInProgress { .. })),
        "{busy:?}"
    );
    release.notify_one();
    assert_eq!(holder.await.unwrap().unwrap(), "charged 10");
}

#[tokio::test]
async fn a_record_that_fails_validation_is_never_cached() {
    let h = Harness::new("idem-val-cache").await;
    let first = Idempotency::new(h.client(), config(&h));
    let _: String = first
        .run(&order(10), deadline_in(30), || async {
            Ok::<_, std::io::Error>("charged 10".to_owned())
        })
        .await
        .unwrap();

    let (client, counter) = h.counted_client(false);
    let cached = Idempotency::new(client, config(&h).cache_capacity(16));
    let never = || async { Ok::<_, std::io::Error>("never".to_owned()) };
    for attempt in 1..=2u64 {
        let other: Result<String, _> = cached.run(&order(99), deadline_in(30), never).await;
        assert!(
            matches!(other, Err(IdempotencyError::PayloadMismatch { .. })),
            "{other:?}"
        );
        assert_eq!(
            counter.requests("PutItem"),
            attempt,
            "a rejected record is not cached: each mismatch reads the table again"
        );
    }
    counter.reset();
    let replayed: String = cached
        .run(&order(10), deadline_in(30), never)
        .await
        .unwrap();
    assert_eq!(replayed, "charged 10");
    assert_eq!(
        counter.total_requests(),
        1,
        "the matching payload misses the cache: the mismatches left nothing in it"
    );
    let again: String = cached
        .run(&order(10), deadline_in(30), never)
        .await
        .unwrap();
    assert_eq!(again, "charged 10");
    assert_eq!(counter.total_requests(), 1, "validated, then cached: a hit");
    // A cache hit is validated too.
    let other: Result<String, _> = cached.run(&order(99), deadline_in(30), never).await;
    assert!(
        matches!(other, Err(IdempotencyError::PayloadMismatch { .. })),
        "{other:?}"
    );
    assert_eq!(counter.total_requests(), 1, "judged on the cached record");
}
