//! The `authorizer` binary through the Lambda runtime API: started against
//! a local stand-in of the API and DynamoDB Local, invoked with the events
//! in `events/authorizer/` and AWS's own samples, answers checked.
//!
//! `AUTHORIZER_BIN=<path>` runs another build (for example the release
//! bootstrap) instead of the test build; the start-up time (process start
//! to its first `next` call) is printed.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::runtime_api::{Answer, RuntimeApi};
use support::*;
use tollgate_core::clock::Clock;
use tollgate_tests::Harness;

const TIMEOUT: Duration = Duration::from_secs(20);

/// In the table of sample events: the answer is `Unauthorized`, not a policy.
const UNAUTHORIZED: &str = "Unauthorized";

struct Function {
    child: Child,
    api: RuntimeApi,
    startup: Duration,
    logs: Arc<Mutex<Vec<u8>>>,
}

impl Function {
    /// Everything the function printed so far.
    fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().expect("logs")).into_owned()
    }
}

/// Copies a child's output into `sink` as it comes, so the pipe never fills.
fn drain(mut from: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                return;
            }
            sink.lock().expect("logs").extend_from_slice(&buf[..n]);
        }
    });
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.api.stop();
    }
}

fn start(h: &Harness, extra_env: &[(&str, &str)]) -> Function {
    let api = RuntimeApi::start();
    let bin = std::env::var("AUTHORIZER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_authorizer").to_owned());
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "authorizer")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", tollgate_tests::TEST_REGION)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_ENDPOINT_URL_DYNAMODB", &h.endpoint)
        .env("TOLLGATE_KEYS_TABLE", &h.tables.keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn the authorizer binary");
    let logs = Arc::new(Mutex::new(Vec::new()));
    if let Some(out) = child.stdout.take() {
        drain(out, logs.clone());
    }
    if let Some(err) = child.stderr.take() {
        drain(err, logs.clone());
    }
    let first = api.wait_first_next(TIMEOUT);
    assert!(
        api.init_error().is_none(),
        "init error: {:?}",
        api.init_error()
    );
    let first = first.expect("the function never asked for an event");
    Function {
        child,
        startup: first.duration_since(started),
        api,
        logs,
    }
}

fn invoke(f: &Function, event: &[u8]) -> Answer {
    f.api.invoke(event, TIMEOUT).expect("no answer in time")
}

fn response(f: &Function, event: &[u8]) -> serde_json::Value {
    match invoke(f, event) {
        Answer::Response(body) => serde_json::from_str(&body).expect("response JSON"),
        Answer::Error(e) => panic!("expected a response, got the error {e}"),
    }
}

fn assert_unauthorized(f: &Function, event: &[u8]) {
    match invoke(f, event) {
        Answer::Error(body) => {
            let v: serde_json::Value = serde_json::from_str(&body).expect("error JSON");
            assert_eq!(v["errorMessage"], "Unauthorized", "{body}");
        }
        Answer::Response(r) => panic!("expected Unauthorized, got {r}"),
    }
}

/// The policy response must read as aws_lambda_events' own type.
fn check_policy_shape(v: &serde_json::Value) {
    let typed: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerResponse =
        serde_json::from_value(v.clone()).expect("a custom authorizer response");
    assert_eq!(typed.policy_document.statement.len(), 1);
    let resource = &typed.policy_document.statement[0].resource;
    assert!(resource[0].ends_with("/*/*"), "{resource:?}");
}

