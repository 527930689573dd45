//! The real `log-processor` binary under a stand-in of the Lambda Runtime
//! API, against DynamoDB Local: AWS's own sample event, the generated
//! sample events of `events/log-processor/`, and a bad payload.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use serde_json::Value;
use tollgate_tests::runtime_api::invoke_binary;
use tollgate_tests::{Harness, TEST_REGION};

use common::{count_items, usage_items};

fn sample(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/log-processor")
        .join(name);
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn env(h: &Harness) -> Vec<(&str, &str)> {
    vec![
        ("AWS_ENDPOINT_URL_DYNAMODB", h.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_REGION", TEST_REGION),
        ("TOLLGATE_REGION", TEST_REGION),
        ("TOLLGATE_USAGE_TABLE", h.tables.usage.as_str()),
        ("TOLLGATE_IDEMPOTENCY_TABLE", h.tables.idempotency.as_str()),
    ]
}

/// AWS's CloudWatch Logs sample event (identical from `sam local
/// generate-event cloudwatch logs` and the aws_lambda_events fixture): its
/// `[ERROR] ...` lines are skipped, the invocation succeeds, nothing is written.
#[tokio::test]
async fn aws_sample_event_is_skipped_and_succeeds() {
    let h = Harness::new("lp-bin-aws").await;
    let results = invoke_binary(
        env!("CARGO_BIN_EXE_log-processor"),
        &env(&h),
        &[sample("aws-sample-cloudwatch-logs.json")],
    );
    assert_eq!(results.len(), 1);
    let summary = results[0].as_ref().unwrap();
    assert_eq!(summary["events"], 2);
    assert_eq!(summary["skipped"], 2);
    assert_eq!(summary["counted"], 0);
    assert_eq!(count_items(&h.client(), &h.tables.usage).await, 0);
}

/// The generated samples, each delivered twice, through the binary: exact
/// counts; a bad payload fails the invocation with a clear error.
///
/// The samples are fixed files (`tollgate-dev gen-events`, for `sam local
/// invoke -e`), timed 2026-11-18: this test keeps their dates because what
/// it writes never expires by them (the binary counts days and months,
/// whose items carry no TTL, and its markers' TTL follows the wall clock).
#[tokio::test]
async fn generated_samples_count_once_through_the_binary() {
    let h = Harness::new("lp-bin-gen").await;
    let access = sample("direct-access-logs.json");
    let app = sample("direct-app-lines.json");
    let kinesis = sample("kinesis.json");
    let bad = serde_json::json!({"awslogs": {"data": "bm90IGd6aXA="}});
    let results = invoke_binary(
        env!("CARGO_BIN_EXE_log-processor"),
        &env(&h),
        &[
            access.clone(),
            app.clone(),
            sample("direct-control-message.json"),
            access,
            app,
            bad,
            kinesis.clone(),
        ],
    );
    assert_eq!(results.len(), 7);
    let first = results[0].as_ref().unwrap();
    assert_eq!(first["counted"], 4);
    assert_eq!(first["not_counted_status"], 1);
    assert_eq!(first["denied"], 1);
    assert_eq!(results[1].as_ref().unwrap()["skipped"], 1);
    assert_eq!(results[2].as_ref().unwrap()["control_messages"], 1);
    // Two chunks: the API keys' and the anonymous identities' (apart, so
    // that anonymous traffic cannot fail a key's count).
    assert_eq!(results[0].as_ref().unwrap()["new_chunks"], 2);
    assert_eq!(results[3].as_ref().unwrap()["duplicate_chunks"], 2);
    assert_eq!(results[3].as_ref().unwrap()["new_chunks"], 0);
    // Not gzip: quarantined (acknowledged, counted as rejected), not retried.
    assert_eq!(results[5].as_ref().unwrap()["rejected"], 1);
    // The Kinesis records carry the same lines from another source: counted once more.
    assert_eq!(
        results[6].as_ref().unwrap()["batchItemFailures"],
        serde_json::json!([])
    );
    let got = usage_items(&h.client(), &h.tables.usage).await;
    let get = |pk: &str, sk: &str| {
        got.get(&(pk.to_owned(), format!("{sk}#{TEST_REGION}")))
            .copied()
    };
    // 3 access-log requests + 1 app line request, twice (direct, then Kinesis).
    assert_eq!(get("requests#key:k_demo", "day#2026-11-18"), Some(8));
    assert_eq!(get("requests#key:k_demo", "month#2026-11"), Some(8));
    assert_eq!(get("requests#ip:203.0.113.7", "day#2026-11-18"), Some(2));
    assert_eq!(get("tokens#key:k_demo", "month#2026-11"), Some(2500));
    assert_eq!(get("requests#key:k_blocked", "day#2026-11-18"), None);
}
