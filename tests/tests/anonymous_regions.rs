//! The free tier over three regions, end to end (issue 17's first test),
//! on DynamoDB Local with the real functions' handlers: each region's
//! authorizer decides, its log-processor counts the access lines the
//! gateway would write for those decisions, its quota-sync (fed by the
//! stream pump) copies the counters to the peers and writes the blocks,
//! and every region's authorizer then denies.
//!
//! - 5,000 distinct IPv6 addresses inside one /64 are one identity, blocked
//!   in all three regions after the anonymous plan's 10 a day.
//! - An IPv4 address and its IPv4-mapped, 6to4 and NAT64 forms are one
//!   identity too.
//!
//! The authorizers enforce by blocks only (`TOLLGATE_LEASES=false`), so
//! every call is allowed until the counts arrive: that is what makes the
//! count reach every region before the blocks do. A new container (a fresh
//! authorizer, no cache) reads the blocks.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use authorizer::{Authorizer, SystemClock};
use log_processor::{Processor, ACCESS_LOG_FORMAT};
use serde_json::Value;
use tollgate_core::{
    CounterKey, Identity, Ipv6Prefix, Limit, MeterName, OveragePolicy, Plan, Region, Window,
};
use tollgate_store::{AllowanceStore, CommitStore, KeysStore, UsageStore};
use tollgate_tests::cloudwatch::{direct_event, payload_json, Event};
use tollgate_tests::pump::{InProcess, Invoke, PumpOptions};
use tollgate_tests::traffic::{access_line, Request};
use tollgate_tests::Harness;

const REGIONS: [&str; 3] = ["local-a", "local-b", "local-c"];
/// The anonymous plan's daily limit.
const LIMIT: u64 = 10;
/// Access lines per log delivery.
const DELIVERY: usize = 500;

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// One region's functions.
struct RegionFunctions {
    name: &'static str,
    processor: Processor,
}

fn vars(h: &Harness, region: &str) -> HashMap<&'static str, String> {
    let peers: Vec<&str> = REGIONS.iter().copied().filter(|r| *r != region).collect();
    HashMap::from([
        ("TOLLGATE_REGION", region.to_owned()),
        ("TOLLGATE_PEER_REGIONS", peers.join(",")),
        ("TOLLGATE_KEYS_TABLE", h.tables.keys.clone()),
        ("TOLLGATE_USAGE_TABLE", h.tables.usage.clone()),
        ("TOLLGATE_IDEMPOTENCY_TABLE", h.tables.idempotency.clone()),
        ("TOLLGATE_WINDOWS", "day,month".to_owned()),
        ("TOLLGATE_ANONYMOUS_WINDOWS", "day".to_owned()),
        ("TOLLGATE_LEASES", "false".to_owned()),
    ])
}

/// A new authorizer container of `region`: empty caches, plans loaded.
async fn authorizer(h: &Harness, region: &str) -> Authorizer<KeysStore, AllowanceStore> {
    let vars = vars(h, region);
    let config = authorizer::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let all: Vec<Region> = REGIONS.iter().map(|r| Region::new(r).unwrap()).collect();
    let this = Region::new(region).unwrap();
    let peers = all
        .iter()
        .filter(|r| **r != this)
        .map(|r| (r.clone(), h.client_in(r.as_str())))
        .collect();
    let allowances = AllowanceStore::new(
        h.client_in(region),
        &h.tables.keys,
        &all,
        &this,
        peers,
        config.peer_timeout,
    )
    .unwrap();
    let keys = KeysStore::new(h.client_in(region), &h.tables.keys);
    let a = Authorizer::new(config, keys, allowances, Arc::new(SystemClock));
    a.load_plans().await.unwrap();
    a
}

fn log_processor(h: &Harness, region: &str) -> Processor {
    let vars = vars(h, region);
    let config = log_processor::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let client = h.client_in(region);
    let commits = CommitStore::on(
        client.clone(),
        &config.usage_table,
        config.top_index,
        Processor::marker_config(&config),
    );
    Processor::new(commits, KeysStore::new(client, &config.keys_table), config)
}

