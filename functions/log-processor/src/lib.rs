//! tollgate's log-processor: counts API usage exactly once from CloudWatch
//! Logs, delivered by a subscription directly or through Kinesis.
//!
//! - [`payload`]: base64, gzip (capped at 16 MiB decompressed), the
//!   CloudWatch Logs payload model and its one-pass scanner (also as
//!   [`decode`], its former name).
//! - [`line`]: the two line formats ([`line::ACCESS_LOG_FORMAT`] and the
//!   `"tollgate": 1` application line) and which requests count.
//! - [`batch`]: aggregation into one increment per meter, identity and
//!   period, deterministic chunks, and the dedupe ids.
//! - [`handler`]: the [`Processor`]: direct deliveries and Kinesis events
//!   (read record by record), each chunk committed with its dedupe marker
//!   through [`commit`], or each counter of a Kinesis batch raised past its
//!   per-shard watermark (`tollgate_core::watermark`).
//! - [`commit`]: the chunks' transactions with their markers through
//!   `tollgate_idempotency`, API keys' and anonymous identities' apart,
//!   anonymous counters placed in their bucket's parts.
//! - [`reject`]: poison input (a record or delivery that can never be
//!   processed) quarantined: logged with its id and reason, counted as
//!   rejected, acknowledged.
//! - [`metrics`]: the run summary as CloudWatch metrics (EMF), one line
//!   per invocation.
//! - [`config`]: `TOLLGATE_*` settings.

pub mod batch;
pub mod commit;
pub mod config;
pub mod handler;
pub mod line;
pub mod metrics;
pub mod payload;
pub mod reject;

/// The payload module under its former name (`decode`), for callers of
/// `log_processor::decode::*`.
pub use payload as decode;

pub use config::Config;
pub use handler::{ProcessError, Processor, Summary};
pub use line::ACCESS_LOG_FORMAT;

use tollgate_core::{Region, Window};

/// Everything done to untrusted bytes before any write, for the fuzz target
/// (`fuzz/log-processor`) and the property tests: the first byte picks how
/// the rest is read (base64 text of gzip, raw gzip, a decompressed payload,
/// or one log line); the payload's lines are parsed, aggregated and
/// planned into chunks. Never panics; decompresses at most `limit` bytes.
pub fn decode_and_count(data: &[u8], limit: usize) -> Result<batch::Tally, decode::DecodeError> {
    use batch::{cloudwatch_source_id, plan, BatchAggregate, Counting};
    let Some((&mode, rest)) = data.split_first() else {
        return Ok(batch::Tally::default());
    };
    let counting = Counting {
        rules: line::Rules {
            count_status: config::StatusRanges::default_counted(),
            ipv6_prefix: tollgate_core::Ipv6Prefix::DEFAULT,
        },
        windows: Window::ALL.to_vec(),
        anonymous_windows: Window::ALL.to_vec(),
        max_meters: std::collections::BTreeSet::new(),
    };
    let bytes = match mode % 4 {
        0 => decode::decode_data(&String::from_utf8_lossy(rest), limit)?,
        1 => decode::gunzip_capped(rest, limit)?,
        2 => rest.to_vec(),
        _ => {
            let text = String::from_utf8_lossy(rest);
            let _ = line::parse_line(&text, 1_795_000_000_000, &counting.rules);
            let _ = batch::redact(decode::truncate(&text, batch::SAMPLE_BYTES));
            return Ok(batch::Tally::default());
        }
    };
    let payload = decode::parse_payload(&bytes)?;
    let mut aggregate = BatchAggregate::new();
    aggregate.add_events(&payload.log_events, &counting);
    let region = Region::new("fuzz").map_err(|e| decode::DecodeError::Json(e.to_string()))?;
    let planned = plan(
        &cloudwatch_source_id(&payload),
        aggregate.aggregator.into_increments(),
        &region,
    );
    debug_assert!(planned
        .chunks
        .iter()
        .all(|c| c.increments.len() <= batch::CHUNK_INCREMENTS));
    Ok(aggregate.tally)
}

/// The workload generator for the unit tests; it lives in the test kit
/// (`tollgate_testkit::{cloudwatch, traffic}`), with the traffic logged in
/// [`ACCESS_LOG_FORMAT`].
#[cfg(test)]
mod sample {
    pub use tollgate_tests::cloudwatch::*;

    /// [`tollgate_tests::traffic::Traffic`] in [`crate::ACCESS_LOG_FORMAT`].
    pub struct Traffic;

    impl Traffic {
        /// `keys` keys with Zipf exponent `s`, `ips` anonymous IPs taking `share` of requests.
        #[allow(clippy::new_ret_no_self)] // a stand-in for the test kit's type
        pub fn new(
            keys: usize,
            s: f64,
            ips: usize,
            share: f64,
            seed: u64,
        ) -> tollgate_tests::traffic::Traffic {
            tollgate_tests::traffic::Traffic::new(
                crate::ACCESS_LOG_FORMAT,
                keys,
                s,
                ips,
                share,
                seed,
            )
        }
    }
}
