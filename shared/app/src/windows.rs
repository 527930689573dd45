//! The windows the counting functions (log-processor, ingest) count each
//! meter in: the configured windows plus every window a plan limits
//! ([`tollgate_core::CountedWindows`]), the plans read through a
//! [`PlanCache`] (one Query per cache period and container).
//!
//! Counting never waits on the plans' good health: when they cannot be
//! read, the windows of the plans last read are counted (the configured
//! windows when none was read yet), a warning is logged for each failed
//! attempt, and the next call tries again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tollgate_core::clock::Clock;
use tollgate_core::{CountedWindows, Plan, Window};
use tollgate_store::{KeysStore, PlanSource};

use crate::plans::PlanCache;

/// The variable holding how long plans are cached, in seconds.
pub const PLAN_CACHE_VAR: &str = "TOLLGATE_PLAN_CACHE_SECONDS";

/// How long plans are cached by default ([`PLAN_CACHE_VAR`]).
pub const DEFAULT_PLAN_CACHE: Duration = Duration::from_secs(60);

/// The windows to count, as the configuration and the plans say, cached
/// with the plans.
#[derive(Debug)]
pub struct PlanWindows<K = KeysStore> {
    plans: PlanCache<K>,
    configured: Arc<CountedWindows>,
    /// The plans the windows were last computed from, and those windows.
    last: Mutex<Option<Last>>,
}

/// The plans last read and the windows they call for.
type Last = (Arc<HashMap<String, Plan>>, Arc<CountedWindows>);

impl<K: PlanSource> PlanWindows<K> {
    /// Windows over the plans of `keys`, cached for `ttl`: `named` and
    /// `anonymous` are the configured windows of API keys and of anonymous
    /// identities, who are on the plan `anonymous_plan`.
    pub fn new(
        keys: K,
        ttl: Duration,
        named: &[Window],
        anonymous: &[Window],
        anonymous_plan: impl Into<String>,
    ) -> Self {
        PlanWindows {
            plans: PlanCache::new(keys, ttl, anonymous_plan),
            configured: Arc::new(CountedWindows::configured(named, anonymous)),
            last: Mutex::new(None),
        }
    }

    /// The same, on `clock`'s time.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.plans = self.plans.with_clock(clock);
        self
    }

    /// The configured windows alone (what is counted before any plan is read).
    pub fn configured(&self) -> &Arc<CountedWindows> {
        &self.configured
    }

    fn last(&self) -> MutexGuard<'_, Option<Last>> {
        // Replaced whole, never left half-written: keep using it after a panic.
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The windows to count now. Never an error: when the plans cannot be
    /// read, the windows of the plans last read (or the configured ones)
    /// and a warning, logged once per attempt.
    pub async fn current(&self) -> Arc<CountedWindows> {
        match self.plans.plans().await {
            Ok(plans) => {
                let mut last = self.last();
                if let Some((known, windows)) = last.as_ref() {
                    if Arc::ptr_eq(known, &plans) {
                        return windows.clone();
                    }
                }
                let windows = Arc::new(
                    (*self.configured)
                        .clone()
                        .with_plans(plans.values(), self.plans.anonymous_plan()),
                );
                *last = Some((plans, windows.clone()));
                windows
            }
            Err(e) => {
                let windows = self.last().as_ref().map(|(_, w)| w.clone());
                let fallback = if windows.is_some() {
                    "the plans last read"
                } else {
                    "the configured windows"
                };
                tracing::warn!(
                    error = %e,
                    fallback,
                    "cannot read the plans: counting the windows of the fallback; the next call tries again"
                );
                windows.unwrap_or_else(|| self.configured.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tollgate_core::clock::ManualClock;
    use tollgate_core::{FailurePolicy, Limit, MeterName, OveragePolicy};
    use tollgate_store::memory::{Failing, MemoryKeys};

    fn plan(name: &str, meter: &str, window: Window) -> Plan {
        Plan {
            name: name.into(),
            limits: vec![Limit {
                meter: MeterName::new(meter).unwrap(),
                window,
                limit: 100,
            }],
            overage: OveragePolicy::Hard,
            failure: FailurePolicy::Closed,
        }
    }

    #[tokio::test]
    async fn follows_the_plans_and_survives_a_failed_read() {
        use Window::{Day, Hour, Minute, Month};
        let requests = MeterName::requests();
        let keys = MemoryKeys::new();
        keys.fail(Failing::Plans);
        let clock = ManualClock::at(1_795_000_000_000);
        let ttl = Duration::from_secs(60);
        let windows = PlanWindows::new(keys, ttl, &[Day, Month], &[Day], "anonymous")
            .with_clock(Arc::new(clock.clone()));
        // No plan read yet: the configured windows, every call tries again.
        for _ in 0..2 {
            let now = windows.current().await;
            assert_eq!(now.of(&requests, false), [Day, Month]);
            assert_eq!(now.of(&requests, true), [Day]);
        }
        assert_eq!(windows.plans.keys().plan_loads(), 2);

        windows.plans.keys().fail(Failing::Nothing);
        windows.plans.keys().put_plan(plan("pro", "requests", Hour));
        windows
            .plans
            .keys()
            .put_plan(plan("anonymous", "requests", Minute));
        let now = windows.current().await;
        assert_eq!(now.of(&requests, false), [Minute, Hour, Day, Month]);
        assert_eq!(now.of(&requests, true), [Minute, Day]);
        // Within the cache period: the same windows, no read.
        assert!(Arc::ptr_eq(&now, &windows.current().await));
        assert_eq!(windows.plans.keys().plan_loads(), 3);

        // A failed reload keeps the windows of the plans last read.
        windows.plans.keys().fail(Failing::Plans);
        clock.advance(ttl + Duration::from_millis(1));
        let now = windows.current().await;
        assert_eq!(now.of(&requests, false), [Minute, Hour, Day, Month]);
        assert_eq!(windows.plans.keys().plan_loads(), 4);
    }
}
