//! Keys must not change across versions: the digests below were computed by
//! the crate before the canonicalising serializer replaced
//! `serde_json::to_value` (commit 20dc161), and every later version must
//! reproduce them byte for byte.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use serde::Serialize;
use serde_json::{json, Value};
use tollgate_idempotency::{
    canonical_json, hash_canonical, Idempotency, IdempotencyConfig, KeySelector,
};

#[derive(Serialize)]
enum Kind {
    Unit,
    Newtype(u8),
    Tuple(i32, String),
    Struct { z: bool, a: Option<u8> },
}

#[derive(Serialize)]
struct Inner {
    zeta: f32,
    alpha: f64,
    #[serde(rename = "a\"q")]
    quoted: &'static str,
    #[serde(rename = "a#")]
    hash: char,
    nan: f64,
}

#[derive(Serialize)]
struct Event {
    order_id: String,
    body: String,
    amount: u64,
    delta: i64,
    big: u128,
    ratio: f64,
    none: Option<String>,
    unit: (),
    kinds: Vec<Kind>,
    by_num: BTreeMap<u32, &'static str>,
    by_name: HashMap<&'static str, i16>,
    inner: Inner,
    bytes: Vec<u8>,
    tuple: (bool, &'static str),
    meta: Value,
    #[serde(rename = "émoji 🎉")]
    unicode: &'static str,
}

fn event() -> Event {
    Event {
        order_id: "ord_42".into(),
        body: r#"{"id": 7, "nested": {"b": 2, "a": 1}}"#.into(),
        amount: 18_446_744_073_709_551_615,
        delta: -9_223_372_036_854_775_808,
        big: 12_345_678_901_234_567,
        ratio: 0.1 + 0.2,
        none: None,
        unit: (),
        kinds: vec![
            Kind::Unit,
            Kind::Newtype(255),
            Kind::Tuple(-1, "t".into()),
            Kind::Struct { z: true, a: None },
        ],
        by_num: [(10, "ten"), (2, "two"), (100, "hundred")]
            .into_iter()
            .collect(),
        by_name: [("b", -2), ("a", 1), ("", 0)].into_iter().collect(),
        inner: Inner {
            zeta: 0.1,
            alpha: 1e300,
            quoted: "line\nbreak\t\u{1}\u{7f}\"\\/",
            hash: '#',
            nan: f64::NAN,
        },
        bytes: vec![0, 1, 254],
        tuple: (false, "x"),
        meta: json!({"z": [null, 1.5, -0.0, 1e-7], "a": {"c": "é", "b": []}}),
        unicode: "\u{2028}\u{10FFFF}",
    }
}

fn idem(key: KeySelector, payload: Option<KeySelector>) -> Idempotency {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .build();
    let mut config = IdempotencyConfig::new("t")
        .namespace("pin")
        .key_selector(key);
    if let Some(p) = payload {
        config = config.payload_selector(p);
    }
    Idempotency::new(aws_sdk_dynamodb::Client::from_conf(conf), config)
}

const WHOLE: &str = "pin#v1#eae5d0fac2e6e0b93395017dd12063fbb533054a75caac64ebd45c532954fa00";
const PATH_KEY: &str = "pin#v1#36906538b447a43de6f0dc83b0ea5bdf638b5ab14be8602094050061c82e01d6";
const PATH_FP: &str = "eae5d0fac2e6e0b93395017dd12063fbb533054a75caac64ebd45c532954fa00";
const BODY_KEY: &str = "pin#v1#43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777";
const PATHS_KEY: &str = "pin#v1#95ad7093c21917c6f4ad02534bc57030669d3a64109c959f39cdb7f96852003b 47fe2853be6e7d54ef03a4ea0310f81972a76982cf5b47e3adb658f458be1e01";

#[test]
fn the_canonical_form_and_keys_of_a_fixed_event_never_change() {
    let e = event();
    let value = serde_json::to_value(&e).unwrap();
    let canonical = canonical_json(&value);
    let whole = idem(KeySelector::Whole, None).key_for(&e).unwrap().unwrap();
    let path = idem(
        KeySelector::path("order_id").unwrap(),
        Some(KeySelector::path("$").unwrap()),
    )
    .key_for(&e)
    .unwrap()
    .unwrap();
    let body = idem(KeySelector::path("body.nested").unwrap(), None)
        .key_for(&e)
        .unwrap()
        .unwrap();
    let paths = idem(
        KeySelector::paths(["inner.a\"q", "kinds[1]", "nope", "by_num.10"]).unwrap(),
        Some(KeySelector::path("inner").unwrap()),
    )
    .key_for(&e)
    .unwrap()
    .unwrap();
    println!("WHOLE {}", whole.key);
    println!("PATH_KEY {}", path.key);
    println!("PATH_FP {}", path.fingerprint.clone().unwrap());
    println!("BODY_KEY {}", body.key);
    println!(
        "PATHS_KEY {} {}",
        paths.key,
        paths.fingerprint.clone().unwrap()
    );
    assert_eq!(format!("pin#v1#{}", hash_canonical(&value)), WHOLE);
    assert!(
        canonical.starts_with(r#"{"amount":18446744073709551615,"big":12345678901234567,"body":"#)
    );
    assert_eq!(whole.key, WHOLE);
    assert_eq!(path.key, PATH_KEY);
    assert_eq!(path.fingerprint.unwrap(), PATH_FP);
    assert_eq!(body.key, BODY_KEY);
    assert_eq!(
        format!("{} {}", paths.key, paths.fingerprint.unwrap()),
        PATHS_KEY
    );
    assert_eq!(whole.key, format!("pin#v1#{}", hash_canonical(&value)));
}
