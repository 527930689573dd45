//! tollgate's pure domain: identities, meters, windows and periods, plans,
//! API keys, the Usage table's key encoding and the authorization rules.
//!
//! Nothing here does I/O or knows about AWS, so every rule is unit-tested
//! without a network (`cargo tree -p tollgate-core` lists no AWS crate).

pub mod aggregate;
pub mod apikey;
pub mod billing;
pub mod blocking;
pub mod bucket;
pub mod ceiling;
pub mod clock;
pub mod cloudevent;
pub mod counting;
pub mod decision;
pub mod error;
pub mod identity;
pub mod lease;
pub mod meter;
pub mod plan;
pub mod ratelimit;
pub mod replication;
pub mod rotation;
pub mod usage_key;
pub mod value_path;
pub mod watermark;
pub mod window;

pub use aggregate::{Aggregator, CounterKey};
pub use apikey::{ApiKey, KeyDigest};
pub use counting::{
    count_access, AccessCharge, AccessRequest, LogSources, NotCounted, SourceRejection,
    StatusRanges,
};
pub use decision::{
    charge_source, decide, Block, Decision, DenyReason, KeyRecord, KeyStatus, Lookup,
};
pub use error::CoreError;
pub use identity::{Identity, IpPrefix, Ipv6Prefix};
pub use meter::{Aggregation, MeterDef, MeterName};
pub use plan::{windows_counted, CountedWindows, FailurePolicy, Limit, OveragePolicy, Plan};
pub use ratelimit::RateLimitFields;
pub use replication::Replication;
pub use usage_key::{Cell, ItemKey, ItemKeys, Region, UsageKey};
pub use value_path::ValuePath;
pub use watermark::{Contributions, Position};
pub use window::{Period, Window};

/// Milliseconds since the Unix epoch, UTC. All tollgate times are in this unit.
pub type UnixMillis = i64;
