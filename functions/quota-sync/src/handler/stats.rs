//! What one invocation did, as the run summary logs it.

use serde::Serialize;

/// What one invocation did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Records in the event.
    pub records: usize,
    /// Records skipped (other tables or shapes, REMOVEs).
    pub skipped: usize,
    /// Of those, records of a Usage item whose counters do not read (a
    /// damaged item: logged as an error, counted apart and alarmed, as
    /// its counters are not evaluated until it is repaired).
    pub unreadable: usize,
    /// Distinct region counters after collapsing repeated updates (a month
    /// item's update of its month and one day is two).
    pub items: usize,
    /// Of those, this region's own counters (the ones copied to peers).
    pub own_items: usize,
    /// Replica writes sent (own items × peers, minus those not tried).
    pub replica_writes: usize,
    /// Replica writes that raised (or created) a peer's copy.
    pub replicas_raised: usize,
    /// Replica writes that changed nothing (the peer had the value already).
    pub replicas_unchanged: usize,
    /// Replica writes that failed, or were not tried after their peer failed.
    pub replica_failures: usize,
    /// Own items not copied: no region needs them yet (replication `hot`:
    /// under a limit's threshold and not shared).
    pub own_cold: usize,
    /// Own items marked shared because a peer's first copy arrived.
    pub marked_shared: usize,
    /// Distinct counters (meter, identity, period) changed by the batch.
    pub counters: usize,
    /// Counters under a hard limit of their identity's plan.
    pub limited_counters: usize,
    /// Queries that read an item's region items (one per item changed,
    /// for all its counters under a limit).
    pub queries: usize,
    /// Block items written.
    pub blocks_written: usize,
    /// Counters known blocked already (written by this container): no Query, no write.
    pub blocks_remembered: usize,
    /// Counters whose evaluation failed.
    pub evaluation_failures: usize,
    /// Sequence numbers reported in `batchItemFailures`.
    pub failed_records: usize,
    /// Failed copies kept as pending copies for their peer (they no longer
    /// fail their records: a peer that is down never holds the stream).
    pub pending_kept: usize,
    /// Pending copies of earlier batches retried, and of those delivered.
    pub pending_retried: usize,
    pub pending_delivered: usize,
}
