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

#![warn(missing_docs)]

mod batch;
mod cache;
mod canon;
pub mod clock;
mod config;
mod error;
pub mod key;
mod lambda;
pub mod record;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use batch::{BatchOutcome, MAX_TRANSACTION_ACTIONS};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AttributeNames, IdempotencyConfig, KeyLayout, MissingKeyPolicy, WaitPolicy};
pub use error::{IdempotencyError, Never};
pub use key::{canonical_json, hash_canonical, JsonPath, KeySelector, PathError};
pub use lambda::{Deadline, HandlerFuture};
pub use record::{Record, Status, StoredData};

use cache::RecordCache;

/// A handler's failure in [`Idempotency::run_storing_failures`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure<E> {
    /// A failure that a retry may not repeat (a timeout, a throttled call):
    /// the lease is released, so a retry executes again.
    Retryable(E),
    /// A failure that a retry would repeat (a validation error, a declined
    /// card): stored, and replayed to duplicates like a response.
    Deterministic(E),
}

/// What [`Idempotency::mark`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The id was not seen within the marker expiry: it is now marked.
    New,
    /// The id was marked before.
    Duplicate,
}

/// The key of one idempotent call, as computed from an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The record key: `<namespace>#v<version>#<sha256 hex>`.
    pub key: String,
    /// The payload fingerprint, when payload validation is configured.
    pub fingerprint: Option<String>,
}

/// Exactly-once execution on one DynamoDB table. Cheap to clone.
#[derive(Clone)]
pub struct Idempotency {
    client: Client,
    inner: Arc<Inner>,
}

