//! What an [`Idempotency`](crate::Idempotency) does, as data.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::key::{KeySelector, PathError};

/// The names of the record's attributes. The defaults follow Powertools
/// (`id`, `status`, `expiration`, `in_progress_expiration`, `data`,
/// `validation`), plus `lease` and `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeNames {
    /// The hash key (or, with [`KeyLayout::Composite`], unused).
    pub key: String,
    /// `IN_PROGRESS` or `COMPLETED`.
    pub status: String,
    /// When the record expires, epoch seconds; also the table's TTL attribute.
    pub expiration: String,
    /// When an in-progress lease ends, epoch milliseconds.
    pub in_progress_expiration: String,
    /// The lease token of the execution that acquired the record.
    pub lease: String,
    /// The stored response: a string of JSON, or binary gzip-compressed JSON.
    pub data: String,
    /// The payload fingerprint.
    pub validation: String,
    /// `true` when the stored data is a deterministic failure.
    pub failed: String,
}

impl Default for AttributeNames {
    fn default() -> Self {
        AttributeNames {
            key: "id".into(),
            status: "status".into(),
            expiration: "expiration".into(),
            in_progress_expiration: "in_progress_expiration".into(),
            lease: "lease".into(),
            data: "data".into(),
            validation: "validation".into(),
            failed: "failed".into(),
        }
    }
}

/// How a record key maps onto the table's primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLayout {
    /// The record key is the hash key ([`AttributeNames::key`]).
    Hash,
    /// A table with a sort key: the partition key holds a static value and
    /// the sort key holds the record key.
    Composite {
        /// The partition key attribute.
        partition_attr: String,
        /// The static partition value.
        partition_value: String,
        /// The sort key attribute.
        sort_attr: String,
    },
}

/// What to do when the key selector finds no key in the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKeyPolicy {
    /// Return [`IdempotencyError::MissingKey`](crate::IdempotencyError::MissingKey).
    #[default]
    Error,
    /// Run the handler without idempotency (and log a warning).
    RunWithoutIdempotency,
}

/// A bounded wait for another execution's lease, instead of an immediate
/// [`AlreadyInProgress`](crate::IdempotencyError::AlreadyInProgress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    /// The longest time to wait in total.
    pub max_wait: Duration,
    /// The first pause between attempts; it doubles up to `max_backoff`,
    /// with jitter.
    pub initial_backoff: Duration,
    /// The longest pause.
    pub max_backoff: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            max_wait: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// The configuration of an [`Idempotency`](crate::Idempotency).
