//! Shared set-up for quota-sync's tests against DynamoDB Local.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use quota_sync::{Config, ConfigError, QuotaSync};
use serde_json::{json, Value};
use tollgate_core::{
    Aggregation, ApiKey, CounterKey, Identity, KeyRecord, KeyStatus, Limit, MeterName,
    OveragePolicy, Plan, Region, UnixMillis, Window,
};
use tollgate_store::usage::{increment, ItemAdds};
use tollgate_store::{KeysStore, TableNames, UsageStore};
use tollgate_tests::pump::{InProcess, Invoke, Pump, PumpOptions};
use tollgate_tests::streams::{local_reader, StartPosition, StreamReader};
use tollgate_tests::Harness;

/// The three simulated regions.
pub const REGIONS: [&str; 3] = ["local-a", "local-b", "local-c"];

/// Now, in epoch milliseconds.
pub fn now() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The configuration of `region` with the other [`REGIONS`] as peers,
/// copying every change (`TOLLGATE_REPLICATION=all`): the tests of how
/// copies are written and converge. `local_pump` uses the default, `hot`.
pub fn config(h: &Harness, region: &str) -> Config {
    let mut config = quota_sync::local_config(region, &REGIONS, &h.tables).unwrap();
    config.replication = tollgate_core::Replication::All;
    config
}

/// A handler of `region` on the harness's DynamoDB Local.
pub fn handler(h: &Harness, region: &str) -> Arc<QuotaSync> {
    Arc::new(quota_sync::local(&config(h, region), &h.endpoint))
}

/// quota-sync's `handler`, invoked in this process by the stream pump.
pub fn in_process(handler: Arc<QuotaSync>) -> Arc<dyn Invoke> {
    Arc::new(InProcess::new("quota-sync", move |event: Value| {
        let handler = handler.clone();
        async move {
            let outcome = handler.handle(&event).await.map_err(|e| e.to_string())?;
            serde_json::to_value(&outcome.response).map_err(|e| e.to_string())
        }
    }))
}

/// A pump over DynamoDB Local at `endpoint` with one in-process handler per
/// region of `regions` (each with the others as peers, replication `hot`).
pub fn local_pump(
    endpoint: &str,
    regions: &[&str],
    tables: &TableNames,
    options: PumpOptions,
) -> Result<(Pump, Vec<Arc<QuotaSync>>), ConfigError> {
    let mut handlers = Vec::new();
    for region in regions {
        let config = quota_sync::local_config(region, regions, tables)?;
        handlers.push(Arc::new(quota_sync::local(&config, endpoint)));
    }
    let functions = regions
        .iter()
        .zip(&handlers)
        .map(|(region, handler)| (*region, in_process(handler.clone())));
    let pump = tollgate_tests::pump::local_pump(endpoint, &tables.usage, &options, functions);
    Ok((pump, handlers))
}

/// A reader of the Usage stream of `region`, from its start.
pub fn reader(h: &Harness, region: &str) -> StreamReader {
    local_reader(
        &h.endpoint,
        region,
        &h.tables.usage,
        StartPosition::TrimHorizon,
    )
}

/// All new records of a reader, in stream order.
pub async fn read_all(reader: &mut StreamReader) -> Vec<Value> {
    reader
        .read()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|(_, records)| records)
        .collect()
}

/// A stream event of `records`.
pub fn event(records: &[Value]) -> Value {
    json!({ "Records": records })
}

pub fn usage(h: &Harness, region: &str) -> UsageStore {
    UsageStore::new(h.client_in(region), &h.tables.usage)
}

pub fn keys(h: &Harness, region: &str) -> KeysStore {
    KeysStore::new(h.client_in(region), &h.tables.keys)
}

