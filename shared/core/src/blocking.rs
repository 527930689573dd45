//! Turning a counter's global value into a block: the pure rules, shared
//! by quota-sync's handler (which reads the values, one Query per changed
//! item) and `tollgate_app::recompute` (after plans change).

use std::collections::BTreeMap;

use crate::{Aggregation, Block, CounterKey, Plan, Region};

/// The hard limit `plan` sets for a counter's meter and window, if any.
/// A soft plan has none: it is never blocked.
pub fn hard_limit(plan: &Plan, counter: &CounterKey) -> Option<u64> {
    if !plan.is_hard() {
        return None;
    }
    plan.limit_for(&counter.meter, counter.period.window)
}

/// A counter's global value from its region values: the sum, or the largest for `max` meters.
pub fn global_value(regions: &BTreeMap<Region, u64>, aggregation: Aggregation) -> u64 {
    match aggregation {
        Aggregation::Max => regions.values().copied().max().unwrap_or(0),
        Aggregation::Count | Aggregation::Sum => {
            regions.values().fold(0u64, |a, v| a.saturating_add(*v))
        }
    }
}

/// The block a counter at global value `used` calls for under `plan`:
/// one when the plan's hard limit for it is reached.
pub fn block_for(plan: &Plan, counter: &CounterKey, used: u64) -> Option<Block> {
    let limit = hard_limit(plan, counter)?;
    (used >= limit).then(|| Block {
        meter: counter.meter.clone(),
        period: counter.period,
        limit,
        used,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Limit, MeterName, OveragePolicy, Window};

    fn plan(overage: OveragePolicy) -> Plan {
        Plan {
            name: "p".into(),
            limits: vec![Limit {
                meter: MeterName::requests(),
                window: Window::Month,
                limit: 10,
            }],
            overage,
            failure: Default::default(),
        }
    }

    fn counter(window: Window) -> CounterKey {
        CounterKey {
            meter: MeterName::requests(),
            identity: "key:k".parse().unwrap(),
            period: window.period_of(1_795_000_000_000).unwrap(),
        }
    }

    #[test]
    fn blocks_at_the_hard_limit_only() {
        let hard = plan(OveragePolicy::Hard);
        assert_eq!(block_for(&hard, &counter(Window::Month), 9), None);
        let b = block_for(&hard, &counter(Window::Month), 10).unwrap();
        assert_eq!((b.limit, b.used), (10, 10));
        assert_eq!(b.period, counter(Window::Month).period);
        // No limit for the window, or a soft plan: never a block.
        assert_eq!(block_for(&hard, &counter(Window::Day), 1_000), None);
        assert_eq!(
            block_for(&plan(OveragePolicy::Soft), &counter(Window::Month), 1_000),
            None
        );
    }

    #[test]
    fn sums_or_takes_the_largest() {
        let r = |n: &str| Region::new(n).unwrap();
        let regions = BTreeMap::from([(r("a"), 3), (r("b"), 5), (r("c"), u64::MAX)]);
        assert_eq!(global_value(&regions, Aggregation::Count), u64::MAX);
        assert_eq!(global_value(&regions, Aggregation::Max), u64::MAX);
        let small = BTreeMap::from([(r("a"), 3), (r("b"), 5)]);
        assert_eq!(global_value(&small, Aggregation::Sum), 8);
        assert_eq!(global_value(&small, Aggregation::Max), 5);
        assert_eq!(global_value(&BTreeMap::new(), Aggregation::Count), 0);
    }
}