///
/// ```
/// use std::time::Duration;
/// use tollgate_idempotency::{IdempotencyConfig, MissingKeyPolicy};
///
/// let config = IdempotencyConfig::new("tollgate-idempotency")
///     .namespace("orders")
///     .version(2)
///     .key_path("body.order_id")?
///     .payload_path("body")?
///     .expiry(Duration::from_secs(24 * 3600))
///     .missing_key(MissingKeyPolicy::RunWithoutIdempotency)
///     .cache_capacity(1024);
/// assert_eq!(config.key_prefix(), "orders#v2#");
/// # Ok::<(), tollgate_idempotency::PathError>(())
/// ```
#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    /// The table.
    pub table: String,
    /// The record's attribute names.
    pub attributes: AttributeNames,
    /// How the record key maps onto the primary key.
    pub key_layout: KeyLayout,
    /// The namespace part of the key prefix (for example the function name).
    pub namespace: String,
    /// The version part of the key prefix: bump it to start afresh after
    /// changing what a key means.
    pub version: u32,
    /// What part of the event identifies it (default: the whole event).
    pub key_selector: KeySelector,
    /// What part of the event a fingerprint covers (default: none, no
    /// payload validation).
    pub payload_selector: Option<KeySelector>,
    /// What to do when the event has no key.
    pub missing_key: MissingKeyPolicy,
    /// How long a completed record is replayed (default 1 hour).
    pub expiry: Duration,
    /// How long a marker ([`Idempotency::mark`](crate::Idempotency::mark),
    /// [`Idempotency::commit_batch`](crate::Idempotency::commit_batch)) dedupes
    /// (default: `expiry`).
    pub marker_expiry: Option<Duration>,
    /// Subtracted from the Lambda deadline to give the in-progress expiry
    /// (default 0: the lease ends when the invocation would be killed).
    pub in_progress_margin: Duration,
    /// The shortest lease from now, whatever the deadline says (default 1 s).
    pub in_progress_floor: Duration,
    /// The lease when no deadline is known (default 60 s).
    pub in_progress_without_deadline: Duration,
    /// Wait for a live lease instead of failing at once (default: no wait).
    pub wait: Option<WaitPolicy>,
    /// Responses longer than this (bytes of JSON) are stored gzip-compressed
    /// (default 4 KiB).
    pub compress_above: usize,
    /// The largest stored response, after compression (default 350,000 bytes).
    pub max_response_bytes: usize,
    /// Completed records kept in process (0, the default, for none).
    pub cache_capacity: usize,
    /// Retries of a batch transaction cancelled by a transaction conflict
    /// (default 8).
    pub conflict_retries: u32,
    /// The first pause before such a retry; it doubles, with jitter
    /// (default 25 ms).
    pub conflict_backoff: Duration,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl IdempotencyConfig {
    /// The defaults for a table.
    pub fn new(table: impl Into<String>) -> Self {
        IdempotencyConfig {
            table: table.into(),
            attributes: AttributeNames::default(),
            key_layout: KeyLayout::Hash,
            namespace: "default".into(),
            version: 1,
            key_selector: KeySelector::Whole,
            payload_selector: None,
            missing_key: MissingKeyPolicy::Error,
            expiry: Duration::from_secs(3600),
            marker_expiry: None,
            in_progress_margin: Duration::ZERO,
            in_progress_floor: Duration::from_secs(1),
            in_progress_without_deadline: Duration::from_secs(60),
            wait: None,
            compress_above: 4096,
            max_response_bytes: 350_000,
            cache_capacity: 0,
            conflict_retries: 8,
            conflict_backoff: Duration::from_millis(25),
            clock: Arc::new(SystemClock),
        }
    }

    /// Sets the namespace of the key prefix.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the version of the key prefix.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Sets the attribute names.
    pub fn attributes(mut self, attributes: AttributeNames) -> Self {
        self.attributes = attributes;
        self
    }

    /// Uses a table with a sort key: a static partition value, the record
    /// key as the sort key.
    pub fn composite_key(
        mut self,
        partition_attr: impl Into<String>,
        partition_value: impl Into<String>,
        sort_attr: impl Into<String>,
    ) -> Self {
        self.key_layout = KeyLayout::Composite {
            partition_attr: partition_attr.into(),
            partition_value: partition_value.into(),
            sort_attr: sort_attr.into(),
        };
        self
    }

    /// Sets the key selector.
    pub fn key_selector(mut self, selector: KeySelector) -> Self {
        self.key_selector = selector;
        self
    }

    /// Selects the key with a JSON path (see [`JsonPath`](crate::JsonPath)).
    pub fn key_path(self, path: &str) -> Result<Self, PathError> {
        Ok(self.key_selector(KeySelector::path(path)?))
    }

    /// Sets the payload fingerprint selector.
    pub fn payload_selector(mut self, selector: KeySelector) -> Self {
        self.payload_selector = Some(selector);
        self
    }

    /// Fingerprints the payload at a JSON path.
    pub fn payload_path(self, path: &str) -> Result<Self, PathError> {
        Ok(self.payload_selector(KeySelector::path(path)?))
    }

    /// Sets what happens when the event has no key.
    pub fn missing_key(mut self, policy: MissingKeyPolicy) -> Self {
        self.missing_key = policy;
        self
    }

    /// Sets how long completed records are replayed.
    pub fn expiry(mut self, expiry: Duration) -> Self {
        self.expiry = expiry;
        self
    }

    /// Sets how long markers dedupe.
    pub fn marker_expiry(mut self, expiry: Duration) -> Self {
        self.marker_expiry = Some(expiry);
        self
    }

    /// Sets the margin subtracted from the deadline and the floor of a lease.
    pub fn in_progress(mut self, margin: Duration, floor: Duration) -> Self {
        self.in_progress_margin = margin;
        self.in_progress_floor = floor;
        self
    }

    /// Sets the lease used when no deadline is known.
    pub fn in_progress_without_deadline(mut self, lease: Duration) -> Self {
        self.in_progress_without_deadline = lease;
        self
    }

    /// Waits (bounded) for a live lease instead of failing at once.
    pub fn wait(mut self, policy: WaitPolicy) -> Self {
        self.wait = Some(policy);
        self
    }

    /// Sets the compression threshold and the stored-response limit, in bytes.
    pub fn response_limits(mut self, compress_above: usize, max_response_bytes: usize) -> Self {
        self.compress_above = compress_above;
        self.max_response_bytes = max_response_bytes;
        self
    }

    /// Keeps up to `capacity` completed records in process.
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The prefix of every record key: `<namespace>#v<version>#`.
    pub fn key_prefix(&self) -> String {
        format!("{}#v{}#", self.namespace, self.version)
    }

    /// `<namespace>#v<version>#<digest>`, in one allocation.
    pub(crate) fn prefixed_key(&self, digest: &str) -> String {
        use std::fmt::Write;
        let mut key = String::with_capacity(self.namespace.len() + 16 + digest.len());
        let _ = write!(key, "{}#v{}#{digest}", self.namespace, self.version);
        key
    }

    /// The marker expiry in effect.
    pub fn effective_marker_expiry(&self) -> Duration {
        self.marker_expiry.unwrap_or(self.expiry)
    }

    /// The in-progress expiry, epoch milliseconds, for a lease taken at
    /// `now_ms` by an invocation with this deadline: the deadline minus the
    /// margin, but at least `now_ms` plus the floor; without a deadline,
    /// `now_ms` plus [`in_progress_without_deadline`](Self::in_progress_without_deadline).
    /// Never zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate_idempotency::IdempotencyConfig;
    ///
    /// let c = IdempotencyConfig::new("t").in_progress(Duration::from_millis(200), Duration::from_secs(1));
    /// assert_eq!(c.in_progress_expiry_ms(10_000, Some(40_000)), 39_800);
    /// assert_eq!(c.in_progress_expiry_ms(10_000, Some(10_500)), 11_000); // the floor
    /// assert_eq!(c.in_progress_expiry_ms(10_000, None), 70_000);
    /// ```
    pub fn in_progress_expiry_ms(&self, now_ms: u64, deadline_ms: Option<u64>) -> u64 {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let floor = now_ms.saturating_add(ms(self.in_progress_floor).max(1));
        match deadline_ms.filter(|d| *d > 0) {
            Some(d) => d.saturating_sub(ms(self.in_progress_margin)).max(floor),
            None => now_ms
                .saturating_add(ms(self.in_progress_without_deadline))
                .max(floor),
        }
    }
}
