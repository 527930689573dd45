//! CloudEvents through the handler on DynamoDB Local: each HTTP mode
//! counted once by `source` + `id`, a retried batch answered as duplicates,
//! bad CloudEvents refused whole (nothing written), the batch limit, and
//! what each call costs (requests and capacity units, counted).
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_dynamodb::Client;
use chrono::{SecondsFormat, TimeZone, Utc};
use serde_json::{json, Map, Value};
use tollgate_core::{Aggregation, MeterDef, MeterName, ValuePath, Window};
use tollgate_idempotency::ManualClock;
use tollgate_store::{KeysStore, RequestCounter};
use tollgate_tests::Harness;

use common::{config, counter, define_meters, scan};
use ingest::{EventsRequest, Ingest};

const KEY: &str = "k_0123456789abcdef";

struct Setup {
    h: Harness,
    ingest: Ingest,
    counted: RequestCounter,
    client: Client,
    now: i64,
}

/// Meters `tokens` (sum, $.value), `calls` (count), `peak` (max) and
/// `llm_tokens` (sum at $.usage.total_tokens); an `Ingest` on a counted
/// client whose clock stands at the wall clock's now.
async fn setup(label: &str) -> Setup {
    let h = Harness::new(label).await;
    let client = h.client();
    define_meters(&client, &h.tables).await;
    KeysStore::new(client.clone(), h.tables.keys.clone())
        .put_meter(&MeterDef {
            name: MeterName::new("llm_tokens").unwrap(),
            aggregation: Aggregation::Sum,
            unit: "tokens".into(),
            value_path: Some(ValuePath::parse("$.usage.total_tokens").unwrap()),
        })
        .await
        .unwrap();
    let (counted_client, counted) = h.counted_client(true);
    let now = Utc::now().timestamp_millis();
    let ingest = common::ingest_on(
        counted_client,
        config(&h.tables, "local-a"),
        ManualClock::new(now as u64),
    );
    Setup {
        h,
        ingest,
        counted,
        client,
        now,
    }
}

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ce(id: &str, meter: &str, data: Value, time: i64) -> Value {
    json!({"specversion":"1.0","id":id,"source":"backend-1","type":meter,
        "subject":KEY,"time":rfc3339(time),"data":data})
}

fn request<'a>(content_type: &str, body: &'a [u8]) -> EventsRequest<'a> {
    EventsRequest {
        body,
        content_type: Some(content_type.to_owned()),
        ..Default::default()
    }
}

impl Setup {
    /// The counter of `meter` for KEY in the month of `now`, in local-a.
    async fn month(&self, meter: &str) -> Option<u64> {
        let period = Window::Month.period_of(self.now).unwrap();
        counter(
            &self.client,
            &self.h.tables.usage,
            &format!("{meter}#key:{KEY}"),
            &format!("{period}#local-a"),
        )
        .await
    }

    /// Requests and (read, write) capacity units since the last call.
    fn cost(&self) -> (u64, f64, f64) {
        let r = self.counted.total_requests();
        let (rcu, wcu) = self.counted.total_units();
        self.counted.reset();
        (r, rcu, wcu)
    }
}

