//! `tollgate export --period month#2026-11 --format stripe|csv|ndjson`: one
//! record per customer, meter and period, summed over every region's
//! counters and every key of the customer, written to stdout. The output
//! is sorted and each record's identifier derived from the deployment,
//! customer, meter and period ([`tollgate_core::billing::identifier`]), so
//! exporting the same usage again gives the same bytes.
//!
//! Reads with the Usage table's operator Scan ([`UsageStore::scan_periods`])
//! and the keys' owners with BatchGetItem ([`KeysStore::customers_of_keys`]).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
use tollgate_core::billing::{identifier, records, BillingRecord, CounterRow, Skipped};
use tollgate_core::{Identity, Period, Region};
use tollgate_store::{KeysStore, TableNames, UsageStore};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Stripe v2 meter events (`POST /v2/billing/meter_events` bodies), one JSON object a line.
    Stripe,
    /// CSV with a header line.
    Csv,
    /// One JSON object a line.
    Ndjson,
}

/// Options of `tollgate export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The period: month#2026-11 (or a day, day#2026-11-21).
    #[arg(long)]
    period: String,
    /// stripe, csv or ndjson.
    #[arg(long, value_enum, default_value = "ndjson")]
    format: Format,
    /// The deployment (stage) the identifiers derive from (default: the
    /// Usage table's name, which differs per stack).
    #[arg(long, env = "TOLLGATE_DEPLOYMENT")]
    deployment: Option<String>,
    /// Every region of the deployment: each region's own counters are read
    /// from its own table (default: TOLLGATE_REGIONS; none: this region's
    /// table only, which then must hold every region's copies).
    #[arg(long, value_delimiter = ',', env = "TOLLGATE_REGIONS")]
    regions: Vec<String>,
    /// Prepended to the meter name to make Stripe's event_name.
    #[arg(long, default_value = "")]
    event_prefix: String,
}

/// Runs `tollgate export`.
pub async fn run(
    client: &aws_sdk_dynamodb::Client,
    names: &TableNames,
    args: ExportArgs,
) -> Result<()> {
    let period: Period = args.period.parse().context("--period")?;
    let mut regions: Vec<Region> = Vec::new();
    for r in &args.regions {
        let r = Region::new(r.trim())?;
        if !regions.contains(&r) {
            regions.push(r);
        }
    }
    let sources: Vec<(Option<Region>, UsageStore)> = if regions.is_empty() {
        vec![(None, UsageStore::new(client.clone(), names.usage.clone()))]
    } else {
        let list: Vec<&str> = regions.iter().map(Region::as_str).collect();
        let clients = tollgate_store::client::clients_for_regions(&list).await;
        regions
            .into_iter()
            .zip(clients)
            .map(|(r, c)| (Some(r), UsageStore::new(c, names.usage.clone())))
            .collect()
    };
    let keys = KeysStore::new(client.clone(), names.keys.clone());
    let deployment = args.deployment.unwrap_or_else(|| names.usage.clone());
    let (records, skipped) = collect(&sources, &keys, period).await?;
    if skipped.anonymous > 0 {
        eprintln!(
            "export: {} counters of anonymous identities (IP, Referer) left out: no customer",
            skipped.anonymous
        );
    }
    if !skipped.unowned_keys.is_empty() {
        eprintln!(
            "export: {} key ids without an owner exported as customer key:<id>: {}",
            skipped.unowned_keys.len(),
            skipped.unowned_keys.join(", ")
        );
    }
    print!(
        "{}",
        render(&records, args.format, &deployment, &args.event_prefix)
    );
    eprintln!("export: {} records of {period}", records.len());
    Ok(())
}

