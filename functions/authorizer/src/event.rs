//! Authorizer events: the runtime's payload ([`Incoming`]), parsing (REST
//! TOKEN and REQUEST authorizers, HTTP API payload 2.0) and finding who is
//! calling ([`Caller`]): the first two steps of a request.
//!
//! Parsing borrows from the event's bytes wherever JSON escapes allow, keeps
//! only the few fields the decision needs and never fails by panicking: any
//! event it cannot read is an [`EventError`], which the handler turns into
//! `Unauthorized`. Header values are never formatted into errors or logs.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use tollgate_core::{ApiKey, Identity};

use crate::config::Config;

/// The event as the Lambda runtime hands it over: its raw JSON, or nothing
/// if it was not JSON. Deserialising never fails, so a malformed event
/// reaches the handler and is answered with `Unauthorized` (rather than the
/// runtime's own deserialisation error, which API Gateway would turn into a
/// 500), and its content is never echoed into an error message.
pub struct Incoming(Option<Box<RawValue>>);

impl Incoming {
    /// The event's JSON text; `None` if it was not JSON.
    pub fn json(&self) -> Option<&str> {
        self.0.as_deref().map(RawValue::get)
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the event: it may hold a key.
        f.write_str(match self.0 {
            Some(_) => "Incoming(<json>)",
            None => "Incoming(<malformed>)",
        })
    }
}

impl<'de> Deserialize<'de> for Incoming {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Incoming(Box::<RawValue>::deserialize(d).ok()))
    }
}

/// Which kind of authorizer event this is, and so which response it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// REST API TOKEN authorizer: IAM policy response.
    Token,
    /// REST API (or HTTP API payload 1.0, or WebSocket) REQUEST authorizer: IAM policy response.
    Request,
    /// HTTP API payload 2.0 REQUEST authorizer: simple response.
    HttpV2,
}

/// Why an event could not be read (never carries the event's content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// Not JSON, truncated, not UTF-8, or a field of the wrong type.
    Json {
        category: &'static str,
        line: usize,
        column: usize,
    },
    /// A JSON object, but not an authorizer event tollgate knows.
    UnknownType,
    /// A REST authorizer event without a usable `methodArn`.
    MissingArn,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventError::Json {
                category,
                line,
                column,
            } => write!(
                f,
                "unreadable event ({category} error at line {line}, column {column})"
            ),
            EventError::UnknownType => f.write_str("not a TOKEN, REQUEST or 2.0 authorizer event"),
            EventError::MissingArn => {
                f.write_str("REST authorizer event without a valid methodArn")
            }
        }
    }
}

impl std::error::Error for EventError {}

