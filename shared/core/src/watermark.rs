//! Exactly-once counting from an ordered source (a Kinesis shard) without a
//! dedupe record: each counter item remembers, per shard, the position of
//! the last record it has counted (its watermark), and an increment is
//! applied only past it.
//!
//! A batch adds to a counter the amounts of several records. It is applied
//! with one conditional update "if the watermark is below the batch's first
//! record, add the total and move the watermark to its last record". A
//! redelivered batch fails the condition and changes nothing. A retry whose
//! records only partly overlap what was counted (Lambda may cut a retried
//! batch differently, or resume from a failed record) reads the watermark
//! from the failed condition and adds only the amounts of later records:
//! [`Contributions::after`].
//!
//! This is only sound when one shard's records reach the counters in order,
//! one batch at a time: the Kinesis event source mapping with a
//! parallelization factor of 1, as `template.yaml` sets it
//! ([`in_order`]).

use std::fmt;

use crate::CoreError;

/// A record's place in its shard, in a form whose string order is the
/// numeric order of sequence numbers (DynamoDB compares strings bytewise):
/// the number of digits (three digits) followed by the digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(String);

impl Position {
    /// The position of a Kinesis sequence number (decimal digits, up to 128
    /// of them; leading zeros are ignored).
    pub fn of_sequence(sequence_number: &str) -> Result<Position, CoreError> {
        let digits = sequence_number.trim_start_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        if sequence_number.is_empty()
            || digits.len() > 128
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(CoreError::Value(format!(
                "sequence number {:?} is not 1-128 decimal digits",
                shorten(sequence_number)
            )));
        }
        Ok(Position(format!("{:03}{digits}", digits.len())))
    }

    /// Reads a stored watermark back: only the form [`Position::of_sequence`]
    /// stores (three digits of length, then the digits without leading
    /// zeros), since any other text would not order as its number.
    pub fn parse(stored: &str) -> Result<Position, CoreError> {
        let bad = || CoreError::Value(format!("watermark {:?} is malformed", shorten(stored)));
        let (len, digits) = stored.split_at_checked(3).ok_or_else(bad)?;
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(len) || !all_digits(digits) {
            return Err(bad());
        }
        let len: usize = len.parse().map_err(|_| bad())?;
        if len != digits.len() || !(1..=128).contains(&len) || (len > 1 && digits.starts_with('0'))
        {
            return Err(bad());
        }
        Ok(Position(stored.to_owned()))
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a Kinesis event source mapping with `parallelization_factor`
/// delivers one shard's records in order, one batch at a time, as the
/// watermark needs: only at factor 1. With a larger factor Lambda runs
/// several batches of one shard at once (split by partition key), their
/// positions interleave, and a batch behind a watermark another batch
/// moved would be discarded as already counted.
pub fn in_order(parallelization_factor: u32) -> bool {
    parallelization_factor <= 1
}

fn shorten(s: &str) -> &str {
    s.char_indices().nth(40).map_or(s, |(i, _)| &s[..i])
}

/// The amounts that the records of one batch add to one counter, with each
/// record's position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contributions {
    parts: Vec<(Position, u64)>,
}

impl Contributions {
    /// No contribution yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record's amount (amounts of one record add up). A batch's
    /// records come in shard order, so a record is the last one added or a
    /// new one: constant time then (a linear search only out of order).
    pub fn add(&mut self, at: Position, amount: u64) {
        if let Some((last, a)) = self.parts.last_mut() {
            if *last == at {
                *a = a.saturating_add(amount);
                return;
            }
            if *last < at {
                self.parts.push((at, amount));
                return;
            }
        }
        match self.parts.iter_mut().find(|(p, _)| *p == at) {
            Some((_, a)) => *a = a.saturating_add(amount),
            None => self.parts.push((at, amount)),
        }
    }

    /// The earliest record's position.
    pub fn first(&self) -> Option<&Position> {
        self.parts.iter().map(|(p, _)| p).min()
    }

    /// The latest record's position: the watermark after applying.
    pub fn last(&self) -> Option<&Position> {
        self.parts.iter().map(|(p, _)| p).max()
    }

    /// Everything the batch adds.
    pub fn total(&self) -> u64 {
        self.after(None)
    }

