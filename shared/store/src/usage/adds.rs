//! Building writes to the Usage table: increments grouped by the item that
//! holds their counter ([`ItemAdds`], [`Grouping`]), the update expression
//! that adds them (shared by the transaction's [`increment`] and the
//! watermark's fenced update), and the size checks every write passes.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use tollgate_core::bucket::{
    member_bytes, MAX_ADDS_PER_WRITE, PART_MEMBER_BYTES, RESERVED_ATTRIBUTE,
};
use tollgate_core::{Aggregation, Cell, ItemKey, UnixMillis, UsageKey};

use super::layout::{top_key, ttl_for};
use crate::attr::{n, s};
use crate::StoreError;

/// Amounts to add to counters that share one Usage item: one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemAdds {
    /// The key of one of the item's counters: its `pk` and `sk` name the item.
    pub item: UsageKey,
    /// The counters' aggregation (`count` or `sum`).
    pub aggregation: Aggregation,
    /// What to add where, one entry per counter.
    pub adds: Vec<(Cell, u64)>,
}

impl ItemAdds {
    /// Groups increments by the item that holds their counter (a day and its
    /// month, a bucket's identities, become one write), in key order,
    /// summing repeated counters.
    pub fn group<'a>(
        increments: impl IntoIterator<Item = (&'a UsageKey, Aggregation, u64)>,
    ) -> Vec<ItemAdds> {
        let mut grouping = Grouping::default();
        for (key, aggregation, amount) in increments {
            grouping.add(key, aggregation, amount);
        }
        grouping.into_items()
    }

    /// Whether the item is a part of an anonymous bucket.
    pub fn is_bucket(&self) -> bool {
        self.item.counter.identity.is_anonymous()
    }

    /// What a write of these adds reserves in its part (0 for an API key's
    /// item): see [`tollgate_core::bucket`].
    pub fn reserved(&self) -> u64 {
        self.adds
            .iter()
            .map(|(cell, _)| match cell {
                Cell::Member(identity) => member_bytes(identity),
                _ => 0,
            })
            .fold(0, u64::saturating_add)
    }
}

/// Increments grouped by the item that holds their counter, built one
/// increment at a time (each in constant time: no linear search of an
/// item's cells), for writers that extend a group chunk by chunk.
#[derive(Debug, Clone, Default)]
pub struct Grouping {
    items: BTreeMap<ItemKey, (ItemAdds, HashMap<Cell, usize>)>,
}

impl Grouping {
    /// Adds an increment; returns the item it lands in.
    pub fn add(&mut self, key: &UsageKey, aggregation: Aggregation, amount: u64) -> ItemKey {
        let item = key.item();
        let (entry, cells) = self.items.entry(item.clone()).or_insert_with(|| {
            let adds = ItemAdds {
                item: key.clone(),
                aggregation,
                adds: Vec::new(),
            };
            (adds, HashMap::new())
        });
        let cell = key.cell();
        match cells.get(&cell) {
            Some(&i) => entry.adds[i].1 = entry.adds[i].1.saturating_add(amount),
            None => {
                cells.insert(cell.clone(), entry.adds.len());
                entry.adds.push((cell, amount));
            }
        }
        item
    }

