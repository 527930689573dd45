//! The authorizer's settings, read once at start-up from `TOLLGATE_*`
//! environment variables through the one reader, [`tollgate_lambda::Env`].
//! A value that does not parse stops the function at init with an error
//! naming the variable (a deployment error should not silently change
//! behaviour).

use std::time::Duration;

use tollgate_core::{FailurePolicy, Ipv6Prefix, Region};
use tollgate_lambda::{Env, Peer};

/// Everything the authorizer can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The Keys table (`TOLLGATE_KEYS_TABLE`, default `tollgate-keys`).
    pub keys_table: String,
    /// The request header that carries the key, lower-case
    /// (`TOLLGATE_API_KEY_HEADER`, default `x-api-key`; matched case-insensitively).
    pub api_key_header: String,
    /// A query-string parameter that may carry the key (`TOLLGATE_API_KEY_QUERY`, unset by default).
    pub api_key_query: Option<String>,
    /// How long key and block items stay cached (`TOLLGATE_CACHE_SECONDS`, default 5).
    pub cache_ttl: Duration,
    /// How long an unknown key stays cached (`TOLLGATE_NEGATIVE_CACHE_SECONDS`,
    /// default 2, never longer than `cache_ttl`).
    pub negative_cache_ttl: Duration,
    /// The most entries the per-container cache holds (`TOLLGATE_CACHE_MAX_ENTRIES`, default 10,000).
    pub cache_max_entries: usize,
    /// How long the plans stay cached (`TOLLGATE_PLAN_CACHE_SECONDS`, default 60).
    pub plan_cache_ttl: Duration,
    /// The plan of callers without a key (`TOLLGATE_ANONYMOUS_PLAN`, default `anonymous`).
    pub anonymous_plan: String,
    /// Whether anonymous callers are also metered by their Referer host
    /// (`TOLLGATE_ANONYMOUS_REFERER`, default false).
    pub anonymous_referer: bool,
    /// How many leading bits of an IPv6 client address make its anonymous
    /// identity (`TOLLGATE_ANONYMOUS_IPV6_PREFIX`, 32 to 128, default 64).
    pub anonymous_ipv6_prefix: Ipv6Prefix,
    /// How many proxies in front of API Gateway append to `X-Forwarded-For`
    /// and are trusted (`TOLLGATE_TRUSTED_PROXY_HOPS`, default 0: use the
    /// source IP API Gateway saw, ignore `X-Forwarded-For`). A chain with
    /// fewer entries than this did not come through the proxies: the
    /// source IP is used.
    pub trusted_proxy_hops: usize,
    /// What to do when the store fails and the caller's plan is not known
    /// (`TOLLGATE_FAILURE_POLICY`, `closed` (default) or `open`).
    pub failure_policy: FailurePolicy,
    /// Whether REST responses carry `usageIdentifierKey` = the key id, for
    /// API Gateway usage plans (`TOLLGATE_USAGE_IDENTIFIER_KEY`, default false).
    pub usage_identifier_key: bool,
    /// The longest a DynamoDB call may take, retries included
    /// (`TOLLGATE_STORE_TIMEOUT_MS`, default 1000).
    pub store_timeout: Duration,
    /// Whether hard request limits are held by leases
    /// (`TOLLGATE_LEASES`, default true; see `tollgate_core::lease`): off,
    /// they are enforced only once the counts arrive (blocks), so a caller
    /// can pass a limit by its rate times the counting lag.
    pub leases: bool,
    /// This region (`TOLLGATE_REGION`, else `AWS_REGION`): which share of
    /// each limit it starts a period with. Unset outside Lambda: one region.
    pub region: Option<Region>,
    /// The peer regions whose allowances a spent region pulls from
    /// (`TOLLGATE_PEER_REGIONS`, `TOLLGATE_PEER_ENDPOINTS`).
    pub peers: Vec<Peer>,
    /// The longest one peer may take to answer a pull
    /// (`TOLLGATE_PEER_TIMEOUT_MS`, default 300): a peer that is down is
    /// skipped after this, and its allowance stays with it.
    pub peer_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keys_table: tollgate_store::KEYS.default_name.to_owned(),
            api_key_header: "x-api-key".to_owned(),
            api_key_query: None,
            cache_ttl: Duration::from_secs(5),
            negative_cache_ttl: Duration::from_secs(2),
            cache_max_entries: 10_000,
            plan_cache_ttl: Duration::from_secs(60),
            anonymous_plan: "anonymous".to_owned(),
            anonymous_referer: false,
            anonymous_ipv6_prefix: Ipv6Prefix::DEFAULT,
            trusted_proxy_hops: 0,
            failure_policy: FailurePolicy::Closed,
            usage_identifier_key: false,
            store_timeout: Duration::from_millis(1000),
            leases: true,
            region: None,
            peers: Vec::new(),
            peer_timeout: Duration::from_millis(300),
        }
    }
}

