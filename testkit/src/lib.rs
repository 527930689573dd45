//! tollgate's test kit: what tests, benchmarks and local runs need around
//! the code under test. Nothing here runs in a Lambda function.
//!
//! - [`Harness`]: fresh tables in DynamoDB Local per test, in one or more
//!   simulated regions.
//! - [`runtime_api`]: the one Lambda Runtime API stand-in, to run a
//!   function's real binary the way Lambda does.
//! - [`streams`] and [`pump`]: reading a table's stream in DynamoDB Local
//!   as Lambda-shaped records, and the stream pump that stands in for an
//!   event source mapping.
//! - [`cloudwatch`] and [`traffic`]: CloudWatch Logs subscription events and
//!   synthetic access-log traffic (the workload generator).
//! - [`clock`]: a test's "now", derived from the wall clock so that items
//!   written with a TTL never age past DynamoDB Local's TTL sweeper.

pub mod clock;
pub mod cloudwatch;
mod harness;
pub mod pump;
pub mod runtime_api;
pub mod streams;
pub mod traffic;

pub use harness::{endpoint, unique_prefix, Harness, TEST_REGION};
