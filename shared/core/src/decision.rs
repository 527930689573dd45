//! The authorization rules, as one pure function: what the authorizer knows
//! (the key record, the identity's blocks, the plan) in, a decision out.

use serde::{Deserialize, Serialize};

use crate::{FailurePolicy, Identity, MeterName, Period, Plan, UnixMillis};

/// Whether a key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    #[default]
    Active,
    Revoked,
}

/// An API key's stored record (found by the digest of its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub key_id: String,
    pub customer: String,
    pub plan: String,
    pub status: KeyStatus,
    /// When the key stops working, if ever.
    pub expires_at: Option<UnixMillis>,
    /// When this *secret* stops working because the key was rolled to a new
    /// secret (the end of its grace, see [`crate::rotation`]); `None` for a
    /// key's current secret. The key id, customer, plan and limits are the
    /// key's, whichever of its secrets is presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<UnixMillis>,
}

impl KeyRecord {
    /// Until when this secret may be used, if there is an end: the earlier
    /// of the key's expiry and the secret's grace end. Caches must not keep
    /// an entry for it past this time.
    pub fn usable_until(&self) -> Option<UnixMillis> {
        match (self.expires_at, self.valid_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether this is a secret a roll replaced whose grace has ended at
    /// `now` (its end is exclusive: at `valid_until` it is refused).
    pub fn grace_ended(&self, now: UnixMillis) -> bool {
        self.valid_until.is_some_and(|t| now >= t)
    }
}

/// A limit an identity has reached for one period (written by quota-sync).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub meter: MeterName,
    pub period: Period,
    pub limit: u64,
    /// The global usage seen when the block was written.
    pub used: u64,
}

impl Block {
    /// Whether the block still applies at `now` (its period has not ended).
    pub fn is_current(&self, now: UnixMillis) -> bool {
        now < self.period.end()
    }
}

/// What the authorizer found for a request.
#[derive(Debug, Clone)]
pub enum Lookup<'a> {
    /// A key was presented and its record read (`None`: no such key).
    Key {
        record: Option<KeyRecord>,
        /// The plan the record names, if it is known.
        plan: Option<&'a Plan>,
        blocks: &'a [Block],
    },
    /// No key, and the anonymous plan (named `plan`) is not defined: a
    /// configuration error, so the anonymous tier fails closed.
    NoAnonymousPlan { identity: Identity, plan: String },
    /// No key: the anonymous free tier, for this identity.
    Anonymous {
        identity: Identity,
        plan: &'a Plan,
        blocks: &'a [Block],
    },
    /// A key was presented but has the wrong shape (no read was made).
    MalformedKey,
    /// No key and no usable anonymous identity (no valid client IP).
    NoIdentity,
    /// The store could not be read; the plan's (or the default) failure policy applies.
    Unavailable {
        identity: Option<Identity>,
        failure: FailurePolicy,
    },
}

/// Why a request was denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    UnknownKey,
    /// The presented key does not have the shape of a tollgate key.
    MalformedKey,
    /// Neither a key nor a valid client IP address to meter.
    NoIdentity,
    RevokedKey,
    ExpiredKey,
    /// The presented secret was replaced by `tollgate keys roll` and its
    /// grace has ended (the key lives on under its new secret).
    RolledKey,
    /// The key's plan is not defined (a configuration error: fail closed).
    UnknownPlan,
    /// A hard limit was reached; the quota resets at the period's end.
    QuotaExceeded {
        meter: MeterName,
        period: Period,
        limit: u64,
    },
    StoreUnavailable,
}

