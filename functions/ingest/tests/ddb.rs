//! The ingest handler against DynamoDB Local: exact counting under
//! concurrency and retries, the dedupe window, bad input, usage queries
//! over regions, top-N, and the DynamoDB cost of a request.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use serde_json::{json, Value};
use tollgate_core::{Aggregation, CounterKey, Identity, MeterName, Region, Window};
use tollgate_idempotency::ManualClock;
use tollgate_store::client::local_config;
use tollgate_store::usage::{increment, ItemAdds};
use tollgate_store::UsageStore;
use tollgate_tests::Harness;

use common::*;
use tollgate_app::top::{parse_top_query, TopReport};
use tollgate_app::usage::{parse_usage_query, query_usage, Source, UsageReport};

const DAY_MS: i64 = 86_400_000;

/// The hour, day and month of [`now`] in `local-a`, as counters' sort keys end.
fn hour_day_month() -> [String; 3] {
    [Window::Hour, Window::Day, Window::Month].map(|w| label(w, now(), "local-a"))
}

/// The day of [`now`] in `local-a`.
fn today() -> String {
    label(Window::Day, now(), "local-a")
}

/// The day `days` days from [`now`] (negative: before), as a period text
/// (`day#<date>`).
fn day_at(days: i64) -> String {
    tollgate_tests::clock::label(Window::Day, now() + days * DAY_MS)
}

/// The date of a `day#<date>` period text, as usage reports name periods.
fn date(period: &str) -> &str {
    period.split_once('#').map_or(period, |(_, d)| d)
}

/// The month of [`now`]: its period text (`month#<yyyy-mm>`), its label
/// (`<yyyy-mm>`), its first and its last date, and the last two days
/// before it (period texts).
struct ThisMonth {
    period: String,
    label: String,
    first: String,
    last: String,
    before: [String; 2],
}

fn this_month() -> ThisMonth {
    let month = Window::Month.period_of(now()).unwrap();
    let day = |at: i64| tollgate_tests::clock::label(Window::Day, at);
    ThisMonth {
        period: month.to_string(),
        label: month.label(),
        first: date(&day(month.start)).to_owned(),
        last: date(&day(month.end() - 1)).to_owned(),
        before: [day(month.start - 1 - DAY_MS), day(month.start - 1)],
    }
}

