//! The top list (`GET /v1/usage/top`, `tollgate usage top`): the
//! identities with the largest usage of a meter in one period, without
//! scanning the table.
//!
//! The Usage table's sparse `top` index (see `tollgate_store::USAGE_TOP_INDEX`)
//! lists, per meter, period and region, the region items by counter value,
//! largest first; it is kept on the write path by DynamoDB itself (month
//! counters carry the index key when `TOLLGATE_TOP_INDEX=true`). It ranks
//! API keys: anonymous identities' counters share bucket items, which an
//! index cannot rank one by one. A global total is the sum of an
//! identity's region items, so the top identities are found with the
//! threshold algorithm: read each region's list a page at a time, look up
//! the global total of every identity met (one Query per region), and stop once
//! the `limit`-th best total is above the sum of the values last read in
//! each list: no identity not met yet can have more. Ties are ordered by
//! identity; exact ties at the cut are resolved by reading on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_core::{Aggregation, Identity, MeterName, Period, Region, Window};
use tollgate_store::usage::{top_partition, TOP_WINDOWS};
use tollgate_store::{Cursor, TopIndex};

use crate::usage::{combine, parse_window, QueryError};

/// The largest `limit`.
pub const MAX_LIMIT: usize = 100;
/// Region items read at most per call; past it the answer says `complete: false`.
pub const MAX_ITEMS_READ: usize = 5000;

/// What a top list (`GET /v1/usage/top`) asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopQuery {
    /// The meter.
    pub meter: MeterName,
    /// The period (its window must be indexed: day or month).
    pub period: Period,
    /// How many identities.
    pub limit: usize,
}

/// One identity in the top list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopEntry {
    /// 1 for the largest.
    pub rank: usize,
    /// Who.
    pub identity: String,
    /// The global total (the largest region value, for a `max` meter).
    pub total: u64,
}

/// The answer to a [`TopQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopReport {
    /// The meter.
    pub meter: String,
    /// The window.
    pub window: Window,
    /// The period label.
    pub period: String,
    /// The top identities, largest total first, ties by identity.
    pub top: Vec<TopEntry>,
    /// False when the read limit stopped the search before it was exact.
    pub complete: bool,
    /// Index items read (a measure of the call's cost).
    pub items_read: usize,
    /// Identities whose totals were looked up (one Query each).
    pub lookups: usize,
}

/// Builds a [`TopQuery`] from query-string parameters.
pub fn parse_top_query(get: impl Fn(&str) -> Option<String>) -> Result<TopQuery, QueryError> {
    let meter_text = get("meter")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| QueryError::param("meter", "missing"))?;
    let meter =
        MeterName::new(&meter_text).map_err(|e| QueryError::param("meter", e.to_string()))?;
    let window = match get("window").filter(|v| !v.is_empty()) {
        Some(w) => parse_window("window", &w)?,
        None => Window::Month,
    };
    if !TOP_WINDOWS.contains(&window) {
        return Err(QueryError::param(
            "window",
            "top lists are kept for month periods only (window=month)",
        ));
    }
    let period_text = get("period")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| QueryError::param("period", "missing"))?;
    let period = Period::parse_label(window, &period_text)
        .map_err(|e| QueryError::param("period", e.to_string()))?;
    let limit = match get("limit").filter(|v| !v.is_empty()) {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| QueryError::param("limit", format!("expected 1 to {MAX_LIMIT}")))?,
        None => 10,
    };
    Ok(TopQuery {
        meter,
        period,
        limit,
    })
}

struct List<'a, S> {
    store: &'a S,
    region: Region,
    start: Option<Cursor>,
    last: Option<u64>,
    exhausted: bool,
}

