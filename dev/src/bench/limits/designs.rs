//! The three enforcement designs, decision by decision.
//!
//! Every design starts as the authorizer does today: the key item (and its
//! blocks) from the container's cache, or one read when the entry is older
//! than the cache's TTL, and the plans re-read once a TTL. A block is
//! written when the *counted* global usage reaches the limit in force.
//!
//! - `blocks`: nothing more.
//! - `leases`: the real rules of [`tollgate_core::lease`] on the real
//!   in-memory allowances ([`MemoryAllowances`]): the container's
//!   [`LeaseBook`](tollgate_core::lease::LeaseBook) says what it may serve,
//!   and a call it cannot serve takes a lease (`take`, or `pull` when the
//!   book saw the region spent, or when a take found it spent).
//! - `reserve`: when the counts arrive, quota-sync switches an
//!   identity-period whose counted rate × the counting lag approaches its
//!   remaining quota (or that is within 5 % of its limit) to reserve mode,
//!   funding each region's reserve once with the remaining quota less the
//!   calls it estimates are not counted yet, split by the regions' counted
//!   rates (evenly without any), and moving what is left between regions
//!   by their rates whenever more counts arrive. Containers that see the mode (through
//!   their key cache) make one conditional decrement per call on their
//!   region's reserve; a failed one is remembered as leases remember a
//!   spent allowance. A plan change re-funds by the difference of the
//!   even shares.

use futures::executor::block_on;
use tollgate_core::lease::{initial_share, leased_limits, Serve, Taken, SPENT_RECHECK_MILLIS};
use tollgate_store::ports::Allowances;
use tollgate_store::StoreError;

use super::sim::{slots, Cached, World, STREAM_PASS_MS};
use super::Design;

/// `total` split by `weights`, summing to `total` exactly (the remainder
/// to the heaviest).
fn split(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u64 = weights.iter().sum();
    if sum == 0 {
        return (0..weights.len())
            .map(|r| initial_share(total, weights.len(), r))
            .collect();
    }
    let mut out: Vec<u64> = weights
        .iter()
        .map(|&w| (u128::from(total) * u128::from(w) / u128::from(sum)) as u64)
        .collect();
    let mut rest = total - out.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&r| std::cmp::Reverse(weights[r]));
    for r in order.into_iter().cycle() {
        if rest == 0 {
            break;
        }
        out[r] += 1;
        rest -= 1;
    }
    out
}

impl World {
    /// One decision in container `c` of `region` for identity `id`:
    /// whether the call is allowed, and the store calls it made.
    pub(super) fn decide(&mut self, region: usize, c: usize, id: u32) -> (bool, usize) {
        let now = self.now;
        let mut calls = 0;
        let container = &mut self.containers[region][c];
        if now - container.plans_read_at >= self.s.plan_cache_ms() {
            container.plans_read_at = now;
            container.plan_version = self.version;
            calls += 1;
        }
        let version = container.plan_version;
        let fresh = container
            .cache
            .get(&id)
            .filter(|e| now - e.at < self.s.key_cache_ms())
            .copied();
        let entry = match fresh {
            Some(e) => e,
            None => {
                calls += 1;
                let e = self.key_item(id, now);
                self.containers[region][c].cache.insert(id, e);
                e
            }
        };
        self.stats.reads += calls as u64;
        if entry.blocked.iter().any(|&b| b) {
            return (false, calls);
        }
        let (allowed, writes) = match self.design {
            Design::Blocks => (true, 0),
            Design::Leases => self.lease(region, c, id, version),
            Design::Reserve => self.decrement(region, c, id, &entry),
        };
        (allowed, calls + writes)
    }

    /// What a read of `id`'s key item finds at `now`.
    fn key_item(&self, id: u32, now: i64) -> Cached {
        let (slots, n) = slots(&self.s.workload, id);
        let mut e = Cached {
            at: now,
            blocked: [false; 2],
            reserve: [false; 2],
        };
        for (w, &slot) in slots[..n].iter().enumerate() {
            e.blocked[w] = self.counted[slot] >= self.limit(slot, self.version);
            e.reserve[w] = self.reserve.mode[slot];
        }
        e
    }

    /// Leases: serve from the book, or take what it needs first.
    fn lease(&mut self, region: usize, c: usize, id: u32, version: usize) -> (bool, usize) {
        let now = self.now;
        let identity = self.identity(id);
        let limits = leased_limits(self.plan_of(id, version), &identity, now);
        let mut calls = 0;
        for _ in 0..2 {
            let need = match self.containers[region][c].book.serve(&limits, now) {
                Serve::Served => return (true, calls),
                Serve::Spent(_) => return (false, calls),
                Serve::Need(need) => need,
            };
            for i in need {
                let (want, pull) = self.containers[region][c].book.want(&limits[i], now);
                calls += 1;
                let mut taken = if pull {
                    self.count_pull();
                    block_on(self.leases[region].pull(&limits[i], want))
                } else {
                    self.stats.writes += 1;
                    block_on(self.leases[region].take(&limits[i], want))
                };
                if matches!(taken, Ok(Taken { granted: 0, .. })) && !pull {
                    calls += 1;
                    self.count_pull();
                    taken = block_on(self.leases[region].pull(&limits[i], want));
                }
                let taken: Result<Taken, StoreError> = taken;
                match taken {
                    // The failure policy: closed.
                    Err(_) => return (false, calls),
                    Ok(t) => {
                        self.containers[region][c]
                            .book
                            .record(&limits[i].key, t, now);
                        if t.granted == 0 {
                            return (false, calls);
                        }
                    }
                }
            }
        }
        (false, calls)
    }