#[tokio::test]
async fn each_mode_counts_once_and_a_retried_batch_is_duplicate() {
    let s = setup("ce-modes").await;
    let t = s.now - 60_000;

    // Structured: one event, 204 and the counts in headers.
    let body = serde_json::to_vec(&ce(
        "s1",
        "llm_tokens",
        json!({"usage":{"total_tokens":100}}),
        t,
    ))
    .unwrap();
    let r = s
        .ingest
        .post(&request(
            "application/cloudevents+json; charset=utf-8",
            &body,
        ))
        .await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64()),
        (204, Some(1)),
        "{}",
        r.body
    );
    let http = r.clone().into_http();
    assert_eq!(http.headers()["tollgate-accepted"], "1");
    assert_eq!(http.headers()["tollgate-duplicates"], "0");
    assert!(matches!(http.body(), lambda_http::Body::Empty));
    println!(
        "COST structured, 1 new event: {:?} (requests, RCU, WCU)",
        s.cost()
    );
    assert_eq!(s.month("llm_tokens").await, Some(100));

    // Batch: three events (two meters), then the same bytes again.
    let batch = serde_json::to_vec(&json!([
        ce("b1", "llm_tokens", json!({"usage":{"total_tokens":10}}), t),
        ce("b2", "llm_tokens", json!({"usage":{"total_tokens":20}}), t),
        ce("b3", "calls", Value::Null, t),
    ]))
    .unwrap();
    let batch_req = request("application/cloudevents-batch+json", &batch);
    let r = s.ingest.post(&batch_req).await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64()),
        (204, Some(3)),
        "{}",
        r.body
    );
    println!("COST batch, 3 new events: {:?}", s.cost());
    let r = s.ingest.post(&batch_req).await;
    assert_eq!(
        (
            r.status,
            r.body["accepted"].as_u64(),
            r.body["duplicates"].as_u64()
        ),
        (204, Some(0), Some(3)),
        "{}",
        r.body
    );
    println!("COST batch retried, 3 duplicates: {:?}", s.cost());
    let again = EventsRequest {
        representation: true,
        ..batch_req.clone()
    };
    let r = s.ingest.post(&again).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["results"],
        json!([
            {"index":0,"source":"backend-1","id":"b1","status":"duplicate"},
            {"index":1,"source":"backend-1","id":"b2","status":"duplicate"},
            {"index":2,"source":"backend-1","id":"b3","status":"duplicate"},
        ])
    );
    s.cost();
    assert_eq!(
        s.month("llm_tokens").await,
        Some(130),
        "the retries counted nothing"
    );
    assert_eq!(s.month("calls").await, Some(1));

    // The same id from another source is another event.
    let other = serde_json::to_vec(&json!({"specversion":"1.0","id":"b1","source":"backend-2",
        "type":"llm_tokens","subject":format!("key:{KEY}"),"time":rfc3339(t),"data":{"usage":{"total_tokens":5}}}))
    .unwrap();
    let r = s
        .ingest
        .post(&request("application/cloudevents+json", &other))
        .await;
    assert_eq!(r.body["accepted"].as_u64(), Some(1), "{}", r.body);

    // Binary: ce-* attributes, the data as the body.
    let attributes: Map<String, Value> = [
        ("specversion", "1.0"),
        ("id", "bin-1"),
        ("source", "backend-1"),
        ("type", "llm_tokens"),
        ("subject", KEY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
    .collect();
    let data = br#"{"usage":{"total_tokens":1000}}"#;
    let binary = EventsRequest {
        body: data,
        content_type: Some("application/json".into()),
        ce_attributes: attributes.clone(),
        representation: false,
    };
    let r = s.ingest.post(&binary).await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64()),
        (204, Some(1)),
        "{}",
        r.body
    );
    assert_eq!(
        s.ingest.post(&binary).await.body["duplicates"].as_u64(),
        Some(1)
    );
    // Binary without time: counted at the time of receipt (this month).
    assert_eq!(s.month("llm_tokens").await, Some(1135));

    // OpenMeter's plain JSON: one CloudEvent, or an array of them.
    let one = serde_json::to_vec(&ce("p1", "tokens", json!({"value": 7}), t)).unwrap();
    let r = s.ingest.post_events(&one).await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64()),
        (204, Some(1)),
        "{}",
        r.body
    );
    let many = serde_json::to_vec(&json!([
        ce("p1", "tokens", json!({"value": 7}), t),
        ce("p2", "tokens", json!({"value": "8"}), t)
    ]))
    .unwrap();
    let r = s.ingest.post(&request("application/json", &many)).await;
    assert_eq!(
        (
            r.status,
            r.body["accepted"].as_u64(),
            r.body["duplicates"].as_u64()
        ),
        (204, Some(1), Some(1))
    );
    assert_eq!(s.month("tokens").await, Some(15));

    // tollgate's own format still answers as before.
    let native = common::array(&[common::event("n1", "tokens", &format!("key:{KEY}"), 5, t)]);
    let r = s.ingest.post_events(&native).await;
    assert_eq!((r.status, r.body["accepted"].as_u64()), (200, Some(1)));
    assert_eq!(s.month("tokens").await, Some(20));
}