struct Inner {
    config: IdempotencyConfig,
    cache: Option<RecordCache>,
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

type EncodeFailure<E> = fn(&E) -> Result<String, String>;
type DecodeFailure<E> = fn(&str) -> Result<E, String>;

const COND_ACQUIRE: &str =
    "attribute_not_exists(#k) OR #exp < :now OR (#st = :inprog AND #ipe < :now_ms)";
const COND_MARKER: &str = "attribute_not_exists(#k) OR #exp < :now";
const COND_MINE: &str = "#st = :inprog AND #lease = :lease";

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Idempotency {
    /// An idempotency layer on `client` and `config.table`.
    pub fn new(client: Client, config: IdempotencyConfig) -> Self {
        let cache = (config.cache_capacity > 0).then(|| RecordCache::new(config.cache_capacity));
        Idempotency {
            client,
            inner: Arc::new(Inner { config, cache }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &IdempotencyConfig {
        &self.inner.config
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn now_ms(&self) -> u64 {
        self.inner.config.clock.now_ms()
    }

    /// The key of an event, or `None` when the selector finds none.
    ///
    /// ```
    /// # async fn f() {
    /// use serde_json::json;
    /// use tollgate_idempotency::{Idempotency, IdempotencyConfig};
    /// let conf = aws_sdk_dynamodb::Config::builder()
    ///     .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
    ///     .build();
    /// let client = aws_sdk_dynamodb::Client::from_conf(conf);
    /// let idem = Idempotency::new(client, IdempotencyConfig::new("t").namespace("fn").key_path("id").unwrap());
    /// let key = idem.key_for(&json!({"id": 1, "other": 2})).unwrap().unwrap();
    /// assert!(key.key.starts_with("fn#v1#"));
    /// assert_eq!(key.key.len(), "fn#v1#".len() + 64);
    /// # }
    /// ```
    pub fn key_for<T: Serialize + ?Sized>(
        &self,
        event: &T,
    ) -> Result<Option<IdempotencyKey>, IdempotencyError> {
        let config = &self.inner.config;
        let codec = |e: serde_json::Error| IdempotencyError::Codec {
            key: String::new(),
            message: format!("cannot serialize the event: {e}"),
        };
        let needs_value = config.key_selector.needs_value()
            || config
                .payload_selector
                .as_ref()
                .is_some_and(KeySelector::needs_value);
        if needs_value {
            let value = serde_json::to_value(event).map_err(codec)?;
            return Ok(self.key_for_value(&value));
        }
        let Some(digest) = config.key_selector.digest_typed(event).map_err(codec)? else {
            return Ok(None);
        };
        let fingerprint = match &config.payload_selector {
            None => None,
            // The same part: its digest is the key's, computed once.
            Some(sel) if sel.same_as(&config.key_selector) => Some(digest.clone()),
            Some(sel) => Some(
                sel.digest_typed(event)
                    .map_err(codec)?
                    .unwrap_or_else(|| hash_canonical(&Value::Null)),
            ),
        };
        Ok(Some(IdempotencyKey {
            key: config.prefixed_key(&digest),
            fingerprint,
        }))
    }

    /// The key of an event already in JSON form.
    pub fn key_for_value(&self, event: &Value) -> Option<IdempotencyKey> {
        let config = &self.inner.config;
        let digest = config.key_selector.digest_value(event)?;
        let fingerprint = config.payload_selector.as_ref().map(|sel| {
            if sel.same_as(&config.key_selector) {
                digest.clone()
            } else {
                sel.digest_value(event)
                    .unwrap_or_else(|| hash_canonical(&Value::Null))
            }
        });
        Some(IdempotencyKey {
            key: config.prefixed_key(&digest),
            fingerprint,
        })
    }

    /// The record key of a marker id: `<namespace>#v<version>#m#<id>`, or
    /// `...#mh#<sha256 hex of id>` for ids over 512 bytes.
    pub fn marker_key(&self, id: &str) -> String {
        let prefix = self.inner.config.key_prefix();
        if id.len() > 512 {
            use sha2::Digest;
            format!(
                "{prefix}mh#{}",
                hex::encode(sha2::Sha256::digest(id.as_bytes()))
            )
        } else {
            format!("{prefix}m#{id}")
        }
    }

    /// Runs `f` at most once per idempotency key of `event`.
    ///
    /// The first call for a key acquires a lease (one conditional
    /// `PutItem`), runs `f`, and stores its response (one conditional
    /// `UpdateItem`). A later call with the same key, within the expiry, gets
    /// the stored response back (one request, or none when cached); a call
    /// while the first still runs gets
    /// [`AlreadyInProgress`](IdempotencyError::AlreadyInProgress) (or waits,
    /// if so configured). When `f` fails, the lease is released and the error
    /// returned as [`Handler`](IdempotencyError::Handler).
    ///
    /// `deadline` is the Lambda deadline (`Context::deadline`, epoch
    /// milliseconds, a `SystemTime`, or [`Deadline::none`]): the lease ends
    /// then, less the configured margin.
    pub async fn run<T, R, E, F, Fut>(
        &self,
        event: &T,
        deadline: impl Into<Deadline>,
        f: F,
    ) -> Result<R, IdempotencyError<E>>
    where
        T: Serialize + ?Sized,
        R: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let deadline = deadline.into();
        match self.key_for(event).map_err(IdempotencyError::widen)? {
            Some(key) => self.run_with_key(&key, deadline, f).await,
            None => {
                self.missing_key()?;
                f().await.map_err(IdempotencyError::Handler)
            }
        }
    }

    /// Like [`run`](Self::run), with a key computed elsewhere.
    pub async fn run_with_key<R, E, F, Fut>(
        &self,
        key: &IdempotencyKey,
        deadline: impl Into<Deadline>,
        f: F,
    ) -> Result<R, IdempotencyError<E>>
    where
        R: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let f = || async { f().await.map_err(Failure::Retryable) };
        self.execute(key, deadline.into(), None, None, f).await
    }

    /// Like [`run`](Self::run), but a [`Failure::Deterministic`] error is
    /// stored and replayed to duplicates as
    /// [`ReplayedFailure`](IdempotencyError::ReplayedFailure) (the first call
    /// gets it as [`Handler`](IdempotencyError::Handler)); a
    /// [`Failure::Retryable`] error releases the lease.
    pub async fn run_storing_failures<T, R, E, F, Fut>(
        &self,
        event: &T,
        deadline: impl Into<Deadline>,
        f: F,
    ) -> Result<R, IdempotencyError<E>>
    where
        T: Serialize + ?Sized,
        R: Serialize + DeserializeOwned,
        E: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, Failure<E>>>,
    {
        let deadline = deadline.into();
        let encode: EncodeFailure<E> = |e| serde_json::to_string(e).map_err(|e| e.to_string());
        let decode: DecodeFailure<E> = |s| serde_json::from_str(s).map_err(|e| e.to_string());
        match self.key_for(event).map_err(IdempotencyError::widen)? {
            Some(key) => {
                self.execute(&key, deadline, Some(encode), Some(decode), f)
                    .await
            }
            None => {
                self.missing_key()?;
                f().await
                    .map_err(|(Failure::Retryable(e) | Failure::Deterministic(e))| {
                        IdempotencyError::Handler(e)
                    })
            }
        }
    }

    /// Applies the missing-key policy: an error, or `Ok` to run without
    /// idempotency.
    fn missing_key<E>(&self) -> Result<(), IdempotencyError<E>> {
        let config = &self.inner.config;
        match config.missing_key {
            MissingKeyPolicy::Error => Err(IdempotencyError::MissingKey {
                selector: config.key_selector.describe(),
            }),
            MissingKeyPolicy::RunWithoutIdempotency => {
                tracing::warn!(selector = %config.key_selector.describe(), "no idempotency key in the event; running without idempotency");
                Ok(())
            }
        }
    }

    async fn execute<R, E, F, Fut>(
        &self,
        key: &IdempotencyKey,
        deadline: Deadline,
        encode_failure: Option<EncodeFailure<E>>,
        decode_failure: Option<DecodeFailure<E>>,
        f: F,
    ) -> Result<R, IdempotencyError<E>>
    where
        R: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, Failure<E>>>,
    {
        if let Some(cache) = &self.inner.cache {
            if let Some(record) = cache.get(&key.key, self.now_ms()) {
                check_fingerprint(key, &record)?;
                return replay(&record, decode_failure);
            }
        }
        let lease = match self.acquire(key, deadline).await? {
            Acquired::Lease(lease) => lease,
            Acquired::Completed(record) => return replay(&record, decode_failure),
        };
        match f().await {
            Ok(response) => {
                let json =
                    serde_json::to_string(&response).map_err(|e| IdempotencyError::Codec {
                        key: key.key.clone(),
                        message: format!("cannot serialize the response: {e}"),
                    })?;
                self.complete(key, &lease, json, false).await?;
                Ok(response)
            }
            Err(Failure::Deterministic(e)) if encode_failure.is_some() => {
                let encoded = encode_failure
                    .map(|enc| enc(&e))
                    .unwrap_or_else(|| Err(String::new()));
                match encoded {
                    Ok(json) => {
                        self.complete(key, &lease, json, true).await?;
                        Err(IdempotencyError::Handler(e))
                    }
                    Err(message) => {
                        tracing::warn!(key = %key.key, %message, "cannot serialize a deterministic failure; releasing the lease");
                        self.release(&key.key, &lease).await;
                        Err(IdempotencyError::Handler(e))
                    }
                }
            }
            Err(Failure::Retryable(e) | Failure::Deterministic(e)) => {
                self.release(&key.key, &lease).await;
                Err(IdempotencyError::Handler(e))
            }
        }
    }

    /// Acquires the record, or finds it completed. Waits for a live lease
    /// when configured.
    async fn acquire<E>(
        &self,
        key: &IdempotencyKey,
        deadline: Deadline,
    ) -> Result<Acquired, IdempotencyError<E>> {
        let config = &self.inner.config;
        let names = &config.attributes;
        let started = Instant::now();
        let mut backoff = config.wait.map(|w| w.initial_backoff).unwrap_or_default();
        let mut vanished = 0;
        loop {
            let now_ms = self.now_ms();
            let lease = token();
            let record = Record {
                key: key.key.clone(),
                status: Status::InProgress,
                expiration_s: now_ms / 1000 + config.expiry.as_secs(),
                in_progress_expiry_ms: Some(
                    config.in_progress_expiry_ms(now_ms, deadline.epoch_ms()),
                ),
                lease: Some(lease.clone()),
                data: None,
                failed: false,
                validation: key.fingerprint.clone(),
            };
            let result = self
                .client
                .put_item()
                .table_name(&config.table)
                .set_item(Some(record.to_item(names, &config.key_layout)))
                .condition_expression(COND_ACQUIRE)
                .expression_attribute_names("#k", record::existence_attr(names, &config.key_layout))
                .expression_attribute_names("#exp", &names.expiration)
                .expression_attribute_names("#st", &names.status)
                .expression_attribute_names("#ipe", &names.in_progress_expiration)
                .expression_attribute_values(":now", n(now_ms / 1000))
                .expression_attribute_values(":now_ms", n(now_ms))
                .expression_attribute_values(":inprog", s(Status::InProgress.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let old = match result {
                Ok(_) => return Ok(Acquired::Lease(lease)),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
                    _ => return Err(IdempotencyError::dynamo("PutItem", &key.key, &err)),
                },
            };
            let Some(old) = old else {
                // The record existed at the check and is gone now: try again.
                vanished += 1;
                if vanished > 3 {
                    return Err(IdempotencyError::Dynamo {
                        operation: "PutItem",
                        key: key.key.clone(),
                        message: "condition failed without an old item".into(),
                    });
                }
                continue;
            };
            let old = Record::from_item(&old, names, &config.key_layout).map_err(|message| {
                IdempotencyError::Codec {
                    key: key.key.clone(),
                    message,
                }
            })?;
            if old.lease.as_deref() == Some(lease.as_str()) {
                // An SDK retry of our own successful put.
                return Ok(Acquired::Lease(lease));
            }
            check_fingerprint(key, &old)?;
            match old.status {
                Status::Completed => {
                    if let Some(cache) = &self.inner.cache {
                        cache.put(&old);
                    }
                    return Ok(Acquired::Completed(old));
                }
                Status::InProgress => {
                    let lease_expires_at_ms = old.in_progress_expiry_ms.unwrap_or(0);
                    let waited = started.elapsed();
                    match config.wait {
                        Some(w) if waited + backoff <= w.max_wait => {
                            let pause = jitter(backoff);
                            tokio::time::sleep(pause).await;
                            backoff = (backoff * 2).min(w.max_backoff);
                        }
                        _ => {
                            return Err(IdempotencyError::AlreadyInProgress {
                                key: key.key.clone(),
                                lease_expires_at_ms,
                            })
                        }
                    }
                }
            }
        }
    }

    /// Stores the response (or a deterministic failure) if the lease is
    /// still ours.
    async fn complete<E>(
        &self,
        key: &IdempotencyKey,
        lease: &str,
        json: String,
        failed: bool,
    ) -> Result<(), IdempotencyError<E>> {
        let config = &self.inner.config;
        let names = &config.attributes;
        let data = StoredData::encode(json, config.compress_above);
        if data.stored_len() > config.max_response_bytes {
            self.release(&key.key, lease).await;
            return Err(IdempotencyError::ResponseTooLarge {
                key: key.key.clone(),
                size: data.stored_len(),
                limit: config.max_response_bytes,
            });
        }
        let now_ms = self.now_ms();
        let expiration_s = now_ms / 1000 + config.expiry.as_secs();
        let data_attr = match &data {
            StoredData::Json(j) => s(j),
            StoredData::Gzip(b) => {
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b.clone()))
            }
        };
        let mut update = String::from("SET #st = :completed, #data = :data, #exp = :exp");
        if failed {
            update.push_str(", #failed = :true");
        }
        update.push_str(" REMOVE #ipe");
        let mut req = self
            .client
            .update_item()
            .table_name(&config.table)
            .set_key(Some(record::key_item(&key.key, names, &config.key_layout)))
            .update_expression(update)
            .condition_expression(COND_MINE)
            .expression_attribute_names("#st", &names.status)
            .expression_attribute_names("#data", &names.data)
            .expression_attribute_names("#exp", &names.expiration)
            .expression_attribute_names("#ipe", &names.in_progress_expiration)
            .expression_attribute_names("#lease", &names.lease)
            .expression_attribute_values(":completed", s(Status::Completed.as_str()))
            .expression_attribute_values(":inprog", s(Status::InProgress.as_str()))
            .expression_attribute_values(":lease", s(lease))
            .expression_attribute_values(":data", data_attr)
            .expression_attribute_values(":exp", n(expiration_s))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if failed {
            req = req
                .expression_attribute_names("#failed", &names.failed)
                .expression_attribute_values(":true", AttributeValue::Bool(true));
        }
        match req.send().await {
            Ok(_) => {}
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                    let old = e
                        .item()
                        .and_then(|item| Record::from_item(item, names, &config.key_layout).ok());
                    let ours_already = old.as_ref().is_some_and(|r| {
                        r.status == Status::Completed
                            && r.lease.as_deref() == Some(lease)
                            && r.data.as_ref() == Some(&data)
                    });
                    if !ours_already {
                        return Err(IdempotencyError::LeaseLost {
                            key: key.key.clone(),
                        });
                    }
                }
                _ => return Err(IdempotencyError::dynamo("UpdateItem", &key.key, &err)),
            },
        }
        if let Some(cache) = &self.inner.cache {
            cache.put(&Record {
                key: key.key.clone(),
                status: Status::Completed,
                expiration_s,
                in_progress_expiry_ms: None,
                lease: Some(lease.to_owned()),
                data: Some(data),
                failed,
                validation: key.fingerprint.clone(),
            });
        }
        Ok(())
    }

