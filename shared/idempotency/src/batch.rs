//! Batch mode: dedupe markers committed in the same transaction as the
//! caller's own writes.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use crate::backoff::jitter;
use crate::error::IdempotencyError;
use crate::layer::Idempotency;
use crate::record::{self, Record, Status};
use crate::request::{n, token, COND_MARKER};

/// The most actions in one `TransactWriteItems`.
pub const MAX_TRANSACTION_ACTIONS: usize = 100;

/// What [`Idempotency::commit_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The ids committed by this call (with the caller's writes for them),
    /// in the order given.
    pub new: Vec<String>,
    /// The ids seen before (marked within the marker expiry, or repeated
    /// earlier in this call), in the order given; a repeated id appears once
    /// per repeat.
    pub duplicates: Vec<String>,
    /// The transactions committed.
    pub transactions: u32,
}

enum Reasons {
    /// Markers at these chunk indices already exist.
    Duplicates(Vec<usize>),
    /// Some action conflicted with a concurrent transaction.
    Conflict,
}

impl Idempotency {
    /// Commits markers for the new ids together with the caller's writes,
    /// atomically, in TransactWriteItems of at most 100 actions.
    ///
    /// `ids` are taken in order; an id repeated within the call is a
    /// duplicate from its second copy on. They are cut greedily into chunks:
    /// an id joins the current chunk while `chunk.len() +
    /// writes_for(chunk).len() <= 100`. Each chunk is one transaction of
    /// marker puts (conditional on no live marker) followed by
    /// `writes_for(chunk)`. When markers of a chunk already exist, those ids
    /// are duplicates: `writes_for` is called again for the rest, and the
    /// chunk is retried. Transaction conflicts are retried with jittered
    /// backoff. A cancellation caused by one of the caller's writes, or any
    /// other error, is returned; chunks committed before it stay committed,
    /// and a retry of the whole call finds their ids duplicate, which is how
    /// a crash between chunks is repaired.
    ///
    /// ```no_run
    /// use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
    /// use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    /// # async fn f(idem: tollgate_idempotency::Idempotency) -> Result<(), Box<dyn std::error::Error>> {
    /// let ids: Vec<String> = vec!["evt-1".into(), "evt-2".into(), "evt-1".into()];
    /// let outcome = idem
    ///     .commit_batch(&ids, |chunk| {
    ///         // one aggregated increment for the events of this chunk
    ///         let update = Update::builder()
    ///             .table_name("tollgate-usage")
    ///             .key("pk", S("requests#key:k1".into()))
    ///             .key("sk", S("day#2026-11-21#eu-central-1".into()))
    ///             .update_expression("ADD #c :n")
    ///             .expression_attribute_names("#c", "count")
    ///             .expression_attribute_values(":n", N(chunk.len().to_string()))
    ///             .build()?;
    ///         Ok::<_, aws_sdk_dynamodb::error::BuildError>(vec![TransactWriteItem::builder().update(update).build()])
    ///     })
    ///     .await?;
    /// assert_eq!(outcome.duplicates, vec!["evt-1".to_string()]);
    /// # Ok(()) }
    /// ```
    pub async fn commit_batch<F, E>(
        &self,
        ids: &[String],
        mut writes_for: F,
    ) -> Result<BatchOutcome, IdempotencyError<E>>
    where
        F: FnMut(&[String]) -> Result<Vec<TransactWriteItem>, E>,
    {
        let mut seen = HashSet::with_capacity(ids.len());
        let pending: Vec<String> = ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .cloned()
            .collect();
        let mut committed: HashSet<String> = HashSet::with_capacity(pending.len());
        let mut transactions = 0;
        let mut i = 0;
        while i < pending.len() {
            let mut chunk: Vec<String> = Vec::new();
            let mut writes = Vec::new();
            while i < pending.len() && chunk.len() < MAX_TRANSACTION_ACTIONS {
                chunk.push(pending[i].clone());
                let w = writes_for(&chunk).map_err(IdempotencyError::Handler)?;
                if chunk.len() + w.len() <= MAX_TRANSACTION_ACTIONS {
                    writes = w;
                    i += 1;
                } else {
                    chunk.pop();
                    if chunk.is_empty() {
                        return Err(IdempotencyError::TooManyActions {
                            key: self.marker_key(&pending[i]),
                            writes: w.len(),
                        });
                    }
                    break;
                }
            }
            if self
                .commit_chunk(&mut chunk, writes, &mut writes_for)
                .await?
            {
                transactions += 1;
                committed.extend(chunk);
            }
        }
        let mut outcome = BatchOutcome {
            transactions,
            ..BatchOutcome::default()
        };
        let mut first = HashSet::with_capacity(ids.len());
        for id in ids {
            if first.insert(id.as_str()) && committed.contains(id) {
                outcome.new.push(id.clone());
            } else {
                outcome.duplicates.push(id.clone());
            }
        }
        Ok(outcome)
    }

