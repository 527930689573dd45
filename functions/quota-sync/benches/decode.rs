//! Record decoding and the collapse (merge) decision, per record.
//!
//! `cargo bench -p quota-sync -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quota_sync::record::{collapse, decode, Change};
use serde_json::{json, Value};

fn record(i: usize, item: usize) -> Value {
    let pk = format!("requests#key:k_{item:016x}");
    let sk = "month#2026-11#local-a";
    json!({
        "eventID": format!("e{i}"), "eventName": "MODIFY", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "local-a",
        "eventSourceARN": "arn:aws:dynamodb:local-a:000000000000:table/tollgate-usage/stream/2026-11-21T00:00:00.000",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_795_000_000.0,
            "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
            "NewImage": {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": (i + 1).to_string()},
                         "d20": {"N": "7"}, "d21": {"N": (i + 1).to_string()},
                         "agg": {"S": "count"}, "updated_at": {"N": "1795000000000"}},
            "OldImage": {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": i.to_string()},
                         "d20": {"N": "7"}, "d21": {"N": i.to_string()},
                         "agg": {"S": "count"}, "updated_at": {"N": "1794999999000"}},
            "SequenceNumber": format!("{}", 100_000_000_000_000_000_000u128 + i as u128),
            "SizeBytes": 240, "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

fn bench(c: &mut Criterion) {
    // A batch of 100 records over 10 month items (10 updates each, of the
    // month and its day 21; day 20 unchanged).
    let batch: Vec<Value> = (0..100).map(|i| record(i, i % 10)).collect();
    let event_text = serde_json::to_string(&json!({ "Records": batch })).unwrap_or_default();
    let changes: Vec<Change> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, r)| decode(r, i, "tollgate-usage").ok())
        .flatten()
        .collect();
    assert_eq!(changes.len(), 200);

    let mut group = c.benchmark_group("quota-sync");
    group.throughput(Throughput::Elements(100));
    group.bench_function("parse event JSON, 100 records", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(&event_text)))
    });
    group.bench_function("decode 100 records", |b| {
        b.iter(|| {
            black_box(&batch)
                .iter()
                .enumerate()
                .filter_map(|(i, r)| decode(r, i, "tollgate-usage").ok())
                .count()
        })
    });
    group.bench_function("collapse 200 changes to 20 counters", |b| {
        b.iter(|| collapse(black_box(&changes)).len())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
