//! The lease protocol of run mode: acquire a record (or find it completed),
//! complete it with the response, or release it, each conditional on the
//! record's state, so that an execution whose lease was taken over can
//! neither overwrite nor delete the new holder's record.

use std::time::Instant;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use crate::backoff::jitter;
use crate::deadline::Deadline;
use crate::error::{IdempotencyError, Never};
use crate::layer::{Idempotency, IdempotencyKey};
use crate::record::{self, Record, Status, StoredData};
use crate::request::{n, s, token, COND_ACQUIRE, COND_MINE};

/// What [`Idempotency::acquire`] found.
pub(crate) enum Acquired {
    /// The record is mine: run the closure under this lease token.
    Lease(String),
    /// A completed record of the same key: replay it.
    Completed(Record),
}

impl Idempotency {
    /// Acquires the record, or finds it completed. Waits for a live lease
    /// when configured.
    pub(crate) async fn acquire<E>(
        &self,
        key: &IdempotencyKey,
        deadline: Deadline,
    ) -> Result<Acquired, IdempotencyError<E>> {
        let config = &self.inner.config;
        let names = &config.attributes;
        let started = Instant::now();
        let mut backoff = config.wait.map(|w| w.initial_backoff).unwrap_or_default();
        let mut vanished = 0;
        loop {
            let now_ms = self.now_ms();
            let lease = token();
            let record = Record {
                key: key.key.clone(),
                status: Status::InProgress,
                expiration_s: now_ms / 1000 + config.expiry.as_secs(),
                in_progress_expiry_ms: Some(
                    config.in_progress_expiry_ms(now_ms, deadline.epoch_ms()),
                ),
                lease: Some(lease.clone()),
                data: None,
                failed: false,
                validation: key.fingerprint.clone(),
            };
            let result = self
                .client
                .put_item()
                .table_name(&config.table)
                .set_item(Some(record.to_item(names, &config.key_layout)))
                .condition_expression(COND_ACQUIRE)
                .expression_attribute_names("#k", record::existence_attr(names, &config.key_layout))
                .expression_attribute_names("#exp", &names.expiration)
                .expression_attribute_names("#st", &names.status)
                .expression_attribute_names("#ipe", &names.in_progress_expiration)
                .expression_attribute_values(":now", n(now_ms / 1000))
                .expression_attribute_values(":now_ms", n(now_ms))
                .expression_attribute_values(":inprog", s(Status::InProgress.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let old = match result {
                Ok(_) => return Ok(Acquired::Lease(lease)),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
                    _ => return Err(IdempotencyError::dynamo("PutItem", &key.key, &err)),
                },
            };
            let Some(old) = old else {
                // The record existed at the check and is gone now: try again.
                vanished += 1;
                if vanished > 3 {
                    return Err(IdempotencyError::Dynamo {
                        operation: "PutItem",
                        key: key.key.clone(),
                        message: "condition failed without an old item".into(),
                    });
                }
                continue;
            };
            let old = Record::from_item(&old, names, &config.key_layout).map_err(|message| {
                IdempotencyError::Codec {
                    key: key.key.clone(),
                    message,
                }
            })?;
            if old.lease.as_deref() == Some(lease.as_str()) {
                // An SDK retry of our own successful put.
                return Ok(Acquired::Lease(lease));
            }
            key.check_fingerprint(&old)?;
            match old.status {
                Status::Completed => {
                    if let Some(cache) = &self.inner.cache {
                        cache.put(&old);
                    }
                    return Ok(Acquired::Completed(old));
                }
                Status::InProgress => {
                    let lease_expires_at_ms = old.in_progress_expiry_ms.unwrap_or(0);
                    let waited = started.elapsed();
                    match config.wait {
                        Some(w) if waited + backoff <= w.max_wait => {
                            let pause = jitter(backoff);
                            tokio::time::sleep(pause).await;
                            backoff = (backoff * 2).min(w.max_backoff);
                        }
                        _ => {
                            return Err(IdempotencyError::AlreadyInProgress {
                                key: key.key.clone(),
                                lease_expires_at_ms,
                            })
                        }
                    }
                }
            }
        }
    }

    /// Stores the response (or a deterministic failure) if the lease is
    /// still ours.
    pub(crate) async fn complete<E>(
        &self,
        key: &IdempotencyKey,
        lease: &str,
        json: String,
        failed: bool,
    ) -> Result<(), IdempotencyError<E>> {
        let config = &self.inner.config;
        let names = &config.attributes;
        let data = StoredData::encode(json, config.compress_above);
        if data.stored_len() > config.max_response_bytes {
            self.release(&key.key, lease).await;
            return Err(IdempotencyError::ResponseTooLarge {
                key: key.key.clone(),
                size: data.stored_len(),
                limit: config.max_response_bytes,
            });
        }
        let now_ms = self.now_ms();
        let expiration_s = now_ms / 1000 + config.expiry.as_secs();
        let data_attr = match &data {
            StoredData::Json(j) => s(j),
            StoredData::Gzip(b) => {
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b.clone()))
            }
        };
        let mut update = String::from("SET #st = :completed, #data = :data, #exp = :exp");
        if failed {
            update.push_str(", #failed = :true");
        }
        update.push_str(" REMOVE #ipe");
        let mut req = self
            .client
            .update_item()
            .table_name(&config.table)
            .set_key(Some(record::key_item(&key.key, names, &config.key_layout)))
            .update_expression(update)
            .condition_expression(COND_MINE)
            .expression_attribute_names("#st", &names.status)
            .expression_attribute_names("#data", &names.data)
            .expression_attribute_names("#exp", &names.expiration)
            .expression_attribute_names("#ipe", &names.in_progress_expiration)
            .expression_attribute_names("#lease", &names.lease)
            .expression_attribute_values(":completed", s(Status::Completed.as_str()))
            .expression_attribute_values(":inprog", s(Status::InProgress.as_str()))
            .expression_attribute_values(":lease", s(lease))
            .expression_attribute_values(":data", data_attr)
            .expression_attribute_values(":exp", n(expiration_s))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if failed {
            req = req
                .expression_attribute_names("#failed", &names.failed)
                .expression_attribute_values(":true", AttributeValue::Bool(true));
        }
        match req.send().await {
            Ok(_) => {}
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                    let old = e
                        .item()
                        .and_then(|item| Record::from_item(item, names, &config.key_layout).ok());
                    let ours_already = old.as_ref().is_some_and(|r| {
                        r.status == Status::Completed
                            && r.lease.as_deref() == Some(lease)
                            && r.data.as_ref() == Some(&data)
                    });
                    if !ours_already {
                        return Err(IdempotencyError::LeaseLost {
                            key: key.key.clone(),
                        });
                    }
                }
                _ => return Err(IdempotencyError::dynamo("UpdateItem", &key.key, &err)),
            },
        }
        if let Some(cache) = &self.inner.cache {
            cache.put(&Record {
                key: key.key.clone(),
                status: Status::Completed,
                expiration_s,
                in_progress_expiry_ms: None,
                lease: Some(lease.to_owned()),
                data: Some(data),
                failed,
                validation: key.fingerprint.clone(),
            });
        }
        Ok(())
    }

    /// Deletes the record if the lease is still ours; a failure is logged,
    /// as the caller's own error is what it returns.
    pub(crate) async fn release(&self, key: &str, lease: &str) {
        if let Err(e) = self.try_release::<Never>(key, lease).await {
            tracing::warn!(error = %e, "could not release the idempotency lease");
        }
    }

    async fn try_release<E>(&self, key: &str, lease: &str) -> Result<(), IdempotencyError<E>> {
        let config = &self.inner.config;
        let names = &config.attributes;
        let result = self
            .client
            .delete_item()
            .table_name(&config.table)
            .set_key(Some(record::key_item(key, names, &config.key_layout)))
            .condition_expression(COND_MINE)
            .expression_attribute_names("#st", &names.status)
            .expression_attribute_names("#lease", &names.lease)
            .expression_attribute_values(":inprog", s(Status::InProgress.as_str()))
            .expression_attribute_values(":lease", s(lease))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                // Gone already (our own retried delete, or a later holder's
                // release): nothing of ours to release.
                Some(DeleteItemError::ConditionalCheckFailedException(e)) if e.item().is_none() => {
                    Ok(())
                }
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => {
                    Err(IdempotencyError::LeaseLost {
                        key: key.to_owned(),
                    })
                }
                _ => Err(IdempotencyError::dynamo("DeleteItem", key, &err)),
            },
        }
    }
}
