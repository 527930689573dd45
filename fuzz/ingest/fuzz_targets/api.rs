//! Ingest's routing and its usage API's queries (`GET /v1/usage` with its
//! paging tokens, `GET /v1/usage/top`) on arbitrary bytes. The entry point
//! is `tollgate_fuzz::ingest_api::fuzz_request` (`fuzz/entries/src/ingest_api.rs`).
//!
//! Run with the others: `scripts/fuzz.sh [seconds]`; alone:
//! `cargo +nightly fuzz run --fuzz-dir fuzz/ingest api -- -max_total_time=60`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_fuzz::ingest_api::fuzz_request(data);
});
