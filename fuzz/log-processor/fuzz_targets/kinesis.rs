//! The Kinesis path: a Kinesis event's records read one by one, sequence
//! numbers as watermark positions, each record's data decoded, its source
//! checked, counted and planned. The entry point is
//! `tollgate_fuzz::kinesis::fuzz_kinesis` (`fuzz/entries/src/kinesis.rs`).
//!
//! Run with the others: `scripts/fuzz.sh [seconds]`; alone:
//! `cargo +nightly fuzz run --fuzz-dir fuzz/log-processor kinesis -- -max_total_time=60`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_fuzz::kinesis::fuzz_kinesis(data);
});
