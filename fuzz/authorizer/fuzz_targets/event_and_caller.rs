//! Event parsing and caller extraction (key header / query / token, client
//! IP through X-Forwarded-For, Referer host, stage resource) on arbitrary
//! bytes: must never panic. The entry point is
//! `tollgate_fuzz::authorizer::fuzz_one` (`fuzz/entries/src/authorizer.rs`).
//!
//! Run from the repository root, seeded with the sample events:
//!
//! ```sh
//! mkdir -p fuzz/authorizer/corpus/event_and_caller
//! cp events/authorizer/*.json events/authorizer/aws/*.json fuzz/authorizer/corpus/event_and_caller/
//! cargo +nightly fuzz run --fuzz-dir fuzz/authorizer event_and_caller -- -max_total_time=300
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_fuzz::authorizer::fuzz_one(data);
});
