//! Key rotation with grace and revocation in the Keys table (the rule is
//! [`tollgate_core::rotation`]'s; this is its storage).
//!
//! A key id has one *current* secret and, after rolls, secrets in grace.
//! The customer's index item (`customer#<customer>` / `key#<key_id>`) is
//! where they are listed: `digest` is the current secret's digest and
//! `graced` maps each replaced secret's digest to its grace end (epoch
//! ms). Each secret has its own key item (`apikey#<digest>`) with the key's
//! `key_id`, `customer` and `plan`, so whichever secret is presented the
//! authorizer finds the same key; a replaced secret's item also carries
//! `valid_until` (the grace end, which [`tollgate_core::decide`] honours)
//! and a `ttl` [`tollgate_core::rotation::CLEANUP_AFTER`] later, for
//! clean-up only.
//!
//! A roll is one `TransactWriteItems` whose conditions make it safe under
//! races and retries: the current secret's item must still be active and
//! current (no `valid_until`), the index item must still name it and be
//! active, and the new item must not exist. A concurrent roll or a
//! revocation fails it with nothing changed; the SDK's own retries reuse
//! the call's idempotency token, so a retried roll applies once.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use tollgate_core::rotation::{cleanup_ttl, graced_after_roll};
use tollgate_core::{KeyDigest, KeyRecord, KeyStatus, UnixMillis};

use crate::attr::{get_s, n, s, Item};
use crate::keys::{key_id_pk, key_pk, parse_key};
use crate::{KeysStore, StoreError};

/// What a roll did, or why it did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollOutcome {
    /// The new secret is the key's current one; the replaced secret works
    /// until `replaced_until`. `record` is the new secret's record;
    /// `in_grace` counts the replaced secrets still in grace.
    Rolled {
        record: KeyRecord,
        replaced_until: UnixMillis,
        in_grace: usize,
    },
    /// There is no key with this id.
    NoSuchKey,
    /// The key is revoked: it cannot be rolled.
    Revoked,
    /// The key has expired: a new secret would be expired too.
    Expired,
    /// Another roll or a revocation changed the key meanwhile; nothing was
    /// written (run it again).
    Conflict,
}

/// A key's secrets as its customer index item lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySecrets {
    pub customer: String,
    /// The current secret's digest.
    pub current: KeyDigest,
    /// The replaced secrets' digests and grace ends (some may have ended).
    pub graced: BTreeMap<String, UnixMillis>,
    pub plan: String,
    pub revoked: bool,
}

fn index_pk(customer: &str) -> String {
    format!("customer#{customer}")
}

fn index_sk(key_id: &str) -> String {
    format!("key#{key_id}")
}

