//! Bounded anonymous bucket items at their limits, on DynamoDB Local:
//! 10,000 distinct anonymous identities in ONE bucket in one direct
//! delivery and in one Kinesis batch, beside API-key lines; and a simulated
//! day of anonymous IPs at the density per bucket of 1,000,000 a day.
//! Every counter exact, every item within `PART_ITEM_BYTES`, nothing failed.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde_json::json;
use tollgate_core::bucket::{bucket_of, ANONYMOUS_BUCKETS, PART_ITEM_BYTES};
use tollgate_core::{Identity, Window};
use tollgate_tests::cloudwatch::{direct_event, gzip, kinesis_event, payload_json, Event};
use tollgate_tests::{Harness, TEST_REGION};

use common::{config, usage_items};

/// Now, from the wall clock (DynamoDB Local's TTL sweeper runs on it).
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `count` distinct IPv4 identities whose bucket is in `buckets`, from 10.0.0.0 up.
fn ips_in(buckets: std::ops::Range<u32>, count: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(count);
    let mut n: u32 = 0x0a00_0000;
    while out.len() < count {
        let ip = std::net::Ipv4Addr::from(n);
        n += 1;
        if bucket_of(&Identity::anonymous_ip(
            ip.into(),
            tollgate_core::Ipv6Prefix::DEFAULT,
        ))
        .is_some_and(|b| buckets.contains(&b))
        {
            out.push(format!("ip:{ip}"));
        }
    }
    out
}

/// 10,000 distinct IPs of bucket 7, found once for both tests (finding
/// them takes about 10 million hashes).
fn one_bucket() -> &'static [String] {
    static IPS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    IPS.get_or_init(|| ips_in(7..8, 10_000))
}

fn line(identity: &str, at: i64) -> String {
    json!({"tollgate": 1, "identity": identity, "time": at}).to_string()
}

/// DynamoDB's size of an item: attribute names and values (numbers: one
/// byte per two significant digits, plus one).
fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> u64 {
    item.iter()
        .map(|(name, value)| {
            let value = match value {
                AttributeValue::S(s) => s.len(),
                AttributeValue::N(n) => {
                    let digits = n.trim_start_matches('-').trim_matches('0').replace('.', "");
                    digits.len().div_ceil(2) + 1
                }
                AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
                other => panic!("unexpected attribute {other:?}"),
            };
            (name.len() + value) as u64
        })
        .sum()
}

/// The largest item of the Usage table, its bucket parts, and the number of items.
async fn sizes(client: &Client, table: &str) -> (u64, usize, usize) {
    let (mut largest, mut parts, mut items) = (0, 0, 0);
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in out.items() {
            largest = largest.max(item_size(item));
            items += 1;
            if item["pk"].as_s().unwrap().contains("#anon:") {
                parts += 1;
            }
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return (largest, parts, items),
        }
    }
}

/// Lines of `ips` (each once) and 3 API keys (7 calls each), and what they count.
fn traffic(ips: &[String], at: i64) -> (Vec<String>, BTreeMap<(String, String), u64>) {
    let mut lines: Vec<String> = ips.iter().map(|ip| line(ip, at)).collect();
    let mut want = BTreeMap::new();
    let day = Window::Day.period_of(at).unwrap();
    let month = Window::Month.period_of(at).unwrap();
    for ip in ips {
        want.insert(
            (format!("requests#{ip}"), format!("{day}#{TEST_REGION}")),
            1,
        );
    }
    for key in ["key:k_one", "key:k_two", "key:k_three"] {
        for _ in 0..7 {
            lines.insert(lines.len() / 2, line(key, at));
        }
        for period in [day, month] {
            want.insert(
                (format!("requests#{key}"), format!("{period}#{TEST_REGION}")),
                7,
            );
        }
    }
    (lines, want)
}

fn events(lines: &[String], at: i64, offset: usize) -> Vec<Event> {
    lines
        .iter()
        .enumerate()
        .map(|(i, message)| Event {
            id: format!("{:056}", offset + i),
            timestamp: at,
            message: message.clone(),
        })
        .collect()
}

const VARS: [(&str, &str); 1] = [("TOLLGATE_ANONYMOUS_WINDOWS", "day")];

