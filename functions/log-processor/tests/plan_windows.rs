//! The windows counted follow the plans (issue 18, "hour and minute limits
//! are enforced"): with `TOLLGATE_WINDOWS` at its default (`day,month`), a
//! plan's `hour` limit on `requests` gets hour counters written, on the
//! direct path and on Kinesis's watermark path, and the anonymous plan's
//! `minute` limit gets anonymous identities minute counters (in their
//! bucket items, one period each); when the plans cannot be read, the
//! configured windows are still counted and the delivery succeeds.
//! Against DynamoDB Local; every event is timed now (DynamoDB Local's TTL
//! sweeper deletes items whose TTL has passed).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use log_processor::ACCESS_LOG_FORMAT;
use serde_json::json;
use tollgate_core::{FailurePolicy, Limit, MeterName, OveragePolicy, Plan, Window};
use tollgate_store::KeysStore;
use tollgate_tests::cloudwatch::{direct_event, gzip, kinesis_event, payload_json, Event};
use tollgate_tests::{Harness, TEST_REGION};

use common::{config, usage_items};

/// An access line of an allowed call by `identity` from `ip` at `at`.
fn line(n: usize, at: i64, ip: &str, identity: &str) -> Event {
    let message = ACCESS_LOG_FORMAT
        .replace("$context.requestId", &format!("req-{n}"))
        .replace("$context.requestTimeEpoch", &at.to_string())
        .replace("$context.identity.sourceIp", ip)
        .replace("$context.httpMethod", "GET")
        .replace("$context.resourcePath", "/v1/lookup/{ip}")
        .replace("$context.status", "200")
        .replace("$context.integrationStatus", "200")
        .replace("$context.error.responseType", "-")
        .replace("$context.authorizer.principalId", "-")
        .replace("$context.authorizer.identity", identity)
        .replace("$context.authorizer.error", "-")
        .replace("$context.authorizer.referer", "-");
    assert!(!message.contains('$'), "{message}");
    Event {
        id: format!("{n:020}"),
        timestamp: at,
        message,
    }
}

fn plan(name: &str, limits: &[(Window, u64)]) -> Plan {
    Plan {
        name: name.into(),
        limits: limits
            .iter()
            .map(|(window, limit)| Limit {
                meter: MeterName::requests(),
                window: *window,
                limit: *limit,
            })
            .collect(),
        overage: OveragePolicy::Hard,
        failure: FailurePolicy::Closed,
    }
}

/// A "pro" plan with an hourly limit, and an anonymous plan with a
/// per-minute one.
async fn put_plans(h: &Harness) {
    let keys = KeysStore::new(h.client(), &h.tables.keys);
    let pro = plan("pro", &[(Window::Hour, 100), (Window::Day, 1_000)]);
    let anonymous = plan("anonymous", &[(Window::Minute, 10), (Window::Day, 50)]);
    for p in [pro, anonymous] {
        p.validate().unwrap();
        keys.put_plan(&p).await.unwrap();
    }
}

/// `identity`'s `requests` counters by window, as stored.
fn by_window(got: &BTreeMap<(String, String), u64>, identity: &str) -> BTreeMap<Window, u64> {
    got.iter()
        .filter(|((pk, _), _)| *pk == format!("requests#{identity}"))
        .map(|((_, label), v)| (label.split('#').next().unwrap().parse().unwrap(), *v))
        .collect()
}

/// The label of the period of `window` holding `at` in the test region.
fn label(window: Window, at: i64) -> String {
    format!("{}#{TEST_REGION}", window.period_of(at).unwrap())
}

