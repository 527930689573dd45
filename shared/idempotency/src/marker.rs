//! Marker mode: plain dedupe of an id with one conditional write.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use crate::error::IdempotencyError;
use crate::layer::Idempotency;
use crate::record::{self, Record, Status};
use crate::request::{n, COND_MARKER};

/// What [`Idempotency::mark`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The id was not seen within the marker expiry: it is now marked.
    New,
    /// The id was marked before.
    Duplicate,
}

impl Idempotency {
    /// The record key of a marker id: `<namespace>#v<version>#m#<id>`, or
    /// `...#mh#<sha256 hex of id>` for ids over 512 bytes.
    pub fn marker_key(&self, id: &str) -> String {
        let prefix = self.inner.config.key_prefix();
        if id.len() > 512 {
            use sha2::Digest;
            format!(
                "{prefix}mh#{}",
                hex::encode(sha2::Sha256::digest(id.as_bytes()))
            )
        } else {
            format!("{prefix}m#{id}")
        }
    }

    /// Marks `id` as seen, with one conditional `PutItem` straight to a
    /// completed record with no response, expiring after the marker expiry.
    pub async fn mark(&self, id: &str) -> Result<MarkOutcome, IdempotencyError> {
        let config = &self.inner.config;
        let names = &config.attributes;
        let key = self.marker_key(id);
        let now_ms = self.now_ms();
        let tok = format!("{:016x}", rand::random::<u64>());
        let record = Record {
            key: key.clone(),
            status: Status::Completed,
            expiration_s: now_ms / 1000 + config.effective_marker_expiry().as_secs(),
            in_progress_expiry_ms: None,
            lease: Some(tok.clone()),
            data: None,
            failed: false,
            validation: None,
        };
        let result = self
            .client
            .put_item()
            .table_name(&config.table)
            .set_item(Some(record.to_item(names, &config.key_layout)))
            .condition_expression(COND_MARKER)
            .expression_attribute_names("#k", record::existence_attr(names, &config.key_layout))
            .expression_attribute_names("#exp", &names.expiration)
            .expression_attribute_values(":now", n(now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(MarkOutcome::New),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    let ours = e
                        .item()
                        .and_then(|i| i.get(&names.lease))
                        .and_then(|v| v.as_s().ok())
                        == Some(&tok);
                    Ok(if ours {
                        MarkOutcome::New
                    } else {
                        MarkOutcome::Duplicate
                    })
                }
                _ => Err(IdempotencyError::dynamo("PutItem", &key, &err)),
            },
        }
    }
}
