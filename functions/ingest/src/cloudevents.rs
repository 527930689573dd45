//! CloudEvents 1.0 onto tollgate's meter events. Each CloudEvent (from any
//! of [`crate::body::Mode`]'s CloudEvents modes) becomes the tollgate event
//! `{"id","meter","identity","value","time"}` that [`crate::validate`]
//! checks and [`crate::commit`] counts once:
//!
//! - `id`: [`dedupe_id`] of `source` + `id`, the CloudEvents identity;
//! - `meter`: `type` (the name of a meter defined with `tollgate meters put`);
//! - `identity`: `subject` ([`subject_identity`]: `key:<id>`, a bare key id, …);
//! - `value`: read from `data` at the meter's value path (`count`: none);
//! - `time`: `time` (RFC 3339), or the time of receipt when absent.
//!
//! A request with any bad CloudEvent is refused whole (HTTP 400, nothing
//! counted), as OpenMeter does; [`Problem`] names each bad event.

use serde::Serialize;
use serde_json::{json, Map, Value};
use tollgate_core::cloudevent::{dedupe_id, subject_identity, SPECVERSION};
use tollgate_core::{MeterName, UnixMillis};

use crate::meters::Meters;
use crate::validate::Rejection;

/// What is wrong with one CloudEvent of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The event's position in the request.
    pub index: usize,
    /// The CloudEvents attribute at fault (`data` for the value, `event`
    /// for the event itself).
    pub attribute: &'static str,
    /// A stable machine-readable code: `missing_attribute`,
    /// `unsupported_specversion`, `unknown_meter` or `invalid_attribute`.
    pub code: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn problem(index: usize, attribute: &'static str, code: &'static str, reason: String) -> Problem {
    Problem {
        index,
        attribute,
        code,
        reason,
    }
}

