//! The local stream pump: what a Lambda event source mapping does for
//! quota-sync, for DynamoDB Local.
//!
//! For each simulated region it reads the Usage table's stream
//! (DescribeTable, DescribeStream, GetShardIterator, GetRecords), builds
//! Lambda-shaped DynamoDB stream events and invokes quota-sync, either in
//! this process ([`InProcess`]) or through the Lambda Runtime API that
//! `cargo lambda watch` serves ([`RuntimeApi`]). Like an event source
//! mapping with `ReportBatchItemFailures`, it delivers each shard's records
//! in order, in batches; when a response names failed records it
//! checkpoints before the lowest of them and delivers again from there; when
//! an invocation fails it delivers the whole batch again.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::handler::QuotaSync;
use crate::record::SequenceNumber;

/// Something the pump could not do.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("DynamoDB Streams {operation} failed for table {table} in {region}: {message}")]
    Stream {
        operation: &'static str,
        table: String,
        region: String,
        message: String,
    },
    #[error("table {table} in {region} has no stream: create it with `tollgate tables create`")]
    NoStream { table: String, region: String },
    #[error("bad function URL {0:?}: expected http://<host>:<port>")]
    BadUrl(String),
}

/// An invocation that did not return a response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function failed: {0}")]
    Function(String),
    #[error("could not invoke the function at {url}: {message}")]
    Transport { url: String, message: String },
}

/// A way to invoke quota-sync with one event and get its response.
pub trait Invoke: Send + Sync + fmt::Debug {
    /// Invokes the function with `event`; the response is the function's JSON result.
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<Value, InvokeError>>;
}

/// Invokes a handler in this process.
#[derive(Debug, Clone)]
pub struct InProcess(pub Arc<QuotaSync>);

impl Invoke for InProcess {
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<Value, InvokeError>> {
        Box::pin(async move {
            let outcome = self
                .0
                .handle(&event)
                .await
                .map_err(|e| InvokeError::Function(e.to_string()))?;
            serde_json::to_value(&outcome.response)
                .map_err(|e| InvokeError::Function(e.to_string()))
        })
    }
}

/// Invokes a function through the Lambda invoke API that `cargo lambda
/// watch` serves (`POST /2015-03-31/functions/<name>/invocations`), with a
/// small HTTP/1.1 client.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    url: String,
    host: String,
    port: u16,
    path: String,
    timeout: Duration,
}

impl RuntimeApi {
    /// An invoker of `function` at `base_url` (`http://127.0.0.1:9000`).
    pub fn new(base_url: &str, function: &str, timeout: Duration) -> Result<Self, PumpError> {
        let bad = || PumpError::BadUrl(base_url.to_owned());
        let rest = base_url.strip_prefix("http://").ok_or_else(bad)?;
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(RuntimeApi {
            url: base_url.trim_end_matches('/').to_owned(),
            host: host.to_owned(),
            port,
            path: format!("/2015-03-31/functions/{function}/invocations"),
            timeout,
        })
    }

    async fn post(&self, body: &[u8]) -> Result<(u16, bool, Vec<u8>), String> {
        let mut stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| e.to_string())?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            self.port,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(body).await.map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        parse_http_response(&response)
    }
}

/// Parses an HTTP/1.1 response read to its end: (status, whether
/// `X-Amz-Function-Error` is set, body, de-chunked if need be).
fn parse_http_response(raw: &[u8]) -> Result<(u16, bool, Vec<u8>), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers in the response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("no status line in the response")?;
    let mut function_error = false;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name == "x-amz-function-error" {
            function_error = true;
        }
        if name == "transfer-encoding" && value.trim().eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    if chunked {
        body = dechunk(&body)?;
    }
    Ok((status, function_error, body))
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk without a size line")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size {
            return Err("a chunk shorter than its size".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or(&[]);
    }
}

impl Invoke for RuntimeApi {
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<Value, InvokeError>> {
        Box::pin(async move {
            let transport = |message: String| InvokeError::Transport {
                url: self.url.clone(),
                message,
            };
            let body = serde_json::to_vec(&event).map_err(|e| transport(e.to_string()))?;
            let (status, function_error, body) =
                tokio::time::timeout(self.timeout, self.post(&body))
                    .await
                    .map_err(|_| transport(format!("no response within {:?}", self.timeout)))?
                    .map_err(transport)?;
            let text = String::from_utf8_lossy(&body).into_owned();
            if function_error || !(200..300).contains(&status) {
                return Err(InvokeError::Function(format!("HTTP {status}: {text}")));
            }
            serde_json::from_slice(&body)
                .map_err(|e| InvokeError::Function(format!("not a JSON response ({e}): {text}")))
        })
    }
}

