//! CloudWatch Logs subscription events in the shapes AWS delivers them
//! (a direct subscription's `awslogs.data`, Kinesis records): for the
//! sample events in `events/log-processor/`, the tests, the benchmarks and
//! the dev tools.

use std::io::Write;

use base64::Engine;
use flate2::write::GzEncoder;
use serde::Serialize;
use serde_json::{json, Value};

/// One log event of a payload.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The event id (CloudWatch's are 56 decimal digits).
    pub id: String,
    /// Ingestion time, epoch milliseconds.
    pub timestamp: i64,
    /// The line.
    pub message: String,
}

/// A CloudWatch-style event id: 56 digits, unique per `(timestamp, seq)`.
pub fn event_id(timestamp: i64, seq: u64) -> String {
    format!(
        "{:020}{:020}{:016}",
        timestamp,
        seq,
        seq.wrapping_mul(2_654_435_761) % 10_000_000_000_000_000
    )
}

/// The JSON of a `DATA_MESSAGE` payload.
pub fn payload_json(log_group: &str, log_stream: &str, events: &[Event]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": ["tollgate-usage"],
        "logEvents": events,
    }))
    .unwrap_or_default()
}

/// The JSON of a `CONTROL_MESSAGE` payload.
pub fn control_json() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 1_795_000_000_000i64, "message": "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}],
    }))
    .unwrap_or_default()
}

/// Gzips bytes, as CloudWatch Logs does.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Base64 (padded), as Lambda delivers `awslogs.data` and Kinesis data.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A direct subscription event: `{"awslogs": {"data": ...}}`.
pub fn direct_event(payload_json: &[u8]) -> Value {
    json!({"awslogs": {"data": base64(&gzip(payload_json))}})
}

/// A Kinesis event whose records carry the given (already gzipped) data,
/// with sequence numbers `first_seq`, `first_seq + 1`, ...
pub fn kinesis_event(records: &[Vec<u8>], first_seq: u128) -> Value {
    let records: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let seq = format!("{:056}", first_seq + i as u128);
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "f2b4a8c5d1e3",
                    "sequenceNumber": seq,
                    "data": base64(data),
                    "approximateArrivalTimestamp": 1_795_000_000.5,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/log-processor",
                "awsRegion": "eu-central-1",
                "eventSourceARN": "arn:aws:kinesis:eu-central-1:123456789012:stream/tollgate-logs",
            })
        })
        .collect();
    json!({ "Records": records })
}
