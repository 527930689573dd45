//! Ports: one narrow trait per role a handler needs from the store, in
//! domain types only (no SDK type in a signature), so a handler takes the
//! ports it uses and a test can hand it the in-memory adapter
//! ([`crate::memory`], feature `memory`) instead of DynamoDB.
//!
//! The Keys table's ports ([`KeyLookup`], [`PlanSource`], [`KeyPlans`],
//! [`BlockRecords`]) have [`KeysStore`] as their DynamoDB adapter, the
//! Usage table's ([`UsageRange`], [`TopIndex`], [`PeriodScan`])
//! [`UsageStore`], the exactly-once writes' ([`UsageWriter`])
//! [`CommitStore`](crate::CommitStore); their DynamoDB behaviour (one request per lookup,
//! unprocessed keys retried, then an error) is tested against DynamoDB
//! Local, never through the memory adapter.
//!
//! The methods return `impl Future + Send` (what `async fn` desugars to,
//! with the `Send` bound written out, so a handler's future stays `Send`
//! however it is spawned); an adapter may implement them with `async fn`.

use std::future::Future;

use std::collections::BTreeMap;

use tollgate_core::lease::{Leased, Taken};
use tollgate_core::{
    Aggregation, Block, CounterKey, Identity, KeyDigest, KeyRecord, MeterName, Period, Plan,
    Region, UnixMillis, UsageKey,
};

use crate::usage::{Cursor, UsageItem};
use crate::{KeysStore, StoreError, UsageStore};

/// What one lookup found: the key record (if a digest was given and the key
/// exists) and each identity's blocks, in the order asked.
pub type KeyAndBlocks = (Option<KeyRecord>, Vec<Vec<Block>>);

