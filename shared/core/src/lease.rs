//! Leases: how the authorizer holds a hard `requests` limit across regions
//! without waiting for the counts.
//!
//! Usage is counted from logs, minutes late. A limit enforced only from the
//! counts lets an identity run past it by its rate times that lag (issue 13's
//! figures: 23× the limit at the cheapest settings). So each hard request
//! limit also has, per region and period, an **allowance**: the calls that
//! region may still grant. It starts as the region's share of the limit
//! ([`initial_share`] of the [`allowance`], the limit and 1 % more; the
//! shares of all regions sum to it).
//! An authorizer container takes a **lease** of *n* calls from its region's
//! allowance with one conditional write, serves them from memory
//! ([`LeaseBook`]), and takes another when they are used up. A region whose
//! allowance is spent pulls part of its peers' ([`pull_amount`]).
//!
//! No call is allowed without a leased unit, and the leases of all regions
//! never add up to more than the allowance, so **no call passes a hard
//! limit by more than 1 %** (none below a limit of 100), whatever the
//! counting lag, bursts or concurrency. The price is paid in
//! false denials instead, and those are bounded:
//! - a container that dies loses what is left of its lease, at most
//!   [`max_lease`] (0.5 % of the limit, at least 1);
//! - a region that is down keeps its unspent allowance (at most its share)
//!   until it is back: its peers cannot take it from its table.
//!
//! Writes: one per lease, so a call costs about `1 / n` writes; leases grow
//! with a container's rate ([`next_lease`]), and the first lease of an
//! identity in a period costs one write per region it calls. Soft limits,
//! unlimited meters and every meter but `requests` take no lease.

use std::collections::HashMap;

use crate::{Identity, MeterName, Period, Plan, UnixMillis};

/// One allowance: an identity's hard `requests` limit in one period.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    pub identity: Identity,
    pub period: Period,
}

/// One hard request limit a call must take a leased unit of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub key: LeaseKey,
    /// The plan's limit for the period.
    pub limit: u64,
}

/// The limits of `plan` a call by `identity` at `now` must lease: the hard
/// `requests` limits, one per window, in the plan's order. Empty for a soft
/// plan or a plan without request limits (those never write on the hot path).
pub fn leased_limits(plan: &Plan, identity: &Identity, now: UnixMillis) -> Vec<Leased> {
    if !plan.is_hard() {
        return Vec::new();
    }
    let requests = MeterName::requests();
    plan.limits
        .iter()
        .filter(|l| l.meter == requests)
        .filter_map(|l| {
            let period = l.window.period_of(now).ok()?;
            Some(Leased {
                key: LeaseKey {
                    identity: identity.clone(),
                    period,
                },
                limit: l.limit,
            })
        })
        .collect()
}

/// The units all regions together may grant for a limit: the limit and
/// 1 % more, rounded down (nothing more below 100). The goal allows calls
/// past a limit up to 1 % of it; spending that margin on the allowance
/// means the few units stranded when a limit is reached (in a container
/// of another region, or one that died) do not turn into false denials.
pub fn allowance(limit: u64) -> u64 {
    limit.saturating_add(limit / 100)
}

/// The share of `limit` region `index` of `regions` starts a period with:
/// the limit divided evenly, the remainder to the first regions, so the
/// shares sum to the limit exactly. Regions are indexed in the sorted
/// order of their names, the same in every region.
pub fn initial_share(limit: u64, regions: usize, index: usize) -> u64 {
    let regions = regions.max(1) as u64;
    let index = index as u64;
    if index >= regions {
        return 0;
    }
    limit / regions + u64::from(index < limit % regions)
}

/// What a region's allowance has `left` and still `owed` once its limit
/// changes from `old` to `new`: moved by the difference of the region's
/// shares (region `index` of `regions`); a fall below 0 is owed rather than
/// forgotten, so a limit lowered then raised never grants more than its
/// highest allowance. Both adapters of the store's `Allowances` apply it.
pub fn refund(
    (left, owed): (u64, u64),
    old: u64,
    new: u64,
    regions: usize,
    index: usize,
) -> (u64, u64) {
    if old == new {
        return (left, owed);
    }
    let old = i128::from(initial_share(allowance(old), regions, index));
    let new = i128::from(initial_share(allowance(new), regions, index));
    let total = i128::from(left) - i128::from(owed) + new - old;
    let clamp = |v: i128| u64::try_from(v).unwrap_or(u64::MAX);
    if total >= 0 {
        (clamp(total), 0)
    } else {
        (0, clamp(-total))
    }
}

/// The largest lease of a limit: 0.5 % of it, at least 1, so that a
/// container that dies holding a full lease costs at most that many false
/// denials.
pub fn max_lease(limit: u64) -> u64 {
    (limit / 200).max(1)
}

