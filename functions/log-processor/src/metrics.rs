//! The log-processor's CloudWatch metrics (EMF, namespace
//! [`tollgate_lambda::metrics::NAMESPACE`], dimension `FunctionName`): one
//! line per invocation from its [`Summary`], direct deliveries and Kinesis
//! batches alike. A delivery that fails (a store error, retried by Lambda)
//! prints none: Lambda's `Errors` counts it.

use tollgate_lambda::metrics::{self, count, Line, Metric};

use crate::summary::Summary;

/// Log events read.
pub const LOG_EVENTS: &str = "LogEvents";
/// Lines counted.
pub const LINES_COUNTED: &str = "LinesCounted";
/// Lines in neither format, or invalid (sampled in the log as "skipped a log line").
pub const LINES_SKIPPED: &str = "LinesSkipped";
/// Valid lines whose status does not count.
pub const LINES_NOT_COUNTED: &str = "LinesNotCounted";
/// Lines of requests the gateway or the authorizer stopped.
pub const LINES_DENIED: &str = "LinesDenied";
/// Lines without an identity.
pub const LINES_NO_IDENTITY: &str = "LinesNoIdentity";
/// Deliveries or records quarantined as poison (logged, never retried).
pub const QUARANTINED: &str = "QuarantinedDeliveries";
/// Chunks found committed before: redelivered batches.
pub const DUPLICATE_CHUNKS: &str = "DuplicateChunks";
/// Counters a Kinesis shard watermark showed counted before.
pub const FENCED_DUPLICATES: &str = "FencedDuplicates";
/// DynamoDB transactions committed.
pub const TRANSACTIONS: &str = "Transactions";

/// Every metric name the log-processor prints.
pub const NAMES: &[&str] = &[
    LOG_EVENTS,
    LINES_COUNTED,
    LINES_SKIPPED,
    LINES_NOT_COUNTED,
    LINES_DENIED,
    LINES_NO_IDENTITY,
    QUARANTINED,
    DUPLICATE_CHUNKS,
    FENCED_DUPLICATES,
    TRANSACTIONS,
];

/// The values of one invocation, in [`NAMES`]' order.
pub fn values(s: &Summary) -> [Metric<'static>; 10] {
    [
        count(LOG_EVENTS, s.tally.events),
        count(LINES_COUNTED, s.tally.counted),
        count(LINES_SKIPPED, s.tally.skipped),
        count(LINES_NOT_COUNTED, s.tally.not_counted_status),
        count(LINES_DENIED, s.tally.denied),
        count(LINES_NO_IDENTITY, s.tally.no_identity),
        count(QUARANTINED, s.rejected),
        count(DUPLICATE_CHUNKS, s.duplicate_chunks),
        count(FENCED_DUPLICATES, s.fenced_duplicates),
        count(TRANSACTIONS, s.transactions),
    ]
}

/// Prints the metric line of one invocation.
pub fn emit(summary: &Summary) {
    metrics::emit(&Line::function_only(&values(summary)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_summary_is_one_emf_line() {
        let mut s = Summary {
            rejected: 2,
            duplicate_chunks: 3,
            transactions: 4,
            fenced_duplicates: 5,
            ..Summary::default()
        };
        s.tally.events = 10;
        s.tally.counted = 6;
        s.tally.skipped = 1;
        s.tally.not_counted_status = 1;
        s.tally.denied = 1;
        s.tally.no_identity = 1;
        let text = Line::function_only(&values(&s)).render("lp", 1);
        let (v, names) = tollgate_lambda::metrics::read_back_function_only(&text);
        assert_eq!(names, NAMES);
        assert_eq!(v[LOG_EVENTS], 10);
        assert_eq!(v[LINES_COUNTED], 6);
        assert_eq!(v[QUARANTINED], 2);
        assert_eq!(v[DUPLICATE_CHUNKS], 3);
        assert_eq!(v[FENCED_DUPLICATES], 5);
        assert_eq!(v[TRANSACTIONS], 4);
        assert_eq!(v["FunctionName"], "lp");
    }
}
