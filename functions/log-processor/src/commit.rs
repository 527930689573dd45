//! Committing planned chunks exactly once, each with its dedupe marker, in
//! transactions packed here, with failures isolated:
//!
//! - API keys' chunks and anonymous identities' chunks never share a
//!   transaction, so anonymous traffic cannot fail an API key's count;
//! - a transaction that fails leaves the others to commit (its chunks are
//!   reported, and the retry of the delivery finds the others' markers);
//! - anonymous identities' counters are placed in their bucket's parts
//!   ([`PartPlacer`]); a transaction that finds a part full (its condition
//!   on the part's reservations fails) is placed again from the parts as
//!   stored, and committed again, at most [`PLACEMENTS`] times.
//!
//! A transaction holds at most 100 actions (markers and item writes), each
//! item write at most `MAX_ADDS_PER_WRITE` counters and `PART_MEMBER_BYTES`
//! of reservations, so no write exceeds DynamoDB's limits whatever the input.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use aws_sdk_dynamodb::types::TransactWriteItem;
use tollgate_core::bucket::{MAX_ADDS_PER_WRITE, PART_MEMBER_BYTES};
use tollgate_core::{ItemKey, UnixMillis};
use tollgate_idempotency::{Idempotency, IdempotencyError};
use tollgate_store::usage::{increment, Grouping};
use tollgate_store::{PartPlacer, StoreError, UsageStore};

use crate::batch::Chunk;

/// DynamoDB's most actions in one transaction.
const MAX_TRANSACTION_ACTIONS: usize = 100;

/// How many times a transaction that found a bucket part full is placed again.
pub const PLACEMENTS: usize = 5;

/// What committing did.
#[derive(Debug, Default)]
pub struct Committed {
    /// Chunks committed now.
    pub new: u64,
    /// Chunks found committed before.
    pub duplicates: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// Transactions that found a part full and were placed again.
    pub placed_again: u64,
    /// Chunks that failed, with why (the others are committed).
    pub failed: Vec<(String, String)>,
}

/// The stores a commit writes to.
#[derive(Debug)]
pub struct Writer<'a> {
    pub usage: &'a UsageStore,
    pub idempotency: &'a Idempotency,
    pub parts: &'a PartPlacer,
    pub now: UnixMillis,
}

impl Writer<'_> {
    /// Commits API keys' chunks, then anonymous identities' chunks.
    pub async fn commit(&self, named: Vec<Chunk>, anonymous: Vec<Chunk>) -> Committed {
        let mut done = Committed::default();
        self.commit_all(named, false, &mut done).await;
        self.commit_all(anonymous, true, &mut done).await;
        done
    }

    async fn commit_all(&self, mut pending: Vec<Chunk>, place: bool, done: &mut Committed) {
        for round in 0..PLACEMENTS {
            if pending.is_empty() {
                return;
            }
            if place {
                let mut keys = Vec::new();
                for chunk in pending.iter_mut() {
                    for (key, _, _) in chunk.increments.iter_mut() {
                        keys.push(key);
                    }
                }
                if let Err(e) = self.parts.place(self.usage, keys, round > 0).await {
                    let why = format!("placing anonymous counters failed: {e}");
                    done.failed
                        .extend(pending.drain(..).map(|c| (c.id, why.clone())));
                    return;
                }
            }
            let mut full = Vec::new();
            for group in pack(&pending) {
                let chunks = &pending[group.clone()];
                match self.commit_group(chunks).await {
                    Ok((new, duplicates, transactions)) => {
                        done.new += new as u64;
                        done.duplicates += duplicates as u64;
                        done.transactions += u64::from(transactions);
                    }
                    Err(Failure::Full) => {
                        done.placed_again += 1;
                        full.push(group);
                        continue;
                    }
                    Err(Failure::Other(why)) => {
                        tracing::error!(error = %why, chunks = chunks.len(), "a usage transaction failed; the others go on");
                        done.failed
                            .extend(chunks.iter().map(|c| (c.id.clone(), why.clone())));
                        continue;
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

    /// Commits one packed group of chunks through the idempotency batch.
    /// Returns the chunks new and duplicate, and the transactions committed.
    async fn commit_group(&self, chunks: &[Chunk]) -> Result<(usize, usize, u32), Failure> {
        let ids: Vec<String> = chunks.iter().map(|c| c.id.clone()).collect();
        let mut writes = Writes::new(self.usage, chunks, self.now);
        match self
            .idempotency
            .commit_batch(&ids, |group| writes.for_ids(group))
            .await
        {
            Ok(outcome) => Ok((
                outcome.new.len(),
                outcome.duplicates.len(),
                outcome.transactions,
            )),
            Err(IdempotencyError::WriteCancelled { code, .. })
                if code == "ConditionalCheckFailed" =>
            {
                Err(Failure::Full)
            }
            Err(e) => Err(Failure::Other(e.to_string())),
        }
    }
}

/// Why a group did not commit.
enum Failure {
    /// A bucket part had no room left for the group's counters.
    Full,
    /// Anything else.
    Other(String),
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

/// The writes of a prefix of a group's chunks, as the idempotency batch
/// asks for them (one more chunk each time, or the chunks left after
/// dropping duplicates): grown one chunk at a time, rebuilding only the
/// writes of the items the new chunk touches.
struct Writes<'c> {
    usage: &'c UsageStore,
    chunks: HashMap<&'c str, &'c Chunk>,
    now: UnixMillis,
    done: Vec<String>,
    grouping: Grouping,
    built: BTreeMap<ItemKey, TransactWriteItem>,
}

impl<'c> Writes<'c> {
    fn new(usage: &'c UsageStore, chunks: &'c [Chunk], now: UnixMillis) -> Self {
        Writes {
            usage,
            chunks: chunks.iter().map(|c| (c.id.as_str(), c)).collect(),
            now,
            done: Vec::new(),
            grouping: Grouping::default(),
            built: BTreeMap::new(),
        }
    }

    fn for_ids(&mut self, ids: &[String]) -> Result<Vec<TransactWriteItem>, StoreError> {
        let extends = ids.len() == self.done.len() + 1 && ids.starts_with(&self.done);
        if !extends {
            self.done.clear();
            self.grouping = Grouping::default();
            self.built.clear();
        }
        let mut touched = HashSet::new();
        for id in &ids[self.done.len()..] {
            let chunk = self
                .chunks
                .get(id.as_str())
                .ok_or_else(|| StoreError::Malformed {
                    table: "Idempotency",
                    message: format!("no chunk planned for id {id}"),
                })?;
            for (key, aggregation, amount) in &chunk.increments {
                touched.insert(self.grouping.add(key, *aggregation, *amount));
            }
            self.done.push(id.clone());
        }
        let (table, top_index) = (self.usage.table(), self.usage.top_index());
        for item in touched {
            if let Some(adds) = self.grouping.get(&item) {
                let write = increment(table, adds, self.now, top_index)?;
                self.built.insert(item, write);
            }
        }
        Ok(self.built.values().cloned().collect())
    }
}