    /// A pull's writes: the region's own item and each reachable peer's.
    fn count_pull(&mut self) {
        let peers = self.s.regions - 1 - usize::from(self.down.is_some());
        self.stats.pulls += 1;
        self.stats.writes += 1 + peers as u64;
    }

    /// Reserve mode: one conditional decrement per call and limit in it.
    fn decrement(&mut self, region: usize, c: usize, id: u32, entry: &Cached) -> (bool, usize) {
        let now = self.now;
        let (slots, n) = slots(&self.s.workload, id);
        let mut writes = 0;
        for (w, &slot) in slots[..n].iter().enumerate() {
            if !entry.reserve[w] {
                continue;
            }
            let container = &mut self.containers[region][c];
            if container.spent_until.get(&slot).is_some_and(|&t| now < t) {
                return (false, writes);
            }
            writes += 1;
            self.stats.writes += 1;
            let left = self.reserve.left.entry((slot, region)).or_insert(0);
            if *left == 0 {
                container
                    .spent_until
                    .insert(slot, now + SPENT_RECHECK_MILLIS);
                return (false, writes);
            }
            *left -= 1;
        }
        (true, writes)
    }

    /// quota-sync, when `n` new calls of `slot` were counted (`per_region`:
    /// by region): whether to switch it to reserve mode, and its funding.
    pub(super) fn reserve_evaluate(&mut self, slot: usize, n: u64, per_region: &[u64]) {
        if self.reserve.mode[slot] {
            self.reserve_rebalance(slot, per_region);
            return;
        }
        let limit = self.limit(slot, self.version);
        let counted = self.counted[slot];
        if counted >= limit {
            return;
        }
        let remaining = limit - counted;
        let rate = n as f64 / self.s.batch_ms() as f64;
        let lag = (self.s.batch_ms() + STREAM_PASS_MS + self.s.key_cache_ms()) as f64;
        let near = (limit / 20).max(self.s.regions as u64);
        if remaining as f64 > 2.0 * rate * lag && remaining > near {
            return;
        }
        // The calls made since the counted ones, and until the containers see the mode.
        let uncounted = (rate * (STREAM_PASS_MS + self.s.key_cache_ms()) as f64).ceil() as u64;
        let fund = remaining.saturating_sub(uncounted);
        let weights = if per_region.iter().sum::<u64>() == 0 {
            vec![0; self.s.regions]
        } else {
            per_region.to_vec()
        };
        self.reserve.mode[slot] = true;
        self.reserve.switched += 1;
        for (r, share) in split(fund, &weights).into_iter().enumerate() {
            // A region that is down never writes its own reserve.
            if Some(r) == self.down {
                continue;
            }
            self.reserve.left.insert((slot, r), share);
            self.stats.writes += 1;
        }
    }

    /// quota-sync, when more calls of `slot` in reserve mode were counted:
    /// what the reachable regions have left, split again by their rates
    /// (it moves units, it never creates any).
    fn reserve_rebalance(&mut self, slot: usize, per_region: &[u64]) {
        let reachable: Vec<usize> = (0..self.s.regions)
            .filter(|&r| Some(r) != self.down)
            .collect();
        let total: u64 = reachable
            .iter()
            .map(|&r| self.reserve.left.get(&(slot, r)).copied().unwrap_or(0))
            .sum();
        let weights: Vec<u64> = reachable
            .iter()
            .map(|&r| per_region.get(r).copied().unwrap_or(0))
            .collect();
        for (share, &r) in split(total, &weights).into_iter().zip(&reachable) {
            self.reserve.left.insert((slot, r), share);
            self.stats.writes += 1;
        }
    }

    /// quota-sync after a plan change: every reserve re-funded by the
    /// difference of the even shares of the old and new limits.
    pub(super) fn reserve_plan_changed(&mut self) {
        let regions = self.s.regions;
        for slot in 0..self.reserve.mode.len() {
            let (old, new) = (
                self.limit(slot, self.version - 1),
                self.limit(slot, self.version),
            );
            if !self.reserve.mode[slot] || old == new {
                continue;
            }
            for r in (0..regions).filter(|&r| Some(r) != self.down) {
                let left = self.reserve.left.entry((slot, r)).or_insert(0);
                let (o, n) = (
                    initial_share(old, regions, r),
                    initial_share(new, regions, r),
                );
                *left = (*left + n).saturating_sub(o);
                self.stats.writes += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_sum_to_the_total() {
        assert_eq!(split(10, &[1, 1, 2]), vec![2, 2, 6]);
        assert_eq!(split(7, &[0, 0, 0]), vec![3, 2, 2]);
        assert_eq!(split(5, &[0, 9, 1]), vec![0, 5, 0]);
        assert_eq!(split(0, &[3, 1]), vec![0, 0]);
    }
}
