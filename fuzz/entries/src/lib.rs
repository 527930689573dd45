//! The fuzz entry points, on stable: one module per cargo-fuzz crate in
//! `fuzz/` (those need nightly and libFuzzer, and call these), written
//! against the function crates' public APIs. Their unit tests run the same
//! entry points as property tests in every `cargo test`.
//!
//! - [`authorizer`](crate::authorizer): `fuzz_one` (event parsing and the
//!   caller) and `fuzz_render` (every kind of response), for
//!   `fuzz/authorizer`.
//! - [`ingest`](crate::ingest): `check_invariants` (a `POST /v1/events`
//!   body), for `fuzz/ingest`.
//! - [`log_processor`](crate::log_processor): `decode_and_count`
//!   (everything done to untrusted bytes before a write), for
//!   `fuzz/log-processor`.

pub mod authorizer;
pub mod ingest;
pub mod log_processor;
