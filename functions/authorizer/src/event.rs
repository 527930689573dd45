//! Authorizer events: parsing (REST TOKEN and REQUEST authorizers, HTTP API
//! payload 2.0) and finding who is calling.
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
use tollgate_core::{ApiKey, Identity};

use crate::config::Config;

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

/// The fuzzing entry point: parse any bytes as an event and find the caller
/// under a few configurations. Must never panic.
pub fn fuzz_one(bytes: &[u8]) {
    static CONFIGS: std::sync::OnceLock<[Config; 2]> = std::sync::OnceLock::new();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KEY: &str = "tg_live_000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets";

    fn rest(headers: &str, ip: &str) -> String {
        format!(
            r#"{{"type":"REQUEST","methodArn":"{ARN}","headers":{headers},"requestContext":{{"identity":{{"sourceIp":"{ip}"}}}}}}"#
        )
    }

    fn caller_of(json: &str, config: &Config) -> Caller {
        Event::parse(json.as_bytes()).unwrap().caller(config)
    }

    fn key() -> ApiKey {
        ApiKey::parse(KEY).unwrap()
    }

    fn key_of(c: Caller) -> Option<ApiKey> {
        match c {
            Caller::Key { key, .. } => Some(key),
            _ => None,
        }
    }

    #[test]
    fn detects_event_kinds() {
        let token = format!(r#"{{"type":"TOKEN","authorizationToken":"x","methodArn":"{ARN}"}}"#);
        assert_eq!(
            Event::parse(token.as_bytes()).unwrap().kind,
            EventKind::Token
        );
        assert_eq!(
            Event::parse(rest("{}", "1.2.3.4").as_bytes()).unwrap().kind,
            EventKind::Request
        );
        let v2 = r#"{"version":"2.0","type":"REQUEST","routeArn":"arn:aws:execute-api:eu-west-1:1:a/$default/GET/x","headers":{},"requestContext":{"http":{"sourceIp":"192.0.2.1"}}}"#;
        let e = Event::parse(v2.as_bytes()).unwrap();
        assert_eq!(e.kind, EventKind::HttpV2);
        assert_eq!(e.source_ip.as_deref(), Some("192.0.2.1"));
        let v1 = format!(r#"{{"version":"1.0","type":"REQUEST","methodArn":"{ARN}"}}"#);
        assert_eq!(
            Event::parse(v1.as_bytes()).unwrap().kind,
            EventKind::Request
        );
    }

    #[test]
    fn unknown_and_malformed_events_are_errors() {
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"42",
            b"{}",
            b"{\"type\":\"COGNITO\"}",
            b"{\"version\":\"2.0\",\"routeKey\":\"$default\"}",
            b"{\"type\":\"TOKEN\",\"authorizationToken\":\"x\"}",
            b"{\"type\":\"TOKEN\",\"authorizationToken\":\"x\",\"methodArn\":\"nope\"}",
            b"{\"type\":\"REQUEST\",\"methodArn\":\"arn:aws:execute-api:r:a:id/stage/GET/\",\"headers\":{\"a\":1}}",
            b"{\"type\":\"REQUEST\",\"methodArn\":\"arn:aws:execute-api:r:a:id/stage/GET/\",\"headers\":[]}",
            b"{\"type\":1}",
            b"{\"type\":\"TOKEN\",",
            b"\xff\xfe{}",
            b"{\"type\":\"TOKEN\",\"authorizationToken\":\"\xff\",\"methodArn\":\"arn:aws:execute-api:r:a:id/s/GET/\"}",
        ] {
            assert!(Event::parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let trunc = rest(&format!(r#"{{"x-api-key":"{KEY}"}}"#), "1.2.3.4");
        for cut in [1, 10, trunc.len() / 2, trunc.len() - 1] {
            let err = Event::parse(&trunc.as_bytes()[..cut]).unwrap_err();
            assert!(!err.to_string().contains("tg_live"), "{err}");
        }
    }

    #[test]
    fn errors_never_quote_the_input() {
        let json = format!(
            r#"{{"type":"REQUEST","methodArn":"{ARN}","headers":{{"x-api-key":["{KEY}"]}}}}"#
        );
        let err = Event::parse(json.as_bytes()).unwrap_err();
        assert!(!err.to_string().contains(&KEY[8..20]), "{err}");
        assert!(!format!("{err:?}").contains(&KEY[8..20]));
    }

    #[test]
    fn null_maps_are_empty() {
        let json = format!(
            r#"{{"type":"REQUEST","methodArn":"{ARN}","headers":null,"queryStringParameters":null,"requestContext":{{"identity":{{"sourceIp":"10.0.0.1"}}}}}}"#
        );
        let e = Event::parse(json.as_bytes()).unwrap();
        assert!(e.headers.0.is_empty() && e.query.0.is_empty());
        let json = format!(r#"{{"type":"REQUEST","methodArn":"{ARN}","headers":{{"a":null}}}}"#);
        assert!(Event::parse(json.as_bytes()).unwrap().headers.0.is_empty());
    }

    #[test]
    fn finds_the_key_in_the_header_case_insensitively() {
        let c = Config::default();
        for name in ["x-api-key", "X-API-Key", "X-Api-Key"] {
            let json = rest(&format!(r#"{{"{name}":" {KEY} "}}"#), "1.2.3.4");
            assert_eq!(key_of(caller_of(&json, &c)), Some(key()), "{name}");
        }
        let custom = Config {
            api_key_header: "x-tollgate".into(),
            ..Config::default()
        };
        let json = rest(&format!(r#"{{"X-Tollgate":"{KEY}"}}"#), "1.2.3.4");
        assert_eq!(key_of(caller_of(&json, &custom)), Some(key()));
        let auth = Config {
            api_key_header: "authorization".into(),
            ..Config::default()
        };
        let json = rest(&format!(r#"{{"Authorization":"Bearer {KEY}"}}"#), "1.2.3.4");
        assert_eq!(key_of(caller_of(&json, &auth)), Some(key()));
        // The default header is not read when another is configured.
        let json = rest(&format!(r#"{{"x-api-key":"{KEY}"}}"#), "1.2.3.4");
        assert!(matches!(
            caller_of(&json, &custom),
            Caller::Anonymous { .. }
        ));
    }

    #[test]
    fn escaped_header_values_are_read() {
        // "tg_" written with a JSON escape: the value is owned, not borrowed.
        let escaped = KEY.replacen("tg_", "\\u0074g_", 1);
        let json = rest(&format!(r#"{{"x-api-key":"{escaped}"}}"#), "1.2.3.4");
        assert_eq!(key_of(caller_of(&json, &Config::default())), Some(key()));
    }

    #[test]
    fn finds_the_key_in_the_query_only_when_configured() {
        let json = format!(
            r#"{{"type":"REQUEST","methodArn":"{ARN}","queryStringParameters":{{"api_key":"{KEY}"}},"requestContext":{{"identity":{{"sourceIp":"1.2.3.4"}}}}}}"#
        );
        assert!(matches!(
            caller_of(&json, &Config::default()),
            Caller::Anonymous { .. }
        ));
        let c = Config {
            api_key_query: Some("api_key".into()),
            ..Config::default()
        };
        assert_eq!(key_of(caller_of(&json, &c)), Some(key()));
    }

    #[test]
    fn token_events_take_bare_or_bearer_keys() {
        let c = Config::default();
        for token in [
            KEY.to_string(),
            format!("Bearer {KEY}"),
            format!("bearer   {KEY}"),
            format!(" BEARER {KEY} "),
        ] {
            let json =
                format!(r#"{{"type":"TOKEN","authorizationToken":"{token}","methodArn":"{ARN}"}}"#);
            assert_eq!(key_of(caller_of(&json, &c)), Some(key()), "{token}");
        }
        for (token, expected) in [
            ("", Caller::NoIdentity),
            ("Bearer ", Caller::NoIdentity),
            ("allow", Caller::MalformedKey),
            ("Basic dXNlcjpwdw==", Caller::MalformedKey),
        ] {
            let json =
                format!(r#"{{"type":"TOKEN","authorizationToken":"{token}","methodArn":"{ARN}"}}"#);
            assert_eq!(caller_of(&json, &c), expected, "{token:?}");
        }
        let none = format!(r#"{{"type":"TOKEN","methodArn":"{ARN}"}}"#);
        assert_eq!(caller_of(&none, &c), Caller::NoIdentity);
    }

    #[test]
    fn bad_keys_are_malformed_not_anonymous() {
        let c = Config::default();
        let long = format!("tg_live_{}", "a".repeat(10_000));
        let ten_kb = "k".repeat(10 * 1024);
        for bad in [
            "abc",
            "tg_live_short",
            long.as_str(),
            ten_kb.as_str(),
            "tg_live_0001020304050607\\u000008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "tg_live_\\u001b[31m0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "tg_live_ü00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "tg_live_\\ud800\\udc00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
        ] {
            let json = rest(&format!(r#"{{"x-api-key":"{bad}"}}"#), "1.2.3.4");
            assert_eq!(caller_of(&json, &c), Caller::MalformedKey, "{bad:.40}");
        }
    }

    #[test]
    fn missing_or_empty_keys_fall_back_to_the_client_ip() {
        let c = Config::default();
        for headers in [r#"{}"#, r#"{"x-api-key":""}"#, r#"{"x-api-key":"   "}"#] {
            assert_eq!(
                caller_of(&rest(headers, "203.0.113.9"), &c),
                Caller::Anonymous {
                    ip: Identity::parse_anonymous_ip(
                        "203.0.113.9",
                        tollgate_core::Ipv6Prefix::DEFAULT
                    )
                    .unwrap(),
                    referer: None
                }
            );
        }
        assert_eq!(caller_of(&rest("{}", "..."), &c), Caller::NoIdentity);
        assert_eq!(caller_of(&rest("{}", ""), &c), Caller::NoIdentity);
        let no_context = format!(r#"{{"type":"REQUEST","methodArn":"{ARN}"}}"#);
        assert_eq!(caller_of(&no_context, &c), Caller::NoIdentity);
        // IPv4-mapped IPv6 is the IPv4 identity.
        match caller_of(&rest("{}", "::ffff:198.51.100.4"), &c) {
            Caller::Anonymous { ip, .. } => assert_eq!(ip.to_string(), "ip:198.51.100.4"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ipv6_callers_are_their_configured_prefix() {
        let ip_with = |source: &str, c: &Config| match caller_of(&rest("{}", source), c) {
            Caller::Anonymous { ip, .. } => ip.to_string(),
            other => panic!("{other:?}"),
        };
        let c = Config::default();
        assert_eq!(ip_with("2001:db8:7:8:1:2:3:4", &c), "ip:2001:db8:7:8::/64");
        assert_eq!(ip_with("2002:c633:6404::9", &c), "ip:198.51.100.4");
        assert_eq!(ip_with("64:ff9b::198.51.100.4", &c), "ip:198.51.100.4");
        let exact = Config {
            anonymous_ipv6_prefix: tollgate_core::Ipv6Prefix::new(128).unwrap(),
            ..Config::default()
        };
        assert_eq!(
            ip_with("2001:db8:7:8:1:2:3:4", &exact),
            "ip:2001:db8:7:8:1:2:3:4"
        );
    }

    #[test]
    fn x_forwarded_for_counts_only_through_trusted_hops() {
        let headers = r#"{"X-Forwarded-For":"6.6.6.6, 198.51.100.1, 198.51.100.2"}"#;
        let ip_for = |hops| match caller_of(
            &rest(headers, "192.0.2.50"),
            &Config {
                trusted_proxy_hops: hops,
                ..Config::default()
            },
        ) {
            Caller::Anonymous { ip, .. } => ip.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(ip_for(0), "ip:192.0.2.50");
        assert_eq!(ip_for(1), "ip:198.51.100.2");
        assert_eq!(ip_for(2), "ip:198.51.100.1");
        assert_eq!(ip_for(3), "ip:6.6.6.6");
        // Fewer entries than hops: the chain skipped the proxies (the
        // client wrote it), so the source IP.
        assert_eq!(ip_for(4), "ip:192.0.2.50");
        assert_eq!(ip_for(9), "ip:192.0.2.50");
        let one = r#"{"X-Forwarded-For":"6.6.6.6"}"#;
        let two_hops = Config {
            trusted_proxy_hops: 2,
            ..Config::default()
        };
        match caller_of(&rest(one, "192.0.2.50"), &two_hops) {
            Caller::Anonymous { ip, .. } => assert_eq!(ip.to_string(), "ip:192.0.2.50"),
            other => panic!("{other:?}"),
        }
        // An unusable entry falls back to the source IP.
        let garbage = r#"{"x-forwarded-for":"1.1.1.1, not-an-ip"}"#;
        let c = Config {
            trusted_proxy_hops: 1,
            ..Config::default()
        };
        match caller_of(&rest(garbage, "192.0.2.50"), &c) {
            Caller::Anonymous { ip, .. } => assert_eq!(ip.to_string(), "ip:192.0.2.50"),
            other => panic!("{other:?}"),
        }
        let ported = r#"{"x-forwarded-for":"[2001:db8::7]:443"}"#;
        match caller_of(&rest(ported, "192.0.2.50"), &c) {
            Caller::Anonymous { ip, .. } => assert_eq!(ip.to_string(), "ip:2001:db8::/64"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn referer_only_when_configured_and_valid() {
        let headers = r#"{"Referer":"https://Docs.Example.com:8443/page?q=1"}"#;
        let json = rest(headers, "1.2.3.4");
        assert!(matches!(
            caller_of(&json, &Config::default()),
            Caller::Anonymous { referer: None, .. }
        ));
        let c = Config {
            anonymous_referer: true,
            ..Config::default()
        };
        match caller_of(&json, &c) {
            Caller::Anonymous {
                referer: Some(r), ..
            } => assert_eq!(r.to_string(), "referer:docs.example.com"),
            other => panic!("{other:?}"),
        }
        let bad = rest(r#"{"referer":"https:///"}"#, "1.2.3.4");
        assert!(matches!(
            caller_of(&bad, &c),
            Caller::Anonymous { referer: None, .. }
        ));
    }

    #[test]
    fn stage_resources() {
        assert_eq!(
            stage_resource(ARN).as_deref(),
            Some("arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*/*")
        );
        assert_eq!(
            stage_resource("arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/*/GET/")
                .as_deref(),
            Some("arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/*/*/*")
        );
        assert_eq!(
            stage_resource("arn:aws-cn:execute-api:cn-north-1:1:a/$connect").as_deref(),
            Some("arn:aws-cn:execute-api:cn-north-1:1:a/$connect/*/*")
        );
        for bad in [
            "",
            "nope",
            "arn:aws:execute-api:us-east-1:1:a",
            "arn:aws:s3:us-east-1:1:a/prod/GET/",
            "arn:aws:execute-api:us-east-1:1:a//GET/",
            "arn:aws:execute-api::1:a/prod/GET/",
            "arn:aws:execute-api:us-east-1:1:a:b/prod/GET/",
        ] {
            assert_eq!(stage_resource(bad), None, "{bad}");
        }
    }

    #[test]
    fn headers_borrow_when_unescaped() {
        let json = rest(&format!(r#"{{"x-api-key":"{KEY}"}}"#), "1.2.3.4");
        let e = Event::parse(json.as_bytes()).unwrap();
        assert!(matches!(e.headers.0[0].1 .0, Cow::Borrowed(_)));
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
}