#[tokio::test]
async fn bad_cloudevents_are_refused_whole_and_change_nothing() {
    let s = setup("ce-bad").await;
    let t = s.now - 60_000;
    let good = ce("g1", "llm_tokens", json!({"usage":{"total_tokens":10}}), t);
    let with = |k: &str, v: Value| {
        let mut e = good.clone();
        if v.is_null() {
            e.as_object_mut().unwrap().remove(k);
        } else {
            e[k] = v;
        }
        e
    };
    let cases = [
        (
            with("specversion", Value::Null),
            "missing_attribute",
            "specversion",
        ),
        (with("id", Value::Null), "missing_attribute", "id"),
        (with("source", Value::Null), "missing_attribute", "source"),
        (with("type", Value::Null), "missing_attribute", "type"),
        (
            with("specversion", json!("0.3")),
            "unsupported_specversion",
            "specversion",
        ),
        (with("type", json!("nope")), "unknown_meter", "type"),
        (
            with("data", json!({"tokens": 1})),
            "invalid_attribute",
            "data",
        ),
        (
            with("data", json!({"usage":{"total_tokens": -1}})),
            "invalid_attribute",
            "data",
        ),
        (
            with("time", json!("2020-01-01T00:00:00Z")),
            "invalid_attribute",
            "time",
        ),
        (
            with("subject", json!("user:x")),
            "invalid_attribute",
            "subject",
        ),
    ];
    for (bad, code, attribute) in cases {
        let body = serde_json::to_vec(&json!([good.clone(), bad])).unwrap();
        let r = s
            .ingest
            .post(&request("application/cloudevents-batch+json", &body))
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["error"]["code"], code, "{}", r.body);
        assert_eq!(r.body["error"]["events"][0]["attribute"], attribute);
        assert_eq!(r.body["error"]["events"][0]["index"], 1);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("CloudEvent 1"), "{message}");
        assert!(message.contains("nothing was counted"), "{message}");
    }
    // The body's shape for its media type.
    let r = s
        .ingest
        .post(&request("application/cloudevents+json", b"[1]"))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("not_cloudevents"))
    );
    let r = s
        .ingest
        .post(&request("application/cloudevents-batch+json", b"{}"))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("not_cloudevents"))
    );
    let r = s
        .ingest
        .post(&request("application/cloudevents+json", b"{"))
        .await;
    assert_eq!(r.body["error"]["code"], "malformed_json");
    // An empty batch is valid CloudEvents and counts nothing.
    let r = s
        .ingest
        .post(&request("application/cloudevents-batch+json", b"[]"))
        .await;
    assert_eq!((r.status, r.body["accepted"].as_u64()), (204, Some(0)));
    // Binary mode without ce-specversion.
    let binary = EventsRequest {
        body: br#"{"usage":{"total_tokens":1}}"#,
        content_type: Some("application/json".into()),
        ce_attributes: [
            ("id".to_owned(), json!("x")),
            ("source".to_owned(), json!("s")),
        ]
        .into_iter()
        .collect(),
        representation: false,
    };
    let r = s.ingest.post(&binary).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("missing_attribute"))
    );
    // Nothing was written to the Usage table nor as a marker.
    assert!(scan(&s.client, &s.h.tables.usage).await.is_empty());
    assert!(scan(&s.client, &s.h.tables.idempotency).await.is_empty());
    // The good event alone is counted.
    let body = serde_json::to_vec(&json!([good])).unwrap();
    let r = s
        .ingest
        .post(&request("application/cloudevents-batch+json", &body))
        .await;
    assert_eq!((r.status, r.body["accepted"].as_u64()), (204, Some(1)));
    assert_eq!(s.month("llm_tokens").await, Some(10));
}

#[tokio::test]
async fn a_batch_at_the_event_limit_and_one_over() {
    let s = setup("ce-limit").await;
    let t = s.now - 60_000;
    let limit = s.ingest.config().max_events;
    let events: Vec<Value> = (0..limit)
        .map(|i| {
            ce(
                &format!("e{i}"),
                "llm_tokens",
                json!({"usage":{"total_tokens":2}}),
                t,
            )
        })
        .collect();
    let body = serde_json::to_vec(&events).unwrap();
    let req = request("application/cloudevents-batch+json", &body);
    let r = s.ingest.post(&req).await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64()),
        (204, Some(limit as u64)),
        "{}",
        r.body
    );
    let first = s.cost();
    let r = s.ingest.post(&req).await;
    assert_eq!(r.body["duplicates"].as_u64(), Some(limit as u64));
    let retry = s.cost();
    println!(
        "COST batch of {limit} new events: {first:?} (requests, RCU, WCU); retried: {retry:?}"
    );
    assert_eq!(s.month("llm_tokens").await, Some(2 * limit as u64));
    // The retry's transactions are cancelled by the markers' conditions
    // (DynamoDB Local still reports their capacity): no more requests than
    // the first time, and no counter moved.
    assert!(retry.0 <= first.0, "{retry:?} vs {first:?}");

    let mut over = events;
    over.push(ce(
        "one-more",
        "llm_tokens",
        json!({"usage":{"total_tokens":2}}),
        t,
    ));
    let body = serde_json::to_vec(&over).unwrap();
    let r = s
        .ingest
        .post(&request("application/cloudevents-batch+json", &body))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (413, Some("too_many_events"))
    );
}

#[tokio::test]
async fn an_idempotency_key_covers_the_ce_headers() {
    let s = setup("ce-idem").await;
    let data = br#"{"usage":{"total_tokens":3}}"#;
    let attrs = |id: &str| -> Map<String, Value> {
        [
            ("specversion", "1.0"),
            ("id", id),
            ("source", "s"),
            ("type", "llm_tokens"),
            ("subject", KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect()
    };
    let req = |id: &str| EventsRequest {
        body: data,
        content_type: Some("application/json".into()),
        ce_attributes: attrs(id),
        representation: false,
    };
    let a = req("a");
    let r = s.ingest.post_once(&a, "k-1", None.into()).await;
    assert_eq!((r.status, r.body["accepted"].as_u64()), (204, Some(1)));
    assert_eq!(
        s.ingest.post_once(&a, "k-1", None.into()).await,
        r,
        "the stored answer"
    );
    // Same body, other ce-id: another request, so a reused key is a 422.
    let r = s.ingest.post_once(&req("b"), "k-1", None.into()).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(s.month("llm_tokens").await, Some(3));
}
