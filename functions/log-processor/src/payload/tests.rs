#![allow(clippy::unwrap_used)]
use super::gzip::*;
use super::model::*;
use super::parse::*;
use super::scan::*;
use super::swar::*;
use base64::Engine;
use flate2::write::GzEncoder;
use std::io::Write;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

const PAYLOAD: &str = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":5,"message":"{\"a\":1}\n"}],"policyLevel":"ACCOUNT_LEVEL_POLICY"}"#;

#[test]
fn decodes_a_payload_padded_or_not() {
    let gz = gzip(PAYLOAD.as_bytes());
    for text in [
        base64::engine::general_purpose::STANDARD.encode(&gz),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&gz),
    ] {
        let bytes = decode_data(&text, 1 << 20).unwrap();
        let payload = parse_payload(&bytes).unwrap();
        assert_eq!(payload.kind().unwrap(), MessageType::Data);
        assert_eq!(payload.log_group, "g");
        assert_eq!(payload.log_events.len(), 1);
        assert_eq!(payload.log_events[0].message, "{\"a\":1}\n");
        assert_eq!(payload.log_events[0].timestamp, 5);
    }
}

#[test]
fn rejects_bad_input_clearly() {
    assert!(matches!(
        decode_data("not base64 !!", 1024),
        Err(DecodeError::Base64(_))
    ));
    let plain = base64::engine::general_purpose::STANDARD.encode(PAYLOAD);
    assert_eq!(decode_data(&plain, 1 << 20), Err(DecodeError::NotGzip));
    let gz = gzip(PAYLOAD.as_bytes());
    let truncated = base64::engine::general_purpose::STANDARD.encode(&gz[..gz.len() / 2]);
    assert!(matches!(
        decode_data(&truncated, 1 << 20),
        Err(DecodeError::Gzip(_))
    ));
    let mut corrupt = gz.clone();
    corrupt[12] ^= 0xff;
    corrupt[14] ^= 0xff;
    assert!(gunzip_capped(&corrupt, 1 << 20).is_err());
    let not_json = gzip(b"hello");
    assert!(matches!(
        parse_payload(&gunzip_capped(&not_json, 1024).unwrap()),
        Err(DecodeError::Json(_))
    ));
    let wrong_types =
        gzip(br#"{"messageType":"DATA_MESSAGE","logGroup":1,"logStream":"s","logEvents":[]}"#);
    assert!(matches!(
        parse_payload(&gunzip_capped(&wrong_types, 1024).unwrap()),
        Err(DecodeError::Json(_))
    ));
    let unknown = gzip(br#"{"messageType":"OTHER","logGroup":"g","logStream":"s"}"#);
    assert!(matches!(
        parse_payload(&gunzip_capped(&unknown, 1024).unwrap()),
        Err(DecodeError::Json(_))
    ));
}

#[test]
fn stops_a_gzip_bomb_at_the_cap() {
    // 64 MiB of zeros compress to about 64 KiB.
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 200_000);
    assert_eq!(
        gunzip_capped(&bomb, 16 << 20),
        Err(DecodeError::TooLarge { limit: 16 << 20 })
    );
    // Exactly at the cap is fine.
    assert_eq!(
        gunzip_capped(&gzip(&[7u8; 4096]), 4096).unwrap().len(),
        4096
    );
    assert_eq!(
        gunzip_capped(&gzip(&[7u8; 4097]), 4096),
        Err(DecodeError::TooLarge { limit: 4096 })
    );
}

#[test]
fn exact_specials() {
    let naive = |w: u64| {
        w.to_le_bytes()
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'"' || b == b'\\' || b < 0x20)
            .fold(0u64, |m, (i, _)| m | (0x80 << (8 * i)))
    };
    for b in 0..=255u8 {
        for at in 0..8 {
            for fill in [b'a', 0, b'"', 0xff, 0x20, 0x1f] {
                let mut bytes = [fill; 8];
                bytes[at] = b;
                let w = u64::from_le_bytes(bytes);
                assert_eq!(specials_exact(w), naive(w), "{bytes:?}");
            }
        }
    }
    let mut w = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..100_000 {
        w = w.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        assert_eq!(specials_exact(w), naive(w));
    }
}

