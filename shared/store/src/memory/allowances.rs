//! The lease allowances of a whole deployment in memory: one map for every
//! region, a handle per region implementing [`Allowances`], regions that
//! can be taken down, and counted takes and pulls. It keeps the port's
//! promises (a take never grants more than is left, a pull only moves
//! units); the conditional writes that keep them on DynamoDB are tested on
//! DynamoDB Local.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tollgate_core::lease::{
    allowance, initial_share, pull_amount, refund, LeaseKey, Leased, Taken,
};

use crate::ports::Allowances;
use crate::StoreError;

/// One region's allowance of one limit and period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Allowance {
    left: u64,
    taken: u64,
    /// The limit the allowance was funded for (a plan change re-funds it).
    limit: u64,
    /// What a lowered limit could not take back (see the DynamoDB adapter).
    owed: u64,
}

#[derive(Debug, Default)]
struct State {
    items: HashMap<(usize, LeaseKey), Allowance>,
    down: Vec<bool>,
    takes: usize,
    pulls: usize,
}

/// One region's handle on the deployment's allowances.
#[derive(Debug, Clone)]
pub struct MemoryAllowances {
    state: Arc<Mutex<State>>,
    region: usize,
    regions: usize,
}

impl MemoryAllowances {
    /// A deployment of `regions` regions: one handle per region, in the
    /// order of their shares, all on the same map.
    pub fn deployment(regions: usize) -> Vec<MemoryAllowances> {
        let regions = regions.max(1);
        let state = Arc::new(Mutex::new(State {
            down: vec![false; regions],
            ..State::default()
        }));
        (0..regions)
            .map(|region| MemoryAllowances {
                state: Arc::clone(&state),
                region,
                regions,
            })
            .collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes region `region` down (`true`) or brings it back: its handle's
    /// calls fail and its peers skip it when they pull.
    pub fn set_down(&self, region: usize, down: bool) {
        if let Some(d) = self.state().down.get_mut(region) {
            *d = down;
        }
    }

    /// Units of `key` that region `region` has granted so far.
    pub fn taken(&self, region: usize, key: &LeaseKey) -> u64 {
        self.state()
            .items
            .get(&(region, key.clone()))
            .map_or(0, |a| a.taken)
    }

    /// Units of `key` granted in every region together.
    pub fn taken_everywhere(&self, key: &LeaseKey) -> u64 {
        (0..self.regions).map(|r| self.taken(r, key)).sum()
    }

    /// Takes and pulls asked for so far through every handle (the writes
    /// a decision made).
    pub fn calls(&self) -> (usize, usize) {
        let s = self.state();
        (s.takes, s.pulls)
    }
}

/// The region's allowance, created or re-funded for `leased.limit`.
fn funded<'a>(
    state: &'a mut State,
    region: usize,
    regions: usize,
    leased: &Leased,
) -> &'a mut Allowance {
    let a = state
        .items
        .entry((region, leased.key.clone()))
        .or_insert_with(|| Allowance {
            left: initial_share(allowance(leased.limit), regions, region),
            taken: 0,
            limit: leased.limit,
            owed: 0,
        });
    if a.limit != leased.limit {
        (a.left, a.owed) = refund((a.left, a.owed), a.limit, leased.limit, regions, region);
        a.limit = leased.limit;
    }
    a
}

fn down(operation: &'static str) -> StoreError {
    StoreError::Dynamo {
        operation,
        message: "the in-memory region is down".to_owned(),
    }
}

impl MemoryAllowances {
    fn take_now(&self, state: &mut State, leased: &Leased, want: u64) -> Taken {
        let a = funded(state, self.region, self.regions, leased);
        let granted = want.min(a.left);
        a.left -= granted;
        a.taken += granted;
        Taken {
            granted,
            left: a.left,
        }
    }
}

impl Allowances for MemoryAllowances {
    async fn take(&self, leased: &Leased, want: u64) -> Result<Taken, StoreError> {
        let mut state = self.state();
        state.takes += 1;
        if state.down[self.region] {
            return Err(down("take"));
        }
        Ok(self.take_now(&mut state, leased, want))
    }

    async fn pull(&self, leased: &Leased, want: u64) -> Result<Taken, StoreError> {
        let mut state = self.state();
        state.pulls += 1;
        if state.down[self.region] {
            return Err(down("pull"));
        }
        let mut moved = 0;
        for peer in (0..self.regions).filter(|&p| p != self.region) {
            if state.down[peer] {
                continue;
            }
            let a = funded(&mut state, peer, self.regions, leased);
            let m = pull_amount(a.left);
            a.left -= m;
            moved += m;
        }
        funded(&mut state, self.region, self.regions, leased).left += moved;
        Ok(self.take_now(&mut state, leased, want))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tollgate_core::{Identity, Window};

    fn leased(limit: u64) -> Leased {
        Leased {
            key: LeaseKey {
                identity: Identity::key("k_0123456789abcdef").unwrap(),
                period: Window::Day.period_of(0).unwrap(),
            },
            limit,
        }
    }

    #[tokio::test]
    async fn takes_never_grant_past_the_limit_and_pulls_only_move_units() {
        let regions = MemoryAllowances::deployment(3);
        let l = leased(10);
        // Region 0 starts with 4 (10 = 4 + 3 + 3).
        assert_eq!(
            regions[0].take(&l, 3).await.unwrap(),
            Taken {
                granted: 3,
                left: 1
            }
        );
        assert_eq!(
            regions[0].take(&l, 3).await.unwrap(),
            Taken {
                granted: 1,
                left: 0
            }
        );
        assert_eq!(regions[0].take(&l, 1).await.unwrap().granted, 0);
        // A pull takes half of each peer's (2 + 2), then the take.
        assert_eq!(
            regions[0].pull(&l, 1).await.unwrap(),
            Taken {
                granted: 1,
                left: 3
            }
        );
        regions[0].set_down(2, true);
        let got = regions[1].take(&l, 100).await.unwrap().granted;
        assert_eq!(got, 1, "region 1 kept 1 of its 3");
        assert!(
            regions[2].take(&l, 1).await.is_err(),
            "a region that is down fails"
        );
        let pulled = regions[1].pull(&l, 100).await.unwrap();
        assert_eq!(
            pulled.granted, 2,
            "half of region 0's 3, the down region skipped"
        );
        regions[0].set_down(2, false);
        let rest = regions[2].pull(&l, 100).await.unwrap().granted;
        assert_eq!(regions[0].taken_everywhere(&l.key), 10);
        assert_eq!(rest, 2);
    }

    #[tokio::test]
    async fn a_changed_limit_re_funds_by_the_difference_of_the_shares() {
        let regions = MemoryAllowances::deployment(2);
        let l = leased(10);
        assert_eq!(regions[0].take(&l, 5).await.unwrap().left, 0);
        assert_eq!(regions[0].take(&leased(30), 100).await.unwrap().granted, 10);
        assert_eq!(regions[1].take(&leased(4), 100).await.unwrap().granted, 2);
        assert_eq!(regions[0].take(&leased(4), 100).await.unwrap().granted, 0);
        // Region 0 granted 15 of a share of 15; lowered to a share of 2 it
        // owes 13, so raised back to 30 it grants nothing more.
        assert_eq!(regions[0].take(&leased(30), 100).await.unwrap().granted, 0);
        assert_eq!(regions[0].calls(), (5, 0));
    }
}
