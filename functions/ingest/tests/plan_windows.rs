//! The windows counted follow the plans (issue 18, "hour and minute limits
//! are enforced"): with `TOLLGATE_WINDOWS` at its default
//! (`hour,day,month`), a plan's `minute` limit on a custom meter gets
//! minute counters written for API keys; an anonymous identity, on the
//! anonymous plan (which does not limit the meter), keeps the configured
//! windows. Against DynamoDB Local, on the wall clock (DynamoDB Local's TTL
//! sweeper deletes items whose TTL has passed).
#![allow(clippy::unwrap_used)]

mod common;

use tollgate_core::{FailurePolicy, Limit, MeterName, OveragePolicy, Plan, Window};
use tollgate_store::KeysStore;
use tollgate_tests::Harness;

use common::{array, config, counter, define_meters, event, statuses};

#[tokio::test]
async fn a_plans_minute_limit_on_a_custom_meter_is_counted() {
    let h = Harness::new("ingest-plan-windows").await;
    define_meters(&h.client(), &h.tables).await;
    let pro = Plan {
        name: "pro".into(),
        limits: vec![Limit {
            meter: MeterName::new("tokens").unwrap(),
            window: Window::Minute,
            limit: 1_000,
        }],
        overage: OveragePolicy::Hard,
        failure: FailurePolicy::Closed,
    };
    pro.validate().unwrap();
    KeysStore::new(h.client(), &h.tables.keys)
        .put_plan(&pro)
        .await
        .unwrap();
    let c = config(&h.tables, "local-a");
    assert_eq!(c.windows, [Window::Hour, Window::Day, Window::Month]);
    // The wall clock: DynamoDB Local's TTL sweeper deletes by it.
    let now = chrono::Utc::now().timestamp_millis();
    let clock = tollgate_idempotency::ManualClock::new(now as u64);
    let ingest = common::ingest_on(h.client(), c, clock);

    let body = array(&[
        event("e1", "tokens", "key:alice", 5, now),
        event("e2", "tokens", "key:alice", 7, now),
        event("e3", "tokens", "ip:198.51.100.7", 3, now),
        event("e4", "calls", "key:alice", 1, now),
    ]);
    let r = ingest.post_events(&body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(statuses(&r.body), ["accepted"; 4]);

    let (client, usage) = (h.client(), h.tables.usage.as_str());
    let label = |window: Window| format!("{}#local-a", window.period_of(now).unwrap());
    let value = |pk: &'static str, window| {
        let (client, label) = (client.clone(), label(window));
        async move { counter(&client, usage, pk, &label).await }
    };
    for window in Window::ALL {
        assert_eq!(
            value("tokens#key:alice", window).await,
            Some(12),
            "{window}"
        );
    }
    // Not limited by the anonymous plan: the configured windows only.
    assert_eq!(value("tokens#ip:198.51.100.7", Window::Minute).await, None);
    assert_eq!(value("tokens#ip:198.51.100.7", Window::Hour).await, Some(3));
    // A meter no plan limits: the configured windows only.
    assert_eq!(value("calls#key:alice", Window::Minute).await, None);
    assert_eq!(value("calls#key:alice", Window::Hour).await, Some(1));

    // Retried whole: every event a duplicate, no counter moves.
    let again = ingest.post_events(&body).await;
    assert_eq!(statuses(&again.body), ["duplicate"; 4]);
    assert_eq!(value("tokens#key:alice", Window::Minute).await, Some(12));
}
