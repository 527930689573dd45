//! The function's configuration, read once from `TOLLGATE_*` variables.

use std::time::Duration;

use tollgate_core::{CoreError, Region, Window};
use tollgate_store::TableNames;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable holds a value that does not parse.
    #[error("{var}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither `TOLLGATE_REGION` nor `AWS_REGION` is set.
    #[error(
        "set TOLLGATE_REGION (or AWS_REGION): the region whose Usage items this function writes"
    )]
    NoRegion,
}

/// What the ingest function does, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The region whose Usage items this function writes (`TOLLGATE_REGION`, else `AWS_REGION`).
    pub region: Region,
    /// Every region of the deployment, for top-N queries (`TOLLGATE_REGIONS`,
    /// comma-separated; this region is always included).
    pub regions: Vec<Region>,
    /// The windows counted for each event (`TOLLGATE_WINDOWS`, default `hour,day,month`).
    pub windows: Vec<Window>,
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
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads variables through `get` (for tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let region_text = get("TOLLGATE_REGION")
            .or_else(|| get("AWS_REGION"))
            .ok_or(ConfigError::NoRegion)?;
        let region = parse("TOLLGATE_REGION", &region_text, Region::new)?;
        let tables = TableNames {
            keys: get(tollgate_store::KEYS.env_var)
                .unwrap_or_else(|| tollgate_store::KEYS.default_name.into()),
            usage: get(tollgate_store::USAGE.env_var)
                .unwrap_or_else(|| tollgate_store::USAGE.default_name.into()),
            idempotency: get(tollgate_store::IDEMPOTENCY.env_var)
                .unwrap_or_else(|| tollgate_store::IDEMPOTENCY.default_name.into()),
        };
        let mut config = Config::new(tables, region);
        if let Some(text) = get("TOLLGATE_REGIONS") {
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let r = parse("TOLLGATE_REGIONS", part, Region::new)?;
                if !config.regions.contains(&r) {
                    config.regions.push(r);
                }
            }
        }
        if let Some(text) = get("TOLLGATE_WINDOWS") {
            config.windows = parse_windows(&text).map_err(|reason| ConfigError::Invalid {
                var: "TOLLGATE_WINDOWS",
                value: text.clone(),
                reason,
            })?;
        }
        if let Some(text) = get("TOLLGATE_DEDUPE_WINDOW_DAYS") {
            let days = whole("TOLLGATE_DEDUPE_WINDOW_DAYS", &text, 1, 3650)?;
            config.dedupe_window = Duration::from_secs(days * 86_400);
        }
        if let Some(text) = get("TOLLGATE_IDEMPOTENCY_KEY_HOURS") {
            let hours = whole("TOLLGATE_IDEMPOTENCY_KEY_HOURS", &text, 1, 24 * 365)?;
            config.request_key_expiry = Duration::from_secs(hours * 3600);
        }
        if let Some(text) = get("TOLLGATE_METER_CACHE_SECONDS") {
            let secs = whole("TOLLGATE_METER_CACHE_SECONDS", &text, 0, 86_400)?;
            config.meter_cache_ttl = Duration::from_secs(secs);
        }
        let top = get(tollgate_store::usage::TOP_INDEX_VAR);
        config.top_index =
            tollgate_store::usage::parse_top_index(top.as_deref()).map_err(|reason| {
                ConfigError::Invalid {
                    var: "TOLLGATE_TOP_INDEX",
                    value: top.clone().unwrap_or_default(),
                    reason,
                }
            })?;
        Ok(config)
    }

    /// How long an event id's marker is kept: the dedupe window plus the
    /// future tolerance, so that an event timed up to 5 minutes ahead is
    /// still deduplicated until its time leaves the window.
    pub fn marker_expiry(&self) -> Duration {
        self.dedupe_window + self.future_tolerance
    }
}

/// Parses a comma-separated list of windows, without repeats.
pub fn parse_windows(text: &str) -> Result<Vec<Window>, String> {
    let mut windows = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let w: Window = part.parse().map_err(|e: CoreError| e.to_string())?;
        if !windows.contains(&w) {
            windows.push(w);
        }
    }
    if windows.is_empty() {
        return Err("name at least one window".into());
    }
    windows.sort();
    Ok(windows)
}

fn parse<T>(
    var: &'static str,
    value: &str,
    f: impl Fn(&str) -> Result<T, CoreError>,
) -> Result<T, ConfigError> {
    f(value).map_err(|e| ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn whole(var: &'static str, value: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| ConfigError::Invalid {
            var,
            value: value.to_owned(),
            reason: format!("expected a whole number from {min} to {max}"),
        })
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
        ]))
        .unwrap();
        assert_eq!(c.region.as_str(), "local-a");
        let regions: Vec<&str> = c.regions.iter().map(Region::as_str).collect();
        assert_eq!(regions, ["local-a", "local-b", "local-c"]);
        assert_eq!(c.windows, vec![Window::Day, Window::Month]);
        assert_eq!(c.dedupe_window, Duration::from_secs(7 * 86_400));
        assert_eq!(c.tables.usage, "u");
    }

    #[test]
    fn bad_values_are_named() {
        assert!(matches!(
            Config::from_vars(vars(&[])),
            Err(ConfigError::NoRegion)
        ));
        for (var, value) in [
            ("TOLLGATE_WINDOWS", "week"),
            ("TOLLGATE_WINDOWS", ","),
            ("TOLLGATE_DEDUPE_WINDOW_DAYS", "0"),
            ("TOLLGATE_DEDUPE_WINDOW_DAYS", "x"),
            ("TOLLGATE_REGIONS", "Bad Region"),
        ] {
            let err = Config::from_vars(vars(&[("AWS_REGION", "r"), (var, value)])).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }
}
