//! Issue 16 item 7: a Usage item whose counters do not read is an error
//! that is counted (`UnreadableItems`, alarmed in the template), never
//! silently skipped as "not usage"; the batch's other records go on.
#![allow(clippy::unwrap_used)]

mod common;

use serde_json::{json, Value};
use tollgate_tests::Harness;

/// A stream record of the Usage table `table` in `local-a` whose new image
/// holds `cells` besides the keys.
fn record(table: &str, seq: &str, pk: &str, sk: &str, cells: Value) -> Value {
    let mut image = json!({"pk": {"S": pk}, "sk": {"S": sk}, "agg": {"S": "count"},
                           "updated_at": {"N": "5"}});
    for (k, v) in cells.as_object().unwrap() {
        image[k] = v.clone();
    }
    json!({
        "eventID": seq, "eventName": "MODIFY", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "local-a",
        "eventSourceARN": format!("arn:aws:dynamodb:local-a:000000000000:table/{table}/stream/2026-01-01T00:00:00.000"),
        "dynamodb": {
            "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
            "NewImage": image,
            "SequenceNumber": seq, "SizeBytes": 60, "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

#[tokio::test]
async fn an_unreadable_usage_item_is_counted_as_an_error() {
    let h = Harness::with_regions("qs-unreadable", &common::REGIONS).await;
    let handler = common::handler(&h, "local-a");
    let month = tollgate_tests::clock::label(tollgate_core::Window::Month, common::now());
    let sk = format!("{month}#local-a");
    let t = &h.tables.usage;
    let event = json!({"Records": [
        // A counter that is no whole number: the item cannot be read.
        record(t, "100", "requests#key:k_bad", &sk, json!({"n": {"N": "-3"}})),
        // Another table's item is not usage: skipped, but not an error.
        record("other", "101", "x", "y", json!({})),
        // A counter past u64::MAX reads at its ceiling: not unreadable.
        record(t, "102", "requests#key:k_big", &sk,
               json!({"n": {"N": "99999999999999999999999999999999999999"}})),
    ]});
    let outcome = handler.handle(&event).await.unwrap();
    assert_eq!(outcome.stats.records, 3);
    assert_eq!(outcome.stats.unreadable, 1, "{:?}", outcome.stats);
    assert_eq!(outcome.stats.skipped, 2, "{:?}", outcome.stats);
    assert_eq!(outcome.stats.own_items, 1, "the huge counter is evaluated");
    assert!(outcome.response.batch_item_failures.is_empty());
    // The metric line counts it.
    let values = quota_sync::metrics::values(&outcome.stats);
    let line = tollgate_lambda::metrics::Line::function_only(&values).render("qs", 1);
    let (v, _) = tollgate_lambda::metrics::read_back_function_only(&line);
    assert_eq!(v[quota_sync::metrics::UNREADABLE_ITEMS], 1);
}
