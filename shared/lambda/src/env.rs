//! The one reader of the functions' environment. Every function reads its
//! `TOLLGATE_*` settings once at start-up through [`Env`]; a value that does
//! not parse stops the function at init with an [`EnvError`] that names the
//! variable, its value and what was expected, because a deployment mistake
//! should never silently change behaviour.
//!
//! One grammar for everything: values are trimmed, an empty value means
//! "unset" (the default applies), booleans are `true`/`false`, `1`/`0`,
//! `yes`/`no` or `on`/`off` in any case, lists are comma-separated.

use std::collections::HashMap;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use tollgate_core::{Region, Window};
use tollgate_store::{TableNames, TableSpec, IDEMPOTENCY, KEYS, USAGE};

/// A setting that cannot be used; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A required variable is unset or empty.
    #[error("{var} is not set: {why}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What it is for.
        why: &'static str,
    },
    /// A variable's value does not parse.
    #[error("invalid {var}={value:?}: {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is expected instead.
        expected: String,
    },
}

impl EnvError {
    /// An invalid value of `var`.
    pub fn invalid(var: &'static str, value: &str, expected: impl Into<String>) -> Self {
        EnvError::Invalid {
            var,
            value: value.to_owned(),
            expected: expected.into(),
        }
    }

    /// The variable the error is about.
    pub fn var(&self) -> &'static str {
        match self {
            EnvError::Missing { var, .. } | EnvError::Invalid { var, .. } => var,
        }
    }
}

type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Where settings come from: the process environment, or a map in tests.
pub struct Env<'a> {
    get: Lookup<'a>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print values: a variable may hold a secret.
        f.write_str("Env")
    }
}