    /// What the records past `watermark` add: the part of the batch a
    /// counter at that watermark has not counted yet.
    pub fn after(&self, watermark: Option<&Position>) -> u64 {
        self.parts
            .iter()
            .filter(|(p, _)| watermark.is_none_or(|w| p > w))
            .fold(0u64, |sum, (_, a)| sum.saturating_add(*a))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn pos(n: u128) -> Position {
        Position::of_sequence(&n.to_string()).unwrap()
    }

    #[test]
    fn string_order_is_numeric_order() {
        assert!(pos(9) < pos(10));
        assert!(pos(99_999) < pos(100_000));
        let kinesis = "49590338271490256608559692538361571095921575989136588898";
        let next = "49590338271490256608559692538361571095921575989136588899";
        assert!(Position::of_sequence(kinesis).unwrap() < Position::of_sequence(next).unwrap());
        assert_eq!(Position::of_sequence("007").unwrap(), pos(7));
        assert_eq!(Position::of_sequence("0").unwrap().as_str(), "0010");
    }

    #[test]
    fn rejects_what_is_not_a_sequence_number() {
        for bad in ["", "12a", "-1", " 1", "1.5", &"9".repeat(129)] {
            assert!(Position::of_sequence(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "00", "0021", "003123x", "abc1"] {
            assert!(Position::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Position::parse(pos(123).as_str()).unwrap(), pos(123));
        // Only the stored form (found by the fuzz entry
        // `tollgate_fuzz::kinesis`: `+12…` read as a length, and leading
        // zeros made `00200` order above every one-digit position).
        for bad in [
            "+12123456789012",
            "00200",
            "0020x",
            &format!("129{}", "9".repeat(129)),
        ] {
            assert!(Position::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Position::parse("0010").unwrap(), pos(0));
    }

    #[test]
    fn counts_only_past_the_watermark() {
        let mut c = Contributions::new();
        c.add(pos(10), 3);
        c.add(pos(12), 4);
        c.add(pos(11), 5);
        c.add(pos(12), 1);
        assert_eq!((c.first(), c.last()), (Some(&pos(10)), Some(&pos(12))));
        assert_eq!(c.total(), 13);
        assert_eq!(c.after(Some(&pos(9))), 13);
        assert_eq!(c.after(Some(&pos(10))), 10);
        assert_eq!(c.after(Some(&pos(11))), 5);
        assert_eq!(c.after(Some(&pos(12))), 0);
        assert_eq!(Contributions::new().first(), None);
    }

    proptest! {
        #[test]
        fn order_of_positions_matches_numbers(a in any::<u128>(), b in any::<u128>()) {
            prop_assert_eq!(pos(a).cmp(&pos(b)), a.cmp(&b));
            prop_assert_eq!(pos(a).as_str().cmp(pos(b).as_str()), a.cmp(&b));
        }

        /// However a shard's records are cut into batches and redelivered,
        /// applying each batch with the watermark rule counts every record once.
        #[test]
        fn any_redelivery_counts_each_record_once(
            amounts in proptest::collection::vec(0u64..5, 1..40),
            cuts in proptest::collection::vec((0usize..40, 0usize..40), 1..30),
        ) {
            let mut watermark: Option<Position> = None;
            let mut counted = 0u64;
            let n = amounts.len();
            // In order, every retry resumes at or before the first record not yet
            // checkpointed: a batch is any range [a, b] with a <= next.
            let mut next = 0usize;
            let mut deliveries: Vec<(usize, usize)> = cuts
                .iter()
                .map(|&(a, len)| (a % n, len))
                .collect();
            deliveries.push((0, n));
            for (a, len) in deliveries {
                let start = a.min(next);
                let end = (start + len).min(n - 1);
                let mut c = Contributions::new();
                for (i, amount) in amounts.iter().enumerate().take(end + 1).skip(start) {
                    c.add(pos(i as u128 + 100), *amount);
                }
                counted += c.after(watermark.as_ref());
                if let Some(last) = c.last() {
                    if watermark.as_ref().is_none_or(|w| last > w) {
                        watermark = Some(last.clone());
                    }
                }
                next = next.max(end + 1);
            }
            prop_assert_eq!(counted, amounts.iter().sum::<u64>());
        }
    }
}
