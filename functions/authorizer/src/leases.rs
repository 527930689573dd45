//! The lease step of a decision: an allowed call under a hard `requests`
//! limit takes one leased unit of each of its allowances (from the
//! container's [`LeaseBook`], or from the store when the book holds none),
//! or is denied with the limit's reset (a 429), without waiting for the
//! counts. See `tollgate_core::lease` for the rules and their bounds.
//!
//! Cost: no store call while the book holds units; one conditional write
//! per lease otherwise (`Allowances::take`), and a pull from the peers
//! when this region's allowance is spent. A denial found spent is
//! remembered for `SPENT_RECHECK_MILLIS`, so calls past a limit cost no
//! writes; once the counts arrive, quota-sync's block denies them before
//! this step.

use tollgate_core::decision::failure_policy;
use tollgate_core::lease::{has_leased_window, leased_limits, Leased, Serve, Taken};
use tollgate_core::{Decision, DenyReason, Identity, MeterName, Plan, UnixMillis};
use tollgate_store::{Allowances, StoreError};

use crate::handler::{unavailable, Authorizer};

/// How many rounds of leasing one call may take before it is denied (a
/// unit leased in one round can be used by a concurrent call of the same
/// container before this one gets it).
const ROUNDS: usize = 3;

impl<S, A: Allowances> Authorizer<S, A> {
    /// Holds an allowed `decision` of `identities` under `plan` to the
    /// plan's hard request limits: the same decision when each allowance
    /// had a unit for it, else a quota denial (or the plan's failure policy
    /// when the store cannot be reached). Other decisions pass unchanged.
    pub(crate) async fn lease(
        &self,
        decision: Decision,
        plan: &Plan,
        identities: &[Identity],
    ) -> Decision {
        let allowed = matches!(
            decision,
            Decision::Allow {
                degraded: false,
                ..
            }
        );
        if !self.config().leases || !allowed || !has_leased_window(plan) {
            return decision;
        }
        let now = self.now();
        let limits: Vec<Leased> = identities
            .iter()
            .flat_map(|id| leased_limits(plan, id, now))
            .collect();
        for _ in 0..ROUNDS {
            let need = match self.book().serve(&limits, now) {
                Serve::Served => return decision,
                Serve::Spent(i) => return spent(decision, &limits[i]),
                Serve::Need(need) => need,
            };
            for i in need {
                let leased = &limits[i];
                match self.take_lease(leased, now).await {
                    Ok(t) if t.granted == 0 => return spent(decision, leased),
                    Ok(_) => {}
                    Err(e) => {
                        let failure = failure_policy(Some(plan), self.config().failure_policy);
                        tracing::warn!(identity = %leased.key.identity, period = %leased.key.period, error = %e, ?failure, "lease failed: applying the plan's failure policy");
                        let identity = decision.subject().identity.clone();
                        return unavailable(identity, failure, self.now());
                    }
                }
            }
        }
        spent(decision, &limits[0])
    }

    /// One lease of `leased` from the store, recorded in the book: a take
    /// from this region's allowance, or a pull from the peers when it was
    /// seen spent or the take found it so.
    async fn take_lease(&self, leased: &Leased, now: UnixMillis) -> Result<Taken, StoreError> {
        let (want, seen_spent) = self.book().want(leased, now);
        let has_peers = !self.config().peers.is_empty();
        let taken = if seen_spent && has_peers {
            self.allowances().pull(leased, want).await?
        } else {
            let t = self.allowances().take(leased, want).await?;
            if t.granted == 0 && has_peers {
                self.allowances().pull(leased, want).await?
            } else {
                t
            }
        };
        tracing::debug!(identity = %leased.key.identity, period = %leased.key.period, granted = taken.granted, left = taken.left, "lease");
        self.book().record(&leased.key, taken, now);
        Ok(taken)
    }
}

/// The quota denial of a spent allowance: the limit, its period and reset.
fn spent(decision: Decision, leased: &Leased) -> Decision {
    Decision::Deny {
        subject: decision.subject().clone(),
        reason: DenyReason::QuotaExceeded {
            meter: MeterName::requests(),
            period: leased.key.period,
            limit: leased.limit,
        },
    }
}

#[cfg(test)]
mod tests;
