#![allow(clippy::unwrap_used)]
use super::*;

fn rules() -> Rules {
    Rules {
        count_status: StatusRanges::default_counted(),
        ipv6_prefix: tollgate_core::Ipv6Prefix::DEFAULT,
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
        ipv6_prefix: tollgate_core::Ipv6Prefix::DEFAULT,
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
        let message = crate::payload::read_message(&quoted).unwrap();
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
                        "null", "true", "1.5", "-1", "007", "00", "0", "x", "-", "2e2", "\"200\"",
                        "[]", "{}",
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
        let read = crate::payload::read_message(&quoted).unwrap();
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
            crate::payload::fast_payload_agrees(payload.as_bytes()),
            "{payload}"
        );
        if let Ok(parsed) = crate::payload::parse_payload(payload.as_bytes()) {
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