/// The records of `period`: every source's counters (a source with a
/// region: only that region's own items), owners looked up in `keys`.
pub async fn collect(
    sources: &[(Option<Region>, UsageStore)],
    keys: &KeysStore,
    period: Period,
) -> Result<(Vec<BillingRecord>, Skipped)> {
    let mut rows = Vec::new();
    for (region, store) in sources {
        let items = store
            .scan_periods(&[period])
            .await
            .with_context(|| format!("reading the usage of {period}"))?;
        for item in items {
            if region.as_ref().is_some_and(|r| *r != item.key.region) {
                continue;
            }
            rows.push(CounterRow {
                identity: item.key.counter.identity,
                meter: item.key.counter.meter,
                aggregation: item.aggregation,
                value: item.value,
            });
        }
    }
    let mut key_ids: Vec<String> = rows
        .iter()
        .filter_map(|r| match &r.identity {
            Identity::Key(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    key_ids.sort();
    key_ids.dedup();
    let owners = keys
        .customers_of_keys(&key_ids)
        .await
        .context("reading the keys' customers")?;
    Ok(records(period, &rows, |id| owners.get(id).cloned()))
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The records in `format`; the same records always give the same text.
pub fn render(
    records: &[BillingRecord],
    format: Format,
    deployment: &str,
    event_prefix: &str,
) -> String {
    let mut out = String::new();
    if format == Format::Csv {
        out.push_str("deployment,customer,meter,period,aggregation,value,keys,identifier\n");
    }
    for r in records {
        let id = identifier(deployment, &r.customer, &r.meter, &r.period);
        match format {
            Format::Stripe => {
                // The period's last second: Stripe files the event in it.
                let last = chrono::DateTime::from_timestamp_millis(r.period.end() - 1000)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default();
                let event = json!({
                    "event_name": format!("{event_prefix}{}", r.meter),
                    "identifier": id,
                    "payload": {"stripe_customer_id": r.customer, "value": r.value.to_string()},
                    "timestamp": last,
                });
                let _ = writeln!(out, "{event}");
            }
            Format::Ndjson => {
                let record = json!({
                    "deployment": deployment,
                    "customer": r.customer,
                    "meter": r.meter.as_str(),
                    "period": r.period.to_string(),
                    "aggregation": r.aggregation.to_string(),
                    "value": r.value,
                    "keys": r.keys,
                    "identifier": id,
                });
                let _ = writeln!(out, "{record}");
            }
            Format::Csv => {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{}",
                    csv_field(deployment),
                    csv_field(&r.customer),
                    r.meter,
                    r.period,
                    r.aggregation,
                    r.value,
                    r.keys,
                    id
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_sdk_dynamodb::Client;
    use serde_json::Value;
    use tollgate_core::{KeyDigest, KeyRecord, KeyStatus, Window};
    use tollgate_idempotency::ManualClock;
    use tollgate_store::client::local_config;
    use tollgate_store::RequestCounter;
    use tollgate_tests::Harness;

    fn counted(h: &Harness, region: &str, counter: &RequestCounter) -> Client {
        Client::from_conf(
            local_config(&h.endpoint, region)
                .interceptor(counter.clone())
                .build(),
        )
    }

    async fn post(h: &Harness, region: &str, now: i64, events: Value) {
        let mut config = ingest::Config::new(h.tables.clone(), Region::new(region).unwrap());
        config.request_key_expiry = std::time::Duration::from_secs(86_400);
        let (client, clock) = (h.client_in(region), ManualClock::new(now as u64));
        let stores = ingest::Stores {
            commits: tollgate_store::CommitStore::on(
                client.clone(),
                &config.tables.usage,
                config.top_index,
                ingest::Stores::marker_config(&config, clock.clone()),
            ),
            keys: KeysStore::new(client.clone(), &config.tables.keys),
            requests: tollgate_idempotency::Idempotency::new(
                client,
                ingest::Stores::request_config(&config, clock.clone()),
            ),
        };
        let ingest = ingest::Ingest::with_clock(stores, config, clock);
        let r = ingest
            .post_events(&serde_json::to_vec(&events).unwrap())
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    #[tokio::test]
    async fn two_regions_two_keys_of_one_customer() {
        let h = Harness::with_regions("export", &["local-a", "local-b"]).await;
        let keys_a = KeysStore::new(h.client_in("local-a"), h.tables.keys.clone());
        for region in ["local-a", "local-b"] {
            tollgate_core_meters(&h, region).await;
        }
        for (i, (key, customer)) in [("k1", "cus_1"), ("k2", "cus_1"), ("k3", "cus_2")]
            .into_iter()
            .enumerate()
        {
            let record = KeyRecord {
                key_id: key.into(),
                customer: customer.into(),
                plan: "free".into(),
                status: KeyStatus::Active,
                expires_at: None,
                valid_until: None,
            };
            keys_a
                .create_key(&KeyDigest(format!("{i:064x}")), &record, 0)
                .await
                .unwrap();
        }
        let now = chrono::Utc::now().timestamp_millis();
        let ev = |id: &str, meter: &str, who: &str, v: u64| json!({"id": id, "meter": meter, "identity": who, "value": v, "time": now - 1000});
        post(
            &h,
            "local-a",
            now,
            json!([
                ev("a1", "tokens", "key:k1", 100),
                ev("a2", "tokens", "key:k2", 20),
                ev("a3", "tokens", "key:k3", 5),
                ev("a4", "tokens", "ip:10.0.0.1", 9),
                ev("a5", "tokens", "key:k_nobody", 1)
            ]),
        )
        .await;
        post(
            &h,
            "local-b",
            now,
            json!([
                ev("b1", "tokens", "key:k1", 1000),
                ev("b2", "tokens", "key:k2", 3)
            ]),
        )
        .await;

        let period = Window::Month.period_of(now).unwrap();
        let counter = RequestCounter::with_capacity();
        let sources: Vec<(Option<Region>, UsageStore)> = ["local-a", "local-b"]
            .iter()
            .map(|r| {
                (
                    Some(Region::new(r).unwrap()),
                    UsageStore::new(counted(&h, r, &counter), h.tables.usage.clone()),
                )
            })
            .collect();
        let keys = KeysStore::new(counted(&h, "local-a", &counter), h.tables.keys.clone());
        let (recs, skipped) = collect(&sources, &keys, period).await.unwrap();
        let requests = counter.total_requests();
        let (rcu, wcu) = counter.total_units();
        println!("COST export of {period} (2 regions, 4 keys): {requests} requests ({:?}), {rcu} RCU, {wcu} WCU", counter.snapshot().keys().collect::<Vec<_>>());
        assert_eq!(requests, 3, "one Scan page per region and one BatchGetItem");
        let got: Vec<(&str, u64, usize)> = recs
            .iter()
            .map(|r| (r.customer.as_str(), r.value, r.keys))
            .collect();
        assert_eq!(
            got,
            [("cus_1", 1123, 2), ("cus_2", 5, 1), ("key:k_nobody", 1, 1)]
        );
        assert_eq!(skipped.anonymous, 1);

        let stripe = render(&recs, Format::Stripe, "prod", "tg_");
        let first: Value = serde_json::from_str(stripe.lines().next().unwrap()).unwrap();
        assert_eq!(first["event_name"], "tg_tokens");
        assert_eq!(
            first["payload"],
            json!({"stripe_customer_id": "cus_1", "value": "1123"})
        );
        assert_eq!(
            first["identifier"],
            identifier("prod", "cus_1", &recs[0].meter, &period)
        );
        let end = chrono::DateTime::from_timestamp_millis(period.end() - 1000).unwrap();
        assert_eq!(
            first["timestamp"],
            end.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        );
        // A re-export is byte-identical, in every format.
        let (again, _) = collect(&sources, &keys, period).await.unwrap();
        for format in [Format::Stripe, Format::Csv, Format::Ndjson] {
            assert_eq!(
                render(&recs, format, "prod", ""),
                render(&again, format, "prod", "")
            );
        }
        let csv = render(&recs, Format::Csv, "prod", "");
        assert_eq!(csv.lines().count(), 4);
        assert!(csv
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("prod,cus_1,tokens,{period},sum,1123,2,tg_")));
        let nd: Value = serde_json::from_str(
            render(&recs, Format::Ndjson, "prod", "")
                .lines()
                .nth(1)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (nd["customer"].as_str(), nd["value"].as_u64()),
            (Some("cus_2"), Some(5))
        );
        // Another deployment, other identifiers.
        assert_ne!(stripe, render(&recs, Format::Stripe, "staging", "tg_"));
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }

    async fn tollgate_core_meters(h: &Harness, region: &str) {
        KeysStore::new(h.client_in(region), h.tables.keys.clone())
            .put_meter(&tollgate_core::MeterDef {
                name: tollgate_core::MeterName::new("tokens").unwrap(),
                aggregation: tollgate_core::Aggregation::Sum,
                unit: String::new(),
                value_path: None,
            })
            .await
            .unwrap();
    }
}
