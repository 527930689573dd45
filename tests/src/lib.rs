//! Tests across tollgate's crates (in `tests/`). The harness and the
//! Runtime API stand-in they use live in the test kit (`testkit/`,
//! `tollgate_testkit`), re-exported here under their former paths.

pub use tollgate_testkit::*;