fn params(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[tokio::test]
async fn counts_valid_events_and_reports_each_status() {
    let (h, ingest, _) = setup("basic").await;
    let client = h.client();
    let body = array(&[
        event("e1", "tokens", "key:alice", 100, now()),
        event("e2", "tokens", "key:alice", 50, now() - 1000),
        event("e3", "calls", "ip:::ffff:192.0.2.1", 7, now()),
        event("e4", "unknown", "key:bob", 1, now()),
        event("e1", "tokens", "key:alice", 999, now()),
        json!({"id": "e5", "meter": "tokens", "identity": "key:carol", "value": -3, "time": now()}),
    ]);
    let r = ingest.post_events(&body).await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(
        statuses(&r.body),
        [
            "accepted",
            "accepted",
            "accepted",
            "rejected",
            "duplicate",
            "rejected"
        ]
    );
    assert_eq!(r.body["results"][3]["field"], "meter");
    assert_eq!(r.body["results"][3]["index"], 3);
    assert_eq!(r.body["results"][5]["field"], "value");
    assert_eq!(
        (r.body["accepted"].as_u64(), r.body["rejected"].as_u64()),
        (Some(3), Some(2))
    );

    let usage = &h.tables.usage;
    for sk in hour_day_month() {
        assert_eq!(
            counter(&client, usage, "tokens#key:alice", &sk).await,
            Some(150),
            "{sk}"
        );
        assert_eq!(
            counter(&client, usage, "calls#ip:192.0.2.1", &sk).await,
            Some(1),
            "count meters count events"
        );
    }
    // Nothing for rejected events: no counter, no marker.
    assert_eq!(
        counter(&client, usage, "tokens#key:carol", &today()).await,
        None
    );
    assert_eq!(
        counter(&client, usage, "unknown#key:bob", &today()).await,
        None
    );
    let markers = scan(&client, &h.tables.idempotency).await;
    assert_eq!(markers.len(), 3, "one marker per counted event");

    // The same request again: everything valid is a duplicate, nothing changes.
    let again = ingest.post_events(&body).await;
    assert_eq!(
        statuses(&again.body),
        [
            "duplicate",
            "duplicate",
            "duplicate",
            "rejected",
            "duplicate",
            "rejected"
        ]
    );
    assert_eq!(
        counter(&client, usage, "tokens#key:alice", &today()).await,
        Some(150)
    );
    // All accepted or duplicate: 200.
    let ok = ingest
        .post_events(&array(&[event("e1", "tokens", "key:alice", 100, now())]))
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(statuses(&ok.body), ["duplicate"]);
}

#[tokio::test]
async fn max_meters_keep_the_largest_value() {
    let (h, ingest, _) = setup("max").await;
    let r = ingest
        .post_events(&array(&[
            event("p1", "peak", "key:a", 10, now()),
            event("p2", "peak", "key:a", 30, now()),
            event("p3", "peak", "key:a", 20, now()),
        ]))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let lower = ingest
        .post_events(&array(&[event("p4", "peak", "key:a", 25, now())]))
        .await;
    assert_eq!(statuses(&lower.body), ["accepted"]);
    let c = h.client();
    for sk in hour_day_month() {
        assert_eq!(
            counter(&c, &h.tables.usage, "peak#key:a", &sk).await,
            Some(30)
        );
    }
}

#[tokio::test]
async fn concurrent_overlapping_batches_give_exact_totals() {
    let (h, ingest, _) = setup("concurrent").await;
    // 400 distinct events; task k posts ids k*40 .. k*40+120 (overlapping its neighbours).
    let value_of = |i: usize| (i % 7 + 1) as u64;
    let identity_of = |i: usize| format!("key:c{}", i % 4);
    let mut tasks = Vec::new();
    for k in 0..8usize {
        let ingest = ingest.clone();
        tasks.push(tokio::spawn(async move {
            let ids: Vec<usize> = (k * 40..k * 40 + 120).map(|i| i % 400).collect();
            let body = array(
                &ids.iter()
                    .map(|&i| {
                        event(
                            &format!("ev{i}"),
                            "tokens",
                            &identity_of(i),
                            value_of(i),
                            now(),
                        )
                    })
                    .collect::<Vec<_>>(),
            );
            // A client retries the whole request on 503 (conflicts that persisted).
            for _ in 0..30 {
                let r = ingest.post_events(&body).await;
                if r.status == 200 {
                    return (ids, r.body);
                }
                assert_eq!(r.status, 503, "{}", r.body);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("task {k} never succeeded");
        }));
    }
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut posted = HashSet::new();
    for t in tasks {
        let (ids, body) = t.await.unwrap();
        posted.extend(ids);
        for r in body["results"].as_array().unwrap() {
            if r["status"] == "accepted" {
                *accepted
                    .entry(r["id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
    }
    assert!(
        accepted.values().all(|&n| n == 1),
        "no event accepted twice"
    );
    let c = h.client();
    for who in 0..4 {
        let expected: u64 = posted
            .iter()
            .filter(|&&i| i % 4 == who)
            .map(|&i| value_of(i))
            .sum();
        for sk in hour_day_month() {
            let got = counter(&c, &h.tables.usage, &format!("tokens#key:c{who}"), &sk).await;
            assert_eq!(got, Some(expected), "identity c{who} {sk}");
        }
    }
    assert_eq!(scan(&c, &h.tables.idempotency).await.len(), 400);
}

/// Fails the `n`-th TransactWriteItems of a client: before it is sent
/// (`after_send: false`, nothing written) or after DynamoDB applied it
/// (`after_send: true`, the answer is lost).
#[derive(Debug, Clone)]
struct FailNth {
    n: u32,
    after_send: bool,
    seen: Arc<AtomicU32>,
}

impl FailNth {
    fn check(&self, cfg: &ConfigBag) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_default();
        if op == "TransactWriteItems" && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            return Err("injected failure".into());
        }
        Ok(())
    }
}

impl Intercept for FailNth {
    fn name(&self) -> &'static str {
        "FailNth"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.after_send {
            Ok(())
        } else {
            self.check(cfg)
        }
    }

    fn read_after_transmit(
        &self,
        _: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.after_send {
            self.check(cfg)
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_half_failed_request_retried_whole_counts_each_event_once() {
    for after_send in [false, true] {
        let h = Harness::new("halffail").await;
        define_meters(&h.client(), &h.tables).await;
        // 300 events of 60 identities: several transactions.
        let events: Vec<Value> = (0..300)
            .map(|i| {
                event(
                    &format!("h{i}"),
                    "tokens",
                    &format!("key:u{}", i % 60),
                    2,
                    now(),
                )
            })
            .collect();
        let body = array(&events);
        let failing = local_config(&h.endpoint, "local-a")
            .interceptor(FailNth {
                n: 3,
                after_send,
                seen: Arc::default(),
            })
            .build();
        let (first, _) = ingest_at(Client::from_conf(failing), config(&h.tables, "local-a"));
        let r = first.post_events(&body).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "unavailable");
        let partial = scan(&h.client(), &h.tables.idempotency).await.len();
        assert!(
            partial > 0 && partial < 300,
            "some chunks committed before the failure: {partial}"
        );

        let (retry, _) = ingest_at(h.client(), config(&h.tables, "local-a"));
        let r = retry.post_events(&body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let dups = statuses(&r.body)
            .iter()
            .filter(|s| *s == "duplicate")
            .count();
        assert_eq!(
            dups, partial,
            "the events of committed chunks are duplicates"
        );
        for u in 0..60 {
            let got = counter(
                &h.client(),
                &h.tables.usage,
                &format!("tokens#key:u{u}"),
                &today(),
            )
            .await;
            assert_eq!(got, Some(10), "after_send={after_send} u{u}: 5 events of 2");
        }
    }
}

#[tokio::test]
async fn an_id_counts_again_once_the_dedupe_window_has_passed() {
    let h = Harness::new("window").await;
    define_meters(&h.client(), &h.tables).await;
    let mut cfg = config(&h.tables, "local-a");
    cfg.dedupe_window = Duration::from_secs(2 * 86_400);
    // Markers expire two days after this test's clock, which stands ahead
    // of the wall clock (DynamoDB Local's TTL sweeper deletes by it).
    let t0 = now();
    let clock = ManualClock::new(t0 as u64);
    let ingest = ingest_on(h.client(), cfg, clock.clone());
    let month = label(Window::Month, t0, "local-a");
    let r = ingest
        .post_events(&array(&[event("old", "tokens", "key:w", 5, t0)]))
        .await;
    assert_eq!(statuses(&r.body), ["accepted"]);

    clock.advance(Duration::from_secs(86_400));
    let day1 = t0 + 86_400_000;
    let r = ingest
        .post_events(&array(&[event("old", "tokens", "key:w", 5, day1)]))
        .await;
    assert_eq!(statuses(&r.body), ["duplicate"], "within the window");
    // Its original time is still inside the window: a retry of it is a duplicate too.
    let r = ingest
        .post_events(&array(&[event("old", "tokens", "key:w", 5, t0)]))
        .await;
    assert_eq!(statuses(&r.body), ["duplicate"]);

    clock.advance(Duration::from_secs(86_400 + 600));
    let r = ingest
        .post_events(&array(&[event("old", "tokens", "key:w", 5, t0)]))
        .await;
    assert_eq!(
        r.body["results"][0]["field"], "time",
        "older than the window: rejected"
    );
    let later = t0 + 2 * 86_400_000 + 600_000;
    let r = ingest
        .post_events(&array(&[event("old", "tokens", "key:w", 5, later)]))
        .await;
    assert_eq!(
        statuses(&r.body),
        ["accepted"],
        "the marker expired: the id counts again"
    );
    assert_eq!(
        counter(&h.client(), &h.tables.usage, "tokens#key:w", &month).await,
        Some(10)
    );
}

#[tokio::test]
async fn bad_bodies_get_the_documented_error_and_write_nothing() {
    let (h, ingest, _) = setup("badinput").await;
    let ten_mb = vec![b' '; 10 * 1024 * 1024];
    let many = array(&(0..10_001).map(|i| json!({"id": i})).collect::<Vec<_>>());
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed",
            b"[{\"id\": \"a\",".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "ndjson line",
            b"{\"id\":\"a\"}\n{nope}\n".to_vec(),
            400,
            "malformed_json",
        ),
        ("scalar", b"42".to_vec(), 400, "not_events"),
        ("object of arrays", b"{\"events\": []}".to_vec(), 207, ""),
        ("empty", Vec::new(), 400, "no_events"),
        ("10 MB", ten_mb, 413, "body_too_large"),
        ("10,001 events", many, 413, "too_many_events"),
        (
            "not UTF-8",
            b"[{\"id\":\"\xc3\x28\"}]".to_vec(),
            400,
            "not_utf8",
        ),
    ];
    for (name, body, status, code) in cases {
        let r = ingest.post_events(&body).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        if !code.is_empty() {
            assert_eq!(r.body["error"]["code"], code, "{name}");
        }
    }
    // Wrong types: every event rejected, each naming its field.
    let wrong = ingest
        .post_events(&array(&[
            json!({"id": 1, "meter": "tokens", "identity": "key:a", "time": now()}),
            json!({"id": "a", "meter": ["tokens"], "identity": "key:a", "time": now()}),
            json!({"id": "b", "meter": "tokens", "identity": "key:a", "value": "10", "time": now()}),
            json!({"id": "c", "meter": "tokens", "identity": "key:a", "time": true}),
            json!("not an object"),
        ]))
        .await;
    assert_eq!(wrong.status, 207);
    let fields: Vec<&str> = wrong.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["id", "meter", "value", "time", "event"]);
    let c = h.client();
    assert!(
        scan(&c, &h.tables.idempotency).await.is_empty(),
        "no marker written"
    );
    assert!(
        scan(&c, &h.tables.usage).await.is_empty(),
        "no counter written"
    );
}

#[tokio::test]
async fn an_idempotency_key_replays_the_stored_response() {
    let (h, ingest, _) = setup("idemkey").await;
    let body = array(&[
        event("k1", "tokens", "key:a", 4, now()),
        event("k2", "nope", "key:a", 4, now()),
    ]);
    let first = ingest.post_events_once(&body, "req-1", None.into()).await;
    assert_eq!(first.status, 207);
    assert_eq!(statuses(&first.body), ["accepted", "rejected"]);
    let replay = ingest.post_events_once(&body, "req-1", None.into()).await;
    assert_eq!(
        replay, first,
        "the stored response, not a new run (which would say duplicate)"
    );
    let other = ingest
        .post_events_once(
            &array(&[event("k3", "tokens", "key:a", 4, now())]),
            "req-1",
            None.into(),
        )
        .await;
    assert_eq!(other.status, 422);
    assert_eq!(
        counter(&h.client(), &h.tables.usage, "tokens#key:a", &today()).await,
        Some(4)
    );
    let bad = ingest.post_events_once(&body, "", None.into()).await;
    assert_eq!(bad.status, 400);
}

/// Writes a counter item of `region` into one table, as replication would.
async fn put_counter(
    client: &Client,
    table: &str,
    meter: &str,
    identity: &str,
    period: &str,
    region: &str,
    n: u64,
) {
    let counter = CounterKey {
        meter: MeterName::new(meter).unwrap(),
        identity: identity.parse::<Identity>().unwrap(),
        period: period.parse().unwrap(),
    };
    let agg = if meter == "peak" {
        Aggregation::Max
    } else {
        Aggregation::Sum
    };
    let adds = ItemAdds {
        item: counter.in_region(&Region::new(region).unwrap()),
        aggregation: agg,
        adds: vec![(counter.cell(), n)],
    };
    let write = increment(table, &adds, now(), true).unwrap();
    client
        .transact_write_items()
        .transact_items(write)
        .send()
        .await
        .unwrap();
}

/// Every page of a usage query, following `next`: `(period, total)` pairs.
/// Asserts that no page is longer than its limit or carries region values
/// it was not asked for.
async fn all_pages(sources: &[Source<'_>], pairs: &[(&str, &str)]) -> Vec<(String, u64)> {
    let limit: usize = pairs
        .iter()
        .find(|(k, _)| *k == "limit")
        .map_or(100, |(_, v)| v.parse().unwrap());
    let mut periods = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut pairs = pairs.to_vec();
        if let Some(n) = next.as_deref() {
            pairs.push(("next", n));
        }
        let page = query_usage(sources, &parse_usage_query(params(&pairs), now()).unwrap())
            .await
            .unwrap();
        assert!(page.periods.len() <= limit);
        assert!(page.periods.iter().all(|p| p.regions.is_none()));
        periods.extend(page.periods.into_iter().map(|p| (p.period, p.total)));
        next = page.next;
        if next.is_none() {
            return periods;
        }
    }
}

#[tokio::test]
async fn usage_queries_sum_regions_and_page() {
    let (h, ingest, _) = setup("query").await;
    let c = h.client();
    let t = &h.tables.usage;
    // local-a counted through the handler, local-b's items as quota-sync copies them.
    let r = ingest
        .post_events(&array(&[
            event("q1", "tokens", "key:a", 10, now()),
            event("q2", "tokens", "key:a", 5, now() - 86_400_000),
        ]))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let [d_2, d_1, d0] = [-2, -1, 0].map(day_at);
    let m = this_month();
    put_counter(&c, t, "tokens", "key:a", &d0, "local-b", 7).await;
    put_counter(&c, t, "tokens", "key:a", &d_2, "local-b", 3).await;
    put_counter(&c, t, "tokens", "key:a", &d_1, "eu-west-1", 1).await;
    // Another identity and another window must not leak in.
    put_counter(&c, t, "tokens", "key:b", &d0, "local-b", 100).await;
    put_counter(&c, t, "tokens", "key:a", &m.period, "local-b", 1000).await;

    let store = UsageStore::new(c.clone(), t.clone());
    let q = parse_usage_query(
        params(&[
            ("identity", "key:a"),
            ("meter", "tokens"),
            ("window", "day"),
            ("from", m.first.as_str()),
            ("to", m.last.as_str()),
            ("regions", "true"),
        ]),
        now(),
    )
    .unwrap();
    let local = [Source {
        store: &store,
        region: None,
    }];
    let all = query_usage(&local, &q).await.unwrap();
    let totals: Vec<(&str, u64)> = all
        .periods
        .iter()
        .map(|p| (p.period.as_str(), p.total))
        .collect();
    assert_eq!(totals, [(date(&d_2), 3), (date(&d_1), 6), (date(&d0), 17)]);
    assert_eq!(
        all.periods[2].regions,
        Some(BTreeMap::from([
            ("local-a".into(), 10),
            ("local-b".into(), 7)
        ]))
    );
    assert_eq!(all.next, None);

    // Paged one period at a time: the same periods, each whole.
    let paged = all_pages(
        &local,
        &[
            ("identity", "key:a"),
            ("meter", "tokens"),
            ("from", m.first.as_str()),
            ("to", m.last.as_str()),
            ("limit", "1"),
        ],
    )
    .await;
    let paged: Vec<(&str, u64)> = paged.iter().map(|(p, t)| (p.as_str(), *t)).collect();
    assert_eq!(paged, totals);

    // Days across a month boundary: they live in two month items, one per
    // region each, and a range that ends inside a month leaves its later
    // days out. Every page size gives the same periods, each whole.
    let [last_but_one, last] = &m.before;
    put_counter(&c, t, "tokens", "key:a", last, "local-b", 4).await;
    put_counter(&c, t, "tokens", "key:a", last_but_one, "local-a", 2).await;
    let want = [
        (date(last_but_one).to_owned(), 2),
        (date(last).to_owned(), 4),
        (date(&d_2).to_owned(), 3),
        (date(&d_1).to_owned(), 6),
    ];
    for limit in ["1", "2", "3", "100"] {
        let got = all_pages(
            &local,
            &[
                ("identity", "key:a"),
                ("meter", "tokens"),
                ("from", date(last_but_one)),
                ("to", date(&d_1)),
                ("limit", limit),
            ],
        )
        .await;
        assert_eq!(got, want, "limit {limit}");
    }

    // Through HTTP: the month, summed over regions.
    let req = lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!("https://api.example.com/v1/usage?identity=key:a&meter=tokens&window=month&from={0}&to={0}", m.label))
        .body(lambda_http::Body::Empty)
        .unwrap();
    let req = lambda_http::RequestExt::with_query_string_parameters(
        req,
        HashMap::from([
            ("identity".to_string(), "key:a".to_string()),
            ("meter".into(), "tokens".into()),
            ("window".into(), "month".into()),
            ("from".into(), m.label.clone()),
        ]),
    );
    let resp = ingest.handle(req).await;
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert_eq!(body["periods"][0]["total"], 1015);
}

/// With replication `hot`, other regions' cold counters are not copied
/// here: usage is read from every region's own table, each region's own
/// items only (a stale copy in another table never counts twice).
#[tokio::test]
async fn usage_queries_read_every_regions_own_table() {
    let h = Harness::with_regions("query-regions", &["local-a", "local-b"]).await;
    define_meters(&h.client(), &h.tables).await;
    let (a, b) = (h.client_in("local-a"), h.client_in("local-b"));
    let t = &h.tables.usage;
    let [d_1, d0, d1] = [-1, 0, 1].map(day_at);
    let m = this_month();
    put_counter(&a, t, "tokens", "key:a", &d0, "local-a", 10).await;
    put_counter(&a, t, "tokens", "key:a", &d_1, "local-a", 2).await;
    // local-b's own items, in local-b's table only ...
    put_counter(&b, t, "tokens", "key:a", &d0, "local-b", 7).await;
    put_counter(&b, t, "tokens", "key:a", &d1, "local-b", 4).await;
    // ... and an old copy of local-a's item there, which must not count.
    put_counter(&b, t, "tokens", "key:a", &d0, "local-a", 3).await;
    let (ingest, _) = ingest_at(a.clone(), config(&h.tables, "local-a"));
    let ingest = ingest.reading_regions(vec![
        (
            Region::new("local-a").unwrap(),
            UsageStore::new(a.clone(), t),
        ),
        (
            Region::new("local-b").unwrap(),
            UsageStore::new(b.clone(), t),
        ),
    ]);
    let mut pages = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut uri = format!("https://api.example.com/v1/usage?identity=key:a&meter=tokens&from={}&to={}&regions=true&limit=2", m.first, m.last);
        let mut query = HashMap::from([
            ("identity".to_string(), "key:a".to_string()),
            ("meter".into(), "tokens".into()),
            ("from".into(), m.first.clone()),
            ("to".into(), m.last.clone()),
            ("regions".into(), "true".into()),
            ("limit".into(), "2".into()),
        ]);
        if let Some(n) = &next {
            uri.push_str(&format!("&next={n}"));
            query.insert("next".into(), n.clone());
        }
        let req = lambda_http::http::Request::builder()
            .method("GET")
            .uri(uri)
            .body(lambda_http::Body::Empty)
            .unwrap();
        let req = lambda_http::RequestExt::with_query_string_parameters(req, query);
        let resp = ingest.handle(req).await;
        assert_eq!(resp.status(), 200);
        let body: UsageReport = serde_json::from_slice(resp.body().as_ref()).unwrap();
        assert!(body.periods.len() <= 2);
        pages.extend(body.periods);
        next = body.next;
        if next.is_none() {
            break;
        }
    }
    let got: Vec<(&str, u64)> = pages.iter().map(|p| (p.period.as_str(), p.total)).collect();
    assert_eq!(got, [(date(&d_1), 2), (date(&d0), 17), (date(&d1), 4)]);
    assert_eq!(
        pages[1].regions,
        Some(BTreeMap::from([
            ("local-a".into(), 10),
            ("local-b".into(), 7)
        ]))
    );
}

#[tokio::test]
async fn top_lists_order_by_global_total_with_ties_by_identity() {
    let (h, ingest, _) = setup("top").await;
    let c = h.client();
    let t = &h.tables.usage;
    let m = this_month();
    let month = m.period.as_str();
    // Global totals: a = 60+60 = 120 (first in neither region's list),
    // b = 100, c = 100 (tie: b before c), d = 90, e = 90+0, then 25 small ones.
    for (who, region, n) in [
        ("key:a", "local-a", 60),
        ("key:a", "local-b", 60),
        ("key:b", "local-a", 100),
        ("key:c", "local-b", 100),
        ("key:d", "local-a", 45),
        ("key:d", "local-b", 45),
        ("key:e", "local-b", 90),
    ] {
        put_counter(&c, t, "tokens", who, month, region, n).await;
    }
    for i in 0..25 {
        put_counter(
            &c,
            t,
            "tokens",
            &format!("key:s{i:02}"),
            month,
            if i % 2 == 0 { "local-a" } else { "local-b" },
            1 + i % 3,
        )
        .await;
    }
    let ask = |limit: &str| {
        parse_top_query(params(&[
            ("meter", "tokens"),
            ("window", "month"),
            ("period", m.label.as_str()),
            ("limit", limit),
        ]))
        .unwrap()
    };
    // Off by default: a clear 404, not an empty list.
    let off = ingest.top(&ask("4")).await;
    assert_eq!(off.status, 404, "{}", off.body);
    assert_eq!(off.body["error"]["code"], "top_index_off");

    let mut cfg = config(&h.tables, "local-a");
    cfg.regions.push(Region::new("local-b").unwrap());
    cfg.top_index = true;
    let (two_regions, _) = ingest_at(c.clone(), cfg);
    let r = two_regions.top(&ask("4")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let report: TopReport = serde_json::from_value(r.body).unwrap();
    let got: Vec<(String, u64)> = report
        .top
        .iter()
        .map(|e| (e.identity.clone(), e.total))
        .collect();
    let want = [
        ("key:a", 120),
        ("key:b", 100),
        ("key:c", 100),
        ("key:d", 90),
    ];
    assert_eq!(got, want.map(|(i, n)| (i.to_string(), n)));
    assert_eq!(
        report.top.iter().map(|e| e.rank).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(report.complete);
    // d (90) and e (90) tie at the cut: e is read too, and d sorts first.
    let r5: TopReport = serde_json::from_value(two_regions.top(&ask("5")).await.body).unwrap();
    assert_eq!(r5.top[4].identity, "key:e");
    assert_eq!(r5.top[4].total, 90);
    // The threshold stops early: not all 32 items were read for the top 2.
    let r2: TopReport = serde_json::from_value(two_regions.top(&ask("2")).await.body).unwrap();
    assert_eq!(r2.top.len(), 2);
    assert!(r2.complete);

    // Counted through the handler (with the index on), the index follows every write.
    let r = two_regions
        .post_events(&array(&[event("t1", "tokens", "key:z", 500, now())]))
        .await;
    assert_eq!(r.status, 200);
    let after: TopReport = serde_json::from_value(two_regions.top(&ask("1")).await.body).unwrap();
    assert_eq!(
        (after.top[0].identity.as_str(), after.top[0].total),
        ("key:z", 500)
    );
    assert!(
        after.items_read < 32,
        "read {} index items",
        after.items_read
    );

    // Unknown meter and unindexed window: 400.
    let unknown =
        parse_top_query(params(&[("meter", "nope"), ("period", m.label.as_str())])).unwrap();
    assert_eq!(two_regions.top(&unknown).await.status, 400);
}

/// Records, for each TransactWriteItems sent, its marker puts, its counter
/// updates (and how many of those are day or month counters, which the top
/// index follows) and whether it committed. DynamoDB Local reports a
/// transaction's capacity per table rather than per item, so write units are
/// computed from these counts with DynamoDB's pricing rules.
#[derive(Debug, Clone, Default)]
struct Transactions(Arc<std::sync::Mutex<Vec<Tx>>>);

/// (marker puts, counter updates, indexed updates, committed).
type Tx = (usize, usize, usize, bool);

impl Transactions {
    fn take(&self) -> Vec<Tx> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Transactions {
    fn name(&self) -> &'static str {
        "Transactions"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_default();
        if op != "TransactWriteItems" {
            return Ok(());
        }
        let body: Value = serde_json::from_slice(ctx.request().body().bytes().unwrap_or_default())?;
        let items = body["TransactItems"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let puts = items.iter().filter(|i| i.get("Put").is_some()).count();
        let updates: Vec<&Value> = items.iter().filter_map(|i| i.get("Update")).collect();
        let indexed = updates
            .iter()
            .filter(|u| {
                u["UpdateExpression"]
                    .as_str()
                    .is_some_and(|e| e.contains("#top"))
            })
            .count();
        self.0
            .lock()
            .unwrap()
            .push((puts, updates.len(), indexed, false));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_default();
        if op == "TransactWriteItems" && ctx.response().status().is_success() {
            if let Some(last) = self.0.lock().unwrap().last_mut() {
                last.3 = true;
            }
        }
        Ok(())
    }
}

/// (committed transactions, marker puts, counter updates, indexed updates,
/// cancelled transactions, items in cancelled ones, write units): 2 units per
/// item written in a committed transaction (items under 1 KB), plus up to 2
/// per indexed counter update (the index deletes the old entry and puts the
/// new one when `n` changes).
#[allow(clippy::type_complexity)]
fn write_units(txs: &[Tx]) -> (usize, usize, usize, usize, usize, usize, usize) {
    let ok: Vec<_> = txs.iter().filter(|t| t.3).collect();
    let failed: Vec<_> = txs.iter().filter(|t| !t.3).collect();
    let (m, u, i) = ok
        .iter()
        .fold((0, 0, 0), |a, t| (a.0 + t.0, a.1 + t.1, a.2 + t.2));
    let cancelled_items = failed.iter().map(|t| t.0 + t.1).sum();
    (
        ok.len(),
        m,
        u,
        i,
        failed.len(),
        cancelled_items,
        2 * (m + u) + 2 * i,
    )
}

#[tokio::test]
async fn cost_of_a_1000_event_request_with_10_percent_duplicates() {
    let h = Harness::new("cost").await;
    define_meters(&h.client(), &h.tables).await;
    let txs = Transactions::default();
    let counter = tollgate_store::RequestCounter::with_capacity();
    let conf = local_config(&h.endpoint, "local-a")
        .interceptor(counter.clone())
        .interceptor(txs.clone())
        .build();
    let client = Client::from_conf(conf);
    let (ingest, _) = ingest_at(client, config(&h.tables, "local-a"));
    // 1,000 events of 50 customers over one hour, 100 of them posted before.
    let events: Vec<Value> = (0..1000)
        .map(|i| {
            event(
                &format!("c{i}"),
                "tokens",
                &format!("key:cust{}", i % 50),
                10,
                now() - i as i64 * 1000,
            )
        })
        .collect();
    let r = ingest.post_events(&array(&events[..100])).await;
    assert_eq!(r.status, 200);
    counter.reset();
    txs.take();
    let r = ingest.post_events(&array(&events)).await;
    assert_eq!(r.status, 200);
    let mixed_units = write_units(&txs.take());
    assert_eq!(
        (r.body["accepted"].as_u64(), r.body["duplicates"].as_u64()),
        (Some(900), Some(100))
    );
    let mixed_requests = counter.total_requests();
    let (_, mixed_wcu) = counter.total_units();
    let mixed = counter.snapshot();

    counter.reset();
    let r = ingest.post_events(&array(&events)).await;
    assert_eq!(r.body["duplicates"].as_u64(), Some(1000));
    let dup_requests = counter.total_requests();
    let (_, dup_wcu) = counter.total_units();
    let dup_units = write_units(&txs.take());
    println!("COST units (committed txs, markers, updates, indexed updates, cancelled txs, cancelled items, WCU): mixed {mixed_units:?}, all-duplicate {dup_units:?}");
    println!(
        "COST computed WCU per accepted event: {:.3}; per duplicate (all-duplicate request): {:.3}",
        mixed_units.6 as f64 / 900.0,
        dup_units.6 as f64 / 1000.0
    );
    assert_eq!(mixed_units.1, 900, "one marker per accepted event");
    assert_eq!(dup_units.6, 0, "duplicates write nothing");

    println!("COST mixed 1000 (900 new, 100 dup): {mixed_requests} requests, {mixed_wcu} WCU; by op {mixed:?}");
    println!(
        "COST per accepted event (mixed request / 900): {:.4} requests, {:.3} WCU",
        mixed_requests as f64 / 900.0,
        mixed_wcu / 900.0
    );
    println!(
        "COST all-duplicate 1000: {dup_requests} requests, {dup_wcu} WCU; per duplicate {:.4} requests, {:.3} WCU",
        dup_requests as f64 / 1000.0,
        dup_wcu / 1000.0
    );
    // Aggregation keeps increments far below one per event and window.
    assert!(
        mixed_requests < 100,
        "{mixed_requests} requests for 1,000 events"
    );
}
