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
//!   through the one committer (`tollgate_app::commit`: API keys' and
//!   anonymous identities' chunks apart, anonymous counters placed in their
//!   bucket's parts), or each counter of a Kinesis batch raised past its
//!   per-shard watermark (`tollgate_core::watermark`).
//! - [`reject`]: poison input (a record or delivery that can never be
//!   processed) quarantined: logged with its id and reason, counted as
//!   rejected, acknowledged.
//! - [`summary`]: what an invocation did.
//! - [`metrics`]: the run summary as CloudWatch metrics (EMF), one line
//!   per invocation.
//! - [`config`]: `TOLLGATE_*` settings.

pub mod batch;
pub mod config;
pub mod handler;
pub mod line;
pub mod metrics;
pub mod payload;
pub mod reject;
pub mod summary;

/// The payload module under its former name (`decode`), for callers of
/// `log_processor::decode::*`.
pub use payload as decode;

pub use config::Config;
pub use handler::{ProcessError, Processor};
pub use line::ACCESS_LOG_FORMAT;
pub use summary::Summary;

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
