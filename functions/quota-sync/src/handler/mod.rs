//! The handler: one batch of Usage stream records in, replicas written to
//! the peer regions, blocks written where a hard limit is reached, and the
//! records that must be retried out (`batchItemFailures`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use tollgate_app::plans::PlanCache;
use tollgate_core::blocking::{block_for, global_value, hard_limit};
use tollgate_core::clock::{Clock, SystemClock};
use tollgate_core::{
    Aggregation, Block, CounterKey, Identity, MeterName, Period, Plan, Region, Replication,
    UnixMillis,
};
use tollgate_store::{KeysStore, PendingCopies, StoreError, UsageStore};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::record::{collapse, decode, Collapsed, SequenceNumber, Skip};

mod pending;
mod stats;
use pending::Retry;
pub use stats::Stats;

/// How many writes (or evaluations) run at once per peer (or for evaluation).
const CONCURRENCY: usize = 16;
/// At most this many written blocks are remembered; beyond it the memo starts afresh.
const MAX_REMEMBERED: usize = 10_000;
/// The event that retries every peer's pending copies now (the template's
/// schedule sends it): `{"tollgate": "retry-pending"}`.
pub const RETRY_PENDING: &str = "retry-pending";

/// A peer region's Usage table.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's region name.
    pub region: Region,
    /// Its Usage table (a client for that region).
    pub usage: UsageStore,
}

/// An event that is not a DynamoDB stream event at all. Records of other
/// shapes inside a stream event are skipped instead, never an error.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("not a DynamoDB stream event: {0}")]
    NotAStreamEvent(&'static str),
}

/// The result of one invocation.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What Lambda gets back: the records to retry from.
    pub response: DynamoDbEventResponse,
    /// What happened.
    pub stats: Stats,
    /// The blocks written, by identity.
    pub blocks: Vec<(Identity, Block)>,
}

/// The result of one replica write.
#[derive(Debug)]
enum Replica {
    Raised,
    Unchanged,
    Failed(StoreError),
    NotTried,
}

/// The result of evaluating one counter.
#[derive(Debug)]
enum Evaluation {
    /// No plan, a soft plan, or no limit for the counter's meter and window.
    Unlimited,
    /// Under its limit.
    Under,
    /// Blocked by this container within the cache time: nothing read or written.
    Remembered,
    /// A block was written.
    Blocked(Block),
}

type BlockKey = (Identity, MeterName, Period);

/// quota-sync for one region: holds the clients and caches of a container.
#[derive(Debug)]
pub struct QuotaSync {
    region: Region,
    global_tables: bool,
    replication: Replication,
    /// Regions of the deployment, this one included.
    regions: usize,
    usage: UsageStore,
    keys: KeysStore,
    peers: Vec<Peer>,
    plans: PlanCache,
    memo_ttl: Duration,
    written: Mutex<HashMap<BlockKey, (u64, UnixMillis)>>,
    clock: Arc<dyn Clock>,
    /// Copies that failed, kept in this region's Keys table per peer.
    pending: PendingCopies,
    /// Per peer: when its pending copies are next tried, and the back-off
    /// after a failure. A new container tries them at its first invocation.
    retry_at: Mutex<HashMap<Region, Retry>>,
}

