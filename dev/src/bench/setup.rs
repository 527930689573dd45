//! The cost run's set-up (not counted): tables, plans, the meter and the
//! keys in every region, and each region's handlers on counting clients.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use futures::StreamExt;
use serde_json::json;
use tollgate_core::{ApiKey, Identity, KeyRecord, KeyStatus, MeterName, Plan};
use tollgate_idempotency::{Idempotency, SystemClock};
use tollgate_store::client::local_config;
use tollgate_store::{
    AllowanceStore, CommitStore, KeysStore, RequestCounter, TableNames, UsageStore, TABLES,
};
use tollgate_testkit::pump::{PumpOptions, RegionPump};
use tollgate_testkit::streams::{local_reader, StartPosition};

use super::{BenchArgs, Region, ANON_DAILY, PAID_DAILY, PAID_MONTHLY};
use crate::pump::in_process;
use crate::workload::{Call, Caller};

/// Creates the tables, plans, the `tokens` meter and the key of every
/// caller in `calls` in every region; returns the keys by caller.
pub(super) async fn tables_and_keys(
    endpoint: &str,
    region_names: &[String],
    names: &TableNames,
    calls: &[Call],
    start_ms: i64,
    args: &BenchArgs,
) -> Result<HashMap<usize, ApiKey>> {
    let keys_used: Vec<usize> = {
        let mut k: Vec<usize> = calls
            .iter()
            .filter_map(|c| match c.caller {
                Caller::Key(i) => Some(i),
                _ => None,
            })
            .collect();
        k.sort_unstable();
        k.dedup();
        k
    };
    let secrets: HashMap<usize, ApiKey> = keys_used
        .iter()
        .map(|&i| (i, key_for(args.seed, i)))
        .collect();
    // Every region at once: at 10 regions, one after another took minutes.
    futures::future::try_join_all(region_names.iter().map(|region| {
        let secrets = &secrets;
        async move {
            let client = tollgate_store::local_client(endpoint, region);
            for spec in TABLES {
                spec.create(&client, names.name_of(&spec)).await?;
            }
            let store = KeysStore::new(client, &names.keys);
            for plan in plans()? {
                store.put_plan(&plan).await?;
            }
            store
                .put_meter(&tollgate_core::MeterDef {
                    name: MeterName::new("tokens")?,
                    aggregation: tollgate_core::Aggregation::Sum,
                    unit: "tokens".into(),
                    value_path: None,
                })
                .await?;
            let jobs = secrets.iter().map(|(i, key)| {
                let store = store.clone();
                let record = KeyRecord {
                    key_id: key.key_id(),
                    customer: format!("customer-{i}"),
                    plan: "paid".into(),
                    status: KeyStatus::Active,
                    expires_at: None,
                    valid_until: None,
                };
                let digest = key.digest();
                async move { store.create_key(&digest, &record, start_ms).await }
            });
            let results: Vec<_> = futures::stream::iter(jobs)
                .buffer_unordered(16)
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            anyhow::Ok(())
        }
    }))
    .await?;
    let _ = args;
    Ok(secrets)
}

/// The plans of the run: `paid` (hard daily and monthly limits) and `anonymous`.
fn plans() -> Result<Vec<Plan>> {
    Ok(vec![
        serde_json::from_value(json!({"name": "paid", "overage": "hard", "limits": [
            {"meter": "requests", "window": "day", "limit": PAID_DAILY},
            {"meter": "requests", "window": "month", "limit": PAID_MONTHLY}]}))?,
        serde_json::from_value(json!({"name": "anonymous", "overage": "hard", "limits": [
            {"meter": "requests", "window": "day", "limit": ANON_DAILY}]}))?,
    ])
}

/// The n-th key of a run: deterministic, so a run repeats.
fn key_for(seed: u64, i: usize) -> ApiKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    ApiKey::generate(bytes)
}

/// The identity, key and IP of a call's caller.
pub(super) fn caller<'a>(
    call: &Call,
    secrets: &'a HashMap<usize, ApiKey>,
) -> (Identity, Option<&'a ApiKey>, String) {
    match call.caller {
        Caller::Key(i) => {
            let key = secrets.get(&i);
            let id = key.map_or_else(
                || Identity::Key(format!("missing-{i}")),
                |k| Identity::Key(k.key_id()),
            );
            (id, key, format!("192.0.2.{}", i % 250 + 1))
        }
        Caller::Anonymous(i) => {
            let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            let id = Identity::parse_anonymous_ip(&ip, tollgate_core::Ipv6Prefix::DEFAULT)
                .unwrap_or(Identity::Referer("invalid".into()));
            (id, None, ip)
        }
    }
}

/// A client of `region` whose requests `counter` counts.
pub(super) fn counted(
    endpoint: &str,
    region: &str,
    counter: &RequestCounter,
) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        local_config(endpoint, region)
            .interceptor(counter.clone())
            .build(),
    )
}

