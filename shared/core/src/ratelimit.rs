//! What a client is told when a quota denies it: `Retry-After` and the IETF
//! `RateLimit-Policy` / `RateLimit` header field values
//! (draft-ietf-httpapi-ratelimit-headers-11), computed once here so the
//! authorizer's context hands the gateway ready values.

use crate::{DenyReason, UnixMillis};

/// The header values of one quota denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitFields {
    /// Whole seconds until the period ends, rounded up (`Retry-After`).
    pub retry_after: i64,
    /// `RateLimit-Policy`: `"<window>";q=<limit>;w=<period seconds>`.
    pub policy: String,
    /// `RateLimit`: `"<window>";r=0;t=<seconds to reset>`.
    pub ratelimit: String,
}

impl RateLimitFields {
    /// The fields for a quota denial at `now`; `None` for other reasons.
    pub fn of(reason: &DenyReason, now: UnixMillis) -> Option<Self> {
        let DenyReason::QuotaExceeded { period, limit, .. } = reason else {
            return None;
        };
        let end = period.end();
        let retry_after = ((end - now).max(0) + 999) / 1000;
        let window_seconds = ((end - period.start).max(0) + 999) / 1000;
        let name = period.window.as_str();
        Some(RateLimitFields {
            retry_after,
            policy: format!("\"{name}\";q={limit};w={window_seconds}"),
            ratelimit: format!("\"{name}\";r=0;t={retry_after}"),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{MeterName, Window};

    const NOW: UnixMillis = 1_795_000_000_000;

    fn quota(window: Window, limit: u64) -> DenyReason {
        DenyReason::QuotaExceeded {
            meter: MeterName::requests(),
            period: window.period_of(NOW).unwrap(),
            limit,
        }
    }

    #[test]
    fn a_day_quota_gives_the_draft_header_values() {
        let reason = quota(Window::Day, 1500);
        let day_end = Window::Day.period_of(NOW).unwrap().end();
        // One hour before the day ends.
        let f = RateLimitFields::of(&reason, day_end - 3_600_000).unwrap();
        assert_eq!(f.retry_after, 3600);
        assert_eq!(f.policy, "\"day\";q=1500;w=86400");
        assert_eq!(f.ratelimit, "\"day\";r=0;t=3600");
        // Part of a second left rounds up; past the end is zero.
        assert_eq!(
            RateLimitFields::of(&reason, day_end - 1)
                .unwrap()
                .retry_after,
            1
        );
        assert_eq!(
            RateLimitFields::of(&reason, day_end + 5)
                .unwrap()
                .retry_after,
            0
        );
    }

    #[test]
    fn each_window_names_itself_and_its_length() {
        for (window, seconds) in [(Window::Minute, 60), (Window::Hour, 3600)] {
            let f = RateLimitFields::of(&quota(window, 7), NOW).unwrap();
            assert_eq!(f.policy, format!("\"{}\";q=7;w={seconds}", window.as_str()));
            assert!(f.retry_after > 0 && f.retry_after <= seconds);
        }
        // A month is as long as the calendar month.
        let f = RateLimitFields::of(&quota(Window::Month, 1), NOW).unwrap();
        let w: i64 = f.policy.rsplit("w=").next().unwrap().parse().unwrap();
        assert!((28 * 86_400..=31 * 86_400).contains(&w), "{}", f.policy);
    }

    #[test]
    fn other_denials_have_none() {
        for r in [
            DenyReason::UnknownKey,
            DenyReason::StoreUnavailable,
            DenyReason::NoIdentity,
        ] {
            assert!(RateLimitFields::of(&r, NOW).is_none());
        }
    }
}
