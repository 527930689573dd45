//! quota-sync's CloudWatch metrics (EMF, namespace
//! [`tollgate_lambda::metrics::NAMESPACE`], dimension `FunctionName`): one
//! line per invocation from its run [`Stats`], stream batches and pending
//! retries alike.
//!
//! Blocks are written here and never removed: a block expires with its
//! period (TTL), and only `tollgate recompute` removes one early.

use tollgate_lambda::metrics::{self, count, Line, Metric};

use crate::handler::Stats;

/// Stream records in the event.
pub const RECORDS: &str = "Records";
/// Records skipped (other tables or shapes, REMOVEs).
pub const RECORDS_SKIPPED: &str = "RecordsSkipped";
/// Records of a Usage item whose counters do not read (among the skipped;
/// alarmed: the item's counters are not evaluated until it is repaired).
pub const UNREADABLE_ITEMS: &str = "UnreadableItems";
/// Copies that raised (or created) a peer's item.
pub const COPIES: &str = "Copies";
/// Copies that changed nothing (the peer had the value already).
pub const COPIES_UNCHANGED: &str = "CopiesUnchanged";
/// Copies that failed, or were not tried after their peer failed.
pub const COPY_FAILURES: &str = "CopyFailures";
/// Failed copies kept as pending copies for their peer.
pub const PENDING_COPIES_KEPT: &str = "PendingCopiesKept";
/// Pending copies of earlier batches retried.
pub const PENDING_COPIES_RETRIED: &str = "PendingCopiesRetried";
/// Pending copies delivered.
pub const PENDING_COPIES_DELIVERED: &str = "PendingCopiesDelivered";
/// Block items written.
pub const BLOCKS_WRITTEN: &str = "BlocksWritten";
/// Counters whose evaluation failed.
pub const EVALUATION_FAILURES: &str = "EvaluationFailures";
/// Records reported in `batchItemFailures` (retried by Lambda).
pub const FAILED_RECORDS: &str = "FailedRecords";

/// Every metric name quota-sync prints.
pub const NAMES: &[&str] = &[
    RECORDS,
    RECORDS_SKIPPED,
    UNREADABLE_ITEMS,
    COPIES,
    COPIES_UNCHANGED,
    COPY_FAILURES,
    PENDING_COPIES_KEPT,
    PENDING_COPIES_RETRIED,
    PENDING_COPIES_DELIVERED,
    BLOCKS_WRITTEN,
    EVALUATION_FAILURES,
    FAILED_RECORDS,
];

/// The values of one invocation, in [`NAMES`]' order.
pub fn values(s: &Stats) -> [Metric<'static>; 12] {
    let n = |v: usize| v as u64;
    [
        count(RECORDS, n(s.records)),
        count(RECORDS_SKIPPED, n(s.skipped)),
        count(UNREADABLE_ITEMS, n(s.unreadable)),
        count(COPIES, n(s.replicas_raised)),
        count(COPIES_UNCHANGED, n(s.replicas_unchanged)),
        count(COPY_FAILURES, n(s.replica_failures)),
        count(PENDING_COPIES_KEPT, n(s.pending_kept)),
        count(PENDING_COPIES_RETRIED, n(s.pending_retried)),
        count(PENDING_COPIES_DELIVERED, n(s.pending_delivered)),
        count(BLOCKS_WRITTEN, n(s.blocks_written)),
        count(EVALUATION_FAILURES, n(s.evaluation_failures)),
        count(FAILED_RECORDS, n(s.failed_records)),
    ]
}

/// Prints the metric line of one invocation.
pub fn emit(stats: &Stats) {
    metrics::emit(&Line::function_only(&values(stats)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_stats_are_one_emf_line() {
        let s = Stats {
            records: 9,
            skipped: 1,
            unreadable: 1,
            replicas_raised: 4,
            replicas_unchanged: 2,
            replica_failures: 1,
            pending_kept: 1,
            pending_retried: 3,
            pending_delivered: 2,
            blocks_written: 5,
            evaluation_failures: 0,
            failed_records: 0,
            ..Stats::default()
        };
        let text = Line::function_only(&values(&s)).render("qs", 1);
        let (v, names) = tollgate_lambda::metrics::read_back_function_only(&text);
        assert_eq!(names, NAMES);
        assert_eq!(v[RECORDS], 9);
        assert_eq!(v[COPIES], 4);
        assert_eq!(v[UNREADABLE_ITEMS], 1);
        assert_eq!(v[PENDING_COPIES_KEPT], 1);
        assert_eq!(v[BLOCKS_WRITTEN], 5);
    }
}
