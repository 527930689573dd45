//! The canonicalising serializer (typed events hashed without a
//! `serde_json::Value`) against the reference path it replaced:
//! `serde_json::to_value`, then `KeySelector::select`, then the `Value`
//! writer `canonical_json`, then SHA-256, on arbitrary JSON.
#![allow(clippy::unwrap_used, missing_docs)]

use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use proptest::prelude::*;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use tollgate_idempotency::{
    canonical_json, hash_canonical, Idempotency, IdempotencyConfig, KeySelector,
};

/// Serializes a `Value` the way a typed event might: object entries in
/// another order (and sometimes a bogus earlier copy of a key, which the
/// later one replaces), integers through other widths, floats that fit an
/// `f32` as `f32`, one-character strings as `char`, numeric keys as integers.
struct Typed<'a>(&'a Value, u64);

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let seed = self.1;
        match self.0 {
            Value::Null if seed.is_multiple_of(2) => s.serialize_unit(),
            Value::Null => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    match (u32::try_from(u), seed % 3) {
                        (Ok(small), 0) => s.serialize_u32(small),
                        (_, 1) => s.serialize_i128(i128::from(u)),
                        _ => s.serialize_u64(u),
                    }
                } else if let Some(i) = n.as_i64() {
                    if seed.is_multiple_of(2) {
                        s.serialize_i128(i128::from(i))
                    } else {
                        s.serialize_i64(i)
                    }
                } else {
                    let f = n.as_f64().unwrap();
                    #[allow(clippy::cast_possible_truncation)]
                    let narrow = f as f32;
                    if f64::from(narrow) == f && seed.is_multiple_of(2) {
                        s.serialize_f32(narrow)
                    } else {
                        s.serialize_f64(f)
                    }
                }
            }
            Value::String(text) => {
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if seed.is_multiple_of(2) => s.serialize_char(c),
                    _ => s.serialize_str(text),
                }
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for (i, v) in items.iter().enumerate() {
                    seq.serialize_element(&Typed(v, next(seed, i)))?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                // Some order other than sorted.
                let len = entries.len().max(1);
                entries.rotate_left(usize::try_from(seed).unwrap_or(0) % len);
                if seed.is_multiple_of(3) {
                    entries.reverse();
                }
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    let child = next(seed, i);
                    if child.is_multiple_of(5) {
                        // A bogus copy first: the later entry wins.
                        map.serialize_entry(k, &Value::from(child))?;
                    }
                    match k.parse::<u64>() {
                        Ok(n) if n.to_string() == *k && child.is_multiple_of(2) => {
                            map.serialize_entry(&n, &Typed(v, child))?
                        }
                        _ => map.serialize_entry(k, &Typed(v, child))?,
                    }
                }
                map.end()
            }
        }
    }
}

fn next(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(i as u64 * 2 + 1)
        >> 7
}

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<f32>()
            .prop_map(|f| Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number)),
        (0u32..1000).prop_map(Value::from),
    ]
}

/// Arbitrary JSON; `key` generates object keys.
fn json(key: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        any::<String>().prop_map(Value::String),
        "[a-c]".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner.clone()), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            // A JSON document inside a string, as API Gateway bodies are.
            inner.prop_map(|v| Value::String(v.to_string())),
        ]
    })
}

fn any_key() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        "[a-c]{0,2}",
        "[0-9]{1,3}",
        "[a\"#\\\\\n]{1,3}"
    ]
    .boxed()
}

fn path_key() -> BoxedStrategy<String> {
    prop_oneof!["[a-c]{1,2}", "[0-9]{1,2}"].boxed()
}

fn idem(key: KeySelector, payload: Option<KeySelector>) -> Idempotency {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .build();
    let mut config = IdempotencyConfig::new("t").namespace("p").key_selector(key);
    if let Some(p) = payload {
        config = config.payload_selector(p);
    }
    Idempotency::new(aws_sdk_dynamodb::Client::from_conf(conf), config)
}

