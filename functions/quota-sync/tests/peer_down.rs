//! A peer region that is down never holds this region's stream: the other
//! peer and the evaluation go on, no record comes back in
//! `batchItemFailures`, the missed copies are kept as pending copies, and
//! once the peer is back their own retry path makes everything converge.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use quota_sync::{QuotaSync, RETRY_PENDING};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tollgate_core::Region;
use tollgate_core::{Aggregation, Window};
use tollgate_store::usage::UsageItem;
use tollgate_store::PendingCopies;
use tollgate_tests::pump::{Pump, PumpOptions, RegionPump};
use tollgate_tests::Harness;

/// A loopback TCP proxy to `target` that can be switched off: while off it
/// accepts connections and drops them at once, like a peer that is unreachable.
async fn switchable_proxy(target: String) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !flag.load(Ordering::SeqCst) {
                drop(inbound);
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (url, up)
}

#[tokio::test]
async fn a_closed_port_fails_only_that_peers_records() {
    let h = Harness::with_regions("qs-closed", &REGIONS).await;
    let (key, month) = hard_limited_counter(&h, "free", Window::Month, 5).await;
    let other = counter("requests", &"ip:198.51.100.1".parse().unwrap(), Window::Day);
    increment_in(&h, "local-a", &[(&month, Aggregation::Count, 3)]).await;
    increment_in(&h, "local-a", &[(&other, Aggregation::Count, 1)]).await;
    increment_in(&h, "local-a", &[(&month, Aggregation::Count, 3)]).await;

    // local-c's endpoint is a closed port.
    let mut config = config(&h, "local-a");
    config.peers[1].endpoint = Some("http://127.0.0.1:9".into());
    // Generous: the closed port fails at once; a loaded machine must not
    // time out the live peer.
    config.peer_timeout = Duration::from_secs(10);
    let handler = quota_sync::local(&config, &h.endpoint);
    let records = read_all(&mut reader(&h, "local-a")).await;
    assert_eq!(records.len(), 3);
    let started = std::time::Instant::now();
    let outcome = handler.handle(&event(&records)).await.unwrap();
    let took = started.elapsed();

    // No record failed: both copies for local-c are kept as pending.
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "{:?}",
        outcome.response.batch_item_failures
    );
    assert_eq!(outcome.stats.items, 2, "two updates of one item collapsed");
    assert_eq!(outcome.stats.pending_kept, 2, "{:?}", outcome.stats);
    let mut kept = pending_in(&h, "local-a", "local-c").await;
    kept.sort_by_key(|c| c.value);
    let kept: Vec<(String, u64)> = kept
        .iter()
        .map(|c| (c.key.counter.name(), c.value))
        .collect();
    assert_eq!(
        kept,
        vec![(other.name(), 1), (month.name(), 6)],
        "the latest value of each"
    );
    assert!(pending_in(&h, "local-a", "local-b").await.is_empty());
    // local-b has its copies; local-c nothing.
    assert_eq!(
        values_in(&h, "local-b", &month).await.get("local-a"),
        Some(&6)
    );
    assert_eq!(
        values_in(&h, "local-b", &other).await.get("local-a"),
        Some(&1)
    );
    assert!(values_in(&h, "local-c", &month).await.is_empty());
    // The evaluation went on: local-a holds the block.
    let blocks = blocks_in(&h, "local-a", &key).await;
    assert_eq!(blocks.len(), 1);
    assert_eq!((blocks[0].limit, blocks[0].used), (5, 6));
    // Both of local-c's copies failed (sent at once, or not tried after the
    // first failure); local-b's both arrived.
    assert_eq!(outcome.stats.replica_failures, 2, "{:?}", outcome.stats);
    assert_eq!(
        outcome.stats.replicas_raised + outcome.stats.replicas_unchanged,
        2
    );
    eprintln!("batch with a peer at a closed port took {took:?}");
}

/// `region`'s pending copies for `peer`.
async fn pending_in(h: &Harness, region: &str, peer: &str) -> Vec<UsageItem> {
    PendingCopies::new(h.client_in(region), &h.tables.keys)
        .list(&Region::new(peer).unwrap(), 1000)
        .await
        .unwrap()
}

/// Handlers of every region, each reaching local-c through `proxy_url`.
fn handlers_behind(h: &Harness, proxy_url: &str) -> Vec<Arc<QuotaSync>> {
    REGIONS
        .iter()
        .map(|region| {
            let mut config = config(h, region);
            for peer in &mut config.peers {
                if peer.region.as_str() == "local-c" {
                    peer.endpoint = Some(proxy_url.to_owned());
                }
            }
            // The proxy drops connections at once while down; a loaded
            // machine must not time out the live peers.
            config.peer_timeout = Duration::from_secs(10);
            Arc::new(quota_sync::local(&config, &h.endpoint))
        })
        .collect()
}

