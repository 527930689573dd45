//! The function's configuration, read once per container from `TOLLGATE_*`
//! environment variables.

use std::time::Duration;

use tollgate_core::{Region, Replication};
use tollgate_store::{TableNames, IDEMPOTENCY, KEYS, USAGE};

/// A configuration that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set: it names this region (for example eu-central-1 or local-a)")]
    Missing(&'static str),
    #[error("{var}: {message}")]
    Invalid { var: &'static str, message: String },
}

/// A peer region whose Usage table receives this region's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's region name.
    pub region: Region,
    /// An endpoint to reach it at instead of the default one (local runs).
    pub endpoint: Option<String>,
}

/// How quota-sync runs in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This region (`TOLLGATE_REGION`): items whose `sk` ends with it are copied to peers.
    pub region: Region,
    /// The peer regions (`TOLLGATE_PEER_REGIONS`, `TOLLGATE_PEER_ENDPOINTS`).
    pub peers: Vec<PeerConfig>,
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
        Config::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `get` (a variable's value, if set).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let region_var = "TOLLGATE_REGION";
        let region = var(region_var).ok_or(ConfigError::Missing(region_var))?;
        let region = Region::new(&region).map_err(|e| ConfigError::Invalid {
            var: region_var,
            message: e.to_string(),
        })?;
        let peers_var = "TOLLGATE_PEER_REGIONS";
        let mut peer_regions: Vec<Region> = Vec::new();
        for name in list(var(peers_var)) {
            let peer = Region::new(&name).map_err(|e| ConfigError::Invalid {
                var: peers_var,
                message: e.to_string(),
            })?;
            if peer == region {
                return Err(ConfigError::Invalid {
                    var: peers_var,
                    message: format!("{peer} is this region (TOLLGATE_REGION), not a peer"),
                });
            }
            if peer_regions.contains(&peer) {
                return Err(ConfigError::Invalid {
                    var: peers_var,
                    message: format!("{peer} is listed twice"),
                });
            }
            peer_regions.push(peer);
        }
        let endpoints_var = "TOLLGATE_PEER_ENDPOINTS";
        let endpoints = list(var(endpoints_var));
        if !endpoints.is_empty() && endpoints.len() != peer_regions.len() {
            return Err(ConfigError::Invalid {
                var: endpoints_var,
                message: format!(
                    "{} endpoints for {} peer regions: give one per peer, in the same order",
                    endpoints.len(),
                    peer_regions.len()
                ),
            });
        }
        let peers = peer_regions
            .into_iter()
            .enumerate()
            .map(|(i, region)| PeerConfig {
                region,
                endpoint: endpoints.get(i).cloned(),
            })
            .collect();
        let global_var = "TOLLGATE_GLOBAL_TABLES";
        let global_tables = match var(global_var).as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: global_var,
                    message: format!("{other:?} is not true or false"),
                })
            }
        };
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                    var: name,
                    message: format!("{v:?} is not a whole number"),
                }),
            }
        };
        let table = |spec: &tollgate_store::TableSpec| {
            var(spec.env_var).unwrap_or_else(|| spec.default_name.to_owned())
        };
        Ok(Config {
            region,
            peers,
            global_tables,
            tables: TableNames {
                keys: table(&KEYS),
                usage: table(&USAGE),
                idempotency: table(&IDEMPOTENCY),
            },
            anonymous_plan: var("TOLLGATE_ANONYMOUS_PLAN").unwrap_or_else(|| "anonymous".into()),
            cache_ttl: Duration::from_secs(number("TOLLGATE_PLAN_CACHE_SECONDS", 60)?),
            peer_timeout: Duration::from_millis(number("TOLLGATE_PEER_TIMEOUT_MS", 3000)?),
            replication: match var("TOLLGATE_REPLICATION") {
                None => Replication::default(),
                Some(v) => {
                    v.parse()
                        .map_err(|e: tollgate_core::CoreError| ConfigError::Invalid {
                            var: "TOLLGATE_REPLICATION",
                            message: e.to_string(),
                        })?
                }
            },
            top_index: tollgate_store::usage::parse_top_index(
                var(tollgate_store::usage::TOP_INDEX_VAR).as_deref(),
            )
            .map_err(|message| ConfigError::Invalid {
                var: "TOLLGATE_TOP_INDEX",
                message,
            })?,
        })
    }
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
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
                vec![("TOLLGATE_REGION", "a"), ("TOLLGATE_GLOBAL_TABLES", "yes")],
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
                vec![("TOLLGATE_REGION", "a"), ("TOLLGATE_TOP_INDEX", "1")],
                "TOLLGATE_TOP_INDEX",
            ),
        ] {
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.contains(var), "{vars:?}: {err}");
        }
    }
}
