//! The local stream pump: what a Lambda event source mapping does for a
//! function fed by a DynamoDB stream, for DynamoDB Local.
//!
//! For each simulated region it reads a table's stream
//! ([`crate::streams::StreamReader`]), builds Lambda-shaped DynamoDB stream
//! events and invokes a function through [`Invoke`]: in this process
//! ([`InProcess`]) or any other way (the dev tools invoke `cargo lambda
//! watch`). Like an event source mapping with `ReportBatchItemFailures`, it
//! delivers each shard's records in order, in batches; when a response names
//! failed records it checkpoints before the lowest of them and delivers
//! again from there; when an invocation fails it delivers the whole batch
//! again.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::streams::{local_reader, sequence_of, StartPosition, StreamError, StreamReader};

/// An invocation that did not return a response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function failed: {0}")]
    Function(String),
    #[error("could not invoke the function at {url}: {message}")]
    Transport { url: String, message: String },
}

/// A way to invoke a function with one event and get its response.
pub trait Invoke: Send + Sync + fmt::Debug {
    /// Invokes the function with `event`; the response is the function's JSON result.
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<Value, InvokeError>>;
}

/// The handler behind [`InProcess`].
type Handler = dyn Fn(Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync;

/// Invokes a handler in this process: an async function from the event to
/// the response (an `Err` is the function's error).
pub struct InProcess {
    name: String,
    handler: Box<Handler>,
}

impl InProcess {
    /// The function `name`, handled by `handler`.
    pub fn new<F, Fut>(name: &str, handler: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        InProcess {
            name: name.to_owned(),
            handler: Box::new(move |event| Box::pin(handler(event))),
        }
    }
}

impl fmt::Debug for InProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InProcess").field(&self.name).finish()
    }
}

impl Invoke for InProcess {
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<Value, InvokeError>> {
        let call = (self.handler)(event);
        Box::pin(async move { call.await.map_err(InvokeError::Function) })
    }
}

/// How the pump delivers, like an event source mapping's settings.
#[derive(Debug, Clone)]
pub struct PumpOptions {
    /// Records per invocation (Lambda's `BatchSize`).
    pub batch_size: usize,
    /// The wait before a failed batch is delivered again.
    pub retry_backoff: Duration,
    /// Deliveries of one batch before it is given up (`MaximumRetryAttempts`
    /// + 1); `None`: until it succeeds, as Lambda does by default.
    pub max_attempts: Option<u32>,
    /// Where a new pump starts reading.
    pub start: StartPosition,
}

impl Default for PumpOptions {
    fn default() -> Self {
        PumpOptions {
            batch_size: 100,
            retry_backoff: Duration::from_millis(200),
            max_attempts: None,
            start: StartPosition::TrimHorizon,
        }
    }
}

/// What a pump round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Records read from the streams.
    pub read: usize,
    /// Invocations made.
    pub invocations: usize,
    /// Records delivered (counting re-deliveries).
    pub delivered: usize,
    /// Records checkpointed: done, never delivered again.
    pub completed: usize,
    /// Invocations whose response named failed records.
    pub partial_failures: usize,
    /// Invocations that failed as a whole (the whole batch is delivered again).
    pub failed_invocations: usize,
    /// Records given up after `max_attempts`.
    pub discarded: usize,
    /// Records waiting after the round (for delivery or re-delivery).
    pub pending: usize,
}

impl Round {
    fn add(&mut self, o: Round) {
        self.read += o.read;
        self.invocations += o.invocations;
        self.delivered += o.delivered;
        self.completed += o.completed;
        self.partial_failures += o.partial_failures;
        self.failed_invocations += o.failed_invocations;
        self.discarded += o.discarded;
        self.pending += o.pending;
    }
}

#[derive(Debug, Default)]
struct ShardQueue {
    id: String,
    pending: VecDeque<Value>,
    attempts: u32,
    retry_at: Option<Instant>,
}

/// The pump of one region: its stream reader, its function, its queues.
#[derive(Debug)]
pub struct RegionPump {
    reader: StreamReader,
    invoker: Arc<dyn Invoke>,
    options: PumpOptions,
    queues: Vec<ShardQueue>,
}

