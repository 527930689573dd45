//! Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace,
//! strings escaped and numbers written as `serde_json` writes them.
//!
//! - [`value`]: the reference form, written from a `serde_json::Value`;
//! - [`writer`]: the same bytes straight from `serde::Serialize`, without a
//!   `Value` tree;
//! - [`map_key`]: map keys turned into strings as `serde_json::to_value`
//!   turns them (shared by the writer and the typed path selection);
//! - [`token`]: `serde_json`'s token structs, handed to `to_value`.

pub(crate) mod map_key;
pub(crate) mod token;
pub(crate) mod value;
pub(crate) mod writer;
