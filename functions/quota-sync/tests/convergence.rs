//! Usage converges across three regions whatever order, duplication and
//! batching the stream records arrive in.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tollgate_core::{Aggregation, CounterKey, Identity, Window};
use tollgate_tests::Harness;

/// Delivers `records` to `handler` shuffled, each at least once and some
/// twice, in batches of random sizes; asserts no batch reports failures.
async fn deliver_shuffled(
    rng: &mut StdRng,
    handler: &quota_sync::QuotaSync,
    records: &[Value],
) -> usize {
    let mut delivery: Vec<Value> = records.to_vec();
    for r in records {
        if rng.random_bool(0.3) {
            delivery.push(r.clone());
        }
    }
    delivery.shuffle(rng);
    let mut sent = 0;
    while !delivery.is_empty() {
        let size = rng.random_range(1..=delivery.len().min(25));
        let batch: Vec<Value> = delivery.drain(..size).collect();
        let outcome = handler.handle(&event(&batch)).await.unwrap();
        assert!(
            outcome.response.batch_item_failures.is_empty(),
            "no peer is down: {:?}",
            outcome.stats
        );
        sent += batch.len();
    }
    sent
}

#[tokio::test]
async fn copies_converge_under_duplicated_reordered_delivery() {
    let h = Harness::with_regions("qs-converge", &REGIONS).await;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let handlers: Vec<_> = REGIONS.iter().map(|r| handler(&h, r)).collect();
    let mut readers: Vec<_> = REGIONS.iter().map(|r| reader(&h, r)).collect();

    let identities: Vec<Identity> = ["key:k_one", "key:k_two", "ip:203.0.113.9"]
        .iter()
        .map(|i| i.parse().unwrap())
        .collect();
    let mut counters: Vec<(CounterKey, Aggregation)> = Vec::new();
    for id in &identities {
        for window in [Window::Day, Window::Month] {
            counters.push((counter("requests", id, window), Aggregation::Count));
        }
        counters.push((counter("bytes", id, Window::Day), Aggregation::Sum));
    }
    // The true value of every counter in every region.
    let mut truth: BTreeMap<(usize, String), u64> = BTreeMap::new();

    for round in 0..6 {
        // A burst of transactions, each in a random region over 1-3 counters.
        for _ in 0..rng.random_range(5..15) {
            let region = REGIONS[rng.random_range(0..3)];
            let mut picked: Vec<usize> = (0..counters.len()).collect();
            picked.shuffle(&mut rng);
            picked.truncate(rng.random_range(1..=3));
            let amounts: Vec<(usize, u64)> = picked
                .iter()
                .map(|&c| (c, rng.random_range(1..1_000)))
                .collect();
            let batch: Vec<_> = amounts
                .iter()
                .map(|&(c, a)| (&counters[c].0, counters[c].1, a))
                .collect();
            increment_in(&h, region, &batch).await;
            for (c, a) in amounts {
                *truth.entry((c, region.to_owned())).or_default() += a;
            }
        }
        // Deliver part of what each stream holds now, in a random order of regions.
        let mut order: Vec<usize> = (0..3).collect();
        order.shuffle(&mut rng);
        for i in order {
            let records = read_all(&mut readers[i]).await;
            if round % 2 == 0 || rng.random_bool(0.5) {
                deliver_shuffled(&mut rng, &handlers[i], &records).await;
            } else {
                // Held back: delivered (late, out of order) next round.
                let later = records;
                let more = read_all(&mut readers[i]).await;
                let all: Vec<Value> = more.into_iter().chain(later).collect();
                deliver_shuffled(&mut rng, &handlers[i], &all).await;
            }
        }
    }
    // Drain: replicas written to peers produce records there too.
    let mut quiet_rounds = 0;
    for _ in 0..20 {
        let mut any = false;
        for i in 0..3 {
            let records = read_all(&mut readers[i]).await;
            any |= !records.is_empty();
            deliver_shuffled(&mut rng, &handlers[i], &records).await;
        }
        if !any {
            quiet_rounds += 1;
            if quiet_rounds == 2 {
                break;
            }
        }
    }
    assert_eq!(quiet_rounds, 2, "the streams went quiet");

    for (c, (counter, aggregation)) in counters.iter().enumerate() {
        let expected: BTreeMap<String, u64> = REGIONS
            .iter()
            .filter_map(|r| truth.get(&(c, r.to_string())).map(|v| (r.to_string(), *v)))
            .collect();
        let global: u64 = expected.values().sum();
        for region in REGIONS {
            let held = values_in(&h, region, counter).await;
            assert_eq!(held, expected, "{counter:?} as {region} holds it");
            let store_global = usage(&h, region)
                .global(counter, *aggregation)
                .await
                .unwrap();
            assert_eq!(store_global, global, "{counter:?} global in {region}");
        }
    }
}
