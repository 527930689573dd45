//! Issue 18 on DynamoDB Local: a hard limit holds across three regions with
//! the real adapters (`KeysStore`, `AllowanceStore`) before any count
//! arrives (no log-processor, no quota-sync, no block here), including a
//! burst from zero at the start of a period that moves to one region, and
//! a limit of 1.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use authorizer::{Authorizer, Config, ManualClock};
use support::*;
use tollgate_core::{FailurePolicy, OveragePolicy, Region, UnixMillis};
use tollgate_lambda::Peer;
use tollgate_store::{AllowanceStore, KeysStore};
use tollgate_tests::Harness;

const REGIONS: [&str; 3] = ["local-a", "local-b", "local-c"];

/// The wall clock: allowance items expire a day after their period.
fn now() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One authorizer per region over its own Keys table (the demo key and a
/// `pro` plan of `day` a day in each), leasing from its allowances and
/// pulling from the other two.
/// The harness comes back too: its tables live as long as it does.
async fn deployment(
    label: &str,
    day: u64,
) -> (Harness, Vec<Authorizer<KeysStore, AllowanceStore>>) {
    let h = Harness::with_regions(label, &REGIONS).await;
    let all: Vec<Region> = REGIONS.iter().map(|r| Region::new(r).unwrap()).collect();
    let mut out = Vec::new();
    for this in &all {
        let store = KeysStore::new(h.client_in(this.as_str()), h.tables.keys.clone());
        store
            .put_plan(&plan(
                "pro",
                OveragePolicy::Hard,
                FailurePolicy::Closed,
                day,
            ))
            .await
            .unwrap();
        store
            .put_plan(&plan(
                "anonymous",
                OveragePolicy::Hard,
                FailurePolicy::Closed,
                5,
            ))
            .await
            .unwrap();
        create_key(&store, &demo_key(), "demo", "pro", None).await;
        let peers: Vec<&Region> = all.iter().filter(|r| *r != this).collect();
        let config = Config {
            keys_table: h.tables.keys.clone(),
            region: Some(this.clone()),
            peers: peers
                .iter()
                .map(|r| Peer {
                    region: (*r).clone(),
                    endpoint: None,
                })
                .collect(),
            ..Config::default()
        };
        let allowances = AllowanceStore::new(
            h.client_in(this.as_str()),
            h.tables.keys.clone(),
            &all,
            this,
            peers
                .iter()
                .map(|r| ((*r).clone(), h.client_in(r.as_str())))
                .collect(),
            Duration::from_millis(2_000),
        )
        .unwrap();
        let a = Authorizer::new(config, store, allowances, Arc::new(ManualClock::at(now())));
        a.load_plans().await.unwrap();
        out.push(a);
    }
    (h, out)
}

/// Calls the demo key `n` times through `a`: how many were allowed (every
/// denial must be a quota denial).
async fn calls(a: &Authorizer<KeysStore, AllowanceStore>, n: usize) -> usize {
    let mut allowed_calls = 0;
    for _ in 0..n {
        let v = respond(a, &key_event(&demo_key())).await;
        if allowed(&v) {
            allowed_calls += 1;
        } else {
            assert_eq!(reason(&v), "quota_exceeded", "{v}");
        }
    }
    allowed_calls
}

#[tokio::test]
async fn a_burst_in_one_region_gets_the_whole_limit_and_not_one_call_more() {
    let (_h, regions) = deployment("lease-burst", 600).await;
    // A few calls elsewhere first, then the burst where the traffic is.
    let elsewhere = calls(&regions[1], 20).await + calls(&regions[2], 20).await;
    assert_eq!(elsewhere, 40);
    let burst = calls(&regions[0], 1_000).await;
    // The other two containers may still hold up to a lease each (at most
    // 3 units: 0.5 % of 600), which they serve next.
    let rest = calls(&regions[1], 10).await + calls(&regions[2], 10).await;
    // The allowance: the limit and 1 % (606), and not one call more.
    assert_eq!(elsewhere + burst + rest, 606, "burst {burst}, rest {rest}");
    assert!(burst >= 606 - 40 - 6, "the burst got nearly all: {burst}");
    // Past the limit, every region denies.
    for a in &regions {
        assert_eq!(calls(a, 5).await, 0);
    }
}

#[tokio::test]
async fn a_limit_of_one_is_one_call_across_all_regions() {
    let (_h, regions) = deployment("lease-one", 1).await;
    let mut total = 0;
    for a in &regions {
        total += calls(a, 3).await;
    }
    assert_eq!(total, 1);
}
