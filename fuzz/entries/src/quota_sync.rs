//! quota-sync's stream records, the Usage and block items they and the
//! authorizer read, for the cargo-fuzz target `fuzz/quota-sync`
//! `stream_and_items`: [`fuzz_stream`].

use std::collections::{BTreeMap, BTreeSet};

use ::quota_sync::record::{collapse, decode, SequenceNumber, Skip};
use serde_json::{json, Value};
use tollgate_core::Block;
use tollgate_store::typed_json;

/// The Usage table the entry's quota-sync reads the stream of.
pub const USAGE_TABLE: &str = "tollgate-usage";

/// A stream record of the Usage table with `image` as its new image.
pub fn stream_record(sequence: &str, image: &Value) -> Value {
    json!({
        "eventID": "e1",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "local-a",
        "dynamodb": {
            "NewImage": image,
            "SequenceNumber": sequence,
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": format!("arn:aws:dynamodb:local-a:000000000000:table/{USAGE_TABLE}/stream/x"),
    })
}

/// The first byte picks the mode: 0, the rest is a stream event's JSON
/// (its records decoded and collapsed as a batch); 1, a Usage item in
/// typed JSON (read as an item, and as a stream record's image); 2, a
/// block item in typed JSON; 3, three sequence numbers, one a line.
///
/// Panics only if an invariant breaks: a decoded record yields changes of
/// the partition its image names, at its position and sequence number; the
/// collapsed batch has one entry per counter, at its largest value and
/// earliest sequence number, and loses no record; an item's counters are
/// of its partition; an item read whole and
/// as a stream image gives the same counters; blocks print and read back;
/// sequence numbers are totally ordered.
pub fn fuzz_stream(bytes: &[u8]) {
    let Some((&mode, rest)) = bytes.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(value) = serde_json::from_slice::<Value>(rest) {
                if let Some(records) = value.get("Records").and_then(Value::as_array) {
                    check_batch(records);
                }
            }
        }
        1 => {
            if let Ok(value) = serde_json::from_slice::<Value>(rest) {
                check_usage_item(&value);
            }
        }
        2 => {
            if let Ok(value) = serde_json::from_slice::<Value>(rest) {
                check_blocks(&value);
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let mut lines = text.splitn(3, '\n');
            let mut next = || SequenceNumber(lines.next().unwrap_or_default().to_owned());
            check_order(&next(), &next(), &next());
        }
    }
}

fn check_batch(records: &[Value]) {
    let mut changes = Vec::new();
    for (position, record) in records.iter().enumerate() {
        let Ok(decoded) = decode(record, position, USAGE_TABLE) else {
            continue;
        };
        assert!(!decoded.is_empty());
        let image = &record["dynamodb"]["NewImage"];
        let (pk, sk) = (image["pk"]["S"].as_str(), image["sk"]["S"].as_str());
        for change in &decoded {
            assert_eq!(change.position, position);
            assert_eq!(
                Some(change.sequence.0.as_str()),
                record["dynamodb"]["SequenceNumber"].as_str()
            );
            let holder = change.item.key.item();
            // The image's partition (a day-keyed item's counter is held,
            // as tollgate writes it, by the month's item).
            assert_eq!(Some(holder.pk.as_str()), pk);
            assert!(sk.is_some());
        }
        changes.extend(decoded);
    }
    let collapsed = collapse(&changes);
    let keys: BTreeSet<_> = collapsed.iter().map(|c| c.item.key.clone()).collect();
    assert_eq!(keys.len(), collapsed.len(), "a counter collapsed twice");
    assert_eq!(
        collapsed.iter().map(|c| c.records).sum::<usize>(),
        changes.len()
    );
    for c in &collapsed {
        let of_key = changes.iter().filter(|ch| ch.item.key == c.item.key);
        let max = of_key.clone().map(|ch| ch.item.value).max();
        let first = of_key.clone().map(|ch| &ch.sequence).min();
        assert_eq!(Some(c.item.value), max);
        assert_eq!(Some(&c.first), first);
        assert_eq!(of_key.count(), c.records);
    }
}

fn check_usage_item(value: &Value) {
    let read = typed_json::usage_items(value);
    if let Ok(items) = &read {
        assert!(!items.is_empty());
        for item in items {
            let holder = item.key.item();
            assert_eq!(value["pk"]["S"].as_str(), Some(holder.pk.as_str()));
            assert!(value["sk"]["S"].is_string());
        }
    }
    // As a stream record's image: the same counters, when every attribute
    // is a string or a number (an image's other attributes are ignored).
    let scalar = |v: &Value| {
        v.as_object().is_some_and(|m| m.len() == 1) && (v["S"].is_string() || v["N"].is_string())
    };
    let only_scalars = value.as_object().is_some_and(|o| o.values().all(scalar));
    if !only_scalars {
        return;
    }
    let record = stream_record("1", value);
    let as_image = decode(&record, 0, USAGE_TABLE);
    match (&read, &as_image) {
        (Ok(items), Ok(changes)) => {
            let a: Vec<_> = items.iter().map(|i| (&i.key, i.value)).collect();
            let b: Vec<_> = changes
                .iter()
                .map(|c| (&c.item.key, c.item.value))
                .collect();
            assert_eq!(a, b);
        }
        (Err(_), Err(Skip::NotUsage(_) | Skip::Unreadable(_) | Skip::NoNewImage)) => {}
        (read, image) => panic!("read as an item: {read:?}; as an image: {image:?}"),
    }
}

