//! What an invocation did ([`Summary`]): the response of a direct
//! invocation, logged, and read by [`crate::metrics`].

use serde::Serialize;

use crate::batch::Tally;

/// What an invocation did (the response of a direct invocation, and logged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Data payloads processed.
    pub payloads: u64,
    /// Control messages acknowledged.
    pub control_messages: u64,
    /// Records or deliveries rejected as poison (quarantined: logged and
    /// acknowledged, never retried; see [`crate::reject`]).
    pub rejected: u64,
    /// What the lines were.
    #[serde(flatten)]
    pub tally: Tally,
    /// Count and sum increments planned.
    pub increments: u64,
    /// Chunks planned.
    pub chunks: u64,
    /// Chunks committed now.
    pub new_chunks: u64,
    /// Chunks found committed before (redeliveries).
    pub duplicate_chunks: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// `max` counters raised (or found at least as high).
    pub max_updates: u64,
    /// Counters raised past their shard watermark (Kinesis, `watermark` dedupe).
    pub fenced_updates: u64,
    /// Counters whose shard watermark showed the batch counted before.
    pub fenced_duplicates: u64,
    /// Transactions that found an anonymous bucket's part full, placed again.
    pub placed_again: u64,
}

impl Summary {
    /// The summary of a delivery quarantined as a whole.
    pub(crate) fn one_rejected() -> Self {
        let summary = Summary {
            rejected: 1,
            ..Summary::default()
        };
        tracing::info!(summary = ?summary, "batch processed");
        summary
    }
}
