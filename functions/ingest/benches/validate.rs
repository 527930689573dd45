//! Validation and aggregation of a 1,000-event request: parsing the body,
//! checking every event and collapsing them into counter increments.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ingest::body::{parse_body, Limits};
use ingest::validate::{aggregate, validate_all, Checked, Rules};
use tollgate_core::{Aggregation, MeterDef, MeterName, Window};

const NOW: i64 = 1_795_000_000_000;

fn request() -> Vec<u8> {
    let events: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"id":"evt-{i:06}","meter":"{}","identity":"key:customer-{}","value":{},"time":{}}}"#,
                if i % 2 == 0 { "tokens" } else { "calls" },
                i % 50,
                i % 977,
                NOW - i64::from(i) * 1000
            )
        })
        .collect();
    format!("[{}]", events.join(",")).into_bytes()
}

fn meters() -> HashMap<MeterName, MeterDef> {
    [("tokens", Aggregation::Sum), ("calls", Aggregation::Count)]
        .into_iter()
        .filter_map(|(n, a)| {
            let name = MeterName::new(n).ok()?;
            Some((
                name.clone(),
                MeterDef {
                    name,
                    aggregation: a,
                    unit: String::new(),
                    value_path: None,
                },
            ))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let body = request();
    let meters = meters();
    let rules = Rules {
        meters: &meters,
        now: NOW,
        dedupe_window_ms: 35 * 86_400_000,
        future_tolerance_ms: 300_000,
    };
    let windows = [Window::Hour, Window::Day, Window::Month];
    let windows = tollgate_core::CountedWindows::configured(&windows, &windows);
    c.bench_function("validate_and_aggregate_1000_events", |b| {
        b.iter(|| {
            let values = parse_body(black_box(&body), &Limits::default()).unwrap_or_default();
            let checked = validate_all(&values, &rules);
            let valid = checked.iter().filter_map(|c| match c {
                Checked::Valid(e) => Some(e),
                _ => None,
            });
            let agg = aggregate(valid, &windows).map(|a| a.len()).unwrap_or(0);
            black_box(agg)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
