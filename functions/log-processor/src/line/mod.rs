//! The two log line formats tollgate counts, and which requests count.
//!
//! 1. The API Gateway access log line, in [`ACCESS_LOG_FORMAT`] (which
//!    `template.yaml` configures for the stage).
//! 2. An application line that the provider's backend prints itself: one
//!    JSON object with a `"tollgate": 1` marker (see [`AppLine`]).
//!
//! Every other line is skipped, never an error: a log group holds much more
//! than tollgate's lines (Lambda's START/END/REPORT lines, debug output).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use tollgate_core::{count_access, AccessCharge, AccessRequest, Ipv6Prefix, MeterName, UnixMillis};

use crate::payload::{self, truncate, AccessFields, Message, Scalar, Scan};
use tollgate_core::StatusRanges;

/// The access log format (defined beside its reader, see [`crate::payload`]).
pub use crate::payload::ACCESS_LOG_FORMAT;

/// The gateway responses that are not counted for the caller (the rule
/// lives in `tollgate_core::counting`).
pub use tollgate_core::counting::GATEWAY_DENIALS;
/// Why a valid line is not counted.
pub use tollgate_core::NotCounted;

/// The longest line read (defined beside the readers, see [`crate::payload`]).
pub use crate::payload::MAX_LINE_BYTES;

/// Epoch-millisecond times below this (March 1973) are taken for seconds and rejected.
const MIN_EPOCH_MS: i64 = 100_000_000_000;

/// What the counting rules need.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Statuses of access-log requests that count.
    pub count_status: StatusRanges,
    /// The prefix an IPv6 source address is charged by (`TOLLGATE_ANONYMOUS_IPV6_PREFIX`).
    pub ipv6_prefix: Ipv6Prefix,
}

/// Where a counted line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// An API Gateway access log line.
    Access,
    /// An application line with the `tollgate` marker.
    App,
}

/// One countable usage event read from a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage<'a> {
    /// The line's format.
    pub kind: LineKind,
    /// The meter, as written (checked when aggregated); `None` for `requests`.
    pub meter: Option<Cow<'a, str>>,
    /// The identity text, as written (checked when aggregated).
    pub identity: Cow<'a, str>,
    /// A second identity the same request is charged to, as written: an
    /// allowed anonymous request's `referer:<host>` identity.
    pub referer: Option<Cow<'a, str>>,
    /// When it happened, epoch milliseconds.
    pub at: UnixMillis,
    /// The value (1 for a request).
    pub value: u64,
}

/// Why a line is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// A short, stable reason (`not_json`, `too_long`, `invalid_json`,
    /// `unknown_format`, `invalid_field`).
    pub reason: &'static str,
    /// Details, never the line itself.
    pub detail: String,
}

impl Skip {
    fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Skip {
            reason,
            detail: detail.into(),
        }
    }
}

/// What a line turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// A usage event to count.
    Count(Usage<'a>),
    /// A valid tollgate line that does not count.
    NotCounted(NotCounted),
    /// Not a tollgate line, or an invalid one.
    Skipped(Skip),
}

/// A number that may come as a JSON number or as a numeric string; `"-"`
/// and `""` are absent values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
    Absent,
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                i64::try_from(v).map(Num::Int).or(Ok(Num::Float(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num::Float(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Num, E> {
                Ok(Num::Absent)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                Num::from_text(v)
                    .ok_or_else(|| E::custom(format!("{:?} is not a number", truncate(v, 24))))
            }
        }
        d.deserialize_any(V)
    }
}

impl Num {
    /// A numeric string; `None` if it is not one.
    fn from_text(v: &str) -> Option<Num> {
        let v = v.trim();
        if v.is_empty() || v == "-" {
            return Some(Num::Absent);
        }
        if let Ok(i) = v.parse::<i64>() {
            return Some(Num::Int(i));
        }
        v.parse::<f64>().ok().map(Num::Float)
    }

    fn as_i64(self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(i),
            Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            _ => None,
        }
    }
}

/// A time given as epoch milliseconds or an RFC 3339 text.
#[derive(Debug, Clone, PartialEq)]
enum Time<'a> {
    Millis(Num),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Time<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Time<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 time")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Time::Millis(Num::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Time::Millis(
                    i64::try_from(v).map_or(Num::Float(v as f64), Num::Int),
                ))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Time::Millis(Num::Float(v)))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Time::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Time::Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of both formats; which ones are present says which format a line is in.