    /// Deletes the record if the lease is still ours; a failure is logged,
    /// as the caller's own error is what it returns.
    async fn release(&self, key: &str, lease: &str) {
        if let Err(e) = self.try_release::<Never>(key, lease).await {
            tracing::warn!(error = %e, "could not release the idempotency lease");
        }
    }

    async fn try_release<E>(&self, key: &str, lease: &str) -> Result<(), IdempotencyError<E>> {
        let config = &self.inner.config;
        let names = &config.attributes;
        let result = self
            .client
            .delete_item()
            .table_name(&config.table)
            .set_key(Some(record::key_item(key, names, &config.key_layout)))
            .condition_expression(COND_MINE)
            .expression_attribute_names("#st", &names.status)
            .expression_attribute_names("#lease", &names.lease)
            .expression_attribute_values(":inprog", s(Status::InProgress.as_str()))
            .expression_attribute_values(":lease", s(lease))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                // Gone already (our own retried delete, or a later holder's
                // release): nothing of ours to release.
                Some(DeleteItemError::ConditionalCheckFailedException(e)) if e.item().is_none() => {
                    Ok(())
                }
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => {
                    Err(IdempotencyError::LeaseLost {
                        key: key.to_owned(),
                    })
                }
                _ => Err(IdempotencyError::dynamo("DeleteItem", key, &err)),
            },
        }
    }

    /// Marks `id` as seen, with one conditional `PutItem` straight to a
    /// completed record with no response, expiring after the marker expiry.
    pub async fn mark(&self, id: &str) -> Result<MarkOutcome, IdempotencyError> {
        let config = &self.inner.config;
        let names = &config.attributes;
        let key = self.marker_key(id);
        let now_ms = self.now_ms();
        let tok = format!("{:016x}", rand::random::<u64>());
        let record = Record {
            key: key.clone(),
            status: Status::Completed,
            expiration_s: now_ms / 1000 + config.effective_marker_expiry().as_secs(),
            in_progress_expiry_ms: None,
            lease: Some(tok.clone()),
            data: None,
            failed: false,
            validation: None,
        };
        let result = self
            .client
            .put_item()
            .table_name(&config.table)
            .set_item(Some(record.to_item(names, &config.key_layout)))
            .condition_expression(COND_MARKER)
            .expression_attribute_names("#k", record::existence_attr(names, &config.key_layout))
            .expression_attribute_names("#exp", &names.expiration)
            .expression_attribute_values(":now", n(now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(MarkOutcome::New),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    let ours = e
                        .item()
                        .and_then(|i| i.get(&names.lease))
                        .and_then(|v| v.as_s().ok())
                        == Some(&tok);
                    Ok(if ours {
                        MarkOutcome::New
                    } else {
                        MarkOutcome::Duplicate
                    })
                }
                _ => Err(IdempotencyError::dynamo("PutItem", &key, &err)),
            },
        }
    }

    /// Reads the current record of a key (strongly consistent), whether or
    /// not it has expired; for tools and tests.
    pub async fn get_record(&self, key: &str) -> Result<Option<Record>, IdempotencyError> {
        let config = &self.inner.config;
        let names = &config.attributes;
        let out = self
            .client
            .get_item()
            .table_name(&config.table)
            .set_key(Some(record::key_item(key, names, &config.key_layout)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| IdempotencyError::dynamo("GetItem", key, &e))?;
        out.item()
            .map(|item| Record::from_item(item, names, &config.key_layout))
            .transpose()
            .map_err(|message| IdempotencyError::Codec {
                key: key.to_owned(),
                message,
            })
    }

    /// Deletes a key's record, whatever its state, and forgets it in the
    /// cache; for tools and tests.
    pub async fn delete_record(&self, key: &str) -> Result<(), IdempotencyError> {
        let config = &self.inner.config;
        if let Some(cache) = &self.inner.cache {
            cache.remove(key);
        }
        self.client
            .delete_item()
            .table_name(&config.table)
            .set_key(Some(record::key_item(
                key,
                &config.attributes,
                &config.key_layout,
            )))
            .send()
            .await
            .map_err(|e| IdempotencyError::dynamo("DeleteItem", key, &e))?;
        Ok(())
    }
}

