//! A peer region that is down delays only its own copies: the other peer
//! and the evaluation go on, the failed records come back in
//! `batchItemFailures`, and once the peer is back everything converges.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::net::{TcpListener, TcpStream};
use tollgate_core::{Aggregation, Window};
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
    config.peer_timeout = Duration::from_millis(800);
    let handler = quota_sync::local(&config, &h.endpoint);
    let records = read_all(&mut reader(&h, "local-a")).await;
    assert_eq!(records.len(), 3);
    let started = std::time::Instant::now();
    let outcome = handler.handle(&event(&records)).await.unwrap();
    let took = started.elapsed();

    // Both items failed for local-c: each reported at its earliest record.
    let seq = |i: usize| {
        records[i]["dynamodb"]["SequenceNumber"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut failed: Vec<String> = outcome
        .response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    let mut expected = vec![seq(0), seq(1)];
    expected.sort();
    assert_eq!(failed, expected);
    assert_eq!(outcome.stats.items, 2, "two updates of one item collapsed");
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
    // A peer that is down costs at most its timeout, not one per item.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    eprintln!("batch with a peer at a closed port took {took:?}");
}

#[tokio::test]
async fn a_peer_that_comes_back_catches_up_through_retries() {
    let h = Harness::with_regions("qs-peerdown", &REGIONS).await;
    let (key, month) = hard_limited_counter(&h, "free", Window::Month, 10).await;

    let target = h.endpoint.trim_start_matches("http://").to_owned();
    let (proxy_url, up) = switchable_proxy(target).await;
    // Every region reaches local-c through the proxy, which starts down.
    let mut pumps = Vec::new();
    for region in REGIONS {
        let mut config = config(&h, region);
        for peer in &mut config.peers {
            if peer.region.as_str() == "local-c" {
                peer.endpoint = Some(proxy_url.clone());
            }
        }
        config.peer_timeout = Duration::from_millis(600);
        let handler = Arc::new(quota_sync::local(&config, &h.endpoint));
        pumps.push(RegionPump::new(
            reader(&h, region),
            in_process(handler),
            PumpOptions {
                retry_backoff: Duration::from_millis(50),
                ..PumpOptions::default()
            },
        ));
    }
    let mut pump = Pump { regions: pumps };

    increment_in(&h, "local-a", &[(&month, Aggregation::Count, 6)]).await;
    increment_in(&h, "local-b", &[(&month, Aggregation::Count, 5)]).await;
    let mut partial = 0;
    for _ in 0..4 {
        let round = pump.round().await.unwrap();
        partial += round.partial_failures;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert!(
        partial >= 2,
        "local-a and local-b reported failures for local-c"
    );
    // local-a and local-b exchanged their items and both blocked the key.
    for region in ["local-a", "local-b"] {
        let held = values_in(&h, region, &month).await;
        assert_eq!(held.values().sum::<u64>(), 11, "{region}: {held:?}");
        assert_eq!(
            blocks_in(&h, region, &key).await.len(),
            1,
            "{region} blocked"
        );
    }
    assert!(values_in(&h, "local-c", &month).await.is_empty());
    assert!(blocks_in(&h, "local-c", &key).await.is_empty());

    // local-c is back: the pump's retries deliver the failed records again.
    up.store(true, Ordering::SeqCst);
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
    }
}
