//! The one exactly-once committer of counted usage, shared by ingest (one
//! chunk per meter event) and the log-processor (chunks of a batch's
//! aggregated increments): each chunk's dedupe marker and its increments
//! commit in one transaction, so a redelivered chunk finds its marker and
//! adds nothing, behind the store's [`UsageWriter`] port.
//!
//! - `max` counters are raised first: raising a maximum twice changes
//!   nothing, so they need no marker, and a crash after them is repaired
//!   by the retry;
//! - API keys' chunks and anonymous identities' chunks never share a
//!   transaction, so anonymous traffic cannot fail an API key's count;
//! - chunks are packed in order into groups that fit one transaction
//!   ([`pack`]); a group that fails is reported, and leaves the others to
//!   commit ([`OnFailure::GoOn`]: the retry finds their markers) or stops
//!   the commit ([`OnFailure::Stop`]: the retry commits the rest);
//! - anonymous identities' counters are placed in their bucket's parts; a
//!   group that finds a part full is placed again from the parts as
//!   stored, and committed again, at most [`PLACEMENTS`] times.
//!
//! A transaction holds at most 100 actions (markers and item writes), each
//! item write at most `MAX_ADDS_PER_WRITE` counters and `PART_MEMBER_BYTES`
//! of reservations, so no write exceeds DynamoDB's limits whatever the input.

use std::collections::HashMap;
use std::ops::Range;

use tollgate_core::bucket::{MAX_ADDS_PER_WRITE, PART_MEMBER_BYTES};
use tollgate_core::{ItemKey, UnixMillis, UsageKey};
use tollgate_store::usage::Grouping;
use tollgate_store::GroupError;

pub use tollgate_store::{Chunk, UsageWriter};

/// DynamoDB's most actions in one transaction.
const MAX_TRANSACTION_ACTIONS: usize = 100;

/// How many times a group that found a bucket part full is placed again.
pub const PLACEMENTS: usize = 5;

/// What one commit writes: chunks of API keys' counters, chunks of
/// anonymous identities' counters (placed in bucket parts), and `max`
/// counters to raise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Chunks of API keys' (or any named identity's) counters, committed
    /// as given.
    pub named: Vec<Chunk>,
    /// Chunks of anonymous identities' counters, placed in their buckets'
    /// parts before they are committed, never in a transaction with a
    /// named chunk.
    pub anonymous: Vec<Chunk>,
    /// `max` counters and the values to raise them to.
    pub maxima: Vec<(UsageKey, u64)>,
}

/// What committing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// Ids of the chunks committed now.
    pub new: Vec<String>,
    /// Ids of the chunks found committed before.
    pub duplicates: Vec<String>,
    /// Transactions committed.
    pub transactions: u64,
    /// Groups that found a bucket part full and were placed again.
    pub placed_again: u64,
    /// `max` counters raised, or found at least as high.
    pub maxima: u64,
    /// What failed (chunk ids, or [`max_id`] of a `max` counter), with
    /// why; everything else is written.
    pub failed: Vec<(String, String)>,
}

/// The name of a `max` counter's write among failed ones.
pub fn max_id(key: &UsageKey) -> String {
    format!("max#{}#{}", key.counter.name(), key.label())
}

/// What the committer does once a write failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Go on with the other writes (the log-processor: the delivery's
    /// retry finds their markers and commits only what failed).
    #[default]
    GoOn,
    /// Stop: nothing after the failed write is attempted (ingest: the
    /// client retries the whole request).
    Stop,
}

/// The committer: a [`UsageWriter`], the time the writes carry, and what
/// a failure does.
#[derive(Debug)]
pub struct Committer<'a, W> {
    writer: &'a W,
    now: UnixMillis,
    on_failure: OnFailure,
}

impl<'a, W: UsageWriter> Committer<'a, W> {
    /// Commits through `writer`, stamping items `updated_at = now`, going
    /// on after a failure.
    pub fn new(writer: &'a W, now: UnixMillis) -> Self {
        Committer {
            writer,
            now,
            on_failure: OnFailure::GoOn,
        }
    }

    /// The same committer, doing `on_failure` once a write failed.
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    fn stops(&self, done: &Committed) -> bool {
        self.on_failure == OnFailure::Stop && !done.failed.is_empty()
    }

