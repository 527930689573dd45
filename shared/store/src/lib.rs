//! The one place that knows tollgate's DynamoDB tables: their names, key
//! schemas, streams and TTL attributes ([`tables`]), how to build a client
//! that honours `AWS_ENDPOINT_URL_DYNAMODB` ([`client`]), the items of the
//! Keys and Usage tables ([`keys`], [`usage`]), and a request counter for
//! tests and benchmarks ([`metrics`]).
//!
//! Handlers and use cases see the store through [`ports`], narrow traits
//! per role in domain types; [`KeysStore`], [`UsageStore`],
//! [`AllowanceStore`] and [`CommitStore`] (chunks committed exactly once
//! with their dedupe markers) are their DynamoDB adapters, and with the
//! feature `memory` [`memory::MemoryKeys`] is an in-memory one for handler
//! tests (enable it in `[dev-dependencies]` only). [`typed_json`] reads and
//! writes items in DynamoDB's typed JSON (exports, stream images, fuzzing).

pub mod allowance;
pub mod attr;
pub mod client;
pub mod commits;
pub mod keys;
#[cfg(feature = "memory")]
pub mod memory;
pub mod metrics;
pub mod parts;
pub mod pending;
pub mod ports;
pub mod rotation;
pub mod tables;
pub mod typed_json;
pub mod usage;

pub use allowance::AllowanceStore;
pub use client::{client_from_env, local_client};
pub use commits::CommitStore;
pub use keys::KeysStore;
pub use metrics::RequestCounter;
pub use parts::{install_bucket_secret_from_env, PartPlacer};
pub use pending::PendingCopies;
pub use ports::{
    Allowances, BlockRecords, Chunk, GroupCommitted, GroupError, KeyLookup, KeyPlans, PeriodScan,
    PlanSource, TopIndex, UsageRange, UsageWriter,
};
pub use rotation::{KeySecrets, RollOutcome};
pub use tables::{
    IndexSpec, TableNames, TableSpec, IDEMPOTENCY, KEYS, TABLES, USAGE, USAGE_TOP_INDEX,
};
pub use usage::{Cursor, UsageStore};

/// An error from a DynamoDB call, with the operation it came from.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} failed: {message}")]
    Dynamo {
        operation: &'static str,
        message: String,
    },
    /// Keys a batch read left unprocessed after every retry: a failure of
    /// the store, never "absent".
    #[error("DynamoDB {operation} left {keys} key(s) unprocessed after {attempts} attempts")]
    Unprocessed {
        operation: &'static str,
        keys: usize,
        attempts: u32,
    },
    #[error("malformed item in {table}: {message}")]
    Malformed {
        table: &'static str,
        message: String,
    },
    #[error(transparent)]
    Core(#[from] tollgate_core::CoreError),
}

impl StoreError {
    /// Wraps an SDK error, keeping its full message chain (never the request payload).
    pub fn dynamo<E: std::error::Error>(operation: &'static str, err: E) -> Self {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        StoreError::Dynamo { operation, message }
    }
}

/// The result of a conditional write: `Ok(true)` if it was written,
/// `Ok(false)` if its condition did not hold, an error otherwise.
pub(crate) fn conditional<T, E>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
    operation: &'static str,
) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::dynamo(operation, e)),
    }
}
