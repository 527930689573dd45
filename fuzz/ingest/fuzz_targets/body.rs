//! A `POST /v1/events` body on arbitrary bytes: parsing, checking every
//! event and aggregating the valid ones must never panic, and must keep
//! the invariants the handler relies on. The entry point is
//! `tollgate_fuzz::ingest::check_invariants` (`fuzz/entries/src/ingest.rs`).
//!
//! Run: `cd fuzz/ingest && cargo +nightly fuzz run body -- -max_total_time=300`
//! (seeds: the bodies of `events/ingest/*.json`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_fuzz::ingest::check_invariants(data);
});
