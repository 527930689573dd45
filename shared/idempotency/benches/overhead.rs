//! In-process overhead of one idempotent call, without the network: key
//! selection, canonical JSON, SHA-256, and encoding the acquire record and
//! the completion's stored response, for a 1 KB payload.
//!
//! `cargo bench -p tollgate-idempotency -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs)]

use std::hint::black_box;

use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use criterion::{criterion_group, criterion_main, Criterion};
use serde::Serialize;
use serde_json::{json, Value};
use tollgate_idempotency::{
    hash_canonical, Idempotency, IdempotencyConfig, Record, Status, StoredData,
};

#[derive(Serialize)]
struct Order {
    order_id: String,
    customer: String,
    currency: String,
    amount_cents: u64,
    lines: Vec<Line>,
    metadata: Value,
}

#[derive(Serialize)]
struct Line {
    sku: String,
    quantity: u32,
    price_cents: u64,
    description: String,
}

fn order() -> Order {
    Order {
        order_id: "ord_01HZY3K8P6Q2W9".into(),
        customer: "cus_9f8e7d6c5b4a".into(),
        currency: "EUR".into(),
        amount_cents: 129_900,
        lines: (0..6)
            .map(|i| Line {
                sku: format!("SKU-{i:04}-BLUE-XL"),
                quantity: i + 1,
                price_cents: 1999 + u64::from(i) * 100,
                description: format!(
                    "A product description that is long enough to be realistic #{i}"
                ),
            })
            .collect(),
        metadata: json!({"channel": "web", "campaign": "spring", "ab": {"variant": "b", "cohort": 17}}),
    }
}

fn client() -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

fn overhead(c: &mut Criterion) {
    let event = order();
    let value = serde_json::to_value(&event).unwrap_or_default();
    let size = serde_json::to_string(&event).map(|s| s.len()).unwrap_or(0);
    assert!((900..1300).contains(&size), "payload is {size} bytes");
    let config = IdempotencyConfig::new("tollgate-idempotency").namespace("bench");
    let whole = Idempotency::new(client(), config.clone());
    let validated = Idempotency::new(
        client(),
        config
            .clone()
            .key_path("order_id")
            .unwrap_or_else(|e| panic!("{e}"))
            .payload_path("$")
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let names = config.attributes.clone();
    let layout = config.key_layout.clone();
    let response = json!({"status": "accepted", "charge_id": "ch_3MtwBwLkdIwHu7ix28a3tqPa", "amount": 129_900});

    let mut g = c.benchmark_group("overhead_1kb");
    g.bench_function("canonical_sha256_of_value", |b| {
        b.iter(|| hash_canonical(black_box(&value)))
    });
    g.bench_function("key_for_typed_event_whole", |b| {
        b.iter(|| whole.key_for(black_box(&event)))
    });
    g.bench_function("per_call_total", |b| {
        // What one first execution spends in process: key (whole event),
        // acquire item, response encoding and its attribute.
        b.iter(|| {
            let key = whole.key_for(black_box(&event)).ok().flatten();
            let key = key.map(|k| k.key).unwrap_or_default();
            let record = Record {
                key,
                status: Status::InProgress,
                expiration_s: 1_800_000_000,
                in_progress_expiry_ms: Some(1_800_000_000_000),
                lease: Some(format!("{:032x}", 0x1234_5678_u128)),
                data: None,
                failed: false,
                validation: None,
            };
            let item = record.to_item(&names, &layout);
            let data = StoredData::encode(
                serde_json::to_string(black_box(&response)).unwrap_or_default(),
                4096,
            );
            (item, data)
        })
    });
    g.bench_function("per_call_total_with_fingerprint", |b| {
        b.iter(|| {
            let key = validated
                .key_for(black_box(&event))
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("key"));
            let record = Record {
                key: key.key,
                status: Status::InProgress,
                expiration_s: 1_800_000_000,
                in_progress_expiry_ms: Some(1_800_000_000_000),
                lease: Some(format!("{:032x}", 0x1234_5678_u128)),
                data: None,
                failed: false,
                validation: key.fingerprint,
            };
            let item = record.to_item(&names, &layout);
            let data = StoredData::encode(
                serde_json::to_string(black_box(&response)).unwrap_or_default(),
                4096,
            );
            (item, data)
        })
    });
    g.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
