//! Checking meter events one by one. Each rejection names the event's
//! index, the field and the reason; a later event with the id of an earlier
//! valid one in the same request is a duplicate.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};
use tollgate_core::ceiling::RequestTotals;
use tollgate_core::meter::parse_value;
use tollgate_core::{
    Aggregation, Aggregator, CountedWindows, Identity, MeterDef, MeterName, UnixMillis,
};

/// The longest event id, in characters.
pub const MAX_ID_CHARS: usize = 255;

/// A valid event, ready to be counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its position in the request.
    pub index: usize,
    /// The sender's id of the event: the unit of dedupe.
    pub id: String,
    /// The meter.
    pub meter: MeterName,
    /// The meter's aggregation.
    pub aggregation: Aggregation,
    /// Who is metered.
    pub identity: Identity,
    /// The value (1 when not given).
    pub value: u64,
    /// When it happened, epoch milliseconds.
    pub time: UnixMillis,
}

/// Why one event was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The event's position in the request.
    pub index: usize,
    /// The field at fault (`event` when it is the event itself).
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// What checking one event found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Valid, and the first of its id in the request.
    Valid(Event),
    /// Valid, but an earlier event of the request has the same id.
    Duplicate {
        /// The event's position.
        index: usize,
        /// Its id.
        id: String,
    },
    /// Invalid.
    Rejected(Rejection),
}

/// What events are checked against.
#[derive(Debug, Clone)]
pub struct Rules<'a> {
    /// The defined meters, by name.
    pub meters: &'a HashMap<MeterName, MeterDef>,
    /// Now, epoch milliseconds.
    pub now: UnixMillis,
    /// Events older than this (ms) are rejected.
    pub dedupe_window_ms: i64,
    /// Events further than this (ms) in the future are rejected.
    pub future_tolerance_ms: i64,
}

/// Checks every event of a request, in order. The values of a `sum`
/// meter's events for one identity add up to at most
/// [`tollgate_core::ceiling::MAX_REQUEST_ADD`] per request: the events past
/// it are rejected (`value`), and nothing of them is counted.
pub fn validate_all(values: &[Value], rules: &Rules<'_>) -> Vec<Checked> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(values.len());
    let mut totals = RequestTotals::new();
    values
        .iter()
        .enumerate()
        .map(|(index, value)| match validate_event(index, value, rules) {
            Ok(event) => {
                // `value` outlives `seen`, and the id is a string inside it.
                let id = value.get("id").and_then(Value::as_str).unwrap_or_default();
                if seen.contains(id) {
                    return Checked::Duplicate {
                        index,
                        id: event.id,
                    };
                }
                if event.aggregation == Aggregation::Sum {
                    if let Err(e) = totals.admit(&event.meter, &event.identity, event.value) {
                        return Checked::Rejected(Rejection {
                            index,
                            field: "value",
                            reason: e.to_string(),
                        });
                    }
                }
                seen.insert(id);
                Checked::Valid(event)
            }
            Err(rejection) => Checked::Rejected(rejection),
        })
        .collect()
}

/// Checks one event.
pub fn validate_event(index: usize, value: &Value, rules: &Rules<'_>) -> Result<Event, Rejection> {
    let reject = |field: &'static str, reason: String| Rejection {
        index,
        field,
        reason,
    };
    let Some(obj) = value.as_object() else {
        return Err(reject("event", "an event must be a JSON object".into()));
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => return Err(reject("id", "missing".into())),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(reject("id", "must not be empty".into()))
        }
        Some(Value::String(s)) if s.chars().count() > MAX_ID_CHARS => {
            return Err(reject(
                "id",
                format!("is longer than {MAX_ID_CHARS} characters"),
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(reject("id", "must be a string".into())),
    };
    let meter_name = match string_field(obj, "meter") {
        Ok(s) => s,
        Err(reason) => return Err(reject("meter", reason)),
    };
    let meter = MeterName::new(meter_name).map_err(|e| reject("meter", e.to_string()))?;
    let def = rules.meters.get(&meter).ok_or_else(|| {
        reject(
            "meter",
            format!("unknown meter {meter:?}: define it with `tollgate meters put`"),
        )
    })?;
    let identity_text = string_field(obj, "identity").map_err(|r| reject("identity", r))?;
    let identity: Identity = identity_text
        .parse()
        .map_err(|e: tollgate_core::CoreError| reject("identity", e.to_string()))?;
    let value = match obj.get("value") {
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) => parse_value(v as f64).map_err(|e| reject("value", e.to_string()))?,
            None => parse_value(n.as_f64().unwrap_or(f64::NAN))
                .map_err(|e| reject("value", e.to_string()))?,
        },
        Some(_) => return Err(reject("value", "must be a number".into())),
    };
    let time = match obj.get("time") {
        None | Some(Value::Null) => return Err(reject("time", "missing".into())),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| reject("time", format!("not an RFC 3339 timestamp: {e}")))?,
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| reject("time", "epoch milliseconds must be a whole number".into()))?,
        Some(_) => {
            return Err(reject(
                "time",
                "must be an RFC 3339 string or epoch milliseconds".into(),
            ))
        }
    };
    if time < rules.now.saturating_sub(rules.dedupe_window_ms) {
        return Err(reject(
            "time",
            format!(
                "older than the dedupe window of {} days",
                rules.dedupe_window_ms / 86_400_000
            ),
        ));
    }
    if time > rules.now.saturating_add(rules.future_tolerance_ms) {
        return Err(reject(
            "time",
            format!(
                "more than {} minutes in the future",
                rules.future_tolerance_ms / 60_000
            ),
        ));
    }
    match obj.get("dimensions") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(_) => return Err(reject("dimensions", "must be an object".into())),
    }
    Ok(Event {
        index,
        id,
        meter,
        aggregation: def.aggregation,
        identity,
        value,
        time,
    })
}

