//! Exactly-once processing for Rust Lambda functions, on conditional
//! DynamoDB writes: what the idempotency utility of Powertools for AWS
//! Lambda does for Python, TypeScript, Java and .NET, with fenced leases, a
//! one-write marker mode and a batch mode that shares a transaction with the
//! caller's own writes.
//!
//! - [`Idempotency::run`]: run a closure at most once per key (selected from
//!   the event, canonical JSON, SHA-256), replaying its stored response to
//!   duplicates. First execution: 2 requests; duplicate: 1 (0 when cached).
//! - [`Idempotency::mark`]: plain dedupe of an id: 1 conditional write.
//! - [`Idempotency::commit_batch`]: markers for the new ids of a batch and
//!   the caller's writes for them in one `TransactWriteItems` per chunk of at
//!   most 100 actions.
//! - [`Idempotency::handler`]: wraps a `lambda_runtime` handler.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use tollgate_idempotency::{Idempotency, IdempotencyConfig};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Receipt { charge_id: String }
//!
//! # async fn example(client: aws_sdk_dynamodb::Client, event: serde_json::Value, deadline_ms: u64)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let idem = Idempotency::new(
//!     client,
//!     IdempotencyConfig::new("tollgate-idempotency").namespace("payments").key_path("body.order_id")?,
//! );
//! let receipt: Receipt = idem
//!     .run(&event, deadline_ms, || async {
//!         // charge the card: runs once per order id, however often the event comes
//!         Ok::<_, std::io::Error>(Receipt { charge_id: "ch_1".into() })
//!     })
//!     .await?;
//! # let _ = receipt; Ok(()) }
//! ```
//!
//! # Modules
//!
//! | module | holds |
//! |---|---|
//! | `layer` | [`Idempotency`] (client, configuration, cache), [`IdempotencyKey`], keys of events |
//! | `run` | run mode: [`Idempotency::run`], [`Failure`], replaying stored responses |
//! | `lease` | acquire, complete and release a record, each conditional on its lease |
//! | `marker` | marker mode: [`Idempotency::mark`], [`MarkOutcome`] |
//! | `batch` | batch mode: [`Idempotency::commit_batch`], [`BatchOutcome`] |
//! | `lambda`, `deadline` | the `lambda_runtime` wrapper, [`Deadline`] |
//! | [`config`](IdempotencyConfig), `error` | [`IdempotencyConfig`], [`IdempotencyError`] |
//! | [`record`] | the record and its DynamoDB item |
//! | [`key`] | [`KeySelector`]; re-exports JSON paths, canonical JSON and its digest |
//! | `path`, `select`, `canonical`, `digest` | JSON paths; a path taken in a typed value; canonical JSON from a `Value` or straight from `Serialize`; SHA-256 of it |
//! | `cache`, [`clock`], `request`, `backoff` | the LRU of completed records, time, request pieces, retry jitter |

#![warn(missing_docs)]

mod backoff;
mod batch;
mod cache;
mod canonical;
pub mod clock;
mod config;
mod deadline;
mod digest;
mod error;
pub mod key;
mod lambda;
mod layer;
mod lease;
mod marker;
mod path;
pub mod record;
mod request;
mod run;
mod select;

pub use batch::{BatchOutcome, MAX_TRANSACTION_ACTIONS};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AttributeNames, IdempotencyConfig, KeyLayout, MissingKeyPolicy, WaitPolicy};
pub use deadline::Deadline;
pub use error::{IdempotencyError, Never};
pub use key::{canonical_json, hash_canonical, JsonPath, KeySelector, PathError};
pub use lambda::HandlerFuture;
pub use layer::{Idempotency, IdempotencyKey};
pub use marker::MarkOutcome;
pub use record::{Record, Status, StoredData};
pub use run::Failure;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