    /// Commits one chunk, dropping ids whose markers exist; `chunk` ends up
    /// holding the committed ids. Returns whether a transaction committed.
    async fn commit_chunk<F, E>(
        &self,
        chunk: &mut Vec<String>,
        mut writes: Vec<TransactWriteItem>,
        writes_for: &mut F,
    ) -> Result<bool, IdempotencyError<E>>
    where
        F: FnMut(&[String]) -> Result<Vec<TransactWriteItem>, E>,
    {
        let config = self.config();
        let mut conflicts = 0;
        // A request whose outcome is unknown (`TransactionInProgress`: an SDK
        // retry of it met the first attempt still running) is sent again
        // unchanged, token included, so that it resolves to that attempt's
        // outcome instead of finding its own markers and calling them
        // duplicates.
        let mut unresolved: Option<(String, Vec<TransactWriteItem>)> = None;
        loop {
            if chunk.is_empty() {
                return Ok(false);
            }
            let first_key = self.marker_key(&chunk[0]);
            let (request_token, actions) = match unresolved.take() {
                Some(same) => same,
                None => {
                    let now_s = self.now_ms() / 1000;
                    let expiration_s = now_s + config.effective_marker_expiry().as_secs();
                    let mut actions = Vec::with_capacity(chunk.len() + writes.len());
                    for id in chunk.iter() {
                        actions.push(self.marker_put(id, now_s, expiration_s).map_err(|e| {
                            IdempotencyError::dynamo("TransactWriteItems", &first_key, &e)
                        })?);
                    }
                    actions.extend(writes.iter().cloned());
                    (token(), actions)
                }
            };
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .client_request_token(&request_token)
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(true),
                Err(err) => err,
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                    classify(e.cancellation_reasons(), chunk.len(), &first_key)?
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    unresolved = Some((request_token, actions));
                    Reasons::Conflict
                }
                _ => {
                    return Err(IdempotencyError::dynamo(
                        "TransactWriteItems",
                        &first_key,
                        &err,
                    ))
                }
            };
            match reasons {
                Reasons::Duplicates(indices) => {
                    let drop: HashSet<usize> = indices.into_iter().collect();
                    let mut idx = 0;
                    chunk.retain(|_| {
                        idx += 1;
                        !drop.contains(&(idx - 1))
                    });
                    if chunk.is_empty() {
                        return Ok(false);
                    }
                    writes = writes_for(chunk).map_err(IdempotencyError::Handler)?;
                    if chunk.len() + writes.len() > MAX_TRANSACTION_ACTIONS {
                        return Err(IdempotencyError::TooManyActions {
                            key: self.marker_key(&chunk[0]),
                            writes: writes.len(),
                        });
                    }
                }
                Reasons::Conflict => {
                    conflicts += 1;
                    if conflicts > config.conflict_retries {
                        return Err(IdempotencyError::TransactionConflict {
                            first_key,
                            attempts: conflicts,
                        });
                    }
                    let base = config
                        .conflict_backoff
                        .saturating_mul(1 << (conflicts - 1).min(6));
                    tokio::time::sleep(jitter(base.min(Duration::from_secs(2)))).await;
                }
            }
        }
    }

    fn marker_put(
        &self,
        id: &str,
        now_s: u64,
        expiration_s: u64,
    ) -> Result<TransactWriteItem, aws_sdk_dynamodb::error::BuildError> {
        let config = self.config();
        let names = &config.attributes;
        let record = Record {
            key: self.marker_key(id),
            status: Status::Completed,
            expiration_s,
            in_progress_expiry_ms: None,
            lease: None,
            data: None,
            failed: false,
            validation: None,
        };
        let put = Put::builder()
            .table_name(&config.table)
            .set_item(Some(record.to_item(names, &config.key_layout)))
            .condition_expression(COND_MARKER)
            .expression_attribute_names("#k", record::existence_attr(names, &config.key_layout))
            .expression_attribute_names("#exp", &names.expiration)
            .expression_attribute_values(":now", n(now_s))
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// Reads the cancellation reasons (index-aligned with the actions, markers
/// first): duplicates win over conflicts, as dropping them is needed anyway.
fn classify<E>(
    reasons: &[aws_sdk_dynamodb::types::CancellationReason],
    markers: usize,
    first_key: &str,
) -> Result<Reasons, IdempotencyError<E>> {
    let mut duplicates = Vec::new();
    let mut conflict = false;
    for (idx, r) in reasons.iter().enumerate() {
        let code = r.code().unwrap_or("None");
        match code {
            "None" => {}
            "ConditionalCheckFailed" if idx < markers => duplicates.push(idx),
            "TransactionConflict" => conflict = true,
            _ if idx < markers => {
                return Err(IdempotencyError::Dynamo {
                    operation: "TransactWriteItems",
                    key: first_key.to_owned(),
                    message: format!(
                        "marker #{idx} cancelled: {code}: {}",
                        r.message().unwrap_or("")
                    ),
                })
            }
            _ => {
                return Err(IdempotencyError::WriteCancelled {
                    first_key: first_key.to_owned(),
                    index: idx - markers,
                    code: code.to_owned(),
                    message: r.message().unwrap_or("").to_owned(),
                })
            }
        }
    }
    if !duplicates.is_empty() {
        Ok(Reasons::Duplicates(duplicates))
    } else if conflict {
        Ok(Reasons::Conflict)
    } else {
        Err(IdempotencyError::Dynamo {
            operation: "TransactWriteItems",
            key: first_key.to_owned(),
            message: "transaction cancelled without a reason".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::CancellationReason;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn classifies_cancellation_reasons() {
        let r = [
            reason("None"),
            reason("ConditionalCheckFailed"),
            reason("None"),
        ];
        assert!(matches!(classify::<()>(&r, 2, "k"), Ok(Reasons::Duplicates(d)) if d == vec![1]));
        let r = [
            reason("None"),
            reason("None"),
            reason("ConditionalCheckFailed"),
        ];
        assert!(matches!(
            classify::<()>(&r, 2, "k"),
            Err(IdempotencyError::WriteCancelled { index: 0, .. })
        ));
        let r = [reason("TransactionConflict"), reason("None")];
        assert!(matches!(classify::<()>(&r, 1, "k"), Ok(Reasons::Conflict)));
        let r = [
            reason("ConditionalCheckFailed"),
            reason("TransactionConflict"),
        ];
        assert!(matches!(
            classify::<()>(&r, 2, "k"),
            Ok(Reasons::Duplicates(_))
        ));
        assert!(classify::<()>(&[], 2, "k").is_err());
    }
}
