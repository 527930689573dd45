//! Hard limits reached across regions become blocks in every region; soft
//! plans never do; plan changes are applied by recomputing blocks.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use tollgate_app::recompute::{recompute, Scope};
use tollgate_core::{Aggregation, Identity, OveragePolicy, Window};
use tollgate_tests::pump::PumpOptions;
use tollgate_tests::Harness;

/// The pump's polling interval in these tests.
const POLL: Duration = Duration::from_millis(100);

#[tokio::test]
async fn a_hard_monthly_limit_crossed_in_two_regions_blocks_all_three() {
    let h = Harness::with_regions("qs-block", &REGIONS).await;
    put_plan_everywhere(
        &h,
        &plan(
            "starter",
            "requests",
            Window::Month,
            10,
            OveragePolicy::Hard,
        ),
    )
    .await;
    put_plan_everywhere(
        &h,
        &plan("payg", "requests", Window::Month, 10, OveragePolicy::Soft),
    )
    .await;
    let hard_key = key_on_plan(&h, "starter").await;
    let soft_key = key_on_plan(&h, "payg").await;
    let (mut pump, _) =
        local_pump(&h.endpoint, &REGIONS, &h.tables, PumpOptions::default()).unwrap();

    // Under the limit in each region alone, and in total: no block.
    for key in [&hard_key, &soft_key] {
        let month = counter("requests", key, Window::Month);
        increment_in(&h, "local-a", &[(&month, Aggregation::Count, 6)]).await;
        increment_in(&h, "local-b", &[(&month, Aggregation::Count, 3)]).await;
    }
    let (_, idle) = pump.run_until_idle(POLL, 50).await.unwrap();
    assert!(idle);
    for region in REGIONS {
        assert!(
            blocks_in(&h, region, &hard_key).await.is_empty(),
            "{region}: 9 < 10"
        );
    }

    // local-b's next increment crosses the limit of 10 (6 + 4).
    let crossed = Instant::now();
    for key in [&hard_key, &soft_key] {
        let month = counter("requests", key, Window::Month);
        increment_in(&h, "local-b", &[(&month, Aggregation::Count, 1)]).await;
    }
    let mut lag = None;
    for _ in 0..50 {
        pump.round().await.unwrap();
        let mut everywhere = true;
        for region in REGIONS {
            everywhere &= !blocks_in(&h, region, &hard_key).await.is_empty();
        }
        if everywhere {
            lag = Some(crossed.elapsed());
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let lag = lag.expect("the block reached every region");
    eprintln!("enforcement lag (poll interval {POLL:?}): {lag:?}");
    pump.run_until_idle(POLL, 50).await.unwrap();

    let month = counter("requests", &hard_key, Window::Month);
    for region in REGIONS {
        let blocks = blocks_in(&h, region, &hard_key).await;
        assert_eq!(blocks.len(), 1, "{region}");
        assert_eq!(blocks[0].meter.as_str(), "requests");
        assert_eq!(blocks[0].period, month.period);
        assert_eq!(blocks[0].limit, 10);
        assert!(blocks[0].used >= 10, "{region}: {:?}", blocks[0]);
        // The same global sum everywhere.
        assert_eq!(
            values_in(&h, region, &month).await.values().sum::<u64>(),
            10
        );
        // The soft plan's key is over its limit too, and never blocked.
        assert!(
            blocks_in(&h, region, &soft_key).await.is_empty(),
            "{region}: soft"
        );
        // No hard limit: with replication `hot` its items are never
        // copied; each region's table holds its own item only.
        let soft_month = counter("requests", &soft_key, Window::Month);
        let own: Vec<String> = values_in(&h, region, &soft_month)
            .await
            .into_keys()
            .collect();
        assert!(
            own.iter().all(|r| r == region),
            "{region} holds copies of a counter no limit needs: {own:?}"
        );
    }
    let soft_month = counter("requests", &soft_key, Window::Month);
    let mut total = 0;
    for region in REGIONS {
        total += values_in(&h, region, &soft_month)
            .await
            .values()
            .sum::<u64>();
    }
    assert_eq!(total, 10, "each region's own item, summed over the tables");
}

/// Replication `hot`: counters that start cold in every region are not
/// copied; the first region to reach limit / (2R) copies its item, the
/// others mark theirs shared and copy them back, and the limit, reached
/// later in a third region, blocks the key everywhere.
#[tokio::test]
async fn cold_counters_become_shared_before_the_limit_and_block_everywhere() {
    let h = Harness::with_regions("qs-hot", &REGIONS).await;
    let (key, month) = hard_limited_counter(&h, "pro", Window::Month, 60).await;
    let (mut pump, _) =
        local_pump(&h.endpoint, &REGIONS, &h.tables, PumpOptions::default()).unwrap();

    // 9 in each region: each below 60 / 6 = 10, nothing copied.
    for region in REGIONS {
        increment_in(&h, region, &[(&month, Aggregation::Count, 9)]).await;
    }
    pump.run_until_idle(POLL, 50).await.unwrap();
    for region in REGIONS {
        let held: Vec<String> = values_in(&h, region, &month).await.into_keys().collect();
        assert_eq!(
            held,
            [region.to_string()],
            "{region} holds only its own item"
        );
    }

    // local-a reaches 10: hot. Every region ends up with every item.
    increment_in(&h, "local-a", &[(&month, Aggregation::Count, 1)]).await;
    pump.run_until_idle(POLL, 50).await.unwrap();
    for region in REGIONS {
        let values = values_in(&h, region, &month).await;
        assert_eq!(values.len(), 3, "{region}: {values:?}");
        assert_eq!(values.values().sum::<u64>(), 28, "{region}");
        assert!(blocks_in(&h, region, &key).await.is_empty());
    }

    // local-c brings the sum to the limit: blocked in all three regions.
    increment_in(&h, "local-c", &[(&month, Aggregation::Count, 32)]).await;
    pump.run_until_idle(POLL, 50).await.unwrap();
    for region in REGIONS {
        assert_eq!(
            values_in(&h, region, &month).await.values().sum::<u64>(),
            60,
            "{region}"
        );
        let blocks = blocks_in(&h, region, &key).await;
        assert_eq!(blocks.len(), 1, "{region}");
        assert_eq!((blocks[0].limit, blocks[0].used), (60, 60), "{region}");
    }
}

#[tokio::test]
async fn anonymous_identities_use_the_anonymous_plan_and_unknown_keys_none() {
    let h = Harness::with_regions("qs-anon", &REGIONS).await;
    put_plan_everywhere(
        &h,
        &plan("anonymous", "requests", Window::Day, 3, OveragePolicy::Hard),
    )
    .await;
    let ip: Identity = "ip:192.0.2.77".parse().unwrap();
    let stranger: Identity = "key:k_nobody".parse().unwrap();
    let (mut pump, _) =
        local_pump(&h.endpoint, &REGIONS, &h.tables, PumpOptions::default()).unwrap();
    for id in [&ip, &stranger] {
        let day = counter("requests", id, Window::Day);
        increment_in(&h, "local-c", &[(&day, Aggregation::Count, 2)]).await;
        increment_in(&h, "local-a", &[(&day, Aggregation::Count, 2)]).await;
    }
    let (total, idle) = pump.run_until_idle(POLL, 50).await.unwrap();
    assert!(idle);
    assert_eq!(total.partial_failures + total.failed_invocations, 0);
    for region in REGIONS {
        let blocks = blocks_in(&h, region, &ip).await;
        assert_eq!(blocks.len(), 1, "{region}");
        assert_eq!((blocks[0].limit, blocks[0].period.window), (3, Window::Day));
        assert!(
            blocks_in(&h, region, &stranger).await.is_empty(),
            "no plan, no block"
        );
    }
}

/// Two IPs whose counters share a bucket item: each region's one write
/// carries both, the copies keep them apart, and only the one over the
/// limit is blocked.
#[tokio::test]
async fn anonymous_identities_in_one_bucket_item_are_counted_and_blocked_apart() {
    let h = Harness::with_regions("qs-bucket", &REGIONS).await;
    put_plan_everywhere(
        &h,
        &plan("anonymous", "requests", Window::Day, 6, OveragePolicy::Hard),
    )
    .await;
    let (heavy, light) = bucket_neighbours(Window::Day);
    assert_eq!(heavy.pk(), light.pk(), "one bucket item");
    let (mut pump, _) =
        local_pump(&h.endpoint, &REGIONS, &h.tables, PumpOptions::default()).unwrap();
    increment_in(
        &h,
        "local-a",
        &[
            (&heavy, Aggregation::Count, 4),
            (&light, Aggregation::Count, 1),
        ],
    )
    .await;
    increment_in(&h, "local-b", &[(&heavy, Aggregation::Count, 2)]).await;
    increment_in(&h, "local-c", &[(&light, Aggregation::Count, 1)]).await;
    let (total, idle) = pump.run_until_idle(POLL, 50).await.unwrap();
    assert!(idle);
    assert_eq!(total.partial_failures + total.failed_invocations, 0);
    for region in REGIONS {
        let heavy_values = values_in(&h, region, &heavy).await;
        let light_values = values_in(&h, region, &light).await;
        assert_eq!(
            heavy_values.values().sum::<u64>(),
            6,
            "{region}: {heavy_values:?}"
        );
        assert_eq!(
            light_values.values().sum::<u64>(),
            2,
            "{region}: {light_values:?}"
        );
        let blocks = blocks_in(&h, region, &heavy.identity).await;
        assert_eq!(blocks.len(), 1, "{region}");
        assert_eq!((blocks[0].limit, blocks[0].used), (6, 6), "{region}");
        assert!(
            blocks_in(&h, region, &light.identity).await.is_empty(),
            "{region}: its neighbour in the bucket is not blocked"
        );
    }
}

#[tokio::test]
async fn recomputing_after_a_plan_change_clears_and_writes_blocks() {
    let h = Harness::with_regions("qs-recompute", &REGIONS).await;
    let (key, month) = hard_limited_counter(&h, "basic", Window::Month, 5).await;
    let (mut pump, _) =
        local_pump(&h.endpoint, &REGIONS, &h.tables, PumpOptions::default()).unwrap();
    increment_in(&h, "local-a", &[(&month, Aggregation::Count, 4)]).await;
    increment_in(&h, "local-b", &[(&month, Aggregation::Count, 3)]).await;
    pump.run_until_idle(POLL, 50).await.unwrap();
    for region in REGIONS {
        assert_eq!(blocks_in(&h, region, &key).await.len(), 1, "{region}");
    }

    // An upgrade: 7 of 100 is no reason for a block.
    put_plan_everywhere(
        &h,
        &plan("basic", "requests", Window::Month, 100, OveragePolicy::Hard),
    )
    .await;
    let dry = recompute(
        &keys(&h, "local-a"),
        &usage(&h, "local-a"),
        "anonymous",
        &Scope {
            identity: None,
            dry_run: true,
        },
        now(),
    )
    .await
    .unwrap();
    assert_eq!(dry.removed.len(), 1);
    assert_eq!(
        blocks_in(&h, "local-a", &key).await.len(),
        1,
        "a dry run changes nothing"
    );
    for region in REGIONS {
        let report = recompute(
            &keys(&h, region),
            &usage(&h, region),
            "anonymous",
            &Scope::default(),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(report.removed.len(), 1, "{region}: {report:?}");
        assert_eq!(report.removed[0].identity, key);
        assert!(report.written.is_empty() && report.kept.is_empty());
        assert!(blocks_in(&h, region, &key).await.is_empty(), "{region}");
    }

    // A downgrade to 6: the block is due again, written by the recomputation
    // (for one identity), with the new limit.
    put_plan_everywhere(
        &h,
        &plan("basic", "requests", Window::Month, 6, OveragePolicy::Hard),
    )
    .await;
    let scope = Scope {
        identity: Some(key.clone()),
        dry_run: false,
    };
    let report = recompute(
        &keys(&h, "local-c"),
        &usage(&h, "local-c"),
        "anonymous",
        &scope,
        now(),
    )
    .await
    .unwrap();
    assert_eq!(report.written.len(), 1, "{report:?}");
    let blocks = blocks_in(&h, "local-c", &key).await;
    assert_eq!((blocks[0].limit, blocks[0].used), (6, 7));
    // Recomputing again keeps it.
    let again = recompute(
        &keys(&h, "local-c"),
        &usage(&h, "local-c"),
        "anonymous",
        &scope,
        now(),
    )
    .await
    .unwrap();
    assert_eq!(
        (again.kept.len(), again.written.len(), again.removed.len()),
        (1, 0, 0)
    );
    // A soft plan: the block goes.
    put_plan_everywhere(
        &h,
        &plan("basic", "requests", Window::Month, 6, OveragePolicy::Soft),
    )
    .await;
    let soft = recompute(
        &keys(&h, "local-c"),
        &usage(&h, "local-c"),
        "anonymous",
        &Scope::default(),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(soft.removed.len(), 1);
    assert!(blocks_in(&h, "local-c", &key).await.is_empty());
}