#[derive(Debug, Default, PartialEq, Deserialize)]
struct RawLine<'a> {
    /// The application line marker.
    #[serde(default)]
    tollgate: Option<serde_json::Value>,
    #[serde(rename = "requestId", default, borrow)]
    request_id: Option<Cow<'a, str>>,
    #[serde(rename = "requestTimeEpoch", default)]
    request_time_epoch: Option<Num>,
    #[serde(default)]
    status: Option<Num>,
    #[serde(rename = "errorType", default, borrow)]
    error_type: Option<Cow<'a, str>>,
    #[serde(rename = "principalId", default, borrow)]
    principal_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    identity: Option<Cow<'a, str>>,
    #[serde(rename = "authorizerError", default, borrow)]
    authorizer_error: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    referer: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    meter: Option<Cow<'a, str>>,
    #[serde(default)]
    value: Option<Num>,
    #[serde(default, borrow)]
    time: Option<Time<'a>>,
}

/// Reads a flat JSON object of plain values in one pass, borrowing its
/// strings; `None` (leaving the line to `serde_json`) for anything it does
/// not read exactly as `serde_json` reads it into [`RawLine`]: nested
/// values, numbers other than plain non-negative integers, surrogate
/// escapes, duplicate fields, a field of the wrong type, trailing text.
fn raw_line_fast(json: &str) -> Option<RawLine<'_>> {
    raw_line_scan(Scan::new(json))
}

/// [`raw_line_fast`] on a message as the payload holds it: JSON string
/// content with only one-character escapes (see [`Message::escaped`]). It
/// reads what [`raw_line_fast`] reads from the unescaped message, or
/// declines (any string with an escape in the line's own JSON, a line that
/// does not start with `{` or is too long).
fn raw_line_escaped(escaped: &str) -> Option<RawLine<'_>> {
    if escaped.len() > MAX_LINE_BYTES || !escaped.starts_with('{') {
        return None;
    }
    raw_line_scan(Scan::escaped(escaped))
}

impl<'a> From<AccessFields<'a>> for RawLine<'a> {
    fn from(f: AccessFields<'a>) -> Self {
        RawLine {
            request_id: Some(Cow::Borrowed(f.request_id)),
            request_time_epoch: Some(Num::Int(f.request_time_epoch)),
            status: Some(Num::Int(f.status)),
            error_type: Some(Cow::Borrowed(f.error_type)),
            principal_id: Some(Cow::Borrowed(f.principal_id)),
            identity: Some(Cow::Borrowed(f.identity)),
            authorizer_error: Some(Cow::Borrowed(f.authorizer_error)),
            ip: Some(Cow::Borrowed(f.ip)),
            referer: Some(Cow::Borrowed(f.referer)),
            ..RawLine::default()
        }
    }
}

fn raw_line_scan(mut p: Scan<'_>) -> Option<RawLine<'_>> {
    fn text<'a>(v: Scalar<'a>) -> Option<Option<Cow<'a, str>>> {
        match v {
            Scalar::Null => Some(None),
            Scalar::Str(s) => Some(Some(s)),
            Scalar::Int(_) | Scalar::Bool(_) => None,
        }
    }
    fn num(v: Scalar<'_>) -> Option<Option<Num>> {
        match v {
            Scalar::Null => Some(None),
            Scalar::Int(i) => Some(Some(Num::Int(i))),
            Scalar::Str(s) => Num::from_text(&s).map(Some),
            Scalar::Bool(_) => None,
        }
    }
    let mut raw = RawLine::default();
    let mut seen = 0u16;
    p.object(|p, key| {
        // By length first: most keys of an access line are none of these.
        let field = match (key.len(), key) {
            (8, "tollgate") => 0,
            (9, "requestId") => 1,
            (16, "requestTimeEpoch") => 2,
            (6, "status") => 3,
            (9, "errorType") => 4,
            (11, "principalId") => 5,
            (8, "identity") => 6,
            (15, "authorizerError") => 7,
            (5, "meter") => 8,
            (5, "value") => 9,
            (4, "time") => 10,
            (2, "ip") => 11,
            (7, "referer") => 12,
            _ => return p.skip_value(),
        };
        if seen & (1 << field) != 0 {
            return None;
        }
        seen |= 1 << field;
        let v = p.scalar()?;
        match field {
            0 => {
                raw.tollgate = match v {
                    Scalar::Null => None,
                    Scalar::Str(s) => Some(serde_json::Value::String(s.into_owned())),
                    Scalar::Int(i) => Some(serde_json::Value::from(u64::try_from(i).ok()?)),
                    Scalar::Bool(b) => Some(serde_json::Value::Bool(b)),
                }
            }
            1 => raw.request_id = text(v)?,
            2 => raw.request_time_epoch = num(v)?,
            3 => raw.status = num(v)?,
            4 => raw.error_type = text(v)?,
            5 => raw.principal_id = text(v)?,
            6 => raw.identity = text(v)?,
            7 => raw.authorizer_error = text(v)?,
            8 => raw.meter = text(v)?,
            9 => raw.value = num(v)?,
            11 => raw.ip = text(v)?,
            12 => raw.referer = text(v)?,
            _ => {
                raw.time = match v {
                    Scalar::Null => None,
                    Scalar::Int(i) => Some(Time::Millis(Num::Int(i))),
                    Scalar::Str(s) => Some(Time::Text(s)),
                    Scalar::Bool(_) => return None,
                }
            }
        }
        Some(())
    })?;
    p.end()?;
    Some(raw)
}

