//! Jitter for the backoff between retries (waiting for a lease, retrying a
//! conflicted transaction), so that racing callers spread out.

use std::time::Duration;

/// `d` scaled by a random factor in [0.5, 1.5).
pub(crate) fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + rand::random::<f64>())
}
