//! Counting valid events exactly once through the one committer
//! (`tollgate_app::commit`): each event is a chunk, its dedupe marker and
//! its counter increments (one per window) committed together, packed with
//! other events' in transactions.
//!
//! `max` meters are raised (conditional updates) before the markers are
//! written: raising a maximum twice changes nothing, so a crash between the
//! two is repaired by the client's retry.

use std::collections::{BTreeMap, HashSet};

use tollgate_app::commit::{Batch, Chunk, Committer, OnFailure, UsageWriter};
use tollgate_core::{Aggregation, CoreError, CountedWindows, CounterKey, Region, UnixMillis};
use tollgate_store::StoreError;

use crate::validate::{aggregate, Event};

/// The prefix of an event's marker id in the idempotency table.
pub const MARKER_PREFIX: &str = "event#";

/// Why counting failed. Chunks committed before the failure stay
/// committed; a retry of the whole request finds their events duplicate.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Reading the stores failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event's time has no period (cannot happen after validation).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A write failed (the chunks before it are committed).
    #[error("committing the events failed: {0}")]
    Batch(String),
}

/// What committing found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Ids (the events' own) counted by this call.
    pub new: HashSet<String>,
    /// Ids seen within the dedupe window before.
    pub duplicates: HashSet<String>,
    /// Transactions committed.
    pub transactions: u64,
    /// `max` counters raised, or found at least as high.
    pub max_updates: u64,
}

/// The marker id of an event id.
pub fn marker_id(event_id: &str) -> String {
    format!("{MARKER_PREFIX}{event_id}")
}

/// Counts `events` (valid, with distinct ids) in `region`'s Usage items of
/// each window `windows` counts their meter in, exactly once per event id
/// within the marker expiry.
/// The first write that fails stops the commit, and is returned.
pub async fn commit(
    writer: &impl UsageWriter,
    region: &Region,
    windows: &CountedWindows,
    events: &[Event],
    now: UnixMillis,
) -> Result<CommitOutcome, CommitError> {
    let mut outcome = CommitOutcome::default();
    if events.is_empty() {
        return Ok(outcome);
    }
    // `max` meters: raised first by the committer, without markers.
    let max_events = events.iter().filter(|e| e.aggregation == Aggregation::Max);
    let maxima: BTreeMap<CounterKey, u64> = aggregate(max_events, windows)?
        .into_increments()
        .into_iter()
        .map(|(k, _, v)| (k, v))
        .collect();
    // Events of one counter side by side: a transaction then holds few
    // counters, and more markers and fewer increments. Every event has a
    // marker; a `max` event's chunk has no increment.
    let mut order: Vec<&Event> = events.iter().collect();
    order.sort_by(|a, b| (&a.meter, &a.identity, a.time).cmp(&(&b.meter, &b.identity, b.time)));
    let mut named = Vec::with_capacity(order.len());
    for event in order {
        let increments = if event.aggregation == Aggregation::Max {
            Vec::new()
        } else {
            aggregate([event], windows)?
                .into_increments()
                .into_iter()
                .map(|(counter, agg, amount)| (counter.into_region(region), agg, amount))
                .collect()
        };
        named.push(Chunk {
            id: marker_id(&event.id),
            increments,
        });
    }
    let batch = Batch {
        named,
        anonymous: Vec::new(),
        maxima: maxima
            .iter()
            .map(|(counter, value)| (counter.in_region(region), *value))
            .collect(),
    };
    // The first failure stops the commit: the client retries the request.
    let committer = Committer::new(writer, now).on_failure(OnFailure::Stop);
    let done = Box::pin(committer.commit(batch)).await;
    if let Some((id, why)) = done.failed.first() {
        return Err(CommitError::Batch(format!("{id}: {why}")));
    }
    let strip = |id: String| {
        id.strip_prefix(MARKER_PREFIX)
            .map(str::to_owned)
            .unwrap_or(id)
    };
    outcome.new = done.new.into_iter().map(strip).collect();
    outcome.duplicates = done.duplicates.into_iter().map(strip).collect();
    outcome.transactions = done.transactions;
    outcome.max_updates = done.maxima;
    Ok(outcome)
}
