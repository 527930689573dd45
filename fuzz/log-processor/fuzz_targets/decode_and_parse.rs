//! Fuzzes everything the log-processor does with untrusted bytes before it
//! writes: base64, gzip (capped), the CloudWatch Logs payload, both line
//! formats and aggregation. It must never panic, hang or allocate past the cap.
//!
//! `cd fuzz/log-processor && cargo +nightly fuzz run decode_and_parse`
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = log_processor::decode_and_count(data, 1 << 20);
});