impl QuotaSync {
    /// A handler for `config.region`: `usage` and `keys` are this region's
    /// tables, `peers` the peer regions' Usage tables (ignored in the Global
    /// Tables mode).
    pub fn new(config: &Config, usage: UsageStore, keys: KeysStore, peers: Vec<Peer>) -> Self {
        let pending = PendingCopies::in_keys_table(&keys);
        QuotaSync {
            pending,
            retry_at: Mutex::new(HashMap::new()),
            region: config.region.clone(),
            global_tables: config.global_tables,
            replication: config.replication,
            regions: 1 + config.peers.len(),
            usage,
            plans: PlanCache::new(keys.clone(), config.cache_ttl, &config.anonymous_plan),
            keys,
            peers,
            memo_ttl: config.cache_ttl,
            written: Mutex::new(HashMap::new()),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same handler on `clock`'s time: its plan cache, its memo of
    /// blocks written and the times it writes (a simulation's clock, say).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.plans = self.plans.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// This handler's region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn written(&self) -> MutexGuard<'_, HashMap<BlockKey, (u64, UnixMillis)>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles one Lambda DynamoDB stream event (`{"Records": [...]}`).
    ///
    /// Never fails for a record: a record that cannot be processed is either
    /// skipped (not a Usage change) or reported in `batchItemFailures` (a
    /// write or read failed), so Lambda retries from the earliest such record.
    pub async fn handle(&self, event: &serde_json::Value) -> Result<Outcome, HandlerError> {
        if event.get("tollgate").and_then(|v| v.as_str()) == Some(RETRY_PENDING) {
            let mut stats = Stats::default();
            self.retry_pending(true, &mut stats).await;
            info!(
                pending_retried = stats.pending_retried,
                pending_delivered = stats.pending_delivered,
                "pending copies retried"
            );
            return Ok(Outcome {
                response: DynamoDbEventResponse::default(),
                stats,
                blocks: Vec::new(),
            });
        }
        let records = event
            .get("Records")
            .ok_or(HandlerError::NotAStreamEvent("no Records"))?
            .as_array()
            .ok_or(HandlerError::NotAStreamEvent("Records is not a list"))?;
        let mut stats = Stats {
            records: records.len(),
            ..Stats::default()
        };
        let usage_table = self.usage.table().to_owned();
        let mut changes = Vec::with_capacity(records.len());
        for (position, record) in records.iter().enumerate() {
            match decode(record, position, &usage_table) {
                Ok(decoded) => changes.extend(decoded),
                Err(skip) => {
                    stats.skipped += 1;
                    match skip {
                        Skip::Remove | Skip::OtherTable(_) | Skip::Unchanged => {
                            debug!(position, %skip, "skipped")
                        }
                        Skip::Unreadable(_) => {
                            stats.unreadable += 1;
                            tracing::error!(
                                position,
                                %skip,
                                "an unreadable Usage item: its counters are not evaluated until it is repaired"
                            )
                        }
                        _ => info!(position, %skip, "skipped a record"),
                    }
                }
            }
        }
        let items = collapse(&changes);
        stats.items = items.len();
        let (own, foreign_firsts): (Vec<&Collapsed>, Vec<&Collapsed>) = if self.global_tables {
            (Vec::new(), Vec::new())
        } else {
            let (own, foreign): (Vec<&Collapsed>, Vec<&Collapsed>) =
                items.iter().partition(|c| c.item.key.region == self.region);
            // A peer's first copy of an item: mark this region's item of it
            // shared, once per item (its day and month are one item).
            let mut seen = HashSet::new();
            let firsts = foreign
                .into_iter()
                .filter(|c| c.inserted && seen.insert(c.item.key.item()))
                .collect();
            (own, firsts)
        };
        stats.own_items = own.len();
        let (own, cold) = self.select_copies(own).await;
        stats.own_cold = cold.len();
        let to_mark = match self.replication {
            Replication::Hot => foreign_firsts,
            Replication::All => Vec::new(),
        };

        let (replicas, evaluations, marks, ()) = tokio::join!(
            self.replicate(&own),
            self.evaluate(&items, &cold),
            self.mark_shared(&to_mark),
            self.retry_pending(false, &mut stats)
        );

        let mut failed: BTreeSet<SequenceNumber> = BTreeSet::new();
        for (c, result) in to_mark.iter().zip(marks) {
            match result {
                Ok(true) => stats.marked_shared += 1,
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "marking a counter shared failed; its record will be retried");
                    failed.insert(c.first.clone());
                }
            }
        }
        let mut sent_failures = 0;
        for (peer, results) in self.peers.iter().zip(replicas) {
            let mut first_error = None;
            let mut missed = Vec::new();
            for (i, result) in results {
                match result {
                    Replica::Raised => stats.replicas_raised += 1,
                    Replica::Unchanged => stats.replicas_unchanged += 1,
                    Replica::Failed(e) => {
                        first_error.get_or_insert(e);
                        sent_failures += 1;
                        stats.replica_failures += 1;
                        missed.push(i);
                    }
                    Replica::NotTried => {
                        stats.replica_failures += 1;
                        missed.push(i);
                    }
                }
            }
            if let Some(e) = first_error {
                warn!(peer = %peer.region, error = %e, copies = missed.len(),
                      "replication to a peer region failed; the copies are kept as pending");
            }
            for (i, kept) in self.keep_pending(&peer.region, &own, &missed).await {
                match kept {
                    Ok(()) => stats.pending_kept += 1,
                    Err(e) => {
                        warn!(peer = %peer.region, error = %e, "keeping a pending copy failed; its record will be retried");
                        failed.insert(own[i].first.clone());
                    }
                }
            }
        }
        stats.replica_writes = stats.replicas_raised + stats.replicas_unchanged + sent_failures;
        let (evaluations, queries) = evaluations;
        stats.queries = queries;
        let mut blocks = Vec::new();
        stats.counters = evaluations.len();
        for (counter, firsts, result) in evaluations {
            match result {
                Ok(Evaluation::Unlimited) => {}
                Ok(Evaluation::Under) => {
                    stats.limited_counters += 1;
                }
                Ok(Evaluation::Remembered) => {
                    stats.limited_counters += 1;
                    stats.blocks_remembered += 1;
                }
                Ok(Evaluation::Blocked(block)) => {
                    stats.limited_counters += 1;
                    stats.blocks_written += 1;
                    info!(identity = %counter.identity, meter = %block.meter, period = %block.period,
                          limit = block.limit, used = block.used, "limit reached: blocked");
                    blocks.push((counter.identity.clone(), block));
                }
                Err(e) => {
                    stats.evaluation_failures += 1;
                    warn!(identity = %counter.identity, meter = %counter.meter, period = %counter.period,
                          error = %e, "evaluation failed; its records will be retried");
                    failed.extend(firsts);
                }
            }
        }
        stats.failed_records = failed.len();
        let mut response = DynamoDbEventResponse::default();
        for seq in failed {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(seq.0);
            response.batch_item_failures.push(failure);
        }
        info!(stats = ?stats, "batch done");
        Ok(Outcome {
            response,
            stats,
            blocks,
        })
    }