impl<'a> Env<'a> {
    /// The process environment.
    pub fn process() -> Env<'static> {
        Env::from_lookup(|name| std::env::var(name).ok())
    }

    /// Variables looked up through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String> + 'a) -> Env<'a> {
        Env { get: Box::new(get) }
    }

    /// Exactly these variables (for tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env<'static> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::from_lookup(move |name| map.get(name).cloned())
    }

    /// The trimmed value of `var`; `None` when unset or empty.
    pub fn text(&self, var: &str) -> Option<String> {
        (self.get)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value of `var`, or `default`.
    pub fn text_or(&self, var: &str, default: &str) -> String {
        self.text(var).unwrap_or_else(|| default.to_owned())
    }

    /// The value of `var`, which must be set.
    pub fn required(&self, var: &'static str, why: &'static str) -> Result<String, EnvError> {
        self.text(var).ok_or(EnvError::Missing { var, why })
    }

    /// A boolean, `default` when unset.
    pub fn flag(&self, var: &'static str, default: bool) -> Result<bool, EnvError> {
        match self.text(var) {
            None => Ok(default),
            Some(v) => parse_flag(&v).ok_or_else(|| EnvError::invalid(var, &v, "true or false")),
        }
    }

    /// A number within `range`, `default` when unset.
    pub fn number<T>(
        &self,
        var: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, EnvError>
    where
        T: FromStr + PartialOrd + Display,
    {
        match self.text(var) {
            None => Ok(default),
            Some(v) => v
                .parse::<T>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    EnvError::invalid(
                        var,
                        &v,
                        format!("a whole number from {} to {}", range.start(), range.end()),
                    )
                }),
        }
    }

    /// A duration given in whole seconds within `range`, `default` when unset.
    pub fn seconds(
        &self,
        var: &'static str,
        default: Duration,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, EnvError> {
        self.number(var, default.as_secs(), range)
            .map(Duration::from_secs)
    }

    /// A duration given in whole milliseconds within `range`, `default` when unset.
    pub fn millis(
        &self,
        var: &'static str,
        default: Duration,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, EnvError> {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.number(var, default, range).map(Duration::from_millis)
    }

    /// A value of any type that parses from text, `default` when unset.
    pub fn parsed<T>(&self, var: &'static str, default: T) -> Result<T, EnvError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.text(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e: T::Err| EnvError::invalid(var, &v, e.to_string())),
        }
    }

    /// A comma-separated list in the given order (empty when unset).
    pub fn list<T>(&self, var: &'static str) -> Result<Vec<T>, EnvError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let Some(text) = self.text(var) else {
            return Ok(Vec::new());
        };
        split(&text)
            .map(|part| {
                part.parse()
                    .map_err(|e: T::Err| EnvError::invalid(var, &text, e.to_string()))
            })
            .collect()
    }

    /// A comma-separated set: sorted, without repeats, at least one member
    /// when set; `default` when unset.
    pub fn set<T>(&self, var: &'static str, default: &[T]) -> Result<Vec<T>, EnvError>
    where
        T: FromStr + Ord + Clone,
        T::Err: Display,
    {
        if self.text(var).is_none() {
            return Ok(default.to_vec());
        }
        let mut members: Vec<T> = self.list(var)?;
        members.sort();
        members.dedup();
        if members.is_empty() {
            let value = self.text(var).unwrap_or_default();
            return Err(EnvError::invalid(var, &value, "at least one value"));
        }
        Ok(members)
    }

    /// The windows counted: a set of `minute`, `hour`, `day`, `month`.
    pub fn windows(&self, var: &'static str, default: &[Window]) -> Result<Vec<Window>, EnvError> {
        self.set(var, default)
    }

    /// This function's region: `TOLLGATE_REGION`, else Lambda's `AWS_REGION`.
    pub fn region(&self) -> Result<Region, EnvError> {
        const VAR: &str = "TOLLGATE_REGION";
        const LAMBDA: &str = "AWS_REGION";
        // The error names the variable the value came from.
        let (var, text) = self
            .text(VAR)
            .map(|t| (VAR, t))
            .or_else(|| self.text(LAMBDA).map(|t| (LAMBDA, t)))
            .ok_or(EnvError::Missing {
                var: VAR,
                why: "it names this region (for example eu-central-1 or local-a); AWS_REGION is used when it is unset",
            })?;
        Region::new(&text).map_err(|e| EnvError::invalid(var, &text, e.to_string()))
    }

    /// The peer regions (`TOLLGATE_PEER_REGIONS`), each with its endpoint from
    /// `TOLLGATE_PEER_ENDPOINTS` (one per peer, in the same order) if given.
    pub fn peers(&self, region: &Region) -> Result<Vec<Peer>, EnvError> {
        let env = self;
        const PEERS: &str = "TOLLGATE_PEER_REGIONS";
        const ENDPOINTS: &str = "TOLLGATE_PEER_ENDPOINTS";
        let value = env.text(PEERS).unwrap_or_default();
        let regions: Vec<Region> = env.list(PEERS)?;
        for (i, peer) in regions.iter().enumerate() {
            if peer == region {
                return Err(EnvError::invalid(
                    PEERS,
                    &value,
                    format!("{peer} is this region (TOLLGATE_REGION), not a peer"),
                ));
            }
            if regions[..i].contains(peer) {
                return Err(EnvError::invalid(
                    PEERS,
                    &value,
                    format!("{peer} is listed twice"),
                ));
            }
        }
        let endpoints: Vec<String> = env.list(ENDPOINTS)?;
        if !endpoints.is_empty() && endpoints.len() != regions.len() {
            return Err(EnvError::invalid(
                ENDPOINTS,
                &env.text(ENDPOINTS).unwrap_or_default(),
                format!(
                    "{} endpoints for {} peer regions: give one per peer, in the same order",
                    endpoints.len(),
                    regions.len()
                ),
            ));
        }
        Ok(regions
            .into_iter()
            .enumerate()
            .map(|(i, region)| Peer {
                region,
                endpoint: endpoints.get(i).cloned(),
            })
            .collect())
    }

    /// The table names (`TOLLGATE_KEYS_TABLE`, `TOLLGATE_USAGE_TABLE`,
    /// `TOLLGATE_IDEMPOTENCY_TABLE`), each defaulting to its spec's name.
    pub fn tables(&self) -> TableNames {
        TableNames {
            keys: self.table(&KEYS),
            usage: self.table(&USAGE),
            idempotency: self.table(&IDEMPOTENCY),
        }
    }

    /// One table's name.
    pub fn table(&self, spec: &TableSpec) -> String {
        self.text_or(spec.env_var, spec.default_name)
    }
}

