//! What a counter update costs quota-sync in DynamoDB requests, counted
//! with `RequestCounter` on every client the handler uses.
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_dynamodb::Client;
use common::*;
use quota_sync::{Peer, QuotaSync};
use tollgate_core::{Aggregation, OveragePolicy, Replication, Window};
use tollgate_store::client::local_config;
use tollgate_store::{KeysStore, RequestCounter, UsageStore};
use tollgate_tests::streams::StreamReader;
use tollgate_tests::Harness;

/// A handler of local-a whose clients all count into one counter, copying
/// every change.
fn counted_handler(h: &Harness) -> (QuotaSync, RequestCounter) {
    counted_handler_with(h, Replication::All)
}

/// A handler of local-a whose clients all count into one counter.
fn counted_handler_with(h: &Harness, replication: Replication) -> (QuotaSync, RequestCounter) {
    let counter = RequestCounter::with_capacity();
    let client = |region: &str| {
        Client::from_conf(
            local_config(&h.endpoint, region)
                .interceptor(counter.clone())
                .build(),
        )
    };
    let mut config = config(h, "local-a");
    config.replication = replication;
    let peers = config
        .peers
        .iter()
        .map(|p| Peer {
            region: p.region.clone(),
            usage: UsageStore::new(client(p.region.as_str()), &h.tables.usage),
        })
        .collect();
    let local = client("local-a");
    let handler = QuotaSync::new(
        &config,
        UsageStore::new(local.clone(), &h.tables.usage),
        KeysStore::new(local, &h.tables.keys),
        peers,
    );
    (handler, counter)
}

/// The records of `region`'s stream so far that change its own items (not
/// the copies of its peers' items).
async fn own_records(h: &Harness, region: &str) -> Vec<serde_json::Value> {
    let own = format!("#{region}");
    read_all(&mut reader(h, region))
        .await
        .into_iter()
        .filter(|r| {
            r["dynamodb"]["Keys"]["sk"]["S"]
                .as_str()
                .is_some_and(|sk| sk.ends_with(&own))
        })
        .collect()
}

/// Hands the stream's new records to `handler` as one batch.
async fn deliver_new(handler: &QuotaSync, stream: &mut StreamReader) -> quota_sync::Outcome {
    handler
        .handle(&event(&read_all(stream).await))
        .await
        .unwrap()
}

#[tokio::test]
async fn one_counter_update_costs_r_minus_1_writes_one_query_and_at_most_one_block() {
    let h = Harness::with_regions("qs-costs", &REGIONS).await;
    let (_, day) = hard_limited_counter(&h, "small", Window::Day, 3).await;
    let (handler, requests) = counted_handler(&h);
    let mut stream = reader(&h, "local-a");

    // Warm the container's plan caches, as every invocation after the first finds them.
    increment_in(&h, "local-a", &[(&day, Aggregation::Count, 1)]).await;
    deliver_new(&handler, &mut stream).await;

    // One update, under the limit: 2 replica writes (R - 1, each an
    // UpdateItem of the counter's cell in the peer's item), 1 Query, no block.
    increment_in(&h, "local-a", &[(&day, Aggregation::Count, 1)]).await;
    requests.reset();
    let outcome = deliver_new(&handler, &mut stream).await;
    eprintln!("under the limit: {:?}", requests.snapshot());
    assert_eq!(requests.requests("UpdateItem"), 2);
    assert_eq!(requests.requests("Query"), 1);
    assert_eq!(requests.total_requests(), 3);
    let (read_units, write_units) = requests.total_units();
    eprintln!("under the limit: {read_units} RCU, {write_units} WCU");
    assert_eq!(outcome.stats.blocks_written, 0);

    // The update that reaches the limit: 2 replica writes, 1 Query, 1 block write.
    increment_in(&h, "local-a", &[(&day, Aggregation::Count, 1)]).await;
    requests.reset();
    let outcome = deliver_new(&handler, &mut stream).await;
    eprintln!("reaching the limit: {:?}", requests.snapshot());
    assert_eq!(requests.requests("UpdateItem"), 2 + 1);
    assert_eq!(requests.requests("Query"), 1);
    assert_eq!(requests.total_requests(), 4);
    assert_eq!(outcome.stats.blocks_written, 1);

    // Past the limit, the container knows the block: 2 replica writes only.
    increment_in(&h, "local-a", &[(&day, Aggregation::Count, 1)]).await;
    requests.reset();
    let outcome = deliver_new(&handler, &mut stream).await;
    eprintln!("past the limit: {:?}", requests.snapshot());
    assert_eq!(requests.total_requests(), 2);
    assert_eq!(outcome.stats.blocks_remembered, 1);

    // A replica arriving from a peer is evaluated, never copied again.
    let b_counter = counter("requests", &"ip:192.0.2.1".parse().unwrap(), Window::Day);
    increment_in(&h, "local-b", &[(&b_counter, Aggregation::Count, 1)]).await;
    // (local-b's stream also holds the copies of local-a's items, written
    // above; only local-b's own item is what local-a receives as a replica.)
    let b_records = own_records(&h, "local-b").await;
    assert_eq!(b_records.len(), 1);
    requests.reset();
    let outcome = handler.handle(&event(&b_records)).await.unwrap();
    assert_eq!(outcome.stats.own_items, 0);
    assert_eq!(outcome.stats.replica_writes, 0, "{:?}", outcome.stats);
    assert_eq!(
        requests.requests("UpdateItem"),
        0,
        "{:?}",
        requests.snapshot()
    );
}

