//! quota-sync's input: Usage stream records decoded and collapsed as a
//! batch, Usage items read whole and as stream images
//! (`UsageItem::parse_all`), block items, sequence numbers' order. The
//! entry point is `tollgate_fuzz::quota_sync::fuzz_stream`
//! (`fuzz/entries/src/quota_sync.rs`), which states the invariants.
//!
//! Run with the others: `scripts/fuzz.sh [seconds]`; alone:
//! `cargo +nightly fuzz run --fuzz-dir fuzz/quota-sync stream_and_items -- -max_total_time=60`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_fuzz::quota_sync::fuzz_stream(data);
});