#[tokio::test]
async fn a_plans_hour_and_minute_limits_are_counted() {
    let h = Harness::new("lp-plan-windows").await;
    put_plans(&h).await;
    // TOLLGATE_WINDOWS and TOLLGATE_ANONYMOUS_WINDOWS left at their defaults.
    let c = config(&h, &[]);
    assert_eq!(c.windows, [Window::Day, Window::Month]);
    let processor = common::processor(h.client(), c);
    let at = chrono::Utc::now().timestamp_millis();
    let mut lines: Vec<Event> = (0..7).map(|n| line(n, at, "192.0.2.1", "key:k1")).collect();
    lines.extend((7..10).map(|n| line(n, at, "198.51.100.7", "ip:198.51.100.7")));
    let summary = processor
        .handle(direct_event(&payload_json("api-logs", "s", &lines)))
        .await
        .unwrap();
    assert_eq!(summary["counted"], 10, "{summary}");
    // Kinesis (per-shard watermarks for keys' counters): 5 calls of another key.
    let records = [gzip(&payload_json(
        "api-logs",
        "s",
        &(20..25)
            .map(|n| line(n, at, "192.0.2.2", "key:k2"))
            .collect::<Vec<_>>(),
    ))];
    let resp = processor
        .handle(kinesis_event(&records, 500))
        .await
        .unwrap();
    assert_eq!(resp["batchItemFailures"], json!([]));

    let got = usage_items(&h.client(), &h.tables.usage).await;
    use Window::{Day, Hour, Minute, Month};
    // Keys: the configured day and month, and every window a plan limits.
    let all = |n| BTreeMap::from([(Minute, n), (Hour, n), (Day, n), (Month, n)]);
    assert_eq!(by_window(&got, "key:k1"), all(7));
    assert_eq!(by_window(&got, "key:k2"), all(5));
    // Anonymous: the configured windows and the anonymous plan's minute,
    // not pro's hour.
    assert_eq!(
        by_window(&got, "ip:198.51.100.7"),
        BTreeMap::from([(Minute, 3), (Day, 3), (Month, 3)])
    );
    let hour = ("requests#key:k1".to_owned(), label(Window::Hour, at));
    assert_eq!(got.get(&hour), Some(&7), "the hour counter is the hour's");
    // A redelivery counts nothing again, in any window.
    let again = processor
        .handle(direct_event(&payload_json("api-logs", "s", &lines)))
        .await
        .unwrap();
    assert_eq!(again["new_chunks"], 0, "{again}");
    assert_eq!(usage_items(&h.client(), &h.tables.usage).await, got);
}

#[tokio::test]
async fn plans_that_cannot_be_read_leave_the_configured_windows_counted() {
    let h = Harness::new("lp-plan-fail").await;
    put_plans(&h).await;
    // The plans live in a table this function cannot read (none by this name).
    let missing = format!("{}-missing", h.tables.keys);
    let processor = common::processor(
        h.client(),
        config(&h, &[("TOLLGATE_KEYS_TABLE", missing.as_str())]),
    );
    let at = chrono::Utc::now().timestamp_millis();
    let lines: Vec<Event> = (0..4)
        .map(|n| line(n, at, "192.0.2.1", "key:k1"))
        .chain((4..6).map(|n| line(n, at, "198.51.100.7", "ip:198.51.100.7")))
        .collect();
    for _ in 0..2 {
        let summary = processor
            .handle(direct_event(&payload_json("api-logs", "s", &lines)))
            .await
            .unwrap();
        assert_eq!(summary["counted"], 6, "{summary}");
    }
    let got = usage_items(&h.client(), &h.tables.usage).await;
    use Window::{Day, Month};
    assert_eq!(
        by_window(&got, "key:k1"),
        BTreeMap::from([(Day, 4), (Month, 4)])
    );
    assert_eq!(
        by_window(&got, "ip:198.51.100.7"),
        BTreeMap::from([(Day, 2), (Month, 2)])
    );
}

