//! Parsing a `POST /v1/events` body into one JSON value per event: a JSON
//! array of events, or NDJSON (one event object per line; whitespace
//! between objects is all that is needed). Checks the size limits first.

use serde_json::Value;

/// The limits a body is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest body, in bytes.
    pub max_bytes: usize,
    /// The most events.
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024,
            max_events: 1000,
        }
    }
}

/// Why a body as a whole was refused: nothing of it is processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More bytes than allowed (HTTP 413).
    #[error("the body is {size} bytes; at most {limit} bytes are accepted")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More events than allowed (HTTP 413).
    #[error("the body holds {count} events; at most {limit} are accepted per request")]
    TooManyEvents {
        /// The number of events.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Not UTF-8 (HTTP 400).
    #[error("the body is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The offset of the first invalid byte.
        offset: usize,
    },
    /// No events (HTTP 400).
    #[error("the body holds no events")]
    Empty,
    /// Not JSON (HTTP 400).
    #[error("the body is not valid JSON or NDJSON: {0}")]
    Malformed(String),
    /// JSON, but not an array of events or a sequence of event objects (HTTP 400).
    #[error("the body must be a JSON array of event objects or NDJSON event objects; found {0}")]
    NotEvents(&'static str),
}

impl BodyError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } | BodyError::TooManyEvents { .. } => 413,
            _ => 400,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "body_too_large",
            BodyError::TooManyEvents { .. } => "too_many_events",
            BodyError::NotUtf8 { .. } => "not_utf8",
            BodyError::Empty => "no_events",
            BodyError::Malformed(_) => "malformed_json",
            BodyError::NotEvents(_) => "not_events",
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Splits a body into one JSON value per event. A JSON array's elements
/// are returned whatever their type (a non-object element is rejected later
/// as that event's error); in NDJSON every value must be an object.
///
/// ```
/// use ingest::body::{parse_body, Limits};
/// let events = parse_body(b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n", &Limits::default()).unwrap();
/// assert_eq!(events.len(), 2);
/// let events = parse_body(br#"[{"id":"a"}]"#, &Limits::default()).unwrap();
/// assert_eq!(events.len(), 1);
/// ```
pub fn parse_body(bytes: &[u8], limits: &Limits) -> Result<Vec<Value>, BodyError> {
    if bytes.len() > limits.max_bytes {
        return Err(BodyError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| BodyError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.trim_start_matches('\u{feff}');
    let trimmed = text.trim_start();
    let events = if trimmed.starts_with('[') {
        let value: Value =
            serde_json::from_str(trimmed).map_err(|e| BodyError::Malformed(e.to_string()))?;
        match value {
            Value::Array(items) => items,
            other => return Err(BodyError::NotEvents(kind(&other))),
        }
    } else {
        let mut events = Vec::new();
        for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            let value = value.map_err(|e| BodyError::Malformed(e.to_string()))?;
            if !value.is_object() {
                return Err(BodyError::NotEvents(kind(&value)));
            }
            events.push(value);
        }
        events
    };
    if events.is_empty() {
        return Err(BodyError::Empty);
    }
    if events.len() > limits.max_events {
        return Err(BodyError::TooManyEvents {
            count: events.len(),
            limit: limits.max_events,
        });
    }
    Ok(events)
}

/// The fuzz and property-test entry point: parses `data` as a body with
/// small limits, checks every event against a fixed set of meters and
/// aggregates the valid ones. Panics only if an invariant is broken: an
/// accepted body is within the limits and non-empty, there is one result
/// per event, valid events have distinct ids, and a refusal maps to 400 or 413.
pub fn check_invariants(data: &[u8]) {
    use crate::validate::{aggregate, validate_all, Checked, Rules};
    use tollgate_core::{Aggregation, MeterDef, MeterName, Window};

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
    let meters: std::collections::HashMap<MeterName, MeterDef> = [
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
    let mut ids = std::collections::HashSet::new();
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
        assert!(!e.id.is_empty() && e.id.chars().count() <= crate::validate::MAX_ID_CHARS);
    }
    let windows = [Window::Hour, Window::Day, Window::Month];
    let agg = aggregate(valid.iter().copied(), &windows);
    assert!(agg.is_ok(), "a valid event's time has every period");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn parse(b: &[u8]) -> Result<Vec<Value>, BodyError> {
        parse_body(b, &Limits::default())
    }

    #[test]
    fn arrays_and_ndjson() {
        assert_eq!(parse(br#" [ {"id":"a"}, 5 ] "#).unwrap().len(), 2);
        assert_eq!(
            parse(b"{\"id\":\"a\"}\r\n\r\n{\"id\":\"b\"}")
                .unwrap()
                .len(),
            2
        );
        // A pretty-printed single object is one event.
        assert_eq!(parse(b"{\n  \"id\": \"a\"\n}\n").unwrap().len(), 1);
        assert_eq!(parse("\u{feff}[{}]".as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(b"").unwrap_err(), BodyError::Empty);
        assert_eq!(parse(b"  \n").unwrap_err(), BodyError::Empty);
        assert_eq!(parse(b"[]").unwrap_err(), BodyError::Empty);
        assert_eq!(parse(b"[{\"id\":").unwrap_err().code(), "malformed_json");
        assert_eq!(
            parse(b"{\"id\":\"a\"}\n{oops}").unwrap_err().code(),
            "malformed_json"
        );
        assert_eq!(
            parse(b"\"text\"").unwrap_err(),
            BodyError::NotEvents("a string")
        );
        assert_eq!(
            parse(b"{\"id\":\"a\"}\n[1]").unwrap_err(),
            BodyError::NotEvents("an array")
        );
        assert_eq!(
            parse(b"{\"a\":\"\xff\"}").unwrap_err(),
            BodyError::NotUtf8 { offset: 6 }
        );
        let err = parse(b"[1e400]").unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn limits() {
        let big = vec![b' '; (1 << 20) + 1];
        let err = parse(&big).unwrap_err();
        assert_eq!(err.status(), 413);
        assert_eq!(err.code(), "body_too_large");
        let many = format!("[{}]", vec!["{}"; 1001].join(","));
        assert_eq!(
            parse(many.as_bytes()).unwrap_err(),
            BodyError::TooManyEvents {
                count: 1001,
                limit: 1000
            }
        );
        let exactly = format!("[{}]", vec!["{}"; 1000].join(","));
        assert_eq!(parse(exactly.as_bytes()).unwrap().len(), 1000);
    }

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

        #[test]
        fn never_panics_and_respects_limits(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let limits = Limits { max_bytes: 256, max_events: 3 };
            match parse_body(&bytes, &limits) {
                Ok(events) => {
                    prop_assert!(!events.is_empty() && events.len() <= 3);
                    prop_assert!(bytes.len() <= 256);
                }
                Err(e) => prop_assert!(e.status() == 400 || e.status() == 413),
            }
        }
    }
}
