//! The handler: one core for CloudWatch Logs subscription events delivered
//! directly and for Kinesis events carrying the same payloads.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use aws_sdk_dynamodb::Client;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_core::{Aggregation, Cell, Contributions, ItemKey, Position, UnixMillis, UsageKey};
use tollgate_idempotency::{Idempotency, IdempotencyConfig, IdempotencyError};
use tollgate_store::usage::{Expect, Fence, Fenced, ItemAdds};
use tollgate_store::{PartPlacer, StoreError, UsageStore};

use crate::batch::{
    cloudwatch_source_id, kinesis_source_id, plan, BatchAggregate, Chunk, Counting, Tally,
    WritePlan,
};
use crate::commit::Writer;
use crate::config::{Config, KinesisDedupe};
use crate::line::Rules;
use crate::payload::{decode_data, parse_payload, DecodeError, MessageType};
use crate::reject::{self, kinesis_records, DirectId, Rejection};

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

impl From<IdempotencyError<StoreError>> for ProcessError {
    fn from(e: IdempotencyError<StoreError>) -> Self {
        ProcessError::Store(e.to_string())
    }
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        ProcessError::Store(e.to_string())
    }
}

/// What an invocation did (the response of a direct invocation, and logged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Data payloads processed.
    pub payloads: u64,
    /// Control messages acknowledged.
    pub control_messages: u64,
    /// Records or deliveries rejected as poison (quarantined: logged and
    /// acknowledged, never retried; see [`crate::reject`]).
    pub rejected: u64,
    /// What the lines were.
    #[serde(flatten)]
    pub tally: Tally,
    /// Count and sum increments planned.
    pub increments: u64,
    /// Chunks planned.
    pub chunks: u64,
    /// Chunks committed now.
    pub new_chunks: u64,
    /// Chunks found committed before (redeliveries).
    pub duplicate_chunks: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// `max` counters raised (or found at least as high).
    pub max_updates: u64,
    /// Counters raised past their shard watermark (Kinesis, `watermark` dedupe).
    pub fenced_updates: u64,
    /// Counters whose shard watermark showed the batch counted before.
    pub fenced_duplicates: u64,
    /// Transactions that found an anonymous bucket's part full, placed again.
    pub placed_again: u64,
}

