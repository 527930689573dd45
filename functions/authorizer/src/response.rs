//! Responses, the last step of a request: an [`Outcome`] becomes the error
//! `Unauthorized` (an unusable key: API Gateway's 401), an IAM policy for
//! REST TOKEN and REQUEST authorizers, or the simple response for HTTP API
//! payload 2.0, rendered once. Both carry a context with the identity,
//! customer and plan and, on denial, why and until when.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use tollgate_core::{Decision, DenyReason, RateLimitFields, UnixMillis};

use crate::event::{Event, EventKind};

/// The error API Gateway turns into 401: its message is exactly `Unauthorized`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthorized;

impl fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Unauthorized")
    }
}

impl std::error::Error for Unauthorized {}

impl From<Unauthorized> for lambda_runtime::Diagnostic {
    fn from(_: Unauthorized) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "Unauthorized".to_owned(),
            error_message: "Unauthorized".to_owned(),
        }
    }
}

/// What the handler decided about one request, with what the response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// The identity text (`key:<id>`, `ip:<addr>`), or `unidentified`.
    pub principal: String,
    /// The Referer identity checked for an anonymous caller, if any.
    pub referer: Option<String>,
    /// The key id, when a key of the right shape was presented.
    pub key_id: Option<String>,
}

/// The principal of requests with no identity (malformed key, no client IP).
pub const UNIDENTIFIED: &str = "unidentified";

/// The context's `referer` when no Referer identity was checked.
pub const NO_REFERER: &str = "-";

#[derive(Debug, Serialize)]
struct Context<'a> {
    identity: &'a str,
    customer: &'a str,
    plan: &'a str,
    /// The Referer identity checked (`referer:<host>`), or `-`.
    referer: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// The HTTP status the API should answer a denial with (429 for quota).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    /// When the quota resets, epoch milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_at: Option<UnixMillis>,
    /// The same instant in RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_at_rfc3339: Option<String>,
    /// Seconds until the reset, rounded up (for a `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<i64>,
    /// The `RateLimit-Policy` header value of the limit reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratelimit_policy: Option<String>,
    /// The `RateLimit` header value (nothing remains until the reset).
    #[serde(skip_serializing_if = "Option::is_none")]
    ratelimit: Option<String>,
    /// Allowed only because the store failed under an `open` policy.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
}

#[derive(Debug, Serialize)]
struct Statement<'a> {
    #[serde(rename = "Action")]
    action: &'static str,
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Resource")]
    resource: &'a str,
}

#[derive(Debug, Serialize)]
struct PolicyDocument<'a> {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statement: [Statement<'a>; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyResponse<'a> {
    principal_id: &'a str,
    policy_document: PolicyDocument<'a>,
    context: Context<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_identifier_key: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SimpleResponse<'a> {
    is_authorized: bool,
    context: Context<'a>,
}

/// The HTTP status a denial should be answered with.
pub fn status_of(reason: &DenyReason) -> u16 {
    match reason {
        DenyReason::QuotaExceeded { .. } => 429,
        DenyReason::StoreUnavailable => 503,
        _ => 403,
    }
}

fn context<'a>(outcome: &'a Outcome, now: UnixMillis) -> Context<'a> {
    let subject = outcome.decision.subject();
    let mut ctx = Context {
        identity: &outcome.principal,
        customer: subject.customer.as_deref().unwrap_or(""),
        plan: subject.plan.as_deref().unwrap_or(""),
        referer: outcome.referer.as_deref().unwrap_or(NO_REFERER),
        reason: None,
        status: None,
        reset_at: None,
        reset_at_rfc3339: None,
        retry_after: None,
        ratelimit_policy: None,
        ratelimit: None,
        degraded: false,
    };
    match &outcome.decision {
        Decision::Allow { degraded, .. } => ctx.degraded = *degraded,
        Decision::Deny { reason, .. } => {
            ctx.reason = Some(reason.code());
            ctx.status = Some(status_of(reason));
            if let Some(reset) = reason.reset_at() {
                ctx.reset_at = Some(reset);
                ctx.reset_at_rfc3339 = DateTime::<Utc>::from_timestamp_millis(reset)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
            }
            if let Some(fields) = RateLimitFields::of(reason, now) {
                ctx.retry_after = Some(fields.retry_after);
                ctx.ratelimit_policy = Some(fields.policy);
                ctx.ratelimit = Some(fields.ratelimit);
            }
        }
    }
    ctx
}

