//! Arbitrary bytes and mangled events: never a panic, always a response or
//! `Unauthorized`, and no secret in the log (captured at TRACE level).
//!
//! The same entry point (`event::fuzz_one`) is the cargo-fuzz target in
//! `fuzz/`; this property test runs it on stable in every `cargo test`.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use authorizer::event::fuzz_one;
use authorizer::{Authorizer, Config, ManualClock};
use proptest::prelude::*;
use support::*;
use tollgate_core::{FailurePolicy, OveragePolicy};

fn sample_events() -> Vec<Vec<u8>> {
    [
        "token-demo-key.json",
        "rest-request-demo-key.json",
        "http-v2-demo-key.json",
        "rest-request-no-key.json",
    ]
    .iter()
    .map(|f| event_file(f))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzz_one(&bytes);
    }

    #[test]
    fn mangled_sample_events_never_panic(
        which in 0usize..4,
        cut in 0usize..2000,
        flips in proptest::collection::vec((0usize..2000, any::<u8>()), 0..8),
    ) {
        let mut event = sample_events()[which].clone();
        for (at, byte) in flips {
            let n = event.len();
            event[at % n] = byte;
        }
        event.truncate(cut.min(event.len()));
        fuzz_one(&event);
    }

    #[test]
    fn arbitrary_header_values_never_panic(value in "\\PC{0,300}|[\\x00-\\x7f]{0,300}") {
        let json = serde_json::json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:1:api/prod/GET/x",
            "headers": {"x-api-key": value, "x-forwarded-for": value, "referer": value},
            "requestContext": {"identity": {"sourceIp": value}},
        });
        fuzz_one(json.to_string().as_bytes());
    }
}

/// A writer that keeps what tracing writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn bad_input_is_denied_or_unauthorized_and_never_logged() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let a = Authorizer::new(
        Config::default(),
        dead_store(),
        Arc::new(ManualClock::at(NOW)),
    );
    a.prime_plans(vec![
        plan("anonymous", OveragePolicy::Hard, FailurePolicy::Closed, 100),
        plan("pro", OveragePolicy::Hard, FailurePolicy::Closed, 100),
    ]);
    let secret = DEMO_KEY;
    let ten_kb = format!("{secret}{}", "x".repeat(10 * 1024));
    let control = format!("{}\\u0000{}", &secret[..20], &secret[20..]);
    let escape = format!("\\u001b[2J{secret}");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // (event, expected: reason code or "Unauthorized")
        (
            rest_event(&format!(r#"{{"x-api-key":"{ten_kb}"}}"#), "192.0.2.1"),
            // A malformed key is Unauthorized (401), without a read.
            "Unauthorized",
        ),
        (
            rest_event(&format!(r#"{{"x-api-key":"{control}"}}"#), "192.0.2.1"),
            // A malformed key is Unauthorized (401), without a read.
            "Unauthorized",
        ),
        (
            rest_event(&format!(r#"{{"x-api-key":"{escape}"}}"#), "192.0.2.1"),
            // A malformed key is Unauthorized (401), without a read.
            "Unauthorized",
        ),
        (
            rest_event(r#"{"x-api-key":"tg_live_0123"}"#, "192.0.2.1"),
            // A malformed key is Unauthorized (401), without a read.
            "Unauthorized",
        ),
        (rest_event(r#"{"x-api-key":""}"#, "bogus"), "no_identity"),
        (
            rest_event(&format!(r#"{{"x-api-key":"{secret}"}}"#), "192.0.2.1"),
            "store_unavailable",
        ),
        (
            [
                &b"{\"type\":\"REQUEST\",\"headers\":{\"x-api-key\":\""[..],
                secret.as_bytes(),
                b"\xff\"}}",
            ]
            .concat(),
            "Unauthorized",
        ),
        (key_event(&demo_key())[..120].to_vec(), "Unauthorized"),
        (
            format!(r#"{{"type":"WEBSOCKET","authorizationToken":"{secret}"}}"#).into_bytes(),
            "Unauthorized",
        ),
        (
            format!(
                r#"{{"type":"REQUEST","methodArn":"x","headers":{{"x-api-key":["{secret}"]}}}}"#
            )
            .into_bytes(),
            "Unauthorized",
        ),
    ];
    for (event, expected) in cases {
        match a.handle_bytes(&event).await {
            Ok(json) => {
                let v: serde_json::Value = serde_json::from_str(json.get()).expect("json");
                assert!(!allowed(&v), "{json}");
                assert_eq!(reason(&v), expected, "{json}");
            }
            Err(e) => assert_eq!(e.to_string(), expected),
        }
    }
    let logs = String::from_utf8_lossy(&capture.0.lock().expect("capture")).into_owned();
    assert!(logs.contains("denied"), "decisions are logged: {logs}");
    assert!(logs.contains("unreadable event"), "{logs}");
    assert!(!logs.contains(&secret[8..]), "a secret in the log: {logs}");
    assert!(
        !logs.contains(&secret[30..50]),
        "part of a secret in the log: {logs}"
    );
}
