//! Parsing a `POST /v1/events` request into one JSON value per event, in
//! one of its modes ([`Mode`]): tollgate's own format (a JSON array of
//! events, or NDJSON: one event object per line; whitespace between objects
//! is all that is needed), or CloudEvents 1.0 in any of its HTTP modes
//! (structured, batch, binary) or as OpenMeter's plain JSON. Checks the
//! size limits first.

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
    /// A CloudEvents media type whose body has the wrong shape (HTTP 400).
    #[error("a {0} body must be {1}; found {2}")]
    NotCloudEvents(&'static str, &'static str, &'static str),
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
            BodyError::NotCloudEvents(..) => "not_cloudevents",
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

/// How a request carries its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// tollgate's own format: `{"id","meter","identity","value","time"}`
    /// objects as a JSON array or NDJSON, any content type but the
    /// CloudEvents ones.
    Tollgate,
    /// CloudEvents as plain JSON (one event or an array, as OpenMeter takes
    /// them): a body whose first event object has a `specversion` member.
    CloudEventsJson,
    /// `application/cloudevents+json`: one event.
    Structured,
    /// `application/cloudevents-batch+json`: a JSON array of events.
    Batch,
    /// `ce-*` headers with the event's data as the body.
    Binary,
}

impl Mode {
    /// Whether the events are CloudEvents.
    pub fn is_cloudevents(self) -> bool {
        self != Mode::Tollgate
    }
}

/// The media type of a `Content-Type` value: lower-case, parameters dropped.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The media type of a structured CloudEvent.
pub const STRUCTURED: &str = "application/cloudevents+json";
/// The media type of a CloudEvents batch.
pub const BATCH: &str = "application/cloudevents-batch+json";

/// Whether `media` (from [`media_type`]) is JSON: `application/json`, any
/// `+json` type, or none given.
pub fn is_json(media: &str) -> bool {
    media.is_empty() || media == "application/json" || media.ends_with("+json")
}

/// Splits a request into its mode and one JSON value per event.
///
/// `binary` holds the CloudEvents attributes of `ce-*` headers (names
/// without the prefix, values percent-decoded), empty when there are none.
/// The mode is chosen by the content type first (the two CloudEvents media
/// types), then by `ce-*` headers (binary mode: the body is the one event's
/// `data`), then by shape: a body whose first event object has a
/// `specversion` member is CloudEvents in plain JSON, anything else
/// tollgate's own format.
///
/// ```
/// use ingest::body::{parse_request, Limits, Mode};
/// let ce = br#"{"specversion":"1.0","id":"1","source":"s","type":"calls"}"#;
/// let (mode, events) = parse_request(Some("application/json"), &Default::default(), ce, &Limits::default()).unwrap();
/// assert_eq!((mode, events.len()), (Mode::CloudEventsJson, 1));
/// let (mode, _) = parse_request(None, &Default::default(), br#"[{"id":"a"}]"#, &Limits::default()).unwrap();
/// assert_eq!(mode, Mode::Tollgate);
/// ```
pub fn parse_request(
    content_type: Option<&str>,
    binary: &serde_json::Map<String, Value>,
    bytes: &[u8],
    limits: &Limits,
) -> Result<(Mode, Vec<Value>), BodyError> {
    let media = media_type(content_type);
    if media == STRUCTURED || media == BATCH {
        let batch = media == BATCH;
        let value = parse_json(bytes, limits)?;
        let events = match (batch, value) {
            (false, v @ Value::Object(_)) => vec![v],
            (true, Value::Array(items)) => items,
            (false, other) => {
                return Err(BodyError::NotCloudEvents(
                    STRUCTURED,
                    "one JSON object (an event)",
                    kind(&other),
                ))
            }
            (true, other) => {
                return Err(BodyError::NotCloudEvents(
                    BATCH,
                    "a JSON array of events",
                    kind(&other),
                ))
            }
        };
        if events.len() > limits.max_events {
            return Err(BodyError::TooManyEvents {
                count: events.len(),
                limit: limits.max_events,
            });
        }
        // An empty batch is valid CloudEvents: nothing to count.
        return Ok((if batch { Mode::Batch } else { Mode::Structured }, events));
    }
    if !binary.is_empty() {
        check_size(bytes, limits)?;
        let mut event = binary.clone();
        if !bytes.is_empty() {
            let data = if is_json(&media) {
                parse_json(bytes, limits)?
            } else {
                // Data that is not JSON holds no value a meter can read.
                Value::String(String::from_utf8_lossy(bytes).into_owned())
            };
            event.insert("data".into(), data);
        }
        if let Some(ct) = content_type {
            event.insert("datacontenttype".into(), Value::String(ct.to_owned()));
        }
        return Ok((Mode::Binary, vec![Value::Object(event)]));
    }
    let events = parse_body(bytes, limits)?;
    let cloudevents = events
        .iter()
        .find_map(Value::as_object)
        .is_some_and(|o| o.contains_key("specversion"));
    Ok((
        if cloudevents {
            Mode::CloudEventsJson
        } else {
            Mode::Tollgate
        },
        events,
    ))
}

