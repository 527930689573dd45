//! Helpers shared by the ingest tests: meters, an `Ingest` over a
//! harness's tables, requests, and reading what was written.
#![allow(clippy::unwrap_used, dead_code)]

use aws_sdk_dynamodb::Client;
use serde_json::{json, Value};
use tollgate_core::{Aggregation, MeterDef, MeterName, Region, Window};
use tollgate_idempotency::{Idempotency, ManualClock};
use tollgate_store::{CommitStore, KeysStore, TableNames};
use tollgate_tests::Harness;

use ingest::{Config, Ingest, Stores};

/// The tests' "now": 11:06:40 UTC on the 18th of the month after the wall
/// clock's ([`tollgate_tests::clock::test_now`]), so no marker, request
/// record or hour item a test writes is past its TTL while the test runs
/// (DynamoDB Local's TTL sweeper deletes by the wall clock).
pub fn now() -> i64 {
    tollgate_tests::clock::test_now()
}

/// `window`'s period at `at` in `region`, as a counter's sort key ends
/// (`day#<date>#local-a`).
pub fn label(window: Window, at: i64, region: &str) -> String {
    tollgate_tests::clock::label_in(window, at, region)
}

/// Defines `tokens` (sum), `calls` (count) and `peak` (max).
pub async fn define_meters(client: &Client, tables: &TableNames) {
    let keys = KeysStore::new(client.clone(), tables.keys.clone());
    for (name, aggregation, unit) in [
        ("tokens", Aggregation::Sum, "tokens"),
        ("calls", Aggregation::Count, "calls"),
        ("peak", Aggregation::Max, "connections"),
    ] {
        keys.put_meter(&MeterDef {
            name: MeterName::new(name).unwrap(),
            aggregation,
            unit: unit.into(),
            value_path: None,
        })
        .await
        .unwrap();
    }
}

/// The configuration for a harness's tables in `region`.
pub fn config(tables: &TableNames, region: &str) -> Config {
    Config::new(tables.clone(), Region::new(region).unwrap())
}

/// An `Ingest` on `client`'s stores (as `main.rs` builds them), with `clock`.
pub fn ingest_on(client: Client, config: Config, clock: ManualClock) -> Ingest {
    let stores = Stores {
        commits: CommitStore::on(
            client.clone(),
            &config.tables.usage,
            config.top_index,
            Stores::marker_config(&config, clock.clone()),
        ),
        keys: KeysStore::new(client.clone(), &config.tables.keys),
        requests: Idempotency::new(client, Stores::request_config(&config, clock.clone())),
    };
    Ingest::with_clock(stores, config, clock)
}

/// An `Ingest` on `client` with a manual clock at [`now`].
pub fn ingest_at(client: Client, config: Config) -> (Ingest, ManualClock) {
    let clock = ManualClock::new(now() as u64);
    (ingest_on(client, config, clock.clone()), clock)
}

/// A harness with meters defined and an `Ingest` in `local-a`.
pub async fn setup(label: &str) -> (Harness, Ingest, ManualClock) {
    let h = Harness::new(label).await;
    define_meters(&h.client(), &h.tables).await;
    let (ingest, clock) = ingest_at(h.client(), config(&h.tables, "local-a"));
    (h, ingest, clock)
}

/// One event.
pub fn event(id: &str, meter: &str, identity: &str, value: u64, time: i64) -> Value {
    json!({"id": id, "meter": meter, "identity": identity, "value": value, "time": time})
}

/// A JSON array body.
pub fn array(events: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&Value::Array(events.to_vec())).unwrap()
}

/// The statuses of a POST response, in order.
pub fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

/// Every item of a table (a Scan: tests only).
pub async fn scan(
    client: &Client,
    table: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        items.extend(out.items().iter().cloned());
        start = out.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// The value of one region's counter, named by its partition and its label
/// (`<window>#<period>#<region>`), if it exists (a day's is in its month's item).
pub async fn counter(client: &Client, table: &str, pk: &str, label: &str) -> Option<u64> {
    let key = tollgate_core::UsageKey::parse(pk, label).unwrap();
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key.pk()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(key.sk()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item()
        .and_then(|i| i.get(key.cell().attribute().as_ref()))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}