/// Adds `amount` to each counter in `counters` in `region`, in one transaction,
/// as the log-processor and ingest do.
pub async fn increment_in(h: &Harness, region: &str, counters: &[(&CounterKey, Aggregation, u64)]) {
    let region_name = Region::new(region).unwrap();
    let keys: Vec<_> = counters
        .iter()
        .map(|(counter, aggregation, amount)| {
            (counter.in_region(&region_name), *aggregation, *amount)
        })
        .collect();
    let mut tx = h.client_in(region).transact_write_items();
    for adds in ItemAdds::group(keys.iter().map(|(k, a, v)| (k, *a, *v))) {
        tx = tx.transact_items(increment(&h.tables.usage, &adds, now(), false).unwrap());
    }
    tx.send().await.unwrap();
}

/// A plan with one limit.
pub fn plan(name: &str, meter: &str, window: Window, limit: u64, overage: OveragePolicy) -> Plan {
    Plan {
        name: name.into(),
        limits: vec![Limit {
            meter: MeterName::new(meter).unwrap(),
            window,
            limit,
        }],
        overage,
        failure: Default::default(),
    }
}

/// Stores `plan` in every region.
pub async fn put_plan_everywhere(h: &Harness, plan: &Plan) {
    for region in REGIONS {
        keys(h, region).put_plan(plan).await.unwrap();
    }
}

/// A new plan `name` with one hard limit of `limit` requests per `window`,
/// and a key on it, in every region: the key's identity and its requests
/// counter of that window now.
pub async fn hard_limited_counter(
    h: &Harness,
    name: &str,
    window: Window,
    limit: u64,
) -> (Identity, CounterKey) {
    put_plan_everywhere(
        h,
        &plan(name, "requests", window, limit, OveragePolicy::Hard),
    )
    .await;
    let key = key_on_plan(h, name).await;
    let counter = counter("requests", &key, window);
    (key, counter)
}

/// Creates an API key on `plan` in every region (keys are copied to every
/// region at signup) and returns its identity.
pub async fn key_on_plan(h: &Harness, plan: &str) -> Identity {
    let key = ApiKey::generate(rand::random());
    let digest = key.digest();
    let record = KeyRecord {
        key_id: digest.key_id(),
        customer: "acme".into(),
        plan: plan.into(),
        status: KeyStatus::Active,
        expires_at: None,
        valid_until: None,
    };
    for region in REGIONS {
        keys(h, region)
            .create_key(&digest, &record, now())
            .await
            .unwrap();
    }
    Identity::key(&record.key_id).unwrap()
}

/// The counter of `meter` for `identity` in the current period of `window`.
/// The `requests` counters of `window` of two IPs whose counters share a
/// bucket item (found by search, not assumed).
pub fn bucket_neighbours(window: Window) -> (CounterKey, CounterKey) {
    let ips: Vec<Identity> = (0..2000)
        .map(|i| {
            format!("ip:198.51.{}.{}", i / 256, i % 256)
                .parse()
                .unwrap()
        })
        .collect();
    let bucket = |ip: &Identity| tollgate_core::usage_key::bucket_of(ip);
    ips.iter()
        .enumerate()
        .find_map(|(i, a)| {
            let b = ips[i + 1..].iter().find(|b| bucket(b) == bucket(a))?;
            Some((
                counter("requests", a, window),
                counter("requests", b, window),
            ))
        })
        .unwrap()
}

pub fn counter(meter: &str, identity: &Identity, window: Window) -> CounterKey {
    CounterKey {
        meter: MeterName::new(meter).unwrap(),
        identity: identity.clone(),
        period: window.period_of(now()).unwrap(),
    }
}

/// A counter's region values as `region`'s Usage table holds them.
pub async fn values_in(h: &Harness, region: &str, counter: &CounterKey) -> BTreeMap<String, u64> {
    usage(h, region)
        .regions_of(counter)
        .await
        .unwrap()
        .into_iter()
        .map(|(r, v)| (r.to_string(), v))
        .collect()
}

/// The blocks of `identity` in `region`'s Keys table.
pub async fn blocks_in(
    h: &Harness,
    region: &str,
    identity: &Identity,
) -> Vec<tollgate_core::Block> {
    keys(h, region)
        .lookup(None, std::slice::from_ref(identity))
        .await
        .unwrap()
        .1
}

/// The sequence numbers a response reports as failed.
pub fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