fn block_set(blocks: &[Block]) -> BTreeMap<String, (u64, u64)> {
    blocks
        .iter()
        .map(|b| (format!("{}#{}", b.meter, b.period), (b.limit, b.used)))
        .collect()
}

fn check_blocks(value: &Value) {
    let Ok(blocks) = typed_json::blocks(value) else {
        return;
    };
    let again = typed_json::blocks(&typed_json::block_item(&blocks)).unwrap_or_default();
    let (first, second) = (block_set(&blocks), block_set(&again));
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>(),
        "a block did not read back"
    );
    for (name, value) in &second {
        assert!(blocks
            .iter()
            .any(|b| format!("{}#{}", b.meter, b.period) == *name && (b.limit, b.used) == *value));
    }
    let third = typed_json::blocks(&typed_json::block_item(&again)).unwrap_or_default();
    assert_eq!(block_set(&third), second);
}

fn check_order(a: &SequenceNumber, b: &SequenceNumber, c: &SequenceNumber) {
    use std::cmp::Ordering::*;
    for (x, y) in [(a, b), (b, c), (a, c)] {
        assert_eq!(x.cmp(y), y.cmp(x).reverse(), "{x} / {y}");
        assert_eq!(
            x.cmp(y) == Equal,
            x == y,
            "{x} / {y}: Ord disagrees with Eq"
        );
    }
    if a <= b && b <= c {
        assert!(a <= c, "{a} <= {b} <= {c}, yet {a} > {c}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn sample_records() -> Vec<Value> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/quota-sync/stream-batch.json"
        );
        let value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        value["Records"].as_array().unwrap().clone()
    }

    #[test]
    fn the_sample_batch_decodes_through_the_entry() {
        let records = sample_records();
        let decoded = records
            .iter()
            .enumerate()
            .filter(|(i, r)| decode(r, *i, USAGE_TABLE).is_ok())
            .count();
        assert!(decoded >= 2, "{decoded}");
        check_batch(&records);
        for record in &records {
            check_usage_item(&record["dynamodb"]["NewImage"]);
        }
    }

    #[test]
    fn sequence_numbers_are_totally_ordered() {
        let s = |t: &str| SequenceNumber(t.to_owned());
        check_order(&s("7"), &s("007"), &s("10"));
        check_order(&s("x"), &s("9"), &s(""));
    }

    fn image() -> impl Strategy<Value = Value> {
        let pk = prop_oneof![
            Just("requests#key:k_0123456789abcdef".to_owned()),
            Just("requests#anon:17".to_owned()),
            Just("tokens#customer:acme".to_owned()),
            "[a-z:#_0-9]{0,20}",
        ];
        let sk = prop_oneof![
            Just("month#2026-11#local-a".to_owned()),
            Just("day#2026-11-21#local-b".to_owned()),
            Just("day#2026-11-21#local-b#000002".to_owned()),
            Just("hour#2026-11-21T13#local-c".to_owned()),
            "[a-z0-9#-]{0,24}",
        ];
        let attr = prop_oneof![
            Just("n".to_owned()),
            Just("d01".to_owned()),
            Just("d31".to_owned()),
            Just("i:ip:203.0.113.7".to_owned()),
            Just("agg".to_owned()),
            "[a-z0-9:]{1,6}",
        ];
        let val = prop_oneof![
            Just(json!({"N": "5"})),
            Just(json!({"N": "-1"})),
            Just(json!({"N": "1e3"})),
            Just(json!({"N": "999999999999999999999999999999"})),
            Just(json!({"S": "max"})),
            Just(json!({"BOOL": true})),
            Just(json!({"M": {"limit": {"N": "10"}, "used": {"N": "11"}}})),
        ];
        (pk, sk, proptest::collection::vec((attr, val), 0..6)).prop_map(|(pk, sk, attrs)| {
            let mut m = serde_json::Map::new();
            m.insert("pk".into(), json!({"S": pk}));
            m.insert("sk".into(), json!({"S": sk}));
            for (a, v) in attrs {
                m.insert(a, v);
            }
            Value::Object(m)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(mode in 0u8..4, data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut input = vec![mode];
            input.extend(data);
            fuzz_stream(&input);
        }

        #[test]
        fn images_keep_the_invariants(images in proptest::collection::vec((image(), "[0-9]{1,22}"), 1..6)) {
            let records: Vec<Value> = images.iter().map(|(i, seq)| stream_record(seq, i)).collect();
            check_batch(&records);
            for (image, _) in &images {
                check_usage_item(image);
            }
        }

        #[test]
        fn block_items_read_back(
            blocks in proptest::collection::vec(("[a-z]{1,8}", prop_oneof![Just("day#2026-11-21"), Just("month#2026-11"), Just("day#2026-1-5"), Just("x")], 0u64..100, any::<bool>()), 0..6)
        ) {
            let mut m = serde_json::Map::new();
            for (meter, period, limit, bad) in blocks {
                let used = if bad { json!({"S": "1"}) } else { json!({"N": "3"}) };
                m.insert(format!("blk:{meter}#{period}"), json!({"M": {"limit": {"N": limit.to_string()}, "used": used}}));
            }
            check_blocks(&Value::Object(m));
        }

        #[test]
        fn sequence_orders_are_total(a in "0{0,2}[0-9]{0,25}|\\PC{0,4}", b in "0{0,2}[0-9]{0,25}", c in "0{0,2}[0-9]{0,25}|x") {
            let s = |t: &str| SequenceNumber(t.to_owned());
            check_order(&s(&a), &s(&b), &s(&c));
        }
    }
}
