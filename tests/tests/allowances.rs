//! The lease allowances of hard request limits on DynamoDB Local
//! (`tollgate_store::AllowanceStore`): concurrent takes and pulls over
//! several regions never grant more than the limit, and grant all of it;
//! a peer that is down keeps its share; plan changes re-fund; the common
//! take is one request and one write unit.
//!
//! Each simulated region is a database of its own in DynamoDB Local.
//! Periods are the wall clock's: DynamoDB Local's TTL sweeper deletes
//! items whose `ttl` has passed, so a clock in the past would race it.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use rand::{Rng, SeedableRng};
use tollgate_core::lease::{initial_share, LeaseKey, Leased, Taken};
use tollgate_core::{Identity, Region, UnixMillis, Window};
use tollgate_store::allowance::{allowance_pk, allowance_ttl};
use tollgate_store::attr::{get_u64, s};
use tollgate_store::client::{local_client_with, local_config, Limits};
use tollgate_store::{AllowanceStore, Allowances, RequestCounter};
use tollgate_tests::Harness;

/// Long enough that a busy DynamoDB Local on a small machine always answers.
const PEER_TIMEOUT: Duration = Duration::from_secs(20);

fn wall_clock() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as UnixMillis
}

fn leased(limit: u64) -> Leased {
    leased_for("k_0123456789abcdef", limit)
}

fn leased_for(key_id: &str, limit: u64) -> Leased {
    Leased {
        key: LeaseKey {
            identity: Identity::key(key_id).unwrap(),
            period: Window::Day.period_of(wall_clock()).unwrap(),
        },
        limit,
    }
}

fn regions(names: &[&str]) -> Vec<Region> {
    names.iter().map(|n| Region::new(n).unwrap()).collect()
}

/// One store per region, each with every other region as a peer.
fn stores(h: &Harness, names: &[&str]) -> Vec<Arc<AllowanceStore>> {
    let all = regions(names);
    all.iter()
        .map(|this| {
            let peers = all
                .iter()
                .filter(|r| *r != this)
                .map(|r| (r.clone(), h.client_in(r.as_str())))
                .collect();
            let store = AllowanceStore::new(
                h.client_in(this.as_str()),
                h.tables.keys.clone(),
                &all,
                this,
                peers,
                PEER_TIMEOUT,
            )
            .unwrap();
            Arc::new(store)
        })
        .collect()
}

/// `(left, taken, limit, ttl)` of a region's allowance item, if it exists.
async fn item(h: &Harness, region: &str, l: &Leased) -> Option<(u64, u64, u64, u64)> {
    item_via(&h.client_in(region), &h.tables.keys, l).await
}

async fn item_via(client: &Client, table: &str, l: &Leased) -> Option<(u64, u64, u64, u64)> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", s(allowance_pk(&l.key.identity)))
        .key("sk", s(l.key.period.to_string()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let i = out.item?;
    let get = |name| get_u64(&i, name).unwrap();
    Some((get("left"), get("taken"), get("limit"), get("ttl")))
}

/// Runs `takers` concurrent takers per region, each asking for sizes
/// drawn by `size` and pulling when a take grants nothing, until a pull
/// grants nothing either; then drains every region with pulls until no
/// unit is left anywhere. Returns every grant.
async fn spend_everything(
    stores: &[Arc<AllowanceStore>],
    l: &Leased,
    takers: usize,
    size: fn(&mut rand::rngs::StdRng) -> u64,
) -> Vec<u64> {
    let mut tasks = Vec::new();
    for (r, store) in stores.iter().enumerate() {
        for t in 0..takers {
            let (store, l) = (Arc::clone(store), l.clone());
            let seed = rand::random::<u64>() ^ (r * 1000 + t) as u64;
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let (mut grants, mut errors) = (Vec::new(), 0);
                loop {
                    let want = size(&mut rng);
                    let taken = match store.take(&l, want).await {
                        Ok(t) if t.granted == 0 => store.pull(&l, want).await,
                        other => other,
                    };
                    match taken {
                        Ok(t) if t.granted == 0 => break,
                        Ok(t) => {
                            assert!(t.granted <= want, "granted {} of {want}", t.granted);
                            grants.push(t.granted);
                        }
                        Err(e) => {
                            // Contention past the bounded retries: an error, never a grant.
                            errors += 1;
                            assert!(errors < 100, "a taker keeps failing: {e}");
                        }
                    }
                }
                grants
            }));
        }
    }
    let mut grants = Vec::new();
    for task in tasks {
        grants.extend(task.await.unwrap());
    }
    // Units a pull had in flight when a taker stopped: pull them all in.
    loop {
        let mut round = 0;
        for store in stores {
            let t = store.pull(l, u64::MAX).await.unwrap();
            round += t.granted;
            if t.granted > 0 {
                grants.push(t.granted);
            }
        }
        if round == 0 {
            break;
        }
    }
    grants
}