impl Summary {
    /// The summary of a delivery quarantined as a whole.
    fn one_rejected() -> Self {
        let summary = Summary {
            rejected: 1,
            ..Summary::default()
        };
        tracing::info!(summary = ?summary, "batch processed");
        summary
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

/// The log-processor, with its clients and configuration.
#[derive(Debug, Clone)]
pub struct Processor {
    usage: UsageStore,
    idempotency: Idempotency,
    /// The open part of each anonymous bucket item written (per container).
    parts: PartPlacer,
    config: Config,
    counting: Counting,
}

impl Processor {
    /// A processor writing with `client` to the tables of `config`.
    pub fn new(client: Client, config: Config) -> Self {
        let idem_config = IdempotencyConfig::new(config.idempotency_table.clone())
            .namespace(config.dedupe_namespace.clone())
            .expiry(config.dedupe_ttl);
        Processor {
            usage: UsageStore::new(client.clone(), config.usage_table.clone())
                .with_top_index(config.top_index),
            idempotency: Idempotency::new(client, idem_config),
            parts: PartPlacer::new(),
            counting: Counting {
                rules: Rules {
                    count_status: config.count_status.clone(),
                    ipv6_prefix: config.ipv6_prefix,
                },
                windows: config.windows.clone(),
                anonymous_windows: config.anonymous_windows.clone(),
                max_meters: config.max_meters.clone(),
            },
            config,
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
            return serde_json::to_value(summary)
                .map_err(|e| ProcessError::Store(format!("cannot encode the summary: {e}")));
        }
        if let Some(Value::Array(records)) = event.get("Records") {
            let (response, _) = self.handle_kinesis_records(records).await;
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
        aggregate.add_events(&payload.log_events, &self.counting);
        log_samples(&aggregate);
        let source = cloudwatch_source_id(&payload);
        let plan = plan(
            &source,
            aggregate.aggregator.into_increments(),
            &self.config.region,
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
                        aggregate.add_events(&payload.log_events, &self.counting);
                        Ok(Some(aggregate))
                    });
            match decoded {
                Ok(None) => summary.control_messages += 1,
                Ok(Some(aggregate)) => {
                    log_samples(&aggregate);
                    summary.payloads += 1;
                    summary.tally.merge(&aggregate.tally);
                    let plan = plan(
                        &source,
                        aggregate.aggregator.into_increments(),
                        &self.config.region,
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

    /// Applies a Kinesis batch with per-shard watermarks: the increments of
    /// all its records are summed per counter, and each Usage item (a month
    /// and its days) is raised with one conditional update past its
    /// watermark (see [`tollgate_core::watermark`]). Returns the sequence
    /// numbers to report as failed: for an item whose update failed, its
    /// earliest record, so that Lambda retries from there and the
    /// watermarks skip what was already counted.
    async fn apply_fenced(
        &self,
        shard: &str,
        plans: &[(String, WritePlan)],
        summary: &mut Summary,
    ) -> Vec<String> {
        let now = now_millis();
        let mut failures = Vec::new();
        let mut items: BTreeMap<ItemKey, FencedItem<'_>> = BTreeMap::new();
        let mut maxes = Vec::new();
        for (seq, plan) in plans {
            let position = match Position::of_sequence(seq) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(sequence_number = %seq, error = %e, "Kinesis record rejected; nothing of it was written");
                    failures.push(seq.clone());
                    continue;
                }
            };
            summary.increments += plan
                .chunks
                .iter()
                .map(|c| c.increments.len() as u64)
                .sum::<u64>();
            // API keys' items only: anonymous buckets are written with markers.
            for (key, aggregation, amount) in plan.chunks.iter().flat_map(|c| c.increments.iter()) {
                items
                    .entry(key.item())
                    .or_insert_with(|| FencedItem {
                        key,
                        aggregation: *aggregation,
                        cells: Vec::new(),
                        index: HashMap::new(),
                        first_seq: seq.as_str(),
                    })
                    .add(key.cell(), position.clone(), *amount);
            }
            maxes.extend(
                plan.maxes
                    .iter()
                    .map(|(key, value)| (key, *value, seq.as_str())),
            );
        }
        let updates: Vec<_> = items
            .values()
            .map(|item| async move {
                let result = self.add_past_watermark(shard, item, now).await;
                (result, item.first_seq)
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(updates)
            .buffer_unordered(FENCED_CONCURRENCY)
            .collect()
            .await;
        let mut first_error = None;
        for (result, first_seq) in results {
            match result {
                Ok(true) => summary.fenced_updates += 1,
                Ok(false) => summary.fenced_duplicates += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                    failures.push(first_seq.to_owned());
                }
            }
        }
        for (key, value, seq) in maxes {
            match self.usage.raise_max(key, value, now).await {
                Ok(_) => summary.max_updates += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                    failures.push(seq.to_owned());
                }
            }
        }
        if let Some(e) = first_error {
            tracing::error!(error = %e, failed = failures.len(), "writing usage failed; Lambda retries from the earliest failed record");
        }
        failures
    }

    /// Adds what the item's contributions hold past its watermark. Returns
    /// whether anything was added (false: the batch was counted before).
    async fn add_past_watermark(
        &self,
        shard: &str,
        item: &FencedItem<'_>,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let contributions = || item.cells.iter().map(|(_, c)| c);
        let (Some(first), Some(last)) = (
            contributions().filter_map(Contributions::first).min(),
            contributions().filter_map(Contributions::last).max(),
        ) else {
            return Ok(false);
        };
        // A refusal names the stored watermark; a partly counted batch is
        // then retried for the rest, conditional on exactly that watermark.
        // Records of one shard arrive in order, so repeated refusals only
        // come from a concurrent writer of the same shard: give up then.
        let mut stored: Option<Position> = None;
        for attempt in 0..3 {
            let expect = if attempt == 0 {
                Expect::Below(first)
            } else {
                Expect::Exactly(stored.as_ref())
            };
            let adds = ItemAdds {
                item: item.key.clone(),
                aggregation: item.aggregation,
                adds: item
                    .cells
                    .iter()
                    .map(|(cell, c)| {
                        let amount = if attempt == 0 {
                            c.total()
                        } else {
                            c.after(stored.as_ref())
                        };
                        (cell, amount)
                    })
                    .filter(|(_, amount)| *amount > 0)
                    .map(|(cell, amount)| (cell.clone(), amount))
                    .collect(),
            };
            if adds.adds.is_empty() {
                return Ok(false);
            }
            let fence = Fence {
                attribute: shard,
                expect,
                to: last,
            };
            match self.usage.add_fenced(&adds, fence, now).await? {
                Fenced::Applied => return Ok(true),
                Fenced::Refused { watermark } => stored = watermark,
            }
        }
        Err(StoreError::Malformed {
            table: "Usage",
            message: format!("the watermark {shard} of {} keeps moving: is the shard processed concurrently (parallelization factor above 1)?", item.key.sk()),
        })
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

    /// Commits the plans' chunks (each with its dedupe marker, API keys'
    /// and anonymous identities' apart, see [`crate::commit`]), then raises
    /// their `max` counters. Returns the chunks (and `max` counters, by
    /// [`max_id`]) that failed: everything else is written.
    async fn apply(&self, plans: &[&WritePlan], summary: &mut Summary) -> Vec<(String, String)> {
        let now = now_millis();
        let named: Vec<Chunk> = plans
            .iter()
            .flat_map(|p| p.chunks.iter().cloned())
            .collect();
        let anonymous: Vec<Chunk> = plans
            .iter()
            .flat_map(|p| p.anonymous.iter().cloned())
            .collect();
        summary.chunks += (named.len() + anonymous.len()) as u64;
        summary.increments += plans.iter().map(|p| p.increments() as u64).sum::<u64>();
        let writer = Writer {
            usage: &self.usage,
            idempotency: &self.idempotency,
            parts: &self.parts,
            now,
        };
        // Boxed: the commit's future is deep (placement, packing, the batch).
        let done = Box::pin(writer.commit(named, anonymous)).await;
        summary.new_chunks += done.new;
        summary.duplicate_chunks += done.duplicates;
        summary.transactions += done.transactions;
        summary.placed_again += done.placed_again;
        let mut failed = done.failed;
        for (key, value) in plans.iter().flat_map(|p| p.maxes.iter()) {
            match self.usage.raise_max(key, *value, now).await {
                Ok(_) => summary.max_updates += 1,
                Err(e) => failed.push((max_id(key), e.to_string())),
            }
        }
        for (id, why) in failed.iter().take(3) {
            tracing::error!(chunk = %id, error = %why, failed = failed.len(), "a usage write failed; the others are written");
        }
        failed
    }
}

/// The name of a `max` counter's write among failed chunks.
fn max_id(key: &UsageKey) -> String {
    format!("max#{}#{}", key.counter.name(), key.label())
}

/// One Usage item's share of a Kinesis batch: per counter in it, what each
/// record of the batch adds.
struct FencedItem<'a> {
    key: &'a UsageKey,
    aggregation: Aggregation,
    cells: Vec<(Cell, Contributions)>,
    /// Where each cell is in `cells` (no linear search).
    index: HashMap<Cell, usize>,
    /// The earliest record that adds to the item (reported if it fails).
    first_seq: &'a str,
}

impl FencedItem<'_> {
    fn add(&mut self, cell: Cell, at: Position, amount: u64) {
        match self.index.get(&cell) {
            Some(&i) => self.cells[i].1.add(at, amount),
            None => {
                let mut contributions = Contributions::new();
                contributions.add(at, amount);
                self.index.insert(cell.clone(), self.cells.len());
                self.cells.push((cell, contributions));
            }
        }
    }
}

/// How many fenced counter updates run at once.
const FENCED_CONCURRENCY: usize = 16;

/// The Usage item attribute holding a Kinesis shard's watermark:
/// `w:` and 12 hex digits of SHA-256 over the stream ARN and the shard id
/// (a short name keeps the item under one write unit).
pub fn shard_attribute(event: &KinesisEvent) -> String {
    use sha2::{Digest, Sha256};
    let (arn, shard) = event
        .records
        .first()
        .map(|r| {
            let arn = r.event_source_arn.as_deref().unwrap_or("");
            let shard = r
                .event_id
                .as_deref()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("");
            (arn, shard)
        })
        .unwrap_or_default();
    let digest = Sha256::digest(format!("{arn}\0{shard}").as_bytes());
    format!("w:{}", &hex::encode(digest)[..12])
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