/// How long a lease should last in a container: long enough that a busy
/// identity costs few writes, short enough that leases follow its rate.
pub const LEASE_TARGET_MILLIS: i64 = 2_000;

/// How many calls the next lease asks for, after a lease of `previous`
/// units taken at `taken_at` ran out at `now` (`None`: the container's
/// first lease of this allowance). It doubles while leases last less than
/// [`LEASE_TARGET_MILLIS`], follows the container's rate otherwise, and
/// stays within 1 and [`max_lease`].
pub fn next_lease(limit: u64, previous: Option<(u64, UnixMillis)>, now: UnixMillis) -> u64 {
    let size = match previous {
        None => 1,
        Some((n, taken_at)) => {
            let lasted = (now - taken_at).max(1);
            if lasted < LEASE_TARGET_MILLIS {
                n.saturating_mul(2)
            } else {
                // The rate the last lease was used at, over the target.
                let by_rate = (n as u128 * LEASE_TARGET_MILLIS as u128 / lasted as u128) as u64;
                by_rate.min(n.saturating_mul(2))
            }
        }
    };
    size.clamp(1, max_lease(limit))
}

/// The largest lease worth taking from a region that had `region_left`
/// units after the last take: a quarter of it, at least 1. As a limit
/// nears, leases shrink to single units, so that when it is reached the
/// containers of all regions hold few units nobody can use elsewhere
/// (each held unit is a possible false denial in another region).
pub fn near_the_end(region_left: u64) -> u64 {
    (region_left / 4).max(1)
}

/// How much of a peer's unspent allowance `peer_left` a region that ran out
/// pulls: half of it, rounded up, so the calls move to where they are made
/// in a few pulls while a peer keeps something for its own callers.
pub fn pull_amount(peer_left: u64) -> u64 {
    peer_left.div_ceil(2)
}

/// What a take from a region's allowance gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Units granted: at most what was asked, 0 when the allowance is spent.
    pub granted: u64,
    /// What the region's allowance has left after the take.
    pub left: u64,
}

/// How long a container remembers that an allowance is spent before it
/// asks the store again (a raised limit, or allowance pulled back in):
/// without it, every denied call past a limit would cost a write.
pub const SPENT_RECHECK_MILLIS: i64 = 10_000;

/// A container's leases: what it may still grant without a write, per
/// allowance. Pure state; the authorizer takes leases through the store and
/// records them here.
#[derive(Debug, Default)]
pub struct LeaseBook {
    held: HashMap<LeaseKey, Held>,
    max_entries: usize,
}

/// One allowance as a container holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    /// Leased units not yet used.
    left: u64,
    /// The size and time of the last lease (for [`next_lease`]).
    last: Option<(u64, UnixMillis)>,
    /// The region's allowance after the last take (0: pull before taking).
    region_left: u64,
    /// Set when the allowance was found spent: no store call before this time.
    spent_until: Option<UnixMillis>,
}

/// What the book says about a call's allowances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serve {
    /// Every allowance had a leased unit; one of each was used.
    Served,
    /// These allowances need a lease first (their indices in the call's list).
    Need(Vec<usize>),
    /// This allowance (its index) was found spent moments ago: deny.
    Spent(usize),
}

