//! The Usage table's reads: a counter's items in every region and part, the
//! open part of a bucket, usage queries, top index pages and the operators'
//! scan by period.

use std::collections::BTreeMap;

use tollgate_core::bucket::{OpenPart, PART_MEMBER_BYTES, RESERVED_ATTRIBUTE};
use tollgate_core::usage_key::item_period;
use tollgate_core::{Aggregation, CounterKey, ItemKeys, Period, Region, UsageKey};

use super::item::{sum_by_region, UsageItem};
use super::UsageStore;
use crate::attr::{get_s, get_u64, s, Item};
use crate::StoreError;

/// Where a paged read goes on: the last key a page read, opaque outside
/// the store (so a use case pages without an SDK type).
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor(Item);

impl Cursor {
    fn from_key(key: Option<Item>) -> Option<Cursor> {
        key.map(Cursor)
    }

    fn key_of(cursor: Option<Cursor>) -> Option<Item> {
        cursor.map(|c| c.0)
    }
}

impl UsageStore {
    /// A counter's value in every region this table holds items of: the
    /// sum of its cells in every part of its items (see [`Self::items_holding`]).
    pub async fn regions_of(
        &self,
        counter: &CounterKey,
    ) -> Result<BTreeMap<Region, u64>, StoreError> {
        Ok(sum_by_region(&self.items_holding(counter).await?, counter))
    }

    /// Every counter of the items that hold `counter`, in every region this
    /// table holds items of, in every part of a bucket: also the other
    /// counters those items hold, such as the month of a day or the other
    /// identities of a bucket. One Query, strongly consistent (blocks are
    /// decided on it), read page by page to the end.
    pub async fn items_holding(&self, counter: &CounterKey) -> Result<Vec<UsageItem>, StoreError> {
        let mut counters = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(counter.pk()))
                .expression_attribute_values(":p", s(counter.sk_prefix()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for item in out.items() {
                // `begins_with` on `hour#2026-11-2` must not match `hour#2026-11-21`:
                // the prefix ends with '#', and callers compare periods exactly.
                counters.extend(UsageItem::parse_all(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(counters);
            }
        }
    }

    /// The last part of the bucket item holding `key` in its region and the
    /// bytes reserved in it (part 0, nothing reserved, if none exists yet):
    /// one Query of one item.
    pub async fn open_part(
        &self,
        key: &UsageKey,
        consistent: bool,
    ) -> Result<OpenPart, StoreError> {
        let (from, to) = key.part_range();
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
            .expression_attribute_values(":pk", s(key.pk()))
            .expression_attribute_values(":a", s(from))
            .expression_attribute_values(":b", s(to))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(consistent)
            .projection_expression("sk, #m")
            .expression_attribute_names("#m", RESERVED_ATTRIBUTE)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let Some(item) = out.items().first() else {
            return Ok(OpenPart::default());
        };
        let sk = get_s(item, "sk").unwrap_or_default();
        let part = match ItemKeys::parse(&key.pk(), sk)? {
            ItemKeys::Bucket(bucket) => bucket.part,
            ItemKeys::Counter(_) => 0,
        };
        Ok(OpenPart {
            part,
            reserved: get_u64(item, RESERVED_ATTRIBUTE).unwrap_or(PART_MEMBER_BYTES),
        })
    }

    /// A counter's global value: the sum (or the max, for `max` meters) of
    /// its region items, saturating at `u64::MAX` (never wrapping).
    pub async fn global(
        &self,
        counter: &CounterKey,
        aggregation: Aggregation,
    ) -> Result<u64, StoreError> {
        let regions = self.regions_of(counter).await?;
        Ok(match aggregation {
            Aggregation::Max => regions.values().copied().max().unwrap_or(0),
            _ => regions.values().copied().fold(0, u64::saturating_add),
        })
    }

    /// The counters of the items of one identity's meter with `sk` between
    /// `from_sk` and `to_sk` (for usage queries), one page of items at a time.
    pub async fn query_prefix(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        start: Option<Cursor>,
        limit: i32,
    ) -> Result<(Vec<UsageItem>, Option<Cursor>), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":a", s(from_sk))
            .expression_attribute_values(":b", s(to_sk))
            .set_exclusive_start_key(Cursor::key_of(start))
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let mut counters = Vec::with_capacity(out.items().len());
        for item in out.items() {
            counters.extend(UsageItem::parse_all(item)?);
        }
        Ok((counters, Cursor::from_key(out.last_evaluated_key)))
    }

    /// One page of the top index partition `top` (see [`top_key`]), largest
    /// counter first: `(usage key, value)` pairs and the key to go on from.
    /// The index is eventually consistent.
    pub async fn top_page(
        &self,
        top: &str,
        start: Option<Cursor>,
        limit: i32,
    ) -> Result<(Vec<(UsageKey, u64)>, Option<Cursor>), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(crate::tables::USAGE_TOP_INDEX.name)
            .key_condition_expression("#top = :top")
            .expression_attribute_names("#top", "top")
            .expression_attribute_values(":top", s(top))
            .scan_index_forward(false)
            .set_exclusive_start_key(Cursor::key_of(start))
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let mut entries = Vec::with_capacity(out.items().len());
        for item in out.items() {
            let malformed = |message: &str| StoreError::Malformed {
                table: "Usage",
                message: message.to_owned(),
            };
            let pk = get_s(item, "pk").ok_or_else(|| malformed("no pk"))?;
            let sk = get_s(item, "sk").ok_or_else(|| malformed("no sk"))?;
            let value = get_u64(item, "n").ok_or_else(|| malformed("no counter n"))?;
            entries.push((UsageKey::parse(pk, sk)?, value));
        }
        Ok((entries, Cursor::from_key(out.last_evaluated_key)))
    }

    /// Every counter of the given periods, in every region this table holds
    /// (a Scan: for operators, such as recomputing blocks, never a hot path).
    pub async fn scan_periods(&self, periods: &[Period]) -> Result<Vec<UsageItem>, StoreError> {
        if periods.is_empty() {
            return Ok(Vec::new());
        }
        // The periods of the items that hold them (a day: its month).
        let mut item_periods: Vec<Period> = periods.iter().map(|p| item_period(*p)).collect();
        item_periods.sort_unstable();
        item_periods.dedup();
        let filter = (0..item_periods.len())
            .map(|i| format!("begins_with(sk, :p{i})"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut req = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(&filter)
                .set_exclusive_start_key(start);
            for (i, period) in item_periods.iter().enumerate() {
                req = req.expression_attribute_values(format!(":p{i}"), s(format!("{period}#")));
            }
            let page = req
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Scan", e))?;
            for item in page.items() {
                for parsed in UsageItem::parse_all(item)? {
                    if periods.contains(&parsed.key.counter.period) {
                        items.push(parsed);
                    }
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}