/// The changed counters of one item (here two IPs of one bucket) are
/// evaluated with one Query of that item in every region, not one each.
#[tokio::test]
async fn the_counters_of_one_item_are_evaluated_with_one_query() {
    let h = Harness::with_regions("qs-item-query", &REGIONS).await;
    put_plan_everywhere(
        &h,
        &plan(
            "anonymous",
            "requests",
            Window::Day,
            100,
            OveragePolicy::Hard,
        ),
    )
    .await;
    let (a, b) = bucket_neighbours(Window::Day);
    let (handler, requests) = counted_handler(&h);
    let mut stream = reader(&h, "local-a");
    // Hot (20 >= 100 / 6) and copied; this also warms the plan caches.
    increment_in(
        &h,
        "local-a",
        &[(&a, Aggregation::Count, 20), (&b, Aggregation::Count, 20)],
    )
    .await;
    deliver_new(&handler, &mut stream).await;

    increment_in(
        &h,
        "local-a",
        &[(&a, Aggregation::Count, 1), (&b, Aggregation::Count, 1)],
    )
    .await;
    requests.reset();
    let outcome = deliver_new(&handler, &mut stream).await;
    eprintln!("{:?}", requests.snapshot());
    assert_eq!(outcome.stats.counters, 2);
    assert_eq!(outcome.stats.limited_counters, 2);
    assert_eq!(outcome.stats.queries, 1);
    assert_eq!(requests.requests("Query"), 1);
    // Each counter's copy is a conditional update of its own cell.
    assert_eq!(requests.requests("UpdateItem"), 2 * 2);
}

/// The plan cache runs on the handler's clock: within its time a key's
/// plan is read once; past it (60 s), once more. The cost harness relies on
/// this to count plan reads on simulated time.
#[tokio::test]
async fn the_plan_cache_expires_on_the_injected_clock() {
    let h = Harness::with_regions("qs-clock", &REGIONS).await;
    let (_, day) = hard_limited_counter(&h, "small", Window::Day, 1_000).await;
    let clock = tollgate_core::clock::ManualClock::at(1_795_000_000_000);
    let (handler, requests) = counted_handler(&h);
    let handler = handler.with_clock(std::sync::Arc::new(clock.clone()));
    let mut stream = reader(&h, "local-a");
    // One batch `advance_ms` after the last: how many key plans it read.
    let mut plan_reads = Vec::new();
    for advance_ms in [0, 59_000, 2_000] {
        clock.advance(std::time::Duration::from_millis(advance_ms));
        increment_in(&h, "local-a", &[(&day, Aggregation::Count, 1)]).await;
        requests.reset();
        deliver_new(&handler, &mut stream).await;
        plan_reads.push(requests.requests("GetItem"));
    }
    // Read, cached 59 s later, read again 61 s after the first read.
    assert_eq!(plan_reads, [1, 0, 1]);
}

