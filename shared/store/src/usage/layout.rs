//! Where a Usage item's counters live beyond their keys: how long a short
//! window's item is kept (`ttl`), the sparse `top` index key of month
//! counters and the variable that turns it on, and the `shared` marker.

use tollgate_core::{CounterKey, MeterName, Period, Region, UsageKey, Window};

/// How long after its period ends a short window's item is kept.
pub fn ttl_for(key: &CounterKey) -> Option<i64> {
    let keep_ms = match key.period.window {
        Window::Minute => 24 * 3_600_000,
        Window::Hour => 8 * 24 * 3_600_000,
        Window::Day | Window::Month => return None,
    };
    Some((key.period.end() + keep_ms) / 1000)
}

/// The windows whose counters carry the `top` attribute and so appear in
/// the Usage table's top index ([`crate::tables::USAGE_TOP_INDEX`]).
///
/// Month only: every write of an indexed item also writes the index (two
/// more write units when the count, the index's sort key, changes), so
/// indexing day items too would add two write units to every increment.
pub const TOP_WINDOWS: [Window; 1] = [Window::Month];

/// The `top` index key of a counter item: `<meter>#<window>#<period>#<region>`,
/// for the windows in [`TOP_WINDOWS`] only (the index is sparse), and not
/// for anonymous identities (their bucket items hold no counter `n` to rank).
pub fn top_key(key: &UsageKey) -> Option<String> {
    let period = key.counter.item_period();
    (TOP_WINDOWS.contains(&period.window) && !key.counter.identity.is_anonymous())
        .then(|| top_partition(&key.counter.meter, &period, &key.region))
}

/// The variable that turns the top index on (`true`) or off (`false`, the
/// default) in every function that writes Usage items; each reads it with
/// the one boolean grammar of `tollgate_lambda::Env::flag`.
///
/// Off by default because of its price: every write that changes an
/// indexed counter also rewrites its index entry (two more write units, as
/// the index is sorted by the counter), which triples the cost of a month
/// counter's update. On, `GET /v1/usage/top` ranks identities.
pub const TOP_INDEX_VAR: &str = "TOLLGATE_TOP_INDEX";

/// The top index partition of one meter, period and region.
pub fn top_partition(meter: &MeterName, period: &Period, region: &Region) -> String {
    format!("{meter}#{period}#{region}")
}

/// The attribute (`true`) on a region's own counter item once a peer
/// region has copied its item of the same counter here: see
/// [`UsageStore::mark_shared`].
///
/// [`UsageStore::mark_shared`]: super::UsageStore::mark_shared
pub const SHARED: &str = "shared";