impl RegionPump {
    /// A pump that delivers `reader`'s records to `invoker`.
    pub fn new(reader: StreamReader, invoker: Arc<dyn Invoke>, options: PumpOptions) -> Self {
        RegionPump {
            reader,
            invoker,
            options,
            queues: Vec::new(),
        }
    }

    /// The region pumped.
    pub fn region(&self) -> &str {
        self.reader.region()
    }

    /// Reads new records, then delivers each shard's due records, batch after
    /// batch, until its queue is empty or a batch fails (that shard then
    /// waits for the backoff).
    pub async fn round(&mut self) -> Result<Round, StreamError> {
        let mut round = Round::default();
        for (shard, records) in self.reader.read().await? {
            round.read += records.len();
            let queue = match self.queues.iter().position(|q| q.id == shard) {
                Some(i) => &mut self.queues[i],
                None => {
                    self.queues.push(ShardQueue {
                        id: shard,
                        ..ShardQueue::default()
                    });
                    let last = self.queues.len() - 1;
                    &mut self.queues[last]
                }
            };
            queue.pending.extend(records);
        }
        let now = Instant::now();
        for queue in &mut self.queues {
            // Batches follow each other until the queue is empty or one fails.
            loop {
                if queue.pending.is_empty() || queue.retry_at.is_some_and(|t| t > now) {
                    break;
                }
                let size = self.options.batch_size.max(1).min(queue.pending.len());
                let batch: Vec<Value> = queue.pending.iter().take(size).cloned().collect();
                round.invocations += 1;
                round.delivered += batch.len();
                queue.attempts += 1;
                let result = self
                    .invoker
                    .invoke(json!({ "Records": batch.clone() }))
                    .await;
                // How many records of the batch are done (checkpointed).
                let done = match result {
                    Ok(response) => match failed_from(&response, &batch) {
                        Ok(None) => batch.len(),
                        Ok(Some(i)) => {
                            round.partial_failures += 1;
                            i
                        }
                        Err(why) => {
                            warn!(region = %self.reader.region(), why, "invalid batchItemFailures: the whole batch is retried");
                            round.partial_failures += 1;
                            0
                        }
                    },
                    Err(e) => {
                        warn!(region = %self.reader.region(), error = %e, "invocation failed: the whole batch is retried");
                        round.failed_invocations += 1;
                        0
                    }
                };
                queue.pending.drain(..done);
                round.completed += done;
                if done == batch.len() {
                    queue.attempts = 0;
                    queue.retry_at = None;
                } else if done > 0 {
                    // Progress: the rest is a new batch, tried again after the backoff.
                    queue.attempts = 1;
                    queue.retry_at = Some(Instant::now() + self.options.retry_backoff);
                } else if self
                    .options
                    .max_attempts
                    .is_some_and(|max| queue.attempts >= max)
                {
                    let dropped = batch.len();
                    warn!(region = %self.reader.region(), records = dropped, "a batch failed too often: given up");
                    queue.pending.drain(..dropped);
                    round.discarded += dropped;
                    queue.attempts = 0;
                    queue.retry_at = None;
                } else {
                    queue.retry_at = Some(Instant::now() + self.options.retry_backoff);
                }
            }
        }
        round.pending = self.queues.iter().map(|q| q.pending.len()).sum();
        Ok(round)
    }
}

/// Reads a response's `batchItemFailures`: `None` when there are none,
/// `Some(i)` when the lowest failed record is the batch's `i`th, an error
/// when a failure names no record of the batch (Lambda then retries the
/// whole batch).
pub fn failed_from(response: &Value, batch: &[Value]) -> Result<Option<usize>, &'static str> {
    let failures = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(f)) => f,
        Some(_) => return Err("batchItemFailures is not a list"),
    };
    let mut lowest: Option<usize> = None;
    for failure in failures {
        let id = failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("a failure without an itemIdentifier")?;
        let position = batch
            .iter()
            .position(|r| sequence_of(r) == Some(id))
            .ok_or("an itemIdentifier that is not in the batch")?;
        lowest = Some(lowest.map_or(position, |l| l.min(position)));
    }
    Ok(lowest)
}