fn string_field<'v>(obj: &'v Map<String, Value>, name: &str) -> Result<&'v str, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Err("missing".into()),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err("must be a string".into()),
    }
}

/// Aggregates events into one increment per counter and window: each
/// event in the windows `windows` counts its meter in (for its identity's kind).
pub fn aggregate<'e>(
    events: impl IntoIterator<Item = &'e Event>,
    windows: &CountedWindows,
) -> Result<Aggregator, tollgate_core::CoreError> {
    let mut agg = Aggregator::new();
    for e in events {
        agg.add(
            &e.meter,
            e.aggregation,
            &e.identity,
            e.time,
            e.value,
            windows.of(&e.meter, e.identity.is_anonymous()),
        )?;
    }
    Ok(agg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use tollgate_core::Window;

    const NOW: i64 = 1_795_000_000_000;

    /// A one-day dedupe window and no tolerance for future times.
    fn day_rules(m: &HashMap<MeterName, MeterDef>) -> Rules<'_> {
        Rules {
            meters: m,
            now: NOW,
            dedupe_window_ms: 86_400_000,
            future_tolerance_ms: 0,
        }
    }

    fn meters() -> HashMap<MeterName, MeterDef> {
        [("tokens", Aggregation::Sum), ("calls", Aggregation::Count)]
            .into_iter()
            .map(|(n, a)| {
                let name = MeterName::new(n).unwrap();
                (
                    name.clone(),
                    MeterDef {
                        name,
                        aggregation: a,
                        unit: String::new(),
                        value_path: None,
                    },
                )
            })
            .collect()
    }

    fn check(v: Value) -> Result<Event, Rejection> {
        let m = meters();
        let rules = Rules {
            meters: &m,
            now: NOW,
            dedupe_window_ms: 35 * 86_400_000,
            future_tolerance_ms: 300_000,
        };
        validate_event(7, &v, &rules)
    }

    fn field_of(v: Value) -> (&'static str, String) {
        let r = check(v).unwrap_err();
        assert_eq!(r.index, 7);
        (r.field, r.reason)
    }

    #[test]
    fn a_valid_event() {
        let e = check(json!({"id":"e1","meter":"tokens","identity":"key:k1","value":250,"time":NOW,"dimensions":{"model":"x"}})).unwrap();
        assert_eq!(e.value, 250);
        assert_eq!(e.aggregation, Aggregation::Sum);
        assert_eq!(e.identity.to_string(), "key:k1");
        let e = check(json!({"id":"e1","meter":"calls","identity":"ip:::ffff:10.0.0.1","time":"2026-11-18T11:06:40.5+00:00"})).unwrap();
        assert_eq!(e.value, 1, "value defaults to 1");
        assert_eq!(e.time, NOW + 500);
        assert_eq!(e.identity.to_string(), "ip:10.0.0.1");
    }

    #[test]
    fn each_rejection_names_its_field() {
        let base = json!({"id":"e","meter":"tokens","identity":"key:k","value":1,"time":NOW});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        let without = |k: &str| {
            let mut b = base.clone();
            b.as_object_mut().unwrap().remove(k);
            b
        };
        assert_eq!(field_of(json!(5)).0, "event");
        assert_eq!(field_of(without("id")), ("id", "missing".into()));
        assert_eq!(field_of(with("id", json!(""))).0, "id");
        assert_eq!(field_of(with("id", json!(12))).0, "id");
        assert!(check(with("id", json!("é".repeat(255)))).is_ok());
        assert_eq!(field_of(with("id", json!("x".repeat(256)))).0, "id");
        assert!(field_of(with("meter", json!("nope")))
            .1
            .contains("unknown meter"));
        assert_eq!(field_of(with("meter", json!("Bad#Meter"))).0, "meter");
        assert_eq!(field_of(without("meter")).0, "meter");
        assert_eq!(field_of(with("identity", json!("user:x"))).0, "identity");
        assert_eq!(field_of(with("identity", json!(1))).0, "identity");
        assert!(field_of(with("value", json!(-1))).1.contains("negative"));
        assert!(field_of(with("value", json!(1.5))).1.contains("whole"));
        assert_eq!(field_of(with("value", json!("5"))).0, "value");
        assert_eq!(field_of(with("value", json!(1e300))).0, "value");
        assert_eq!(field_of(without("time")).0, "time");
        assert_eq!(field_of(with("time", json!("yesterday"))).0, "time");
        assert_eq!(field_of(with("time", json!(1.5))).0, "time");
        assert!(field_of(with("time", json!(NOW - 36 * 86_400_000)))
            .1
            .contains("older than the dedupe window of 35 days"));
        assert!(check(with("time", json!(NOW - 35 * 86_400_000))).is_ok());
        assert!(field_of(with("time", json!(NOW + 300_001)))
            .1
            .contains("5 minutes in the future"));
        assert!(check(with("time", json!(NOW + 300_000))).is_ok());
        assert_eq!(field_of(with("dimensions", json!([1]))).0, "dimensions");
    }

    #[test]
    fn later_ids_in_a_request_are_duplicates() {
        let m = meters();
        let rules = day_rules(&m);
        let ev =
            |id: &str, meter: &str| json!({"id":id,"meter":meter,"identity":"key:k","time":NOW});
        let checked = validate_all(
            &[
                ev("a", "nope"),
                ev("a", "tokens"),
                ev("b", "tokens"),
                ev("a", "calls"),
            ],
            &rules,
        );
        assert!(matches!(checked[0], Checked::Rejected(_)));
        assert!(
            matches!(checked[1], Checked::Valid(_)),
            "a rejected event does not claim its id"
        );
        assert!(matches!(checked[2], Checked::Valid(_)));
        assert_eq!(
            checked[3],
            Checked::Duplicate {
                index: 3,
                id: "a".into()
            }
        );
    }

    /// Issue 16 item 7: 1,000 events of 9e15 for one counter (9e18, half
    /// of `u64::MAX`) are no longer accepted in one request: the events
    /// past the per-request ceiling are rejected, naming the value.
    #[test]
    fn a_request_adds_at_most_the_ceiling_to_one_counter() {
        use tollgate_core::ceiling::{MAX_EVENT_VALUE, MAX_REQUEST_ADD};
        let m = meters();
        let rules = day_rules(&m);
        assert_eq!(MAX_EVENT_VALUE, 9_000_000_000_000_000);
        let ev = |id: &str, meter: &str, who: &str, value: u64| json!({"id":id,"meter":meter,"identity":who,"value":value,"time":NOW});
        let mut values = vec![
            ev("a", "tokens", "key:k", MAX_REQUEST_ADD - 5),
            ev("b", "tokens", "key:k", 6),
            ev("a", "tokens", "key:k", 6),
            ev("c", "tokens", "key:k", 5),
            ev("d", "tokens", "key:other", MAX_EVENT_VALUE),
            // A count meter counts events, whatever their value.
            ev("e", "calls", "key:k", MAX_EVENT_VALUE),
            ev("f", "calls", "key:k", MAX_EVENT_VALUE),
            ev("g", "tokens", "key:k", MAX_EVENT_VALUE + 1),
        ];
        values.extend(
            (0..1_000).map(|i| ev(&format!("big{i}"), "tokens", "key:big", MAX_EVENT_VALUE)),
        );
        let checked = validate_all(&values, &rules);
        let kinds: Vec<&str> = checked[..8]
            .iter()
            .map(|c| match c {
                Checked::Valid(_) => "valid",
                Checked::Duplicate { .. } => "duplicate",
                Checked::Rejected(_) => "rejected",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "valid",
                "rejected",
                "duplicate",
                "valid",
                "valid",
                "valid",
                "valid",
                "rejected"
            ]
        );
        let Checked::Rejected(r) = &checked[1] else {
            unreachable!()
        };
        assert_eq!((r.index, r.field), (1, "value"));
        assert!(r.reason.contains("add up to more than"), "{}", r.reason);
        let big: Vec<bool> = checked[8..]
            .iter()
            .map(|c| matches!(c, Checked::Valid(_)))
            .collect();
        assert_eq!(
            big.iter().filter(|v| **v).count(),
            1,
            "only the first of 9e15 fits"
        );
        assert!(big[0]);
    }

    #[test]
    fn aggregation_collapses_counters() {
        let m = meters();
        let rules = day_rules(&m);
        let values: Vec<Value> = (0..10)
            .map(|i| json!({"id":format!("e{i}"),"meter":"tokens","identity":"key:k","value":i,"time":NOW}))
            .collect();
        let events: Vec<Event> = validate_all(&values, &rules)
            .into_iter()
            .filter_map(|c| match c {
                Checked::Valid(e) => Some(e),
                _ => None,
            })
            .collect();
        let windows = [Window::Day, Window::Month];
        let incs = aggregate(&events, &CountedWindows::configured(&windows, &windows))
            .unwrap()
            .into_increments();
        assert_eq!(incs.len(), 2);
        assert!(incs.iter().all(|(_, _, n)| *n == 45));
    }
}