impl DenyReason {
    /// A short machine-readable code for the authorizer context.
    pub fn code(&self) -> &'static str {
        match self {
            DenyReason::UnknownKey => "unknown_key",
            DenyReason::MalformedKey => "malformed_key",
            DenyReason::NoIdentity => "no_identity",
            DenyReason::RevokedKey => "revoked_key",
            DenyReason::ExpiredKey => "expired_key",
            DenyReason::RolledKey => "rolled_key",
            DenyReason::UnknownPlan => "unknown_plan",
            DenyReason::QuotaExceeded { .. } => "quota_exceeded",
            DenyReason::StoreUnavailable => "store_unavailable",
        }
    }

    /// When retrying can succeed, for quota denials (the period's end).
    pub fn reset_at(&self) -> Option<UnixMillis> {
        match self {
            DenyReason::QuotaExceeded { period, .. } => Some(period.end()),
            _ => None,
        }
    }

    /// Whether the API should answer 429 (quota) rather than 403.
    pub fn is_quota(&self) -> bool {
        matches!(self, DenyReason::QuotaExceeded { .. })
    }

    /// Whether the presented key cannot be used at all (unknown,
    /// malformed, revoked, expired, or a rolled secret past its grace): answered with API Gateway's
    /// `Unauthorized` (401) rather than a policy, and charged to the source
    /// IP's anonymous identity by the log-processor.
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            DenyReason::UnknownKey
                | DenyReason::MalformedKey
                | DenyReason::RevokedKey
                | DenyReason::ExpiredKey
                | DenyReason::RolledKey
        )
    }
}

/// The failure policy that applies when the store cannot be read: the
/// caller's plan's, when an earlier read told which plan that is, else the
/// deployment's default (`TOLLGATE_FAILURE_POLICY`).
pub fn failure_policy(known_plan: Option<&Plan>, default: FailurePolicy) -> FailurePolicy {
    known_plan.map_or(default, |p| p.failure)
}

/// Whether an anonymous caller under `plan` can ever be blocked, and so
/// whether its block items must be read: only a hard plan with limits.
pub fn anonymous_needs_blocks(plan: &Plan) -> bool {
    plan.is_hard() && !plan.limits.is_empty()
}

/// A key decision, with the source IP's anonymous standing: a key that
/// cannot be used (see [`DenyReason::is_unauthorized`]) from an IP the
/// anonymous plan has blocked is that IP's quota denial instead, so a
/// client guessing keys from a blocked IP is told to wait, like any blocked
/// anonymous caller. A usable key is never affected by its IP's blocks.
/// `source` is the IP's anonymous lookup ([`Lookup::Anonymous`]), when
/// there is a source IP and the anonymous plan can block.
pub fn charge_source(
    key_decision: Decision,
    source: Option<Lookup<'_>>,
    now: UnixMillis,
) -> Decision {
    let unusable =
        matches!(&key_decision, Decision::Deny { reason, .. } if reason.is_unauthorized());
    match source {
        Some(source) if unusable => {
            let anonymous = decide(source, now);
            match &anonymous {
                Decision::Deny { reason, .. } if reason.is_quota() => anonymous,
                _ => key_decision,
            }
        }
        _ => key_decision,
    }
}

/// Who a decision is about, for the authorizer's response context.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject {
    pub identity: Option<Identity>,
    pub customer: Option<String>,
    pub plan: Option<String>,
}

/// The authorizer's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        subject: Subject,
        /// Allowed only because the store failed and the policy is `open`.
        degraded: bool,
    },
    Deny {
        subject: Subject,
        reason: DenyReason,
    },
}

impl Decision {
    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The subject of the decision.
    pub fn subject(&self) -> &Subject {
        match self {
            Decision::Allow { subject, .. } | Decision::Deny { subject, .. } => subject,
        }
    }
}

