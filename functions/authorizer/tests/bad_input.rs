//! Mangled events: always a response or `Unauthorized`, and no secret in
//! the log (captured at TRACE level).
//!
//! The property tests on arbitrary bytes run the fuzz entry points
//! (`tollgate_fuzz::authorizer`, in `fuzz/entries`).

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use authorizer::{Authorizer, Config, ManualClock};
use support::*;
use tollgate_core::{FailurePolicy, OveragePolicy};
use tollgate_store::memory::MemoryKeys;

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
        // Every read fails: bad input must be answered before any read,
        // and a read that is made follows the failure policy.
        MemoryKeys::failing(),
        one_region(),
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