/// Whether the one-pass reader agrees with `serde_json` on a line's JSON
/// (the JSON object in `message`, see [`parse_line`]): it either declines
/// it or reads exactly what `serde_json` reads. For the tests and the fuzz
/// target.
pub fn fast_line_agrees(message: &str) -> bool {
    escaped_line_agrees(message)
        && match json_part(message) {
            None => true,
            Some(json) => match raw_line_fast(json) {
                None => true,
                Some(fast) => serde_json::from_str::<RawLine<'_>>(json).ok() == Some(fast),
            },
        }
}

/// Whether reading a message from its escaped form (as `serde_json`
/// escapes it, and with `/` escaped too) agrees with reading its text.
fn escaped_line_agrees(message: &str) -> bool {
    let Ok(quoted) = serde_json::to_string(message) else {
        return false;
    };
    let Some(escaped) = quoted.get(1..quoted.len() - 1) else {
        return false;
    };
    let rules = Rules {
        count_status: StatusRanges::default_counted(),
        ipv6_prefix: tollgate_core::Ipv6Prefix::DEFAULT,
    };
    [escaped.to_owned(), escaped.replace('/', "\\/")]
        .iter()
        .all(|escaped| {
            let quoted = format!("\"{escaped}\"");
            let Some(read) = crate::payload::read_message(&quoted) else {
                return false;
            };
            if read.as_str() != message {
                return false;
            }
            let agree = match read.escaped().and_then(raw_line_escaped) {
                None => true,
                Some(fast) => json_part(message).and_then(raw_line_fast) == Some(fast),
            };
            // The template reader, as the payload reader ran it, reads what
            // the general escaped reader reads, and so it does on its own.
            let agree = agree
                && read.escaped().and_then(payload::read_escaped) == read.access()
                && match read.access() {
                    None => true,
                    Some(fields) => {
                        read.escaped().and_then(raw_line_escaped) == Some(fields.into())
                    }
                };
            agree && parse_message(&read, 7, &rules) == parse_line(message, 7, &rules)
        })
}

/// A value API Gateway had none for: `""` or `"-"`.
fn present<'s, 'a>(v: &'s Option<Cow<'a, str>>) -> Option<&'s Cow<'a, str>> {
    v.as_ref()
        .filter(|s| !s.is_empty() && s.as_ref() != "-" && !s.trim().is_empty())
}

/// The JSON object in a message: the message itself, or what follows the
/// first tab when a runtime prefixed it (`<time>\t<request id>\tINFO\t{...}`).
fn json_part(message: &str) -> Option<&str> {
    let m = message.trim_ascii();
    if m.starts_with('{') {
        return Some(m);
    }
    m.find("\t{").map(|i| &m[i + 1..])
}

/// Classifies one log line. `event_time` (the log event's timestamp) is the
/// fallback time of a line that has none.
pub fn parse_line<'a>(message: &'a str, event_time: UnixMillis, rules: &Rules) -> Line<'a> {
    if message.len() > MAX_LINE_BYTES {
        return Line::Skipped(Skip::new(
            "too_long",
            format!("{} bytes; at most {MAX_LINE_BYTES}", message.len()),
        ));
    }
    let Some(json) = json_part(message) else {
        return Line::Skipped(Skip::new("not_json", "no JSON object"));
    };
    let raw: RawLine<'a> = match raw_line_fast(json) {
        Some(raw) => raw,
        None => match serde_json::from_str(json) {
            Ok(raw) => raw,
            Err(e) => return Line::Skipped(Skip::new("invalid_json", e.to_string())),
        },
    };
    classify(raw, event_time, rules)
}

/// Classifies a log event's message: [`parse_line`] on its text, read
/// straight from its escaped form when it was kept so and the one-pass
/// reader takes it there (the same result, without unescaping it).
pub fn parse_message<'a>(
    message: &'a Message<'_>,
    event_time: UnixMillis,
    rules: &Rules,
) -> Line<'a> {
    if let Some(fields) = message.access() {
        return classify(fields.into(), event_time, rules);
    }
    if let Some(raw) = message.escaped().and_then(raw_line_escaped) {
        return classify(raw, event_time, rules);
    }
    parse_line(message.as_str(), event_time, rules)
}

