//! One identity's usage of one meter, period by period (`GET /v1/usage`,
//! `tollgate usage show`): summed over every region's items (the Usage
//! table holds all regions' items, as quota-sync copies them, or each
//! region's own table is read), with the per-region breakdown on request,
//! paged by periods. Also the query's parameter grammar, shared by the
//! HTTP route and the CLI's flags.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{NaiveDate, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use tollgate_core::{
    Aggregation, CounterKey, Identity, MeterName, Period, Region, UnixMillis, Window,
};
use tollgate_store::{StoreError, UsageRange, UsageStore};

/// The most periods in one page.
pub const MAX_PAGE_PERIODS: usize = 1000;
/// The periods in a page when `limit` is not given.
pub const DEFAULT_PAGE_PERIODS: usize = 100;

/// A bad query (a parameter: HTTP 400), or a store failure.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A parameter is missing or does not parse.
    #[error("parameter {param}: {reason}")]
    Param {
        /// The parameter.
        param: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// DynamoDB failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueryError {
    pub(crate) fn param(param: &'static str, reason: impl Into<String>) -> Self {
        QueryError::Param {
            param,
            reason: reason.into(),
        }
    }
}

/// What a usage query (`GET /v1/usage`) asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// Who.
    pub identity: Identity,
    /// Which meter.
    pub meter: MeterName,
    /// The window of the periods.
    pub window: Window,
    /// The first period.
    pub from: Period,
    /// The last period (inclusive).
    pub to: Period,
    /// Whether to give each period's per-region values.
    pub regions: bool,
    /// The most periods in this page.
    pub limit: usize,
    /// Where the previous page ended (its `next`).
    pub next: Option<String>,
}

/// One period's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodUsage {
    /// The period label, such as `2026-11-21`.
    pub period: String,
    /// The period's first instant, RFC 3339.
    pub start: String,
    /// The total over all regions (the largest, for a `max` meter).
    pub total: u64,
    /// The value in each region, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<BTreeMap<String, u64>>,
}

/// The answer to a [`UsageQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Who.
    pub identity: String,
    /// Which meter.
    pub meter: String,
    /// The window.
    pub window: Window,
    /// The periods with usage, oldest first (periods without usage are left out).
    pub periods: Vec<PeriodUsage>,
    /// The token for the next page, if there is more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The windows usage can be asked for.
pub const QUERY_WINDOWS: [Window; 3] = [Window::Hour, Window::Day, Window::Month];

/// Parses a window parameter (hour, day or month).
pub fn parse_window(param: &'static str, text: &str) -> Result<Window, QueryError> {
    let w: Window = text
        .parse()
        .map_err(|e: tollgate_core::CoreError| QueryError::param(param, e.to_string()))?;
    if !QUERY_WINDOWS.contains(&w) {
        return Err(QueryError::param(param, "expected hour, day or month"));
    }
    Ok(w)
}

/// Parses a period bound: a period label of the window (`2026-11-21`,
/// `2026-11`, `2026-11-21T13`), a date, an RFC 3339 time, or epoch
/// milliseconds; the result is the window's period that holds it.
pub fn parse_bound(param: &'static str, window: Window, text: &str) -> Result<Period, QueryError> {
    let text = text.trim();
    if let Ok(p) = Period::parse_label(window, text) {
        return Ok(p);
    }
    let at: Option<UnixMillis> = chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| Utc.from_utc_datetime(&t).timestamp_millis())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| Utc.from_utc_datetime(&t).timestamp_millis())
        })
        .or_else(|| text.parse::<i64>().ok());
    let at = at.ok_or_else(|| {
        QueryError::param(
            param,
            format!(
                "{text:?} is not a {window} label, a date, an RFC 3339 time or epoch milliseconds"
            ),
        )
    })?;
    window
        .period_of(at)
        .map_err(|e| QueryError::param(param, e.to_string()))
}

/// Builds a [`UsageQuery`] from query-string parameters (`get` returns a
/// parameter's value). `to` defaults to now's period, `from` to `to`.
pub fn parse_usage_query(
    get: impl Fn(&str) -> Option<String>,
    now: UnixMillis,
) -> Result<UsageQuery, QueryError> {
    let required = |name: &'static str| {
        get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| QueryError::param(name, "missing"))
    };
    let identity: Identity = required("identity")?
        .parse()
        .map_err(|e: tollgate_core::CoreError| QueryError::param("identity", e.to_string()))?;
    let meter = MeterName::new(&required("meter")?)
        .map_err(|e| QueryError::param("meter", e.to_string()))?;
    let window = match get("window").filter(|v| !v.is_empty()) {
        Some(w) => parse_window("window", &w)?,
        None => Window::Day,
    };
    let to = match get("to").filter(|v| !v.is_empty()) {
        Some(t) => parse_bound("to", window, &t)?,
        None => window
            .period_of(now)
            .map_err(|e| QueryError::param("to", e.to_string()))?,
    };
    let from = match get("from").filter(|v| !v.is_empty()) {
        Some(f) => parse_bound("from", window, &f)?,
        None => to,
    };
    if from > to {
        return Err(QueryError::param("from", "is after `to`"));
    }
    let regions = match get("regions").as_deref() {
        None | Some("") | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(QueryError::param(
                "regions",
                format!("{other:?}: expected true or false"),
            ))
        }
    };
    let limit = match get("limit").filter(|v| !v.is_empty()) {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE_PERIODS).contains(l))
            .ok_or_else(|| {
                QueryError::param("limit", format!("expected 1 to {MAX_PAGE_PERIODS}"))
            })?,
        None => DEFAULT_PAGE_PERIODS,
    };
    Ok(UsageQuery {
        identity,
        meter,
        window,
        from,
        to,
        regions,
        limit,
        next: get("next").filter(|v| !v.is_empty()),
    })
}

