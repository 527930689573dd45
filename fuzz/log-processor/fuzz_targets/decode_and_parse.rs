//! Fuzzes everything the log-processor does with untrusted bytes before it
//! writes: base64, gzip (capped), the CloudWatch Logs payload, both line
//! formats and aggregation. It must never panic, hang or allocate past the
//! cap, and the one-pass fast paths (gunzip in one call, the payload and
//! line readers) must agree with the general ones they stand in for. The
//! entry point is `tollgate_fuzz::log_processor::decode_and_count`
//! (`fuzz/entries/src/log_processor.rs`).
//!
//! `cd fuzz/log-processor && cargo +nightly fuzz run decode_and_parse`
#![no_main]

use libfuzzer_sys::fuzz_target;
use log_processor::{decode, line};

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = tollgate_fuzz::log_processor::decode_and_count(data, LIMIT);
    let Some((_, rest)) = data.split_first() else {
        return;
    };
    assert!(decode::gunzip_agrees(rest, LIMIT), "one-call gunzip disagrees");
    assert!(decode::fast_payload_agrees(rest), "payload reader disagrees");
    if let Ok(text) = std::str::from_utf8(rest) {
        assert!(line::fast_line_agrees(text), "line reader disagrees");
    }
    let payload = match decode::gunzip_capped(rest, LIMIT) {
        Ok(bytes) => bytes,
        Err(_) => rest.to_vec(),
    };
    if let Ok(parsed) = decode::parse_payload(&payload) {
        for event in &parsed.log_events {
            assert!(line::fast_line_agrees(&event.message), "line reader disagrees");
        }
    }
});
