//! The handler: one core for CloudWatch Logs subscription events delivered
//! directly and for Kinesis events carrying the same payloads.
//!
//! This module holds the [`Processor`] and its errors, the
//! entry point and direct deliveries, and the commit of chunks with their
//! dedupe markers (through `tollgate_app::commit`, the one committer);
//! `kinesis` reads Kinesis events record by record, and
//! `fenced` raises a Kinesis batch's counters past their per-shard
//! watermarks (`TOLLGATE_KINESIS_DEDUPE=watermark`).

mod fenced;
mod kinesis;

pub use fenced::shard_attribute;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tollgate_app::commit::{max_id, Batch, Committer};
use tollgate_app::windows::PlanWindows;
use tollgate_core::UnixMillis;
use tollgate_idempotency::IdempotencyConfig;
use tollgate_store::{CommitStore, KeysStore, StoreError, UsageStore};

use crate::batch::{cloudwatch_source_id, plan_in, BatchAggregate, Counting, WritePlan};
use crate::config::Config;
use crate::line::Rules;
use crate::payload::{decode_data, parse_payload, DecodeError, MessageType};
use crate::reject::{self, DirectId, Rejection};
use crate::summary::Summary;

/// Why an invocation (direct delivery) or a record (Kinesis) failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The event is neither a CloudWatch Logs nor a Kinesis event.
    #[error("unrecognised event: {0}")]
    UnknownEvent(String),
    /// A payload could not be decoded: nothing of it was written.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A DynamoDB write failed. Chunks committed before it stay committed;
    /// a retry finds their markers and writes only the rest.
    #[error("writing usage failed: {0}")]
    Store(String),
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        ProcessError::Store(e.to_string())
    }
}

/// The direct delivery shape: `{"awslogs": {"data": "<base64 gzip>"}}`.
#[derive(Debug, Deserialize)]
struct DirectEvent {
    awslogs: DirectData,
}

#[derive(Debug, Deserialize)]
struct DirectData {
    data: String,
}

/// The log-processor, with its stores and configuration.
#[derive(Debug, Clone)]
pub struct Processor {
    /// The Usage table (the watermark path writes it directly).
    usage: UsageStore,
    /// The exactly-once writes: chunks with their markers, `max` counters,
    /// bucket parts (the open part of each bucket item, per container).
    commits: CommitStore,
    config: Config,
    /// The line rules and `max` meters; its windows are the configured ones
    /// ([`Processor::counting`] has the plans' too).
    counting: Counting,
    /// The windows each meter is counted in, as the plans say (cached per container).
    windows: Arc<PlanWindows>,
}

impl Processor {
    /// The dedupe markers' configuration for `config`: its Idempotency
    /// table, namespace and expiry (for the [`CommitStore`] given to
    /// [`Processor::new`]).
    pub fn marker_config(config: &Config) -> IdempotencyConfig {
        IdempotencyConfig::new(config.idempotency_table.clone())
            .namespace(config.dedupe_namespace.clone())
            .expiry(config.dedupe_ttl)
    }

    /// A processor committing through `commits` (on `config`'s Usage
    /// table, with [`Processor::marker_config`]'s markers) and reading the
    /// plans (for the windows they limit) from `keys`: see `main.rs`.
    pub fn new(commits: CommitStore, keys: KeysStore, config: Config) -> Self {
        let windows = PlanWindows::new(
            keys,
            config.plan_cache_ttl,
            &config.windows,
            &config.anonymous_windows,
            config.anonymous_plan.clone(),
        );
        Processor {
            usage: commits.usage().clone(),
            commits,
            counting: Counting {
                rules: Rules {
                    count_status: config.count_status.clone(),
                    ipv6_prefix: config.ipv6_prefix,
                },
                windows: windows.configured().clone(),
                max_meters: config.max_meters.clone(),
            },
            windows: Arc::new(windows),
            config,
        }
    }

