//! Batch aggregation: many usage events become one increment per counter
//! (meter, identity, period), which is what makes tollgate cheap.

use std::collections::HashMap;

use crate::{Aggregation, CoreError, Identity, MeterName, Period, UnixMillis, Window};

/// A counter without its region: what plans limit and what is summed across regions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    pub meter: MeterName,
    pub identity: Identity,
    pub period: Period,
}

/// One counter of an identity: its period, aggregation and amount.
type Slot = (Period, Aggregation, u64);

/// Accumulates events into per-counter increments, in a deterministic order
/// (sorted by counter), so a batch is always cut into the same chunks.
///
/// Counters are kept in hash maps by meter and identity, which are cloned
/// only the first time they are seen, and sorted once, in
/// [`Aggregator::into_increments`]. The period of the last timestamp seen
/// per window is cached, since a batch's events mostly share their periods.
#[derive(Debug, Default, Clone)]
pub struct Aggregator {
    counters: HashMap<MeterName, HashMap<Identity, Vec<Slot>>>,
    len: usize,
    events: u64,
    /// Per window, a period and its end (exclusive), for timestamps inside it.
    recent: Vec<(Period, UnixMillis)>,
    /// The periods of the event being added (reused).
    scratch: Vec<Period>,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// The period of `window` containing `at`, from the cache when it holds it.
    fn period_of(&mut self, window: Window, at: UnixMillis) -> Result<Period, CoreError> {
        if let Some((period, end)) = self.recent.iter().find(|(p, _)| p.window == window) {
            if at >= period.start && at < *end {
                return Ok(*period);
            }
        }
        let period = window.period_of(at)?;
        let end = period.end();
        // Cache it only when its range is certain (not at chrono's limits).
        if end > period.start && window.period_of(end - 1).ok() == Some(period) {
            match self.recent.iter_mut().find(|(p, _)| p.window == window) {
                Some(slot) => *slot = (period, end),
                None => self.recent.push((period, end)),
            }
        }
        Ok(period)
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
        let mut periods = std::mem::take(&mut self.scratch);
        periods.clear();
        for window in windows {
            match self.period_of(*window, at) {
                Ok(period) => periods.push(period),
                Err(e) => {
                    self.scratch = periods;
                    return Err(e);
                }
            }
        }
        let by_identity = match self.counters.get_mut(meter) {
            Some(map) => map,
            None => self.counters.entry(meter.clone()).or_default(),
        };
        let slots = match by_identity.get_mut(identity) {
            Some(slots) => slots,
            None => by_identity
                .entry(identity.clone())
                .or_insert_with(|| Vec::with_capacity(windows.len())),
        };
        for period in &periods {
            match slots.iter_mut().find(|(p, _, _)| p == period) {
                Some((_, agg, amount)) => *amount = agg.combine(*amount, value),
                None => {
                    slots.push((*period, aggregation, aggregation.combine(0, value)));
                    self.len += 1;
                }
            }
        }
        self.scratch = periods;
        self.events += 1;
        Ok(())
    }

    /// The number of events added.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The number of distinct counters.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no event was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The increments, sorted by counter: `(counter, aggregation, amount)`.
    pub fn into_increments(self) -> Vec<(CounterKey, Aggregation, u64)> {
        let mut out = Vec::with_capacity(self.len);
        let mut meters: Vec<_> = self.counters.into_iter().collect();
        meters.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (meter, by_identity) in meters {
            let mut identities: Vec<_> = by_identity.into_iter().collect();
            identities.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (identity, mut slots) in identities {
                slots.sort_unstable_by_key(|s| s.0);
                let last = slots.len().saturating_sub(1);
                let mut identity = Some(identity);
                for (i, (period, aggregation, amount)) in slots.into_iter().enumerate() {
                    let identity = if i == last {
                        identity.take()
                    } else {
                        identity.clone()
                    };
                    if let Some(identity) = identity {
                        let meter = meter.clone();
                        out.push((
                            CounterKey {
                                meter,
                                identity,
                                period,
                            },
                            aggregation,
                            amount,
                        ));
                    }
                }
            }
        }
        out
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
        let b = Identity::parse_anonymous_ip("192.0.2.1", crate::Ipv6Prefix::DEFAULT).unwrap();
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

    #[test]
    fn matches_a_plain_sorted_map_across_periods_and_meters() {
        use std::collections::BTreeMap;
        let mut agg = Aggregator::new();
        let mut expected: BTreeMap<CounterKey, (Aggregation, u64)> = BTreeMap::new();
        let meters = [
            (MeterName::requests(), Aggregation::Count),
            (MeterName::new("tokens").unwrap(), Aggregation::Sum),
            (MeterName::new("peak").unwrap(), Aggregation::Max),
        ];
        let ids = [
            Identity::key("b").unwrap(),
            Identity::key("a").unwrap(),
            Identity::parse_anonymous_ip("192.0.2.1", crate::Ipv6Prefix::DEFAULT).unwrap(),
        ];
        let windows = Window::ALL;
        // Times jump back and forth across minutes, days and months.
        for i in 0u64..3000 {
            let at = 1_795_000_000_000 + ((i * 7_919_000_003) % 9_000_000_000) as i64;
            let (meter, aggregation) = &meters[(i % 3) as usize];
            let identity = &ids[(i % 5 % 3) as usize];
            let value = i % 17;
            agg.add(meter, *aggregation, identity, at, value, &windows)
                .unwrap();
            for w in windows {
                let key = CounterKey {
                    meter: meter.clone(),
                    identity: identity.clone(),
                    period: w.period_of(at).unwrap(),
                };
                let e = expected.entry(key).or_insert((*aggregation, 0));
                e.1 = aggregation.combine(e.1, value);
            }
        }
        assert_eq!(agg.len(), expected.len());
        let want: Vec<_> = expected.into_iter().map(|(k, (a, n))| (k, a, n)).collect();
        assert_eq!(agg.into_increments(), want);
    }
}