/// The `next` token of a page whose last period is `last`: `<last period>#~`
/// in unpadded URL-safe base64 (the page after it starts past that period).
pub fn page_token(last: &Period) -> String {
    URL_SAFE_NO_PAD.encode(format!("{last}#~").as_bytes())
}

/// Reads a `next` token back: the last period of the previous page, which
/// must be a period of the query's window between its bounds (a token of
/// another query is a bad parameter, never a read elsewhere).
pub fn parse_page_token(token: &str, q: &UsageQuery) -> Result<Period, QueryError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.strip_suffix("#~").and_then(|p| p.parse::<Period>().ok()))
        .filter(|p| p.window == q.window && *p >= q.from && *p <= q.to)
        .ok_or_else(|| QueryError::param("next", "not a token of this query"))
}

/// Where a usage query reads: a Usage table (any [`UsageRange`] adapter,
/// DynamoDB's by default), and whose items it takes from it (`None`: every
/// region's items it holds, as in a table that receives every region's
/// copies).
#[derive(Debug)]
pub struct Source<'a, S = UsageStore> {
    /// The table.
    pub store: &'a S,
    /// Take only this region's items (a region's own table is the
    /// authority for its own items).
    pub region: Option<&'a Region>,
}

// By hand: a derive would ask `S: Copy`, and a source is two references.
impl<S> Clone for Source<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Source<'_, S> {}

/// One period's values read so far: its aggregation and value per region.
type PeriodValues = BTreeMap<Period, (Aggregation, BTreeMap<String, u64>)>;

