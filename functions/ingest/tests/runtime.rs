//! The real `ingest` binary under the Lambda Runtime API stand-in, fed the
//! API Gateway HTTP API (payload 2.0) events of `events/ingest/` (shaped
//! like `sam local generate-event apigateway http-api-proxy`), and the
//! aws_lambda_events fixture of an IAM-authorized HTTP API request.
#![allow(clippy::unwrap_used)]

mod common;

use serde_json::Value;
use tollgate_tests::runtime_api::invoke_binary;
use tollgate_tests::Harness;

fn event_file(name: &str) -> Value {
    let path = format!("{}/../../events/ingest/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A fixture of the aws_lambda_events crate, from cargo's registry
/// (where the crate is, since the function depends on it).
fn aws_lambda_events_fixture(name: &str) -> Value {
    let home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    let src = std::path::Path::new(&home).join("registry/src");
    let path = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
        .flatten()
        .map(|d| {
            d.path()
                .join("aws_lambda_events-1.2.1/src/fixtures")
                .join(name)
        })
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no aws_lambda_events-1.2.1 fixture {name} under {}",
                src.display()
            )
        });
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The status and JSON body of an API Gateway v2 response.
fn http(result: &Result<Value, Value>) -> (u64, Value) {
    let r = result
        .as_ref()
        .unwrap_or_else(|e| panic!("the function failed: {e}"));
    let body = r["body"].as_str().unwrap_or("null");
    (
        r["statusCode"].as_u64().unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

#[tokio::test]
async fn the_binary_serves_http_api_events() {
    let h = Harness::new("runtime").await;
    common::define_meters(&h.client(), &h.tables).await;
    let iam_fixture = aws_lambda_events_fixture("example-apigw-v2-request-iam.json");
    let events = [
        event_file("post-events.json"),
        event_file("post-events.json"),
        event_file("post-events-ndjson.json"),
        event_file("get-usage.json"),
        event_file("get-usage-top.json"),
        event_file("sam-http-api-proxy.json"),
        iam_fixture,
    ];
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", h.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_REGION", "local-a"),
        ("TOLLGATE_REGION", "local-a"),
        ("TOLLGATE_KEYS_TABLE", h.tables.keys.as_str()),
        ("TOLLGATE_USAGE_TABLE", h.tables.usage.as_str()),
        ("TOLLGATE_IDEMPOTENCY_TABLE", h.tables.idempotency.as_str()),
        // The sample events carry fixed times.
        ("TOLLGATE_DEDUPE_WINDOW_DAYS", "3650"),
        ("TOLLGATE_TOP_INDEX", "true"),
    ];
    let binary = env!("CARGO_BIN_EXE_ingest");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let results = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        invoke_binary(binary, &env, &events)
    })
    .await
    .unwrap();
    assert_eq!(results.len(), 7);

    let (status, post) = http(&results[0]);
    assert_eq!(status, 207, "{post}");
    let statuses: Vec<&str> = post["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "accepted", "accepted", "rejected"]);
    assert_eq!(post["results"][3]["field"], "value");
    // The same Idempotency-Key: the stored response again.
    assert_eq!(http(&results[1]), (207, post));

    let (status, ndjson) = http(&results[2]);
    assert_eq!(
        (status, ndjson["accepted"].as_u64()),
        (200, Some(2)),
        "{ndjson}"
    );

    let (status, usage) = http(&results[3]);
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["periods"][0]["period"], "2026-11-21");
    assert_eq!(usage["periods"][0]["total"], 2000);
    assert_eq!(usage["periods"][0]["regions"]["local-a"], 2000);

    let (status, top) = http(&results[4]);
    assert_eq!(status, 200, "{top}");
    let ranked: Vec<(&str, u64)> = top["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["identity"].as_str().unwrap(),
                e["total"].as_u64().unwrap(),
            )
        })
        .collect();
    // Anonymous identities (here a Referer host with 50 and an IP with 1)
    // are not ranked: their counters share bucket items, which the index
    // cannot rank.
    assert_eq!(ranked, [("key:demo", 2000), ("key:other", 300)]);

    // Requests for other routes get a JSON 404, not a crash.
    for r in &results[5..] {
        let (status, body) = http(r);
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
}
