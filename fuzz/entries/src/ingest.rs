//! The ingest entry point, for the cargo-fuzz target in `fuzz/ingest`
//! (`body`): [`check_invariants`].

use std::collections::{HashMap, HashSet};

use ::ingest::body::{parse_body, Limits};
use ::ingest::validate::{aggregate, validate_all, Checked, Rules, MAX_ID_CHARS};
use tollgate_core::{Aggregation, MeterDef, MeterName, Window};

/// Parses `data` as a body with small limits, checks every event against a
/// fixed set of meters and aggregates the valid ones. Panics only if an
/// invariant is broken: an accepted body is within the limits and
/// non-empty, there is one result per event, valid events have distinct
/// ids, and a refusal maps to 400 or 413.
pub fn check_invariants(data: &[u8]) {
    let limits = Limits {
        max_bytes: 64 * 1024,
        max_events: 100,
    };
    let events = match parse_body(data, &limits) {
        Ok(events) => events,
        Err(e) => {
            assert!(e.status() == 400 || e.status() == 413, "{e}");
            return;
        }
    };
    assert!(!events.is_empty() && events.len() <= limits.max_events);
    assert!(data.len() <= limits.max_bytes);
    let meters: HashMap<MeterName, MeterDef> = [
        ("tokens", Aggregation::Sum),
        ("calls", Aggregation::Count),
        ("peak", Aggregation::Max),
    ]
    .into_iter()
    .filter_map(|(n, aggregation)| {
        let name = MeterName::new(n).ok()?;
        Some((
            name.clone(),
            MeterDef {
                name,
                aggregation,
                unit: String::new(),
                value_path: None,
            },
        ))
    })
    .collect();
    let rules = Rules {
        meters: &meters,
        now: 1_795_000_000_000,
        dedupe_window_ms: 35 * 86_400_000,
        future_tolerance_ms: 300_000,
    };
    let checked = validate_all(&events, &rules);
    assert_eq!(checked.len(), events.len());
    let mut ids = HashSet::new();
    let valid: Vec<_> = checked
        .iter()
        .filter_map(|c| match c {
            Checked::Valid(e) => Some(e),
            _ => None,
        })
        .collect();
    for e in &valid {
        assert!(
            ids.insert(e.id.as_str()),
            "two valid events with id {:?}",
            e.id
        );
        assert!(!e.id.is_empty() && e.id.chars().count() <= MAX_ID_CHARS);
    }
    let windows = [Window::Hour, Window::Day, Window::Month];
    let windows = tollgate_core::CountedWindows::configured(&windows, &windows);
    let agg = aggregate(valid.iter().copied(), &windows);
    assert!(agg.is_ok(), "a valid event's time has every period");
}

#[cfg(test)]
mod tests {
    //! Moved with the entry point from `ingest::body`'s unit tests.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn event_text() -> impl Strategy<Value = String> {
        let id = prop_oneof![
            Just("\"a\"".to_string()),
            Just("\"b\"".to_string()),
            Just("7".to_string()),
            "\"[a-z]{0,3}\""
        ];
        let meter = prop_oneof![
            Just("\"tokens\""),
            Just("\"peak\""),
            Just("\"nope\""),
            Just("1")
        ];
        let identity = prop_oneof![
            Just("\"key:k\""),
            Just("\"ip:::ffff:10.0.0.1\""),
            Just("\"user:x\"")
        ];
        let value = prop_oneof![
            Just("1"),
            Just("-1"),
            Just("1.5"),
            Just("\"2\""),
            Just("9007199254740993"),
            Just("null")
        ];
        let time = prop_oneof![
            Just("1795000000000"),
            Just("\"2026-11-18T11:00:00Z\""),
            Just("0"),
            Just("\"x\""),
            Just("1.0")
        ];
        (id, meter, identity, value, time).prop_map(|(i, m, who, v, t)| {
            format!(r#"{{"id":{i},"meter":{m},"identity":{who},"value":{v},"time":{t}}}"#)
        })
    }

    proptest! {
        #[test]
        fn structured_bodies_keep_the_invariants(events in proptest::collection::vec(event_text(), 0..12), ndjson in any::<bool>()) {
            let body = if ndjson { events.join("\n") } else { format!("[{}]", events.join(",")) };
            check_invariants(body.as_bytes());
        }

        #[test]
        fn arbitrary_bytes_keep_the_invariants(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            check_invariants(&bytes);
        }
    }
}