/// Classifies a line's fields.
fn classify<'a>(raw: RawLine<'a>, event_time: UnixMillis, rules: &Rules) -> Line<'a> {
    if let Some(marker) = &raw.tollgate {
        let marker_ok = marker.as_u64() == Some(1) || marker.as_bool() == Some(true);
        return app_line(marker_ok, raw, event_time);
    }
    if raw.status.is_some() && raw.request_id.is_some() {
        return access_line(raw, event_time, rules);
    }
    Line::Skipped(Skip::new(
        "unknown_format",
        "neither an access log line nor a tollgate line",
    ))
}

fn invalid(detail: impl Into<String>) -> Line<'static> {
    Line::Skipped(Skip::new("invalid_field", detail))
}

fn access_line<'a>(raw: RawLine<'a>, event_time: UnixMillis, rules: &Rules) -> Line<'a> {
    let Some(status) = raw.status.and_then(Num::as_i64) else {
        return invalid("status is not a number");
    };
    let Some(status) = u16::try_from(status)
        .ok()
        .filter(|s| (100..=599).contains(s))
    else {
        return invalid(format!("status {status} is not an HTTP status"));
    };
    let at = match raw.request_time_epoch {
        None | Some(Num::Absent) => event_time,
        Some(n) => match n.as_i64().filter(|t| *t >= MIN_EPOCH_MS) {
            Some(t) => t,
            None => return invalid("requestTimeEpoch is not epoch milliseconds"),
        },
    };
    fn text<'s>(v: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
        present(v).map(|v| v.as_ref())
    }
    let request = AccessRequest {
        status,
        error_type: text(&raw.error_type),
        authorizer_error: text(&raw.authorizer_error),
        identity: text(&raw.identity),
        principal_id: text(&raw.principal_id),
        ip: text(&raw.ip),
        referer: text(&raw.referer),
    };
    let (identity, referer) = match count_access(&request, &rules.count_status, rules.ipv6_prefix) {
        AccessCharge::NotCounted(why) => return Line::NotCounted(why),
        AccessCharge::SourceIp(identity) => (Cow::Owned(identity.to_string()), None),
        AccessCharge::Caller { principal, referer } => {
            let identity = if principal {
                raw.principal_id
            } else {
                raw.identity
            };
            let Some(identity) = identity else {
                return Line::NotCounted(NotCounted::NoIdentity);
            };
            (identity, raw.referer.filter(|_| referer))
        }
    };
    Line::Count(Usage {
        kind: LineKind::Access,
        meter: None,
        identity,
        referer,
        at,
        value: 1,
    })
}

fn app_line<'a>(marker_ok: bool, raw: RawLine<'a>, event_time: UnixMillis) -> Line<'a> {
    if !marker_ok {
        return invalid("tollgate must be 1");
    }
    let Some(identity) = present(&raw.identity).cloned() else {
        return invalid("identity is missing");
    };
    let meter = match present(&raw.meter) {
        Some(m) if m.as_ref() == MeterName::REQUESTS => None,
        Some(m) => Some(m.clone()),
        None if raw.meter.is_some() => return invalid("meter is empty"),
        None => None,
    };
    let value = match raw.value {
        None => 1,
        Some(Num::Absent) => return invalid("value is empty"),
        Some(Num::Int(i)) => {
            match u64::try_from(i).map(tollgate_core::ceiling::check_event_value) {
                Ok(Ok(v)) => v,
                _ => return invalid("value must be a whole number 0 to 9e15"),
            }
        }
        Some(Num::Float(f)) => match tollgate_core::meter::parse_value(f) {
            Ok(v) => v,
            Err(e) => return invalid(e.to_string()),
        },
    };
    let at = match raw.time {
        None => event_time,
        Some(Time::Millis(n)) => match n.as_i64().filter(|t| *t >= MIN_EPOCH_MS) {
            Some(t) => t,
            None => return invalid("time is not epoch milliseconds"),
        },
        Some(Time::Text(text)) => match chrono::DateTime::parse_from_rfc3339(text.trim()) {
            Ok(t) => t.timestamp_millis(),
            Err(_) => return invalid("time is not RFC 3339"),
        },
    };
    Line::Count(Usage {
        kind: LineKind::App,
        meter,
        identity,
        referer: None,
        at,
        value,
    })
}

#[cfg(test)]
mod tests;
