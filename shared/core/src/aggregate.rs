//! Batch aggregation: many usage events become one increment per counter
//! (meter, identity, period), which is what makes tollgate cheap.

use std::collections::BTreeMap;

use crate::{Aggregation, CoreError, Identity, MeterName, Period, UnixMillis, Window};

/// A counter without its region: what plans limit and what is summed across regions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    pub meter: MeterName,
    pub identity: Identity,
    pub period: Period,
}

/// Accumulates events into per-counter increments, in a deterministic order
/// (sorted by counter), so a batch is always cut into the same chunks.
#[derive(Debug, Default, Clone)]
pub struct Aggregator {
    counters: BTreeMap<CounterKey, (Aggregation, u64)>,
    events: u64,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event of `value` at `at` to the counters of each window in `windows`.
    pub fn add(
        &mut self,
        meter: &MeterName,
        aggregation: Aggregation,
        identity: &Identity,
        at: UnixMillis,
        value: u64,
        windows: &[Window],
    ) -> Result<(), CoreError> {
        // Compute every period first, so a bad timestamp changes nothing.
        let periods = windows
            .iter()
            .map(|w| w.period_of(at))
            .collect::<Result<Vec<_>, _>>()?;
        for period in periods {
            let key = CounterKey {
                meter: meter.clone(),
                identity: identity.clone(),
                period,
            };
            let entry = self.counters.entry(key).or_insert((aggregation, 0));
            entry.1 = aggregation.combine(entry.1, value);
        }
        self.events += 1;
        Ok(())
    }

    /// The number of events added.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The number of distinct counters.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// Whether no event was added.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// The increments, sorted by counter: `(counter, aggregation, amount)`.
    pub fn into_increments(self) -> Vec<(CounterKey, Aggregation, u64)> {
        self.counters
            .into_iter()
            .map(|(k, (agg, n))| (k, agg, n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_events_per_counter_and_window() {
        let mut agg = Aggregator::new();
        let req = MeterName::requests();
        let tokens = MeterName::new("tokens").unwrap();
        let a = Identity::key("a").unwrap();
        let b = Identity::parse_ip("192.0.2.1").unwrap();
        let at = 1_795_000_000_000;
        let both = [Window::Day, Window::Month];
        for _ in 0..1000 {
            agg.add(&req, Aggregation::Count, &a, at, 1, &both).unwrap();
        }
        agg.add(&req, Aggregation::Count, &b, at, 1, &both).unwrap();
        agg.add(&tokens, Aggregation::Sum, &a, at, 250, &[Window::Month])
            .unwrap();
        agg.add(&tokens, Aggregation::Sum, &a, at, 50, &[Window::Month])
            .unwrap();
        assert_eq!(agg.events(), 1003);
        let incs = agg.into_increments();
        assert_eq!(incs.len(), 5);
        let find = |m: &MeterName, id: &Identity, w: Window| {
            incs.iter()
                .find(|(k, _, _)| &k.meter == m && &k.identity == id && k.period.window == w)
                .map(|x| x.2)
        };
        assert_eq!(find(&req, &a, Window::Day), Some(1000));
        assert_eq!(find(&req, &a, Window::Month), Some(1000));
        assert_eq!(find(&req, &b, Window::Day), Some(1));
        assert_eq!(find(&tokens, &a, Window::Month), Some(300));
        let mut sorted = incs.clone();
        sorted.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(sorted, incs, "increments come out in counter order");
    }

    #[test]
    fn a_bad_timestamp_changes_nothing() {
        let mut agg = Aggregator::new();
        let err = agg.add(
            &MeterName::requests(),
            Aggregation::Count,
            &Identity::key("a").unwrap(),
            -5,
            1,
            &[Window::Day],
        );
        assert!(err.is_err());
        assert!(agg.is_empty());
        assert_eq!(agg.events(), 0);
    }
}
