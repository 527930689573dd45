//! Reading a Usage item: the counters one item (or a stream record's new
//! image) holds, and a counter's value per region from them.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use tollgate_core::{
    Aggregation, Cell, CounterKey, Identity, ItemKeys, Region, UnixMillis, UsageKey,
};

use crate::attr::{get_i64, get_s, Item};
use crate::StoreError;

/// One region's counter, as read from an item or a stream image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageItem {
    /// Which counter, in which region.
    pub key: UsageKey,
    /// How its values combine across regions and parts (`count`, `sum`, `max`).
    pub aggregation: Aggregation,
    /// The counter's value in this item.
    pub value: u64,
    /// When the item was last written (epoch ms; 0 if it does not say).
    pub updated_at: UnixMillis,
}

impl UsageItem {
    /// Reads an item (or a stream record's new image): one entry per
    /// counter it holds. An identity's item: its own (`n`) first, then its
    /// days in order; a bucket item: its identities in name order.
    pub fn parse_all(item: &Item) -> Result<Vec<UsageItem>, StoreError> {
        let malformed = |message: &str| StoreError::Malformed {
            table: "Usage",
            message: message.to_owned(),
        };
        let pk = get_s(item, "pk").ok_or_else(|| malformed("no pk"))?;
        let sk = get_s(item, "sk").ok_or_else(|| malformed("no sk"))?;
        let aggregation = get_s(item, "agg")
            .and_then(|a| a.parse().ok())
            .unwrap_or_default();
        let updated_at = get_i64(item, "updated_at").unwrap_or(0);
        let value_of = |name: &str, value: &AttributeValue| {
            value
                .as_n()
                .ok()
                .and_then(|v| counter_value(v))
                .ok_or_else(|| malformed(&format!("{name} is not a counter")))
        };
        let mut counters = Vec::new();
        match ItemKeys::parse(pk, sk)? {
            ItemKeys::Counter(own) => {
                for cell in Cell::of(own.counter.period.window) {
                    let name = cell.attribute();
                    let Some(value) = item.get(name.as_ref()) else {
                        continue;
                    };
                    counters.push(UsageItem {
                        key: own.at_cell(&cell)?,
                        aggregation,
                        value: value_of(&name, value)?,
                        updated_at,
                    });
                }
            }
            ItemKeys::Bucket(bucket) => {
                // Each attribute named by an anonymous identity, parsed once.
                let mut members: Vec<(&String, Identity, &AttributeValue)> = item
                    .iter()
                    .filter_map(|(name, value)| {
                        Some((name, Cell::member_of_attribute(name)?, value))
                    })
                    .collect();
                members.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (name, identity, value) in members {
                    counters.push(UsageItem {
                        key: bucket.member(identity)?,
                        aggregation,
                        value: value_of(name, value)?,
                        updated_at,
                    });
                }
            }
        }
        if counters.is_empty() {
            return Err(malformed("no counter"));
        }
        Ok(counters)
    }
}

/// A string or number attribute of a stream record's image, as text: what
/// [`UsageItem::parse_image`] reads (other attribute types carry no counter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    /// A string attribute (`S`).
    S(String),
    /// A number attribute (`N`), in DynamoDB's decimal text.
    N(String),
}

/// Why a stream image's counters could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The image has no Usage keys: another item (say, of another table).
    #[error("not a Usage item: {0}")]
    NotUsage(String),
    /// The image has Usage keys but its counters do not read: a damaged
    /// Usage item, an error to report rather than another table's item.
    #[error("an unreadable Usage item: {0}")]
    Unreadable(String),
}

impl UsageItem {
    /// Reads a stream record's image, given its string and number
    /// attributes (the rest, such as markers, holds no counter), as
    /// [`UsageItem::parse_all`] reads an item; so a function decoding stream
    /// records needs no SDK type.
    pub fn parse_image(
        attributes: impl IntoIterator<Item = (String, Scalar)>,
    ) -> Result<Vec<UsageItem>, ImageError> {
        let item: Item = attributes
            .into_iter()
            .map(|(name, value)| match value {
                Scalar::S(v) => (name, AttributeValue::S(v)),
                Scalar::N(v) => (name, AttributeValue::N(v)),
            })
            .collect();
        UsageItem::parse_all(&item).map_err(|e| match (get_s(&item, "pk"), get_s(&item, "sk")) {
            (Some(pk), Some(sk)) if ItemKeys::parse(pk, sk).is_ok() => {
                ImageError::Unreadable(e.to_string())
            }
            _ => ImageError::NotUsage(e.to_string()),
        })
    }
}

/// A stored counter's value: the rule of [`tollgate_core::ceiling::read_counter`]
/// (one past `u64::MAX` reads at the ceiling instead of breaking its item).
fn counter_value(text: &str) -> Option<u64> {
    tollgate_core::ceiling::read_counter(text)
}

/// A counter's value per region from the cells of `items` (as
/// [`UsageStore::items_holding`] reads them): the sum of its cells in every
/// part of a bucket, saturating at `u64::MAX` (`max` counters: the largest).
///
/// [`UsageStore::items_holding`]: super::UsageStore::items_holding
pub fn sum_by_region(items: &[UsageItem], counter: &CounterKey) -> BTreeMap<Region, u64> {
    let mut regions: BTreeMap<Region, u64> = BTreeMap::new();
    for item in items.iter().filter(|c| c.key.counter == *counter) {
        let value = regions.entry(item.key.region.clone()).or_insert(0);
        *value = match item.aggregation {
            Aggregation::Max => (*value).max(item.value),
            Aggregation::Count | Aggregation::Sum => value.saturating_add(item.value),
        };
    }
    regions
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::attr::{n, s};

    #[test]
    fn an_item_reads_as_its_counters() {
        let item: Item = [
            ("pk", s("requests#key:a")),
            ("sk", s("month#2026-11#local-a")),
            ("n", n(9u64)),
            ("d02", n(4u64)),
            ("d21", n(5u64)),
            ("agg", s("count")),
            ("w:0123456789ab", s("x")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let counters: Vec<(String, u64)> = UsageItem::parse_all(&item)
            .unwrap()
            .into_iter()
            .map(|c| (c.key.label(), c.value))
            .collect();
        assert_eq!(
            counters,
            [
                ("month#2026-11#local-a".to_owned(), 9),
                ("day#2026-11-02#local-a".to_owned(), 4),
                ("day#2026-11-21#local-a".to_owned(), 5),
            ]
        );
        // A copy of a peer's day can arrive before its month: no `n` yet.
        let mut day_only = item.clone();
        day_only.remove("n");
        assert_eq!(UsageItem::parse_all(&day_only).unwrap().len(), 2);
        // No counter at all, a day 31 of November, a counter that is no number: errors.
        let mut empty = day_only.clone();
        empty.remove("d02");
        empty.remove("d21");
        assert!(UsageItem::parse_all(&empty).is_err());
        let mut bad = item.clone();
        bad.insert("d31".into(), n(1u64));
        assert!(UsageItem::parse_all(&bad).is_err());
        let mut bad = item.clone();
        bad.insert("d03".into(), s("three"));
        assert!(UsageItem::parse_all(&bad).is_err());
        for (stored, read) in [
            ("-1", None),
            ("1.5", None),
            ("18446744073709551616", Some(u64::MAX)),
        ] {
            let mut big = item.clone();
            big.insert("n".into(), AttributeValue::N(stored.into()));
            let got = UsageItem::parse_all(&big).ok().map(|c| c[0].value);
            assert_eq!(got, read, "{stored}");
        }
    }
}
