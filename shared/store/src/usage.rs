//! The Usage table: one item per meter, identity, period and region, and
//! for anonymous identities one per meter, bucket, period and region.
//! Attributes: `pk`, `sk` (see [`tollgate_core::UsageKey`]), `n` (the
//! item's own counter), for a month item `d01`..`d31` (its days' counters),
//! for a bucket item one counter per anonymous identity (see
//! [`tollgate_core::Cell`]), `agg`, `updated_at` (epoch ms) and, for
//! minute and hour windows, `ttl` (epoch seconds). Everything else is in
//! the keys.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use crate::conditional;
use tollgate_core::bucket::{
    member_bytes, OpenPart, MAX_ADDS_PER_WRITE, PART_MEMBER_BYTES, RESERVED_ATTRIBUTE,
};
use tollgate_core::usage_key::item_period;
use tollgate_core::{
    Aggregation, Cell, CounterKey, Identity, ItemKey, ItemKeys, MeterName, Period, Position,
    Region, UnixMillis, UsageKey, Window,
};

use crate::attr::{get_i64, get_s, get_u64, n, s, Item};
use crate::StoreError;

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
/// default) in every function that writes Usage items.
///
/// Off by default because of its price: every write that changes an
/// indexed counter also rewrites its index entry (two more write units, as
/// the index is sorted by the counter), which triples the cost of a month
/// counter's update. On, `GET /v1/usage/top` ranks identities.
pub const TOP_INDEX_VAR: &str = "TOLLGATE_TOP_INDEX";

/// Reads [`TOP_INDEX_VAR`]'s value: `true` or `false` (unset: `false`).
pub fn parse_top_index(value: Option<&str>) -> Result<bool, String> {
    match value.map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(format!("{other:?}: expected true or false")),
    }
}

/// The top index partition of one meter, period and region.
pub fn top_partition(meter: &MeterName, period: &Period, region: &Region) -> String {
    format!("{meter}#{period}#{region}")
}

/// The attribute (`true`) on a region's own counter item once a peer
/// region has copied its item of the same counter here: see
/// [`UsageStore::mark_shared`].
pub const SHARED: &str = "shared";

/// One region's counter, as read from an item or a stream image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageItem {
    pub key: UsageKey,
    pub aggregation: Aggregation,
    pub value: u64,
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

/// A stored counter's value: a whole, non-negative number; one past
/// `u64::MAX` (DynamoDB holds up to 38 digits) reads as `u64::MAX`, so an
/// overflowing counter still reads, at its ceiling, instead of becoming
/// unreadable.
fn counter_value(text: &str) -> Option<u64> {
    if let Ok(v) = text.parse::<u64>() {
        return Some(v);
    }
    let digits = text.trim_start_matches('+');
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(u64::MAX)
}

/// A counter's value per region from the cells of `items` (as
/// [`UsageStore::items_holding`] reads them): the sum of its cells in every
/// part of a bucket, saturating at `u64::MAX` (`max` counters: the largest).
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
struct Addition {
    expression: String,
    names: Vec<(String, std::borrow::Cow<'static, str>)>,
    values: Vec<(String, AttributeValue)>,
    /// For a bucket's part: the condition that its reservations stay within
    /// [`PART_MEMBER_BYTES`] after this write.
    condition: Option<&'static str>,
}

impl Addition {
    fn new(adds: &ItemAdds, now: UnixMillis, top_index: bool) -> Self {
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
fn check_write_size(adds: &ItemAdds) -> Result<(), StoreError> {
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

/// Which watermark an increment is fenced by, and where it must stand.
#[derive(Debug, Clone, Copy)]
pub struct Fence<'a> {
    /// The item attribute holding the source's watermark (one per shard).
    pub attribute: &'a str,
    /// The condition on the stored watermark.
    pub expect: Expect<'a>,
    /// The watermark after the increment: the batch's last record.
    pub to: &'a Position,
}

/// The condition on a stored watermark.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// Absent, or below the batch's first record: nothing of it counted yet.
    Below(&'a Position),
    /// Exactly this value (the retry of a partly counted batch), or absent if `None`.
    Exactly(Option<&'a Position>),
}

/// What a fenced increment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fenced {
    /// Added, and the watermark moved.
    Applied,
    /// Refused: the watermark stands at `watermark` (read from the failed
    /// condition, no extra request).
    Refused { watermark: Option<Position> },
}

/// Adapter for the Usage table of one region.
#[derive(Debug, Clone)]
pub struct UsageStore {
    client: Client,
    table: String,
    top_index: bool,
}

impl UsageStore {
    /// A store over the Usage table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        UsageStore {
            client,
            table: table.into(),
            top_index: false,
        }
    }