/// A peer region: its name, and an endpoint to reach its DynamoDB at
/// instead of the default one (local runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's region name.
    pub region: Region,
    /// `TOLLGATE_PEER_ENDPOINTS`' entry for it, if given.
    pub endpoint: Option<String>,
}

/// The one boolean grammar.
fn parse_flag(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unset_and_empty_values_take_the_default() {
        let env = Env::from_pairs(&[("A", "  "), ("B", " x ")]);
        assert_eq!(env.text("A"), None);
        assert_eq!(env.text("B").as_deref(), Some("x"));
        assert_eq!(env.text_or("C", "d"), "d");
        assert_eq!(env.number("A", 7u64, 0..=10).unwrap(), 7);
        assert!(!env.flag("A", false).unwrap());
    }

    #[test]
    fn one_boolean_grammar() {
        for (text, want) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("On", true),
            ("false", false),
            ("0", false),
            ("No", false),
            ("off", false),
        ] {
            let env = Env::from_pairs(&[("F", text)]);
            assert_eq!(env.flag("F", !want).unwrap(), want, "{text}");
        }
        let err = Env::from_pairs(&[("F", "maybe")])
            .flag("F", false)
            .unwrap_err();
        assert_eq!(err.var(), "F");
        assert_eq!(err.to_string(), "invalid F=\"maybe\": true or false");
    }

    #[test]
    fn numbers_are_checked_against_their_range() {
        let env = Env::from_pairs(&[("N", "11"), ("M", "-1"), ("S", "90")]);
        let err = env.number("N", 1u64, 0..=10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid N=\"11\": a whole number from 0 to 10"
        );
        assert!(env.number("M", 1u64, 0..=10).is_err());
        assert_eq!(
            env.seconds("S", Duration::ZERO, 0..=100).unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            env.millis("S", Duration::ZERO, 1..=100).unwrap(),
            Duration::from_millis(90)
        );
    }

    #[test]
    fn sets_are_sorted_without_repeats_and_never_empty() {
        let env = Env::from_pairs(&[("W", "month, day,day"), ("E", ",,"), ("X", "day,fortnight")]);
        assert_eq!(
            env.windows("W", &[]).unwrap(),
            vec![Window::Day, Window::Month]
        );
        // ",," is not empty text, but names no window.
        assert!(env.windows("E", &[Window::Day]).is_err());
        let err = env.windows("X", &[]).unwrap_err();
        assert_eq!(err.var(), "X");
        assert_eq!(
            env.windows("unset", &[Window::Hour]).unwrap(),
            vec![Window::Hour]
        );
    }

    #[test]
    fn the_region_falls_back_to_lambdas_and_is_named_when_missing() {
        let env = Env::from_pairs(&[("AWS_REGION", "eu-central-1")]);
        assert_eq!(env.region().unwrap().as_str(), "eu-central-1");
        let env = Env::from_pairs(&[("TOLLGATE_REGION", "local-a"), ("AWS_REGION", "x-y-1")]);
        assert_eq!(env.region().unwrap().as_str(), "local-a");
        let err = Env::from_pairs(&[]).region().unwrap_err();
        assert_eq!(err.var(), "TOLLGATE_REGION");
        assert!(Env::from_pairs(&[("TOLLGATE_REGION", "a b")])
            .region()
            .is_err());
        // An invalid value names the variable it came from (found by the
        // fuzz entry `tollgate_fuzz::env`: it named TOLLGATE_REGION, unset).
        let err = Env::from_pairs(&[("AWS_REGION", "a b")])
            .region()
            .unwrap_err();
        assert_eq!(err.var(), "AWS_REGION");
    }

    #[test]
    fn tables_default_to_their_specs() {
        let env = Env::from_pairs(&[(USAGE.env_var, "u-1")]);
        let tables = env.tables();
        assert_eq!(tables.keys, KEYS.default_name);
        assert_eq!(tables.usage, "u-1");
        assert_eq!(tables.idempotency, IDEMPOTENCY.default_name);
    }
}
