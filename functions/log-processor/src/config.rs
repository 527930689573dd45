//! The function's configuration, read once from `TOLLGATE_*` variables.

use std::collections::BTreeSet;
use std::time::Duration;

use tollgate_core::{Ipv6Prefix, LogSources, MeterName, Region, Window};
use tollgate_lambda::{Env, EnvError};

/// The statuses that count (the rule lives in `tollgate_core::counting`).
pub use tollgate_core::StatusRanges;

/// The largest decompressed CloudWatch Logs payload accepted (16 MiB).
/// CloudWatch Logs sends at most about 1 MB of log events per batch, so a
/// larger payload is a gzip bomb or not a CloudWatch payload at all.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 16 * 1024 * 1024;

/// A configuration that cannot be used; the message names the variable.
pub type ConfigError = EnvError;

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
    /// The windows always counted (`TOLLGATE_WINDOWS`, default
    /// `day,month`); each meter is also counted in every window a plan
    /// limits for it ([`tollgate_core::CountedWindows`]).
    pub windows: Vec<Window>,
    /// The windows always counted for anonymous identities
    /// (`TOLLGATE_ANONYMOUS_WINDOWS`, default: the same as `windows`),
    /// besides those the anonymous plan limits. Their counters share
    /// bucket items of one period each, so every window is a write of its
    /// own: `day` alone suffices when the anonymous plan's limits are its
    /// only use (the plan's other windows are added).
    pub anonymous_windows: Vec<Window>,
    /// The Keys table, whose plans say which windows are counted (`TOLLGATE_KEYS_TABLE`).
    pub keys_table: String,
    /// The plan of identities without a key (`TOLLGATE_ANONYMOUS_PLAN`, default `anonymous`).
    pub anonymous_plan: String,
    /// How long the plans are cached (`TOLLGATE_PLAN_CACHE_SECONDS`, default 60).
    pub plan_cache_ttl: Duration,
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
    /// The Kinesis event source mapping's `ParallelizationFactor`
    /// (`TOLLGATE_KINESIS_PARALLELIZATION_FACTOR`, 1 to 10, default 1; the
    /// template passes the mapping's own value). The watermark dedupe
    /// refuses a factor above 1 at start-up: it would silently discard
    /// interleaved records ([`tollgate_core::watermark::in_order`]).
    pub kinesis_parallelization_factor: u32,
    /// Whether month counters carry the top index key (`TOLLGATE_TOP_INDEX`,
    /// default `false`; see [`tollgate_store::usage::TOP_INDEX_VAR`]).
    pub top_index: bool,
    /// The log groups (`TOLLGATE_LOG_GROUPS`, comma-separated; empty or
    /// unset: any log group) and the account (`TOLLGATE_ACCOUNT_ID`, 12
    /// digits; unset: any) whose payloads are counted. A payload from
    /// anywhere else is dropped and counted as rejected.
    pub sources: LogSources,
}

impl KinesisDedupe {
    /// Reads `TOLLGATE_KINESIS_DEDUPE`: `watermark` (the default when unset)
    /// or `transaction`.
    fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        const VAR: &str = "TOLLGATE_KINESIS_DEDUPE";
        match env.text(VAR).as_deref() {
            None | Some("watermark") => Ok(KinesisDedupe::Watermark),
            Some("transaction") => Ok(KinesisDedupe::Transaction),
            Some(other) => Err(EnvError::invalid(
                VAR,
                other,
                "expected watermark or transaction",
            )),
        }
    }
}

/// The variable that carries the Kinesis mapping's `ParallelizationFactor`.
pub const PARALLELIZATION_FACTOR_VAR: &str = "TOLLGATE_KINESIS_PARALLELIZATION_FACTOR";