    /// The same store, writing the top index key on month counters or not
    /// (see [`TOP_INDEX_VAR`]; off unless turned on).
    pub fn with_top_index(mut self, on: bool) -> Self {
        self.top_index = on;
        self
    }

    /// Whether this store writes the top index key.
    pub fn top_index(&self) -> bool {
        self.top_index
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// An `UpdateItem` of the item holding `key`, with the clauses that keep
    /// its `ttl` and (with `top` and the index on) its `top` key current
    /// appended to the update expression `expr`, which must end in a `SET`
    /// clause.
    fn update_of(&self, key: &UsageKey, expr: &mut String, top: bool) -> UpdateItemFluentBuilder {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key.pk()))
            .key("sk", s(key.sk()));
        if let Some(ttl) = ttl_for(&key.counter) {
            expr.push_str(", #ttl = :ttl");
            req = req
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":ttl", n(ttl));
        }
        if let Some(top) = top_key(key).filter(|_| top && self.top_index) {
            expr.push_str(", #top = :top");
            req = req
                .expression_attribute_names("#top", "top")
                .expression_attribute_values(":top", s(top));
        }
        req
    }

    /// Raises a `max` counter to `value` if it is lower (one conditional
    /// update; a failed condition means it is already at least `value`).
    pub async fn raise_max(
        &self,
        key: &UsageKey,
        value: u64,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.raise_cell(key, value, Aggregation::Max, now).await
    }

    /// Sets a counter's cell to `value` if the cell is absent or lower, in
    /// one conditional `UpdateItem` that leaves the item's other cells alone:
    /// what raising a `max` counter and writing a replica have in common.
    /// Returns whether it was written.
    async fn raise_cell(
        &self,
        key: &UsageKey,
        value: u64,
        aggregation: Aggregation,
        updated_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut expr = "SET #c = :v, agg = :agg, updated_at = :now".to_owned();
        let result = self
            .update_of(key, &mut expr, true)
            .update_expression(expr)
            .condition_expression("attribute_not_exists(#c) OR #c < :v")
            .expression_attribute_names("#c", key.cell().attribute())
            .expression_attribute_values(":v", n(value))
            .expression_attribute_values(":agg", s(aggregation.to_string()))
            .expression_attribute_values(":now", n(updated_at))
            .send()
            .await;
        conditional(result, "UpdateItem")
    }

    /// Adds amounts to counters of one item and moves the item's watermark,
    /// in one conditional `UpdateItem` (one write unit for a small item):
    /// exactly once for an ordered source without a dedupe record (see
    /// [`tollgate_core::watermark`]). A refusal returns the stored watermark.
    pub async fn add_fenced(
        &self,
        adds: &ItemAdds,
        fence: Fence<'_>,
        now: UnixMillis,
    ) -> Result<Fenced, StoreError> {
        let key = &adds.item;
        check_write_size(adds)?;
        let add = Addition::new(adds, now, self.top_index);
        let room = add
            .condition
            .map(|c| format!(" AND {c}"))
            .unwrap_or_default();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key.pk()))
            .key("sk", s(key.sk()))
            .update_expression(format!("{}, #w = :to", add.expression))
            .expression_attribute_names("#w", fence.attribute)
            .expression_attribute_values(":to", s(fence.to.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        req = match fence.expect {
            Expect::Below(first) => req
                .condition_expression(format!("(attribute_not_exists(#w) OR #w < :first){room}"))
                .expression_attribute_values(":first", s(first.as_str())),
            Expect::Exactly(Some(at)) => req
                .condition_expression(format!("#w = :at{room}"))
                .expression_attribute_values(":at", s(at.as_str())),
            Expect::Exactly(None) => {
                req.condition_expression(format!("attribute_not_exists(#w){room}"))
            }
        };
        for (name, attribute) in add.names {
            req = req.expression_attribute_names(name, attribute);
        }
        for (name, value) in add.values {
            req = req.expression_attribute_values(name, value);
        }
        match req.send().await {
            Ok(_) => Ok(Fenced::Applied),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    let watermark = match failed.item() {
                        Some(item) => get_s(item, fence.attribute).map(str::to_owned),
                        // Not every DynamoDB (DynamoDB Local, for one) returns
                        // the item of a failed update: read it then.
                        None => self.read_watermark(key, fence.attribute).await?,
                    };
                    let watermark = watermark.as_deref().map(Position::parse).transpose()?;
                    Ok(Fenced::Refused { watermark })
                }
                _ => Err(StoreError::dynamo("UpdateItem", e)),
            },
        }
    }

    /// Marks this region's item of a counter as shared: a peer has copied
    /// its own item of the counter here, so quota-sync copies every change
    /// of this region's item too from now on (for a bucket item: of every
    /// identity in it). Creates the counter at 0 if it does not exist. One
    /// conditional `UpdateItem`; returns false if the item was marked before.
    pub async fn mark_shared(
        &self,
        key: &UsageKey,
        aggregation: Aggregation,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut expr = "ADD #c :zero SET #shared = :t, agg = if_not_exists(agg, :agg), updated_at = if_not_exists(updated_at, :now)".to_owned();
        let result = self
            .update_of(key, &mut expr, false)
            .update_expression(expr)
            .condition_expression("attribute_not_exists(#shared)")
            .expression_attribute_names("#c", key.cell().attribute())
            .expression_attribute_names("#shared", SHARED)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":agg", s(aggregation.to_string()))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        conditional(result, "UpdateItem")
    }

    /// A counter item's watermark attribute (strongly consistent read).
    async fn read_watermark(
        &self,
        key: &UsageKey,
        attribute: &str,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key.pk()))
            .key("sk", s(key.sk()))
            .consistent_read(true)
            .projection_expression("#w")
            .expression_attribute_names("#w", attribute)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out
            .item()
            .and_then(|item| get_s(item, attribute))
            .map(str::to_owned))
    }

    /// Writes a copy of another region's counter into its item here, only
    /// if it raises the stored value (or creates it): replayed or reordered
    /// copies change nothing. One conditional `UpdateItem`, which leaves the
    /// item's other counters alone. Returns whether the copy was written.
    pub async fn put_replica(&self, item: &UsageItem) -> Result<bool, StoreError> {
        self.raise_cell(&item.key, item.value, item.aggregation, item.updated_at)
            .await
    }

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
        start: Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
        limit: i32,
    ) -> Result<
        (
            Vec<UsageItem>,
            Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
        ),
        StoreError,
    > {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":a", s(from_sk))
            .expression_attribute_values(":b", s(to_sk))
            .set_exclusive_start_key(start)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let mut counters = Vec::with_capacity(out.items().len());
        for item in out.items() {
            counters.extend(UsageItem::parse_all(item)?);
        }
        Ok((counters, out.last_evaluated_key))
    }

    /// One page of the top index partition `top` (see [`top_key`]), largest
    /// counter first: `(usage key, value)` pairs and the key to go on from.
    /// The index is eventually consistent.
    pub async fn top_page(
        &self,
        top: &str,
        start: Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
        limit: i32,
    ) -> Result<
        (
            Vec<(UsageKey, u64)>,
            Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
        ),
        StoreError,
    > {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(crate::tables::USAGE_TOP_INDEX.name)
            .key_condition_expression("#top = :top")
            .expression_attribute_names("#top", "top")
            .expression_attribute_values(":top", s(top))
            .scan_index_forward(false)
            .set_exclusive_start_key(start)
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
        Ok((entries, out.last_evaluated_key))
    }

    /// Every counter of the given periods, in every region this table holds
    /// (a Scan: for operators, such as recomputing blocks, never a hot path).
    pub async fn scan_periods(
        &self,
        periods: &[tollgate_core::Period],
    ) -> Result<Vec<UsageItem>, StoreError> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