enum Acquired {
    Lease(String),
    Completed(Record),
}

fn check_fingerprint<E>(key: &IdempotencyKey, record: &Record) -> Result<(), IdempotencyError<E>> {
    match (&key.fingerprint, &record.validation) {
        (Some(mine), Some(stored)) if mine != stored => Err(IdempotencyError::PayloadMismatch {
            key: key.key.clone(),
        }),
        _ => Ok(()),
    }
}

fn replay<R: DeserializeOwned, E>(
    record: &Record,
    decode_failure: Option<DecodeFailure<E>>,
) -> Result<R, IdempotencyError<E>> {
    let codec = |message: String| IdempotencyError::Codec {
        key: record.key.clone(),
        message,
    };
    let json = match &record.data {
        Some(d) => d.json().map_err(codec)?,
        None => "null".to_owned(),
    };
    if record.failed {
        let decode = decode_failure.ok_or_else(|| {
            codec("the record holds a stored failure; replay it with run_storing_failures".into())
        })?;
        return Err(IdempotencyError::ReplayedFailure(
            decode(&json).map_err(codec)?,
        ));
    }
    serde_json::from_str(&json)
        .map_err(|e| codec(format!("cannot deserialize the stored response: {e}")))
}

/// `d` scaled by a random factor in [0.5, 1.5).
pub(crate) fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + rand::random::<f64>())
}

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
