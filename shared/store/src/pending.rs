//! Copies to a peer region that failed, kept in this region's Keys table
//! until they succeed, so that a peer that is down never holds this
//! region's Usage stream.
//!
//! quota-sync copies a counter to a peer with a conditional write that only
//! raises the stored value. When the peer cannot be reached, the copy is kept
//! here instead of failing the stream record: item `pk = pending#<peer>`,
//! `sk = <meter>#<identity>#<period>#<region>`, holding the highest value
//! that failed. quota-sync retries a peer's pending copies on a path of its
//! own (each invocation once the peer's back-off has passed, and on the
//! scheduled retry event), and deletes a copy once the peer has it. Because
//! copies only ever raise a value, sending an older value late changes
//! nothing, and the newest value always wins.
//!
//! A pending copy expires (TTL) 35 days after its period ends: by then no
//! block depends on it.

use aws_sdk_dynamodb::Client;
use tollgate_core::{Aggregation, CounterKey, Identity, MeterName, Period, Region, UsageKey};

use crate::attr::{get_i64, get_s, get_u64, n, s, Item};
use crate::usage::UsageItem;
use crate::{conditional, KeysStore, StoreError};

/// How long after its period's end a pending copy is kept (35 days).
const KEEP_AFTER_PERIOD_MS: i64 = 35 * 86_400_000;

/// The pending copies of this region's counters to its peers.
#[derive(Debug, Clone)]
pub struct PendingCopies {
    client: Client,
    table: String,
}

impl PendingCopies {
    /// Pending copies in `table` (this region's Keys table).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        PendingCopies {
            client,
            table: table.into(),
        }
    }

    /// Pending copies in the Keys table of `keys` (on its client), so a
    /// handler that holds the Keys store needs no client of its own.
    pub fn in_keys_table(keys: &KeysStore) -> Self {
        PendingCopies::new(keys.client().clone(), keys.table())
    }

    /// The partition of `peer`'s pending copies.
    pub fn partition(peer: &Region) -> String {
        format!("pending#{peer}")
    }

    /// Keeps `item` for `peer`, unless a copy of at least its value is kept
    /// already. One conditional `PutItem`.
    pub async fn keep(&self, peer: &Region, item: &UsageItem) -> Result<(), StoreError> {
        let counter = &item.key.counter;
        let ttl = counter.period.end() / 1000 + KEEP_AFTER_PERIOD_MS / 1000;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(Self::partition(peer)))
            .item("sk", s(sort_key(&item.key)))
            .item("meter", s(counter.meter.as_str()))
            .item("identity", s(counter.identity.to_string()))
            .item("period", s(counter.period.to_string()))
            .item("region", s(item.key.region.as_str()))
            .item("agg", s(item.aggregation.to_string()))
            .item("v", n(item.value))
            .item("updated_at", n(item.updated_at))
            .item("ttl", n(ttl))
            .condition_expression("attribute_not_exists(v) OR v < :v")
            .expression_attribute_values(":v", n(item.value))
            .send()
            .await;
        // A copy of at least this value is kept already.
        conditional(result, "PutItem").map(|_| ())
    }

    /// Up to `limit` of `peer`'s pending copies (one consistent Query page).
    pub async fn list(&self, peer: &Region, limit: i32) -> Result<Vec<UsageItem>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(Self::partition(peer)))
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        out.items().iter().map(parse).collect()
    }

    /// Forgets `item`'s pending copy for `peer` once the peer has it, unless
    /// a higher value was kept meanwhile. One conditional `DeleteItem`.
    pub async fn done(&self, peer: &Region, item: &UsageItem) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(Self::partition(peer)))
            .key("sk", s(sort_key(&item.key)))
            .condition_expression("v <= :v")
            .expression_attribute_values(":v", n(item.value))
            .send()
            .await;
        // A higher value was kept meanwhile: it stays.
        conditional(result, "DeleteItem").map(|_| ())
    }
}

fn sort_key(key: &UsageKey) -> String {
    format!("{}#{}", key.counter.name(), key.label())
}

fn parse(item: &Item) -> Result<UsageItem, StoreError> {
    let malformed = |what: &str| StoreError::Malformed {
        table: "Keys",
        message: format!("pending copy without a valid {what}"),
    };
    let text = |name: &str| get_s(item, name).ok_or_else(|| malformed(name));
    let meter = MeterName::new(text("meter")?).map_err(|_| malformed("meter"))?;
    let identity: Identity = text("identity")?
        .parse()
        .map_err(|_| malformed("identity"))?;
    let period: Period = text("period")?.parse().map_err(|_| malformed("period"))?;
    let region = Region::new(text("region")?).map_err(|_| malformed("region"))?;
    let aggregation: Aggregation = text("agg")?.parse().map_err(|_| malformed("agg"))?;
    Ok(UsageItem {
        key: CounterKey {
            meter,
            identity,
            period,
        }
        .into_region(&region),
        aggregation,
        value: get_u64(item, "v").ok_or_else(|| malformed("v"))?,
        updated_at: get_i64(item, "updated_at").ok_or_else(|| malformed("updated_at"))?,
    })
}
