//! The Usage table's adapter, [`UsageStore`], and its writes: raising
//! `max` counters and replicas, the watermark-fenced increment of ordered
//! sources, and the `shared` marker. Its reads are in `usage::read`.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use tollgate_core::{Aggregation, Position, UnixMillis, UsageKey};

use super::adds::{check_write_size, Addition, ItemAdds};
use super::item::UsageItem;
use super::layout::{top_key, ttl_for, SHARED};
use crate::attr::{get_s, n, s};
use crate::{conditional, StoreError};

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
    pub(super) client: Client,
    pub(super) table: String,
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
    /// (see [`TOP_INDEX_VAR`](super::TOP_INDEX_VAR); off unless turned on).
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
}