    /// The adds of one item, if any landed in it.
    pub fn get(&self, item: &ItemKey) -> Option<&ItemAdds> {
        self.items.get(item).map(|(adds, _)| adds)
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no increment was added.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items' adds, in key order.
    pub fn into_items(self) -> Vec<ItemAdds> {
        self.items.into_values().map(|(adds, _)| adds).collect()
    }
}

/// The update expression that adds amounts to counters of one item, with
/// its attribute names and values: shared by the transaction's
/// [`increment`] and the watermark's [`UsageStore::add_fenced`].
///
/// [`UsageStore::add_fenced`]: super::UsageStore::add_fenced
pub(super) struct Addition {
    pub(super) expression: String,
    pub(super) names: Vec<(String, std::borrow::Cow<'static, str>)>,
    pub(super) values: Vec<(String, AttributeValue)>,
    /// For a bucket's part: the condition that its reservations stay within
    /// [`PART_MEMBER_BYTES`] after this write.
    pub(super) condition: Option<&'static str>,
}

impl Addition {
    pub(super) fn new(adds: &ItemAdds, now: UnixMillis, top_index: bool) -> Self {
        let mut add = Addition {
            expression: String::from("ADD "),
            names: Vec::with_capacity(adds.adds.len() + 3),
            values: Vec::with_capacity(adds.adds.len() + 6),
            condition: None,
        };
        for (i, (cell, amount)) in adds.adds.iter().enumerate() {
            if i > 0 {
                add.expression.push_str(", ");
            }
            add.expression.push_str(&format!("#c{i} :a{i}"));
            add.names.push((format!("#c{i}"), cell.attribute()));
            add.values.push((format!(":a{i}"), n(*amount)));
        }
        if adds.is_bucket() {
            // Reserve room for every counter added (see tollgate_core::bucket),
            // only while the part's reservations stay within the bound.
            let reserved = adds.reserved();
            add.expression.push_str(", #m :m");
            add.names.push(("#m".into(), RESERVED_ATTRIBUTE.into()));
            add.values.push((":m".into(), n(reserved)));
            add.values.push((
                ":room".into(),
                n(PART_MEMBER_BYTES.saturating_sub(reserved)),
            ));
            add.condition = Some("(attribute_not_exists(#m) OR #m <= :room)");
        }
        add.expression
            .push_str(" SET agg = :agg, updated_at = :now");
        add.values
            .push((":agg".into(), s(adds.aggregation.to_string())));
        add.values.push((":now".into(), n(now)));
        if let Some(top) = top_key(&adds.item).filter(|_| top_index) {
            add.expression.push_str(", #top = :top");
            add.names.push(("#top".into(), "top".into()));
            add.values.push((":top".into(), s(top)));
        }
        if let Some(ttl) = ttl_for(&adds.item.counter) {
            add.expression.push_str(", #ttl = :ttl");
            add.names.push(("#ttl".into(), "ttl".into()));
            add.values.push((":ttl".into(), n(ttl)));
        }
        add
    }
}

/// The `Update` that adds amounts to count or sum counters of one item: for
/// a transaction with the batch's dedupe record. (A `max` counter is raised
/// with [`UsageStore::raise_max`] instead: it is idempotent by nature.)
/// With `top_index`, a month item also carries its top index key.
///
/// [`UsageStore::raise_max`]: super::UsageStore::raise_max
pub fn increment(
    table: &str,
    adds: &ItemAdds,
    now: UnixMillis,
    top_index: bool,
) -> Result<TransactWriteItem, StoreError> {
    check_write_size(adds)?;
    let add = Addition::new(adds, now, top_index);
    let mut update = Update::builder()
        .table_name(table)
        .key("pk", s(adds.item.pk()))
        .key("sk", s(adds.item.sk()))
        .set_condition_expression(add.condition.map(str::to_owned))
        .update_expression(add.expression);
    for (name, attribute) in add.names {
        update = update.expression_attribute_names(name, attribute);
    }
    for (name, value) in add.values {
        update = update.expression_attribute_values(name, value);
    }
    let update = update
        .build()
        .map_err(|e| StoreError::dynamo("TransactWriteItems", e))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Refuses a write that adds to more counters than one update expression
/// may name ([`MAX_ADDS_PER_WRITE`]), or that reserves more than a part holds.
pub(super) fn check_write_size(adds: &ItemAdds) -> Result<(), StoreError> {
    if adds.adds.len() > MAX_ADDS_PER_WRITE || adds.reserved() > PART_MEMBER_BYTES {
        return Err(StoreError::Malformed {
            table: "Usage",
            message: format!(
                "a write of {} adds {} counters ({} bytes); at most {MAX_ADDS_PER_WRITE} ({PART_MEMBER_BYTES} bytes) per write",
                adds.item.sk(),
                adds.adds.len(),
                adds.reserved()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::attr::Item;
    use crate::usage::UsageItem;

    fn key(identity: &str, period: &str) -> UsageKey {
        UsageKey::parse(
            &format!("requests#{identity}"),
            &format!("{period}#local-a"),
        )
        .unwrap()
    }

    #[test]
    fn a_day_and_its_month_are_one_write() {
        let keys = [
            key("key:a", "day#2026-11-21"),
            key("key:a", "day#2026-11-22"),
            key("key:a", "month#2026-11"),
            key("key:a", "hour#2026-11-21T10"),
            key("key:b", "day#2026-11-21"),
            key("key:a", "day#2026-11-21"),
        ];
        let amounts = [1, 2, 3, 4, 5, 6];
        let items = ItemAdds::group(
            keys.iter()
                .zip(amounts)
                .map(|(k, v)| (k, Aggregation::Count, v)),
        );
        type Row = (String, String, Vec<(Cell, u64)>);
        let got: Vec<Row> = items
            .iter()
            .map(|i| (i.item.pk(), i.item.sk(), i.adds.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "requests#key:a".to_owned(),
                    "hour#2026-11-21T10#local-a".to_owned(),
                    vec![(Cell::Own, 4)]
                ),
                (
                    "requests#key:a".to_owned(),
                    "month#2026-11#local-a".to_owned(),
                    vec![(Cell::Day(21), 1 + 6), (Cell::Day(22), 2), (Cell::Own, 3)]
                ),
                (
                    "requests#key:b".to_owned(),
                    "month#2026-11#local-a".to_owned(),
                    vec![(Cell::Day(21), 5)]
                ),
            ]
        );
        let add = Addition::new(&items[1], 0, false);
        assert_eq!(
            add.expression,
            "ADD #c0 :a0, #c1 :a1, #c2 :a2 SET agg = :agg, updated_at = :now"
        );
        let names: Vec<&str> = add.names.iter().map(|(_, a)| a.as_ref()).collect();
        assert_eq!(names, ["d21", "d22", "n"]);
    }

    /// Two IPs that share a bucket (found, not assumed).
    fn neighbours() -> (String, String) {
        let ips: Vec<String> = (0..2000)
            .map(|i| format!("ip:10.0.{}.{}", i / 256, i % 256))
            .collect();
        let bucket = |ip: &String| tollgate_core::usage_key::bucket_of(&ip.parse().unwrap());
        for (i, a) in ips.iter().enumerate() {
            if let Some(b) = ips[i + 1..].iter().find(|b| bucket(b) == bucket(a)) {
                return (a.clone(), b.clone());
            }
        }
        panic!("no two IPs share a bucket");
    }

    #[test]
    fn a_buckets_identities_are_one_write_and_read_back() {
        let (a, b) = neighbours();
        let keys = [
            key(&a, "day#2026-11-21"),
            key(&b, "day#2026-11-21"),
            key(&a, "day#2026-11-21"),
            key(&a, "month#2026-11"),
        ];
        let items = ItemAdds::group(
            keys.iter()
                .zip([1, 2, 3, 4])
                .map(|(k, v)| (k, Aggregation::Count, v)),
        );
        assert_eq!(items.len(), 2, "the day bucket and the month bucket");
        let day = items
            .iter()
            .find(|i| i.item.sk().starts_with("day#"))
            .unwrap();
        let cell = |ip: &str| Cell::Member(ip.parse().unwrap());
        assert_eq!(day.adds, vec![(cell(&a), 1 + 3), (cell(&b), 2)]);
        let add = Addition::new(day, 0, true);
        let names: Vec<&str> = add.names.iter().map(|(_, n)| n.as_ref()).collect();
        // No top key on a bucket; its reservations `m`, conditioned on room.
        assert_eq!(names, [a.as_str(), b.as_str(), "m"]);
        let reserved = day.reserved();
        assert_eq!(reserved, (a.len() + 21 + b.len() + 21) as u64);
        let value = |name: &str| {
            add.values
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(value(":m"), Some(n(reserved)));
        assert_eq!(value(":room"), Some(n(PART_MEMBER_BYTES - reserved)));
        assert_eq!(
            add.condition,
            Some("(attribute_not_exists(#m) OR #m <= :room)")
        );
        assert!(check_write_size(day).is_ok());
        let too_many = ItemAdds {
            adds: (0..=MAX_ADDS_PER_WRITE)
                .map(|i| {
                    (
                        Cell::Member(format!("ip:10.1.{}.{}", i / 256, i % 256).parse().unwrap()),
                        1,
                    )
                })
                .collect(),
            ..day.clone()
        };
        assert!(check_write_size(&too_many).is_err());

        let mut item: Item = [
            ("pk", s(day.item.pk())),
            ("sk", s(day.item.sk())),
            ("agg", s("count")),
            ("w:0123456789ab", s("x")),
            ("shared", AttributeValue::Bool(true)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        item.insert(b.clone(), n(2u64));
        item.insert(a.clone(), n(4u64));
        let mut expected = vec![
            (key(&a, "day#2026-11-21"), 4),
            (key(&b, "day#2026-11-21"), 2),
        ];
        expected.sort();
        let got: Vec<(UsageKey, u64)> = UsageItem::parse_all(&item)
            .unwrap()
            .into_iter()
            .map(|c| (c.key, c.value))
            .collect();
        assert_eq!(got, expected);
        // An identity of another bucket in it, or a counter that is no number: errors.
        let stranger = (0..100)
            .map(|i| format!("ip:10.9.0.{i}"))
            .find(|ip| key(ip, "day#2026-11-21").pk() != day.item.pk())
            .unwrap();
        let mut bad = item.clone();
        bad.insert(stranger, n(1u64));
        assert!(UsageItem::parse_all(&bad).is_err());
        let mut bad = item.clone();
        bad.insert(a.clone(), s("four"));
        assert!(UsageItem::parse_all(&bad).is_err());
        item.remove(&a);
        item.remove(&b);
        assert!(UsageItem::parse_all(&item).is_err(), "no counter");
    }
}
