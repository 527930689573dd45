//! Simulations that drive the real functions: `tollgate demo` (through
//! `cargo lambda watch`) and `tollgate bench cost` (in process).

pub mod bench;
pub mod ddb_proxy;
pub mod demo;
pub mod events;
pub mod workload;
