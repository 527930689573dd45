//! The authorizer's entry points, for the cargo-fuzz targets in
//! `fuzz/authorizer`: [`fuzz_one`] (`event_and_caller`) and
//! [`fuzz_render`] (`handle_and_render`).

use std::sync::OnceLock;

use ::authorizer::event::stage_resource;
use ::authorizer::response::{render, UNIDENTIFIED};
use ::authorizer::{Caller, Config, Event, Outcome};
use tollgate_core::decision::Subject;
use tollgate_core::{Decision, DenyReason, MeterName, UnixMillis, Window};

/// Event parsing and caller extraction: parse any bytes as an event and
/// find the caller under a few configurations. Must never panic.
pub fn fuzz_one(bytes: &[u8]) {
    static CONFIGS: OnceLock<[Config; 2]> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| {
        [
            Config::default(),
            Config {
                api_key_query: Some("api_key".into()),
                anonymous_referer: true,
                trusted_proxy_hops: 2,
                ..Config::default()
            },
        ]
    });
    if let Ok(event) = Event::parse(bytes) {
        for config in configs {
            let _ = event.caller(config);
        }
        if let Some(arn) = event.arn.as_deref() {
            let _ = stage_resource(arn);
        }
    }
}

/// The response side: parses any bytes as an event and renders every kind
/// of outcome for it (allowed, degraded, a quota denial with its RateLimit
/// fields, other denials), checking that each rendering is JSON with a
/// context object. Must never panic otherwise.
pub fn fuzz_render(bytes: &[u8]) {
    let Ok(event) = Event::parse(bytes) else {
        return;
    };
    let caller = event.caller(&Config::default());
    let (principal, referer) = match &caller {
        Caller::Anonymous { ip, referer } => {
            (ip.to_string(), referer.as_ref().map(ToString::to_string))
        }
        Caller::Key { key, .. } => (format!("key:{}", key.key_id()), None),
        _ => (UNIDENTIFIED.to_owned(), None),
    };
    // A fixed instant: 2026-11-18T21:46:40Z.
    let now: UnixMillis = 1_795_000_000_000;
    let quota = Window::ALL.iter().filter_map(|w| {
        Some(DenyReason::QuotaExceeded {
            meter: MeterName::requests(),
            period: w.period_of(now).ok()?,
            limit: u64::MAX,
        })
    });
    let denials = quota.chain([DenyReason::StoreUnavailable, DenyReason::NoIdentity]);
    let subject = Subject {
        customer: Some(principal.clone()),
        plan: Some(principal.clone()),
        ..Subject::default()
    };
    let decisions = denials
        .map(|reason| Decision::Deny {
            subject: subject.clone(),
            reason,
        })
        .chain([true, false].map(|degraded| Decision::Allow {
            subject: subject.clone(),
            degraded,
        }));
    for decision in decisions {
        let outcome = Outcome {
            decision,
            principal: principal.clone(),
            referer: referer.clone(),
            key_id: Some(principal.clone()),
        };
        for usage_key in [false, true] {
            let raw = render(
                event.kind,
                event.resource.as_deref(),
                &outcome,
                usage_key,
                now,
            );
            let ok = serde_json::from_str::<serde_json::Value>(raw.get())
                .is_ok_and(|v| v["context"].is_object());
            assert!(ok, "a rendering is not a response with a context");
        }
    }
}

#[cfg(test)]
mod tests {
    //! Moved with the entry points: `fuzz_entry_survives_odd_input` (was in
    //! `authorizer::event`'s unit tests), `the_fuzz_entry_renders_the_sample_events`
    //! (`authorizer::response`'s) and the property tests of
    //! `functions/authorizer/tests/bad_input.rs`.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    /// The bytes of a sample event in `events/authorizer/`.
    fn event_file(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../events/authorizer/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

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

    #[test]
    fn fuzz_entry_survives_odd_input() {
        for input in [
            &b""[..],
            b"{",
            b"{\"type\":\"REQUEST\",\"methodArn\":\"arn:aws:execute-api:r:a:i/s/\",\"headers\":{\"x-forwarded-for\":\",,,,\",\"referer\":\"[\"}}",
            b"{\"version\":\"2.0\",\"type\":\"REQUEST\",\"headers\":{\"x-api-key\":\"\xc3\xa9\"}}",
        ] {
            fuzz_one(input);
        }
    }

    #[test]
    fn the_fuzz_entry_renders_the_sample_events() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/authorizer");
        let mut n = 0;
        for sub in ["", "/aws"] {
            for entry in std::fs::read_dir(format!("{dir}{sub}")).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "json") {
                    let bytes = std::fs::read(&path).unwrap();
                    fuzz_render(&bytes);
                    // Truncations and a flipped byte, too.
                    for cut in [1, bytes.len() / 3, bytes.len() / 2] {
                        fuzz_render(&bytes[..cut]);
                    }
                    let mut flipped = bytes.clone();
                    let mid = flipped.len() / 2;
                    flipped[mid] ^= 0x20;
                    fuzz_render(&flipped);
                    n += 1;
                }
            }
        }
        assert!(n >= 10, "sample events found: {n}");
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
}