/// Converts a stream attribute value to DynamoDB JSON (`{"S": "..."}`), as Lambda delivers it.
pub fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |b: &aws_smithy_types::Blob| {
        Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
    };
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item_json(m) }),
        _ => json!({ "NULL": true }),
    }
}

fn item_json(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect::<Map<String, Value>>(),
    )
}

/// A stream record in the shape Lambda gives it to a function.
pub fn lambda_record(record: &Record, stream_arn: &str, region: &str) -> Value {
    let mut dynamodb = Map::new();
    if let Some(change) = record.dynamodb() {
        if let Some(at) = change.approximate_creation_date_time() {
            dynamodb.insert(
                "ApproximateCreationDateTime".into(),
                json!(at.as_secs_f64().floor()),
            );
        }
        for (name, image) in [
            ("Keys", change.keys()),
            ("NewImage", change.new_image()),
            ("OldImage", change.old_image()),
        ] {
            if let Some(image) = image {
                dynamodb.insert(name.into(), item_json(image));
            }
        }
        if let Some(seq) = change.sequence_number() {
            dynamodb.insert("SequenceNumber".into(), json!(seq));
        }
        dynamodb.insert("SizeBytes".into(), json!(change.size_bytes().unwrap_or(0)));
        if let Some(view) = change.stream_view_type() {
            dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
        }
    }
    let mut out = json!({
        "eventID": record.event_id().unwrap_or_default(),
        "eventName": record.event_name().map(|n| n.as_str()).unwrap_or_default(),
        "eventVersion": record.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region().unwrap_or(region),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    });
    if let (Some(identity), Some(obj)) = (record.user_identity(), out.as_object_mut()) {
        obj.insert(
            "userIdentity".into(),
            json!({
                "type": identity.r#type().unwrap_or_default(),
                "principalId": identity.principal_id().unwrap_or_default(),
            }),
        );
    }
    out
}

/// The sequence number of a Lambda-shaped record.
pub fn sequence_of(record: &Value) -> Option<&str> {
    record.get("dynamodb")?.get("SequenceNumber")?.as_str()
}

/// Where a new pump starts reading a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// At the oldest record still in the stream.
    #[default]
    TrimHorizon,
    /// After the newest record (shards that appear later are read from their start).
    Latest,
}

#[derive(Debug)]
struct ShardCursor {
    id: String,
    iterator: Option<String>,
    last_sequence: Option<String>,
    closed: bool,
}

/// Reads one table's stream in one region, shard by shard, as Lambda-shaped records.
#[derive(Debug)]
pub struct StreamReader {
    region: String,
    table: String,
    dynamo: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    start: StartPosition,
    stream_arn: Option<String>,
    shards: Vec<ShardCursor>,
}

impl StreamReader {
    /// A reader of `table`'s stream; `dynamo` and `streams` are clients for `region`.
    pub fn new(
        region: impl Into<String>,
        table: impl Into<String>,
        dynamo: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        start: StartPosition,
    ) -> Self {
        StreamReader {
            region: region.into(),
            table: table.into(),
            dynamo,
            streams,
            start,
            stream_arn: None,
            shards: Vec::new(),
        }
    }

    /// The region read.
    pub fn region(&self) -> &str {
        &self.region
    }

