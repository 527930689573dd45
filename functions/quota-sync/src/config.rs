//! The function's configuration, read once per container from `TOLLGATE_*`
//! environment variables.

use std::time::Duration;

use tollgate_core::{Region, Replication};
use tollgate_lambda::{Env, EnvError, Peer};
use tollgate_store::TableNames;

/// A configuration that cannot be used; the message names the variable.
pub type ConfigError = EnvError;

/// How quota-sync runs in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This region (`TOLLGATE_REGION`): items whose `sk` ends with it are copied to peers.
    pub region: Region,
    /// The peer regions (`TOLLGATE_PEER_REGIONS`, `TOLLGATE_PEER_ENDPOINTS`).
    pub peers: Vec<Peer>,
    /// `TOLLGATE_GLOBAL_TABLES=true`: the table replicates itself, only evaluate.
    pub global_tables: bool,
    /// The tables (`TOLLGATE_*_TABLE`).
    pub tables: TableNames,
    /// The plan of identities without a key (`TOLLGATE_ANONYMOUS_PLAN`, default `anonymous`).
    pub anonymous_plan: String,
    /// How long plans, key plans and written blocks are remembered in the
    /// container (`TOLLGATE_PLAN_CACHE_SECONDS`, default 60).
    pub cache_ttl: Duration,
    /// The time a peer region gets for one write, retries included
    /// (`TOLLGATE_PEER_TIMEOUT_MS`, default 3000): a peer that is down
    /// costs at most this much of the invocation.
    pub peer_timeout: Duration,
    /// Which changes are copied to peers (`TOLLGATE_REPLICATION`: `hot`, the
    /// default, copies a counter once it could matter for a limit; `all`
    /// copies every change). See [`tollgate_core::replication`].
    pub replication: Replication,
    /// Whether copies of month counters carry the top index key
    /// (`TOLLGATE_TOP_INDEX`, default `false`).
    pub top_index: bool,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::read(&Env::process())
    }

    /// Reads the configuration through `get` (a variable's value, if set).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::read(&Env::from_lookup(get))
    }

    /// Reads the configuration from `env`.
    pub fn read(env: &Env<'_>) -> Result<Config, ConfigError> {
        let region = env.region()?;
        Ok(Config {
            peers: env.peers(&region)?,
            region,
            global_tables: env.flag("TOLLGATE_GLOBAL_TABLES", false)?,
            tables: env.tables(),
            anonymous_plan: env.text_or("TOLLGATE_ANONYMOUS_PLAN", "anonymous"),
            cache_ttl: env.seconds(
                "TOLLGATE_PLAN_CACHE_SECONDS",
                Duration::from_secs(60),
                0..=86_400,
            )?,
            peer_timeout: env.millis(
                "TOLLGATE_PEER_TIMEOUT_MS",
                Duration::from_millis(3000),
                1..=900_000,
            )?,
            replication: env.parsed("TOLLGATE_REPLICATION", Replication::default())?,
            top_index: env.flag(tollgate_store::usage::TOP_INDEX_VAR, false)?,
        })
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
        Config::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn reads_regions_peers_and_defaults() {
        let c = config(&[
            ("TOLLGATE_REGION", "local-a"),
            ("TOLLGATE_PEER_REGIONS", "local-b, local-c"),
            (
                "TOLLGATE_PEER_ENDPOINTS",
                "http://127.0.0.1:1,http://127.0.0.1:2",
            ),
            ("TOLLGATE_USAGE_TABLE", "u"),
        ])
        .unwrap();
        assert_eq!(c.region.as_str(), "local-a");
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[1].region.as_str(), "local-c");
        assert_eq!(c.peers[1].endpoint.as_deref(), Some("http://127.0.0.1:2"));
        assert!(!c.global_tables);
        assert_eq!(c.tables.usage, "u");
        assert_eq!(c.tables.keys, "tollgate-keys");
        assert_eq!(c.anonymous_plan, "anonymous");
        assert_eq!(c.cache_ttl, Duration::from_secs(60));
        assert_eq!(c.replication, Replication::Hot);
        assert!(!c.top_index);
        let no_peers = config(&[
            ("TOLLGATE_REGION", "eu-west-1"),
            ("TOLLGATE_GLOBAL_TABLES", "true"),
        ])
        .unwrap();
        assert!(no_peers.peers.is_empty() && no_peers.global_tables);
    }

    #[test]
    fn rejects_bad_configuration_with_the_variable_named() {
        for (vars, var) in [
            (vec![], "TOLLGATE_REGION"),
            (vec![("TOLLGATE_REGION", "EU")], "TOLLGATE_REGION"),
            (
                vec![("TOLLGATE_REGION", "a"), ("TOLLGATE_PEER_REGIONS", "b,a")],
                "TOLLGATE_PEER_REGIONS",
            ),
            (
                vec![("TOLLGATE_REGION", "a"), ("TOLLGATE_PEER_REGIONS", "b,b")],
                "TOLLGATE_PEER_REGIONS",
            ),
            (
                vec![
                    ("TOLLGATE_REGION", "a"),
                    ("TOLLGATE_PEER_REGIONS", "b,c"),
                    ("TOLLGATE_PEER_ENDPOINTS", "http://x"),
                ],
                "TOLLGATE_PEER_ENDPOINTS",
            ),
            (
                vec![
                    ("TOLLGATE_REGION", "a"),
                    ("TOLLGATE_GLOBAL_TABLES", "maybe"),
                ],
                "TOLLGATE_GLOBAL_TABLES",
            ),
            (
                vec![("TOLLGATE_REGION", "a"), ("TOLLGATE_PEER_TIMEOUT_MS", "-1")],
                "TOLLGATE_PEER_TIMEOUT_MS",
            ),
            (
                vec![("TOLLGATE_REGION", "a"), ("TOLLGATE_REPLICATION", "some")],
                "TOLLGATE_REPLICATION",
            ),
            (
                vec![("TOLLGATE_REGION", "a"), ("TOLLGATE_TOP_INDEX", "maybe")],
                "TOLLGATE_TOP_INDEX",
            ),
        ] {
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.contains(var), "{vars:?}: {err}");
        }
    }
}