    /// Raises the batch's `max` counters, then commits its named chunks,
    /// then its anonymous ones, each exactly once. Never fails as a
    /// whole: what did not commit is in [`Committed::failed`] (with
    /// [`OnFailure::Stop`], the first failure only; nothing after it was
    /// attempted).
    pub async fn commit(&self, batch: Batch) -> Committed {
        let mut done = Committed::default();
        for (key, value) in &batch.maxima {
            match self.writer.raise_max(key, *value, self.now).await {
                Ok(_) => done.maxima += 1,
                Err(e) => done.failed.push((max_id(key), e.to_string())),
            }
            if self.stops(&done) {
                return done;
            }
        }
        self.commit_all(batch.named, false, &mut done).await;
        if !self.stops(&done) {
            self.commit_all(batch.anonymous, true, &mut done).await;
        }
        done
    }

    async fn commit_all(&self, mut pending: Vec<Chunk>, place: bool, done: &mut Committed) {
        for round in 0..PLACEMENTS {
            if pending.is_empty() || self.stops(done) {
                return;
            }
            if place {
                let mut keys = Vec::new();
                for chunk in pending.iter_mut() {
                    for (key, _, _) in chunk.increments.iter_mut() {
                        keys.push(key);
                    }
                }
                if let Err(e) = self.writer.place(keys, round > 0).await {
                    let why = format!("placing anonymous counters failed: {e}");
                    done.failed
                        .extend(pending.drain(..).map(|c| (c.id, why.clone())));
                    return;
                }
            }
            let mut full = Vec::new();
            for group in pack(&pending) {
                if self.stops(done) {
                    return;
                }
                let chunks = &pending[group.clone()];
                match self.writer.commit_chunks(chunks, self.now).await {
                    Ok(outcome) => {
                        done.new.extend(outcome.new);
                        done.duplicates.extend(outcome.duplicates);
                        done.transactions += u64::from(outcome.transactions);
                    }
                    Err(GroupError::PartFull) if place => {
                        done.placed_again += 1;
                        full.push(group);
                    }
                    Err(e) => {
                        let why = e.to_string();
                        tracing::error!(error = %why, chunks = chunks.len(), "a usage transaction failed; the others go on");
                        done.failed
                            .extend(chunks.iter().map(|c| (c.id.clone(), why.clone())));
                    }
                }
            }
            pending = full
                .into_iter()
                .flat_map(|range| pending[range].to_vec())
                .collect();
        }
        let why = format!("bucket parts were full {PLACEMENTS} times in a row");
        done.failed
            .extend(pending.into_iter().map(|c| (c.id, why.clone())));
    }
}

/// Cuts chunks (in order) into groups that fit one transaction each: their
/// markers and distinct items within 100 actions, each item's adds within
/// one write's bounds.
pub fn pack(chunks: &[Chunk]) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut items: HashMap<ItemKey, (usize, u64)> = HashMap::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut grouping = Grouping::default();
        for (key, aggregation, amount) in &chunk.increments {
            grouping.add(key, *aggregation, *amount);
        }
        let adds: Vec<(ItemKey, usize, u64)> = grouping
            .into_items()
            .into_iter()
            .map(|a| (a.item.item(), a.adds.len(), a.reserved()))
            .collect();
        let fits = |items: &HashMap<ItemKey, (usize, u64)>, markers: usize| {
            let new_items = adds
                .iter()
                .filter(|(k, _, _)| !items.contains_key(k))
                .count();
            markers + 1 + items.len() + new_items <= MAX_TRANSACTION_ACTIONS
                && adds.iter().all(|(k, n, bytes)| {
                    let (n0, b0) = items.get(k).copied().unwrap_or((0, 0));
                    n0 + n <= MAX_ADDS_PER_WRITE && b0 + bytes <= PART_MEMBER_BYTES
                })
        };
        if i > start && !fits(&items, i - start) {
            groups.push(start..i);
            start = i;
            items.clear();
        }
        for (k, n, bytes) in adds {
            let slot = items.entry(k).or_insert((0, 0));
            slot.0 += n;
            slot.1 += bytes;
        }
    }
    if start < chunks.len() {
        groups.push(start..chunks.len());
    }
    groups
}
