//! Which counter changes a region copies to its peers.
//!
//! A counter's global value only matters for a hard limit `L`, and only
//! once it could reach it. If each of `R` regions holds less than
//! `L / (2R)`, the sum is below `L / 2`: no region needs the others' values
//! yet. So a region copies its item of a counter only when
//!
//! - its own value reaches `L / (2R)` (the counter is **hot**), or
//! - a peer has already copied its item of that counter here (the counter
//!   is **shared**: then every change is copied, so that all regions see
//!   all values before the sum can reach `L`).
//!
//! The first copy of a hot counter makes every peer mark its own item as
//! shared, and copy it back. Counters of identities far from their limits,
//! which at scale are most of them, are never copied: that is most of what
//! a copy-everything design spends on replication.

use std::fmt;
use std::str::FromStr;

use crate::CoreError;

/// How a region replicates its counters (`TOLLGATE_REPLICATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replication {
    /// Copy a counter once it is hot or shared (the default).
    #[default]
    Hot,
    /// Copy every change of every counter: every region's table then holds
    /// every region's values, at one write per peer per change.
    All,
}

impl Replication {
    /// Whether a change of this region's counter item must be copied now.
    ///
    /// `value`: the item's value; `limit`: the tightest hard limit on the
    /// counter (`None`: unlimited); `regions`: the regions of the
    /// deployment, this one included; `shared`: a peer has copied its item
    /// of the counter here.
    pub fn must_copy(self, value: u64, limit: Option<u64>, regions: usize, shared: bool) -> bool {
        match self {
            Replication::All => true,
            Replication::Hot => shared || limit.is_some_and(|l| is_hot(value, l, regions)),
        }
    }
}

/// Whether `value` has reached `limit / (2 * regions)`: past it, a region
/// can no longer tell from its own value that the sum is far below the limit.
pub fn is_hot(value: u64, limit: u64, regions: usize) -> bool {
    let regions = regions.max(1) as u128;
    u128::from(value).saturating_mul(2).saturating_mul(regions) >= u128::from(limit)
}

impl fmt::Display for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Replication::Hot => "hot",
            Replication::All => "all",
        })
    }
}

impl FromStr for Replication {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hot" => Ok(Replication::Hot),
            "all" => Ok(Replication::All),
            other => Err(CoreError::Value(format!(
                "replication {other:?}: expected hot or all"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn copies_hot_or_shared_counters_only() {
        let hot = Replication::Hot;
        // Limit 600 over 3 regions: hot from 100.
        assert!(!hot.must_copy(99, Some(600), 3, false));
        assert!(hot.must_copy(100, Some(600), 3, false));
        assert!(hot.must_copy(0, Some(600), 3, true));
        // Unlimited: only once shared.
        assert!(!hot.must_copy(u64::MAX, None, 3, false));
        assert!(hot.must_copy(1, None, 3, true));
        // A limit of 0 is reached at once.
        assert!(hot.must_copy(0, Some(0), 3, false));
        assert!(Replication::All.must_copy(0, None, 3, false));
        assert!(is_hot(u64::MAX, u64::MAX, usize::MAX));
    }

    #[test]
    fn parses_and_prints() {
        for mode in [Replication::Hot, Replication::All] {
            assert_eq!(mode.to_string().parse::<Replication>().unwrap(), mode);
        }
        assert!("some".parse::<Replication>().is_err());
        assert_eq!(Replication::default(), Replication::Hot);
    }

    proptest! {
        /// While no region's value is hot, the sum stays below half the limit:
        /// the regions that did not copy cannot together reach it.
        #[test]
        fn cold_regions_cannot_reach_the_limit(
            limit in 1u64..1_000_000,
            values in proptest::collection::vec(0u64..1_000_000, 1..12),
        ) {
            let r = values.len();
            if values.iter().all(|v| !is_hot(*v, limit, r)) {
                let sum: u64 = values.iter().sum();
                prop_assert!(sum * 2 < limit, "sum {} limit {}", sum, limit);
            }
        }
    }
}
