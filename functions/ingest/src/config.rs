//! The function's configuration, read once from `TOLLGATE_*` variables.

use std::time::Duration;

use tollgate_core::{Region, Window};
use tollgate_lambda::Env;
use tollgate_store::TableNames;

/// Why the configuration could not be read: the variable is named.
pub type ConfigError = tollgate_lambda::EnvError;

/// What the ingest function does, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The region whose Usage items this function writes (`TOLLGATE_REGION`, else `AWS_REGION`).
    pub region: Region,
    /// Every region of the deployment, for top-N queries (`TOLLGATE_REGIONS`,
    /// comma-separated; this region is always included).
    pub regions: Vec<Region>,
    /// The windows always counted for each event (`TOLLGATE_WINDOWS`,
    /// default `hour,day,month`); each meter is also counted in every
    /// window a plan limits for it ([`tollgate_core::CountedWindows`]).
    pub windows: Vec<Window>,
    /// The plan of identities without a key (`TOLLGATE_ANONYMOUS_PLAN`,
    /// default `anonymous`): an anonymous identity's events are counted in
    /// the windows this plan limits, not those of other plans.
    pub anonymous_plan: String,
    /// How long the plans are cached (`TOLLGATE_PLAN_CACHE_SECONDS`, default 60).
    pub plan_cache_ttl: Duration,
    /// An event id seen within this time is a duplicate; older event times
    /// are rejected (`TOLLGATE_DEDUPE_WINDOW_DAYS`, default 35).
    pub dedupe_window: Duration,
    /// How far in the future an event's time may be (5 minutes).
    pub future_tolerance: Duration,
    /// The most events in one request (1,000).
    pub max_events: usize,
    /// The largest request body in bytes (1 MiB).
    pub max_body_bytes: usize,
    /// How long a response to a request with an `Idempotency-Key` header is
    /// replayed (`TOLLGATE_IDEMPOTENCY_KEY_HOURS`, default 24).
    pub request_key_expiry: Duration,
    /// How long meter definitions are cached (`TOLLGATE_METER_CACHE_SECONDS`, default 60).
    pub meter_cache_ttl: Duration,
    /// The tables.
    pub tables: TableNames,
    /// Whether month counters carry the top index key and `GET
    /// /v1/usage/top` answers (`TOLLGATE_TOP_INDEX`, default `false`; see
    /// [`tollgate_store::usage::TOP_INDEX_VAR`]).
    pub top_index: bool,
}

impl Config {
    /// The defaults for `tables` and `region`.
    pub fn new(tables: TableNames, region: Region) -> Self {
        Config {
            regions: vec![region.clone()],
            region,
            windows: vec![Window::Hour, Window::Day, Window::Month],
            anonymous_plan: "anonymous".to_owned(),
            plan_cache_ttl: tollgate_app::windows::DEFAULT_PLAN_CACHE,
            dedupe_window: Duration::from_secs(35 * 86_400),
            future_tolerance: Duration::from_secs(300),
            max_events: 1000,
            max_body_bytes: 1024 * 1024,
            request_key_expiry: Duration::from_secs(24 * 3600),
            meter_cache_ttl: Duration::from_secs(60),
            tables,
            top_index: false,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads variables through `get` (for tests and the local harness).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Env::from_lookup(get))
    }

    /// Reads the configuration from `env`.
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mut config = Config::new(env.tables(), env.region()?);
        for region in env.list::<Region>("TOLLGATE_REGIONS")? {
            if !config.regions.contains(&region) {
                config.regions.push(region);
            }
        }
        config.windows = env.windows("TOLLGATE_WINDOWS", &config.windows)?;
        let days = env.number("TOLLGATE_DEDUPE_WINDOW_DAYS", 35, 1..=3650)?;
        config.dedupe_window = Duration::from_secs(days * 86_400);
        let hours = env.number("TOLLGATE_IDEMPOTENCY_KEY_HOURS", 24, 1..=24 * 365)?;
        config.request_key_expiry = Duration::from_secs(hours * 3600);
        config.meter_cache_ttl = env.seconds(
            "TOLLGATE_METER_CACHE_SECONDS",
            config.meter_cache_ttl,
            0..=86_400,
        )?;
        config.top_index = env.flag(tollgate_store::usage::TOP_INDEX_VAR, false)?;
        config.anonymous_plan = env.text_or("TOLLGATE_ANONYMOUS_PLAN", &config.anonymous_plan);
        config.plan_cache_ttl = env.seconds(
            tollgate_app::windows::PLAN_CACHE_VAR,
            config.plan_cache_ttl,
            0..=86_400,
        )?;
        Ok(config)
    }

    /// How long an event id's marker is kept: the dedupe window plus the
    /// future tolerance, so that an event timed up to 5 minutes ahead is
    /// still deduplicated until its time leaves the window.
    pub fn marker_expiry(&self) -> Duration {
        self.dedupe_window + self.future_tolerance
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let c = Config::from_vars(vars(&[("AWS_REGION", "eu-west-1")])).unwrap();
        assert_eq!(c.region.as_str(), "eu-west-1");
        assert_eq!(c.regions, vec![c.region.clone()]);
        assert_eq!(c.windows, vec![Window::Hour, Window::Day, Window::Month]);
        assert_eq!(c.dedupe_window, Duration::from_secs(35 * 86_400));
        assert_eq!(c.marker_expiry(), Duration::from_secs(35 * 86_400 + 300));
        assert_eq!(c.tables.usage, "tollgate-usage");
        assert_eq!(c.max_events, 1000);
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.anonymous_plan, "anonymous");
        assert_eq!(c.plan_cache_ttl, Duration::from_secs(60));
    }

    #[test]
    fn variables_override() {
        let c = Config::from_vars(vars(&[
            ("TOLLGATE_REGION", "local-a"),
            ("AWS_REGION", "ignored"),
            ("TOLLGATE_REGIONS", "local-b, local-a,local-c"),
            ("TOLLGATE_WINDOWS", "month,day,day"),
            ("TOLLGATE_DEDUPE_WINDOW_DAYS", "7"),
            ("TOLLGATE_USAGE_TABLE", "u"),
            ("TOLLGATE_ANONYMOUS_PLAN", "free"),
            ("TOLLGATE_PLAN_CACHE_SECONDS", "0"),
        ]))
        .unwrap();
        assert_eq!(c.anonymous_plan, "free");
        assert_eq!(c.plan_cache_ttl, Duration::ZERO);
        assert_eq!(c.region.as_str(), "local-a");
        let regions: Vec<&str> = c.regions.iter().map(Region::as_str).collect();
        assert_eq!(regions, ["local-a", "local-b", "local-c"]);
        assert_eq!(c.windows, vec![Window::Day, Window::Month]);
        assert_eq!(c.dedupe_window, Duration::from_secs(7 * 86_400));
        assert_eq!(c.tables.usage, "u");
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            Config::from_vars(vars(&[])).unwrap_err().var(),
            "TOLLGATE_REGION"
        );
        for (var, value) in [
            ("TOLLGATE_WINDOWS", "week"),
            ("TOLLGATE_WINDOWS", ","),
            ("TOLLGATE_DEDUPE_WINDOW_DAYS", "0"),
            ("TOLLGATE_DEDUPE_WINDOW_DAYS", "x"),
            ("TOLLGATE_PLAN_CACHE_SECONDS", "86401"),
            ("TOLLGATE_REGIONS", "Bad Region"),
        ] {
            let err = Config::from_vars(vars(&[("AWS_REGION", "r"), (var, value)])).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }
}
