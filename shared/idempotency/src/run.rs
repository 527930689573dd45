//! Run mode: run a closure at most once per key, replaying its stored
//! response (or its stored deterministic failure) to duplicates.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::MissingKeyPolicy;
use crate::deadline::Deadline;
use crate::error::IdempotencyError;
use crate::layer::{Idempotency, IdempotencyKey};
use crate::lease::Acquired;
use crate::record::Record;

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

type EncodeFailure<E> = fn(&E) -> Result<String, String>;
type DecodeFailure<E> = fn(&str) -> Result<E, String>;

impl Idempotency {
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
    pub(crate) fn missing_key<E>(&self) -> Result<(), IdempotencyError<E>> {
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
                key.check_fingerprint(&record)?;
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
