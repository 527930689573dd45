//! Values that cannot break a counter: the ceilings ingest and the
//! log-processor hold every value to, and how a counter too large for a
//! `u64` reads.
//!
//! - One event's value is at most [`MAX_EVENT_VALUE`] (9e15, below 2^53 so
//!   it is exact as a JSON number), else the event is rejected.
//! - One request adds at most [`MAX_REQUEST_ADD`] to one identity's meter
//!   ([`RequestTotals`]): the events past it are rejected, so no single
//!   request can carry a counter past `u64::MAX` (1,000 events of 9e15
//!   would add 9e18, half of it).
//! - A stored counter past `u64::MAX` (DynamoDB numbers hold 38 digits, so
//!   the item itself never breaks) reads as `u64::MAX` ([`read_counter`]),
//!   which is past every limit; every sum over regions and parts saturates.

use std::collections::HashMap;

use crate::{CoreError, Identity, MeterName};

/// The largest value of one meter event or application line: 9e15.
pub const MAX_EVENT_VALUE: u64 = 9_000_000_000_000_000;

/// The most one request (or one application line batch) adds to one
/// identity's meter, over all its periods: 9e15, so reaching `u64::MAX`
/// takes more than 2,000 requests at the ceiling.
pub const MAX_REQUEST_ADD: u64 = 9_000_000_000_000_000;

/// Checks a whole value against [`MAX_EVENT_VALUE`].
pub fn check_event_value(value: u64) -> Result<u64, CoreError> {
    if value > MAX_EVENT_VALUE {
        return Err(CoreError::Value(format!(
            "value {value} is too large (at most {MAX_EVENT_VALUE}, 9e15)"
        )));
    }
    Ok(value)
}

/// What one request has added so far to each identity's `sum` meters, to
/// hold it to [`MAX_REQUEST_ADD`] per counter.
#[derive(Debug, Clone, Default)]
pub struct RequestTotals {
    sums: HashMap<(MeterName, Identity), u64>,
}

impl RequestTotals {
    /// Nothing added yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits `value` for `meter` and `identity` if the request's total for
    /// them stays within [`MAX_REQUEST_ADD`]; a refused value adds nothing,
    /// so later, smaller events of the counter may still fit.
    pub fn admit(
        &mut self,
        meter: &MeterName,
        identity: &Identity,
        value: u64,
    ) -> Result<(), CoreError> {
        let total = self
            .sums
            .entry((meter.clone(), identity.clone()))
            .or_insert(0);
        match total.checked_add(value) {
            Some(sum) if sum <= MAX_REQUEST_ADD => {
                *total = sum;
                Ok(())
            }
            _ => Err(CoreError::Value(format!(
                "this request's values of meter {meter} for {identity} add up to more than \
                 {MAX_REQUEST_ADD} (9e15), the most one request adds to one counter"
            ))),
        }
    }
}

/// A stored counter's decimal text as a `u64`: a whole, non-negative
/// number; one past `u64::MAX` reads as `u64::MAX` (at its ceiling, so it
/// still blocks) instead of making its item unreadable. Anything else
/// (a sign, a fraction, an exponent) is `None`: not a counter.
pub fn read_counter(text: &str) -> Option<u64> {
    if let Ok(v) = text.parse::<u64>() {
        return Some(v);
    }
    let digits = text.trim_start_matches('+');
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn meter(name: &str) -> MeterName {
        MeterName::new(name).unwrap()
    }

    fn who(identity: &str) -> Identity {
        identity.parse().unwrap()
    }

    #[test]
    fn an_event_value_is_at_most_9e15() {
        assert_eq!(check_event_value(MAX_EVENT_VALUE), Ok(MAX_EVENT_VALUE));
        assert_eq!(check_event_value(0), Ok(0));
        let err = check_event_value(MAX_EVENT_VALUE + 1).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }

    #[test]
    fn a_request_adds_at_most_9e15_to_one_counter() {
        let mut totals = RequestTotals::new();
        let (tokens, a) = (meter("tokens"), who("key:a"));
        assert!(totals.admit(&tokens, &a, MAX_REQUEST_ADD - 1).is_ok());
        let err = totals.admit(&tokens, &a, 2).unwrap_err();
        assert!(err.to_string().contains("tokens") && err.to_string().contains("key:a"));
        // The refused value added nothing: 1 more still fits, then nothing.
        assert!(totals.admit(&tokens, &a, 1).is_ok());
        assert!(totals.admit(&tokens, &a, 1).is_err());
        // Other counters have their own room.
        assert!(totals
            .admit(&tokens, &who("key:b"), MAX_REQUEST_ADD)
            .is_ok());
        assert!(totals.admit(&meter("gpu_ms"), &a, MAX_REQUEST_ADD).is_ok());
        // A sum that would overflow is refused, not wrapped.
        assert!(totals.admit(&meter("gpu_ms"), &a, u64::MAX).is_err());
    }

    #[test]
    fn counters_past_u64_read_at_the_ceiling() {
        assert_eq!(read_counter("0"), Some(0));
        assert_eq!(read_counter("18446744073709551615"), Some(u64::MAX));
        assert_eq!(read_counter("18446744073709551616"), Some(u64::MAX));
        assert_eq!(read_counter(&"9".repeat(38)), Some(u64::MAX));
        for bad in ["", "-1", "1.5", "1e3", "+", "x"] {
            assert_eq!(read_counter(bad), None, "{bad:?}");
        }
    }

    proptest! {
        /// Whatever a request holds, what it admits for one counter never
        /// passes the ceiling, and every value that fits is admitted.
        #[test]
        fn admitted_totals_stay_within_the_ceiling(values in proptest::collection::vec(0..=MAX_EVENT_VALUE, 0..50)) {
            let mut totals = RequestTotals::new();
            let (tokens, a) = (meter("tokens"), who("key:a"));
            let mut sum = 0u64;
            for v in values {
                let fits = sum + v <= MAX_REQUEST_ADD;
                prop_assert_eq!(totals.admit(&tokens, &a, v).is_ok(), fits);
                if fits {
                    sum += v;
                }
            }
            prop_assert!(sum <= MAX_REQUEST_ADD);
        }
    }
}