/// Applies the rules: a key of the wrong shape, no identity at all, unknown,
/// revoked or expired key, a rolled secret past its grace → deny; a current block
/// under a hard plan → deny with the reason and reset time (the earliest
/// block that resets last wins, so the client waits long enough); soft plans
/// are never blocked; store failure → the failure policy; else allow.
pub fn decide(lookup: Lookup<'_>, now: UnixMillis) -> Decision {
    match lookup {
        Lookup::Unavailable { identity, failure } => {
            let subject = Subject {
                identity,
                ..Subject::default()
            };
            match failure {
                FailurePolicy::Open => Decision::Allow {
                    subject,
                    degraded: true,
                },
                FailurePolicy::Closed => Decision::Deny {
                    subject,
                    reason: DenyReason::StoreUnavailable,
                },
            }
        }
        Lookup::MalformedKey => Decision::Deny {
            subject: Subject::default(),
            reason: DenyReason::MalformedKey,
        },
        Lookup::NoIdentity => Decision::Deny {
            subject: Subject::default(),
            reason: DenyReason::NoIdentity,
        },
        Lookup::NoAnonymousPlan { identity, plan } => Decision::Deny {
            subject: Subject {
                identity: Some(identity),
                customer: None,
                plan: Some(plan),
            },
            reason: DenyReason::UnknownPlan,
        },
        Lookup::Key { record: None, .. } => Decision::Deny {
            subject: Subject::default(),
            reason: DenyReason::UnknownKey,
        },
        Lookup::Key {
            record: Some(record),
            plan,
            blocks,
        } => {
            let subject = Subject {
                identity: Identity::key(&record.key_id).ok(),
                customer: Some(record.customer.clone()),
                plan: Some(record.plan.clone()),
            };
            let deny = |reason| Decision::Deny {
                subject: subject.clone(),
                reason,
            };
            if record.status == KeyStatus::Revoked {
                return deny(DenyReason::RevokedKey);
            }
            if record.expires_at.is_some_and(|t| now >= t) {
                return deny(DenyReason::ExpiredKey);
            }
            // The grace of a replaced secret is decided here, on the
            // caller's clock, never by the store's TTL clean-up (lazy).
            if record.grace_ended(now) {
                return deny(DenyReason::RolledKey);
            }
            let Some(plan) = plan else {
                return deny(DenyReason::UnknownPlan);
            };
            match quota_denial(plan, blocks, now) {
                Some(reason) => deny(reason),
                None => Decision::Allow {
                    subject,
                    degraded: false,
                },
            }
        }
        Lookup::Anonymous {
            identity,
            plan,
            blocks,
        } => {
            let subject = Subject {
                identity: Some(identity),
                customer: None,
                plan: Some(plan.name.clone()),
            };
            match quota_denial(plan, blocks, now) {
                Some(reason) => Decision::Deny { subject, reason },
                None => Decision::Allow {
                    subject,
                    degraded: false,
                },
            }
        }
    }
}