/// The answer to `event`: `Unauthorized` when the outcome is an unusable
/// key (unknown, malformed, revoked, expired), else the response JSON
/// ([`render`]).
pub fn respond(
    event: &Event<'_>,
    outcome: &Outcome,
    usage_key: bool,
    now: UnixMillis,
) -> Result<Box<RawValue>, Unauthorized> {
    if matches!(&outcome.decision, Decision::Deny { reason, .. } if reason.is_unauthorized()) {
        return Err(Unauthorized);
    }
    Ok(render(
        event.kind,
        event.resource.as_deref(),
        outcome,
        usage_key,
        now,
    ))
}

/// The response JSON for `outcome`, serialised once into the raw value the
/// runtime sends. `resource` is the stage-wide policy resource (REST
/// events); `usage_key` adds `usageIdentifierKey` = the key id.
pub fn render(
    kind: EventKind,
    resource: Option<&str>,
    outcome: &Outcome,
    usage_key: bool,
    now: UnixMillis,
) -> Box<RawValue> {
    let allowed = outcome.decision.is_allowed();
    let ctx = context(outcome, now);
    let json = match (kind, resource) {
        (EventKind::Token | EventKind::Request, Some(resource)) => {
            serde_json::value::to_raw_value(&PolicyResponse {
                principal_id: &outcome.principal,
                policy_document: PolicyDocument {
                    version: "2012-10-17",
                    statement: [Statement {
                        action: "execute-api:Invoke",
                        effect: if allowed { "Allow" } else { "Deny" },
                        resource,
                    }],
                },
                context: ctx,
                usage_identifier_key: if usage_key && allowed {
                    outcome.key_id.as_deref()
                } else {
                    None
                },
            })
        }
        _ => serde_json::value::to_raw_value(&SimpleResponse {
            is_authorized: allowed,
            context: ctx,
        }),
    };
    // Serialising these plain structs cannot fail; an explicit deny is the
    // safe answer should it ever.
    json.unwrap_or_else(|_| fallback_deny())
}