/// Answers a usage query from one or more sources: in each, Queries of one
/// partition between the first and the last period's sort keys, read in
/// pages of at most 1 MB, and merged period by period.
///
/// With replication `hot` a region's table holds only the copies of
/// counters that could reach a limit, so the usage API reads every
/// region's own items from that region's table (one Query per region).
pub async fn query_usage<S: UsageRange>(
    sources: &[Source<'_, S>],
    q: &UsageQuery,
) -> Result<UsageReport, QueryError> {
    let counter_at = |period: Period| CounterKey {
        meter: q.meter.clone(),
        identity: q.identity.clone(),
        period,
    };
    let pk = counter_at(q.from).pk();
    let after = match &q.next {
        Some(token) => Some(parse_page_token(token, q)?),
        None => None,
    };
    // The items that hold the periods: a day's counter is in its month's
    // item (an anonymous identity's in its own day's bucket item).
    let from_sk = format!("{}#", counter_at(after.unwrap_or(q.from)).item_period());
    // Region names use a-z, 0-9 and '-', all below '~'.
    let to_sk = format!("{}#~", counter_at(q.to).item_period());
    let reads = sources
        .iter()
        .map(|source| read_periods(*source, &pk, (&from_sk, &to_sk), q, after));
    let mut merged: PeriodValues = BTreeMap::new();
    for periods in futures::future::try_join_all(reads).await? {
        for (period, (aggregation, regions)) in periods {
            let entry = merged
                .entry(period)
                .or_insert_with(|| (aggregation, BTreeMap::new()));
            for (region, value) in regions {
                let v = entry.1.entry(region).or_insert(0);
                *v = (*v).max(value);
            }
        }
    }
    // Every source read up to its (limit + 1)-th period, so the first
    // `limit` periods of the union are complete in every source.
    let more = merged.len() > q.limit;
    let page: Vec<_> = merged.into_iter().take(q.limit).collect();
    let next = if more {
        page.last().map(|(period, _)| page_token(period))
    } else {
        None
    };
    let periods = page
        .into_iter()
        .map(|(period, (agg, regions))| PeriodUsage {
            period: period.label(),
            start: Utc
                .timestamp_millis_opt(period.start)
                .single()
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default(),
            total: combine(agg, regions.values().copied()),
            regions: q.regions.then_some(regions),
        })
        .collect();
    Ok(UsageReport {
        identity: q.identity.to_string(),
        meter: q.meter.to_string(),
        window: q.window,
        periods,
        next,
    })
}

/// Reads one source's periods of the query's window between its bounds
/// and past `after`, from the items in the `sk` range `(from, to)`, until it
/// has more than `q.limit` periods or none are left.
async fn read_periods<S: UsageRange>(
    source: Source<'_, S>,
    pk: &str,
    (from_sk, to_sk): (&str, &str),
    q: &UsageQuery,
    after: Option<Period>,
) -> Result<PeriodValues, QueryError> {
    let mut periods: PeriodValues = BTreeMap::new();
    // The items come by item period, then region: a day's values are whole
    // only once every region's item of its month is read, so a read stops
    // only where a new item period begins.
    let mut reading = None;
    let mut start = None;
    loop {
        let (items, last) = source
            .store
            .query_prefix(pk, from_sk, to_sk, start.take(), 500)
            .await?;
        for item in items {
            let period = item.key.counter.period;
            // A bucket item holds other anonymous identities too.
            let outside = item.key.counter.identity != q.identity
                || period.window != q.window
                || period < q.from
                || period > q.to
                || after.is_some_and(|a| period <= a);
            if outside || source.region.is_some_and(|r| *r != item.key.region) {
                continue;
            }
            let item_period = item.key.counter.item_period();
            if reading != Some(item_period) {
                if periods.len() > q.limit {
                    return Ok(periods);
                }
                reading = Some(item_period);
            }
            let value = periods
                .entry(period)
                .or_insert_with(|| (item.aggregation, BTreeMap::new()))
                .1
                .entry(item.key.region.to_string())
                .or_insert(0);
            // A bucket's parts each hold a share of an identity's counter.
            *value = match item.aggregation {
                tollgate_core::Aggregation::Max => (*value).max(item.value),
                _ => value.saturating_add(item.value),
            };
        }
        match last {
            Some(key) => start = Some(key),
            None => return Ok(periods),
        }
    }
}

/// The global value of a counter from its region values: the sum, or the
/// largest for a `max` meter.
pub fn combine(agg: Aggregation, values: impl Iterator<Item = u64>) -> u64 {
    match agg {
        Aggregation::Max => values.max().unwrap_or(0),
        _ => values.fold(0u64, u64::saturating_add),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    const NOW: i64 = 1_795_000_000_000; // 2026-11-18T11:06:40Z

    fn q(pairs: &[(&str, &str)]) -> Result<UsageQuery, QueryError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_usage_query(|k| map.get(k).cloned(), NOW)
    }

    #[test]
    fn parses_queries() {
        let u = q(&[("identity", "key:k"), ("meter", "tokens")]).unwrap();
        assert_eq!(u.window, Window::Day);
        assert_eq!(u.from.to_string(), "day#2026-11-18");
        assert_eq!(u.to, u.from);
        assert!(!u.regions);
        let u = q(&[
            ("identity", "key:k"),
            ("meter", "tokens"),
            ("window", "month"),
            ("from", "2026-01"),
            ("to", "2026-11-18T11:06:40Z"),
            ("regions", "true"),
        ])
        .unwrap();
        assert_eq!(u.from.to_string(), "month#2026-01");
        assert_eq!(u.to.to_string(), "month#2026-11");
        assert!(u.regions);
        let u = q(&[
            ("identity", "key:k"),
            ("meter", "tokens"),
            ("window", "hour"),
            ("from", "2026-11-17"),
            ("to", "1795000000000"),
        ])
        .unwrap();
        assert_eq!(u.from.to_string(), "hour#2026-11-17T00");
        assert_eq!(u.to.to_string(), "hour#2026-11-18T11");
    }

    #[test]
    fn names_the_bad_parameter() {
        let bad = |pairs: &[(&str, &str)], param: &str| match q(pairs) {
            Err(QueryError::Param { param: p, .. }) => assert_eq!(p, param, "{pairs:?}"),
            other => panic!("{pairs:?}: {other:?}"),
        };
        bad(&[("meter", "tokens")], "identity");
        bad(&[("identity", "user:x"), ("meter", "tokens")], "identity");
        bad(&[("identity", "key:k")], "meter");
        bad(
            &[
                ("identity", "key:k"),
                ("meter", "tokens"),
                ("window", "minute"),
            ],
            "window",
        );
        bad(
            &[("identity", "key:k"), ("meter", "tokens"), ("from", "soon")],
            "from",
        );
        bad(
            &[
                ("identity", "key:k"),
                ("meter", "tokens"),
                ("from", "2026-12-01"),
                ("to", "2026-11-01"),
            ],
            "from",
        );
        bad(
            &[
                ("identity", "key:k"),
                ("meter", "tokens"),
                ("regions", "yes"),
            ],
            "regions",
        );
        bad(
            &[("identity", "key:k"), ("meter", "tokens"), ("limit", "0")],
            "limit",
        );
    }

    #[test]
    fn combines_regions() {
        assert_eq!(combine(Aggregation::Sum, [3, 4].into_iter()), 7);
        assert_eq!(combine(Aggregation::Count, [3, 4].into_iter()), 7);
        assert_eq!(combine(Aggregation::Max, [3, 4].into_iter()), 4);
        assert_eq!(combine(Aggregation::Max, std::iter::empty()), 0);
    }
}
