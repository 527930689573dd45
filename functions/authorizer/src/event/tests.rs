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
    let json =
        format!(r#"{{"type":"REQUEST","methodArn":"{ARN}","headers":{{"x-api-key":["{KEY}"]}}}}"#);
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
                ip: Identity::parse_anonymous_ip("203.0.113.9", tollgate_core::Ipv6Prefix::DEFAULT)
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
        stage_resource("arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/*/GET/").as_deref(),
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
