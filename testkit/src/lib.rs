//! tollgate's test kit: what tests need around the code under test.
//! Nothing here runs in a Lambda function.
//!
//! - [`Harness`]: fresh tables in DynamoDB Local per test, in one or more
//!   simulated regions.
//! - [`runtime_api`]: the one Lambda Runtime API stand-in, to run a
//!   function's real binary the way Lambda does.

mod harness;
pub mod runtime_api;

pub use harness::{endpoint, unique_prefix, Harness, TEST_REGION};