    /// Splits this region's changed items into those to copy now and the
    /// counters of those no region needs yet ([`Replication::must_copy`]).
    /// A limit that cannot be read counts as reached: the item is copied.
    async fn select_copies<'a>(
        &self,
        own: Vec<&'a Collapsed>,
    ) -> (Vec<&'a Collapsed>, HashSet<CounterKey>) {
        if self.replication == Replication::All {
            return (own, HashSet::new());
        }
        let lookups: Vec<_> = own
            .into_iter()
            .map(|c| async move {
                if c.shared {
                    return (c, true);
                }
                let copy = match self.limit_of(&c.item.key.counter).await {
                    Ok(limit) => {
                        self.replication
                            .must_copy(c.item.value, limit, self.regions, false)
                    }
                    Err(e) => {
                        debug!(error = %e, "limit unknown: copying");
                        true
                    }
                };
                (c, copy)
            })
            .collect();
        let decided: Vec<(&Collapsed, bool)> =
            stream::iter(lookups).buffered(CONCURRENCY).collect().await;
        let mut copy = Vec::new();
        let mut cold = HashSet::new();
        for (c, yes) in decided {
            if yes {
                copy.push(c);
            } else {
                cold.insert(c.item.key.counter.clone());
            }
        }
        (copy, cold)
    }

    /// The hard limit on a counter under its identity's plan, if any.
    async fn limit_of(&self, counter: &CounterKey) -> Result<Option<u64>, StoreError> {
        Ok(self
            .plans
            .plan_for(&counter.identity)
            .await?
            .and_then(|plan| hard_limit(&plan, counter)))
    }

    /// Marks this region's item of each counter that a peer has just copied
    /// here for the first time as shared, so that it is copied back.
    async fn mark_shared(&self, foreign: &[&Collapsed]) -> Vec<Result<bool, StoreError>> {
        let now = self.clock.now_millis();
        let marks: Vec<_> = foreign
            .iter()
            .map(|c| {
                let own = c.item.key.counter.in_region(&self.region);
                let aggregation = c.item.aggregation;
                async move { self.usage.mark_shared(&own, aggregation, now).await }
            })
            .collect();
        stream::iter(marks).buffered(CONCURRENCY).collect().await
    }

    /// Writes each own item to each peer, peers concurrently. A peer that
    /// fails is not tried again within this batch: its remaining items fail
    /// at once, so a peer that is down costs one timeout, not one per item.
    async fn replicate(&self, own: &[&Collapsed]) -> Vec<Vec<(usize, Replica)>> {
        if own.is_empty() {
            return self.peers.iter().map(|_| Vec::new()).collect();
        }
        futures::future::join_all(self.peers.iter().map(|peer| async move {
            let down = AtomicBool::new(false);
            let down = &down;
            // The futures are built first: a stream's `map` closure would
            // make the handler's future not provably `Send`.
            let writes: Vec<_> = own
                .iter()
                .enumerate()
                .map(|(i, c)| async move {
                    if down.load(Ordering::Relaxed) {
                        return (i, Replica::NotTried);
                    }
                    match peer.usage.put_replica(&c.item).await {
                        Ok(true) => (i, Replica::Raised),
                        Ok(false) => (i, Replica::Unchanged),
                        Err(e) => {
                            down.store(true, Ordering::Relaxed);
                            (i, Replica::Failed(e))
                        }
                    }
                })
                .collect();
            stream::iter(writes)
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<_>>()
                .await
        }))
        .await
    }

    /// Evaluates every counter the batch changed, the counters of one item
    /// (a key's day and month, a bucket's identities) with one Query of
    /// that item in every region. Returns, per counter, the first sequence
    /// numbers of its items (to report if it fails) and the result, and how
    /// many Queries it made.
    /// Counters in `cold` whose only changes are this region's own cold
    /// items are not evaluated: no region holds enough of them to reach a limit.
    async fn evaluate(
        &self,
        items: &[Collapsed],
        cold: &HashSet<CounterKey>,
    ) -> (Vec<Evaluated>, usize) {
        let mut counters: Vec<Pending> = Vec::new();
        let mut index: HashMap<&CounterKey, usize> = HashMap::new();
        for c in items {
            if c.item.key.region == self.region && cold.contains(&c.item.key.counter) {
                continue;
            }
            match index.get(&c.item.key.counter) {
                Some(&i) => counters[i].firsts.push(c.first.clone()),
                None => {
                    index.insert(&c.item.key.counter, counters.len());
                    counters.push(Pending {
                        counter: c.item.key.counter.clone(),
                        aggregation: c.item.aggregation,
                        firsts: vec![c.first.clone()],
                    });
                }
            }
        }
        // The counters of one item, in every region: one pk and sk prefix.
        let mut by_item: BTreeMap<(String, String), Vec<Pending>> = BTreeMap::new();
        for pending in counters {
            let item = (pending.counter.pk(), pending.counter.sk_prefix());
            by_item.entry(item).or_default().push(pending);
        }
        let evaluations: Vec<_> = by_item
            .into_values()
            .map(|counters| self.evaluate_item(counters))
            .collect();
        let done: Vec<(Vec<Evaluated>, bool)> = stream::iter(evaluations)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let queries = done.iter().filter(|(_, queried)| *queried).count();
        (done.into_iter().flat_map(|(e, _)| e).collect(), queries)
    }

    /// Evaluates changed counters of one item: each counter's plan and
    /// memo first, then one Query for all that need their global value.
    /// Returns the results and whether it queried.
    async fn evaluate_item(&self, counters: Vec<Pending>) -> (Vec<Evaluated>, bool) {
        let mut done = Vec::with_capacity(counters.len());
        let mut to_read = Vec::new();
        for pending in counters {
            match self.limit_to_check(&pending.counter).await {
                Ok(Some((plan, limit))) => to_read.push((pending, plan, limit)),
                Ok(None) => done.push((pending.counter, pending.firsts, Ok(Evaluation::Unlimited))),
                Err(Known::Remembered) => {
                    done.push((pending.counter, pending.firsts, Ok(Evaluation::Remembered)))
                }
                Err(Known::Failed(e)) => {
                    done.push((pending.counter, pending.firsts, Err(Arc::new(e))))
                }
            }
        }
        let Some((first, _, _)) = to_read.first() else {
            return (done, false);
        };
        let values = match self.usage.items_holding(&first.counter).await {
            Ok(values) => values,
            Err(e) => {
                let e = Arc::new(e);
                for (pending, _, _) in to_read {
                    done.push((pending.counter, pending.firsts, Err(e.clone())));
                }
                return (done, true);
            }
        };
        for (pending, plan, limit) in to_read {
            // Every region's cells of the counter, every part of a bucket summed.
            let regions: BTreeMap<Region, u64> =
                tollgate_store::usage::sum_by_region(&values, &pending.counter);
            let used = global_value(&regions, pending.aggregation);
            let result = match block_for(&plan, &pending.counter, used) {
                None => Ok(Evaluation::Under),
                Some(block) => self
                    .write_block(&pending.counter, block, limit)
                    .await
                    .map_err(Arc::new),
            };
            done.push((pending.counter, pending.firsts, result));
        }
        (done, true)
    }

    /// The plan and hard limit to check a counter against: `None` if it has
    /// none; [`Known::Remembered`] if this container blocked it recently.
    async fn limit_to_check(&self, counter: &CounterKey) -> Result<Option<(Plan, u64)>, Known> {
        let Some(plan) = self
            .plans
            .plan_for(&counter.identity)
            .await
            .map_err(Known::Failed)?
        else {
            debug!(identity = %counter.identity, "no plan known for this identity: not evaluated");
            return Ok(None);
        };
        let Some(limit) = hard_limit(&plan, counter) else {
            return Ok(None);
        };
        if let Some((written_limit, at)) = self.written().get(&memo_key(counter)) {
            if *written_limit == limit && self.clock.is_within(*at, self.memo_ttl) {
                return Err(Known::Remembered);
            }
        }
        Ok(Some((plan, limit)))
    }

    /// Writes a counter's block and remembers it.
    async fn write_block(
        &self,
        counter: &CounterKey,
        block: Block,
        limit: u64,
    ) -> Result<Evaluation, StoreError> {
        self.keys.put_block(&counter.identity, &block).await?;
        let mut written = self.written();
        if written.len() >= MAX_REMEMBERED {
            written.clear();
        }
        written.insert(memo_key(counter), (limit, self.clock.now_millis()));
        Ok(Evaluation::Blocked(block))
    }
}

/// A changed counter to evaluate, with the first sequence numbers of its items.
struct Pending {
    counter: CounterKey,
    aggregation: Aggregation,
    firsts: Vec<SequenceNumber>,
}

/// One counter's evaluation: the counter, the first sequence numbers of
/// its items, and the result (an error may be shared by an item's counters).
type Evaluated = (
    CounterKey,
    Vec<SequenceNumber>,
    Result<Evaluation, Arc<StoreError>>,
);

/// Why a counter needs no Query.
enum Known {
    /// This container wrote its block within the cache time.
    Remembered,
    /// Its plan could not be read.
    Failed(StoreError),
}

/// The key of a block in the memo of blocks written.
fn memo_key(counter: &CounterKey) -> BlockKey {
    (
        counter.identity.clone(),
        counter.meter.clone(),
        counter.period,
    )
}
