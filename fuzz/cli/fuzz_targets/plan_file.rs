//! The CLI's plan files (`tollgate plans put`, YAML or JSON): accepted plans
//! are valid and print and read back the same. The entry point is
//! `tollgate_fuzz::plan_file::fuzz_plan_file` (`fuzz/entries/src/plan_file.rs`).
//!
//! Run with the others: `scripts/fuzz.sh [seconds]`; alone:
//! `cargo +nightly fuzz run --fuzz-dir fuzz/cli plan_file -- -max_total_time=60`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_fuzz::plan_file::fuzz_plan_file(data);
});
