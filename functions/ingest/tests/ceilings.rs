//! Issue 16 item 7 against DynamoDB Local: values that would break a
//! counter are rejected at ingest with a clear error, and nothing of them
//! is counted (no counter, no marker).
#![allow(clippy::unwrap_used)]

mod common;

use serde_json::json;
use tollgate_core::ceiling::{MAX_EVENT_VALUE, MAX_REQUEST_ADD};
use tollgate_core::Window;

use common::*;

/// The request: 998 events of 9e15 for one key (about 9e18) in a
/// request of 1,000 (the most ingest takes). The first fits the
/// per-request ceiling of one counter; the other 997 are
/// rejected naming `value`, and the counters hold exactly 9e15. One over
/// the per-event ceiling is rejected too; another key's counter has room
/// of its own.
#[tokio::test]
async fn values_past_the_ceilings_are_rejected_and_not_counted() {
    let (h, ingest, _) = setup("ceilings").await;
    let c = h.client();
    let mut events: Vec<_> = (0..998)
        .map(|i| {
            event(
                &format!("big{i}"),
                "tokens",
                "key:big",
                MAX_EVENT_VALUE,
                now(),
            )
        })
        .collect();
    events.push(event(
        "other",
        "tokens",
        "key:other",
        MAX_REQUEST_ADD,
        now(),
    ));
    events.push(
        json!({"id": "over", "meter": "tokens", "identity": "key:other2",
                       "value": MAX_EVENT_VALUE + 1, "time": now()}),
    );
    let r = ingest.post_events(&array(&events)).await;
    assert_eq!(r.status, 207, "{}", r.body);
    let statuses = statuses(&r.body);
    assert_eq!(statuses[0], "accepted");
    assert!(statuses[1..998].iter().all(|s| s == "rejected"));
    assert_eq!(statuses[998], "accepted");
    assert_eq!(statuses[999], "rejected");
    let results = r.body["results"].as_array().unwrap();
    for i in [1, 997] {
        assert_eq!(results[i]["field"], "value", "{}", results[i]);
        let reason = results[i]["reason"].as_str().unwrap();
        assert!(
            reason.contains("add up to more than 9000000000000000"),
            "{reason}"
        );
    }
    let reason = results[999]["reason"].as_str().unwrap();
    assert!(reason.contains("too large"), "{reason}");
    assert_eq!(
        (r.body["accepted"].as_u64(), r.body["rejected"].as_u64()),
        (Some(2), Some(998))
    );

    let usage = &h.tables.usage;
    for window in [Window::Hour, Window::Day, Window::Month] {
        let sk = label(window, now(), "local-a");
        assert_eq!(
            counter(&c, usage, "tokens#key:big", &sk).await,
            Some(MAX_EVENT_VALUE),
            "{sk}"
        );
        assert_eq!(
            counter(&c, usage, "tokens#key:other", &sk).await,
            Some(MAX_REQUEST_ADD)
        );
        assert_eq!(counter(&c, usage, "tokens#key:other2", &sk).await, None);
    }
    assert_eq!(
        scan(&c, &h.tables.idempotency).await.len(),
        2,
        "markers of the accepted events only"
    );

    // The same request again: the accepted two are duplicates, the rest
    // rejected the same way; nothing moves.
    let again = ingest.post_events(&array(&events)).await;
    let again = common::statuses(&again.body);
    assert_eq!(
        (again[0].as_str(), again[998].as_str()),
        ("duplicate", "duplicate")
    );
    assert!(again[1..998].iter().all(|s| s == "rejected"));
    assert_eq!(
        counter(
            &c,
            usage,
            "tokens#key:big",
            &label(Window::Month, now(), "local-a")
        )
        .await,
        Some(MAX_EVENT_VALUE)
    );
}
