//! Where the time comes from: the wall clock in Lambda, and a clock that
//! only moves when told to for tests and simulations (the cost harness
//! runs an hour of traffic in a minute, and caches must expire on its time).

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::UnixMillis;

/// Where the time comes from (injectable, so tests can move it).
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> UnixMillis;

    /// Whether less than `ttl` has passed since `at` (a cache entry's age).
    fn is_within(&self, at: UnixMillis, ttl: Duration) -> bool {
        // A time ahead of the clock counts as just now.
        let age = self.now_millis().saturating_sub(at).max(0);
        u128::try_from(age).is_ok_and(|age| age < ttl.as_millis())
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> UnixMillis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as UnixMillis)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock that reads `at`.
    pub fn at(at: UnixMillis) -> Self {
        ManualClock(Arc::new(AtomicI64::new(at)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, at: UnixMillis) {
        self.0.store(at, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> UnixMillis {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_on_its_own_time() {
        let clock = ManualClock::at(1_000);
        let ttl = Duration::from_secs(60);
        assert!(clock.is_within(1_000, ttl));
        clock.advance(Duration::from_millis(59_999));
        assert!(clock.is_within(1_000, ttl));
        clock.advance(Duration::from_millis(1));
        assert!(!clock.is_within(1_000, ttl));
        // A time ahead of the clock (another container's) is fresh, not an overflow.
        assert!(clock.is_within(i64::MAX, ttl));
    }
}
