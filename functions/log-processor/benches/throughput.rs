//! Decode + parse + aggregate throughput, in log events per second on one
//! core, for realistic API Gateway access-log batches, against plain gzip
//! decoding of the same bytes (`gunzip_flate2_read`: flate2's streaming
//! `GzDecoder`; `gunzip_only`: the capped gunzip the function uses).
//! `decode_payload` and `decode_payload_lines` stop after reading the
//! payload and after classifying its lines, to split the time by stage;
//! `decode_parse_aggregate_reused` keeps the decoding buffers across
//! batches (`Decoder`).
//!
//! `cargo bench -p log-processor --bench throughput`

use std::collections::BTreeSet;
use std::hint::black_box;
use std::io::Read;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flate2::read::GzDecoder;
use log_processor::batch::{cloudwatch_source_id, plan, BatchAggregate, Counting};
use log_processor::config::StatusRanges;
use log_processor::decode::{base64_decode, decode_data, gunzip_capped, parse_payload, Decoder};
use log_processor::line::{parse_message, Line, Rules};
use tollgate_core::{Region, Window};
use tollgate_tests::cloudwatch::{base64, gzip, payload_json};
use tollgate_tests::traffic::Traffic;

const LIMIT: usize = 16 << 20;

fn bench(c: &mut Criterion) {
    let counting = Counting {
        rules: Rules {
            count_status: StatusRanges::default_counted(),
            ipv6_prefix: tollgate_core::Ipv6Prefix::DEFAULT,
        },
        windows: std::sync::Arc::new(tollgate_core::CountedWindows::configured(
            &[Window::Day, Window::Month],
            &[Window::Day, Window::Month],
        )),
        max_meters: BTreeSet::new(),
    };
    let region = Region::new("eu-central-1").unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("log_batch");
    for n in [1_000usize, 5_000] {
        let mut traffic = Traffic::new(
            log_processor::ACCESS_LOG_FORMAT,
            10_000,
            1.1,
            50_000,
            0.2,
            42,
        );
        let (events, _) = traffic.events(n, 1_795_000_000_000, 3);
        let json = payload_json(
            "API-Gateway-Execution-Logs_abc123/prod",
            "0f1e2d3c4b5a",
            &events,
        );
        let gz = gzip(&json);
        let text = base64(&gz);
        eprintln!(
            "batch of {n}: {} bytes JSON, {} gzip, {:.0} bytes per line",
            json.len(),
            gz.len(),
            json.len() as f64 / n as f64
        );
        group.throughput(Throughput::Elements(n as u64));
        // Plain streaming gunzip with flate2, as a reference for the others.
        group.bench_with_input(BenchmarkId::new("gunzip_flate2_read", n), &gz, |b, gz| {
            b.iter(|| {
                let mut out = Vec::new();
                let read = GzDecoder::new(&gz[..]).read_to_end(&mut out);
                black_box(read.map(|_| out.len()).ok())
            })
        });
        group.bench_with_input(BenchmarkId::new("gunzip_only", n), &gz, |b, gz| {
            b.iter(|| black_box(gunzip_capped(gz, LIMIT).map(|v| v.len())))
        });
        group.bench_with_input(BenchmarkId::new("base64_gunzip", n), &text, |b, text| {
            b.iter(|| black_box(decode_data(text, LIMIT).map(|v| v.len())))
        });
        // The stages of the full pipeline, cumulatively, to see where its time goes.
        group.bench_with_input(BenchmarkId::new("decode_payload", n), &text, |b, text| {
            b.iter(|| {
                let bytes = decode_data(text, LIMIT).unwrap_or_default();
                let payload = parse_payload(&bytes).unwrap_or_else(|e| panic!("{e}"));
                black_box(payload.log_events.len())
            })
        });
        group.bench_with_input(
            BenchmarkId::new("decode_payload_lines", n),
            &text,
            |b, text| {
                b.iter(|| {
                    let bytes = decode_data(text, LIMIT).unwrap_or_default();
                    let payload = parse_payload(&bytes).unwrap_or_else(|e| panic!("{e}"));
                    let counted = payload
                        .log_events
                        .iter()
                        .filter(|e| {
                            matches!(
                                parse_message(&e.message, e.timestamp, &counting.rules),
                                Line::Count(_)
                            )
                        })
                        .count();
                    black_box(counted)
                })
            },
        );
        // The same with the decoder's buffers kept from one batch to the
        // next (`Decoder`), as a processor living across invocations can.
        let mut decoder = Decoder::new();
        group.bench_with_input(
            BenchmarkId::new("decode_parse_aggregate_reused", n),
            &text,
            |b, text| {
                b.iter(|| {
                    let bytes = decoder.decode_data(text, LIMIT).unwrap_or_default();
                    let payload = parse_payload(bytes).unwrap_or_else(|e| panic!("{e}"));
                    let mut agg = BatchAggregate::new();
                    agg.add_events(&payload.log_events, &counting);
                    let id = cloudwatch_source_id(&payload);
                    black_box(plan(&id, agg.aggregator.into_increments(), &region).increments())
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("decode_parse_aggregate", n),
            &text,
            |b, text| {
                b.iter(|| {
                    let bytes = decode_data(text, LIMIT).unwrap_or_default();
                    let payload = parse_payload(&bytes).unwrap_or_else(|e| panic!("{e}"));
                    let mut agg = BatchAggregate::new();
                    agg.add_events(&payload.log_events, &counting);
                    let id = cloudwatch_source_id(&payload);
                    black_box(plan(&id, agg.aggregator.into_increments(), &region).increments())
                })
            },
        );
        let _ = base64_decode(&text);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