    /// How this delivery's lines are counted: in the configured windows
    /// and every window a plan limits (the plans read at most once per
    /// `TOLLGATE_PLAN_CACHE_SECONDS`; when they cannot be read, a warning
    /// and the windows of the plans last read, or the configured ones:
    /// counts are never lost for it).
    async fn counting(&self) -> Counting {
        Counting {
            // Boxed: the plans' Query future is deep.
            windows: Box::pin(self.windows.current()).await,
            ..self.counting.clone()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles any event: a direct CloudWatch Logs delivery (returns a
    /// [`Summary`]; an error makes Lambda retry the invocation) or a Kinesis
    /// event (returns a `KinesisEventResponse` naming the failed records).
    /// Poison input (a delivery or record that can never be processed) is
    /// quarantined ([`crate::reject`]): never an error, never a failed record.
    pub async fn handle(&self, event: Value) -> Result<Value, ProcessError> {
        if event.get("awslogs").is_some() {
            let summary = match serde_json::from_value::<DirectEvent>(event) {
                Ok(direct) => self.handle_direct(&direct.awslogs.data).await?,
                Err(e) => {
                    let rejection = Rejection::Event(format!("bad awslogs event: {e}"));
                    reject::direct(&DirectId::default(), &rejection);
                    Summary::one_rejected()
                }
            };
            crate::metrics::emit(&summary);
            return serde_json::to_value(summary)
                .map_err(|e| ProcessError::Store(format!("cannot encode the summary: {e}")));
        }
        if let Some(Value::Array(records)) = event.get("Records") {
            let (response, summary) = self.handle_kinesis_records(records).await;
            crate::metrics::emit(&summary);
            return serde_json::to_value(response)
                .map_err(|e| ProcessError::Store(format!("cannot encode the response: {e}")));
        }
        let keys: Vec<&str> = event
            .as_object()
            .map(|o| o.keys().map(String::as_str).take(5).collect())
            .unwrap_or_default();
        Err(ProcessError::UnknownEvent(format!(
            "expected a CloudWatch Logs event (awslogs) or a Kinesis event (Records); top-level keys: {keys:?}"
        )))
    }

    /// Processes one directly delivered payload (`awslogs.data`). A
    /// payload that can never be processed is quarantined (the summary
    /// counts it as rejected); only store failures are errors.
    pub async fn handle_direct(&self, data: &str) -> Result<Summary, ProcessError> {
        let mut summary = Summary::default();
        let quarantine = |id: DirectId, rejection: Rejection| {
            reject::direct(&id, &rejection);
            Ok(Summary::one_rejected())
        };
        let bytes = match decode_data(data, self.config.max_decompressed) {
            Ok(bytes) => bytes,
            Err(e) => return quarantine(DirectId::of_data(data), e.into()),
        };
        let payload = match parse_payload(&bytes) {
            Ok(payload) => payload,
            Err(e) => return quarantine(DirectId::of_data(data), e.into()),
        };
        match reject::accept(&self.config.sources, &payload) {
            Ok(MessageType::Data) => {}
            Ok(MessageType::Control) => {
                summary.control_messages = 1;
                tracing::info!("control message acknowledged");
                return Ok(summary);
            }
            Err(rejection) => {
                return quarantine(DirectId::of_data(data).with_payload(&payload), rejection)
            }
        }
        let mut aggregate = BatchAggregate::new();
        aggregate.add_events(&payload.log_events, &self.counting().await);
        log_samples(&aggregate);
        let source = cloudwatch_source_id(&payload);
        let plan = plan_in(
            &source,
            aggregate.aggregator.into_increments(),
            &self.config.region,
            Some(self.windows.configured()),
        );
        summary.payloads = 1;
        summary.tally = aggregate.tally;
        let failed = self.apply(&[&plan], &mut summary).await;
        if let Some((id, why)) = failed.first() {
            return Err(ProcessError::Store(format!(
                "{} of {} chunks failed (the others are committed; the retry finds them), first {id}: {why}",
                failed.len(),
                summary.chunks
            )));
        }
        tracing::info!(summary = ?summary, "batch processed");
        Ok(summary)
    }

    /// Commits the plans through the one committer
    /// (`tollgate_app::commit`): their `max` counters raised, their chunks
    /// each with its dedupe marker, API keys' and anonymous identities'
    /// apart. Returns the chunks (and `max` counters, by [`max_id`]) that
    /// failed: everything else is written.
    async fn apply(&self, plans: &[&WritePlan], summary: &mut Summary) -> Vec<(String, String)> {
        let batch = Batch {
            named: plans
                .iter()
                .flat_map(|p| p.chunks.iter().cloned())
                .collect(),
            anonymous: plans
                .iter()
                .flat_map(|p| p.anonymous.iter().cloned())
                .collect(),
            maxima: plans.iter().flat_map(|p| p.maxes.iter().cloned()).collect(),
        };
        summary.chunks += (batch.named.len() + batch.anonymous.len()) as u64;
        summary.increments += plans.iter().map(|p| p.increments() as u64).sum::<u64>();
        let committer = Committer::new(&self.commits, now_millis());
        // Boxed: the commit's future is deep (placement, packing, the batch).
        let done = Box::pin(committer.commit(batch)).await;
        summary.new_chunks += done.new.len() as u64;
        summary.duplicate_chunks += done.duplicates.len() as u64;
        summary.transactions += done.transactions;
        summary.placed_again += done.placed_again;
        summary.max_updates += done.maxima;
        let failed = done.failed;
        for (id, why) in failed.iter().take(3) {
            tracing::error!(chunk = %id, error = %why, failed = failed.len(), "a usage write failed; the others are written");
        }
        failed
    }
}

fn now_millis() -> UnixMillis {
    chrono::Utc::now().timestamp_millis()
}

fn log_samples(aggregate: &BatchAggregate) {
    for s in &aggregate.samples {
        tracing::warn!(
            reason = s.reason,
            detail = %s.detail,
            event_id = %s.event_id,
            len = s.len,
            prefix = %s.prefix,
            skipped_in_batch = aggregate.tally.skipped,
            "skipped a log line"
        );
    }
}