impl From<serde_json::Error> for EventError {
    fn from(e: serde_json::Error) -> Self {
        // Only the category and position: serde's messages can quote input.
        let category = match e.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        };
        EventError::Json {
            category,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// A string from the event, borrowed from its bytes unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Str<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON object of strings (headers, query parameters), in order. `null`
/// values are dropped; a value of another type makes the event malformed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pairs<'a>(pub Vec<(Str<'a>, Str<'a>)>);

impl<'a> Pairs<'a> {
    /// The value of the first name that equals `name` ignoring ASCII case.
    pub fn get_ignore_case(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// The value of the first name that equals `name` exactly.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| &**k == name).map(|(_, v)| &**v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some((k, v)) = map.next_entry::<Str<'de>, Option<Str<'de>>>()? {
                    if let Some(v) = v {
                        out.push((k, v));
                    }
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    version: Option<Str<'a>>,
    #[serde(borrow, default)]
    authorization_token: Option<Str<'a>>,
    #[serde(borrow, default)]
    method_arn: Option<Str<'a>>,
    #[serde(borrow, default)]
    route_arn: Option<Str<'a>>,
    #[serde(borrow, default)]
    headers: Option<Pairs<'a>>,
    #[serde(borrow, default)]
    query_string_parameters: Option<Pairs<'a>>,
    #[serde(borrow, default)]
    request_context: Option<RawContext<'a>>,
}

#[derive(Deserialize)]
struct RawContext<'a> {
    #[serde(borrow, default)]
    identity: Option<RawSource<'a>>,
    #[serde(borrow, default)]
    http: Option<RawSource<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSource<'a> {
    #[serde(borrow, default)]
    source_ip: Option<Str<'a>>,
}

/// The parts of an authorizer event that a decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub kind: EventKind,
    /// `methodArn` (REST) or `routeArn` (HTTP API).
    pub arn: Option<Str<'a>>,
    /// The stage-wide policy resource (REST events; see [`stage_resource`]).
    pub resource: Option<String>,
    /// A TOKEN authorizer's `authorizationToken`.
    pub token: Option<Str<'a>>,
    pub headers: Pairs<'a>,
    pub query: Pairs<'a>,
    /// The client IP API Gateway saw.
    pub source_ip: Option<Str<'a>>,
}

impl<'a> Event<'a> {
    /// Parses an authorizer event from its JSON bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Event<'a>, EventError> {
        let raw: RawEvent<'a> = serde_json::from_slice(bytes)?;
        let kind = match (raw.version.as_deref(), raw.kind.as_deref()) {
            (Some("2.0"), Some("REQUEST")) => EventKind::HttpV2,
            (Some("2.0"), _) => return Err(EventError::UnknownType),
            (_, Some("TOKEN")) => EventKind::Token,
            (_, Some("REQUEST")) => EventKind::Request,
            _ => return Err(EventError::UnknownType),
        };
        let arn = match kind {
            EventKind::HttpV2 => raw.route_arn.or(raw.method_arn),
            _ => raw.method_arn,
        };
        let resource = match kind {
            EventKind::HttpV2 => None,
            EventKind::Token | EventKind::Request => Some(
                arn.as_deref()
                    .and_then(stage_resource)
                    .ok_or(EventError::MissingArn)?,
            ),
        };
        let source_ip = raw.request_context.and_then(|c| {
            c.identity
                .and_then(|i| i.source_ip)
                .or_else(|| c.http.and_then(|h| h.source_ip))
        });
        Ok(Event {
            kind,
            arn,
            resource,
            token: raw.authorization_token,
            headers: raw.headers.unwrap_or_default(),
            query: raw.query_string_parameters.unwrap_or_default(),
            source_ip,
        })
    }

    /// Who is calling, by the rules in [`caller`].
    pub fn caller(&self, config: &Config) -> Caller {
        caller(self, config)
    }
}

/// The policy resource that covers the whole stage of `method_arn`
/// (`arn:aws:execute-api:region:account:api/stage/*/*`), so that API
/// Gateway's authorizer cache, keyed by the caller and not by the route,
/// never replays a decision for a route it does not cover.
pub fn stage_resource(method_arn: &str) -> Option<String> {
    stage_parts(method_arn).map(|(prefix, stage)| format!("{prefix}/{stage}/*/*"))
}

/// The ARN's `arn:<partition>:execute-api:<region>:<account>:<api>` and
/// stage. Byte-wise (ASCII separators), as it runs on every request.
fn stage_parts(method_arn: &str) -> Option<(&str, &str)> {
    let slash = method_arn.bytes().position(|b| b == b'/')?;
    let (prefix, path) = (&method_arn[..slash], &method_arn[slash + 1..]);
    let mut fields = [""; 6];
    let mut n = 0;
    let mut start = 0;
    for (i, b) in prefix.bytes().enumerate() {
        if b == b':' {
            *fields.get_mut(n)? = &prefix[start..i];
            n += 1;
            start = i + 1;
        }
    }
    *fields.get_mut(n)? = &prefix[start..];
    let ok = n == 5
        && fields[0] == "arn"
        && !fields[1].is_empty()
        && fields[2] == "execute-api"
        && fields[3..].iter().all(|f| !f.is_empty())
        && !prefix.bytes().any(|b| b.is_ascii_whitespace());
    let stage = &path[..path.bytes().position(|b| b == b'/').unwrap_or(path.len())];
    if !ok || stage.is_empty() || stage.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some((prefix, stage))
}

