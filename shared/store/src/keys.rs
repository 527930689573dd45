//! The Keys table: API keys (by digest), customers' key lists, plans,
//! meters and blocks. Layout (`pk` / `sk`):
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | API key (one per secret) | `apikey#<sha256 hex>` | `apikey` | `key_id`, `customer`, `plan`, `status`, `expires_at`?, `created_at`; a rolled-away secret also `valid_until`, `ttl` |
//! | customer's key | `customer#<customer>` | `key#<key_id>` | `digest` (the current secret's), `graced`? (digest → grace end), `plan`, `status`, `created_at` |
//! | key's plan by key id | `keyid#<key_id>` | `keyid` | `plan`, `customer` (for quota-sync, which sees only `key:<key_id>`) |
//! | plan | `plan` | `<name>` | `doc` (the plan as JSON) |
//! | meter | `meter` | `<name>` | `doc` (the meter definition as JSON) |
//! | blocks of an identity | `block#<identity>` | `block` | one `blk:<meter>#<period>` map `{limit, used}` per reached limit; `ttl` |
//!
//! The key id is derived from the digest of the key's first secret, so the
//! authorizer reads the key item and the key's block item in one
//! `BatchGetItem`. A secret issued by a roll ([`crate::rotation`]) has a
//! digest of its own but the same `key_id`; its blocks are read by that id.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use tollgate_core::{
    Block, Identity, KeyDigest, KeyRecord, KeyStatus, MeterDef, MeterName, Period, Plan, UnixMillis,
};

use crate::attr::{get_i64, get_s, get_u64, n, s, Item};
use crate::StoreError;

const BLOCK_PREFIX: &str = "blk:";

/// How many times a lookup asks again for keys DynamoDB left unprocessed.
pub const UNPROCESSED_RETRIES: u32 = 3;
/// The first pause before asking again; it doubles each time (10, 20, 40 ms).
pub const UNPROCESSED_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// The partition key of an API key item.
pub fn key_pk(digest: &KeyDigest) -> String {
    format!("apikey#{}", digest.0)
}

/// The partition key of the item that gives a key id's plan.
pub fn key_id_pk(key_id: &str) -> String {
    format!("keyid#{key_id}")
}

/// The partition key of an identity's block item.
pub fn block_pk(identity: &Identity) -> String {
    format!("block#{identity}")
}

/// Reads an API key item.
pub fn parse_key(item: &Item) -> Result<KeyRecord, StoreError> {
    let get = |name| {
        get_s(item, name)
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Malformed {
                table: "Keys",
                message: format!("key item without {name}"),
            })
    };
    Ok(KeyRecord {
        key_id: get("key_id")?,
        customer: get("customer")?,
        plan: get("plan")?,
        status: match get_s(item, "status") {
            Some("revoked") => KeyStatus::Revoked,
            _ => KeyStatus::Active,
        },
        expires_at: get_i64(item, "expires_at"),
        valid_until: get_i64(item, "valid_until"),
    })
}

/// The attribute of a block item that holds `block`, and its value.
pub(crate) fn block_attribute(block: &Block) -> (String, AttributeValue) {
    let name = format!("{BLOCK_PREFIX}{}#{}", block.meter, block.period);
    let value = AttributeValue::M(HashMap::from([
        ("limit".to_owned(), n(block.limit)),
        ("used".to_owned(), n(block.used)),
    ]));
    (name, value)
}

/// Reads the blocks of a block item (entries that do not parse are skipped).
pub fn parse_blocks(item: &Item) -> Vec<Block> {
    item.iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(BLOCK_PREFIX)?;
            let (meter, period) = rest.split_once('#')?;
            let map = value.as_m().ok()?;
            Some(Block {
                meter: MeterName::new(meter).ok()?,
                period: period.parse::<Period>().ok()?,
                limit: get_u64(map, "limit")?,
                used: get_u64(map, "used")?,
            })
        })
        .collect()
}

/// Adapter for the Keys table.
#[derive(Debug, Clone)]
pub struct KeysStore {
    client: Client,
    table: String,
}

