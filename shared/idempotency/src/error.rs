//! The crate's one error type.

use std::fmt;

/// Everything that can go wrong in an idempotent call, a marker or a batch.
///
/// `E` is the caller's own error: the error of the handler closure in
/// [`Idempotency::run`](crate::Idempotency::run), or of `writes_for` in
/// [`Idempotency::commit_batch`](crate::Idempotency::commit_batch). Every
/// other variant names the record key it concerns (the prefixed hash or
/// marker id), never the payload.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError<E = Never> {
    /// The caller's code failed (the handler closure, or `writes_for`). In
    /// `run` the lease was released first, so a retry executes again.
    #[error("handler failed: {0}")]
    Handler(E),

    /// A failure that an earlier execution stored as deterministic
    /// (see [`Idempotency::run_storing_failures`](crate::Idempotency::run_storing_failures)),
    /// replayed instead of executing again.
    #[error("replayed stored failure: {0}")]
    ReplayedFailure(E),

    /// Another execution holds a live lease on this key.
    #[error(
        "idempotency key {key} is already in progress; its lease ends at {lease_expires_at_ms} ms"
    )]
    AlreadyInProgress {
        /// The record key.
        key: String,
        /// When the other execution's lease ends, epoch milliseconds.
        lease_expires_at_ms: u64,
    },

    /// The key was seen before with a different payload fingerprint.
    #[error("idempotency key {key} was used with a different payload")]
    PayloadMismatch {
        /// The record key.
        key: String,
    },

    /// This execution's lease expired and another execution took the record
    /// over (or it was otherwise changed): the result was not stored, and the
    /// other holder's record was left untouched.
    #[error("the lease on idempotency key {key} was lost")]
    LeaseLost {
        /// The record key.
        key: String,
    },

    /// The key selector found nothing (or only nulls) in the event, and the
    /// configuration says that is an error.
    #[error("no idempotency key in the event (selector {selector})")]
    MissingKey {
        /// The selector, as configured.
        selector: String,
    },

    /// The encoded (and compressed) response does not fit in a record. The
    /// lease was released; nothing was stored.
    #[error("the response for idempotency key {key} is {size} bytes after compression; the limit is {limit}")]
    ResponseTooLarge {
        /// The record key.
        key: String,
        /// Bytes after compression.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// A response or a stored record could not be encoded or decoded.
    #[error("cannot encode or decode the record of idempotency key {key}: {message}")]
    Codec {
        /// The record key.
        key: String,
        /// What went wrong.
        message: String,
    },

    /// One id's own writes do not fit in a transaction with its marker.
    #[error("marker {key} and its {writes} writes exceed the 100 actions of one transaction")]
    TooManyActions {
        /// The marker's record key.
        key: String,
        /// The number of writes that `writes_for` returned for it alone.
        writes: usize,
    },

    /// A transaction was cancelled because of one of the caller's own writes
    /// (not a marker). Chunks committed before it stay committed.
    #[error("transaction cancelled by caller write #{index} ({code}: {message}); chunk starts at marker {first_key}")]
    WriteCancelled {
        /// The first marker key of the chunk.
        first_key: String,
        /// The index of the write among the caller's writes for the chunk.
        index: usize,
        /// The cancellation reason code (`ConditionalCheckFailed`, ...).
        code: String,
        /// The cancellation reason message.
        message: String,
    },

    /// Concurrent transactions kept conflicting on the same items after the
    /// configured retries.
    #[error("transaction conflict persisted after {attempts} attempts; chunk starts at marker {first_key}")]
    TransactionConflict {
        /// The first marker key of the chunk.
        first_key: String,
        /// How many attempts were made.
        attempts: u32,
    },

    /// A DynamoDB request failed.
    #[error("DynamoDB {operation} on idempotency key {key} failed: {message}")]
    Dynamo {
        /// The operation (`PutItem`, `TransactWriteItems`, ...).
        operation: &'static str,
        /// The record key (for a transaction, its first marker key).
        key: String,
        /// The SDK error's message chain.
        message: String,
    },
}

impl<E> IdempotencyError<E> {
    /// Wraps an SDK error, keeping its whole message chain.
    pub(crate) fn dynamo(operation: &'static str, key: &str, err: &dyn std::error::Error) -> Self {
        IdempotencyError::Dynamo {
            operation,
            key: key.to_owned(),
            message: chain(err),
        }
    }

    /// Whether this is the caller's own error (fresh or replayed).
    pub fn is_handler_error(&self) -> bool {
        matches!(
            self,
            IdempotencyError::Handler(_) | IdempotencyError::ReplayedFailure(_)
        )
    }

    /// The caller's own error, if this is one (fresh or replayed).
    pub fn into_handler_error(self) -> Option<E> {
        match self {
            IdempotencyError::Handler(e) | IdempotencyError::ReplayedFailure(e) => Some(e),
            _ => None,
        }
    }

    /// Converts an error that holds no caller error into one with another
    /// caller-error type.
    pub(crate) fn cast<F>(self) -> Result<IdempotencyError<F>, E> {
        use IdempotencyError as I;
        Ok(match self {
            I::Handler(e) | I::ReplayedFailure(e) => return Err(e),
            I::AlreadyInProgress {
                key,
                lease_expires_at_ms,
            } => I::AlreadyInProgress {
                key,
                lease_expires_at_ms,
            },
            I::PayloadMismatch { key } => I::PayloadMismatch { key },
            I::LeaseLost { key } => I::LeaseLost { key },
            I::MissingKey { selector } => I::MissingKey { selector },
            I::ResponseTooLarge { key, size, limit } => I::ResponseTooLarge { key, size, limit },
            I::Codec { key, message } => I::Codec { key, message },
            I::TooManyActions { key, writes } => I::TooManyActions { key, writes },
            I::WriteCancelled {
                first_key,
                index,
                code,
                message,
            } => I::WriteCancelled {
                first_key,
                index,
                code,
                message,
            },
            I::TransactionConflict {
                first_key,
                attempts,
            } => I::TransactionConflict {
                first_key,
                attempts,
            },
            I::Dynamo {
                operation,
                key,
                message,
            } => I::Dynamo {
                operation,
                key,
                message,
            },
        })
    }
}

/// An error with no caller part, used internally before a caller error type
/// is known.
#[derive(Debug)]
pub enum Never {}

impl fmt::Display for Never {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Never {}

impl IdempotencyError<Never> {
    /// Gives an internal error the caller's error type.
    pub(crate) fn widen<E>(self) -> IdempotencyError<E> {
        match self.cast() {
            Ok(e) => e,
            Err(never) => match never {},
        }
    }
}

/// An error's message and the messages of its sources, joined by `: `.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !message.contains(&next) {
            message.push_str(": ");
            message.push_str(&next);
        }
        source = s.source();
    }
    message
}