#[tokio::test]
async fn ten_thousand_identities_in_one_bucket_direct() {
    let h = Harness::new("lp-10k-direct").await;
    let (client, counter) = h.counted_client(true);
    let processor = common::processor(client, config(&h, &VARS));
    let at = now_ms();
    let (lines, want) = traffic(one_bucket(), at);
    let event = direct_event(&payload_json("api-logs", "s", &events(&lines, at, 0)));
    let summary = processor.handle(event.clone()).await.unwrap();
    assert_eq!(summary["counted"], 10_021);
    assert_eq!(summary["duplicate_chunks"], 0);
    let got = usage_items(&h.client(), &h.tables.usage).await;
    assert_eq!(got, want, "every counter exact");
    let (largest, parts, items) = sizes(&h.client(), &h.tables.usage).await;
    let (_, wru) = counter.total_units();
    let calls = counter.requests("TransactWriteItems");
    eprintln!(
        "direct, 10,000 IPs in one bucket: {parts} parts ({items} items), largest item {largest} B, \
         {calls} transactions, {wru} WRU ({:.2} per call counted), {} part look-ups",
        wru / 10_021.0,
        counter.requests("Query")
    );
    assert!(largest <= PART_ITEM_BYTES, "{largest} bytes");
    assert!(parts >= 10_000 * 30 / 3584, "{parts} parts");
    // Delivered again: nothing changes.
    let again = processor.handle(event).await.unwrap();
    assert_eq!(again["new_chunks"], 0);
    assert_eq!(usage_items(&h.client(), &h.tables.usage).await, want);
}

#[tokio::test]
async fn ten_thousand_identities_in_one_bucket_kinesis() {
    let h = Harness::new("lp-10k-kin").await;
    let (client, counter) = h.counted_client(true);
    let processor = common::processor(client, config(&h, &VARS));
    let at = now_ms();
    let (lines, want) = traffic(one_bucket(), at);
    let records: Vec<Vec<u8>> = lines
        .chunks(2_500)
        .enumerate()
        .map(|(i, chunk)| {
            gzip(&payload_json(
                "api-logs",
                "s",
                &events(chunk, at, i * 2_500),
            ))
        })
        .collect();
    let event = kinesis_event(&records, 5_000);
    let resp = processor.handle(event.clone()).await.unwrap();
    assert_eq!(resp["batchItemFailures"], json!([]));
    let got = usage_items(&h.client(), &h.tables.usage).await;
    assert_eq!(got, want, "every counter exact");
    let (largest, parts, _) = sizes(&h.client(), &h.tables.usage).await;
    let (_, wru) = counter.total_units();
    eprintln!(
        "Kinesis, 10,000 IPs in one bucket: {parts} parts, largest item {largest} B, {wru} WRU, \
         {} transactions, {} updates",
        counter.requests("TransactWriteItems"),
        counter.requests("UpdateItem")
    );
    assert!(largest <= PART_ITEM_BYTES, "{largest} bytes");
    let again = processor.handle(event).await.unwrap();
    assert_eq!(again["batchItemFailures"], json!([]));
    assert_eq!(usage_items(&h.client(), &h.tables.usage).await, want);
}

/// A day of `total` distinct anonymous IPs at the density per bucket of
/// 1,000,000 a day over all buckets (about 977 per bucket), delivered
/// directly in batches of 10,000 lines.
async fn a_day_at_full_density(total: usize) {
    let h = Harness::new(&format!("lp-day-{total}")).await;
    let (client, counter) = h.counted_client(true);
    let processor = common::processor(client, config(&h, &VARS));
    let buckets = ((total as u64 * u64::from(ANONYMOUS_BUCKETS)).div_ceil(1_000_000)) as u32;
    let ips = ips_in(0..buckets.min(ANONYMOUS_BUCKETS), total);
    let at = now_ms();
    let mut want = BTreeMap::new();
    let mut counted = 0u64;
    for (i, batch) in ips.chunks(10_000).enumerate() {
        let (lines, batch_want) = traffic(batch, at);
        for (k, v) in batch_want {
            *want.entry(k).or_insert(0) += v;
        }
        let event = direct_event(&payload_json(
            "api-logs",
            "s",
            &events(&lines, at, i * 20_000),
        ));
        let summary = processor.handle(event).await.unwrap();
        counted += summary["counted"].as_u64().unwrap();
    }
    let got = usage_items(&h.client(), &h.tables.usage).await;
    assert_eq!(got.len(), want.len());
    assert!(got == want, "every counter exact");
    let (largest, parts, _) = sizes(&h.client(), &h.tables.usage).await;
    let (_, wru) = counter.total_units();
    eprintln!(
        "a day of {total} IPs over {buckets} buckets: {parts} parts, largest item {largest} B, \
         {wru} WRU for {counted} calls ({:.3} WRU per call), {} transactions",
        wru / counted as f64,
        counter.requests("TransactWriteItems")
    );
    assert!(largest <= PART_ITEM_BYTES, "{largest} bytes");
}

#[tokio::test]
async fn a_day_of_100_000_ips_at_full_density() {
    a_day_at_full_density(100_000).await;
}

/// The full day: `cargo test -p log-processor --test bounded_buckets -- --ignored`
/// (too slow for `make test` on DynamoDB Local).
#[tokio::test]
#[ignore]
async fn a_day_of_1_000_000_ips() {
    a_day_at_full_density(1_000_000).await;
}
