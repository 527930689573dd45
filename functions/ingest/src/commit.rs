//! Counting valid events exactly once: their dedupe markers and their
//! aggregated counter increments commit together, chunk by chunk, through
//! the idempotency crate's batch mode.
//!
//! `max` meters are raised with a conditional update before the markers
//! are written: raising a maximum twice changes nothing, so a crash between
//! the two is repaired by the client's retry.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::TransactWriteItem;
use tollgate_core::{Aggregation, CoreError, CountedWindows, CounterKey, Region, UnixMillis};
use tollgate_idempotency::{Idempotency, IdempotencyError};
use tollgate_store::{usage, StoreError, UsageStore};

use crate::validate::{aggregate, Event};

/// The prefix of an event's marker id in the idempotency table.
pub const MARKER_PREFIX: &str = "event#";

/// Why counting failed. Chunks committed before the failure stay
/// committed; a retry of the whole request finds their events duplicate.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Building the writes failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event's time has no period (cannot happen after validation).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The batch commit failed.
    #[error("committing the events failed: {0}")]
    Batch(String),
}

impl From<IdempotencyError<CommitError>> for CommitError {
    fn from(e: IdempotencyError<CommitError>) -> Self {
        match e {
            IdempotencyError::Handler(inner) | IdempotencyError::ReplayedFailure(inner) => inner,
            other => CommitError::Batch(other.to_string()),
        }
    }
}

/// What committing found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Ids (the events' own) counted by this call.
    pub new: HashSet<String>,
    /// Ids seen within the dedupe window before.
    pub duplicates: HashSet<String>,
    /// Transactions committed.
    pub transactions: u32,
    /// `max` counters raised.
    pub max_updates: u32,
}

/// The marker id of an event id.
pub fn marker_id(event_id: &str) -> String {
    format!("{MARKER_PREFIX}{event_id}")
}

/// Counts `events` (valid, with distinct ids) in `region`'s Usage items of
/// each window `windows` counts their meter in, exactly once per event id
/// within the marker expiry.
pub async fn commit(
    markers: &Idempotency,
    store: &UsageStore,
    region: &Region,
    windows: &CountedWindows,
    events: &[Event],
    now: UnixMillis,
) -> Result<CommitOutcome, CommitError> {
    let mut outcome = CommitOutcome::default();
    if events.is_empty() {
        return Ok(outcome);
    }
    // `max` meters first: idempotent by nature, so safe before the markers.
    let max_events = events.iter().filter(|e| e.aggregation == Aggregation::Max);
    let maxima: BTreeMap<CounterKey, u64> = aggregate(max_events, windows)?
        .into_increments()
        .into_iter()
        .map(|(k, _, v)| (k, v))
        .collect();
    for (counter, value) in &maxima {
        if store
            .raise_max(&counter.in_region(region), *value, now)
            .await?
        {
            outcome.max_updates += 1;
        }
    }

    let by_marker: HashMap<String, &Event> = events.iter().map(|e| (marker_id(&e.id), e)).collect();
    // Events of one counter side by side: a chunk then holds few counters,
    // and a transaction more markers and fewer increments.
    let mut order: Vec<&Event> = events.iter().collect();
    order.sort_by(|a, b| (&a.meter, &a.identity, a.time).cmp(&(&b.meter, &b.identity, b.time)));
    let ids: Vec<String> = order.iter().map(|e| marker_id(&e.id)).collect();
    let (table, top_index) = (store.table().to_owned(), store.top_index());
    let writes_for = |chunk: &[String]| -> Result<Vec<TransactWriteItem>, CommitError> {
        let chunk_events = chunk
            .iter()
            .filter_map(|id| by_marker.get(id).copied())
            .filter(|e| e.aggregation != Aggregation::Max);
        let increments: Vec<_> = aggregate(chunk_events, windows)?
            .into_increments()
            .into_iter()
            .map(|(counter, agg, amount)| (counter.into_region(region), agg, amount))
            .collect();
        // One write per item: a day and its month share one.
        usage::ItemAdds::group(increments.iter().map(|(k, a, v)| (k, *a, *v)))
            .iter()
            .map(|adds| usage::increment(&table, adds, now, top_index).map_err(CommitError::from))
            .collect()
    };
    let batch = markers.commit_batch(&ids, writes_for).await?;
    let strip = |id: String| {
        id.strip_prefix(MARKER_PREFIX)
            .map(str::to_owned)
            .unwrap_or(id)
    };
    outcome.new = batch.new.into_iter().map(strip).collect();
    outcome.duplicates = batch.duplicates.into_iter().map(strip).collect();
    outcome.transactions = batch.transactions;
    Ok(outcome)
}