fn check_size(bytes: &[u8], limits: &Limits) -> Result<(), BodyError> {
    if bytes.len() > limits.max_bytes {
        return Err(BodyError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

/// One JSON document, within the size limit.
fn parse_json(bytes: &[u8], limits: &Limits) -> Result<Value, BodyError> {
    check_size(bytes, limits)?;
    let text = std::str::from_utf8(bytes).map_err(|e| BodyError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Err(BodyError::Empty);
    }
    serde_json::from_str(text).map_err(|e| BodyError::Malformed(e.to_string()))
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
    check_size(bytes, limits)?;
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

    fn request(
        ct: Option<&str>,
        binary: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(Mode, Vec<Value>), BodyError> {
        let attrs: serde_json::Map<String, Value> = binary
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        parse_request(ct, &attrs, body, &Limits::default())
    }

    #[test]
    fn each_mode_is_told_apart() {
        let one = br#"{"specversion":"1.0","id":"1","source":"s","type":"calls","subject":"k"}"#;
        // Structured, whatever the parameters and case of the media type.
        let (mode, events) = request(
            Some("Application/CloudEvents+JSON; charset=utf-8"),
            &[],
            one,
        )
        .unwrap();
        assert_eq!((mode, events.len()), (Mode::Structured, 1));
        assert_eq!(events[0]["id"], "1");
        // Batch: an array, possibly empty.
        let batch = format!(
            "[{},{}]",
            std::str::from_utf8(one).unwrap(),
            std::str::from_utf8(one).unwrap()
        );
        let (mode, events) = request(Some(BATCH), &[], batch.as_bytes()).unwrap();
        assert_eq!((mode, events.len()), (Mode::Batch, 2));
        assert_eq!(
            request(Some(BATCH), &[], b" [ ] ").unwrap(),
            (Mode::Batch, vec![])
        );
        // Binary: the attributes from the headers, the body as data.
        let attrs = [
            ("specversion", "1.0"),
            ("id", "9"),
            ("source", "s"),
            ("type", "tokens"),
        ];
        let (mode, events) = request(Some("application/json"), &attrs, br#"{"value":5}"#).unwrap();
        assert_eq!(mode, Mode::Binary);
        assert_eq!(
            events,
            [
                serde_json::json!({"specversion":"1.0","id":"9","source":"s","type":"tokens",
                "data":{"value":5},"datacontenttype":"application/json"})
            ]
        );
        // Binary with no body, and with data that is not JSON.
        let (_, events) = request(None, &attrs, b"").unwrap();
        assert_eq!(events[0].get("data"), None);
        let (_, events) = request(Some("text/plain"), &attrs, b"five").unwrap();
        assert_eq!(events[0]["data"], "five");
        assert_eq!(
            request(Some("application/json"), &attrs, b"{")
                .unwrap_err()
                .code(),
            "malformed_json"
        );
        // Plain JSON: CloudEvents by shape (a first object with specversion) ...
        assert_eq!(
            request(Some("application/json"), &[], one).unwrap().0,
            Mode::CloudEventsJson
        );
        let arr = format!("[{}]", std::str::from_utf8(one).unwrap());
        assert_eq!(
            request(None, &[], arr.as_bytes()).unwrap().0,
            Mode::CloudEventsJson
        );
        // ... else tollgate's own format, as an array or NDJSON.
        let native = br#"[{"id":"a","meter":"tokens","identity":"key:k","time":0}]"#;
        assert_eq!(
            request(Some("application/json"), &[], native).unwrap().0,
            Mode::Tollgate
        );
        assert_eq!(
            request(
                Some("application/x-ndjson"),
                &[],
                b"{\"id\":\"a\"}\n{\"id\":\"b\"}"
            )
            .unwrap()
            .0,
            Mode::Tollgate
        );
        assert!(Mode::Binary.is_cloudevents() && !Mode::Tollgate.is_cloudevents());
    }

    #[test]
    fn cloudevents_refusals_and_limits() {
        let err = request(Some(STRUCTURED), &[], b"[1]").unwrap_err();
        assert_eq!((err.code(), err.status()), ("not_cloudevents", 400));
        assert!(err.to_string().contains("must be one JSON object"), "{err}");
        assert_eq!(
            request(Some(BATCH), &[], b"{}").unwrap_err().code(),
            "not_cloudevents"
        );
        assert_eq!(
            request(Some(STRUCTURED), &[], b"").unwrap_err(),
            BodyError::Empty
        );
        assert_eq!(
            request(Some(STRUCTURED), &[], b"{\xff}")
                .unwrap_err()
                .code(),
            "not_utf8"
        );
        let limits = Limits {
            max_bytes: 10,
            max_events: 2,
        };
        let none = serde_json::Map::new();
        let err =
            parse_request(Some(STRUCTURED), &none, b"{\"a\":\"0123456789\"}", &limits).unwrap_err();
        assert_eq!(err.status(), 413);
        assert_eq!(
            parse_request(Some(BATCH), &none, b"[{},{}]", &limits)
                .unwrap()
                .1
                .len(),
            2
        );
        let err = parse_request(Some(BATCH), &none, b"[{},{},{}]", &limits).unwrap_err();
        assert_eq!(err, BodyError::TooManyEvents { count: 3, limit: 2 });
        let mut attrs = serde_json::Map::new();
        attrs.insert("specversion".into(), Value::String("1.0".into()));
        let err = parse_request(None, &attrs, &[b' '; 11], &limits).unwrap_err();
        assert_eq!(err.code(), "body_too_large");
        assert_eq!(
            media_type(Some(" Application/JSON ;x=y")),
            "application/json"
        );
        assert_eq!(media_type(None), "");
        assert!(is_json("") && is_json("application/json") && is_json("application/vnd.x+json"));
        assert!(!is_json("text/plain"));
    }

    proptest! {
        #[test]
        fn every_mode_refuses_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300), ct in 0usize..5, binary in any::<bool>()) {
            let types = [None, Some(STRUCTURED), Some(BATCH), Some("application/json"), Some("text/plain")];
            let mut attrs = serde_json::Map::new();
            if binary {
                attrs.insert("specversion".into(), Value::String("1.0".into()));
            }
            let limits = Limits { max_bytes: 200, max_events: 3 };
            match parse_request(types[ct], &attrs, &bytes, &limits) {
                Ok((mode, events)) => {
                    prop_assert!(events.len() <= 3 && bytes.len() <= 200);
                    prop_assert!(mode != Mode::Binary || events.len() == 1);
                }
                Err(e) => prop_assert!(e.status() == 400 || e.status() == 413),
            }
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
