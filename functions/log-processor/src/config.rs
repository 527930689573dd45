//! The function's configuration, read once from `TOLLGATE_*` variables.

use std::collections::BTreeSet;
use std::time::Duration;

use tollgate_core::{LogSources, MeterName, Region, Window};

/// The statuses that count (the rule lives in `tollgate_core::counting`).
pub use tollgate_core::StatusRanges;
use tollgate_store::{IDEMPOTENCY, USAGE};

/// The largest decompressed CloudWatch Logs payload accepted (16 MiB).
/// CloudWatch Logs sends at most about 1 MB of log events per batch, so a
/// larger payload is a gzip bomb or not a CloudWatch payload at all.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 16 * 1024 * 1024;

/// A rejected configuration value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A variable is required but unset.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable's value is invalid.
    #[error("{var}={value:?} is invalid: {why}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        why: String,
    },
}

/// How Kinesis batches are made exactly-once (`TOLLGATE_KINESIS_DEDUPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KinesisDedupe {
    /// `watermark` (the default): the whole batch is aggregated, and each
    /// counter is raised with one conditional update that moves its
    /// per-shard watermark ([`tollgate_core::watermark`]): one write unit
    /// per counter, no dedupe record. Needs in-order delivery per shard
    /// (parallelization factor 1).
    Watermark,
    /// `transaction`: each record's increments are committed with a dedupe
    /// marker in transactions (two write units per counter), as for direct
    /// deliveries. Works with any parallelization factor.
    Transaction,
}

