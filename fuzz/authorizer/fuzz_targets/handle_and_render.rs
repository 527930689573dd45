//! The authorizer's byte entry point on the response side: any bytes parsed
//! as an event, the caller found, and every kind of outcome rendered for
//! it; each rendering must be JSON with a context object, and nothing may
//! panic. The entry point is `tollgate_fuzz::authorizer::fuzz_render`
//! (`fuzz/entries/src/authorizer.rs`).
//!
//! Run from the repository root, seeded with the sample events:
//!
//! ```sh
//! mkdir -p fuzz/authorizer/corpus/handle_and_render
//! cp events/authorizer/*.json events/authorizer/aws/*.json fuzz/authorizer/corpus/handle_and_render/
//! cargo +nightly fuzz run --fuzz-dir fuzz/authorizer handle_and_render -- -max_total_time=300
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_fuzz::authorizer::fuzz_render(data);
});