/// `TOLLGATE_KINESIS_PARALLELIZATION_FACTOR` (Lambda allows 1 to 10),
/// refused above 1 with the watermark dedupe.
fn parallelization_factor(env: &Env<'_>, dedupe: KinesisDedupe) -> Result<u32, ConfigError> {
    let factor = env.number(PARALLELIZATION_FACTOR_VAR, 1u32, 1..=10)?;
    if dedupe == KinesisDedupe::Watermark && !tollgate_core::watermark::in_order(factor) {
        return Err(EnvError::invalid(
            PARALLELIZATION_FACTOR_VAR,
            &factor.to_string(),
            "1 with TOLLGATE_KINESIS_DEDUPE=watermark (the watermark needs one shard's \
             records in order; set TOLLGATE_KINESIS_DEDUPE=transaction for a larger factor)",
        ));
    }
    Ok(factor)
}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// Warns (once, at start) when no log group is configured: any log
    /// group of the account that can reach the function can then charge
    /// usage.
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Self::read(&Env::process())?;
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
        Self::read(&Env::from_lookup(lookup))
    }

    /// Reads the configuration from `env`, checking the variables in a
    /// fixed order (the first invalid one is reported).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let region = env.region()?;
        let windows = env.windows("TOLLGATE_WINDOWS", &[Window::Day, Window::Month])?;
        let anonymous_windows = env.windows("TOLLGATE_ANONYMOUS_WINDOWS", &windows)?;
        let count_status = count_status(env)?;
        let max_meters = max_meters(env)?;
        let max_decompressed = env.number(
            "TOLLGATE_MAX_DECOMPRESSED_BYTES",
            DEFAULT_MAX_DECOMPRESSED,
            1024..=256 * 1024 * 1024,
        )?;
        let dedupe_hours = env.number("TOLLGATE_DEDUPE_HOURS", 48u64, 1..=24 * 366)?;
        let kinesis_dedupe = KinesisDedupe::read(env)?;
        let kinesis_parallelization_factor = parallelization_factor(env, kinesis_dedupe)?;
        let top_index = env.flag(tollgate_store::usage::TOP_INDEX_VAR, false)?;
        let sources = LogSources::new(env.list::<String>("TOLLGATE_LOG_GROUPS")?, account(env)?);
        let plan_cache_ttl = env.seconds(
            tollgate_app::windows::PLAN_CACHE_VAR,
            tollgate_app::windows::DEFAULT_PLAN_CACHE,
            0..=86_400,
        )?;
        let tables = env.tables();
        Ok(Config {
            keys_table: tables.keys,
            anonymous_plan: env.text_or("TOLLGATE_ANONYMOUS_PLAN", "anonymous"),
            plan_cache_ttl,
            usage_table: tables.usage,
            idempotency_table: tables.idempotency,
            region,
            windows,
            anonymous_windows,
            count_status,
            max_meters,
            max_decompressed,
            dedupe_ttl: Duration::from_secs(dedupe_hours * 3600),
            dedupe_namespace: env.text_or("TOLLGATE_DEDUPE_NAMESPACE", "log-processor"),
            kinesis_dedupe,
            kinesis_parallelization_factor,
            top_index,
            sources,
            ipv6_prefix: ipv6_prefix(env)?,
        })
    }
}

/// `TOLLGATE_ANONYMOUS_IPV6_PREFIX`, read by the rule in `tollgate_core`.
fn ipv6_prefix(env: &Env<'_>) -> Result<Ipv6Prefix, ConfigError> {
    let text = env.text(Ipv6Prefix::ENV);
    Ipv6Prefix::from_setting(text.as_deref())
        .map_err(|e| EnvError::invalid(Ipv6Prefix::ENV, &text.unwrap_or_default(), e.to_string()))
}

/// `TOLLGATE_COUNT_STATUS`, default `200-499`.
fn count_status(env: &Env<'_>) -> Result<StatusRanges, ConfigError> {
    const VAR: &str = "TOLLGATE_COUNT_STATUS";
    match env.text(VAR) {
        None => Ok(StatusRanges::default_counted()),
        Some(text) => StatusRanges::parse(&text).map_err(|why| EnvError::invalid(VAR, &text, why)),
    }
}

/// `TOLLGATE_MAX_METERS`: meter names, never `requests` (always a count).
fn max_meters(env: &Env<'_>) -> Result<BTreeSet<MeterName>, ConfigError> {
    const VAR: &str = "TOLLGATE_MAX_METERS";
    let meters: Vec<MeterName> = env.list(VAR)?;
    if meters.iter().any(|m| m.as_str() == MeterName::REQUESTS) {
        return Err(EnvError::invalid(
            VAR,
            &env.text(VAR).unwrap_or_default(),
            "requests is always a count",
        ));
    }
    Ok(meters.into_iter().collect())
}

