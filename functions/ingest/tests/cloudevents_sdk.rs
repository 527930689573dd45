//! A real CloudEvents client against the real `ingest` binary: the
//! CloudEvents Python SDK (PyPI `cloudevents`, in .local/venv by
//! scripts/tools.sh) builds structured, batch and binary requests
//! (scripts/cloudevents-requests.py prints their headers and bodies), and
//! those bytes reach the binary as API Gateway HTTP API events under the
//! Runtime API stand-in, the batch twice: the retry is answered as
//! duplicates and counts nothing.
#![allow(clippy::unwrap_used)]

mod common;

use serde_json::{json, Value};
use tollgate_core::{Aggregation, MeterDef, MeterName, ValuePath, Window};
use tollgate_store::KeysStore;
use tollgate_tests::runtime_api::invoke_binary;
use tollgate_tests::Harness;

const KEY: &str = "k_00000000000000aa";

/// The requests the SDK builds, by name (`structured`, `batch`, `binary`).
fn sdk_requests() -> Value {
    let root = format!("{}/../..", env!("CARGO_MANIFEST_DIR"));
    let python = format!("{root}/.local/venv/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run scripts/tools.sh, which installs the CloudEvents Python SDK into .local/venv"
    );
    let out = std::process::Command::new(&python)
        .arg(format!("{root}/scripts/cloudevents-requests.py"))
        .args(["--source", "tollgate-test/backend", "--subject", KEY])
        .args(["--sum-meter", "llm_tokens", "--count-meter", "calls"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/cloudevents-requests.py failed (is the CloudEvents SDK installed? run scripts/tools.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An API Gateway HTTP API (payload 2.0) `POST /v1/events` event carrying
/// a request's headers and body, shaped like events/ingest/post-events.json.
fn http_event(request: &Value, extra_headers: &[(&str, &str)]) -> Value {
    let path = format!(
        "{}/../../events/ingest/post-events.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut headers = request["headers"].clone();
    for (k, v) in extra_headers {
        headers[*k] = json!(v);
    }
    event["headers"] = headers;
    event["body"] = request["body"].clone();
    event["isBase64Encoded"] = json!(false);
    event
}

/// Status, headers and JSON body (null when there is none) of a response.
fn answer(result: &Result<Value, Value>) -> (u64, Value, Value) {
    let r = result
        .as_ref()
        .unwrap_or_else(|e| panic!("the function failed: {e}"));
    let body = match r["body"].as_str() {
        Some(b) if !b.is_empty() => serde_json::from_str(b).unwrap(),
        _ => Value::Null,
    };
    (
        r["statusCode"].as_u64().unwrap(),
        r["headers"].clone(),
        body,
    )
}

#[tokio::test]
async fn sdk_requests_reach_the_binary_and_a_retried_batch_is_duplicate() {
    let h = Harness::new("ce-sdk").await;
    let client = h.client();
    common::define_meters(&client, &h.tables).await;
    KeysStore::new(client.clone(), h.tables.keys.clone())
        .put_meter(&MeterDef {
            name: MeterName::new("llm_tokens").unwrap(),
            aggregation: Aggregation::Sum,
            unit: "tokens".into(),
            value_path: Some(ValuePath::parse("$.usage.total_tokens").unwrap()),
        })
        .await
        .unwrap();
    let sdk = sdk_requests();
    assert_eq!(
        sdk["structured"]["headers"]["content-type"],
        "application/cloudevents+json"
    );
    assert_eq!(sdk["binary"]["headers"]["ce-specversion"], "1.0");
    // The SDK's own time (the wall clock) decides the period counted.
    let structured: Value =
        serde_json::from_str(sdk["structured"]["body"].as_str().unwrap()).unwrap();
    let time = chrono::DateTime::parse_from_rfc3339(structured["time"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();

    let events = [
        http_event(&sdk["structured"], &[]),
        http_event(&sdk["batch"], &[]),
        http_event(&sdk["batch"], &[]),
        http_event(&sdk["batch"], &[("prefer", "return=representation")]),
        http_event(&sdk["binary"], &[]),
    ];
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", h.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "local".into()),
        ("AWS_SECRET_ACCESS_KEY", "local".into()),
        ("AWS_REGION", "local-a".into()),
        ("TOLLGATE_REGION", "local-a".into()),
        ("TOLLGATE_KEYS_TABLE", h.tables.keys.clone()),
        ("TOLLGATE_USAGE_TABLE", h.tables.usage.clone()),
        ("TOLLGATE_IDEMPOTENCY_TABLE", h.tables.idempotency.clone()),
    ];
    let binary = env!("CARGO_BIN_EXE_ingest");
    let results = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        invoke_binary(binary, &env, &events)
    })
    .await
    .unwrap();
    assert_eq!(results.len(), 5);

    let expect = [("1", "0"), ("3", "0"), ("0", "3")];
    for (i, (accepted, duplicates)) in expect.iter().enumerate() {
        let (status, headers, body) = answer(&results[i]);
        assert_eq!(status, 204, "request {i}: {body}");
        assert_eq!(body, Value::Null, "a 204 has no body");
        assert_eq!(
            (
                &headers["tollgate-accepted"],
                &headers["tollgate-duplicates"]
            ),
            (&json!(accepted), &json!(duplicates)),
            "request {i}: {headers}"
        );
    }
    let (status, _, body) = answer(&results[3]);
    assert_eq!(status, 200, "{body}");
    let per_event: Vec<(&str, &str)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        per_event,
        [
            ("b-1", "duplicate"),
            ("b-2", "duplicate"),
            ("b-3", "duplicate")
        ]
    );
    let (status, headers, _) = answer(&results[4]);
    assert_eq!(
        (status, &headers["tollgate-accepted"]),
        (204, &json!("1")),
        "binary mode"
    );

    // 100 (structured) + 10 + 20 (the batch, once) + 1000 (binary).
    let month = Window::Month.period_of(time).unwrap();
    let pk = format!("llm_tokens#key:{KEY}");
    let label = format!("{month}#local-a");
    assert_eq!(
        common::counter(&client, &h.tables.usage, &pk, &label).await,
        Some(1130)
    );
    let calls = format!("calls#key:{KEY}");
    assert_eq!(
        common::counter(&client, &h.tables.usage, &calls, &label).await,
        Some(1)
    );
}
