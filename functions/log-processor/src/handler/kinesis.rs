//! Kinesis events: each record is one CloudWatch Logs payload, read and
//! planned on its own (poison records quarantined alone), then the batch is
//! written by watermark (`fenced`) or with markers per record.

use std::collections::HashSet;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use serde_json::Value;
use tollgate_core::Position;

use super::fenced::shard_attribute;
use super::{log_samples, max_id, Processor};
use crate::batch::{kinesis_source_id, plan_in, BatchAggregate, WritePlan};
use crate::config::KinesisDedupe;
use crate::payload::{parse_payload, MessageType};
use crate::reject::{self, kinesis_records, Rejection};
use crate::summary::Summary;

impl Processor {
    /// Processes a Kinesis event: every record is one CloudWatch Logs
    /// payload. Returns the records to retry (those whose writes failed)
    /// and what was done; records that can never be processed are
    /// quarantined ([`crate::reject`]), not retried.
    pub async fn handle_kinesis(&self, event: KinesisEvent) -> (KinesisEventResponse, Summary) {
        self.process_kinesis(event, 0).await
    }

    /// [`Self::handle_kinesis`] on a Kinesis event's `Records` as JSON:
    /// each record is read on its own, so that one that does not have a
    /// record's shape (data that is not base64) is quarantined alone.
    pub async fn handle_kinesis_records(
        &self,
        records: &[Value],
    ) -> (KinesisEventResponse, Summary) {
        let (kinesis, rejected) = kinesis_records(records);
        self.process_kinesis(kinesis, rejected).await
    }

    /// [`Self::handle_kinesis`], with `rejected` records of the event
    /// quarantined before (records that did not have a record's shape).
    async fn process_kinesis(
        &self,
        event: KinesisEvent,
        rejected: u64,
    ) -> (KinesisEventResponse, Summary) {
        let mut summary = Summary {
            rejected,
            ..Summary::default()
        };
        let mut failures: Vec<String> = Vec::new();
        let mut plans: Vec<(String, WritePlan)> = Vec::new();
        let counting = self.counting().await;
        for record in &event.records {
            let seq = record.kinesis.sequence_number.clone();
            if self.config.kinesis_dedupe == KinesisDedupe::Watermark {
                if let Err(e) = Position::of_sequence(&seq) {
                    reject::kinesis(&seq, &Rejection::Sequence(e.to_string()));
                    summary.rejected += 1;
                    continue;
                }
            }
            let source = kinesis_source_id(
                record.event_source_arn.as_deref().unwrap_or(""),
                record.event_id.as_deref().unwrap_or(""),
                &seq,
            );
            let decoded =
                crate::payload::gunzip_capped(&record.kinesis.data.0, self.config.max_decompressed)
                    .map_err(Rejection::from)
                    .and_then(|bytes| {
                        let payload = parse_payload(&bytes)?;
                        if reject::accept(&self.config.sources, &payload)? == MessageType::Control {
                            return Ok(None);
                        }
                        let mut aggregate = BatchAggregate::new();
                        aggregate.add_events(&payload.log_events, &counting);
                        Ok(Some(aggregate))
                    });
            match decoded {
                Ok(None) => summary.control_messages += 1,
                Ok(Some(aggregate)) => {
                    log_samples(&aggregate);
                    summary.payloads += 1;
                    summary.tally.merge(&aggregate.tally);
                    let plan = plan_in(
                        &source,
                        aggregate.aggregator.into_increments(),
                        &self.config.region,
                        Some(self.windows.configured()),
                    );
                    plans.push((seq, plan));
                }
                Err(rejection) => {
                    // Retrying cannot fix it, and a failed record would hold
                    // the shard behind it: quarantined, nothing of it written.
                    reject::kinesis(&seq, &rejection);
                    summary.rejected += 1;
                }
            }
        }
        match self.config.kinesis_dedupe {
            KinesisDedupe::Watermark => {
                let shard = shard_attribute(&event);
                failures.extend(self.apply_fenced(&shard, &plans, &mut summary).await);
                // Anonymous identities' bucket parts: with their markers.
                let anonymous: Vec<(String, WritePlan)> = plans
                    .iter()
                    .map(|(seq, plan)| {
                        let only = WritePlan {
                            anonymous: plan.anonymous.clone(),
                            ..WritePlan::default()
                        };
                        (seq.clone(), only)
                    })
                    .collect();
                failures.extend(self.apply_records(&anonymous, &mut summary).await);
            }
            KinesisDedupe::Transaction => {
                failures.extend(self.apply_records(&plans, &mut summary).await);
            }
        }
        failures.sort_unstable();
        failures.dedup();
        tracing::info!(summary = ?summary, failed_records = failures.len(), "Kinesis batch processed");
        let mut response = KinesisEventResponse::default();
        response.batch_item_failures = failures
            .into_iter()
            .map(|seq| {
                let mut failure = KinesisBatchItemFailure::default();
                failure.item_identifier = Some(seq);
                failure
            })
            .collect();
        (response, summary)
    }

    /// Applies the plans of Kinesis records with markers ([`Self::apply`]);
    /// returns the sequence numbers of the records whose writes failed.
    async fn apply_records(
        &self,
        plans: &[(String, WritePlan)],
        summary: &mut Summary,
    ) -> Vec<String> {
        let refs: Vec<&WritePlan> = plans.iter().map(|(_, p)| p).collect();
        let failed = self.apply(&refs, summary).await;
        if failed.is_empty() {
            return Vec::new();
        }
        let failed: HashSet<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
        tracing::error!(
            chunks = failed.len(),
            "writing usage failed for some records; they will be retried"
        );
        plans
            .iter()
            .filter(|(_, plan)| {
                plan.all_chunks().any(|c| failed.contains(c.id.as_str()))
                    || plan
                        .maxes
                        .iter()
                        .any(|(k, _)| failed.contains(max_id(k).as_str()))
            })
            .map(|(seq, _)| seq.clone())
            .collect()
    }
}