/// Everything the handler needs to know besides its clients.
#[derive(Debug, Clone)]
pub struct Config {
    /// The prefix an IPv6 source address of an `UNAUTHORIZED` line is
    /// charged by (`TOLLGATE_ANONYMOUS_IPV6_PREFIX`, default 64), as the
    /// authorizer meters it.
    pub ipv6_prefix: tollgate_core::Ipv6Prefix,
    /// The Usage table (`TOLLGATE_USAGE_TABLE`).
    pub usage_table: String,
    /// The Idempotency table (`TOLLGATE_IDEMPOTENCY_TABLE`).
    pub idempotency_table: String,
    /// This stack's region (`TOLLGATE_REGION`, else `AWS_REGION`): only its
    /// Usage items are written.
    pub region: Region,
    /// The windows counted (`TOLLGATE_WINDOWS`, default `day,month`).
    pub windows: Vec<Window>,
    /// The windows counted for anonymous identities
    /// (`TOLLGATE_ANONYMOUS_WINDOWS`, default: the same as `windows`).
    /// Their counters share bucket items of one period each, so every
    /// window is a write of its own: count only the windows that the
    /// anonymous plan limits (for a plan of daily limits, `day`).
    pub anonymous_windows: Vec<Window>,
    /// The statuses of access-log requests that count (`TOLLGATE_COUNT_STATUS`, default `200-499`).
    pub count_status: StatusRanges,
    /// Meters of application lines aggregated as `max` (`TOLLGATE_MAX_METERS`,
    /// comma-separated; default none). `requests` is a count; every other meter a sum.
    pub max_meters: BTreeSet<MeterName>,
    /// The decompressed payload cap in bytes (`TOLLGATE_MAX_DECOMPRESSED_BYTES`, default 16 MiB).
    pub max_decompressed: usize,
    /// How long a batch's dedupe markers are kept (`TOLLGATE_DEDUPE_HOURS`, default 48):
    /// longer than any redelivery (CloudWatch retries for up to 24 hours; Kinesis
    /// keeps records 24 hours by default).
    pub dedupe_ttl: Duration,
    /// The namespace of the dedupe markers (`TOLLGATE_DEDUPE_NAMESPACE`, default `log-processor`).
    pub dedupe_namespace: String,
    /// How Kinesis batches are deduplicated (`TOLLGATE_KINESIS_DEDUPE`,
    /// `watermark` or `transaction`; default `watermark`).
    pub kinesis_dedupe: KinesisDedupe,
    /// Whether month counters carry the top index key (`TOLLGATE_TOP_INDEX`,
    /// default `false`; see [`tollgate_store::usage::TOP_INDEX_VAR`]).
    pub top_index: bool,
    /// The log groups (`TOLLGATE_LOG_GROUPS`, comma-separated; empty or
    /// unset: any log group) and the account (`TOLLGATE_ACCOUNT_ID`, 12
    /// digits; unset: any) whose payloads are counted. A payload from
    /// anywhere else is dropped and counted as rejected.
    pub sources: LogSources,
}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// Warns (once, at start) when no log group is configured: any log
    /// group of the account that can reach the function can then charge
    /// usage.
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Self::from_lookup(|name| std::env::var(name).ok())?;
        if config.sources.any_log_group() {
            tracing::warn!(
                variable = "TOLLGATE_LOG_GROUPS",
                "no log group configured: payloads of any log group are counted"
            );
        }
        Ok(config)
    }

    /// Reads the configuration through `lookup` (a variable's value, if set).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let invalid = |var: &'static str, value: &str, why: String| ConfigError::Invalid {
            var,
            value: value.to_owned(),
            why,
        };

        let region_text = get("TOLLGATE_REGION")
            .or_else(|| get("AWS_REGION"))
            .ok_or(ConfigError::Missing("TOLLGATE_REGION"))?;
        let region = Region::new(region_text.trim())
            .map_err(|e| invalid("TOLLGATE_REGION", &region_text, e.to_string()))?;

        let windows = match get("TOLLGATE_WINDOWS") {
            None => vec![Window::Day, Window::Month],
            Some(text) => parse_windows("TOLLGATE_WINDOWS", &text)?,
        };
        let anonymous_windows = match get("TOLLGATE_ANONYMOUS_WINDOWS") {
            None => windows.clone(),
            Some(text) => parse_windows("TOLLGATE_ANONYMOUS_WINDOWS", &text)?,
        };

        let count_status = match get("TOLLGATE_COUNT_STATUS") {
            None => StatusRanges::default_counted(),
            Some(text) => StatusRanges::parse(&text)
                .map_err(|why| invalid("TOLLGATE_COUNT_STATUS", &text, why))?,
        };

        let mut max_meters = BTreeSet::new();
        if let Some(text) = get("TOLLGATE_MAX_METERS") {
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let meter = MeterName::new(part)
                    .map_err(|e| invalid("TOLLGATE_MAX_METERS", &text, e.to_string()))?;
                if meter.as_str() == MeterName::REQUESTS {
                    return Err(invalid(
                        "TOLLGATE_MAX_METERS",
                        &text,
                        "requests is always a count".into(),
                    ));
                }
                max_meters.insert(meter);
            }
        }

        let number = |var: &'static str, default: u64, min: u64, max: u64| match get(var) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| invalid(var, &text, format!("expected a whole number {min}-{max}"))),
        };
        let max_decompressed = number(
            "TOLLGATE_MAX_DECOMPRESSED_BYTES",
            DEFAULT_MAX_DECOMPRESSED as u64,
            1024,
            256 * 1024 * 1024,
        )? as usize;
        let dedupe_hours = number("TOLLGATE_DEDUPE_HOURS", 48, 1, 24 * 366)?;
        let kinesis_dedupe = match get("TOLLGATE_KINESIS_DEDUPE").as_deref().map(str::trim) {
            None | Some("watermark") => KinesisDedupe::Watermark,
            Some("transaction") => KinesisDedupe::Transaction,
            Some(other) => {
                return Err(invalid(
                    "TOLLGATE_KINESIS_DEDUPE",
                    other,
                    "expected watermark or transaction".into(),
                ))
            }
        };

        let top_index = tollgate_store::usage::parse_top_index(
            get(tollgate_store::usage::TOP_INDEX_VAR).as_deref(),
        )
        .map_err(|why| {
            invalid(
                "TOLLGATE_TOP_INDEX",
                &get("TOLLGATE_TOP_INDEX").unwrap_or_default(),
                why,
            )
        })?;

        let log_groups: Vec<String> = get("TOLLGATE_LOG_GROUPS")
            .map(|text| {
                text.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let account = match get("TOLLGATE_ACCOUNT_ID") {
            None => None,
            Some(text) => {
                let id = text.trim();
                if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(
                        "TOLLGATE_ACCOUNT_ID",
                        &text,
                        "expected a 12-digit AWS account id".into(),
                    ));
                }
                Some(id.to_owned())
            }
        };

        Ok(Config {
            usage_table: get(USAGE.env_var).unwrap_or_else(|| USAGE.default_name.to_owned()),
            idempotency_table: get(IDEMPOTENCY.env_var)
                .unwrap_or_else(|| IDEMPOTENCY.default_name.to_owned()),
            region,
            windows,
            anonymous_windows,
            count_status,
            max_meters,
            max_decompressed,
            dedupe_ttl: Duration::from_secs(dedupe_hours * 3600),
            dedupe_namespace: get("TOLLGATE_DEDUPE_NAMESPACE")
                .unwrap_or_else(|| "log-processor".to_owned()),
            kinesis_dedupe,
            top_index,
            sources: LogSources::new(log_groups, account),
            ipv6_prefix: tollgate_core::Ipv6Prefix::from_setting(
                get(tollgate_core::Ipv6Prefix::ENV).as_deref(),
            )
            .map_err(|e| {
                invalid(
                    tollgate_core::Ipv6Prefix::ENV,
                    &get(tollgate_core::Ipv6Prefix::ENV).unwrap_or_default(),
                    e.to_string(),
                )
            })?,
        })
    }
}