impl LeaseBook {
    /// A book that keeps at most `max_entries` allowances (a bound on the
    /// container's memory; evicting an entry forgets its leased units).
    pub fn new(max_entries: usize) -> Self {
        LeaseBook {
            held: HashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    /// Allowances held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no allowance is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Leased units of `key` not yet used.
    pub fn units(&self, key: &LeaseKey) -> u64 {
        self.held.get(key).map_or(0, |h| h.left)
    }

    /// Uses one unit of every allowance in `limits` if each has one (all or
    /// nothing: a call denied by one limit uses nothing of the others).
    pub fn serve(&mut self, limits: &[Leased], now: UnixMillis) -> Serve {
        let mut need = Vec::new();
        for (i, l) in limits.iter().enumerate() {
            match self.held.get(&l.key) {
                Some(h) if h.spent_until.is_some_and(|t| now < t) && h.left == 0 => {
                    return Serve::Spent(i)
                }
                Some(h) if h.left > 0 => {}
                _ => need.push(i),
            }
        }
        if !need.is_empty() {
            return Serve::Need(need);
        }
        for l in limits {
            if let Some(h) = self.held.get_mut(&l.key) {
                h.left -= 1;
            }
        }
        Serve::Served
    }

    /// How many units to ask for the next lease of `leased`, and whether
    /// the region's allowance was seen spent (so the store should pull from
    /// peers first).
    pub fn want(&self, leased: &Leased, now: UnixMillis) -> (u64, bool) {
        let held = self.held.get(&leased.key);
        let mut size = next_lease(leased.limit, held.and_then(|h| h.last), now);
        if let Some(h) = held.filter(|h| h.last.is_some()) {
            size = size.min(near_the_end(h.region_left));
        }
        (size, held.is_some_and(|h| h.region_left == 0))
    }

    /// Records a take for `key` at `now`: its granted units join the
    /// container's; a take that granted nothing marks the allowance spent
    /// for [`SPENT_RECHECK_MILLIS`].
    pub fn record(&mut self, key: &LeaseKey, taken: Taken, now: UnixMillis) {
        if !self.held.contains_key(key) && self.held.len() >= self.max_entries {
            self.evict(now);
        }
        let h = self.held.entry(key.clone()).or_insert(Held {
            left: 0,
            last: None,
            region_left: 1,
            spent_until: None,
        });
        h.left += taken.granted;
        h.region_left = taken.left;
        if taken.granted > 0 {
            h.last = Some((taken.granted, now));
            h.spent_until = None;
        } else {
            h.spent_until = Some(now + SPENT_RECHECK_MILLIS);
        }
    }

    /// Drops allowances of ended periods; if none had ended, the eighth of
    /// the book holding the fewest units (what an eviction loses is at most
    /// a lease each). A full book so pays one pass for many insertions,
    /// not one per insertion.
    fn evict(&mut self, now: UnixMillis) {
        let before = self.held.len();
        self.held.retain(|k, _| k.period.end() > now);
        if self.held.len() < before {
            return;
        }
        let drop = (self.held.len() / 8).max(1);
        let mut by_units: Vec<(u64, LeaseKey)> =
            self.held.iter().map(|(k, h)| (h.left, k.clone())).collect();
        by_units.select_nth_unstable_by_key(drop - 1, |(units, _)| *units);
        for (_, k) in by_units.into_iter().take(drop) {
            self.held.remove(&k);
        }
    }
}

/// Whether any window of `plan` is leased (the authorizer's fast check).
pub fn has_leased_window(plan: &Plan) -> bool {
    plan.is_hard() && plan.limits.iter().any(|l| l.meter == MeterName::requests())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limit, OveragePolicy, Window};

    const T0: UnixMillis = 1_764_547_200_000; // 2025-12-01T00:00:00Z

    fn plan(overage: OveragePolicy) -> Plan {
        Plan {
            name: "starter".into(),
            limits: vec![
                Limit {
                    meter: MeterName::requests(),
                    window: Window::Day,
                    limit: 1_500,
                },
                Limit {
                    meter: MeterName::requests(),
                    window: Window::Month,
                    limit: 30_000,
                },
                Limit {
                    meter: MeterName::new("tokens").unwrap(),
                    window: Window::Day,
                    limit: 10,
                },
            ],
            overage,
            failure: Default::default(),
        }
    }

    fn key_id() -> Identity {
        Identity::key("k_0123456789abcdef").unwrap()
    }

    #[test]
    fn shares_sum_to_the_limit_for_any_region_count() {
        for limit in [1, 2, 7, 1_500, 1_000_000] {
            for regions in 1..=12 {
                let sum: u64 = (0..regions).map(|i| initial_share(limit, regions, i)).sum();
                assert_eq!(sum, limit, "limit {limit}, {regions} regions");
            }
        }
        assert_eq!(initial_share(1, 10, 0), 1);
        assert_eq!(initial_share(1, 10, 1), 0);
        assert_eq!(initial_share(1_500, 10, 9), 150);
        assert_eq!(
            initial_share(5, 3, 3),
            0,
            "an index past the regions has none"
        );
    }

    #[test]
    fn only_hard_request_limits_are_leased() {
        let hard = leased_limits(&plan(OveragePolicy::Hard), &key_id(), T0);
        assert_eq!(hard.len(), 2);
        assert_eq!(hard[0].key.period.window, Window::Day);
        assert_eq!(hard[0].limit, 1_500);
        assert_eq!(hard[1].key.period.window, Window::Month);
        assert!(leased_limits(&plan(OveragePolicy::Soft), &key_id(), T0).is_empty());
        assert!(has_leased_window(&plan(OveragePolicy::Hard)));
        assert!(!has_leased_window(&plan(OveragePolicy::Soft)));
    }

    #[test]
    fn leases_grow_with_the_rate_and_stay_within_bounds() {
        assert_eq!(next_lease(1_500, None, T0), 1);
        assert_eq!(max_lease(1_500), 7);
        assert_eq!(max_lease(1), 1);
        assert_eq!(max_lease(1_000_000), 5_000);
        // Used up in 100 ms: doubles, up to the cap.
        assert_eq!(next_lease(1_000_000, Some((4, T0)), T0 + 100), 8);
        assert_eq!(next_lease(1_500, Some((4, T0)), T0 + 100), 7);
        // 100 units over 10 s is 10 a second: 20 for a 2 s lease.
        assert_eq!(next_lease(1_000_000, Some((100, T0)), T0 + 10_000), 20);
        // A slow identity falls back to single units.
        assert_eq!(next_lease(1_000_000, Some((2, T0)), T0 + 60_000), 1);
        // A limit of 1 is always leased one unit at a time.
        assert_eq!(next_lease(1, Some((1, T0)), T0 + 1), 1);
    }

    #[test]
    fn pulls_take_half_rounded_up() {
        assert_eq!(pull_amount(0), 0);
        assert_eq!(pull_amount(1), 1);
        assert_eq!(pull_amount(150), 75);
        assert_eq!(pull_amount(151), 76);
    }

    #[test]
    fn a_call_uses_a_unit_of_every_limit_or_none() {
        let limits = leased_limits(&plan(OveragePolicy::Hard), &key_id(), T0);
        let mut book = LeaseBook::new(10);
        assert_eq!(book.serve(&limits, T0), Serve::Need(vec![0, 1]));
        book.record(
            &limits[0].key,
            Taken {
                granted: 2,
                left: 148,
            },
            T0,
        );
        assert_eq!(book.serve(&limits, T0), Serve::Need(vec![1]));
        assert_eq!(
            book.units(&limits[0].key),
            2,
            "nothing used while one limit needs a lease"
        );
        book.record(
            &limits[1].key,
            Taken {
                granted: 1,
                left: 2_999,
            },
            T0,
        );
        assert_eq!(book.serve(&limits, T0), Serve::Served);
        assert_eq!(book.units(&limits[0].key), 1);
        assert_eq!(book.units(&limits[1].key), 0);
        assert_eq!(book.serve(&limits, T0), Serve::Need(vec![1]));
    }

    #[test]
    fn a_spent_allowance_denies_without_a_store_call_until_the_recheck() {
        let limits = leased_limits(&plan(OveragePolicy::Hard), &key_id(), T0);
        let mut book = LeaseBook::new(10);
        book.record(
            &limits[0].key,
            Taken {
                granted: 0,
                left: 0,
            },
            T0,
        );
        assert_eq!(book.serve(&limits, T0 + 1), Serve::Spent(0));
        assert_eq!(
            book.serve(&limits, T0 + SPENT_RECHECK_MILLIS),
            Serve::Need(vec![0, 1])
        );
        assert!(book.want(&limits[0], T0).1, "pull from peers first");
    }

    #[test]
    fn leases_shrink_as_the_region_runs_out() {
        let limits = leased_limits(&plan(OveragePolicy::Hard), &key_id(), T0);
        let mut book = LeaseBook::new(10);
        book.record(
            &limits[0].key,
            Taken {
                granted: 4,
                left: 100,
            },
            T0,
        );
        assert_eq!(book.want(&limits[0], T0 + 10), (7, false), "the cap, 0.5 %");
        book.record(
            &limits[0].key,
            Taken {
                granted: 7,
                left: 12,
            },
            T0 + 20,
        );
        assert_eq!(
            book.want(&limits[0], T0 + 30),
            (3, false),
            "a quarter of 12"
        );
        book.record(
            &limits[0].key,
            Taken {
                granted: 3,
                left: 2,
            },
            T0 + 40,
        );
        assert_eq!(book.want(&limits[0], T0 + 50), (1, false));
        assert_eq!(near_the_end(0), 1);
    }

    #[test]
    fn the_next_lease_follows_the_last_one() {
        let limits = leased_limits(&plan(OveragePolicy::Hard), &key_id(), T0);
        let mut book = LeaseBook::new(10);
        assert_eq!(book.want(&limits[1], T0), (1, false));
        book.record(
            &limits[1].key,
            Taken {
                granted: 1,
                left: 2_999,
            },
            T0,
        );
        assert_eq!(book.want(&limits[1], T0 + 10), (2, false));
    }

    #[test]
    fn the_book_is_bounded_and_evicts_ended_periods_first() {
        let mut book = LeaseBook::new(2);
        let ended = LeaseKey {
            identity: key_id(),
            period: Window::Minute.period_of(T0).unwrap(),
        };
        let day = LeaseKey {
            identity: key_id(),
            period: Window::Day.period_of(T0).unwrap(),
        };
        let month = LeaseKey {
            identity: key_id(),
            period: Window::Month.period_of(T0).unwrap(),
        };
        let later = T0 + 120_000;
        book.record(
            &ended,
            Taken {
                granted: 5,
                left: 5,
            },
            T0,
        );
        book.record(
            &day,
            Taken {
                granted: 1,
                left: 5,
            },
            T0,
        );
        book.record(
            &month,
            Taken {
                granted: 3,
                left: 5,
            },
            later,
        );
        assert_eq!(book.len(), 2);
        assert_eq!(book.units(&ended), 0, "the ended minute went first");
        assert_eq!(book.units(&day), 1);
        assert_eq!(book.units(&month), 3);
    }
}