/// The block that denies, if the plan is hard and a block for one of its
/// limits is current. Blocks for limits the plan no longer has are ignored
/// (a plan upgrade takes effect at once).
fn quota_denial(plan: &Plan, blocks: &[Block], now: UnixMillis) -> Option<DenyReason> {
    if !plan.is_hard() {
        return None;
    }
    blocks
        .iter()
        .filter(|b| b.is_current(now))
        .filter(|b| {
            plan.limit_for(&b.meter, b.period.window)
                .is_some_and(|limit| b.used >= limit)
        })
        .max_by_key(|b| b.period.end())
        .map(|b| DenyReason::QuotaExceeded {
            meter: b.meter.clone(),
            period: b.period,
            limit: plan.limit_for(&b.meter, b.period.window).unwrap_or(b.limit),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Limit, OveragePolicy, Window};

    const NOW: UnixMillis = 1_795_000_000_000;

    fn plan(overage: OveragePolicy) -> Plan {
        Plan {
            name: "pro".into(),
            limits: vec![
                Limit {
                    meter: MeterName::requests(),
                    window: Window::Day,
                    limit: 100,
                },
                Limit {
                    meter: MeterName::requests(),
                    window: Window::Month,
                    limit: 1000,
                },
            ],
            overage,
            failure: FailurePolicy::Closed,
        }
    }

    fn record() -> KeyRecord {
        KeyRecord {
            key_id: "k_1".into(),
            customer: "acme".into(),
            plan: "pro".into(),
            status: KeyStatus::Active,
            expires_at: None,
            valid_until: None,
        }
    }

    fn block(window: Window, used: u64, at: UnixMillis) -> Block {
        Block {
            meter: MeterName::requests(),
            period: window.period_of(at).unwrap(),
            limit: 0,
            used,
        }
    }

    fn key(record: Option<KeyRecord>, plan: Option<&Plan>, blocks: &[Block]) -> Decision {
        decide(
            Lookup::Key {
                record,
                plan,
                blocks,
            },
            NOW,
        )
    }

    fn reason(d: Decision) -> DenyReason {
        match d {
            Decision::Deny { reason, .. } => reason,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn active_key_is_allowed_with_its_subject() {
        let p = plan(OveragePolicy::Hard);
        let d = key(Some(record()), Some(&p), &[]);
        assert!(d.is_allowed());
        assert_eq!(
            d.subject().identity.as_ref().unwrap().to_string(),
            "key:k_1"
        );
        assert_eq!(d.subject().customer.as_deref(), Some("acme"));
    }

    #[test]
    fn unknown_revoked_expired_and_planless_keys_are_denied() {
        let p = plan(OveragePolicy::Hard);
        assert_eq!(reason(key(None, Some(&p), &[])), DenyReason::UnknownKey);
        let revoked = KeyRecord {
            status: KeyStatus::Revoked,
            ..record()
        };
        assert_eq!(
            reason(key(Some(revoked), Some(&p), &[])),
            DenyReason::RevokedKey
        );
        let expired = KeyRecord {
            expires_at: Some(NOW),
            ..record()
        };
        assert_eq!(
            reason(key(Some(expired), Some(&p), &[])),
            DenyReason::ExpiredKey
        );
        let later = KeyRecord {
            expires_at: Some(NOW + 1),
            ..record()
        };
        assert!(key(Some(later), Some(&p), &[]).is_allowed());
        assert_eq!(
            reason(key(Some(record()), None, &[])),
            DenyReason::UnknownPlan
        );
    }

    #[test]
    fn a_rolled_secret_works_until_its_grace_ends_on_the_clock() {
        use crate::clock::{Clock, ManualClock};
        let p = plan(OveragePolicy::Hard);
        let grace_end = NOW + 3_600_000;
        let old = KeyRecord {
            valid_until: Some(grace_end),
            ..record()
        };
        let clock = ManualClock::at(NOW);
        let at = |clock: &ManualClock, r: &KeyRecord, blocks: &[Block]| {
            decide(
                Lookup::Key {
                    record: Some(r.clone()),
                    plan: Some(&p),
                    blocks,
                },
                clock.now_millis(),
            )
        };
        // Within the grace: allowed, as the same key id and customer.
        let d = at(&clock, &old, &[]);
        assert!(d.is_allowed());
        assert_eq!(d.subject().identity, Identity::key("k_1").ok());
        assert_eq!(d.subject().customer.as_deref(), Some("acme"));
        // The key's limits still apply to the old secret in its grace.
        let blocked = [block(Window::Day, 100, NOW)];
        assert!(reason(at(&clock, &old, &blocked)).is_quota());
        clock.advance(std::time::Duration::from_millis(3_599_999));
        assert!(at(&clock, &old, &[]).is_allowed());
        // At the grace end (exclusive) and after: refused, unauthorized.
        clock.advance(std::time::Duration::from_millis(1));
        let r = reason(at(&clock, &old, &[]));
        assert_eq!(r, DenyReason::RolledKey);
        assert_eq!(r.code(), "rolled_key");
        assert!(r.is_unauthorized() && !r.is_quota());
        // The current secret (no grace) is unaffected at the same time.
        assert!(at(&clock, &record(), &[]).is_allowed());
        // Revoked wins over grace: revocation is immediate.
        let revoked = KeyRecord {
            status: KeyStatus::Revoked,
            ..old.clone()
        };
        clock.set(NOW);
        assert_eq!(reason(at(&clock, &revoked, &[])), DenyReason::RevokedKey);
        // An expiry before the grace end ends the secret first.
        let expiring = KeyRecord {
            expires_at: Some(NOW + 1_000),
            ..old.clone()
        };
        assert_eq!(expiring.usable_until(), Some(NOW + 1_000));
        assert_eq!(old.usable_until(), Some(grace_end));
        assert_eq!(record().usable_until(), None);
        clock.set(NOW + 1_000);
        assert_eq!(reason(at(&clock, &expiring, &[])), DenyReason::ExpiredKey);
        assert!(!record().grace_ended(i64::MAX));
    }

    #[test]
    fn a_current_block_denies_with_the_latest_reset() {
        let p = plan(OveragePolicy::Hard);
        let blocks = [
            block(Window::Day, 100, NOW),
            block(Window::Month, 1000, NOW),
        ];
        let r = reason(key(Some(record()), Some(&p), &blocks));
        assert!(r.is_quota());
        assert_eq!(r.code(), "quota_exceeded");
        assert_eq!(
            r.reset_at(),
            Some(Window::Month.period_of(NOW).unwrap().end())
        );
    }

    #[test]
    fn past_blocks_and_blocks_below_the_current_limit_do_not_deny() {
        let p = plan(OveragePolicy::Hard);
        let yesterday = block(Window::Day, 100, NOW - 86_400_000);
        assert!(key(Some(record()), Some(&p), &[yesterday]).is_allowed());
        // The plan was upgraded: 100 used is under a new daily limit of 500.
        let mut upgraded = plan(OveragePolicy::Hard);
        upgraded.limits[0].limit = 500;
        assert!(key(
            Some(record()),
            Some(&upgraded),
            &[block(Window::Day, 100, NOW)]
        )
        .is_allowed());
        // A block for a limit the plan no longer has.
        let hourly = block(Window::Hour, 5, NOW);
        assert!(key(Some(record()), Some(&p), &[hourly]).is_allowed());
    }

    #[test]
    fn soft_plans_are_never_blocked() {
        let p = plan(OveragePolicy::Soft);
        assert!(key(Some(record()), Some(&p), &[block(Window::Day, 10_000, NOW)]).is_allowed());
    }

    #[test]
    fn anonymous_identities_follow_the_anonymous_plan() {
        let p = plan(OveragePolicy::Hard);
        let ip = Identity::parse_anonymous_ip("192.0.2.9", crate::Ipv6Prefix::DEFAULT).unwrap();
        let ok = decide(
            Lookup::Anonymous {
                identity: ip.clone(),
                plan: &p,
                blocks: &[],
            },
            NOW,
        );
        assert!(ok.is_allowed());
        assert_eq!(ok.subject().plan.as_deref(), Some("pro"));
        let blocks = [block(Window::Day, 100, NOW)];
        let denied = decide(
            Lookup::Anonymous {
                identity: ip,
                plan: &p,
                blocks: &blocks,
            },
            NOW,
        );
        assert!(reason(denied).is_quota());
    }

    #[test]
    fn malformed_keys_and_missing_identities_are_denied() {
        let malformed = reason(decide(Lookup::MalformedKey, NOW));
        assert_eq!(malformed, DenyReason::MalformedKey);
        assert_eq!(malformed.code(), "malformed_key");
        assert!(!malformed.is_quota() && malformed.reset_at().is_none());
        let none = reason(decide(Lookup::NoIdentity, NOW));
        assert_eq!(none, DenyReason::NoIdentity);
        assert_eq!(none.code(), "no_identity");
    }

    #[test]
    fn unusable_keys_are_unauthorized_and_quota_is_not() {
        for r in [
            DenyReason::UnknownKey,
            DenyReason::MalformedKey,
            DenyReason::RevokedKey,
            DenyReason::ExpiredKey,
            DenyReason::RolledKey,
        ] {
            assert!(r.is_unauthorized(), "{r:?}");
        }
        for r in [
            DenyReason::NoIdentity,
            DenyReason::UnknownPlan,
            DenyReason::StoreUnavailable,
        ] {
            assert!(!r.is_unauthorized(), "{r:?}");
        }
    }

    #[test]
    fn an_unusable_key_from_a_blocked_ip_is_the_ips_quota_denial() {
        let anon_plan = Plan {
            name: "anonymous".into(),
            ..plan(OveragePolicy::Hard)
        };
        let p = plan(OveragePolicy::Hard);
        let ip = Identity::parse_anonymous_ip("192.0.2.9", crate::Ipv6Prefix::DEFAULT).unwrap();
        let blocked = [block(Window::Day, 100, NOW)];
        let source = |blocks| {
            Some(Lookup::Anonymous {
                identity: ip.clone(),
                plan: &anon_plan,
                blocks,
            })
        };
        let key_lookup = |record| Lookup::Key {
            record,
            plan: Some(&p),
            blocks: &[],
        };
        // Unknown key, blocked IP: the IP's quota denial.
        let d = charge_source(decide(key_lookup(None), NOW), source(&blocked), NOW);
        assert!(reason(d.clone()).is_quota());
        assert_eq!(d.subject().identity.as_ref(), Some(&ip));
        assert_eq!(d.subject().plan.as_deref(), Some("anonymous"));
        // Revoked key, blocked IP: the same.
        let revoked = KeyRecord {
            status: KeyStatus::Revoked,
            ..record()
        };
        assert!(reason(charge_source(
            decide(key_lookup(Some(revoked)), NOW),
            source(&blocked),
            NOW
        ))
        .is_quota());
        // Unknown key, IP not blocked (or no source IP): unauthorized.
        assert_eq!(
            reason(charge_source(
                decide(key_lookup(None), NOW),
                source(&[]),
                NOW
            )),
            DenyReason::UnknownKey
        );
        assert_eq!(
            reason(charge_source(decide(key_lookup(None), NOW), None, NOW)),
            DenyReason::UnknownKey
        );
        // A usable key ignores its IP's blocks.
        assert!(charge_source(
            decide(key_lookup(Some(record())), NOW),
            source(&blocked),
            NOW
        )
        .is_allowed());
    }

    #[test]
    fn failure_policy_and_anonymous_plan_choices() {
        let mut open = plan(OveragePolicy::Hard);
        open.failure = FailurePolicy::Open;
        assert_eq!(
            failure_policy(Some(&open), FailurePolicy::Closed),
            FailurePolicy::Open
        );
        assert_eq!(
            failure_policy(None, FailurePolicy::Closed),
            FailurePolicy::Closed
        );
        assert_eq!(
            failure_policy(None, FailurePolicy::Open),
            FailurePolicy::Open
        );
        assert!(anonymous_needs_blocks(&plan(OveragePolicy::Hard)));
        assert!(!anonymous_needs_blocks(&plan(OveragePolicy::Soft)));
        let limitless = Plan {
            limits: vec![],
            ..plan(OveragePolicy::Hard)
        };
        assert!(!anonymous_needs_blocks(&limitless));
        let ip = Identity::parse_anonymous_ip("192.0.2.9", crate::Ipv6Prefix::DEFAULT).unwrap();
        let d = decide(
            Lookup::NoAnonymousPlan {
                identity: ip.clone(),
                plan: "free".into(),
            },
            NOW,
        );
        assert_eq!(d.subject().plan.as_deref(), Some("free"));
        assert_eq!(d.subject().identity.as_ref(), Some(&ip));
        assert_eq!(reason(d), DenyReason::UnknownPlan);
    }

    #[test]
    fn store_failure_follows_the_policy() {
        let closed = decide(
            Lookup::Unavailable {
                identity: None,
                failure: FailurePolicy::Closed,
            },
            NOW,
        );
        assert_eq!(reason(closed), DenyReason::StoreUnavailable);
        let open = decide(
            Lookup::Unavailable {
                identity: None,
                failure: FailurePolicy::Open,
            },
            NOW,
        );
        assert_eq!(
            open,
            Decision::Allow {
                subject: Subject::default(),
                degraded: true
            }
        );
    }
}