/// `TOLLGATE_ACCOUNT_ID`: a 12-digit AWS account id, or unset (any account).
fn account(env: &Env<'_>) -> Result<Option<String>, ConfigError> {
    const VAR: &str = "TOLLGATE_ACCOUNT_ID";
    match env.text(VAR) {
        None => Ok(None),
        Some(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(id)),
        Some(other) => Err(EnvError::invalid(
            VAR,
            &other,
            "expected a 12-digit AWS account id",
        )),
    }
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
        assert_eq!(c.keys_table, "tollgate-keys");
        assert_eq!(c.anonymous_plan, "anonymous");
        assert_eq!(c.plan_cache_ttl, Duration::from_secs(60));
        assert_eq!(c.max_decompressed, 16 * 1024 * 1024);
        assert_eq!(c.dedupe_ttl, Duration::from_secs(48 * 3600));
        assert!(c.max_meters.is_empty());
        assert_eq!(c.kinesis_dedupe, KinesisDedupe::Watermark);
        assert_eq!(c.kinesis_parallelization_factor, 1);
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
            ("TOLLGATE_KEYS_TABLE", "k"),
            ("TOLLGATE_ANONYMOUS_PLAN", "free"),
            ("TOLLGATE_PLAN_CACHE_SECONDS", "5"),
        ])
        .unwrap();
        assert_eq!(
            (c.keys_table.as_str(), c.anonymous_plan.as_str()),
            ("k", "free")
        );
        assert_eq!(c.plan_cache_ttl, Duration::from_secs(5));
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

    /// Issue 16 item 5: the watermark path would silently discard
    /// interleaved records at a factor above 1, so it refuses to start.
    #[test]
    fn the_watermark_refuses_a_parallelization_factor_above_1() {
        let var = PARALLELIZATION_FACTOR_VAR;
        let c = config(&[("AWS_REGION", "r"), (var, "1")]).unwrap();
        assert_eq!(c.kinesis_parallelization_factor, 1);
        for dedupe in [None, Some("watermark")] {
            let mut vars = vec![("AWS_REGION", "r"), (var, "2")];
            vars.extend(dedupe.map(|d| ("TOLLGATE_KINESIS_DEDUPE", d)));
            let err = config(&vars).unwrap_err();
            assert_eq!(err.var(), var, "{err}");
            let text = err.to_string();
            assert!(
                text.contains(var) && text.contains("TOLLGATE_KINESIS_DEDUPE=transaction"),
                "{text}"
            );
        }
        // Transactions dedupe each record on its own: any factor works.
        let c = config(&[
            ("AWS_REGION", "r"),
            (var, "10"),
            ("TOLLGATE_KINESIS_DEDUPE", "transaction"),
        ])
        .unwrap();
        assert_eq!(c.kinesis_parallelization_factor, 10);
    }

    #[test]
    fn top_index_takes_the_one_boolean_grammar() {
        for (value, want) in [("1", true), ("yes", true), ("off", false), ("FALSE", false)] {
            let c = config(&[("AWS_REGION", "r"), ("TOLLGATE_TOP_INDEX", value)]).unwrap();
            assert_eq!(c.top_index, want, "{value}");
        }
    }

    #[test]
    fn rejections_name_the_variable() {
        assert!(matches!(
            config(&[]).unwrap_err(),
            ConfigError::Missing {
                var: "TOLLGATE_REGION",
                ..
            }
        ));
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
            ("TOLLGATE_PLAN_CACHE_SECONDS", "-1"),
            ("TOLLGATE_KINESIS_DEDUPE", "exactly-twice"),
            ("TOLLGATE_KINESIS_PARALLELIZATION_FACTOR", "0"),
            ("TOLLGATE_KINESIS_PARALLELIZATION_FACTOR", "11"),
            // `yes` is true in the one boolean grammar (`tollgate_lambda::env`).
            ("TOLLGATE_TOP_INDEX", "maybe"),
            ("TOLLGATE_ACCOUNT_ID", "12345"),
            ("TOLLGATE_ACCOUNT_ID", "12345678901x"),
        ] {
            let err = config(&[("AWS_REGION", "r"), (var, value)]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { var: v, .. } if *v == var)
                    && err.var() == var
                    && err.to_string().contains(var),
                "{var}={value}: {err}"
            );
        }
    }
}