/// A comma-separated list of windows, at least one, in window order.
fn parse_windows(var: &'static str, text: &str) -> Result<Vec<Window>, ConfigError> {
    let invalid = |var: &'static str, value: &str, why: String| ConfigError::Invalid {
        var,
        value: value.to_owned(),
        why,
    };
    let mut set = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let w = part
            .parse::<Window>()
            .map_err(|e| invalid(var, text, e.to_string()))?;
        set.insert(w);
    }
    if set.is_empty() {
        return Err(invalid(
            var,
            text,
            "name at least one of minute, hour, day, month".into(),
        ));
    }
    Ok(set.into_iter().collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[("AWS_REGION", "eu-central-1")]).unwrap();
        assert_eq!(c.region.as_str(), "eu-central-1");
        assert_eq!(c.windows, vec![Window::Day, Window::Month]);
        assert_eq!(c.anonymous_windows, c.windows);
        let c = config(&[("AWS_REGION", "r"), ("TOLLGATE_ANONYMOUS_WINDOWS", "day")]).unwrap();
        assert_eq!(c.anonymous_windows, vec![Window::Day]);
        assert_eq!(c.windows, vec![Window::Day, Window::Month]);
        assert!(c.count_status.contains(200) && c.count_status.contains(404));
        assert!(!c.count_status.contains(500) && !c.count_status.contains(199));
        assert_eq!(c.usage_table, "tollgate-usage");
        assert_eq!(c.idempotency_table, "tollgate-idempotency");
        assert_eq!(c.max_decompressed, 16 * 1024 * 1024);
        assert_eq!(c.dedupe_ttl, Duration::from_secs(48 * 3600));
        assert!(c.max_meters.is_empty());
        assert_eq!(c.kinesis_dedupe, KinesisDedupe::Watermark);
        assert!(!c.top_index);
        assert!(c.sources.any_log_group());
        assert_eq!(c.sources.account(), None);
    }

    #[test]
    fn log_sources() {
        let c = config(&[
            ("AWS_REGION", "r"),
            ("TOLLGATE_LOG_GROUPS", " /aws/api/access , other,,"),
            ("TOLLGATE_ACCOUNT_ID", "123456789012"),
        ])
        .unwrap();
        assert_eq!(
            c.sources.log_groups().iter().collect::<Vec<_>>(),
            ["/aws/api/access", "other"]
        );
        assert_eq!(c.sources.account(), Some("123456789012"));
        assert!(c.sources.check("/aws/api/access", "123456789012").is_ok());
        assert!(c.sources.check("/aws/lambda/x", "123456789012").is_err());
        let c = config(&[("AWS_REGION", "r"), ("TOLLGATE_LOG_GROUPS", " , ")]).unwrap();
        assert!(c.sources.any_log_group(), "an empty list accepts any");
    }

    #[test]
    fn explicit_values() {
        let c = config(&[
            ("TOLLGATE_REGION", "local-a"),
            ("AWS_REGION", "ignored"),
            ("TOLLGATE_WINDOWS", "month, hour,hour"),
            ("TOLLGATE_COUNT_STATUS", "2xx,404"),
            ("TOLLGATE_MAX_METERS", "concurrency"),
            ("TOLLGATE_USAGE_TABLE", "u"),
            ("TOLLGATE_KINESIS_DEDUPE", "transaction"),
            ("TOLLGATE_TOP_INDEX", "true"),
        ])
        .unwrap();
        assert_eq!(c.kinesis_dedupe, KinesisDedupe::Transaction);
        assert!(c.top_index);
        assert_eq!(c.region.as_str(), "local-a");
        assert_eq!(c.windows, vec![Window::Hour, Window::Month]);
        assert_eq!(c.anonymous_windows, c.windows, "the same unless set");
        assert!(c.count_status.contains(204) && c.count_status.contains(404));
        assert!(!c.count_status.contains(403));
        assert!(c
            .max_meters
            .contains(&MeterName::new("concurrency").unwrap()));
        assert_eq!(c.usage_table, "u");
    }

    #[test]
    fn rejections_name_the_variable() {
        assert_eq!(
            config(&[]).unwrap_err(),
            ConfigError::Missing("TOLLGATE_REGION")
        );
        for (var, value) in [
            ("TOLLGATE_WINDOWS", "week"),
            ("TOLLGATE_WINDOWS", ","),
            ("TOLLGATE_ANONYMOUS_WINDOWS", "day,fortnight"),
            ("TOLLGATE_ANONYMOUS_WINDOWS", ","),
            ("TOLLGATE_COUNT_STATUS", "500-200"),
            ("TOLLGATE_COUNT_STATUS", "abc"),
            ("TOLLGATE_COUNT_STATUS", "9xx"),
            ("TOLLGATE_MAX_METERS", "requests"),
            ("TOLLGATE_MAX_DECOMPRESSED_BYTES", "12"),
            ("TOLLGATE_DEDUPE_HOURS", "0"),
            ("TOLLGATE_KINESIS_DEDUPE", "exactly-twice"),
            ("TOLLGATE_TOP_INDEX", "yes"),
            ("TOLLGATE_ACCOUNT_ID", "12345"),
            ("TOLLGATE_ACCOUNT_ID", "12345678901x"),
        ] {
            let err = config(&[("AWS_REGION", "r"), (var, value)]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { var: v, .. } if *v == var),
                "{var}={value}: {err}"
            );
        }
    }
}