/// The authorizer's reads of keys and blocks: one round trip per call.
pub trait KeyLookup: Send + Sync {
    /// Reads, in one request, the key item of `digest` (if given) and the
    /// block items of `identities`: the key record (if found) and each
    /// identity's blocks, in the order of `identities`. Anything the store
    /// could not read is an error, never "absent".
    fn lookup_each(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> impl Future<Output = Result<KeyAndBlocks, StoreError>> + Send;

    /// As [`KeyLookup::lookup_each`], with every identity's blocks in one list.
    fn lookup(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> impl Future<Output = Result<(Option<KeyRecord>, Vec<Block>), StoreError>> + Send {
        async move {
            let (record, blocks) = self.lookup_each(digest, identities).await?;
            Ok((record, blocks.into_iter().flatten().collect()))
        }
    }
}

/// Where the plans come from.
pub trait PlanSource: Send + Sync {
    /// Every plan.
    fn list_plans(&self) -> impl Future<Output = Result<Vec<Plan>, StoreError>> + Send;
}

/// Which plan a key is on (plan caches, block recomputation).
pub trait KeyPlans: Send + Sync {
    /// The plan name of the key `key_id` (`None`: no such key).
    fn plan_of_key(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

/// Blocks listed, written and removed (block recomputation).
pub trait BlockRecords: Send + Sync {
    /// Every identity with blocks, and its blocks (current or not).
    fn list_blocks(
        &self,
    ) -> impl Future<Output = Result<Vec<(Identity, Vec<Block>)>, StoreError>> + Send;

    /// Writes (or replaces) a block of `identity`.
    fn put_block(
        &self,
        identity: &Identity,
        block: &Block,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the block of `identity` for `meter` in `period`, if any.
    fn remove_block(
        &self,
        identity: &Identity,
        meter: &MeterName,
        period: &Period,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The authorizer's leases of hard request limits (see
/// [`tollgate_core::lease`]): this region's allowance, and its peers' when
/// it is spent. Every take is one conditional write that never grants more
/// than the allowance holds, so concurrent containers and regions together
/// never grant more than the limit.
pub trait Allowances: Send + Sync {
    /// Takes up to `want` units of this region's allowance of `leased`
    /// (created with the region's initial share of `leased.limit` when it
    /// does not exist yet, and re-funded by the difference of the shares
    /// when the plan's limit changed): what was granted (fewer when less is
    /// left, 0 when it is spent) and what is left.
    fn take(
        &self,
        leased: &Leased,
        want: u64,
    ) -> impl Future<Output = Result<Taken, StoreError>> + Send;

    /// Pulls [`tollgate_core::lease::pull_amount`] of every reachable
    /// peer's unspent allowance of `leased` into this region's, then takes
    /// up to `want` as [`Allowances::take`] does. A peer that cannot be
    /// reached is skipped (its allowance stays with it); a pull never
    /// creates units, it only moves them.
    fn pull(
        &self,
        leased: &Leased,
        want: u64,
    ) -> impl Future<Output = Result<Taken, StoreError>> + Send;
}

/// One page of a Usage partition's items between two sort keys (usage
/// queries, a counter's region items): the counters they hold and where
/// the next page starts.
pub type UsagePage = (Vec<UsageItem>, Option<Cursor>);

/// One page of a top index partition: `(usage key, value)`, largest first,
/// and where the next page starts.
pub type TopPage = (Vec<(UsageKey, u64)>, Option<Cursor>);

/// Range reads of a Usage table (usage queries, block recomputation).
pub trait UsageRange: Send + Sync {
    /// The counters of partition `pk`'s items with `sk` between `from_sk`
    /// and `to_sk`, at most `limit` items, from `start` on.
    fn query_prefix(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        start: Option<Cursor>,
        limit: i32,
    ) -> impl Future<Output = Result<UsagePage, StoreError>> + Send;
}

/// The top index of a Usage table and a counter's region values (top lists).
pub trait TopIndex: Send + Sync {
    /// One page of the top index partition `top`, largest value first.
    fn top_page(
        &self,
        top: &str,
        start: Option<Cursor>,
        limit: i32,
    ) -> impl Future<Output = Result<TopPage, StoreError>> + Send;

    /// A counter's value in every region the table holds items of.
    fn regions_of(
        &self,
        counter: &CounterKey,
    ) -> impl Future<Output = Result<BTreeMap<Region, u64>, StoreError>> + Send;
}

/// The operators' scan of a Usage table by period (block recomputation).
pub trait PeriodScan: Send + Sync {
    /// Every counter of `periods`, in every region the table holds.
    fn scan_periods(
        &self,
        periods: &[Period],
    ) -> impl Future<Output = Result<Vec<UsageItem>, StoreError>> + Send;
}

/// One unit of exactly-once counting: a deterministic id (the same input
/// always gives the same id, so a redelivery finds its dedupe marker) and
/// the count and sum increments it applies to this region's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The dedupe id (the id of its marker).
    pub id: String,
    /// `(counter, aggregation, amount)`: count and sum counters only (a
    /// `max` counter is raised with [`UsageWriter::raise_max`]).
    pub increments: Vec<(UsageKey, Aggregation, u64)>,
}

/// What committing a group of chunks found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupCommitted {
    /// Ids of the chunks committed now, in the order given.
    pub new: Vec<String>,
    /// Ids of the chunks found committed before, in the order given.
    pub duplicates: Vec<String>,
    /// Transactions committed.
    pub transactions: u32,
}

/// Why a group of chunks did not commit (chunks committed before the
/// failure stay committed; their markers make a retry skip them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// A bucket part had no room left for the group's counters (its
    /// condition on the part's reservations failed): place them again.
    #[error("a bucket part is full")]
    PartFull,
    /// Anything else, with why.
    #[error("{0}")]
    Failed(String),
}

/// Exactly-once writes to a Usage table (the one committer,
/// `tollgate_app::commit`): chunks committed with their dedupe markers,
/// `max` counters raised, anonymous counters placed in bucket parts.
pub trait UsageWriter: Send + Sync {
    /// Commits `chunks` (whose markers and distinct items fit one
    /// transaction of 100 actions together, each item's adds within one
    /// write's bounds), each exactly once: the markers of the chunks not
    /// committed before and their increments, grouped one write per item,
    /// in one transaction; a chunk whose marker exists adds nothing.
    fn commit_chunks(
        &self,
        chunks: &[Chunk],
        now: UnixMillis,
    ) -> impl Future<Output = Result<GroupCommitted, GroupError>> + Send;

    /// Raises a `max` counter to `value` if it is lower (idempotent by
    /// nature: no marker). Returns whether it was written.
    fn raise_max(
        &self,
        key: &UsageKey,
        value: u64,
        now: UnixMillis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Sets the bucket part of every anonymous identity's key in `keys`
    /// (see [`crate::PartPlacer::place`]); `fresh` after a group found its
    /// part full. API keys' counters are left alone.
    fn place(
        &self,
        keys: Vec<&mut UsageKey>,
        fresh: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The Keys table (the inherent methods, which other crates call directly).
impl KeyLookup for KeysStore {
    fn lookup_each(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> impl Future<Output = Result<KeyAndBlocks, StoreError>> + Send {
        // The inherent method (inherent methods take precedence over trait ones).
        KeysStore::lookup_each(self, digest, identities)
    }

    fn lookup(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> impl Future<Output = Result<(Option<KeyRecord>, Vec<Block>), StoreError>> + Send {
        KeysStore::lookup(self, digest, identities)
    }
}

impl PlanSource for KeysStore {
    fn list_plans(&self) -> impl Future<Output = Result<Vec<Plan>, StoreError>> + Send {
        KeysStore::list_plans(self)
    }
}

impl KeyPlans for KeysStore {
    fn plan_of_key(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        KeysStore::plan_of_key(self, key_id)
    }
}

impl BlockRecords for KeysStore {
    fn list_blocks(
        &self,
    ) -> impl Future<Output = Result<Vec<(Identity, Vec<Block>)>, StoreError>> + Send {
        KeysStore::list_blocks(self)
    }

    fn put_block(
        &self,
        identity: &Identity,
        block: &Block,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        KeysStore::put_block(self, identity, block)
    }

    fn remove_block(
        &self,
        identity: &Identity,
        meter: &MeterName,
        period: &Period,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        KeysStore::remove_block(self, identity, meter, period)
    }
}

/// The Usage table (the inherent methods, which other crates call directly).
impl UsageRange for UsageStore {
    fn query_prefix(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        start: Option<Cursor>,
        limit: i32,
    ) -> impl Future<Output = Result<UsagePage, StoreError>> + Send {
        UsageStore::query_prefix(self, pk, from_sk, to_sk, start, limit)
    }
}

impl TopIndex for UsageStore {
    fn top_page(
        &self,
        top: &str,
        start: Option<Cursor>,
        limit: i32,
    ) -> impl Future<Output = Result<TopPage, StoreError>> + Send {
        UsageStore::top_page(self, top, start, limit)
    }

    fn regions_of(
        &self,
        counter: &CounterKey,
    ) -> impl Future<Output = Result<BTreeMap<Region, u64>, StoreError>> + Send {
        UsageStore::regions_of(self, counter)
    }
}

impl PeriodScan for UsageStore {
    fn scan_periods(
        &self,
        periods: &[Period],
    ) -> impl Future<Output = Result<Vec<UsageItem>, StoreError>> + Send {
        UsageStore::scan_periods(self, periods)
    }
}