fn parse_secrets(customer: &str, item: &Item) -> Result<KeySecrets, StoreError> {
    let malformed = |what: &str| StoreError::Malformed {
        table: "Keys",
        message: format!("customer key item without {what}"),
    };
    let graced = match item.get("graced") {
        None => BTreeMap::new(),
        Some(v) => v
            .as_m()
            .map_err(|_| malformed("a graced map"))?
            .iter()
            .map(|(d, t)| {
                let t = t.as_n().ok().and_then(|t| t.parse().ok());
                t.map(|t| (d.clone(), t))
                    .ok_or_else(|| malformed("grace ends"))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(KeySecrets {
        customer: customer.to_owned(),
        current: KeyDigest(
            get_s(item, "digest")
                .ok_or_else(|| malformed("digest"))?
                .to_owned(),
        ),
        graced,
        plan: get_s(item, "plan").unwrap_or_default().to_owned(),
        revoked: get_s(item, "status") == Some("revoked"),
    })
}

fn transact(
    build: Result<TransactWriteItem, aws_sdk_dynamodb::error::BuildError>,
) -> Result<TransactWriteItem, StoreError> {
    build.map_err(|e| StoreError::dynamo("TransactWriteItems", e))
}

impl KeysStore {
    async fn get_consistent(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out.item)
    }

    /// The secrets of `customer`'s key `key_id` (`None`: no such key). One
    /// strongly consistent `GetItem`.
    pub async fn key_secrets(
        &self,
        customer: &str,
        key_id: &str,
    ) -> Result<Option<KeySecrets>, StoreError> {
        self.get_consistent(index_pk(customer), &index_sk(key_id))
            .await?
            .map(|item| parse_secrets(customer, &item))
            .transpose()
    }

    /// The customer of key `key_id`, from its `keyid#` item (`None`: no such key).
    pub async fn customer_of_key(&self, key_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .get_consistent(key_id_pk(key_id), "keyid")
            .await?
            .as_ref()
            .and_then(|i| get_s(i, "customer"))
            .map(str::to_owned))
    }

    /// Rolls key `key_id` to the new secret `new_digest` at `now`: the
    /// current secret keeps working until `replaced_until` (a grace end
    /// at or before `now` ends it at once), earlier replaced secrets keep
    /// their own grace (see [`tollgate_core::rotation`]), and every secret
    /// counts to the same key id, customer, plan and limits.
    ///
    /// Cost: three strongly consistent `GetItem`s (the `keyid#` item, the
    /// customer's index item, the current key item: 1 read unit each) and
    /// one `TransactWriteItems` of three items under 1 KB (6 write units).
    /// Nothing is written unless the roll happens; see [`RollOutcome`].
    pub async fn roll_key(
        &self,
        key_id: &str,
        new_digest: &KeyDigest,
        replaced_until: UnixMillis,
        now: UnixMillis,
    ) -> Result<RollOutcome, StoreError> {
        let Some(customer) = self.customer_of_key(key_id).await? else {
            return Ok(RollOutcome::NoSuchKey);
        };
        let Some(secrets) = self.key_secrets(&customer, key_id).await? else {
            return Ok(RollOutcome::NoSuchKey);
        };
        if secrets.revoked {
            return Ok(RollOutcome::Revoked);
        }
        let Some(current) = self
            .get_consistent(key_pk(&secrets.current), "apikey")
            .await?
        else {
            return Err(StoreError::Malformed {
                table: "Keys",
                message: format!(
                    "the key item of {key_id} is missing (its customer index names it)"
                ),
            });
        };
        let record = parse_key(&current)?;
        if record.status == KeyStatus::Revoked {
            return Ok(RollOutcome::Revoked);
        }
        if record.expires_at.is_some_and(|t| now >= t) {
            return Ok(RollOutcome::Expired);
        }
        let graced = graced_after_roll(&secrets.graced, &secrets.current.0, replaced_until, now)?;
        let until = replaced_until.min(i64::MAX - 1);
        let replaced = Update::builder()
            .table_name(self.table())
            .key("pk", s(key_pk(&secrets.current)))
            .key("sk", s("apikey"))
            .update_expression("SET valid_until = :u, #t = :t")
            .condition_expression(
                "attribute_exists(pk) AND #s = :active AND attribute_not_exists(valid_until)",
            )
            .expression_attribute_names("#t", "ttl")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":u", n(until))
            .expression_attribute_values(":t", n(cleanup_ttl(until)))
            .expression_attribute_values(":active", s("active"))
            .build()
            .map(|u| TransactWriteItem::builder().update(u).build());
        let new_record = KeyRecord {
            valid_until: None,
            ..record
        };
        let mut new_item = Put::builder()
            .table_name(self.table())
            .item("pk", s(key_pk(new_digest)))
            .item("sk", s("apikey"))
            .item("key_id", s(&new_record.key_id))
            .item("customer", s(&new_record.customer))
            .item("plan", s(&new_record.plan))
            .item("status", s("active"))
            .item("created_at", n(now))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(exp) = new_record.expires_at {
            new_item = new_item.item("expires_at", n(exp));
        }
        let new_item = new_item
            .build()
            .map(|p| TransactWriteItem::builder().put(p).build());
        let graced_value = AttributeValue::M(
            graced
                .iter()
                .map(|(d, t)| (d.clone(), n(*t)))
                .collect::<HashMap<_, _>>(),
        );
        let index = Update::builder()
            .table_name(self.table())
            .key("pk", s(index_pk(&customer)))
            .key("sk", s(index_sk(key_id)))
            .update_expression("SET digest = :new, graced = :g")
            .condition_expression("digest = :cur AND #s = :active")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":new", s(&new_digest.0))
            .expression_attribute_values(":cur", s(&secrets.current.0))
            .expression_attribute_values(":g", graced_value)
            .expression_attribute_values(":active", s("active"))
            .build()
            .map(|u| TransactWriteItem::builder().update(u).build());
        let result = self
            .client()
            .transact_write_items()
            .transact_items(transact(replaced)?)
            .transact_items(transact(new_item)?)
            .transact_items(transact(index)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(RollOutcome::Rolled {
                record: new_record,
                replaced_until: until,
                in_grace: graced.len(),
            }),
            Err(e) if is_condition_failure(&e) => {
                // Revoked meanwhile, or another roll won the race.
                match self.key_secrets(&customer, key_id).await? {
                    Some(k) if k.revoked => Ok(RollOutcome::Revoked),
                    _ => Ok(RollOutcome::Conflict),
                }
            }
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e)),
        }
    }

    /// Revokes a customer's key: every one of its secrets, current and in
    /// grace, atomically (one `TransactWriteItems`: the index item, the
    /// current key item, one item per listed secret in grace). Returns
    /// false when there is no such key. A secret in grace whose item the
    /// TTL clean-up deleted already is written back revoked (with a TTL),
    /// never left half-written; one whose grace ended is refused anyway.
    pub async fn revoke_key(&self, customer: &str, key_id: &str) -> Result<bool, StoreError> {
        // A roll between the read and the write changes the index item's
        // digest, which fails the write's condition: read again, then.
        for _ in 0..3 {
            let Some(secrets) = self.key_secrets(customer, key_id).await? else {
                return Ok(false);
            };
            let result = self.revoke_secrets(key_id, &secrets)?.send().await;
            match result {
                Ok(_) => return Ok(true),
                Err(e) if is_condition_failure(&e) => continue,
                Err(e) => return Err(StoreError::dynamo("TransactWriteItems", e)),
            }
        }
        Err(StoreError::Dynamo {
            operation: "TransactWriteItems",
            message: format!("key {key_id} kept changing while being revoked; run it again"),
        })
    }

    fn revoke_secrets(
        &self,
        key_id: &str,
        secrets: &KeySecrets,
    ) -> Result<
        aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder,
        StoreError,
    >{
        let customer = &secrets.customer;
        let update = |pk: String, sk: String, condition: &str| {
            Update::builder()
                .table_name(self.table())
                .key("pk", s(pk))
                .key("sk", s(sk))
                .update_expression("SET #s = :r")
                .condition_expression(condition)
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":r", s("revoked"))
        };
        let current = update(
            key_pk(&secrets.current),
            "apikey".into(),
            "attribute_exists(pk)",
        );
        let index = update(
            index_pk(customer),
            index_sk(key_id),
            "attribute_exists(pk) AND digest = :cur",
        )
        .expression_attribute_values(":cur", s(&secrets.current.0));
        let mut updates = vec![current, index];
        for (digest, until) in &secrets.graced {
            // Unconditional, and writing every attribute a key item needs,
            // so a deleted item comes back whole (revoked), never partial.
            updates.push(
                Update::builder()
                    .table_name(self.table())
                    .key("pk", s(key_pk(&KeyDigest(digest.clone()))))
                    .key("sk", s("apikey"))
                    .update_expression(
                        "SET #s = :r, #id = if_not_exists(#id, :id), #c = if_not_exists(#c, :c), \
                         #p = if_not_exists(#p, :p), #v = if_not_exists(#v, :u), \
                         #t = if_not_exists(#t, :t)",
                    )
                    .expression_attribute_names("#id", "key_id")
                    .expression_attribute_names("#c", "customer")
                    .expression_attribute_names("#p", "plan")
                    .expression_attribute_names("#v", "valid_until")
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_names("#t", "ttl")
                    .expression_attribute_values(":r", s("revoked"))
                    .expression_attribute_values(":id", s(key_id))
                    .expression_attribute_values(":c", s(customer))
                    .expression_attribute_values(":p", s(&secrets.plan))
                    .expression_attribute_values(":u", n(*until))
                    .expression_attribute_values(":t", n(cleanup_ttl(*until))),
            );
        }
        let items = updates
            .into_iter()
            .map(|u| {
                transact(
                    u.build()
                        .map(|u| TransactWriteItem::builder().update(u).build()),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self
            .client()
            .transact_write_items()
            .set_transact_items(Some(items)))
    }
}

/// Whether a transaction was cancelled by a condition that did not hold.
fn is_condition_failure<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    e.as_service_error()
        .and_then(|s| match s {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
            _ => None,
        })
        .is_some_and(|c| {
            c.cancellation_reasons()
                .iter()
                .any(|r| r.code() == Some("ConditionalCheckFailed"))
        })
}
