//! Which log payloads are accepted and which requests count (the rules the
//! log-processor applies, kept here so that they are tested on their own).
//!
//! - [`LogSources`]: the log groups and the account a log-processor takes
//!   payloads from; anything else is dropped (counted as rejected), so that
//!   another log group (or any `PutRecord` into the stream) cannot charge
//!   usage to any identity.
//! - [`StatusRanges`], [`GATEWAY_DENIALS`] and [`count_access`]: which API
//!   Gateway access log lines count, and for whom.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::{Identity, Ipv6Prefix};

/// Where payloads may come from: a set of log groups (empty: any) and an
/// account (`None`: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSources {
    log_groups: BTreeSet<String>,
    account: Option<String>,
}

/// Why a payload's source is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceRejection {
    /// The payload's `logGroup` is not one of the configured log groups.
    #[error("log group is not one of the configured log groups")]
    LogGroup,
    /// The payload's `owner` is not the configured account.
    #[error("owner is not the configured account")]
    Owner,
}

impl SourceRejection {
    /// A short, stable reason code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceRejection::LogGroup => "log_group_not_allowed",
            SourceRejection::Owner => "owner_not_allowed",
        }
    }
}

impl LogSources {
    /// Payloads from these log groups (none: any log group) of this account
    /// (`None`: any account).
    pub fn new<I, S>(log_groups: I, account: Option<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        LogSources {
            log_groups: log_groups.into_iter().map(Into::into).collect(),
            account,
        }
    }

    /// Whether any log group is accepted (no log group configured).
    pub fn any_log_group(&self) -> bool {
        self.log_groups.is_empty()
    }

    /// The configured log groups (empty: any).
    pub fn log_groups(&self) -> &BTreeSet<String> {
        &self.log_groups
    }

    /// The configured account, if any.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// Checks a data payload's `logGroup` and `owner`.
    pub fn check(&self, log_group: &str, owner: &str) -> Result<(), SourceRejection> {
        if !self.log_groups.is_empty() && !self.log_groups.contains(log_group) {
            return Err(SourceRejection::LogGroup);
        }
        match &self.account {
            Some(account) if account != owner => Err(SourceRejection::Owner),
            _ => Ok(()),
        }
    }
}

/// Inclusive HTTP status ranges, such as `200-499` or `200-299,404`: the
/// statuses of access-log requests that count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRanges(Vec<(u16, u16)>);

impl StatusRanges {
    /// The default: 2xx, 3xx and 4xx count; 5xx (the provider's failures) do not.
    pub fn default_counted() -> Self {
        StatusRanges(vec![(200, 499)])
    }

    /// Parses `200-499`, `200-299,404` or `2xx,4xx`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let range = if let Some(class) = part.strip_suffix("xx") {
                let d: u16 = class
                    .parse()
                    .ok()
                    .filter(|d| (1..=5).contains(d))
                    .ok_or_else(|| format!("{part:?} is not a status class 1xx-5xx"))?;
                (d * 100, d * 100 + 99)
            } else if let Some((a, b)) = part.split_once('-') {
                (status(a)?, status(b)?)
            } else {
                let s = status(part)?;
                (s, s)
            };
            if range.0 > range.1 {
                return Err(format!("{part:?} is an empty range"));
            }
            ranges.push(range);
        }
        if ranges.is_empty() {
            return Err("expected ranges such as 200-499 or 2xx,4xx".into());
        }
        Ok(StatusRanges(ranges))
    }

    /// Whether `status` is in one of the ranges.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&status))
    }
}

fn status(text: &str) -> Result<u16, String> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("{text:?} is not an HTTP status 100-599"))
}

/// The gateway response of a request whose API key was unknown, malformed,
/// revoked or expired (the authorizer raised `Unauthorized`): charged to
/// the anonymous identity of its source IP, so that guessing keys spends
/// that IP's free quota.
pub const UNAUTHORIZED: &str = "UNAUTHORIZED";

/// Gateway responses that mean the request was stopped before the API:
/// tollgate's own denials (the authorizer denied it, found no identity, or
/// failed) and API Gateway's own throttles and filters. They are not
/// counted for the caller ([`UNAUTHORIZED`] is charged to the source IP).
pub const GATEWAY_DENIALS: [&str; 9] = [
    "ACCESS_DENIED",
    UNAUTHORIZED,
    "AUTHORIZER_FAILURE",
    "AUTHORIZER_CONFIGURATION_ERROR",
    "MISSING_AUTHENTICATION_TOKEN",
    "INVALID_API_KEY",
    "THROTTLED",
    "QUOTA_EXCEEDED",
    "WAF_FILTERED",
];

/// Why a valid access line is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCounted {
    /// The status is outside the counted [`StatusRanges`].
    Status,
    /// The gateway or the authorizer stopped the request (see [`GATEWAY_DENIALS`]).
    Denied,
    /// The request carries no identity (no tollgate authorizer on its route).
    NoIdentity,
}

