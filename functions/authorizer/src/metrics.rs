//! The authorizer's CloudWatch metric: `Decisions` (namespace
//! [`tollgate_lambda::metrics::NAMESPACE`]), one per decision, by
//! `FunctionName`, by `FunctionName` and `Reason`, and by `FunctionName`,
//! `Plan` and `Reason`.
//!
//! Dimensions stay bounded: `Reason` is one of [`REASONS`], `Plan` a plan
//! name of the deployment (or [`NO_PLAN`]). Never a key id, a customer, an
//! IP or a Referer: those are in the decision's log line only.
//!
//! One small line per invocation (each invocation is one decision), built
//! in one `String`; nothing is printed outside Lambda.

use tollgate_core::Decision;
use tollgate_lambda::metrics::{self, count, Line};

use crate::response::Outcome;

/// The metric's name.
pub const DECISIONS: &str = "Decisions";

/// The `Reason` of an allowed request.
pub const ALLOWED: &str = "allowed";

/// The `Reason` of a request allowed because the store failed and the
/// failure policy is `open`.
pub const ALLOWED_STORE_UNAVAILABLE: &str = "allowed_store_unavailable";

/// The `Reason` of an event that is not a readable authorizer event.
pub const UNREADABLE_EVENT: &str = "unreadable_event";

/// The `Plan` of a decision without a plan (unidentified callers, unknown
/// keys, unreadable events).
pub const NO_PLAN: &str = "none";

/// Every `Reason` value: the two allows, every deny code
/// (`tollgate_core::DenyReason::code`) and unreadable events.
pub const REASONS: &[&str] = &[
    ALLOWED,
    ALLOWED_STORE_UNAVAILABLE,
    "unknown_key",
    "malformed_key",
    "no_identity",
    "revoked_key",
    "expired_key",
    "unknown_plan",
    "quota_exceeded",
    "store_unavailable",
    UNREADABLE_EVENT,
];

/// The reasons that mean the store failed (the store-failure rate's numerator).
pub const STORE_FAILURE_REASONS: &[&str] = &["store_unavailable", ALLOWED_STORE_UNAVAILABLE];

const DIMENSION_SETS: &[&[&str]] = &[&[], &["Reason"], &["Plan", "Reason"]];

/// The `Reason` and `Plan` of a decision.
pub fn dimensions(decision: &Decision) -> (&'static str, &str) {
    let reason = match decision {
        Decision::Allow { degraded: true, .. } => ALLOWED_STORE_UNAVAILABLE,
        Decision::Allow { .. } => ALLOWED,
        Decision::Deny { reason, .. } => reason.code(),
    };
    let plan = decision.subject().plan.as_deref().unwrap_or(NO_PLAN);
    (reason, plan)
}

/// Calls `f` with the line of one decision with `reason` and `plan`.
fn with_line<R>(reason: &str, plan: &str, f: impl FnOnce(&Line<'_>) -> R) -> R {
    let metrics = [count(DECISIONS, 1)];
    let dimensions = [("Plan", plan), ("Reason", reason)];
    f(&Line {
        dimension_sets: DIMENSION_SETS,
        dimensions: &dimensions,
        metrics: &metrics,
    })
}

/// Prints the metric line of one decision.
pub fn emit_decision(outcome: &Outcome) {
    let (reason, plan) = dimensions(&outcome.decision);
    with_line(reason, plan, metrics::emit);
}

/// Prints the metric line of an unreadable event.
pub fn emit_unreadable() {
    with_line(UNREADABLE_EVENT, NO_PLAN, metrics::emit);
}

/// The line [`emit_decision`] prints, for `function` at `timestamp_ms`.
pub fn render_decision(outcome: &Outcome, function: &str, timestamp_ms: i64) -> String {
    let (reason, plan) = dimensions(&outcome.decision);
    with_line(reason, plan, |line| line.render(function, timestamp_ms))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Value;
    use tollgate_core::decision::Subject;
    use tollgate_core::{ApiKey, DenyReason, Identity};

    fn outcome(decision: Decision, key: &ApiKey) -> Outcome {
        Outcome {
            decision,
            principal: format!("key:{}", key.key_id()),
            referer: Some("referer:shop.example".into()),
            key_id: Some(key.key_id()),
        }
    }

    fn subject(key: &ApiKey, plan: Option<&str>) -> Subject {
        Subject {
            identity: Some(Identity::Key(key.key_id())),
            customer: Some("acme-customer".into()),
            plan: plan.map(str::to_owned),
        }
    }

    #[test]
    fn a_decision_is_one_count_by_reason_and_plan_and_names_no_secret() {
        let key = ApiKey::generate([7u8; 32]);
        let cases = [
            (
                Decision::Allow {
                    subject: subject(&key, Some("pro")),
                    degraded: false,
                },
                ALLOWED,
                "pro",
            ),
            (
                Decision::Allow {
                    subject: subject(&key, Some("pro")),
                    degraded: true,
                },
                ALLOWED_STORE_UNAVAILABLE,
                "pro",
            ),
            (
                Decision::Deny {
                    subject: subject(&key, None),
                    reason: DenyReason::StoreUnavailable,
                },
                "store_unavailable",
                NO_PLAN,
            ),
            (
                Decision::Deny {
                    subject: subject(&key, Some("free")),
                    reason: DenyReason::RevokedKey,
                },
                "revoked_key",
                "free",
            ),
        ];
        for (decision, reason, plan) in cases {
            let text = render_decision(&outcome(decision, &key), "tollgate-fn", 1);
            let v: Value = serde_json::from_str(&text).unwrap();
            let d = &v["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(d["Namespace"], "Tollgate");
            assert_eq!(
                d["Dimensions"],
                serde_json::json!([
                    ["FunctionName"],
                    ["FunctionName", "Reason"],
                    ["FunctionName", "Plan", "Reason"]
                ])
            );
            assert_eq!(
                d["Metrics"],
                serde_json::json!([{"Name": DECISIONS, "Unit": "Count"}])
            );
            assert_eq!(v[DECISIONS], 1);
            assert_eq!(v["Reason"], reason);
            assert_eq!(v["Plan"], plan);
            assert!(REASONS.contains(&reason));
            for secret in [
                key.expose_secret(),
                key.key_id().as_str(),
                "acme-customer",
                "shop.example",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }

    #[test]
    fn the_reason_set_holds_every_deny_code() {
        for reason in [
            DenyReason::UnknownKey,
            DenyReason::MalformedKey,
            DenyReason::NoIdentity,
            DenyReason::RevokedKey,
            DenyReason::ExpiredKey,
            DenyReason::UnknownPlan,
            DenyReason::StoreUnavailable,
        ] {
            assert!(REASONS.contains(&reason.code()), "{}", reason.code());
        }
        assert!(REASONS.contains(&"quota_exceeded"));
        for r in STORE_FAILURE_REASONS {
            assert!(REASONS.contains(r));
        }
    }
}