/// Tables in three regions, the anonymous plan (10 requests a day, hard)
/// in each, and each region's log-processor.
async fn deployment(label: &str) -> (Harness, Vec<RegionFunctions>) {
    let h = Harness::with_regions(label, &REGIONS).await;
    let plan = Plan {
        name: "anonymous".into(),
        limits: vec![Limit {
            meter: MeterName::requests(),
            window: Window::Day,
            limit: LIMIT,
        }],
        overage: OveragePolicy::Hard,
        failure: Default::default(),
    };
    let mut regions = Vec::new();
    for name in REGIONS {
        KeysStore::new(h.client_in(name), &h.tables.keys)
            .put_plan(&plan)
            .await
            .unwrap();
        regions.push(RegionFunctions {
            name,
            processor: log_processor(&h, name),
        });
    }
    (h, regions)
}

/// A REST REQUEST authorizer event from `ip`, without a key.
fn event(ip: &str) -> Vec<u8> {
    format!(
        r#"{{"type":"REQUEST","methodArn":"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets","headers":{{}},"requestContext":{{"identity":{{"sourceIp":"{ip}"}}}}}}"#
    )
    .into_bytes()
}

async fn decide<A: tollgate_store::Allowances>(a: &Authorizer<KeysStore, A>, ip: &str) -> Value {
    let out = a.handle_bytes(&event(ip)).await.unwrap();
    serde_json::from_str(out.get()).unwrap()
}

fn allowed(v: &Value) -> bool {
    v["policyDocument"]["Statement"][0]["Effect"] == "Allow"
}

/// Sends `ips` through the regions (call `i` to region `i % 3`): each
/// region's authorizer decides, then its log-processor counts the access
/// lines of its calls in deliveries of [`DELIVERY`]. Returns each call's
/// `principalId`; every call must be allowed (no block exists yet).
async fn call_and_count(h: &Harness, regions: &[RegionFunctions], ips: &[String]) -> Vec<String> {
    let mut principals = Vec::new();
    for (r, region) in regions.iter().enumerate() {
        let a = authorizer(h, region.name).await;
        let mut events = Vec::new();
        for (i, ip) in ips.iter().enumerate().skip(r).step_by(REGIONS.len()) {
            let v = decide(&a, ip).await;
            assert!(allowed(&v), "{ip} in {}: {v}", region.name);
            let identity = v["context"]["identity"].as_str().unwrap().to_owned();
            let time_ms = now();
            let request_id = format!("{}-{i}", region.name);
            let message = access_line(
                ACCESS_LOG_FORMAT,
                &Request {
                    request_id: &request_id,
                    time_ms,
                    ip,
                    identity: &identity,
                    status: 200,
                    error_type: "-",
                },
            );
            events.push(Event {
                id: format!("{time_ms:020}{i:020}"),
                timestamp: time_ms,
                message,
            });
            principals.push(v["principalId"].as_str().unwrap().to_owned());
        }
        for delivery in events.chunks(DELIVERY) {
            let payload = payload_json("/aws/apigateway/tollgate", region.name, delivery);
            let summary = region
                .processor
                .handle(direct_event(&payload))
                .await
                .unwrap();
            assert_eq!(summary["counted"], delivery.len(), "{summary}");
        }
    }
    principals
}

/// Each region's quota-sync behind the stream pump, run until every
/// region's stream is quiet.
async fn sync(h: &Harness) {
    let functions: Vec<(&str, Arc<dyn Invoke>)> = REGIONS
        .iter()
        .map(|region| {
            let config = quota_sync::local_config(region, &REGIONS, &h.tables).unwrap();
            let handler = Arc::new(quota_sync::local(&config, &h.endpoint));
            let invoke: Arc<dyn Invoke> =
                Arc::new(InProcess::new("quota-sync", move |event: Value| {
                    let handler = handler.clone();
                    async move {
                        let outcome = handler.handle(&event).await.map_err(|e| e.to_string())?;
                        serde_json::to_value(&outcome.response).map_err(|e| e.to_string())
                    }
                }));
            (*region, invoke)
        })
        .collect();
    let mut pump = tollgate_tests::pump::local_pump(
        &h.endpoint,
        &h.tables.usage,
        &PumpOptions::default(),
        functions,
    );
    let (_, idle) = pump
        .run_until_idle(Duration::from_millis(50), 200)
        .await
        .unwrap();
    assert!(idle, "the streams did not become quiet");
}

