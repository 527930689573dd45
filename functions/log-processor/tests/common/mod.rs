//! Helpers shared by the log-processor's DynamoDB Local tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use log_processor::{Config, Processor};
use tollgate_core::Window;
use tollgate_store::usage::UsageItem;
use tollgate_store::{CommitStore, KeysStore};
use tollgate_tests::traffic::Generated;
use tollgate_tests::{Harness, TEST_REGION};

/// When the tests' log events happen: 11:06:40 UTC on the 18th of the
/// month after the wall clock's ([`tollgate_tests::clock::test_now`]), so
/// no hour item a test writes is past its TTL while the test runs
/// (DynamoDB Local's TTL sweeper deletes by the wall clock).
pub fn start() -> i64 {
    tollgate_tests::clock::test_now()
}

/// `window`'s period at `at` in the test region, as a counter's label is
/// (`day#<date>#<region>`).
pub fn label(window: Window, at: i64) -> String {
    tollgate_tests::clock::label_in(window, at, TEST_REGION)
}

/// The configuration for a harness's tables.
pub fn config(h: &Harness, extra: &[(&str, &str)]) -> Config {
    let mut vars: BTreeMap<String, String> = [
        ("TOLLGATE_REGION", TEST_REGION),
        ("TOLLGATE_USAGE_TABLE", h.tables.usage.as_str()),
        ("TOLLGATE_IDEMPOTENCY_TABLE", h.tables.idempotency.as_str()),
        ("TOLLGATE_KEYS_TABLE", h.tables.keys.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

/// A processor on `client`'s stores, as `main.rs` builds them.
pub fn processor(client: Client, config: Config) -> Processor {
    let markers = Processor::marker_config(&config);
    let keys = KeysStore::new(client.clone(), config.keys_table.clone());
    let commits = CommitStore::on(client, &config.usage_table, config.top_index, markers);
    Processor::new(commits, keys, config)
}

/// Every counter of the Usage table: `(pk, label) -> value`, the label
/// being `<window>#<period>#<region>` (a day lives in its month's item).
pub async fn usage_items(client: &Client, table: &str) -> BTreeMap<(String, String), u64> {
    let mut items = BTreeMap::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in out.items() {
            // A bucket's parts each hold a share of an identity's counter.
            for counter in UsageItem::parse_all(item).unwrap() {
                let value = items
                    .entry((counter.key.counter.name(), counter.key.label()))
                    .or_insert(0u64);
                *value = value.checked_add(counter.value).unwrap();
            }
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return items,
        }
    }
}

/// The Usage items that the counted requests must produce.
pub fn expected(truth: &[Generated], windows: &[Window]) -> BTreeMap<(String, String), u64> {
    let mut want = BTreeMap::new();
    for g in truth.iter().filter(|g| g.counts) {
        for w in windows {
            let period = w.period_of(g.time_ms).unwrap();
            *want
                .entry((
                    format!("requests#{}", g.identity),
                    format!("{period}#{TEST_REGION}"),
                ))
                .or_insert(0) += 1;
        }
    }
    want
}

/// Number of items in a table.
pub async fn count_items(client: &Client, table: &str) -> usize {
    let mut total = 0;
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        total += out.items().len();
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return total,
        }
    }
}
