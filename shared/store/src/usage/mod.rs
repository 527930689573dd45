//! The Usage table: one item per meter, identity, period and region, and
//! for anonymous identities one per meter, bucket, period and region.
//! Attributes: `pk`, `sk` (see [`tollgate_core::UsageKey`]), `n` (the
//! item's own counter), for a month item `d01`..`d31` (its days' counters),
//! for a bucket item one counter per anonymous identity (see
//! [`tollgate_core::Cell`]), `agg`, `updated_at` (epoch ms) and, for
//! minute and hour windows, `ttl` (epoch seconds). Everything else is in
//! the keys.
//!
//! One concept per module, everything public re-exported here: `layout`
//! (TTL, the top index key and its variable, the `shared` marker), `item`
//! (reading an item's counters, [`UsageItem`]), `adds` (building writes:
//! [`ItemAdds`], [`Grouping`], [`increment`], size checks), `store` (the
//! [`UsageStore`] adapter and its writes) and `read` (its reads).

mod adds;
mod item;
mod layout;
mod read;
mod store;

pub use adds::{increment, Grouping, ItemAdds};
pub use item::{sum_by_region, ImageError, Scalar, UsageItem};
pub use layout::{top_key, top_partition, ttl_for, SHARED, TOP_INDEX_VAR, TOP_WINDOWS};
pub use read::Cursor;
pub use store::{Expect, Fence, Fenced, UsageStore};
