//! When the invocation will be killed: the end of an execution's lease.

use std::time::{SystemTime, UNIX_EPOCH};

use lambda_runtime::Context;

/// When the invocation will be killed: epoch milliseconds, or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline(Option<u64>);

impl Deadline {
    /// No known deadline: the lease lasts
    /// [`in_progress_without_deadline`](crate::IdempotencyConfig::in_progress_without_deadline).
    pub fn none() -> Self {
        Deadline(None)
    }

    /// A deadline in epoch milliseconds (0 means none).
    pub fn at_ms(epoch_ms: u64) -> Self {
        Deadline((epoch_ms > 0).then_some(epoch_ms))
    }

    /// The deadline in epoch milliseconds, if known.
    pub fn epoch_ms(self) -> Option<u64> {
        self.0
    }
}

impl From<u64> for Deadline {
    /// `Context::deadline` as the field holds it: epoch milliseconds.
    fn from(ms: u64) -> Self {
        Deadline::at_ms(ms)
    }
}

impl From<Option<u64>> for Deadline {
    fn from(ms: Option<u64>) -> Self {
        ms.map_or(Deadline::none(), Deadline::at_ms)
    }
}

impl From<SystemTime> for Deadline {
    /// `Context::deadline()` as the method returns it.
    fn from(t: SystemTime) -> Self {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Deadline::at_ms(ms)
    }
}

impl From<&Context> for Deadline {
    fn from(ctx: &Context) -> Self {
        Deadline::at_ms(ctx.deadline)
    }
}