async fn assert_all_spent(h: &Harness, names: &[&str], stores: &[Arc<AllowanceStore>], l: &Leased) {
    for store in stores {
        assert_eq!(store.take(l, 1).await.unwrap().granted, 0);
        assert_eq!(store.pull(l, 1).await.unwrap().granted, 0);
    }
    let (mut left, mut taken) = (0, 0);
    for name in names {
        if let Some((lf, tk, limit, _)) = item(h, name, l).await {
            assert_eq!(limit, l.limit);
            left += lf;
            taken += tk;
        }
    }
    assert_eq!(
        (left, taken),
        (0, tollgate_core::lease::allowance(l.limit)),
        "the items' sums: the allowance, all taken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takers_in_three_regions_grant_the_limit_exactly() {
    let names = ["alw-a", "alw-b", "alw-c"];
    let h = Harness::with_regions("alw-race", &names).await;
    let stores = stores(&h, &names);
    let l = leased(1_500);
    let grants = spend_everything(&stores, &l, 8, |rng| rng.random_range(1..=7)).await;
    assert_eq!(
        grants.iter().sum::<u64>(),
        1_515,
        "the allowance (the limit and 1 %): never more, and all of it"
    );
    assert_all_spent(&h, &names, &stores, &l).await;
    let (_, _, _, ttl) = item(&h, "alw-a", &l).await.unwrap();
    assert_eq!(ttl as i64, allowance_ttl(&l.key.period));
    assert_eq!(ttl as i64, l.key.period.end() / 1000 + 86_400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_of_one_over_ten_regions_is_granted_once() {
    let names: Vec<String> = (0..10).map(|i| format!("alw-r{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let h = Harness::with_regions("alw-one", &names).await;
    let stores = stores(&h, &names);
    let l = leased(1);
    assert_eq!(stores[0].initial_share(1), 1);
    assert_eq!(stores[9].initial_share(1), 0);
    // Every region takes, and pulls when it got nothing, all at once.
    let tasks: Vec<_> = stores
        .iter()
        .map(|store| {
            let (store, l) = (Arc::clone(store), l.clone());
            tokio::spawn(async move {
                let t = store.take(&l, 1).await.unwrap();
                if t.granted > 0 {
                    return t.granted;
                }
                store.pull(&l, 1).await.unwrap().granted
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 1);
    assert_all_spent(&h, &names, &stores, &l).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_in_leases_of_five_thousand_sums_exactly() {
    let names = ["alw-a", "alw-b", "alw-c"];
    let h = Harness::with_regions("alw-million", &names).await;
    let stores = stores(&h, &names);
    let l = leased(1_000_000);
    let grants = spend_everything(&stores, &l, 2, |_| 5_000).await;
    assert_eq!(grants.iter().sum::<u64>(), 1_010_000, "the limit and 1 %");
    assert_all_spent(&h, &names, &stores, &l).await;
    // The largest limit and request: what is left is granted, nothing overflows.
    let huge = leased_for("k_00000000000000ff", u64::MAX);
    assert_eq!(
        stores[0].take(&huge, u64::MAX).await.unwrap(),
        Taken {
            granted: initial_share(u64::MAX, 3, 0),
            left: 0
        }
    );
}

#[tokio::test]
async fn a_peer_that_is_down_is_skipped_and_keeps_its_share() {
    let names = ["alw-a", "alw-b", "alw-c"];
    let h = Harness::with_regions("alw-down", &names).await;
    let all = regions(&names);
    let short = Duration::from_millis(300);
    let down = local_client_with("http://127.0.0.1:9", "alw-c", Limits::Peer(short));
    let a = AllowanceStore::new(
        h.client_in("alw-a"),
        h.tables.keys.clone(),
        &all,
        &all[0],
        vec![
            (all[1].clone(), h.client_in("alw-b")),
            (all[2].clone(), down),
        ],
        short,
    )
    .unwrap();
    let l = leased(30); // 10 each
    assert_eq!(a.take(&l, 100).await.unwrap().granted, 10);
    let pulled = a.pull(&l, 100).await.unwrap();
    assert_eq!(
        pulled,
        Taken {
            granted: 5,
            left: 0
        },
        "half of b's 10, c skipped"
    );
    assert_eq!(item(&h, "alw-b", &l).await.map(|i| i.0), Some(5));
    assert_eq!(item(&h, "alw-c", &l).await, None, "nothing created in c");
    // c, reachable again, still has its whole share.
    let stores = stores(&h, &names);
    assert_eq!(stores[2].take(&l, 100).await.unwrap().granted, 10);
    let rest = stores[0].pull(&l, 100).await.unwrap().granted;
    assert_eq!(rest, 3, "half of b's 5; c has nothing left");
    assert_eq!(stores[1].take(&l, 100).await.unwrap().granted, 2);
    assert_all_spent(&h, &names, &stores, &l).await;
}

#[tokio::test]
async fn a_plan_change_re_funds_and_a_lower_limit_never_grants_more() {
    let names = ["alw-a", "alw-b"];
    let h = Harness::with_regions("alw-plan", &names).await;
    let stores = stores(&h, &names);
    // 10 over 2 regions: 5 each.
    assert_eq!(stores[0].take(&leased(10), 5).await.unwrap().left, 0);
    assert_eq!(stores[1].take(&leased(10), 2).await.unwrap().left, 3);
    // Raised to 30 (15 each): a has 0 + 15 - 5.
    let raised = stores[0].take(&leased(30), 100).await.unwrap();
    assert_eq!(
        raised,
        Taken {
            granted: 10,
            left: 0
        }
    );
    assert_eq!(item(&h, "alw-a", &leased(30)).await.unwrap().2, 30);
    // b is still funded for 10: the pull re-funds it (3 + 15 - 5 = 13), then takes 7.
    assert_eq!(stores[0].pull(&leased(30), 100).await.unwrap().granted, 7);
    assert_eq!(
        item(&h, "alw-b", &leased(30)).await.unwrap().0,
        6,
        "b keeps 6"
    );
    assert_eq!(stores[1].take(&leased(30), 100).await.unwrap().granted, 6);
    assert_all_spent(&h, &names, &stores, &leased(30)).await;
    // Lowered to 4 (2 each) after all 30 went: nothing more, anywhere.
    for store in &stores {
        assert_eq!(store.take(&leased(4), 100).await.unwrap().granted, 0);
        assert_eq!(store.pull(&leased(4), 100).await.unwrap().granted, 0);
    }

    // Lowered to 4 before it is spent: a's 1 left becomes 1 + 2 - 5, so 0;
    // b's 4 becomes 4 + 2 - 5 = 1, which a pull moves to a.
    let other = |limit| leased_for("k_fedcba9876543210", limit);
    assert_eq!(stores[0].take(&other(10), 4).await.unwrap().granted, 4);
    assert_eq!(stores[1].take(&other(10), 1).await.unwrap().granted, 1);
    assert_eq!(stores[0].take(&other(4), 100).await.unwrap().granted, 0);
    assert_eq!(stores[0].pull(&other(4), 100).await.unwrap().granted, 1);
    assert_eq!(stores[1].take(&other(4), 100).await.unwrap().granted, 0);
    assert_eq!(stores[1].pull(&other(4), 100).await.unwrap().granted, 0);
    assert_eq!(
        item(&h, "alw-a", &other(4)).await.unwrap().1
            + item(&h, "alw-b", &other(4)).await.unwrap().1,
        6,
        "5 before the change, 1 after"
    );
}

fn counted(h: &Harness, region: &str) -> (Client, RequestCounter) {
    let counter = RequestCounter::with_capacity();
    let conf = local_config(&h.endpoint, region)
        .interceptor(counter.clone())
        .build();
    (Client::from_conf(conf), counter)
}

#[tokio::test]
async fn a_common_take_is_one_request_and_one_write_unit() {
    let names = ["alw-a", "alw-b"];
    let h = Harness::with_regions("alw-cost", &names).await;
    let all = regions(&names);
    let (local, lc) = counted(&h, "alw-a");
    let (peer, pc) = counted(&h, "alw-b");
    let a = AllowanceStore::new(
        local,
        h.tables.keys.clone(),
        &all,
        &all[0],
        vec![(all[1].clone(), peer)],
        PEER_TIMEOUT,
    )
    .unwrap();
    // An allowance of 1,010 (the limit and 1 %): 505 each.
    let l = leased(1_000);
    // The first take of a period creates the item in the same request.
    assert_eq!(
        a.take(&l, 100).await.unwrap(),
        Taken {
            granted: 100,
            left: 405
        }
    );
    eprintln!("first take: {:?}", lc.snapshot());
    assert_eq!(lc.requests("UpdateItem"), 1);
    assert_eq!(lc.total_units(), (0.0, 1.0));
    lc.reset();
    assert_eq!(
        a.take(&l, 100).await.unwrap(),
        Taken {
            granted: 100,
            left: 305
        }
    );
    eprintln!("common take: {:?}", lc.snapshot());
    assert_eq!(lc.total_requests(), 1);
    assert_eq!(lc.total_units(), (0.0, 1.0));
    assert_eq!(pc.total_requests(), 0, "a take never reaches a peer");
    // Taking the rest when less is left than asked: the common write fails, the exact one holds.
    lc.reset();
    assert_eq!(
        a.take(&l, 500).await.unwrap(),
        Taken {
            granted: 305,
            left: 0
        }
    );
    eprintln!("take of the rest: {:?}", lc.snapshot());
    assert_eq!(lc.total_requests(), 2);
    // A pull: per peer a GetItem and a debit; here a credit and the take.
    lc.reset();
    assert_eq!(
        a.pull(&l, 100).await.unwrap(),
        Taken {
            granted: 100,
            left: 153
        }
    );
    eprintln!("pull, local: {:?}", lc.snapshot());
    eprintln!("pull, peer: {:?}", pc.snapshot());
    assert_eq!((pc.requests("GetItem"), pc.requests("UpdateItem")), (1, 1));
    assert_eq!(pc.total_units(), (0.5, 1.0));
    assert_eq!(lc.requests("UpdateItem"), 2, "the credit and the take");
    assert_eq!(lc.total_units(), (0.0, 2.0));
    assert_eq!(item(&h, "alw-b", &l).await.unwrap().0, 252);
}