fn check_simple_shape(v: &serde_json::Value) {
    let typed: aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerSimpleResponse =
        serde_json::from_value(v.clone()).expect("a simple response");
    assert!(typed.context.is_object(), "never a null context");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_answers_the_sample_events() {
    let (h, _store) = seeded("rtapi").await;
    let f = start(&h, &[]);
    eprintln!("start-up to first `next`: {:?}", f.startup);

    for (file, allow, reason_code, policy) in [
        ("token-demo-key.json", true, "", true),
        ("token-unknown-key.json", false, UNAUTHORIZED, true),
        ("token-no-key.json", false, "no_identity", true),
        ("rest-request-demo-key.json", true, "", true),
        ("rest-request-unknown-key.json", false, UNAUTHORIZED, true),
        ("rest-request-no-key.json", true, "", true),
        ("http-v2-demo-key.json", true, "", false),
        ("http-v2-unknown-key.json", false, UNAUTHORIZED, false),
        ("http-v2-no-key.json", true, "", false),
        // AWS's samples.
        (
            "aws/sam-apigateway-authorizer.json",
            false,
            UNAUTHORIZED,
            true,
        ),
        (
            "aws/sam-apigateway-request-authorizer.json",
            false,
            "no_identity",
            true,
        ),
        (
            "aws/example-apigw-custom-auth-request.json",
            false,
            UNAUTHORIZED,
            true,
        ),
        (
            "aws/example-apigw-custom-auth-request-type-request.json",
            false,
            "no_identity",
            true,
        ),
        (
            "aws/example-apigw-v2-custom-authorizer-v1-request.json",
            false,
            "no_identity",
            true,
        ),
        (
            "aws/example-apigw-v2-custom-authorizer-v2-request.json",
            false,
            "no_identity",
            false,
        ),
        (
            "aws/example-apigw-v2-custom-authorizer-v2-request-null-maps.json",
            false,
            "no_identity",
            false,
        ),
        (
            "aws/example-apigw-v2-custom-authorizer-v2-request-without-cookies.json",
            false,
            "no_identity",
            false,
        ),
        (
            "aws/example-apigw-v2-custom-authorizer-v2-request-without-identity-source.json",
            false,
            "no_identity",
            false,
        ),
        (
            "aws/example-apigw-v2-custom-authorizer-websocket-request.json",
            true,
            "",
            true,
        ),
    ] {
        if reason_code == UNAUTHORIZED {
            // Unknown and malformed keys: API Gateway's 401.
            assert_unauthorized(&f, &event_file(file));
            continue;
        }
        let v = response(&f, &event_file(file));
        assert_eq!(allowed(&v), allow, "{file}: {v}");
        assert_eq!(reason(&v), reason_code, "{file}: {v}");
        if policy {
            check_policy_shape(&v);
        } else {
            check_simple_shape(&v);
        }
        if file.contains("demo-key") {
            assert_eq!(v["context"]["customer"], "demo", "{file}");
            assert_eq!(v["context"]["plan"], "pro", "{file}");
        }
        if file.contains("no-key") && allow {
            assert_eq!(v["context"]["plan"], "anonymous", "{file}");
            assert!(v["context"]["identity"]
                .as_str()
                .unwrap_or("")
                .starts_with("ip:"));
        }
    }
    let v = response(&f, &event_file("rest-request-demo-key.json"));
    assert_eq!(
        v["policyDocument"]["Statement"][0]["Resource"],
        "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod/*/*"
    );

    // Not authorizer events, or not JSON at all: Unauthorized.
    for bad in [
        event_file("aws/example-apigw-v2-request-no-authorizer.json"),
        b"{\"type\":\"TOKEN\",\"authorizationToken\":\"x\"".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        b"".to_vec(),
        b"[1,2,3]".to_vec(),
    ] {
        assert_unauthorized(&f, &bad);
    }
    // Still serving after all that.
    assert!(allowed(&response(&f, &event_file("token-demo-key.json"))));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quota_denial_carries_what_the_gateway_response_needs() {
    let (h, store) = seeded("rtquota").await;
    let period = tollgate_core::Window::Day
        .period_of(tollgate_core::clock::SystemClock.now_millis())
        .expect("period");
    let block = tollgate_core::Block {
        meter: tollgate_core::MeterName::requests(),
        period,
        limit: 100,
        used: 100,
    };
    let blocked = tollgate_core::Identity::parse_anonymous_ip(
        "2001:db8:77:1::1",
        tollgate_core::Ipv6Prefix::DEFAULT,
    )
    .expect("ip");
    store.put_block(&blocked, &block).await.expect("block");
    let f = start(&h, &[("TOLLGATE_ANONYMOUS_REFERER", "true")]);
    // Another address of the same /64, with a Referer.
    let event = rest_event(
        r#"{"Referer":"https://docs.example.com/a"}"#,
        "2001:db8:77:1:abcd::9",
    );
    let v = response(&f, &event);
    assert!(!allowed(&v), "{v}");
    check_policy_shape(&v);
    let ctx = &v["context"];
    assert_eq!(ctx["identity"], "ip:2001:db8:77:1::/64", "{v}");
    assert_eq!(ctx["reason"], "quota_exceeded");
    assert_eq!(ctx["status"], 429);
    assert_eq!(ctx["referer"], "referer:docs.example.com");
    assert_eq!(ctx["reset_at"], period.end());
    let retry = ctx["retry_after"].as_i64().expect("retry_after");
    assert!(retry > 0 && retry <= 86_400, "{retry}");
    assert_eq!(ctx["ratelimit_policy"], "\"day\";q=100;w=86400");
    let rl = ctx["ratelimit"].as_str().expect("ratelimit");
    let t: i64 = rl
        .strip_prefix("\"day\";r=0;t=")
        .expect("RateLimit form")
        .parse()
        .expect("t");
    assert!((t - retry).abs() <= 1, "{rl} vs {retry}");
    // An allowed anonymous call says `-` for a missing Referer, and has no
    // RateLimit fields.
    let v = response(&f, &rest_event("{}", "198.51.100.200"));
    assert!(allowed(&v));
    assert_eq!(v["context"]["referer"], "-");
    assert!(v["context"].get("ratelimit").is_none());
    // The HTTP API gets the same context in its simple response.
    let v2 = r#"{"version":"2.0","type":"REQUEST","routeArn":"arn:aws:execute-api:us-east-1:1:a/$default/GET/x","headers":{},"requestContext":{"http":{"sourceIp":"2001:db8:77:1::5"}}}"#;
    let v = response(&f, v2.as_bytes());
    check_simple_shape(&v);
    assert_eq!(v["isAuthorized"], false);
    assert_eq!(v["context"]["ratelimit_policy"], "\"day\";q=100;w=86400");
    assert_eq!(v["context"]["referer"], "-");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_never_logs_a_secret() {
    let (h, _store) = seeded("rtlogs").await;
    let f = start(&h, &[("AWS_LAMBDA_LOG_LEVEL", "TRACE")]);
    for file in [
        "token-demo-key.json",
        "rest-request-demo-key.json",
        "http-v2-unknown-key.json",
    ] {
        let _ = invoke(&f, &event_file(file));
    }
    let ten_kb = format!(r#"{{"x-api-key":"{}{}"}}"#, DEMO_KEY, "A".repeat(10_240));
    let _ = invoke(&f, &rest_event(&ten_kb, "192.0.2.1"));
    // A truncated event that holds the key.
    let truncated = event_file("rest-request-demo-key.json");
    let _ = invoke(&f, &truncated[..truncated.len() / 2 + 200]);
    let out = f.logs();
    assert!(out.contains("denied"), "the log has the decisions: {out}");
    assert!(
        out.contains(r#""CloudWatchMetrics""#) && out.contains(r#""Reason":"unknown_key""#),
        "the decisions' metric lines: {out}"
    );
    assert!(!out.contains(&DEMO_KEY[8..]), "a secret in the log: {out}");
    assert!(
        !out.contains("ffeeddccbbaa9988"),
        "a secret in the log: {out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_setting_stops_the_function_at_init() {
    let h = Harness::new("rtinit").await;
    let api = RuntimeApi::start();
    let bin = std::env::var("AUTHORIZER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_authorizer").to_owned());
    let out = Command::new(bin)
        .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "authorizer")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", tollgate_tests::TEST_REGION)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &h.endpoint)
        .env("TOLLGATE_FAILURE_POLICY", "sometimes")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("TOLLGATE_FAILURE_POLICY"), "{text}");
    api.stop();
}
