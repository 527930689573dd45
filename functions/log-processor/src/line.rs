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
use tollgate_core::{count_access, AccessCharge, AccessRequest, MeterName, UnixMillis};

use crate::access::{self, AccessFields};
use crate::config::StatusRanges;
use crate::decode::{truncate, Message, Scalar, Scan};

/// The API Gateway access log format that `template.yaml` sets for the REST
/// API stage (`AccessLogSetting.Format`). One JSON object per request.
///
/// - `requestTimeEpoch` and `status` are numbers (API Gateway always sets them).
/// - `identity` is the authorizer's context value `identity` (`key:<id>`,
///   `ip:<addr>`, `referer:<host>`); `principalId` is the fallback.
/// - `errorType` (`$context.error.responseType`) names the gateway response
///   when API Gateway answered itself (`ACCESS_DENIED`, `UNAUTHORIZED`,
///   `AUTHORIZER_FAILURE`, `THROTTLED`, ...), and `integrationStatus` is `-`
///   when the request never reached the integration.
/// - `referer` is the authorizer's context value `referer` (`referer:<host>`
///   for an anonymous request when Referer limiting is on, else `-`).
/// - Values that API Gateway has no value for come out as `"-"` or `""`.
pub const ACCESS_LOG_FORMAT: &str = r#"{"requestId":"$context.requestId","requestTimeEpoch":$context.requestTimeEpoch,"ip":"$context.identity.sourceIp","method":"$context.httpMethod","resourcePath":"$context.resourcePath","status":$context.status,"integrationStatus":"$context.integrationStatus","errorType":"$context.error.responseType","principalId":"$context.authorizer.principalId","identity":"$context.authorizer.identity","authorizerError":"$context.authorizer.error","referer":"$context.authorizer.referer"}"#;

/// The gateway responses that are not counted for the caller (the rule
/// lives in `tollgate_core::counting`).
pub use tollgate_core::counting::GATEWAY_DENIALS;
/// Why a valid line is not counted.
pub use tollgate_core::NotCounted;

/// Lines longer than this are skipped without parsing (tollgate's lines are
/// a few hundred bytes; CloudWatch Logs allows 256 KB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Epoch-millisecond times below this (March 1973) are taken for seconds and rejected.
const MIN_EPOCH_MS: i64 = 100_000_000_000;