/// A required, non-empty string attribute.
fn required<'v>(
    index: usize,
    obj: &'v Map<String, Value>,
    name: &'static str,
) -> Result<&'v str, Problem> {
    match obj.get(name) {
        None | Some(Value::Null) => Err(problem(
            index,
            name,
            "missing_attribute",
            "missing (a required CloudEvents attribute)".into(),
        )),
        Some(Value::String(s)) if s.is_empty() => Err(problem(
            index,
            name,
            "invalid_attribute",
            "must not be empty".into(),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(problem(
            index,
            name,
            "invalid_attribute",
            "must be a string".into(),
        )),
    }
}

/// One CloudEvent as a tollgate event, or what is wrong with it.
pub fn to_native(
    index: usize,
    event: &Value,
    meters: &Meters,
    now: UnixMillis,
) -> Result<Value, Problem> {
    let Some(obj) = event.as_object() else {
        return Err(problem(
            index,
            "event",
            "invalid_attribute",
            "a CloudEvent must be a JSON object".into(),
        ));
    };
    let specversion = required(index, obj, "specversion")?;
    if specversion != SPECVERSION {
        return Err(problem(
            index,
            "specversion",
            "unsupported_specversion",
            format!("{specversion:?} is not supported: only CloudEvents {SPECVERSION}"),
        ));
    }
    let id = required(index, obj, "id")?;
    let source = required(index, obj, "source")?;
    let kind = required(index, obj, "type")?;
    let def = MeterName::new(kind)
        .ok()
        .and_then(|name| meters.get(&name))
        .ok_or_else(|| {
            problem(
                index,
                "type",
                "unknown_meter",
                format!("{kind:?} names no meter: the type must be a meter's name, defined with `tollgate meters put`"),
            )
        })?;
    let subject = required(index, obj, "subject")?;
    let identity = subject_identity(subject)
        .map_err(|e| problem(index, "subject", "invalid_attribute", e.to_string()))?;
    let time = match obj.get("time") {
        None | Some(Value::Null) => json!(now),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(_) => {
            return Err(problem(
                index,
                "time",
                "invalid_attribute",
                "must be an RFC 3339 string".into(),
            ))
        }
    };
    let mut native = json!({
        "id": dedupe_id(source, id),
        "meter": def.name.as_str(),
        "identity": identity.to_string(),
        "time": time,
    });
    if let Some(path) = def.cloudevent_value_path() {
        let bad = |reason: String| problem(index, "data", "invalid_attribute", reason);
        let data = match (obj.get("data"), obj.get("data_base64")) {
            (Some(d), _) if !d.is_null() => d,
            (_, Some(_)) => {
                return Err(bad(format!(
                    "data_base64 holds no JSON value; meter {} reads {path} of JSON data",
                    def.name
                )))
            }
            _ => {
                return Err(bad(format!(
                    "missing; meter {} ({}) reads its value at {path}",
                    def.name, def.aggregation
                )))
            }
        };
        let value = match path.find(data) {
            Some(Value::Number(n)) => Value::Number(n.clone()),
            Some(Value::String(s)) => {
                numeric_string(s).ok_or_else(|| bad(format!("{path} is {s:?}, not a number")))?
            }
            Some(_) => return Err(bad(format!("{path} must be a number"))),
            None => return Err(bad(format!("no value at {path} (meter {})", def.name))),
        };
        native["value"] = value;
    }
    Ok(native)
}

/// A number sent as a string (`"12"`, as OpenMeter accepts): a JSON number,
/// so that validation applies the same value rules as to a number.
fn numeric_string(s: &str) -> Option<Value> {
    let t = s.trim();
    if let Ok(v) = t.parse::<u64>() {
        return Some(json!(v));
    }
    let f = t.parse::<f64>().ok().filter(|f| f.is_finite())?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// Every CloudEvent of a request as a tollgate event, or the problems of
/// those that are bad.
pub fn to_native_all(
    events: &[Value],
    meters: &Meters,
    now: UnixMillis,
) -> Result<Vec<Value>, Vec<Problem>> {
    let mut natives = Vec::with_capacity(events.len());
    let mut problems = Vec::new();
    for (index, event) in events.iter().enumerate() {
        match to_native(index, event, meters, now) {
            Ok(v) => natives.push(v),
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(natives)
    } else {
        Err(problems)
    }
}

/// A rejection by [`crate::validate`] of a converted event, in CloudEvents
/// attribute names.
pub fn from_rejection(r: &Rejection) -> Problem {
    let attribute = match r.field {
        "id" => "id",
        "meter" => "type",
        "identity" => "subject",
        "value" => "data",
        "time" => "time",
        _ => "event",
    };
    let code = if r.reason.contains("unknown meter") {
        "unknown_meter"
    } else {
        "invalid_attribute"
    };
    problem(r.index, attribute, code, r.reason.clone())
}

/// The 400 answer's code, message and details for a refused request.
pub fn refusal(problems: &[Problem], events: &[Value]) -> (&'static str, String, Value) {
    let first = &problems[0];
    let attr = |i: usize, name: &str| {
        events
            .get(i)
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(|s| format!(" {name} {s:?}"))
            .unwrap_or_default()
    };
    let message = format!(
        "CloudEvent {}{}{}: {}: {}; {} of {} events bad, nothing was counted",
        first.index,
        attr(first.index, "source"),
        attr(first.index, "id"),
        first.attribute,
        first.reason,
        problems.len(),
        events.len(),
    );
    let details = serde_json::to_value(problems).unwrap_or(Value::Null);
    (first.code, message, details)
}

/// Percent-decodes a `ce-*` header value (CloudEvents HTTP binding 3.1.3.2).
pub fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The CloudEvents attributes of a request's `ce-*` headers (binary mode),
/// or the name of a header whose value is not valid.
pub fn attributes_from_headers<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
) -> Result<Map<String, Value>, String> {
    let mut attributes = Map::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let Some(attribute) = lower.strip_prefix("ce-") else {
            continue;
        };
        let text = std::str::from_utf8(value)
            .ok()
            .and_then(percent_decode)
            .ok_or_else(|| lower.clone())?;
        attributes.insert(attribute.to_owned(), Value::String(text));
    }
    Ok(attributes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tollgate_core::{Aggregation, MeterDef, ValuePath};

    const NOW: i64 = 1_795_000_000_000;

    fn meters() -> Meters {
        [
            ("tokens", Aggregation::Sum, Some("$.usage.tokens")),
            ("calls", Aggregation::Count, None),
            ("peak", Aggregation::Max, None),
        ]
        .into_iter()
        .map(|(n, aggregation, path)| {
            let name = MeterName::new(n).unwrap();
            let def = MeterDef {
                name: name.clone(),
                aggregation,
                unit: String::new(),
                value_path: path.map(|p| ValuePath::parse(p).unwrap()),
            };
            (name, def)
        })
        .collect()
    }

    fn ce(extra: Value) -> Value {
        let mut e = json!({"specversion":"1.0","id":"00001","source":"service-0","type":"tokens",
            "subject":"k_0123456789abcdef","time":"2026-11-18T11:00:00Z","data":{"usage":{"tokens":250}}});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                e.as_object_mut().unwrap().remove(k);
            } else {
                e[k] = v.clone();
            }
        }
        e
    }

    fn convert(e: Value) -> Result<Value, Problem> {
        to_native(3, &e, &meters(), NOW)
    }

    fn fails(e: Value) -> (&'static str, &'static str, String) {
        let p = convert(e).unwrap_err();
        assert_eq!(p.index, 3);
        (p.attribute, p.code, p.reason)
    }

    #[test]
    fn a_cloudevent_becomes_a_meter_event() {
        let n = convert(ce(json!({}))).unwrap();
        assert_eq!(
            n,
            json!({"id": dedupe_id("service-0", "00001"), "meter":"tokens",
                "identity":"key:k_0123456789abcdef","value":250,"time":"2026-11-18T11:00:00Z"})
        );
        // A count meter reads no value; time defaults to the receipt.
        let n = convert(ce(
            json!({"type":"calls","time":null,"data":null,"subject":"key:k1"}),
        ))
        .unwrap();
        assert_eq!(n.get("value"), None);
        assert_eq!(n["time"], json!(NOW));
        assert_eq!(n["identity"], "key:k1");
        // A max meter without a path reads $.value; numeric strings count.
        let n = convert(ce(json!({"type":"peak","data":{"value":"12"}}))).unwrap();
        assert_eq!(n["value"], json!(12));
        let n = convert(ce(json!({"type":"peak","data":{"value":"1.5"}}))).unwrap();
        assert_eq!(n["value"], json!(1.5), "left for validation to refuse");
    }

    #[test]
    fn each_bad_attribute_is_named() {
        for attr in ["specversion", "id", "source", "type", "subject"] {
            let (a, code, _) = fails(ce(json!({ attr: null })));
            assert_eq!((a, code), (attr, "missing_attribute"));
            let (a, code, _) = fails(ce(json!({ attr: "" })));
            assert_eq!((a, code), (attr, "invalid_attribute"));
            let (a, code, _) = fails(ce(json!({ attr: 7 })));
            assert_eq!((a, code), (attr, "invalid_attribute"));
        }
        let (a, code, reason) = fails(ce(json!({"specversion":"0.3"})));
        assert_eq!((a, code), ("specversion", "unsupported_specversion"));
        assert!(reason.contains("only CloudEvents 1.0"), "{reason}");
        assert_eq!(fails(ce(json!({"type":"nope"}))).1, "unknown_meter");
        assert_eq!(
            fails(ce(json!({"type":"com.example.tokens"}))).1,
            "unknown_meter"
        );
        assert_eq!(fails(ce(json!({"subject":"user:x"}))).0, "subject");
        assert_eq!(fails(ce(json!({"time":5}))).0, "time");
        let (a, _, reason) = fails(ce(json!({"data":{"tokens":5}})));
        assert_eq!(a, "data");
        assert!(reason.contains("no value at $.usage.tokens"), "{reason}");
        assert!(fails(ce(json!({"data":null}))).2.contains("missing"));
        assert!(fails(ce(json!({"data":null,"data_base64":"AAAA"})))
            .2
            .contains("data_base64"));
        assert!(fails(ce(json!({"data":{"usage":{"tokens":"many"}}})))
            .2
            .contains("not a number"));
        assert!(fails(ce(json!({"data":{"usage":{"tokens":[1]}}})))
            .2
            .contains("must be a number"));
        assert_eq!(convert(json!([1])).unwrap_err().attribute, "event");
    }

    #[test]
    fn all_or_the_problems() {
        let good = ce(json!({}));
        let bad = ce(json!({"id": null}));
        assert_eq!(
            to_native_all(&[good.clone(), good.clone()], &meters(), NOW)
                .unwrap()
                .len(),
            2
        );
        let problems =
            to_native_all(&[good.clone(), bad.clone(), bad], &meters(), NOW).unwrap_err();
        assert_eq!(problems.iter().map(|p| p.index).collect::<Vec<_>>(), [1, 2]);
        let events = [good, ce(json!({"id": null}))];
        let (code, message, details) = refusal(&problems, &events);
        assert_eq!(code, "missing_attribute");
        assert!(
            message.starts_with("CloudEvent 1 source \"service-0\": id: missing"),
            "{message}"
        );
        assert!(
            message.contains("2 of 2 events bad, nothing was counted"),
            "{message}"
        );
        assert_eq!(details[1]["index"], 2);
    }

    #[test]
    fn validation_rejections_use_attribute_names() {
        let r = Rejection {
            index: 1,
            field: "meter",
            reason: "unknown meter \"x\"".into(),
        };
        assert_eq!(
            (from_rejection(&r).attribute, from_rejection(&r).code),
            ("type", "unknown_meter")
        );
        let r = Rejection {
            index: 1,
            field: "time",
            reason: "older than the dedupe window of 35 days".into(),
        };
        assert_eq!(
            (from_rejection(&r).attribute, from_rejection(&r).code),
            ("time", "invalid_attribute")
        );
    }

    #[test]
    fn headers_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b%22%25").as_deref(), Some("a b\"%"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None, "not UTF-8");
        let headers: [(&str, &[u8]); 4] = [
            ("CE-SpecVersion", b"1.0"),
            ("ce-source", b"svc%2F1"),
            ("content-type", b"application/json"),
            ("ce-id", b"1"),
        ];
        let attrs = attributes_from_headers(headers).unwrap();
        assert_eq!(
            Value::Object(attrs),
            json!({"specversion":"1.0","source":"svc/1","id":"1"})
        );
        let bad: [(&str, &[u8]); 1] = [("ce-id", b"%")];
        assert_eq!(attributes_from_headers(bad).unwrap_err(), "ce-id");
    }
}