/// The handlers of region `name` (its peers: the rest of `all`), each on a
/// counting client, and the stream pump feeding its quota-sync.
pub(super) async fn region(
    endpoint: &str,
    name: &str,
    all: &[String],
    names: &TableNames,
    start_ms: i64,
    args: &BenchArgs,
) -> Result<Region> {
    let counters: [RequestCounter; 4] = std::array::from_fn(|_| RequestCounter::with_capacity());
    let vars = |extra: &[(&str, String)]| {
        let mut m: HashMap<String, String> = HashMap::from([
            ("TOLLGATE_REGION".into(), name.to_owned()),
            ("TOLLGATE_KEYS_TABLE".into(), names.keys.clone()),
            ("TOLLGATE_USAGE_TABLE".into(), names.usage.clone()),
            (
                "TOLLGATE_IDEMPOTENCY_TABLE".into(),
                names.idempotency.clone(),
            ),
            ("TOLLGATE_ANONYMOUS_PLAN".into(), "anonymous".into()),
            ("TOLLGATE_WINDOWS".into(), "day,month".into()),
            ("TOLLGATE_TOP_INDEX".into(), args.top_index.to_string()),
            ("TOLLGATE_REPLICATION".into(), args.replication.clone()),
        ]);
        for (k, v) in extra {
            m.insert((*k).to_owned(), v.clone());
        }
        m
    };
    let clock = authorizer::cache::ManualClock::at(start_ms);
    let peers: Vec<String> = all.iter().filter(|r| *r != name).cloned().collect();
    let auth_vars = vars(&[
        ("TOLLGATE_PEER_REGIONS", peers.join(",")),
        ("TOLLGATE_LEASES", (args.enforce == "leases").to_string()),
    ]);
    let auth_config = authorizer::config::Config::from_lookup(|k| auth_vars.get(k).cloned())
        .map_err(|e| anyhow!("{e:?}"))?;
    // The authorizer's leases: this region's allowances and its peers',
    // every request counted as the authorizer's.
    let regions = all
        .iter()
        .map(|r| tollgate_core::Region::new(r))
        .collect::<Result<Vec<_>, _>>()?;
    let this = tollgate_core::Region::new(name)?;
    let peer_clients = regions
        .iter()
        .filter(|r| **r != this)
        .map(|r| (r.clone(), counted(endpoint, r.as_str(), &counters[0])))
        .collect();
    let allowances = AllowanceStore::new(
        counted(endpoint, name, &counters[0]),
        &names.keys,
        &regions,
        &this,
        peer_clients,
        auth_config.peer_timeout,
    )?;
    let authorizer = authorizer::Authorizer::new(
        auth_config,
        KeysStore::new(counted(endpoint, name, &counters[0]), &names.keys),
        allowances,
        Arc::new(clock.clone()),
    );
    authorizer.load_plans().await?;

    // The anonymous plan limits days only: its identities' months are not counted.
    let log_vars = vars(&[("TOLLGATE_ANONYMOUS_WINDOWS", "day".into())]);
    let log_config = log_processor::Config::from_lookup(|k| log_vars.get(k).cloned())
        .map_err(|e| anyhow!("{e}"))?;
    let log = log_processor::Processor::new(
        CommitStore::on(
            counted(endpoint, name, &counters[1]),
            &log_config.usage_table,
            log_config.top_index,
            log_processor::Processor::marker_config(&log_config),
        ),
        KeysStore::new(
            counted(endpoint, name, &counters[1]),
            &log_config.keys_table,
        ),
        log_config,
    );

    let ingest_vars = vars(&[("TOLLGATE_WINDOWS", "day,month".into())]);
    let ingest_config =
        ingest::Config::from_vars(|k| ingest_vars.get(k).cloned()).map_err(|e| anyhow!("{e}"))?;
    let ingest_client = counted(endpoint, name, &counters[2]);
    let ingest_stores = ingest::Stores {
        commits: CommitStore::on(
            ingest_client.clone(),
            &ingest_config.tables.usage,
            ingest_config.top_index,
            ingest::Stores::marker_config(&ingest_config, SystemClock),
        ),
        keys: KeysStore::new(ingest_client.clone(), &ingest_config.tables.keys),
        requests: Idempotency::new(
            ingest_client,
            ingest::Stores::request_config(&ingest_config, SystemClock),
        ),
    };
    let ingest = ingest::Ingest::new(ingest_stores, ingest_config);

    let peers: Vec<String> = all.iter().filter(|r| *r != name).cloned().collect();
    let qs_vars = vars(&[("TOLLGATE_PEER_REGIONS", peers.join(","))]);
    let qs_config = quota_sync::config::Config::from_vars(|k| qs_vars.get(k).cloned())
        .map_err(|e| anyhow!("{e}"))?;
    let qs_client = counted(endpoint, name, &counters[3]);
    let peer_stores = peers
        .iter()
        .map(|p| {
            Ok(quota_sync::handler::Peer {
                region: tollgate_core::Region::new(p)?,
                usage: UsageStore::new(counted(endpoint, p, &counters[3]), &names.usage),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let qs = Arc::new(
        quota_sync::handler::QuotaSync::new(
            &qs_config,
            UsageStore::new(qs_client.clone(), &names.usage),
            KeysStore::new(qs_client, &names.keys),
            peer_stores,
        )
        // Its caches expire on the simulation's time, as they would in a real hour.
        .with_clock(Arc::new(clock.clone())),
    );
    let reader = local_reader(endpoint, name, &names.usage, StartPosition::Latest);
    let invoker = in_process(qs.clone());
    let pump = RegionPump::new(
        reader,
        invoker,
        PumpOptions {
            batch_size: 100,
            ..PumpOptions::default()
        },
    );
    Ok(Region {
        name: name.to_owned(),
        authorizer,
        clock,
        log,
        ingest,
        pump,
        quota_sync: qs,
        counters,
        next_seq: 1_000,
    })
}

/// Deletes the run's tables in every region (the smoke run's, on a
/// DynamoDB Local other tests share).
pub(super) async fn delete_tables(
    endpoint: &str,
    region_names: &[String],
    names: &TableNames,
) -> Result<()> {
    for region in region_names {
        let client = tollgate_store::local_client(endpoint, region);
        let mut tables: Vec<String> = TABLES
            .iter()
            .map(|spec| names.name_of(spec).to_owned())
            .collect();
        tables.push(format!("{}-baseline", names.usage));
        for table in tables {
            client
                .delete_table()
                .table_name(&table)
                .send()
                .await
                .map_err(|e| anyhow!("deleting {table} in {region}: {e}"))?;
        }
    }
    Ok(())
}
