//! What ingest reads and writes with, built once by `main.rs` (or a test)
//! from the configuration and handed to [`crate::Ingest::new`]: the handler
//! never builds a store of its own.

use tollgate_idempotency::{Clock, Idempotency, IdempotencyConfig};
use tollgate_store::{CommitStore, KeysStore};

use crate::config::Config;

/// Ingest's stores.
#[derive(Debug, Clone)]
pub struct Stores {
    /// This region's Usage table and the events' dedupe markers
    /// ([`Stores::marker_config`]): the counting, and usage queries when
    /// only this region's table is read.
    pub commits: CommitStore,
    /// The Keys table: the meters.
    pub keys: KeysStore,
    /// The `Idempotency-Key` requests' records ([`Stores::request_config`]).
    pub requests: Idempotency,
}

impl Stores {
    /// The event markers' configuration: `config`'s Idempotency table,
    /// namespace `ingest`, the markers' expiry, on `clock`.
    pub fn marker_config<C: Clock + Clone + 'static>(
        config: &Config,
        clock: C,
    ) -> IdempotencyConfig {
        IdempotencyConfig::new(config.tables.idempotency.clone())
            .namespace("ingest")
            .marker_expiry(config.marker_expiry())
            .clock(clock)
    }

    /// The `Idempotency-Key` requests' configuration: `config`'s
    /// Idempotency table, namespace `ingest-request`, the request key
    /// expiry, keyed by the request's `key` and checked by its `body`, on
    /// `clock`.
    pub fn request_config<C: Clock + Clone + 'static>(
        config: &Config,
        clock: C,
    ) -> IdempotencyConfig {
        let requests = IdempotencyConfig::new(config.tables.idempotency.clone())
            .namespace("ingest-request")
            .expiry(config.request_key_expiry)
            .clock(clock);
        // Both paths are constants, so the fallback is never taken.
        requests
            .clone()
            .key_path("key")
            .and_then(|c| c.payload_path("body"))
            .unwrap_or(requests)
    }
}