/// What the crate computed before the serializer: `to_value`, select,
/// `canonical_json`, SHA-256.
fn reference(
    e: &Typed<'_>,
    key: &KeySelector,
    payload: Option<&KeySelector>,
) -> Option<(String, Option<String>)> {
    let value = serde_json::to_value(e).unwrap();
    let selected = key.select(&value)?;
    let fp = payload.map(|p| sha(&canonical_json(&p.select(&value).unwrap_or(Value::Null))));
    Some((format!("p#v1#{}", sha(&canonical_json(&selected))), fp))
}

/// A path into `v` following a random walk (sometimes off the end).
fn walk(v: &Value, choices: &[usize]) -> String {
    let mut path = String::from("$");
    let mut cur = v;
    for &c in choices {
        let next = match cur {
            Value::Object(m) if !m.is_empty() => {
                let Some((k, v)) = m.iter().nth(c % (m.len() + 1)) else {
                    path.push_str("[\"zz\"]");
                    break;
                };
                path.push_str(&format!("[\"{k}\"]"));
                v
            }
            Value::Array(a) => {
                let i = c % (a.len() + 1);
                path.push_str(&format!("[{i}]"));
                match a.get(i) {
                    Some(v) => v,
                    None => break,
                }
            }
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                // The path goes on inside the string.
                Ok(parsed) => return walk_parsed(&path, &parsed, choices),
                Err(_) => break,
            },
            _ => break,
        };
        cur = next;
    }
    path
}

fn walk_parsed(prefix: &str, v: &Value, choices: &[usize]) -> String {
    let rest = walk(v, &choices[1.min(choices.len())..]);
    format!("{prefix}{}", rest.trim_start_matches('$'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hash_canonical_of_a_value_is_sha256_of_the_reference_writer(v in json(any_key())) {
        prop_assert_eq!(hash_canonical(&v), sha(&canonical_json(&v)));
    }

    #[test]
    fn the_whole_typed_event_hashes_as_the_value_path(v in json(any_key()), seed in any::<u64>()) {
        let e = Typed(&v, seed);
        let whole = KeySelector::Whole;
        let got = idem(whole.clone(), Some(whole.clone())).key_for(&e).unwrap();
        let want = reference(&e, &whole, Some(&whole));
        prop_assert_eq!(got.map(|k| (k.key, k.fingerprint)), want);
        // The Value entry point agrees.
        let value = serde_json::to_value(&e).unwrap();
        let got = idem(whole.clone(), None).key_for_value(&value).map(|k| k.key);
        prop_assert_eq!(got, reference(&e, &whole, None).map(|r| r.0));
    }

    #[test]
    fn a_selected_path_of_a_typed_event_hashes_as_the_value_path(
        v in json(path_key()),
        seed in any::<u64>(),
        choices in prop::collection::vec(any::<usize>(), 0..6),
        other in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let e = Typed(&v, seed);
        let value = serde_json::to_value(&e).unwrap();
        let (p, q) = (walk(&value, &choices), walk(&value, &other));
        let key = KeySelector::path(&p).unwrap();
        for payload in [None, Some(KeySelector::path(&q).unwrap()), Some(KeySelector::Whole), Some(key.clone())] {
            let got = idem(key.clone(), payload.clone()).key_for(&e).unwrap();
            let want = reference(&e, &key, payload.as_ref());
            prop_assert_eq!(got.map(|k| (k.key, k.fingerprint)), want.clone(), "key {} payload {:?}", p, payload);
            let got = idem(key.clone(), payload.clone()).key_for_value(&value);
            prop_assert_eq!(got.map(|k| (k.key, k.fingerprint)), want, "value, key {}", p);
        }
        let multi = KeySelector::paths([p.as_str(), q.as_str(), "$.nope"]).unwrap();
        let got = idem(multi.clone(), None).key_for(&e).unwrap().map(|k| k.key);
        prop_assert_eq!(got, reference(&e, &multi, None).map(|r| r.0));
    }
}