/// The values of one access line that decide whether and whom it charges,
/// each `None` when API Gateway had no value (`""` or `"-"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessRequest<'a> {
    /// `$context.status`.
    pub status: u16,
    /// `$context.error.responseType`.
    pub error_type: Option<&'a str>,
    /// `$context.authorizer.error`.
    pub authorizer_error: Option<&'a str>,
    /// The authorizer context's `identity`.
    pub identity: Option<&'a str>,
    /// `$context.authorizer.principalId`.
    pub principal_id: Option<&'a str>,
    /// `$context.identity.sourceIp`.
    pub ip: Option<&'a str>,
    /// The authorizer context's `referer` (`referer:<host>`).
    pub referer: Option<&'a str>,
}

/// Whom an access line charges one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessCharge {
    /// The caller the authorizer named: its `identity` (or, without one,
    /// its `principalId`, when that is an identity's text form); with
    /// `referer`, also the line's `referer` identity (an allowed anonymous
    /// request with a Referer: both its IP and its Referer are limited).
    Caller {
        /// The identity is the `principalId` (no `identity` value).
        principal: bool,
        /// The `referer` identity is charged too.
        referer: bool,
    },
    /// An [`UNAUTHORIZED`] request: the anonymous identity of its source
    /// IP (through [`Identity::anonymous_ip`], the one anonymous-IP rule).
    SourceIp(Identity),
    /// Nothing is charged.
    NotCounted(NotCounted),
}