#[test]
fn keeps_simple_escapes_for_later() {
    let read =
        |quoted: &str| read_message(quoted).map(|m| (m.escaped().is_some(), m.as_str().to_owned()));
    assert_eq!(read(r#""plain""#), Some((false, "plain".into())));
    let long = format!(r#""{}\"x\"{}\n""#, "a".repeat(13), "b".repeat(9));
    let want = format!("{}\"x\"{}\n", "a".repeat(13), "b".repeat(9));
    assert_eq!(read(&long), Some((true, want)));
    for quoted in [
        r#""\"""#,
        r#""ab\\""#,
        r#""abcdefg\\""#,
        r#""abcdefgh\\\"""#,
        r#""abcdefg\"h""#,
        r#""\/\b\f\n\r\t""#,
    ] {
        let want = serde_json::from_str::<String>(quoted).unwrap();
        assert_eq!(read(quoted), Some((true, want)), "{quoted}");
    }
    assert_eq!(read(r#""\u00e9\"""#), Some((false, "\u{e9}\"".into())));
    for bad in [
        "\"a\u{1}\"",
        "\"abcdefgh\tij\"",
        r#""a\q""#,
        r#""abcdefghij\q""#,
        r#""abc"#,
        r#""abcdefghij\"#,
    ] {
        assert_eq!(read(bad), None, "{bad}");
    }
}

#[test]
fn reads_messages_as_serde_json_does() {
    // Random strings of a few troublesome characters, across word boundaries.
    let alphabet = [
        "a", "\"", "\\", "n", "u", "0", "é", "\u{1}", "/", "\\\"", "\\\\",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut valid = 0;
    for _ in 0..50_000 {
        let len = next(40);
        let inner: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
        let quoted = format!("\"{inner}\"");
        let want = serde_json::from_str::<String>(&quoted).ok();
        let got = read_message(&quoted).map(|m| m.as_str().to_owned());
        valid += usize::from(want.is_some());
        assert_eq!(got, want, "{quoted}");
    }
    assert!(valid > 5_000, "{valid} valid strings");
}

#[test]
fn truncates_at_char_boundaries() {
    assert_eq!(truncate("héllo", 2), "h");
    assert_eq!(truncate("héllo", 3), "hé");
    assert_eq!(truncate("abc", 10), "abc");
}

#[test]
fn the_one_pass_reader_agrees_with_serde_json() {
    let realistic = crate::sample::payload_json(
        "g",
        "s",
        &crate::sample::Traffic::new(50, 1.1, 50, 0.2, 7)
            .events(50, 1_795_000_000_000, 3)
            .0,
    );
    let parsed = parse_payload_fast(std::str::from_utf8(&realistic).unwrap()).unwrap();
    assert_eq!(parsed.log_events.len(), 50);
    assert!(fast_payload_agrees(&realistic));
    let control = crate::sample::control_json();
    assert!(parse_payload_fast(std::str::from_utf8(&control).unwrap()).is_some());
    assert!(fast_payload_agrees(&control));
    let ev = r#"{"id":"1","timestamp":5,"message":"m"}"#;
    let payloads = [
        PAYLOAD.to_owned(),
        format!(r#"{{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{ev}]}}"#),
        format!(r#"{{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{ev},{ev}],"owner":null}}"#),
        format!(r#"{{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{ev}],"logGroup":"h"}}"#),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logEvents":[]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s"}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":null}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":-5,"message":"m"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5.0,"message":"m"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"m","x":[1]}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"\u00e9\"\\\/\b\f\n\r\t\ud83d\ude00"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"\u00e9\"\\\/\b\f\n\r\t"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"\u00"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"a\ud83d"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"a\ud83dx"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"a\ud83d\u0041"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"a\ude00\ud83d"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"a\uDBFF\uDFFF\uD800\uDC00 \uFFFF\u0000"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"\q"}]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"m"},]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","subscriptionFilters":[["x"]]}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","subscriptionFilters":{}}"#.to_owned(),
        r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s"} trailing"#.to_owned(),
        "\u{feff}{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"g\",\"logStream\":\"s\"}".to_owned(),
        r#"{"messageType":1,"logGroup":"g","logStream":"s"}"#.to_owned(),
        String::new(),
        "[]".to_owned(),
    ];
    for payload in &payloads {
        assert!(fast_payload_agrees(payload.as_bytes()), "{payload}");
    }
    let emoji = r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"\ud83d\ude00 \u00e9\n"}]}"#;
    let parsed = parse_payload_fast(emoji).unwrap();
    assert_eq!(parsed.log_events[0].message, "\u{1f600} \u{e9}\n");
    let mut bad_utf8 = PAYLOAD.as_bytes().to_vec();
    bad_utf8[80] = 0xff;
    assert!(fast_payload_agrees(&bad_utf8));
    assert!(parse_payload(&bad_utf8).is_err());
}

#[test]
fn a_decoder_reusing_its_buffers_decodes_as_the_functions_do() {
    let payload = |n: usize| {
        crate::sample::payload_json(
            "g",
            "s",
            &crate::sample::Traffic::new(50, 1.1, 50, 0.2, 7)
                .events(n, 1_795_000_000_000, 3)
                .0,
        )
    };
    let (big, small) = (gzip(&payload(300)), gzip(&payload(3)));
    let mut trailing = small.clone();
    trailing.extend_from_slice(b"junk");
    let inputs = [
        big.clone(),
        small.clone(),
        big[..big.len() / 2].to_vec(),
        b"not gzip".to_vec(),
        trailing,
        gzip(b""),
        gzip(&[7u8; 4097]),
        big,
        small,
    ];
    let mut decoder = Decoder::new();
    for gz in &inputs {
        for limit in [4096, 1 << 20] {
            assert_eq!(
                decoder.gunzip(gz, limit).map(<[u8]>::to_vec),
                gunzip_capped(gz, limit)
            );
            let text = base64::engine::general_purpose::STANDARD.encode(gz);
            assert_eq!(
                decoder.decode_data(&text, limit).map(<[u8]>::to_vec),
                decode_data(&text, limit)
            );
        }
    }
    assert_eq!(
        decoder.decode_data("not base64 !!", 1 << 20),
        decode_data("not base64 !!", 1 << 20).map(|_| &[][..])
    );
}

/// The one-call gunzip into a fresh buffer.
fn whole(bytes: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    gunzip_whole(bytes, limit, &mut out).then_some(out)
}

#[test]
fn the_one_call_gunzip_agrees_with_the_streaming_one() {
    let plain = crate::sample::payload_json(
        "g",
        "s",
        &crate::sample::Traffic::new(50, 1.1, 50, 0.2, 7)
            .events(200, 1_795_000_000_000, 3)
            .0,
    );
    let gz = gzip(&plain);
    assert_eq!(whole(&gz, 1 << 20).as_deref(), Some(&plain[..]));
    assert!(gunzip_agrees(&gz, 1 << 20));
    assert_eq!(gunzip_capped(&gz, 1 << 20).unwrap(), plain);
    // Not taken: over the cap, trailing bytes, a header with a file name,
    // a wrong CRC or size; the streaming path decides as before.
    assert_eq!(whole(&gz, plain.len() - 1), None);
    assert_eq!(
        gunzip_capped(&gz, plain.len() - 1),
        Err(DecodeError::TooLarge {
            limit: plain.len() - 1
        })
    );
    let mut trailing = gz.clone();
    trailing.extend_from_slice(b"junk");
    assert_eq!(whole(&trailing, 1 << 20), None);
    assert_eq!(gunzip_capped(&trailing, 1 << 20).unwrap(), plain);
    let mut named = flate2::GzBuilder::new()
        .filename("payload.json")
        .write(Vec::new(), flate2::Compression::default());
    named.write_all(&plain).unwrap();
    let named = named.finish().unwrap();
    assert_eq!(whole(&named, 1 << 20), None);
    assert_eq!(gunzip_capped(&named, 1 << 20).unwrap(), plain);
    let n = gz.len();
    for at in [n - 8, n - 4, n - 1] {
        let mut bad = gz.clone();
        bad[at] ^= 0x01;
        assert_eq!(whole(&bad, 1 << 20), None);
        assert!(gunzip_capped(&bad, 1 << 20).is_err());
    }
    assert_eq!(whole(&gzip(b""), 1 << 20), None);
    assert_eq!(gunzip_capped(&gzip(b""), 1 << 20).unwrap(), b"");
}