#[tokio::test]
async fn collapsing_a_batch_writes_each_item_once_per_peer() {
    let h = Harness::with_regions("qs-collapse", &REGIONS).await;
    let (handler, requests) = counted_handler(&h);
    let ids: Vec<_> = (0..5)
        .map(|i| format!("ip:192.0.2.{i}").parse().unwrap())
        .collect();
    // 5 counters, each updated 10 times: 50 stream records.
    for _ in 0..10 {
        for id in &ids {
            let c = counter("requests", id, Window::Day);
            increment_in(&h, "local-a", &[(&c, Aggregation::Count, 1)]).await;
        }
    }
    let records = read_all(&mut reader(&h, "local-a")).await;
    assert_eq!(records.len(), 50);
    requests.reset();
    let outcome = handler.handle(&event(&records)).await.unwrap();
    let writes = requests.requests("UpdateItem");
    eprintln!(
        "50 records of 5 items: {writes} replica writes (without collapsing: {}), {:?}",
        50 * 2,
        outcome.stats
    );
    assert_eq!(outcome.stats.items, 5);
    assert_eq!(writes, 5 * 2);
    for id in &ids {
        let c = counter("requests", id, Window::Day);
        assert_eq!(values_in(&h, "local-b", &c).await.get("local-a"), Some(&10));
    }
}

/// Replication `hot`: a counter far from its limit costs quota-sync no
/// request at all; once hot it costs what `all` costs; a peer's first copy
/// of a counter makes this region mark its own item shared (one
/// `UpdateItem`), after which its changes are copied too.
#[tokio::test]
async fn hot_replication_skips_cold_counters() {
    let h = Harness::with_regions("qs-hot-costs", &REGIONS).await;
    // 60 a day over 3 regions: a region's item is hot from 10 (60 / 6).
    let (key, day) = hard_limited_counter(&h, "medium", Window::Day, 60).await;
    let (handler, requests) = counted_handler_with(&h, Replication::Hot);
    let mut stream = reader(&h, "local-a");
    increment_in(&h, "local-a", &[(&day, Aggregation::Count, 1)]).await;
    deliver_new(&handler, &mut stream).await;

    // Cold (2 of 60): nothing copied, nothing read, no request.
    increment_in(&h, "local-a", &[(&day, Aggregation::Count, 1)]).await;
    requests.reset();
    let outcome = deliver_new(&handler, &mut stream).await;
    assert_eq!(requests.total_requests(), 0, "{:?}", requests.snapshot());
    assert_eq!(outcome.stats.own_cold, 1);
    assert_eq!(outcome.stats.replica_writes, 0);
    for peer in ["local-b", "local-c"] {
        assert!(values_in(&h, peer, &day).await.is_empty(), "{peer}");
    }

    // Hot (10 of 60): copied to both peers and evaluated.
    increment_in(&h, "local-a", &[(&day, Aggregation::Count, 8)]).await;
    requests.reset();
    let outcome = deliver_new(&handler, &mut stream).await;
    assert_eq!(requests.requests("UpdateItem"), 2);
    assert_eq!(requests.requests("Query"), 1);
    assert_eq!(outcome.stats.own_cold, 0);
    for peer in ["local-b", "local-c"] {
        assert_eq!(values_in(&h, peer, &day).await.get("local-a"), Some(&10));
    }

    // A peer's first copy of another counter (local-b's cold-for-us month
    // counter, hot there): local-a marks its own item shared, creating it at 0 ...
    let month = counter("requests", &key, Window::Month);
    let mut b_config = config(&h, "local-b");
    b_config.replication = Replication::Hot;
    let b_handler = quota_sync::local(&b_config, &h.endpoint);
    // The plan now limits the month (60) instead of the day.
    put_plan_everywhere(
        &h,
        &plan("medium", "requests", Window::Month, 60, OveragePolicy::Hard),
    )
    .await;
    increment_in(&h, "local-b", &[(&month, Aggregation::Count, 30)]).await;
    let b_own = own_records(&h, "local-b").await;
    b_handler.handle(&event(&b_own)).await.unwrap();
    requests.reset();
    let outcome = deliver_new(&handler, &mut stream).await;
    assert_eq!(outcome.stats.marked_shared, 1, "{:?}", outcome.stats);
    assert_eq!(requests.requests("UpdateItem"), 1);
    // ... whose record (shared, at 0) is then copied to both peers.
    let outcome = deliver_new(&handler, &mut stream).await;
    assert_eq!(outcome.stats.own_cold, 0);
    assert!(outcome.stats.replica_writes >= 2, "{:?}", outcome.stats);
    for peer in ["local-b", "local-c"] {
        assert_eq!(
            values_in(&h, peer, &month).await.get("local-a"),
            Some(&0),
            "{peer}"
        );
    }
}