/// The pumps of several regions, run together.
#[derive(Debug)]
pub struct Pump {
    /// One pump per region.
    pub regions: Vec<RegionPump>,
}

impl Pump {
    /// Runs one round in every region, concurrently.
    pub async fn round(&mut self) -> Result<Round, StreamError> {
        let results = futures::future::join_all(self.regions.iter_mut().map(|r| r.round())).await;
        let mut total = Round::default();
        for result in results {
            total.add(result?);
        }
        Ok(total)
    }

    /// Runs rounds every `interval` until one reads nothing and nothing is
    /// pending (every region quiet), or `max_rounds` have run. Returns the
    /// sum of the rounds and whether it became idle.
    pub async fn run_until_idle(
        &mut self,
        interval: Duration,
        max_rounds: usize,
    ) -> Result<(Round, bool), StreamError> {
        let mut total = Round::default();
        for _ in 0..max_rounds {
            let round = self.round().await?;
            let pending = round.pending;
            total.add(Round {
                pending: 0,
                ..round
            });
            if round.read == 0 && pending == 0 && round.invocations == 0 {
                return Ok((total, true));
            }
            tokio::time::sleep(interval).await;
        }
        Ok((total, false))
    }

    /// Runs rounds every `interval` until `stop` completes, logging each
    /// round that did something. A round that fails is logged and retried.
    pub async fn run(&mut self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            match self.round().await {
                Ok(round) if round.read > 0 || round.invocations > 0 => {
                    info!(
                        read = round.read,
                        invocations = round.invocations,
                        delivered = round.delivered,
                        completed = round.completed,
                        partial_failures = round.partial_failures,
                        failed_invocations = round.failed_invocations,
                        pending = round.pending,
                        "pumped"
                    );
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "pump round failed; trying again"),
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// A pump of `table` in each region of DynamoDB Local at `endpoint`, that
/// region's records delivered to its function: `functions` holds
/// `(region, function)` pairs.
pub fn local_pump<'a>(
    endpoint: &str,
    table: &str,
    options: &PumpOptions,
    functions: impl IntoIterator<Item = (&'a str, Arc<dyn Invoke>)>,
) -> Pump {
    let regions = functions
        .into_iter()
        .map(|(region, function)| {
            RegionPump::new(
                local_reader(endpoint, region, table, options.start),
                function,
                options.clone(),
            )
        })
        .collect();
    Pump { regions }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rec(seq: &str) -> Value {
        json!({"dynamodb": {"SequenceNumber": seq}})
    }

    #[test]
    fn finds_the_lowest_failed_record() {
        let batch = vec![rec("100"), rec("200"), rec("300")];
        assert_eq!(failed_from(&json!({}), &batch), Ok(None));
        assert_eq!(
            failed_from(&json!({"batchItemFailures": []}), &batch),
            Ok(None)
        );
        assert_eq!(
            failed_from(
                &json!({"batchItemFailures": [{"itemIdentifier": "300"}, {"itemIdentifier": "200"}]}),
                &batch
            ),
            Ok(Some(1))
        );
        assert!(failed_from(
            &json!({"batchItemFailures": [{"itemIdentifier": "999"}]}),
            &batch
        )
        .is_err());
        assert!(failed_from(
            &json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            &batch
        )
        .is_err());
        assert!(failed_from(&json!({"batchItemFailures": [{}]}), &batch).is_err());
    }

    #[tokio::test]
    async fn an_in_process_handler_answers_or_fails() {
        let echo = InProcess::new("echo", |event: Value| async move {
            if event["fail"] == json!(true) {
                Err("asked to fail".to_owned())
            } else {
                Ok(json!({"echo": event}))
            }
        });
        assert_eq!(
            echo.invoke(json!({"n": 1})).await.unwrap(),
            json!({"echo": {"n": 1}})
        );
        let error = echo.invoke(json!({"fail": true})).await.unwrap_err();
        assert!(error.to_string().contains("asked to fail"), "{error}");
        assert_eq!(format!("{echo:?}"), "InProcess(\"echo\")");
    }
}