// The identity step: who is calling, from the parsed event.

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A key of the right shape (not yet looked up), and the anonymous
    /// identity of the client IP it came from, if the event has one (a key
    /// that proves unusable is charged to it).
    Key {
        key: ApiKey,
        source: Option<Identity>,
    },
    /// Something was presented as a key but it has the wrong shape.
    MalformedKey,
    /// No key: the anonymous free tier, by client IP and optionally Referer host.
    Anonymous {
        ip: Identity,
        referer: Option<Identity>,
    },
    /// No key and no valid client IP.
    NoIdentity,
}

/// Finds the caller: the key from the configured header, else from the
/// configured query parameter (REQUEST and 2.0 events), or from
/// `authorizationToken` (TOKEN events); each a bare key or `Bearer <key>`
/// (so `TOLLGATE_API_KEY_HEADER=authorization` works too).
/// Without a key (empty values count as none): the anonymous client IP,
/// and, when configured, the Referer host.
pub fn caller(event: &Event<'_>, config: &Config) -> Caller {
    let presented = match event.kind {
        EventKind::Token => event.token.as_deref(),
        EventKind::Request | EventKind::HttpV2 => {
            let header = event
                .headers
                .get_ignore_case(&config.api_key_header)
                .filter(|v| !v.trim().is_empty());
            header.or_else(|| {
                config
                    .api_key_query
                    .as_deref()
                    .and_then(|q| event.query.get(q))
            })
        }
    }
    .map(strip_bearer)
    .filter(|v| !v.is_empty());
    let source = || {
        client_ip(event, config.trusted_proxy_hops)
            .map(|ip| Identity::anonymous_ip(ip, config.anonymous_ipv6_prefix))
    };
    if let Some(presented) = presented {
        return match ApiKey::parse(presented) {
            Ok(key) => Caller::Key {
                key,
                source: source(),
            },
            Err(_) => Caller::MalformedKey,
        };
    }
    if event.kind == EventKind::Token {
        return Caller::NoIdentity;
    }
    let Some(ip) = source() else {
        return Caller::NoIdentity;
    };
    let referer = config
        .anonymous_referer
        .then(|| event.headers.get_ignore_case("referer"))
        .flatten()
        .and_then(|r| Identity::referer(r).ok());
    Caller::Anonymous { ip, referer }
}

/// `Bearer <key>` (any case, any spaces) or a bare key.
fn strip_bearer(token: &str) -> &str {
    let t = token.trim();
    if t.eq_ignore_ascii_case("bearer") {
        return "";
    }
    match t.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => t[7..].trim_start(),
        _ => t,
    }
}

/// The client IP: with `hops` trusted proxies in front of API Gateway, the
/// `X-Forwarded-For` entry that the outermost trusted proxy appended (the
/// `hops`-th from the right); otherwise the source IP API Gateway saw.
/// The source IP is also used when that entry is unusable, and when the
/// chain has fewer than `hops` entries: such a request did not pass all the
/// trusted proxies (a client calling the endpoint directly writes the
/// header itself), so none of its entries can be trusted.
pub fn client_ip(event: &Event<'_>, hops: usize) -> Option<IpAddr> {
    if hops > 0 {
        if let Some(xff) = event.headers.get_ignore_case("x-forwarded-for") {
            // The hops-th entry from the right, without collecting the list.
            if let Some(entry) = xff.rsplit(',').nth(hops - 1) {
                if let Some(ip) = parse_ip(entry) {
                    return Some(ip);
                }
            }
        }
    }
    event.source_ip.as_deref().and_then(parse_ip)
}

/// An IP address, optionally with a port (`1.2.3.4:80`, `[::1]:443`).
fn parse_ip(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    t.parse::<IpAddr>()
        .ok()
        .or_else(|| t.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests;
