//! Event parsing and caller extraction (key header / query / token, client
//! IP through X-Forwarded-For, Referer host, stage resource) on arbitrary
//! bytes: must never panic.
//!
//! Run: `cd fuzz/authorizer && cargo +nightly fuzz run event_and_caller -- -max_total_time=300`
//! (seeds: `events/authorizer/*.json`, passed as a corpus directory).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    authorizer::event::fuzz_one(data);
});