/// In every region: the identity's day counter holds every region's count
/// (this region's own and the peers' copies), `total` in all, and a block
/// of the anonymous plan's limit.
async fn assert_counted_and_blocked(h: &Harness, identity: &Identity, total: u64) {
    let counter = CounterKey {
        meter: MeterName::requests(),
        identity: identity.clone(),
        period: Window::Day.period_of(now()).unwrap(),
    };
    for region in REGIONS {
        let usage = UsageStore::new(h.client_in(region), &h.tables.usage);
        let by_region = usage.regions_of(&counter).await.unwrap();
        assert_eq!(by_region.len(), REGIONS.len(), "{region}: {by_region:?}");
        assert_eq!(
            by_region.values().sum::<u64>(),
            total,
            "{region}: {by_region:?}"
        );
        let keys = KeysStore::new(h.client_in(region), &h.tables.keys);
        let (_, blocks) = keys
            .lookup(None, std::slice::from_ref(identity))
            .await
            .unwrap();
        assert!(
            blocks
                .iter()
                .any(|b| b.limit == LIMIT && b.used >= LIMIT && b.period == counter.period),
            "{region}: no block of {identity}: {blocks:?}"
        );
    }
}

#[tokio::test]
async fn five_thousand_ipv6_addresses_of_one_64_are_one_identity_blocked_in_every_region() {
    let (h, regions) = deployment("ipv6-regions").await;
    // 5,000 distinct addresses of 2001:db8:7:8::/64, in every textual shape.
    let ips: Vec<String> = (0..5_000u32)
        .map(|n| {
            format!(
                "2001:db8:7:8:{:x}:{:x}:{:x}:{:x}",
                (n * 7919) & 0xffff,
                n >> 8,
                n & 0xff,
                n + 1
            )
        })
        .collect();
    assert_eq!(
        ips.iter().collect::<std::collections::BTreeSet<_>>().len(),
        5_000
    );
    let principals = call_and_count(&h, &regions, &ips).await;
    assert!(principals.iter().all(|p| p == "ip:2001:db8:7:8::/64"));
    sync(&h).await;
    let identity = Identity::parse_anonymous_ip("2001:db8:7:8::1", Ipv6Prefix::DEFAULT).unwrap();
    assert_eq!(identity.to_string(), "ip:2001:db8:7:8::/64");
    assert_counted_and_blocked(&h, &identity, 5_000).await;
    for region in REGIONS {
        let a = authorizer(&h, region).await;
        let v = decide(&a, "2001:db8:7:8:ffff:1:2:3").await;
        assert!(!allowed(&v), "{region}: {v}");
        assert_eq!(v["context"]["reason"], "quota_exceeded", "{region}");
        assert!(
            allowed(&decide(&a, "2001:db8:7:9::1").await),
            "{region}: another /64 is another identity"
        );
    }
}

#[tokio::test]
async fn an_ipv4_address_and_its_mapped_6to4_and_nat64_forms_are_one_identity_in_every_region() {
    let (h, regions) = deployment("ipv4-forms").await;
    let forms = [
        "198.51.100.4",
        "::ffff:198.51.100.4",
        "2002:c633:6404::1",
        "2002:c633:6404:77::9",
        "64:ff9b::198.51.100.4",
        "64:ff9b::c633:6404",
    ];
    // 30 calls: every form in every region.
    let ips: Vec<String> = (0..30).map(|i| forms[i % forms.len()].to_owned()).collect();
    let principals = call_and_count(&h, &regions, &ips).await;
    assert!(
        principals.iter().all(|p| p == "ip:198.51.100.4"),
        "{principals:?}"
    );
    sync(&h).await;
    let identity: Identity = "ip:198.51.100.4".parse().unwrap();
    assert_counted_and_blocked(&h, &identity, 30).await;
    for region in REGIONS {
        let a = authorizer(&h, region).await;
        for form in forms {
            let v = decide(&a, form).await;
            assert_eq!(
                v["context"]["reason"], "quota_exceeded",
                "{region} {form}: {v}"
            );
        }
        assert!(allowed(&decide(&a, "198.51.100.5").await), "{region}");
    }
}
