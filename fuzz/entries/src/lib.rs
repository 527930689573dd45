//! The fuzz entry points, on stable: one function per cargo-fuzz target in
//! `fuzz/<crate>/fuzz_targets/` (those need nightly and libFuzzer, and call
//! these), written against the crates' public APIs. Each asserts the
//! invariants of what it parses (no panic, bounded allocation, round trips
//! where a parser has a printer, rejected input changes nothing), and
//! their unit tests run the same entry points as property tests in every
//! `cargo test`. `scripts/fuzz.sh` runs every target for a bounded time.
//!
//! - [`authorizer`](crate::authorizer): `fuzz_one` (event parsing and the
//!   caller) and `fuzz_render` (every kind of response), for
//!   `fuzz/authorizer`.
//! - [`ingest`](crate::ingest): `check_invariants` (a `POST /v1/events`
//!   body), and [`ingest_api`](crate::ingest_api): `fuzz_request` (routing,
//!   the usage and top queries, paging tokens), for `fuzz/ingest`.
//! - [`log_processor`](crate::log_processor): `decode_and_count`
//!   (everything done to untrusted bytes before a write), and
//!   [`kinesis`](crate::kinesis): `fuzz_kinesis` (Kinesis records,
//!   sequence positions), for `fuzz/log-processor`.
//! - [`quota_sync`](crate::quota_sync): `fuzz_stream` (stream records,
//!   `UsageItem::parse_all`, block items), for `fuzz/quota-sync`.
//! - [`plan_file`](crate::plan_file): `fuzz_plan_file` (the CLI's plan
//!   files), for `fuzz/cli`.
//! - [`env`](crate::env): `fuzz_env` (`tollgate_lambda::Env` and every
//!   function's configuration), for `fuzz/lambda`.

pub mod authorizer;
pub mod env;
pub mod ingest;
pub mod ingest_api;
pub mod kinesis;
pub mod log_processor;
pub mod plan_file;
pub mod quota_sync;