/// `{"isAuthorized":false,"context":{}}` as a raw value.
fn fallback_deny() -> Box<RawValue> {
    serde_json::value::to_raw_value(&SimpleResponse {
        is_authorized: false,
        context: Context {
            identity: UNIDENTIFIED,
            customer: "",
            plan: "",
            referer: NO_REFERER,
            reason: None,
            status: None,
            reset_at: None,
            reset_at_rfc3339: None,
            retry_after: None,
            ratelimit_policy: None,
            ratelimit: None,
            degraded: false,
        },
    })
    .unwrap_or_else(|_| Box::<RawValue>::default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::{json, Value};
    use tollgate_core::decision::Subject;
    use tollgate_core::{Identity, MeterName, Window};

    const NOW: UnixMillis = 1_795_000_000_000;
    const RES: &str = "arn:aws:execute-api:us-east-1:1:api/prod/*/*";

    fn allow() -> Outcome {
        Outcome {
            decision: Decision::Allow {
                subject: Subject {
                    identity: Some(Identity::key("k_1").unwrap()),
                    customer: Some("acme".into()),
                    plan: Some("pro".into()),
                },
                degraded: false,
            },
            principal: "key:k_1".into(),
            referer: None,
            key_id: Some("k_1".into()),
        }
    }

    #[allow(clippy::boxed_local)]
    fn parse(s: Box<RawValue>) -> Value {
        serde_json::from_str(s.get()).unwrap()
    }

    #[test]
    fn rest_allow_is_a_stage_wide_policy_with_context() {
        let v = parse(render(EventKind::Request, Some(RES), &allow(), true, NOW));
        assert_eq!(
            v,
            json!({
                "principalId": "key:k_1",
                "policyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": RES}]},
                "context": {"identity": "key:k_1", "customer": "acme", "plan": "pro", "referer": "-"},
                "usageIdentifierKey": "k_1"
            })
        );
        let v = parse(render(EventKind::Token, Some(RES), &allow(), false, NOW));
        assert!(v.get("usageIdentifierKey").is_none());
    }

    #[test]
    fn quota_denial_says_why_and_until_when() {
        let period = Window::Day.period_of(NOW).unwrap();
        let out = Outcome {
            decision: Decision::Deny {
                subject: Subject {
                    identity: Some(
                        Identity::parse_anonymous_ip(
                            "192.0.2.1",
                            tollgate_core::Ipv6Prefix::DEFAULT,
                        )
                        .unwrap(),
                    ),
                    customer: None,
                    plan: Some("anonymous".into()),
                },
                reason: DenyReason::QuotaExceeded {
                    meter: MeterName::requests(),
                    period,
                    limit: 100,
                },
            },
            principal: "ip:192.0.2.1".into(),
            referer: Some("referer:example.com".into()),
            key_id: None,
        };
        let v = parse(render(EventKind::Request, Some(RES), &out, true, NOW));
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert!(v.get("usageIdentifierKey").is_none());
        let ctx = &v["context"];
        assert_eq!(ctx["reason"], "quota_exceeded");
        assert_eq!(ctx["status"], 429);
        assert_eq!(ctx["customer"], "");
        assert_eq!(ctx["referer"], "referer:example.com");
        assert_eq!(ctx["reset_at"], period.end());
        let rfc = ctx["reset_at_rfc3339"].as_str().unwrap();
        assert_eq!(
            DateTime::parse_from_rfc3339(rfc)
                .unwrap()
                .timestamp_millis(),
            period.end()
        );
        assert!(rfc.ends_with("T00:00:00Z"), "{rfc}");
        let retry = ctx["retry_after"].as_i64().unwrap();
        assert!(retry > 0 && retry <= 86_400);
        assert_eq!(retry, (period.end() - NOW + 999) / 1000);
        assert_eq!(ctx["ratelimit_policy"], "\"day\";q=100;w=86400");
        assert_eq!(ctx["ratelimit"], format!("\"day\";r=0;t={retry}"));
        // Every context value is a string, number or boolean (what API Gateway accepts).
        for (_, value) in ctx.as_object().unwrap() {
            assert!(value.is_string() || value.is_number() || value.is_boolean());
        }
    }

    #[test]
    fn http_api_gets_the_simple_response_never_a_null_context() {
        let deny = Outcome {
            decision: Decision::Deny {
                subject: Subject::default(),
                reason: DenyReason::MalformedKey,
            },
            principal: UNIDENTIFIED.into(),
            referer: None,
            key_id: None,
        };
        let v = parse(render(EventKind::HttpV2, None, &deny, true, NOW));
        assert_eq!(
            v,
            json!({"isAuthorized": false, "context": {
                "identity": "unidentified", "customer": "", "plan": "", "referer": "-",
                "reason": "malformed_key", "status": 403}})
        );
        let v = parse(render(EventKind::HttpV2, None, &allow(), true, NOW));
        assert_eq!(v["isAuthorized"], true);
        assert!(v["context"].is_object());
    }

    #[test]
    fn degraded_allows_are_marked() {
        let out = Outcome {
            decision: Decision::Allow {
                subject: Subject::default(),
                degraded: true,
            },
            principal: "key:k_1".into(),
            referer: None,
            key_id: Some("k_1".into()),
        };
        let v = parse(render(EventKind::HttpV2, None, &out, false, NOW));
        assert_eq!(v["context"]["degraded"], true);
        assert_eq!(v["context"]["referer"], "-");
        assert!(v["context"].get("ratelimit").is_none());
        assert!(v["context"].get("retry_after").is_none());
        assert_eq!(
            status_of(&DenyReason::StoreUnavailable),
            503,
            "store failures are not the caller's fault"
        );
    }
}
