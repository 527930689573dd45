//! The in-memory adapters of the ports (feature `memory`), for handler and
//! use-case tests: [`MemoryKeys`] (keys, blocks and plans) and
//! [`MemoryAllowances`] (the lease allowances of a whole deployment, every
//! region in one map). They model what the ports promise, not DynamoDB:
//! DynamoDB's own behaviour is tested on DynamoDB Local.

mod allowances;
mod keys;

pub use allowances::MemoryAllowances;
pub use keys::{Failing, MemoryKeys};