#[tokio::test]
async fn a_peer_down_for_25_invocations_never_stalls_and_converges() {
    let h = Harness::with_regions("qs-down25", &REGIONS).await;
    let (key, month) = hard_limited_counter(&h, "free", Window::Month, 10).await;
    let target = h.endpoint.trim_start_matches("http://").to_owned();
    let (proxy_url, up) = switchable_proxy(target).await;
    let handlers = handlers_behind(&h, &proxy_url);
    let local_a = &handlers[0];
    let mut stream = reader(&h, "local-a");

    // 25 invocations of local-a with local-c down, one call counted each.
    for call in 1..=25u64 {
        increment_in(&h, "local-a", &[(&month, Aggregation::Count, 1)]).await;
        let records = read_all(&mut stream).await;
        let outcome = local_a.handle(&event(&records)).await.unwrap();
        assert!(
            outcome.response.batch_item_failures.is_empty(),
            "invocation {call} failed records: a down peer must not hold the stream"
        );
        // Blocked on time: in the invocation that saw the 10th call.
        let blocked = !blocks_in(&h, "local-a", &key).await.is_empty();
        assert_eq!(blocked, call >= 10, "invocation {call}");
    }
    assert!(values_in(&h, "local-c", &month).await.is_empty());
    assert_eq!(
        values_in(&h, "local-b", &month).await.get("local-a"),
        Some(&25)
    );
    let kept = pending_in(&h, "local-a", "local-c").await;
    assert_eq!(kept.len(), 1, "one pending copy, the latest value");
    assert_eq!(kept[0].value, 25);

    // local-c is back; the scheduled retry event delivers what is pending.
    up.store(true, Ordering::SeqCst);
    let retried = local_a
        .handle(&json!({ "tollgate": RETRY_PENDING }))
        .await
        .unwrap();
    assert_eq!(retried.stats.pending_delivered, 1);
    assert!(retried.response.batch_item_failures.is_empty());
    assert_eq!(
        values_in(&h, "local-c", &month).await.get("local-a"),
        Some(&25)
    );
    assert!(pending_in(&h, "local-a", "local-c").await.is_empty());
    // local-c's own stream now evaluates the copy: it blocks the key too.
    let records = read_all(&mut reader(&h, "local-c")).await;
    handlers[2].handle(&event(&records)).await.unwrap();
    assert_eq!(blocks_in(&h, "local-c", &key).await.len(), 1);
}

#[tokio::test]
async fn a_peer_that_comes_back_catches_up_through_pending_copies() {
    let h = Harness::with_regions("qs-peerdown", &REGIONS).await;
    let (key, month) = hard_limited_counter(&h, "free", Window::Month, 10).await;

    let target = h.endpoint.trim_start_matches("http://").to_owned();
    let (proxy_url, up) = switchable_proxy(target).await;
    // Every region reaches local-c through the proxy, which starts down.
    let handlers = handlers_behind(&h, &proxy_url);
    let pumps = REGIONS
        .iter()
        .zip(&handlers)
        .map(|(region, handler)| {
            RegionPump::new(
                reader(&h, region),
                in_process(handler.clone()),
                PumpOptions {
                    retry_backoff: Duration::from_millis(50),
                    ..PumpOptions::default()
                },
            )
        })
        .collect();
    let mut pump = Pump { regions: pumps };

    increment_in(&h, "local-a", &[(&month, Aggregation::Count, 6)]).await;
    increment_in(&h, "local-b", &[(&month, Aggregation::Count, 5)]).await;
    let mut partial = 0;
    for _ in 0..4 {
        let round = pump.round().await.unwrap();
        partial += round.partial_failures;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(partial, 0, "the down peer failed no record");
    // local-a and local-b exchanged their items and both blocked the key.
    for region in ["local-a", "local-b"] {
        let held = values_in(&h, region, &month).await;
        assert_eq!(held.values().sum::<u64>(), 11, "{region}: {held:?}");
        assert_eq!(
            blocks_in(&h, region, &key).await.len(),
            1,
            "{region} blocked"
        );
        assert_eq!(pending_in(&h, region, "local-c").await.len(), 1, "{region}");
    }
    assert!(values_in(&h, "local-c", &month).await.is_empty());
    assert!(blocks_in(&h, "local-c", &key).await.is_empty());

    // local-c is back: the scheduled retries deliver the pending copies.
    up.store(true, Ordering::SeqCst);
    for handler in &handlers {
        let outcome = handler
            .handle(&json!({ "tollgate": RETRY_PENDING }))
            .await
            .unwrap();
        assert!(outcome.response.batch_item_failures.is_empty());
    }
    let (total, idle) = pump
        .run_until_idle(Duration::from_millis(60), 100)
        .await
        .unwrap();
    assert!(idle, "the pump went idle: {total:?}");
    for region in REGIONS {
        let held = values_in(&h, region, &month).await;
        assert_eq!(held.get("local-a"), Some(&6), "{region}");
        assert_eq!(held.get("local-b"), Some(&5), "{region}");
        let blocks = blocks_in(&h, region, &key).await;
        assert_eq!(blocks.len(), 1, "{region} blocked");
        assert_eq!(blocks[0].limit, 10);
        assert!(pending_in(&h, region, "local-c").await.is_empty());
    }
}
