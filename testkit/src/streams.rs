//! Reading a table's stream in DynamoDB Local as the records Lambda hands
//! a function (DescribeTable, DescribeStream, GetShardIterator,
//! GetRecords, shard by shard, parents before children), for the stream
//! pump ([`crate::pump`]) and for tests that read a stream directly.

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use serde_json::{json, Map, Value};
use tracing::debug;

/// Something reading a stream could not do.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("DynamoDB Streams {operation} failed for table {table} in {region}: {message}")]
    Stream {
        operation: &'static str,
        table: String,
        region: String,
        message: String,
    },
    #[error("table {table} in {region} has no stream: create it with `tollgate tables create`")]
    NoStream { table: String, region: String },
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

fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
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

    fn error<E: std::error::Error>(&self, operation: &'static str, e: E) -> StreamError {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        StreamError::Stream {
            operation,
            table: self.table.clone(),
            region: self.region.clone(),
            message,
        }
    }

    async fn discover(&mut self) -> Result<String, StreamError> {
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
                    .ok_or_else(|| StreamError::NoStream {
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
    pub async fn read(&mut self) -> Result<Vec<(String, Vec<Value>)>, StreamError> {
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

/// A stream reader of `table` in `region` of DynamoDB Local at `endpoint`.
pub fn local_reader(
    endpoint: &str,
    region: &str,
    table: &str,
    start: StartPosition,
) -> StreamReader {
    let streams_conf = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodbstreams::config::Region::new(
            region.to_owned(),
        ))
        .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "tollgate-local",
        ))
        .build();
    StreamReader::new(
        region,
        table,
        tollgate_store::local_client(endpoint, region),
        aws_sdk_dynamodbstreams::Client::from_conf(streams_conf),
        start,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn converts_attribute_values_to_lambda_json() {
        let v = AttributeValue::M(HashMap::from([(
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
