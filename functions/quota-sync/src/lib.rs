//! quota-sync: consumes the Usage table's DynamoDB stream in one region.
//!
//! 1. **Replicate**: this region's Usage items are copied to each peer
//!    region's Usage table with a conditional write that only ever raises a
//!    count, so replayed, duplicated or reordered records change nothing and
//!    every copy converges to the true value. Repeated updates of one item
//!    within a batch are collapsed to the largest value first. With
//!    replication `hot` (the default, [`tollgate_core::replication`]) only
//!    counters that could matter for a limit are copied; a peer's first copy
//!    marks this region's own item shared, so that it is copied back.
//! 2. **Evaluate**: for every changed counter (meter, identity, period)
//!    under a hard limit of the identity's plan (cold counters excepted),
//!    the counter's region items are read and summed (one Query per changed
//!    item, for all its counters: a key's day and month, a bucket's
//!    identities); at the limit, a block is written to
//!    this region's Keys table (idempotent, expiring at the period's end).
//! 3. **Fail narrowly**: failed records come back as `batchItemFailures`;
//!    a peer that is down delays only its own copies.
//!
//! [`handler::QuotaSync`] is the handler, [`record`] the stream record
//! decoding, [`config`] its settings. The block rules, the plan cache and
//! the block recomputation after plan changes are use cases shared with
//! the CLI: `tollgate_app::{evaluate, plans, recompute}`. (The local stream
//! pump that stands in for the event source mapping is in the test kit,
//! `tollgate_testkit::pump`.)

pub mod config;
pub mod handler;
pub mod metrics;
pub mod record;

use tollgate_store::client::{client_for, local_client_with, Limits};
use tollgate_store::{KeysStore, UsageStore};

pub use config::{Config, ConfigError};
pub use handler::{HandlerError, Outcome, Peer, QuotaSync, Stats, RETRY_PENDING};

/// The handler of `config.region`, with clients from `sdk` (the standard
/// AWS configuration; `AWS_ENDPOINT_URL_DYNAMODB` applies to every region).
/// A peer with an endpoint in the configuration is reached there.
pub fn from_sdk_config(config: &Config, sdk: &aws_config::SdkConfig) -> QuotaSync {
    let local = client_for(sdk, None, None, Limits::Standard);
    let peers = config
        .peers
        .iter()
        .map(|peer| {
            let client = client_for(
                sdk,
                Some(peer.region.as_str()),
                peer.endpoint.as_deref(),
                Limits::Peer(config.peer_timeout),
            );
            Peer {
                region: peer.region.clone(),
                usage: UsageStore::new(client, &config.tables.usage)
                    .with_top_index(config.top_index),
            }
        })
        .collect();
    QuotaSync::new(
        config,
        UsageStore::new(local.clone(), &config.tables.usage),
        KeysStore::new(local, &config.tables.keys),
        peers,
    )
}

/// The handler of `config.region` on DynamoDB Local at `endpoint` (one
/// database per region name). A peer with an endpoint in the configuration
/// is reached there instead.
pub fn local(config: &Config, endpoint: &str) -> QuotaSync {
    let client = tollgate_store::local_client(endpoint, config.region.as_str());
    let peers = config
        .peers
        .iter()
        .map(|peer| {
            let client = local_client_with(
                peer.endpoint.as_deref().unwrap_or(endpoint),
                peer.region.as_str(),
                Limits::Peer(config.peer_timeout),
            );
            Peer {
                region: peer.region.clone(),
                usage: UsageStore::new(client, &config.tables.usage)
                    .with_top_index(config.top_index),
            }
        })
        .collect();
    QuotaSync::new(
        config,
        UsageStore::new(client.clone(), &config.tables.usage),
        KeysStore::new(client, &config.tables.keys),
        peers,
    )
}

/// The configuration of one region of a local simulation: `region` with
/// every other name in `regions` as a peer, the given tables, the defaults
/// otherwise.
pub fn local_config(
    region: &str,
    regions: &[&str],
    tables: &tollgate_store::TableNames,
) -> Result<Config, ConfigError> {
    let peers: Vec<&str> = regions.iter().copied().filter(|r| *r != region).collect();
    let peers = peers.join(",");
    let mut config = Config::from_vars(|name| match name {
        "TOLLGATE_REGION" => Some(region.to_owned()),
        "TOLLGATE_PEER_REGIONS" => Some(peers.clone()),
        _ => None,
    })?;
    config.tables = tables.clone();
    Ok(config)
}
