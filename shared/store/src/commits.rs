//! [`CommitStore`], the DynamoDB adapter of [`UsageWriter`]: a group of
//! chunks becomes `TransactWriteItems` of the chunks' dedupe markers (the
//! idempotency crate's batch mode) and one `Update` per Usage item their
//! increments touch; `max` counters and bucket parts go to the
//! [`UsageStore`] and the [`PartPlacer`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use aws_sdk_dynamodb::types::TransactWriteItem;
use aws_sdk_dynamodb::Client;
use tollgate_core::{ItemKey, UnixMillis, UsageKey};
use tollgate_idempotency::{Idempotency, IdempotencyConfig, IdempotencyError};

use crate::ports::{Chunk, GroupCommitted, GroupError, UsageWriter};
use crate::usage::{increment, Grouping};
use crate::{PartPlacer, StoreError, UsageStore};

/// Exactly-once writes to one region's Usage table: its [`UsageStore`],
/// the dedupe markers' [`Idempotency`] (batch mode) and the container's
/// [`PartPlacer`] (shared by clones).
#[derive(Debug, Clone)]
pub struct CommitStore {
    usage: UsageStore,
    markers: Idempotency,
    parts: PartPlacer,
}

impl CommitStore {
    /// Commits to `usage` with markers in `markers`, placing bucket parts
    /// with a placer of its own.
    pub fn new(usage: UsageStore, markers: Idempotency) -> Self {
        CommitStore {
            usage,
            markers,
            parts: PartPlacer::new(),
        }
    }

    /// The same on `client`: the Usage table `usage_table` (writing the top
    /// index key with `top_index`) and markers as `markers` configures them.
    pub fn on(
        client: Client,
        usage_table: impl Into<String>,
        top_index: bool,
        markers: IdempotencyConfig,
    ) -> Self {
        let usage = UsageStore::new(client.clone(), usage_table).with_top_index(top_index);
        Self::new(usage, Idempotency::new(client, markers))
    }

    /// The Usage table written.
    pub fn usage(&self) -> &UsageStore {
        &self.usage
    }
}

impl UsageWriter for CommitStore {
    fn commit_chunks(
        &self,
        chunks: &[Chunk],
        now: UnixMillis,
    ) -> impl Future<Output = Result<GroupCommitted, GroupError>> + Send {
        // Boxed: the batch's future is deep (markers, conflicts, retries),
        // and the functions' futures hold it.
        Box::pin(async move {
            let ids: Vec<String> = chunks.iter().map(|c| c.id.clone()).collect();
            let mut writes = Writes::new(&self.usage, chunks, now);
            match self
                .markers
                .commit_batch(&ids, |group| writes.for_ids(group))
                .await
            {
                Ok(outcome) => Ok(GroupCommitted {
                    new: outcome.new,
                    duplicates: outcome.duplicates,
                    transactions: outcome.transactions,
                }),
                Err(IdempotencyError::WriteCancelled { code, .. })
                    if code == "ConditionalCheckFailed" =>
                {
                    Err(GroupError::PartFull)
                }
                Err(e) => Err(GroupError::Failed(e.to_string())),
            }
        })
    }

    fn raise_max(
        &self,
        key: &UsageKey,
        value: u64,
        now: UnixMillis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.usage.raise_max(key, value, now)
    }

    fn place(
        &self,
        keys: Vec<&mut UsageKey>,
        fresh: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.parts.place(&self.usage, keys, fresh)
    }
}

/// The writes of a prefix of a group's chunks, as the idempotency batch
/// asks for them (one more chunk each time, or the chunks left after
/// dropping duplicates): grown one chunk at a time, rebuilding only the
/// writes of the items the new chunk touches; one write per item, in key
/// order.
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