/// What the counting rules need.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Statuses of access-log requests that count.
    pub count_status: StatusRanges,
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
    };
    [escaped.to_owned(), escaped.replace('/', "\\/")]
        .iter()
        .all(|escaped| {
            let quoted = format!("\"{escaped}\"");
            let Some(read) = crate::decode::read_message(&quoted) else {
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
                && read.escaped().and_then(access::read_escaped) == read.access()
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
    let (identity, referer) = match count_access(&request, &rules.count_status) {
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
        Some(Num::Int(i)) => match u64::try_from(i) {
            Ok(v) if v as f64 <= 9.0e15 => v,
            _ => return invalid("value must be a whole number 0 to 9e15"),
        },
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
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rules() -> Rules {
        Rules {
            count_status: StatusRanges::default_counted(),
        }
    }

    /// An access log line as API Gateway renders [`ACCESS_LOG_FORMAT`].
    fn access(status: &str, identity: &str, error_type: &str, authorizer_error: &str) -> String {
        ACCESS_LOG_FORMAT
            .replace("$context.requestId", "c0ffee00-1111-2222-3333-444455556666")
            .replace("$context.requestTimeEpoch", "1795000000123")
            .replace("$context.identity.sourceIp", "203.0.113.7")
            .replace("$context.httpMethod", "GET")
            .replace("$context.resourcePath", "/v1/lookup/{ip}")
            .replace("$context.status", status)
            .replace("$context.integrationStatus", "200")
            .replace("$context.error.responseType", error_type)
            .replace("$context.authorizer.principalId", "cust_1")
            .replace("$context.authorizer.identity", identity)
            .replace("$context.authorizer.error", authorizer_error)
            .replace("$context.authorizer.referer", "-")
    }

    #[test]
    fn the_format_is_json_once_rendered() {
        let line = access("200", "key:k1", "-", "-");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["requestTimeEpoch"], 1795000000123i64);
        assert!(!line.contains('$'));
    }

    #[test]
    fn counts_an_access_line() {
        let line = access("200", "key:k1", "-", "-");
        assert_eq!(
            parse_line(&line, 0, &rules()),
            Line::Count(Usage {
                kind: LineKind::Access,
                meter: None,
                identity: "key:k1".into(),
                referer: None,
                at: 1_795_000_000_123,
                value: 1
            })
        );
        // 4xx count by default; the time falls back to the event's.
        let line = access("404", "ip:203.0.113.7", "-", "-").replace("1795000000123", "\"-\"");
        match parse_line(&line, 1_795_000_000_999, &rules()) {
            Line::Count(u) => assert_eq!(u.at, 1_795_000_000_999),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn does_not_count_denials_5xx_or_anonymous_routes() {
        for (status, error_type, authz_error) in [
            ("403", "ACCESS_DENIED", "-"),
            ("429", "ACCESS_DENIED", "-"),
            ("401", "UNAUTHORIZED", "boom"),
            ("500", "AUTHORIZER_FAILURE", "-"),
            ("429", "THROTTLED", "-"),
            ("403", "-", "blocked"),
        ] {
            assert_eq!(
                parse_line(
                    &access(status, "key:k1", error_type, authz_error),
                    0,
                    &rules()
                ),
                Line::NotCounted(NotCounted::Denied),
                "{status} {error_type}"
            );
        }
        assert_eq!(
            parse_line(&access("502", "key:k1", "-", "-"), 0, &rules()),
            Line::NotCounted(NotCounted::Status)
        );
        // A gateway response after authorization (a bad request body) counts.
        assert!(matches!(
            parse_line(
                &access("400", "key:k1", "BAD_REQUEST_BODY", ""),
                0,
                &rules()
            ),
            Line::Count(_)
        ));
        let no_identity = access("200", "", "-", "-").replace("cust_1", "-");
        assert_eq!(
            parse_line(&no_identity, 0, &rules()),
            Line::NotCounted(NotCounted::NoIdentity)
        );
        // A principal id in identity form is the fallback.
        let principal = access("200", "-", "-", "-").replace("cust_1", "key:k9");
        assert!(
            matches!(parse_line(&principal, 0, &rules()), Line::Count(u) if u.identity == "key:k9")
        );
    }

    #[test]
    fn an_unauthorized_line_charges_its_source_ip() {
        // An unknown key: no authorizer identity, errorType UNAUTHORIZED.
        let line = access("401", "-", "UNAUTHORIZED", "-").replace("cust_1", "-");
        let want = |ip: &str| {
            Line::Count(Usage {
                kind: LineKind::Access,
                meter: None,
                identity: Cow::Owned(format!("ip:{ip}")),
                referer: None,
                at: 1_795_000_000_123,
                value: 1,
            })
        };
        assert_eq!(parse_line(&line, 0, &rules()), want("203.0.113.7"));
        let mapped = line.replace("203.0.113.7", "::ffff:203.0.113.7");
        assert_eq!(parse_line(&mapped, 0, &rules()), want("203.0.113.7"));
        let no_ip = line.replace("203.0.113.7", "-");
        assert_eq!(
            parse_line(&no_ip, 0, &rules()),
            Line::NotCounted(NotCounted::Denied)
        );
    }

    #[test]
    fn an_anonymous_line_charges_its_referer_too() {
        let with = |identity: &str, referer: &str| {
            access("200", identity, "-", "-")
                .replace(r#""referer":"-""#, &format!(r#""referer":"{referer}""#))
        };
        let line = with("ip:203.0.113.7", "referer:app.example");
        assert!(line.contains("referer:app.example"));
        match parse_line(&line, 0, &rules()) {
            Line::Count(u) => {
                assert_eq!(u.identity, "ip:203.0.113.7");
                assert_eq!(u.referer.as_deref(), Some("referer:app.example"));
            }
            other => panic!("{other:?}"),
        }
        // Not for a key, nor for a value that is no referer identity.
        for (identity, referer) in [
            ("key:k1", "referer:app.example"),
            ("ip:203.0.113.7", "-"),
            ("ip:203.0.113.7", "app.example"),
            ("ip:203.0.113.7", "referer:-x-"),
        ] {
            match parse_line(&with(identity, referer), 0, &rules()) {
                Line::Count(u) => assert_eq!(u.referer, None, "{identity} {referer}"),
                other => panic!("{other:?}"),
            }
        }
        // A line in the format before the referer field counts as before.
        let old = access("200", "ip:203.0.113.7", "-", "-").replace(r#","referer":"-""#, "");
        assert!(matches!(parse_line(&old, 0, &rules()), Line::Count(u) if u.referer.is_none()));
    }

    #[test]
    fn configurable_statuses() {
        let only_2xx = Rules {
            count_status: StatusRanges::parse("2xx").unwrap(),
        };
        assert_eq!(
            parse_line(&access("404", "key:k1", "-", "-"), 0, &only_2xx),
            Line::NotCounted(NotCounted::Status)
        );
    }

    #[test]
    fn counts_application_lines() {
        let line = r#"{"tollgate":1,"requestId":"r1","identity":"key:k1","meter":"tokens","value":1234,"time":"2026-11-21T13:05:07.123Z"}"#;
        assert_eq!(
            parse_line(line, 0, &rules()),
            Line::Count(Usage {
                kind: LineKind::App,
                meter: Some("tokens".into()),
                identity: "key:k1".into(),
                referer: None,
                at: 1_795_266_307_123,
                value: 1234
            })
        );
        // Defaults: requests, value 1, the event's time; a runtime's prefix is fine.
        let prefixed = "2026-11-21T13:05:07.123Z\tabc-123\tINFO\t{\"tollgate\":1,\"identity\":\"ip:192.0.2.1\",\"time\":1795000000000}\n";
        assert_eq!(
            parse_line(prefixed, 7, &rules()),
            Line::Count(Usage {
                kind: LineKind::App,
                meter: None,
                identity: "ip:192.0.2.1".into(),
                referer: None,
                at: 1_795_000_000_000,
                value: 1
            })
        );
        let minimal = r#"{"tollgate":1,"identity":"key:k1","meter":"requests"}"#;
        assert!(
            matches!(parse_line(minimal, 1_795_000_000_000, &rules()), Line::Count(u) if u.meter.is_none() && u.at == 1_795_000_000_000)
        );
    }

    #[test]
    fn skips_everything_else() {
        let long = format!(
            "{{\"tollgate\":1,\"identity\":\"{}\"}}",
            "a".repeat(256 * 1024)
        );
        for (line, reason) in [
            ("START RequestId: 1 Version: $LATEST", "not_json"),
            ("", "not_json"),
            ("{not json", "invalid_json"),
            (r#"{"level":"info","msg":"hello"}"#, "unknown_format"),
            (r#"{"tollgate":2,"identity":"key:k"}"#, "invalid_field"),
            (r#"{"tollgate":1}"#, "invalid_field"),
            (
                r#"{"tollgate":1,"identity":"key:k","value":-1}"#,
                "invalid_field",
            ),
            (
                r#"{"tollgate":1,"identity":"key:k","value":1.5}"#,
                "invalid_field",
            ),
            (
                r#"{"tollgate":1,"identity":"key:k","value":"x"}"#,
                "invalid_json",
            ),
            (
                r#"{"tollgate":1,"identity":"key:k","time":1795000000}"#,
                "invalid_field",
            ),
            (
                r#"{"tollgate":1,"identity":"key:k","time":"yesterday"}"#,
                "invalid_field",
            ),
            (
                r#"{"tollgate":1,"identity":"key:k","meter":""}"#,
                "invalid_field",
            ),
            (r#"{"tollgate":1,"identity":7}"#, "invalid_json"),
            (r#"{"requestId":"r","status":"abc"}"#, "invalid_json"),
            (r#"{"requestId":"r","status":999}"#, "invalid_field"),
            (
                r#"{"requestId":"r","status":200,"requestTimeEpoch":12}"#,
                "invalid_field",
            ),
            (long.as_str(), "too_long"),
        ] {
            match parse_line(line, 0, &rules()) {
                Line::Skipped(skip) => assert_eq!(skip.reason, reason, "{}", truncate(line, 80)),
                other => panic!("{} gave {other:?}", truncate(line, 80)),
            }
        }
    }

    #[test]
    fn the_one_pass_reader_agrees_with_serde_json() {
        let access_line = access("200", "key:k1", "-", "-");
        assert!(
            raw_line_fast(&access_line).is_some(),
            "access lines take the fast path"
        );
        let app = r#"{"tollgate":1,"identity":"key:k1","meter":"tokens","value":12,"time":"2026-11-21T13:05:07.123Z"}"#;
        assert!(raw_line_fast(app).is_some());
        // Both also from their escaped form, as the payload holds them.
        for line in [access_line.as_str(), app] {
            let quoted = serde_json::to_string(line).unwrap();
            let message = crate::decode::read_message(&quoted).unwrap();
            let escaped = message.escaped().unwrap();
            assert!(escaped.contains("\\\""));
            assert_eq!(raw_line_escaped(escaped), raw_line_fast(line));
            assert!(raw_line_escaped(escaped).is_some());
        }
        let lines = [
            access_line.as_str(),
            app,
            "{}",
            " { } ",
            "{} x",
            "{},",
            r#"{"status":200,"requestId":"r"}"#,
            r#"{"status":"200","requestId":"r","requestTimeEpoch":"-"}"#,
            r#"{"status":" 201 ","requestId":"r","requestTimeEpoch":""}"#,
            r#"{"status":2.0e2,"requestId":"r"}"#,
            r#"{"status":-200,"requestId":"r"}"#,
            r#"{"status":-0,"requestId":"r"}"#,
            r#"{"status":0200,"requestId":"r"}"#,
            r#"{"status":200.5,"requestId":"r"}"#,
            r#"{"status":"abc","requestId":"r"}"#,
            r#"{"status":true,"requestId":"r"}"#,
            r#"{"status":null,"requestId":null}"#,
            r#"{"status":200,"status":201}"#,
            r#"{"status":null,"status":201}"#,
            r#"{"other":1,"other":2}"#,
            r#"{"other":[1,"a",null,true],"x":{"a":1}}"#,
            r#"{"other":[1,[2]]}"#,
            r#"{"requestId":7}"#,
            r#"{"requestId":"a\"b\\c\/d\n\t\u00e9\u20ac"}"#,
            r#"{"requestId":"\ud83d\ude00"}"#,
            r#"{"requestId":"\ud83d"}"#,
            r#"{"requestId":"\x"}"#,
            "{\"requestId\":\"a\u{1}b\"}",
            "{\"requestId\":\"a\u{7f}b é\"}",
            r#"{"st\u0061tus":200,"requestId":"r"}"#,
            r#"{"tollgate":1}"#,
            r#"{"tollgate":true}"#,
            r#"{"tollgate":"1"}"#,
            r#"{"tollgate":null}"#,
            r#"{"tollgate":99999999999999999999}"#,
            r#"{"tollgate":123456789012345678}"#,
            r#"{"tollgate":1234567890123456789}"#,
            r#"{"time":1795000000000,"value":"12"}"#,
            r#"{"time":"x","value":"1.5"}"#,
            r#"{"time":true}"#,
            r#"{"time":1e3}"#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a"1}"#,
            r#"{"a":tru}"#,
            r#"{"a":nulls}"#,
            r#"{"a":1}}"#,
            "{\"a\":1}\u{c}",
            "{\"a\":1}\n",
            "{\"a\":1}\r\n\t ",
            "\n{\"a\":1}",
            "x\t{\"tollgate\":1,\"identity\":\"key:k\"}",
            "{\"tollgate\":1,\"identity\":\"key:k\"}\u{1}",
            "{\"tollgate\":1,\"identity\":\"key:k\",\"meter\":\"a/b\"}",
            "{\"tollgate\":1,\"identity\":\"key:k\",\"meter\":\"a\\\"b\"}",
            "{\"tollgate\":1,\"identity\":\"key:k\",\"meter\":\"a\\nb\"}",
            "{\"tollgate\":1,\"identity\":\"key:k\",\"meter\":\"a\nb\"}",
            "{\"tollgate\":1,\n\"identity\":\"key:k\"\t}",
            "{\"tollgate\":1,\"identity\":\"key:\u{e9}\"}",
            "{\"tollgate\":1,\"identity\":\"key:k\",\"x\":\"\u{0}\"}",
            "{\"tollgate\":1,\"identity\":\"key:k\"\u{c}}",
            r#"["r",1]"#,
            r#"{"a":"unterminated}"#,
            "{\n\t\"status\" :\r 200 , \"requestId\" : \"r\" }\n",
        ];
        for line in lines {
            assert!(fast_line_agrees(line), "{line}");
            // And the whole classification is unchanged.
            let slow = serde_json::from_str::<RawLine<'_>>(line).ok();
            if let Some(fast) = raw_line_fast(line) {
                assert_eq!(Some(fast), slow, "{line}");
            }
        }
    }

    /// A small deterministic generator for the randomized tests.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    /// An access line in the template with random values, then changed in a
    /// few random ways that the template reader must decline or read as the
    /// general reader does: keys reordered, renamed or repeated, escapes
    /// (`\u` ones and surrogate pairs too) and odd characters in values,
    /// values of other types, whitespace, truncation, trailing text.
    fn mutated_access_line(rng: &mut Rng) -> String {
        let values = [
            "",
            "-",
            "key:k1",
            "ip:10.0.0.1",
            "cust_1",
            "ACCESS_DENIED",
            "é",
            "a\"b",
            "a\\b",
            "a/b",
            "\u{1}",
            "😀",
            "\\u0041",
            "{ip}",
        ];
        let mut fields: Vec<(String, String)> = vec![
            ("requestId".into(), format!("\"r-{}\"", rng.below(1000))),
            (
                "requestTimeEpoch".into(),
                rng.pick(&["1795000000123", "0", "12", "1795000000123000000"])
                    .into(),
            ),
            ("ip".into(), "\"203.0.113.7\"".into()),
            ("method".into(), "\"GET\"".into()),
            ("resourcePath".into(), "\"/v1/lookup/{ip}\"".into()),
            (
                "status".into(),
                rng.pick(&["200", "404", "502", "403", "999"]).into(),
            ),
            ("integrationStatus".into(), "\"200\"".into()),
            (
                "errorType".into(),
                format!(
                    "\"{}\"",
                    rng.pick(&["-", "ACCESS_DENIED", "BAD_REQUEST_BODY", "UNAUTHORIZED"])
                ),
            ),
            ("principalId".into(), "\"-\"".into()),
            (
                "identity".into(),
                format!("\"{}\"", rng.pick(&["key:k1", "ip:10.0.0.1", "-", ""])),
            ),
            ("authorizerError".into(), "\"-\"".into()),
            (
                "referer".into(),
                format!(
                    "\"{}\"",
                    rng.pick(&["-", "", "referer:a.example", "referer:-bad-", "x"])
                ),
            ),
        ];
        for _ in 0..rng.below(4) {
            let i = rng.below(fields.len());
            match rng.below(9) {
                0 => {
                    let j = rng.below(fields.len());
                    fields.swap(i, j);
                }
                1 => {
                    let copy = fields[i].clone();
                    fields.push(copy);
                }
                2 => {
                    let v = serde_json::to_string(rng.pick(&values)).unwrap();
                    fields[i].1 = v;
                }
                3 => {
                    let escape = rng.pick(&[
                        "\\/",
                        "\\n",
                        "\\\"",
                        "\\\\",
                        "\\u00e9",
                        "\\ud83d\\ude00",
                        "\\u0041",
                        "\\t",
                        "\\ud83d",
                    ]);
                    let v = &mut fields[i].1;
                    if v.len() > 1 && v.starts_with('"') {
                        v.insert_str(1, escape);
                    }
                }
                4 => {
                    fields[i].1 = rng
                        .pick(&[
                            "null", "true", "1.5", "-1", "007", "00", "0", "x", "-", "2e2",
                            "\"200\"", "[]", "{}",
                        ])
                        .into();
                }
                5 => {
                    let k = &mut fields[i].0;
                    *k = rng
                        .pick(&[
                            "status",
                            "requestid",
                            "identity ",
                            "tollgate",
                            "st\\u0061tus",
                        ])
                        .into();
                }
                6 => {
                    fields.remove(i);
                }
                7 => {
                    let v = &mut fields[i].1;
                    v.insert_str(0, rng.pick(&[" ", "\n", "\t"]));
                }
                _ => {
                    fields.insert(i, ("tollgate".into(), rng.pick(&["1", "true", "2"]).into()));
                }
            }
        }
        let mut line = String::from("{");
        for (n, (k, v)) in fields.iter().enumerate() {
            if n > 0 {
                line.push(',');
            }
            line.push_str(&format!("\"{k}\":{v}"));
        }
        line.push('}');
        match rng.below(12) {
            0 => {
                let mut cut = rng.below(line.len());
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
            }
            1 => line.push_str(rng.pick(&[" ", "\n", "x", "}", "\u{1}"])),
            2 => line.insert_str(0, rng.pick(&[" ", "x\t", "\n"])),
            _ => {}
        }
        line
    }

    #[test]
    fn the_template_reader_agrees_with_the_general_one_on_random_lines() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut taken = 0;
        for _ in 0..20_000 {
            let line = mutated_access_line(&mut rng);
            assert!(fast_line_agrees(&line), "{line}");
            let quoted = serde_json::to_string(&line).unwrap();
            let read = crate::decode::read_message(&quoted).unwrap();
            taken += usize::from(read.access().is_some());
            assert_eq!(
                parse_message(&read, 7, &rules()),
                parse_line(&line, 7, &rules()),
                "{line}"
            );
        }
        assert!(taken > 2_000, "{taken} lines took the template reader");
    }

    #[test]
    fn the_payload_reader_agrees_with_serde_json_on_random_events() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let rules = rules();
        for _ in 0..2_000 {
            let mut events = Vec::new();
            for i in 0..rng.below(5) + 1 {
                let message = serde_json::to_string(&mutated_access_line(&mut rng)).unwrap();
                let id = format!("\"{}\"", rng.pick(&["1", "a\\\"b", "\\u0041", "", "x y"]));
                let timestamp = rng.pick(&["5", "1795000000123", "-5", "5.0", "\"5\"", "05"]);
                let mut fields = vec![
                    format!("\"id\":{id}"),
                    format!("\"timestamp\":{timestamp}"),
                    format!("\"message\":{message}"),
                ];
                match rng.below(6) {
                    0 => fields.swap(rng.below(3), rng.below(3)),
                    1 => fields.push(format!("\"id\":\"{i}\"")),
                    2 => {
                        fields.remove(rng.below(3));
                    }
                    3 => fields.push("\"extra\":[1,\"a\"]".into()),
                    _ => {}
                }
                let separator = rng.pick(&[",", ",", ",", " , ", ",\n"]);
                events.push(format!("{{{}}}", fields.join(separator)));
            }
            let payload = format!(
                r#"{{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{}]}}"#,
                events.join(",")
            );
            assert!(
                crate::decode::fast_payload_agrees(payload.as_bytes()),
                "{payload}"
            );
            if let Ok(parsed) = crate::decode::parse_payload(payload.as_bytes()) {
                for event in &parsed.log_events {
                    assert_eq!(
                        parse_message(&event.message, 7, &rules),
                        parse_line(event.message.as_str(), 7, &rules),
                        "{payload}"
                    );
                }
            }
        }
    }
}
