//! Poison input is quarantined, not retried (issue 16 item 3), and payloads
//! from log groups or accounts that are not configured are dropped
//! (issue 17 item 7), against DynamoDB Local: mixed with good records in one
//! Kinesis batch and with good direct deliveries, the good ones count once,
//! each poison one is logged with its id and reason as one structured line
//! and counted as rejected, and nothing is reported for retry.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tollgate_core::Window;
use tollgate_tests::cloudwatch::{
    base64, control_json, direct_event, gzip, kinesis_event, payload_json, Event,
};
use tollgate_tests::Harness;

use common::{config, count_items, label, start, usage_items};

const GROUP: &str = "/aws/apigateway/tollgate-access";
const ACCOUNT: &str = "123456789012";

/// The log lines written while `f` runs, one JSON object each.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// The quarantine lines' fields.
    fn quarantined(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["fields"]["quarantine"] == json!(true))
            .map(|l| l["fields"].clone())
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn lines(ids: &[&str], identity: &str) -> Vec<Event> {
    ids.iter()
        .map(|id| Event {
            id: (*id).into(),
            timestamp: start(),
            message: format!(r#"{{"tollgate":1,"identity":"{identity}"}}"#),
        })
        .collect()
}

fn payload_from(group: &str, owner: &str, events: &[Event]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": group,
        "logStream": "s",
        "subscriptionFilters": ["tollgate-usage"],
        "logEvents": events,
    }))
    .unwrap()
}