/// A redelivery after the plans changed counts every call once in every
/// window: the configured windows' chunks are the same whatever the plans
/// say (so they are found committed), and a window a plan added since has
/// chunks of its own (so it is counted, once); a redelivery that cannot read
/// the plans changes nothing.
#[tokio::test]
async fn a_redelivery_after_the_plans_changed_counts_each_window_once() {
    let h = Harness::new("lp-plan-change").await;
    let at = chrono::Utc::now().timestamp_millis();
    let mut lines: Vec<Event> = (0..6).map(|n| line(n, at, "192.0.2.1", "key:k1")).collect();
    lines.extend((6..8).map(|n| line(n, at, "198.51.100.7", "ip:198.51.100.7")));
    let event = direct_event(&payload_json("api-logs", "s", &lines));
    // First delivery: no plan yet (day and month).
    let first = common::processor(h.client(), config(&h, &[]));
    first.handle(event.clone()).await.unwrap();
    // The plans now limit the hour (pro) and the minute (anonymous): a new
    // container (a fresh plan cache) gets the delivery again.
    put_plans(&h).await;
    let second = common::processor(h.client(), config(&h, &[]));
    let summary = second.handle(event.clone()).await.unwrap();
    assert!(
        summary["duplicate_chunks"].as_u64().unwrap() >= 2,
        "{summary}"
    );
    assert!(summary["new_chunks"].as_u64().unwrap() >= 2, "{summary}");
    // And once more where the plans cannot be read.
    let missing = format!("{}-missing", h.tables.keys);
    let blind = common::processor(
        h.client(),
        config(&h, &[("TOLLGATE_KEYS_TABLE", missing.as_str())]),
    );
    let summary = blind.handle(event).await.unwrap();
    assert_eq!(summary["new_chunks"], 0, "{summary}");

    let got = usage_items(&h.client(), &h.tables.usage).await;
    use Window::{Day, Hour, Minute, Month};
    assert_eq!(
        by_window(&got, "key:k1"),
        BTreeMap::from([(Minute, 6), (Hour, 6), (Day, 6), (Month, 6)])
    );
    assert_eq!(
        by_window(&got, "ip:198.51.100.7"),
        BTreeMap::from([(Minute, 2), (Day, 2), (Month, 2)])
    );
}

/// The chunks of the configured windows do not depend on the plans; each
/// window a plan adds is chunked apart, per kind of identity and meter.
#[test]
fn windows_the_plans_add_are_chunked_apart() {
    use log_processor::batch::{plan_in, BatchAggregate, Counting};
    use log_processor::line::Rules;
    use std::sync::Arc;
    use tollgate_core::{CountedWindows, Ipv6Prefix, Region, StatusRanges};
    use Window::{Day, Hour, Minute, Month};
    let at = chrono::Utc::now().timestamp_millis();
    let events: Vec<_> = (0..300)
        .map(|n| line(n, at, "192.0.2.1", &format!("key:k{n}")))
        .chain(
            (300..310).map(|n| line(n, at, "198.51.100.7", &format!("ip:198.51.100.{}", n - 300))),
        )
        .collect();
    let payload = payload_json("g", "s", &events);
    let payload = log_processor::decode::parse_payload(&payload).unwrap();
    let region = Region::new(TEST_REGION).unwrap();
    let configured = CountedWindows::configured(&[Day, Month], &[Day, Month]);
    let plans = [
        plan("pro", &[(Hour, 100)]),
        plan("anonymous", &[(Minute, 10)]),
    ];
    let planned = |windows: &CountedWindows| {
        let counting = Counting {
            rules: Rules {
                count_status: StatusRanges::default_counted(),
                ipv6_prefix: Ipv6Prefix::DEFAULT,
            },
            windows: Arc::new(windows.clone()),
            max_meters: Default::default(),
        };
        let mut aggregate = BatchAggregate::new();
        aggregate.add_events(&payload.log_events, &counting);
        plan_in(
            "src",
            aggregate.aggregator.into_increments(),
            &region,
            Some(&configured),
        )
    };
    let without = planned(&configured);
    let with = planned(&configured.clone().with_plans(&plans, "anonymous"));
    // 300 keys x (day, month): 600 increments in chunks of 99.
    let ids = |chunks: &[log_processor::batch::Chunk]| -> Vec<String> {
        chunks.iter().map(|c| c.id.clone()).collect()
    };
    assert_eq!(without.chunks.len(), 7);
    assert_eq!(
        with.chunks[..7],
        without.chunks[..],
        "the same configured chunks"
    );
    // A key is counted in every plan's windows (the anonymous plan's
    // minute too), each window in a run of its own.
    let runs: Vec<String> = ["minute", "hour"]
        .iter()
        .flat_map(|w| (0..4).map(move |i| format!("src#p:{w}:requests:{i}")))
        .collect();
    assert_eq!(ids(&with.chunks[7..]), runs);
    assert!(with.chunks[7..]
        .iter()
        .flat_map(|c| &c.increments)
        .all(|(k, _, _)| [Minute, Hour].contains(&k.counter.period.window)));
    assert_eq!(
        with.anonymous[..without.anonymous.len()],
        without.anonymous[..]
    );
    assert_eq!(
        ids(&with.anonymous[without.anonymous.len()..]),
        ["src#p:minute:requests:a0"]
    );
    assert_eq!(with.increments(), without.increments() + 2 * 300 + 10);
}