    fn error<E: std::error::Error>(&self, operation: &'static str, e: E) -> PumpError {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        PumpError::Stream {
            operation,
            table: self.table.clone(),
            region: self.region.clone(),
            message,
        }
    }

    async fn discover(&mut self) -> Result<String, PumpError> {
        let arn = match &self.stream_arn {
            Some(arn) => arn.clone(),
            None => {
                let out = self
                    .dynamo
                    .describe_table()
                    .table_name(&self.table)
                    .send()
                    .await
                    .map_err(|e| self.error("DescribeTable", e))?;
                let arn = out
                    .table()
                    .and_then(|t| t.latest_stream_arn())
                    .map(str::to_owned)
                    .ok_or_else(|| PumpError::NoStream {
                        table: self.table.clone(),
                        region: self.region.clone(),
                    })?;
                self.stream_arn = Some(arn.clone());
                arn
            }
        };
        let first_discovery = self.shards.is_empty();
        let mut start_after: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(&arn)
                .set_exclusive_start_shard_id(start_after.clone())
                .send()
                .await
                .map_err(|e| self.error("DescribeStream", e))?;
            let Some(description) = out.stream_description() else {
                break;
            };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if self.shards.iter().any(|s| s.id == id) {
                    continue;
                }
                let kind = if first_discovery && self.start == StartPosition::Latest {
                    ShardIteratorType::Latest
                } else {
                    ShardIteratorType::TrimHorizon
                };
                let iterator = self
                    .streams
                    .get_shard_iterator()
                    .stream_arn(&arn)
                    .shard_id(id)
                    .shard_iterator_type(kind)
                    .send()
                    .await
                    .map_err(|e| self.error("GetShardIterator", e))?
                    .shard_iterator;
                debug!(region = %self.region, shard = id, "reading a new shard");
                self.shards.push(ShardCursor {
                    id: id.to_owned(),
                    closed: iterator.is_none(),
                    iterator,
                    last_sequence: None,
                });
            }
            match description.last_evaluated_shard_id() {
                Some(last) => start_after = Some(last.to_owned()),
                None => break,
            }
        }
        Ok(arn)
    }

    /// Reads every record that arrived since the last call, by shard (in
    /// the order the stream lists the shards, parents before children).
    pub async fn read(&mut self) -> Result<Vec<(String, Vec<Value>)>, PumpError> {
        let arn = self.discover().await?;
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            let mut records = Vec::new();
            let mut renewed = false;
            while let Some(iterator) = self.shards[i].iterator.clone() {
                let result = self
                    .streams
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(1000)
                    .send()
                    .await;
                let page = match result {
                    Ok(page) => page,
                    Err(e)
                        if !renewed
                            && e.as_service_error().is_some_and(|s| {
                                s.is_expired_iterator_exception()
                                    || s.is_trimmed_data_access_exception()
                            }) =>
                    {
                        // An expired iterator, or (DynamoDB Local) one taken
                        // on an empty shard that now counts as trimmed: start
                        // again right after the last record read, once.
                        let shard = &self.shards[i];
                        let mut request = self
                            .streams
                            .get_shard_iterator()
                            .stream_arn(&arn)
                            .shard_id(&shard.id);
                        request = match &shard.last_sequence {
                            Some(seq) => request
                                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                                .sequence_number(seq),
                            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                        };
                        let fresh = request
                            .send()
                            .await
                            .map_err(|e| self.error("GetShardIterator", e))?;
                        self.shards[i].iterator = fresh.shard_iterator;
                        renewed = true;
                        continue;
                    }
                    Err(e) => return Err(self.error("GetRecords", e)),
                };
                let got = page.records().len();
                for record in page.records() {
                    if let Some(seq) = record.dynamodb().and_then(|d| d.sequence_number()) {
                        self.shards[i].last_sequence = Some(seq.to_owned());
                    }
                    records.push(lambda_record(record, &arn, &self.region));
                }
                let shard = &mut self.shards[i];
                shard.iterator = page.next_shard_iterator;
                if shard.iterator.is_none() {
                    shard.closed = true;
                }
                if got == 0 {
                    break;
                }
            }
            if !records.is_empty() {
                out.push((self.shards[i].id.clone(), records));
            }
        }
        Ok(out)
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
    pub async fn round(&mut self) -> Result<Round, PumpError> {
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
        let wanted = SequenceNumber(id.to_owned());
        let position = batch
            .iter()
            .position(|r| sequence_of(r).is_some_and(|s| SequenceNumber(s.to_owned()) == wanted))
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
    pub async fn round(&mut self) -> Result<Round, PumpError> {
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
    ) -> Result<(Round, bool), PumpError> {
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

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(
            parse_http_response(plain).unwrap(),
            (200, false, b"{}".to_vec())
        );
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nX-Amz-Function-Error: Unhandled\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_http_response(chunked).unwrap(),
            (200, true, b"{\"a\":1}".to_vec())
        );
        assert!(parse_http_response(b"garbage").is_err());
    }

    #[test]
    fn parses_function_urls() {
        let api = RuntimeApi::new(
            "http://127.0.0.1:9000",
            "quota-sync",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!((api.host.as_str(), api.port), ("127.0.0.1", 9000));
        assert_eq!(api.path, "/2015-03-31/functions/quota-sync/invocations");
        for bad in [
            "https://x:1",
            "127.0.0.1:9000",
            "http://:9000",
            "http://h:port",
        ] {
            assert!(
                RuntimeApi::new(bad, "f", Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn converts_attribute_values_to_lambda_json() {
        let v = AttributeValue::M(std::collections::HashMap::from([(
            "l".to_owned(),
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::B(aws_smithy_types::Blob::new(vec![0u8, 1])),
                AttributeValue::Bool(true),
            ]),
        )]));
        assert_eq!(
            attribute_json(&v),
            json!({"M": {"l": {"L": [{"N": "1"}, {"B": "AAE="}, {"BOOL": true}]}}})
        );
    }
}