/// Which access lines count, and for whom:
///
/// 1. [`UNAUTHORIZED`] (an unknown or malformed key) charges the source
///    IP's anonymous identity, whatever the status (a line without a
///    readable IP is a denial);
/// 2. any other denial (a [`GATEWAY_DENIALS`] response or an authorizer
///    error) is not counted;
/// 3. a status outside `statuses` is not counted;
/// 4. otherwise the caller is charged: its `identity`, or its
///    `principalId` when that is an identity's text form; an anonymous
///    (`ip:`) caller's `referer:` identity is charged as well;
/// 5. a line with no identity is not counted.
pub fn count_access(
    request: &AccessRequest<'_>,
    statuses: &StatusRanges,
    ipv6_prefix: Ipv6Prefix,
) -> AccessCharge {
    if request.error_type == Some(UNAUTHORIZED) && request.authorizer_error.is_none() {
        return match request.ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) {
            Some(addr) => AccessCharge::SourceIp(Identity::anonymous_ip(addr, ipv6_prefix)),
            None => AccessCharge::NotCounted(NotCounted::Denied),
        };
    }
    let denied = request
        .error_type
        .is_some_and(|t| GATEWAY_DENIALS.contains(&t))
        || request.authorizer_error.is_some();
    if denied {
        return AccessCharge::NotCounted(NotCounted::Denied);
    }
    if !statuses.contains(request.status) {
        return AccessCharge::NotCounted(NotCounted::Status);
    }
    let (identity, principal) = match (request.identity, request.principal_id) {
        (Some(id), _) => (id, false),
        // A principal id counts only when it is an identity's text form.
        (None, Some(p)) if p.parse::<Identity>().is_ok() => (p, true),
        _ => return AccessCharge::NotCounted(NotCounted::NoIdentity),
    };
    let referer = identity.starts_with("ip:")
        && request
            .referer
            .is_some_and(|r| r.starts_with("referer:") && r.parse::<Identity>().is_ok());
    AccessCharge::Caller { principal, referer }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sources_accept_only_what_is_configured() {
        let any = LogSources::default();
        assert!(any.any_log_group());
        assert_eq!(any.check("anything", "any owner"), Ok(()));
        let only = LogSources::new(["/aws/api/access", "other"], Some("123456789012".into()));
        assert!(!only.any_log_group());
        assert_eq!(only.check("/aws/api/access", "123456789012"), Ok(()));
        assert_eq!(only.check("other", "123456789012"), Ok(()));
        assert_eq!(
            only.check("/aws/api/access2", "123456789012"),
            Err(SourceRejection::LogGroup)
        );
        assert_eq!(
            only.check("/aws/api/ACCESS", "123456789012"),
            Err(SourceRejection::LogGroup),
            "log group names are case-sensitive"
        );
        assert_eq!(
            only.check("/aws/api/access", "210987654321"),
            Err(SourceRejection::Owner)
        );
        assert_eq!(only.check("", ""), Err(SourceRejection::LogGroup));
        let account_only = LogSources::new(Vec::<String>::new(), Some("1".into()));
        assert_eq!(account_only.check("g", "1"), Ok(()));
        assert_eq!(account_only.check("g", "2"), Err(SourceRejection::Owner));
        assert_eq!(SourceRejection::Owner.reason(), "owner_not_allowed");
    }

    #[test]
    fn status_ranges() {
        let d = StatusRanges::default_counted();
        assert!(d.contains(200) && d.contains(499) && !d.contains(500) && !d.contains(199));
        let r = StatusRanges::parse("2xx, 404").unwrap();
        assert!(r.contains(204) && r.contains(404) && !r.contains(403));
        let r = StatusRanges::parse("200-201").unwrap();
        assert!(r.contains(201) && !r.contains(202));
        for bad in [
            "", ",", "9xx", "0xx", "500-200", "abc", "99", "600", "1-2-3",
        ] {
            assert!(StatusRanges::parse(bad).is_err(), "{bad}");
        }
    }

    fn allowed<'a>(identity: &'a str, referer: &'a str) -> AccessRequest<'a> {
        AccessRequest {
            status: 200,
            identity: Some(identity),
            ip: Some("198.51.100.9"),
            referer: Some(referer),
            ..AccessRequest::default()
        }
    }

    #[test]
    fn which_access_lines_count_and_for_whom() {
        let d = StatusRanges::default_counted();
        let caller = |principal, referer| AccessCharge::Caller { principal, referer };
        assert_eq!(
            count_access(
                &allowed("key:k", "referer:a.example"),
                &d,
                Ipv6Prefix::DEFAULT
            ),
            caller(false, false),
            "a key's Referer is not charged"
        );
        assert_eq!(
            count_access(
                &allowed("ip:203.0.113.7", "referer:a.example"),
                &d,
                Ipv6Prefix::DEFAULT
            ),
            caller(false, true)
        );
        for bad in [
            "a.example",
            "referer:",
            "referer:-bad-",
            "key:k",
            "ip:1.2.3.4",
        ] {
            assert_eq!(
                count_access(&allowed("ip:203.0.113.7", bad), &d, Ipv6Prefix::DEFAULT),
                caller(false, false),
                "{bad}"
            );
        }
        let mut r = allowed("ip:203.0.113.7", "referer:a.example");
        r.referer = None;
        assert_eq!(
            count_access(&r, &d, Ipv6Prefix::DEFAULT),
            caller(false, false)
        );
        r.identity = None;
        r.principal_id = Some("key:p");
        assert_eq!(
            count_access(&r, &d, Ipv6Prefix::DEFAULT),
            caller(true, false)
        );
        r.principal_id = Some("cust_1");
        assert_eq!(
            count_access(&r, &d, Ipv6Prefix::DEFAULT),
            AccessCharge::NotCounted(NotCounted::NoIdentity)
        );
        let mut r = allowed("key:k", "-");
        r.status = 503;
        assert_eq!(
            count_access(&r, &d, Ipv6Prefix::DEFAULT),
            AccessCharge::NotCounted(NotCounted::Status)
        );
        for denial in GATEWAY_DENIALS.iter().filter(|d| **d != UNAUTHORIZED) {
            let mut r = allowed("key:k", "-");
            r.error_type = Some(denial);
            r.status = 403;
            assert_eq!(
                count_access(&r, &d, Ipv6Prefix::DEFAULT),
                AccessCharge::NotCounted(NotCounted::Denied),
                "{denial}"
            );
        }
        let mut r = allowed("key:k", "-");
        r.authorizer_error = Some("boom");
        assert_eq!(
            count_access(&r, &d, Ipv6Prefix::DEFAULT),
            AccessCharge::NotCounted(NotCounted::Denied)
        );
    }

    #[test]
    fn unauthorized_lines_charge_the_source_ip() {
        let d = StatusRanges::default_counted();
        let unauthorized = |ip: Option<&'static str>| AccessRequest {
            status: 401,
            error_type: Some(UNAUTHORIZED),
            ip,
            ..AccessRequest::default()
        };
        assert_eq!(
            count_access(&unauthorized(Some("203.0.113.7")), &d, Ipv6Prefix::DEFAULT),
            AccessCharge::SourceIp(Identity::anonymous_ip(
                "203.0.113.7".parse().unwrap(),
                Ipv6Prefix::DEFAULT
            ))
        );
        // Through the one anonymous-IP rule: an IPv4-mapped address is its IPv4 identity.
        assert_eq!(
            count_access(
                &unauthorized(Some("::ffff:203.0.113.7")),
                &d,
                Ipv6Prefix::DEFAULT
            ),
            count_access(&unauthorized(Some("203.0.113.7")), &d, Ipv6Prefix::DEFAULT)
        );
        // Whatever the counted statuses.
        assert!(matches!(
            count_access(
                &unauthorized(Some("2001:db8::1")),
                &StatusRanges::parse("2xx").unwrap(),
                Ipv6Prefix::DEFAULT
            ),
            AccessCharge::SourceIp(_)
        ));
        for ip in [None, Some("not an ip"), Some("")] {
            assert_eq!(
                count_access(&unauthorized(ip), &d, Ipv6Prefix::DEFAULT),
                AccessCharge::NotCounted(NotCounted::Denied)
            );
        }
        // An authorizer failure is not a key guess.
        let mut r = unauthorized(Some("203.0.113.7"));
        r.authorizer_error = Some("boom");
        assert_eq!(
            count_access(&r, &d, Ipv6Prefix::DEFAULT),
            AccessCharge::NotCounted(NotCounted::Denied)
        );
    }
}