/// A setting that could not be read: the variable is named.
pub type ConfigError = tollgate_lambda::EnvError;

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::read(&Env::process())
    }

    /// Reads the settings through `get` (a map in tests and the local harness).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::read(&Env::from_lookup(get))
    }

    /// Reads the settings from `env`, in its one grammar: unset and empty
    /// variables take their defaults.
    pub fn read(env: &Env<'_>) -> Result<Config, ConfigError> {
        let d = Config::default();
        let api_key_header = match env.text("TOLLGATE_API_KEY_HEADER") {
            None => d.api_key_header,
            Some(h) if is_token(&h) => h.to_ascii_lowercase(),
            Some(h) => {
                return Err(ConfigError::invalid(
                    "TOLLGATE_API_KEY_HEADER",
                    &h,
                    "an HTTP header name",
                ))
            }
        };
        let cache_ttl = env.seconds("TOLLGATE_CACHE_SECONDS", d.cache_ttl, 0..=u64::MAX)?;
        let negative_cache_ttl = env
            .seconds(
                "TOLLGATE_NEGATIVE_CACHE_SECONDS",
                d.negative_cache_ttl,
                0..=u64::MAX,
            )?
            .min(cache_ttl);
        let failure_policy = match env.text("TOLLGATE_FAILURE_POLICY") {
            None => d.failure_policy,
            Some(v) if v.eq_ignore_ascii_case("closed") => FailurePolicy::Closed,
            Some(v) if v.eq_ignore_ascii_case("open") => FailurePolicy::Open,
            Some(v) => {
                return Err(ConfigError::invalid(
                    "TOLLGATE_FAILURE_POLICY",
                    &v,
                    "closed or open",
                ))
            }
        };
        let anonymous_ipv6_prefix = match env.text(Ipv6Prefix::ENV) {
            None => d.anonymous_ipv6_prefix,
            Some(v) => Ipv6Prefix::from_setting(Some(&v)).map_err(|_| {
                ConfigError::invalid(Ipv6Prefix::ENV, &v, "a prefix length from 32 to 128")
            })?,
        };
        let region = match env.text("TOLLGATE_REGION").or(env.text("AWS_REGION")) {
            Some(_) => Some(env.region()?),
            None => None,
        };
        let peers =
            match &region {
                Some(r) => env.peers(r)?,
                None => match env.text("TOLLGATE_PEER_REGIONS") {
                    Some(v) => return Err(ConfigError::invalid(
                        "TOLLGATE_PEER_REGIONS",
                        &v,
                        "no peers while this region is unnamed (set TOLLGATE_REGION or AWS_REGION)",
                    )),
                    None => Vec::new(),
                },
            };
        Ok(Config {
            keys_table: env.table(&tollgate_store::KEYS),
            api_key_header,
            api_key_query: env.text("TOLLGATE_API_KEY_QUERY"),
            cache_ttl,
            negative_cache_ttl,
            cache_max_entries: env
                .number(
                    "TOLLGATE_CACHE_MAX_ENTRIES",
                    d.cache_max_entries,
                    0..=usize::MAX,
                )?
                .max(1),
            plan_cache_ttl: env.seconds(
                "TOLLGATE_PLAN_CACHE_SECONDS",
                d.plan_cache_ttl,
                0..=u64::MAX,
            )?,
            anonymous_plan: env.text_or("TOLLGATE_ANONYMOUS_PLAN", &d.anonymous_plan),
            anonymous_referer: env.flag("TOLLGATE_ANONYMOUS_REFERER", d.anonymous_referer)?,
            anonymous_ipv6_prefix,
            trusted_proxy_hops: env.number(
                "TOLLGATE_TRUSTED_PROXY_HOPS",
                d.trusted_proxy_hops,
                0..=usize::MAX,
            )?,
            failure_policy,
            usage_identifier_key: env
                .flag("TOLLGATE_USAGE_IDENTIFIER_KEY", d.usage_identifier_key)?,
            store_timeout: env.millis(
                "TOLLGATE_STORE_TIMEOUT_MS",
                d.store_timeout,
                1..=u64::MAX,
            )?,
            leases: env.flag("TOLLGATE_LEASES", d.leases)?,
            region,
            peers,
            peer_timeout: env.millis("TOLLGATE_PEER_TIMEOUT_MS", d.peer_timeout, 1..=60_000)?,
        })
    }
}

