//! Helpers shared by the ingest tests: meters, an `Ingest` over a
//! harness's tables, requests, and reading what was written.
#![allow(clippy::unwrap_used, dead_code)]

use aws_sdk_dynamodb::Client;
use serde_json::{json, Value};
use tollgate_core::{Aggregation, MeterDef, MeterName, Region};
use tollgate_idempotency::{Idempotency, ManualClock};
use tollgate_store::{CommitStore, KeysStore, TableNames};
use tollgate_tests::Harness;

use ingest::{Config, Ingest, Stores};

/// 2026-11-18T11:06:40Z.
pub const NOW: i64 = 1_795_000_000_000;

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
    let mut config = Config::new(tables.clone(), Region::new(region).unwrap());
    // The tests' clock stands at NOW, days before the wall clock; DynamoDB
    // Local's TTL sweeper deletes by the wall clock, and would delete a
    // request record that expires 24 h after NOW in the middle of a test.
    config.request_key_expiry = std::time::Duration::from_secs(3650 * 86_400);
    config
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

/// An `Ingest` on `client` with a manual clock at `NOW`.
pub fn ingest_at(client: Client, config: Config) -> (Ingest, ManualClock) {
    let clock = ManualClock::new(NOW as u64);
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