/// Finds the top identities of `q.period` over `regions`: every region of
/// the deployment, each with the table that holds its own items (its own
/// table, since quota-sync may copy only hot counters).
pub async fn top<S: TopIndex>(
    regions: &[(Region, &S)],
    aggregation: Aggregation,
    q: &TopQuery,
) -> Result<TopReport, QueryError> {
    let mut lists: Vec<List<'_, S>> = regions
        .iter()
        .map(|(r, store)| List {
            store: *store,
            region: r.clone(),
            start: None,
            last: None,
            exhausted: false,
        })
        .collect();
    let page = i32::try_from(q.limit.clamp(10, MAX_LIMIT)).unwrap_or(100);
    let mut totals: BTreeMap<Identity, u64> = BTreeMap::new();
    let mut items_read = 0;
    let mut complete = true;
    loop {
        for list in lists.iter_mut().filter(|l| !l.exhausted) {
            let top_key = top_partition(&q.meter, &q.period, &list.region);
            let (entries, next) = list
                .store
                .top_page(&top_key, list.start.take(), page)
                .await?;
            items_read += entries.len();
            for (usage_key, value) in entries {
                list.last = Some(value);
                let counter = usage_key.counter;
                if !totals.contains_key(&counter.identity) {
                    // Each region's own item, from the table that holds it.
                    let mut values = Vec::with_capacity(regions.len());
                    for (region, store) in regions {
                        let by_region = store.regions_of(&counter).await?;
                        values.extend(by_region.get(region).copied());
                    }
                    totals.insert(
                        counter.identity.clone(),
                        combine(aggregation, values.into_iter()),
                    );
                }
            }
            match next {
                Some(n) => list.start = Some(n),
                None => list.exhausted = true,
            }
        }
        if lists.iter().all(|l| l.exhausted) {
            break;
        }
        // An identity not met yet has at most `last` in each list not read to its end.
        let bounds = lists
            .iter()
            .filter(|l| !l.exhausted)
            .map(|l| l.last.unwrap_or(u64::MAX));
        let threshold = combine(aggregation, bounds);
        let mut ranked: Vec<u64> = totals.values().copied().collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        if ranked.len() >= q.limit && ranked[q.limit - 1] > threshold {
            break;
        }
        if items_read >= MAX_ITEMS_READ {
            complete = false;
            break;
        }
    }
    let mut ranked: Vec<(Identity, u64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let lookups = ranked.len();
    let top = ranked
        .into_iter()
        .take(q.limit)
        .enumerate()
        .map(|(i, (identity, total))| TopEntry {
            rank: i + 1,
            identity: identity.to_string(),
            total,
        })
        .collect();
    Ok(TopReport {
        meter: q.meter.to_string(),
        window: q.period.window,
        period: q.period.label(),
        top,
        complete,
        items_read,
        lookups,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn q(pairs: &[(&str, &str)]) -> Result<TopQuery, QueryError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_top_query(|k| map.get(k).cloned())
    }

    #[test]
    fn parses_top_queries() {
        let t = q(&[("meter", "tokens"), ("period", "2026-11")]).unwrap();
        assert_eq!(t.period.to_string(), "month#2026-11");
        assert_eq!(t.limit, 10);
        let t = q(&[("meter", "tokens"), ("period", "2026-11"), ("limit", "3")]).unwrap();
        assert_eq!(t.limit, 3);
        for (pairs, param) in [
            (vec![("period", "2026-11")], "meter"),
            (vec![("meter", "tokens")], "period"),
            (
                vec![("meter", "tokens"), ("period", "2026-11-02")],
                "period",
            ),
            (
                vec![
                    ("meter", "tokens"),
                    ("window", "hour"),
                    ("period", "2026-11-02T10"),
                ],
                "window",
            ),
            (
                // Only month counters are in the top index.
                vec![
                    ("meter", "tokens"),
                    ("window", "day"),
                    ("period", "2026-11-02"),
                ],
                "window",
            ),
            (
                vec![("meter", "tokens"), ("period", "2026-11"), ("limit", "101")],
                "limit",
            ),
        ] {
            match q(&pairs) {
                Err(QueryError::Param { param: p, .. }) => assert_eq!(p, param),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }
}