impl KeysStore {
    /// A store over the Keys table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        KeysStore {
            client,
            table: table.into(),
        }
    }

    /// The client it reads and writes with (this region's).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Reads, in one `BatchGetItem`, the key item of `digest` (if given) and
    /// the block items of `identities`. Returns the key record (if found)
    /// and every block of those identities (see [`KeysStore::lookup_each`]).
    pub async fn lookup(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> Result<(Option<KeyRecord>, Vec<Block>), StoreError> {
        let (record, blocks) = self.lookup_each(digest, identities).await?;
        Ok((record, blocks.into_iter().flatten().collect()))
    }

    /// Reads, in one request (a `GetItem` for one item, else one
    /// `BatchGetItem`), the key item of `digest` (if given) and the block
    /// items of `identities`. Returns the key record (if found) and each
    /// identity's blocks, in the order of `identities`.
    ///
    /// Keys DynamoDB leaves unprocessed (throttling) are asked again
    /// [`UNPROCESSED_RETRIES`] times, backing off from
    /// [`UNPROCESSED_BACKOFF`] and doubling; still unprocessed after that,
    /// the lookup fails with [`StoreError::Unprocessed`]. An unprocessed key
    /// is never taken for an absent item: an absent block would allow, an
    /// absent key would deny a valid key.
    pub async fn lookup_each(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> Result<(Option<KeyRecord>, Vec<Vec<Block>>), StoreError> {
        let mut keys: Vec<HashMap<String, AttributeValue>> = Vec::new();
        if let Some(d) = digest {
            keys.push(HashMap::from([
                ("pk".into(), s(key_pk(d))),
                ("sk".into(), s("apikey")),
            ]));
        }
        let block_pks: Vec<String> = identities.iter().map(block_pk).collect();
        for pk in &block_pks {
            keys.push(HashMap::from([
                ("pk".into(), s(pk)),
                ("sk".into(), s("block")),
            ]));
        }
        let mut items: Vec<Item> = Vec::new();
        if keys.len() == 1 {
            // One item: a plain GetItem is the cheaper call.
            let mut req = self.client.get_item().table_name(&self.table);
            for (k, v) in keys.remove(0) {
                req = req.key(k, v);
            }
            let out = req
                .send()
                .await
                .map_err(|e| StoreError::dynamo("GetItem", e))?;
            items.extend(out.item);
        } else if !keys.is_empty() {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
            let mut retries = 0;
            loop {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
                if let Some(mut responses) = out.responses {
                    items.extend(responses.remove(&self.table).unwrap_or_default());
                }
                let rest = match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => rest,
                    _ => break,
                };
                if retries == UNPROCESSED_RETRIES {
                    return Err(StoreError::Unprocessed {
                        operation: "BatchGetItem",
                        keys: rest.keys().len(),
                        attempts: retries + 1,
                    });
                }
                tokio::time::sleep(UNPROCESSED_BACKOFF * 2u32.pow(retries)).await;
                retries += 1;
                request = rest;
            }
        }
        let mut record = None;
        let mut blocks = vec![Vec::new(); identities.len()];
        for item in &items {
            match get_s(item, "sk") {
                Some("apikey") => record = Some(parse_key(item)?),
                Some("block") => {
                    let pk = get_s(item, "pk").unwrap_or("");
                    if let Some(i) = block_pks.iter().position(|p| p == pk) {
                        blocks[i].extend(parse_blocks(item));
                    }
                }
                _ => {}
            }
        }
        Ok((record, blocks))
    }

    /// Stores a new API key (its digest only) and the customer's index item, atomically.
    pub async fn create_key(
        &self,
        digest: &KeyDigest,
        record: &KeyRecord,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut key_item = Put::builder()
            .table_name(&self.table)
            .item("pk", s(key_pk(digest)))
            .item("sk", s("apikey"))
            .item("key_id", s(&record.key_id))
            .item("customer", s(&record.customer))
            .item("plan", s(&record.plan))
            .item("status", s("active"))
            .item("created_at", n(now))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(exp) = record.expires_at {
            key_item = key_item.item("expires_at", n(exp));
        }
        let index_item = Put::builder()
            .table_name(&self.table)
            .item("pk", s(format!("customer#{}", record.customer)))
            .item("sk", s(format!("key#{}", record.key_id)))
            .item("digest", s(&digest.0))
            .item("plan", s(&record.plan))
            .item("status", s("active"))
            .item("created_at", n(now));
        let plan_item = Put::builder()
            .table_name(&self.table)
            .item("pk", s(key_id_pk(&record.key_id)))
            .item("sk", s("keyid"))
            .item("plan", s(&record.plan))
            .item("customer", s(&record.customer));
        let build = |p: aws_sdk_dynamodb::types::builders::PutBuilder| {
            p.build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| StoreError::dynamo("TransactWriteItems", e))
        };
        self.client
            .transact_write_items()
            .transact_items(build(key_item)?)
            .transact_items(build(index_item)?)
            .transact_items(build(plan_item)?)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("TransactWriteItems", e))?;
        Ok(())
    }

    /// The plan of a key, by key id (`None`: no such key). One GetItem.
    pub async fn plan_of_key(&self, key_id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key_id_pk(key_id)))
            .key("sk", s("keyid"))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out
            .item
            .as_ref()
            .and_then(|i| get_s(i, "plan"))
            .map(str::to_owned))
    }

    /// The customer of each key id that has one (`keyid#` items), by
    /// BatchGetItem: one request per 100 key ids (more while DynamoDB
    /// leaves keys unprocessed). For billing exports.
    pub async fn customers_of_keys(
        &self,
        key_ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut owners = HashMap::new();
        for chunk in key_ids.chunks(100) {
            let keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|id| {
                    HashMap::from([("pk".into(), s(key_id_pk(id))), ("sk".into(), s("keyid"))])
                })
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
            for attempt in 0.. {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let id = get_s(&item, "pk").and_then(|pk| pk.strip_prefix("keyid#"));
                    if let (Some(id), Some(customer)) = (id, get_s(&item, "customer")) {
                        owners.insert(id.to_owned(), customer.to_owned());
                    }
                }
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        if attempt >= 8 {
                            return Err(StoreError::Dynamo {
                                operation: "BatchGetItem",
                                message: "keys left unprocessed 8 times in a row".into(),
                            });
                        }
                        request = rest;
                    }
                    _ => break,
                }
            }
        }
        Ok(owners)
    }

    /// The keys of a customer: `(key_id, digest, plan, status)`.
    pub async fn list_keys(
        &self,
        customer: &str,
    ) -> Result<Vec<(String, String, String, String)>, StoreError> {
        let items = self.query_all(&format!("customer#{customer}")).await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                Some((
                    get_s(i, "sk")?.strip_prefix("key#")?.to_owned(),
                    get_s(i, "digest")?.to_owned(),
                    get_s(i, "plan")?.to_owned(),
                    get_s(i, "status")?.to_owned(),
                ))
            })
            .collect())
    }

    /// Creates or replaces a plan (after validating it).
    pub async fn put_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        plan.validate()?;
        self.put_doc("plan", &plan.name, plan).await
    }

    /// Every plan.
    pub async fn list_plans(&self) -> Result<Vec<Plan>, StoreError> {
        self.list_docs("plan").await
    }

    /// Creates or replaces a meter definition.
    pub async fn put_meter(&self, meter: &MeterDef) -> Result<(), StoreError> {
        self.put_doc("meter", meter.name.as_str(), meter).await
    }

    /// Every meter definition.
    pub async fn list_meters(&self) -> Result<Vec<MeterDef>, StoreError> {
        self.list_docs("meter").await
    }

    /// Records that `identity` reached `block.limit` in `block.period`.
    /// Idempotent; the item's TTL only ever moves later, to the end of the
    /// latest blocked period.
    pub async fn put_block(&self, identity: &Identity, block: &Block) -> Result<(), StoreError> {
        let (attr, value) = block_attribute(block);
        let ttl = block.period.end() / 1000;
        let base = || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(block_pk(identity)))
                .key("sk", s("block"))
                .expression_attribute_names("#b", &attr)
                .expression_attribute_values(":b", value.clone())
        };
        let with_ttl = base()
            .update_expression("SET #b = :b, #t = :t")
            .condition_expression("attribute_not_exists(#t) OR #t <= :t")
            .expression_attribute_names("#t", "ttl")
            .expression_attribute_values(":t", n(ttl))
            .send()
            .await;
        match with_ttl {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                // A later period is blocked already: keep its TTL.
                base()
                    .update_expression("SET #b = :b")
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
                Ok(())
            }
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Removes one block of `identity` (the limit of `meter` in `period`),
    /// keeping its others. Removing a block that is not there is not an error.
    pub async fn remove_block(
        &self,
        identity: &Identity,
        meter: &MeterName,
        period: &Period,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(block_pk(identity)))
            .key("sk", s("block"))
            .update_expression("REMOVE #b")
            // Without the condition an update would create an empty item.
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#b", format!("{BLOCK_PREFIX}{meter}#{period}"))
            .send()
            .await;
        // No block item: nothing to remove.
        crate::conditional(result, "UpdateItem").map(|_| ())
    }

    /// Removes every block of `identity` (for example after a plan upgrade).
    pub async fn clear_blocks(&self, identity: &Identity) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(block_pk(identity)))
            .key("sk", s("block"))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(())
    }

    /// Every identity with blocks and its blocks (a Scan: for operators, never the hot path).
    pub async fn list_blocks(&self) -> Result<Vec<(Identity, Vec<Block>)>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :b")
                .expression_attribute_values(":b", s("block"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Scan", e))?;
            for item in page.items() {
                if let Some(id) = get_s(item, "pk")
                    .and_then(|pk| pk.strip_prefix("block#"))
                    .and_then(|i| i.parse().ok())
                {
                    out.push((id, parse_blocks(item)));
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    async fn put_doc<T: serde::Serialize>(
        &self,
        pk: &str,
        sk: &str,
        doc: &T,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(doc).map_err(|e| StoreError::Malformed {
            table: "Keys",
            message: e.to_string(),
        })?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("doc", s(json))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    async fn list_docs<T: serde::de::DeserializeOwned>(
        &self,
        pk: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.query_all(pk)
            .await?
            .iter()
            .map(|item| {
                let doc = get_s(item, "doc").unwrap_or("");
                serde_json::from_str(doc).map_err(|e| StoreError::Malformed {
                    table: "Keys",
                    message: format!("{pk} {}: {e}", get_s(item, "sk").unwrap_or("?")),
                })
            })
            .collect()
    }

    async fn query_all(&self, pk: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}
