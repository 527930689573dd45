//! The environment parsers: `tollgate_lambda::Env` under every function's
//! `Config::read`; errors name the variable at fault, values read trimmed.
//! The entry point is `tollgate_fuzz::env::fuzz_env` (`fuzz/entries/src/env.rs`).
//!
//! Run with the others: `scripts/fuzz.sh [seconds]`; alone:
//! `cargo +nightly fuzz run --fuzz-dir fuzz/lambda env -- -max_total_time=60`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_fuzz::env::fuzz_env(data);
});