/// Poison payload bytes (already gzipped where gzip is the point), each
/// with the reason it must be quarantined for. A secret-looking key in a
/// payload never reaches the log.
fn poison() -> Vec<(Vec<u8>, &'static str)> {
    let mut too_large = Vec::new();
    too_large.resize((16 << 20) + 1, b' ');
    let good = gzip(&payload_json(GROUP, "s", &lines(&["x"], "key:a")));
    vec![
        (b"Hello World".to_vec(), "not_gzip"),
        (good[..good.len() - 9].to_vec(), "corrupt_gzip"),
        (gzip(&too_large), "too_large"),
        (gzip(b"[1,2,3]"), "not_cloudwatch_logs"),
        (
            gzip(br#"{"messageType":"DATA_MESSAGE","logGroup":"tg_live_0123456789abcdef0123456789abcdef","logStream":1}"#),
            "not_cloudwatch_logs",
        ),
        (
            gzip(br#"{"messageType":"SURPRISE","logGroup":"g","logStream":"s"}"#),
            "not_cloudwatch_logs",
        ),
        (
            gzip(&payload_from("/aws/lambda/other", ACCOUNT, &lines(&["o1", "o2"], "key:a"))),
            "log_group_not_allowed",
        ),
        (
            gzip(&payload_from(GROUP, "210987654321", &lines(&["w1"], "key:a"))),
            "owner_not_allowed",
        ),
    ]
}

fn restricted(h: &Harness, dedupe: &str) -> log_processor::Config {
    config(
        h,
        &[
            ("TOLLGATE_LOG_GROUPS", GROUP),
            ("TOLLGATE_ACCOUNT_ID", ACCOUNT),
            ("TOLLGATE_KINESIS_DEDUPE", dedupe),
        ],
    )
}

/// AWS's own sample Kinesis event (two "Hello World" records, not
/// CloudWatch Logs payloads): acknowledged, nothing retried, nothing written.
#[tokio::test(flavor = "current_thread")]
async fn the_aws_sample_kinesis_event_is_quarantined() {
    let h = Harness::new("lp-poison-aws").await;
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../events/log-processor/aws-sample-kinesis.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for dedupe in ["watermark", "transaction"] {
        let processor = common::processor(
            h.client(),
            config(&h, &[("TOLLGATE_KINESIS_DEDUPE", dedupe)]),
        );
        let logs = Captured::default();
        let guard = logs.start();
        let resp = processor.handle(event.clone()).await.unwrap();
        let (_, summary) = processor
            .handle_kinesis_records(event["Records"].as_array().unwrap())
            .await;
        drop(guard);
        assert_eq!(resp["batchItemFailures"], json!([]), "{dedupe}");
        assert_eq!(summary.rejected, 2);
        assert_eq!(summary.payloads, 0);
        let q = logs.quarantined();
        assert_eq!(q.len(), 4, "two records, twice: {q:?}");
        assert_eq!(
            q[0]["sequence_number"],
            "49568167373333333333333333333333333333333333333333333333"
        );
        assert_eq!(
            q[1]["sequence_number"],
            "49568167373333333334444444444444444444444444444444444444"
        );
        assert!(q
            .iter()
            .all(|l| l["reason"] == "not_gzip" && l["source"] == "kinesis"));
    }
    assert_eq!(count_items(&h.client(), &h.tables.usage).await, 0);
    assert_eq!(count_items(&h.client(), &h.tables.idempotency).await, 0);
}

/// One Kinesis batch: good records, every kind of poison record (one whose
/// data is not even base64), a control message. Delivered twice (a
/// redelivery): the good lines count once, every poison record is logged
/// by its sequence number and counted as rejected, none is reported failed.
#[tokio::test(flavor = "current_thread")]
async fn poison_records_in_a_kinesis_batch_are_quarantined() {
    for (name, dedupe) in [
        ("lp-poison-kw", "watermark"),
        ("lp-poison-kt", "transaction"),
    ] {
        let h = Harness::new(name).await;
        let processor = common::processor(h.client(), restricted(&h, dedupe));
        let poison = poison();
        let mut records = vec![gzip(&payload_json(
            GROUP,
            "s",
            &lines(&["1", "2"], "key:a"),
        ))];
        records.extend(poison.iter().map(|(bytes, _)| bytes.clone()));
        records.push(gzip(&control_json()));
        records.push(gzip(&payload_json(
            GROUP,
            "s",
            &lines(&["3", "4", "5"], "key:a"),
        )));
        let mut event = kinesis_event(&records, 7_000);
        // One more record whose data is not base64, at the end.
        let mut bad = event["Records"][0].clone();
        let seq = format!("{:056}", 7_000 + records.len());
        bad["kinesis"]["data"] = json!("%%% not base64 %%%");
        bad["kinesis"]["sequenceNumber"] = json!(seq);
        bad["eventID"] = json!(format!("shardId-000000000000:{seq}"));
        event["Records"].as_array_mut().unwrap().push(bad);

        for delivery in 0..2 {
            let logs = Captured::default();
            let guard = logs.start();
            let (resp, summary) = processor
                .handle_kinesis_records(event["Records"].as_array().unwrap())
                .await;
            let raw = processor.handle(event.clone()).await.unwrap();
            drop(guard);
            assert!(resp.batch_item_failures.is_empty(), "{dedupe}: {resp:?}");
            assert_eq!(raw["batchItemFailures"], json!([]));
            assert_eq!(summary.rejected, poison.len() as u64 + 1, "{dedupe}");
            assert_eq!(summary.payloads, 2);
            assert_eq!(summary.control_messages, 1);
            if delivery == 0 {
                assert_eq!(summary.tally.counted, 5);
            }
            let q = logs.quarantined();
            assert_eq!(q.len(), 2 * (poison.len() + 1));
            // The record that is not base64 is read (and quarantined) first.
            assert_eq!(q[0]["reason"], "not_base64");
            assert_eq!(q[0]["sequence_number"], seq);
            for (i, (_, reason)) in poison.iter().enumerate() {
                assert_eq!(q[i + 1]["reason"], *reason, "record {}", i + 1);
                assert_eq!(q[i + 1]["sequence_number"], format!("{:056}", 7_001 + i));
                assert_eq!(q[i + 1]["source"], "kinesis");
            }
            assert!(!logs.text().contains("tg_live"), "no secret in a log line");
        }
        let got = usage_items(&h.client(), &h.tables.usage).await;
        let day = |pk: &str| {
            got.get(&(pk.to_owned(), label(Window::Day, start())))
                .copied()
        };
        assert_eq!(day("requests#key:a"), Some(5), "{dedupe}: {got:?}");
        assert_eq!(got.len(), 2, "day and month of key:a only: {got:?}");
    }
}

/// Direct deliveries: good ones and poison ones (each kind, plus a
/// malformed `awslogs` event), each delivered twice. The good ones count
/// once; each poison one answers a summary with `rejected: 1` (no error, so
/// Lambda does not retry it) and is logged with its id.
#[tokio::test(flavor = "current_thread")]
async fn poison_direct_deliveries_are_quarantined() {
    let h = Harness::new("lp-poison-direct").await;
    let processor = common::processor(h.client(), restricted(&h, "watermark"));
    let good_a = direct_event(&payload_json(GROUP, "s", &lines(&["1", "2"], "key:a")));
    let good_b = direct_event(&payload_json(GROUP, "t", &lines(&["3"], "key:a")));
    let mut deliveries: Vec<(Value, Option<&str>)> = vec![(good_a, None)];
    deliveries.push((
        json!({"awslogs": {"data": "%%% not base64 %%%"}}),
        Some("not_base64"),
    ));
    deliveries.push((json!({"awslogs": {"data": 42}}), Some("malformed_event")));
    for (bytes, reason) in poison() {
        deliveries.push((json!({"awslogs": {"data": base64(&bytes)}}), Some(reason)));
    }
    deliveries.push((direct_event(&control_json()), None));
    deliveries.push((good_b, None));
    for _ in 0..2 {
        for (event, reason) in &deliveries {
            let logs = Captured::default();
            let guard = logs.start();
            let summary = processor.handle(event.clone()).await.unwrap();
            drop(guard);
            let q = logs.quarantined();
            match reason {
                None => {
                    assert_eq!(summary["rejected"], 0, "{summary}");
                    assert!(q.is_empty());
                }
                Some(reason) => {
                    assert_eq!(summary["rejected"], 1, "{reason}: {summary}");
                    assert_eq!(summary["payloads"], 0);
                    assert_eq!(q.len(), 1, "{reason}");
                    assert_eq!(q[0]["reason"], *reason);
                    assert_eq!(q[0]["source"], "direct");
                    if *reason != "malformed_event" {
                        let data = event["awslogs"]["data"].as_str().unwrap();
                        assert_eq!(q[0]["data_len"], data.len());
                        assert_eq!(q[0]["data_sha256"].as_str().unwrap().len(), 16);
                    }
                    if reason.ends_with("_not_allowed") {
                        assert_eq!(q[0]["log_stream"], "s");
                        assert!(["o1", "w1"].contains(&q[0]["first_event_id"].as_str().unwrap()));
                    }
                    assert!(!logs.text().contains("tg_live"));
                }
            }
        }
    }
    let got = usage_items(&h.client(), &h.tables.usage).await;
    assert_eq!(
        got.get(&("requests#key:a".to_owned(), label(Window::Day, start()))),
        Some(&3),
        "{got:?}"
    );
    assert_eq!(got.len(), 2, "{got:?}");
}

/// A payload from a log group that is not configured counts nothing, in
/// either path, and neither does one from another account.
#[tokio::test(flavor = "current_thread")]
async fn a_payload_from_an_unconfigured_log_group_counts_nothing() {
    let h = Harness::new("lp-foreign-group").await;
    let processor = common::processor(h.client(), restricted(&h, "watermark"));
    let foreign = payload_from(
        "/aws/lambda/anything",
        ACCOUNT,
        &lines(&["1", "2"], "key:victim"),
    );
    let other_account = payload_from(GROUP, "999999999999", &lines(&["3"], "key:victim"));
    for payload in [&foreign, &other_account] {
        let summary = processor.handle(direct_event(payload)).await.unwrap();
        assert_eq!(summary["rejected"], 1);
        assert_eq!(summary["counted"], 0);
        let resp = processor
            .handle(kinesis_event(&[gzip(payload)], 100))
            .await
            .unwrap();
        assert_eq!(resp["batchItemFailures"], json!([]));
    }
    assert_eq!(count_items(&h.client(), &h.tables.usage).await, 0);
    assert_eq!(count_items(&h.client(), &h.tables.idempotency).await, 0);
    // The same payload is counted once its log group is configured.
    let open = common::processor(h.client(), config(&h, &[]));
    let summary = open.handle(direct_event(&foreign)).await.unwrap();
    assert_eq!(summary["counted"], 2);
    assert_eq!(count_items(&h.client(), &h.tables.usage).await, 1);
}