/// Whether `s` is a valid HTTP header name (an RFC 9110 token).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        assert_eq!(from(&[]).unwrap(), Config::default());
        let c = Config::default();
        assert_eq!(c.api_key_header, "x-api-key");
        assert_eq!(c.cache_ttl, Duration::from_secs(5));
        assert!(c.negative_cache_ttl < c.cache_ttl);
        assert_eq!(c.failure_policy, FailurePolicy::Closed);
        assert_eq!(c.anonymous_plan, "anonymous");
        assert_eq!(c.trusted_proxy_hops, 0);
        assert_eq!(c.anonymous_ipv6_prefix.bits(), 64);
        assert!(c.leases && c.peers.is_empty());
    }

    #[test]
    fn reads_every_setting() {
        let c = from(&[
            ("TOLLGATE_KEYS_TABLE", "prod-keys"),
            ("TOLLGATE_API_KEY_HEADER", "X-Tollgate-Key"),
            ("TOLLGATE_API_KEY_QUERY", "api_key"),
            ("TOLLGATE_CACHE_SECONDS", "10"),
            ("TOLLGATE_NEGATIVE_CACHE_SECONDS", "30"),
            ("TOLLGATE_CACHE_MAX_ENTRIES", "50"),
            ("TOLLGATE_PLAN_CACHE_SECONDS", "120"),
            ("TOLLGATE_ANONYMOUS_PLAN", "free"),
            ("TOLLGATE_ANONYMOUS_REFERER", "TRUE"),
            ("TOLLGATE_TRUSTED_PROXY_HOPS", "2"),
            ("TOLLGATE_ANONYMOUS_IPV6_PREFIX", "56"),
            ("TOLLGATE_FAILURE_POLICY", "Open"),
            ("TOLLGATE_USAGE_IDENTIFIER_KEY", "1"),
            ("TOLLGATE_STORE_TIMEOUT_MS", "250"),
            ("TOLLGATE_LEASES", "off"),
            ("TOLLGATE_REGION", "local-b"),
            ("TOLLGATE_PEER_REGIONS", "local-c,local-a"),
            ("TOLLGATE_PEER_TIMEOUT_MS", "150"),
        ])
        .unwrap();
        assert!(!c.leases);
        assert_eq!(c.region.as_ref().map(Region::as_str), Some("local-b"));
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peer_timeout, Duration::from_millis(150));
        assert_eq!(c.keys_table, "prod-keys");
        assert_eq!(c.api_key_header, "x-tollgate-key");
        assert_eq!(c.api_key_query.as_deref(), Some("api_key"));
        assert_eq!(c.cache_ttl, Duration::from_secs(10));
        // The negative TTL never exceeds the positive one.
        assert_eq!(c.negative_cache_ttl, Duration::from_secs(10));
        assert_eq!(c.cache_max_entries, 50);
        assert_eq!(c.plan_cache_ttl, Duration::from_secs(120));
        assert_eq!(c.anonymous_plan, "free");
        assert!(c.anonymous_referer && c.usage_identifier_key);
        assert_eq!(c.trusted_proxy_hops, 2);
        assert_eq!(c.anonymous_ipv6_prefix.bits(), 56);
        assert_eq!(c.failure_policy, FailurePolicy::Open);
        assert_eq!(c.store_timeout, Duration::from_millis(250));
    }

    #[test]
    fn rejects_bad_values() {
        for (name, value) in [
            ("TOLLGATE_CACHE_SECONDS", "five"),
            ("TOLLGATE_CACHE_SECONDS", "-1"),
            ("TOLLGATE_FAILURE_POLICY", "opne"),
            ("TOLLGATE_ANONYMOUS_REFERER", "maybe"),
            ("TOLLGATE_TRUSTED_PROXY_HOPS", "x"),
            ("TOLLGATE_ANONYMOUS_IPV6_PREFIX", "16"),
            ("TOLLGATE_ANONYMOUS_IPV6_PREFIX", "129"),
            ("TOLLGATE_API_KEY_HEADER", "x api key"),
            ("TOLLGATE_STORE_TIMEOUT_MS", "0"),
            ("TOLLGATE_LEASES", "sometimes"),
            ("TOLLGATE_PEER_REGIONS", "local-b"),
        ] {
            let e = from(&[(name, value)]).unwrap_err();
            assert_eq!(e.var(), name);
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    #[test]
    fn empty_values_mean_defaults() {
        assert_eq!(
            from(&[
                ("TOLLGATE_CACHE_SECONDS", " "),
                ("TOLLGATE_API_KEY_QUERY", "")
            ])
            .unwrap(),
            Config::default()
        );
    }
}
