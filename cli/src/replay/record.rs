//! What a dead-letter queue message holds, and the events replay sends.
//!
//! Lambda writes two kinds of on-failure records to the log-processor's
//! queue: an asynchronous invoke's (the direct subscription), which holds the
//! whole `requestPayload`, and a Kinesis event source mapping's, which holds
//! only the shard and the sequence range (`KinesisBatchInfo`): its records
//! are read back from the stream.

use std::cmp::Ordering;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

/// One dead-lettered delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Failed {
    /// An asynchronous invoke that failed for good: invoke again with the payload.
    Invoke { function: String, payload: Value },
    /// A Kinesis batch that failed for good: read the range back and invoke.
    Kinesis {
        function: String,
        batch: KinesisBatch,
    },
    /// A record replay cannot act on (a DynamoDB stream batch, or anything else).
    Unsupported { what: String },
}

/// The shard and sequence range of a failed Kinesis batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisBatch {
    pub stream_arn: String,
    pub shard_id: String,
    pub start: String,
    pub end: String,
    pub size: u64,
}

impl KinesisBatch {
    /// The stream's name and region, from its ARN
    /// (`arn:aws:kinesis:<region>:<account>:stream/<name>`).
    pub fn stream_name_and_region(&self) -> Result<(&str, &str)> {
        let mut parts = self.stream_arn.splitn(6, ':');
        let (Some("arn"), Some(_), Some("kinesis"), Some(region), Some(_), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            bail!("not a Kinesis stream ARN: {}", self.stream_arn);
        };
        let name = resource
            .strip_prefix("stream/")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow!("not a Kinesis stream ARN: {}", self.stream_arn))?;
        Ok((name, region))
    }

    /// Whether `sequence` lies in the batch's range.
    pub fn contains(&self, sequence: &str) -> bool {
        matches!(
            (cmp_seq(sequence, &self.start), cmp_seq(sequence, &self.end)),
            (
                Some(Ordering::Greater | Ordering::Equal),
                Some(Ordering::Less | Ordering::Equal)
            )
        )
    }

    /// Whether `sequence` lies past the batch's range.
    pub fn is_past(&self, sequence: &str) -> bool {
        cmp_seq(sequence, &self.end) == Some(Ordering::Greater)
    }
}

/// Orders two Kinesis sequence numbers: decimal integers of up to 128
/// digits (56 in practice, past any integer type); `None` if either is not
/// one.
fn cmp_seq(a: &str, b: &str) -> Option<Ordering> {
    fn digits(s: &str) -> Option<&str> {
        (!s.is_empty() && s.len() <= 128 && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.trim_start_matches('0'))
    }
    let (a, b) = (digits(a)?, digits(b)?);
    Some(a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

/// Reads one queue message body. A body that is not an on-failure record
/// at all is an error (the message is left in the queue).
pub fn parse(body: &str, function_override: Option<&str>) -> Result<Failed> {
    let v: Value = serde_json::from_str(body).context("the message is not JSON")?;
    let function = match function_override {
        Some(f) => Some(f.to_owned()),
        None => v
            .pointer("/requestContext/functionArn")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    if let Some(payload) = v.get("requestPayload") {
        let function = function.ok_or_else(|| anyhow!("no requestContext.functionArn"))?;
        return Ok(Failed::Invoke {
            function,
            payload: payload.clone(),
        });
    }
    if let Some(info) = v.get("KinesisBatchInfo") {
        let field = |name: &str| {
            info.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("KinesisBatchInfo has no {name}"))
        };
        let batch = KinesisBatch {
            stream_arn: field("streamArn")?,
            shard_id: field("shardId")?,
            start: field("startSequenceNumber")?,
            end: field("endSequenceNumber")?,
            size: info.get("batchSize").and_then(Value::as_u64).unwrap_or(0),
        };
        if cmp_seq(&batch.start, &batch.end).is_none_or(|o| o == Ordering::Greater) {
            bail!(
                "KinesisBatchInfo has a bad range {}..{}",
                batch.start,
                batch.end
            );
        }
        batch.stream_name_and_region()?;
        let function = function.ok_or_else(|| anyhow!("no requestContext.functionArn"))?;
        return Ok(Failed::Kinesis { function, batch });
    }
    for other in ["DDBStreamBatchInfo", "SQSBatchInfo"] {
        if v.get(other).is_some() {
            return Ok(Failed::Unsupported {
                what: other.to_owned(),
            });
        }
    }
    bail!("neither requestPayload nor KinesisBatchInfo: not a Lambda on-failure record")
}

/// One record read back from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// Epoch seconds.
    pub arrival: f64,
}

/// The Kinesis event Lambda would have sent for `records` of `batch`
/// (the same `eventID`s and `eventSourceARN`, which the log-processor's
/// dedupe keys on).
pub fn kinesis_event(batch: &KinesisBatch, records: &[StreamRecord]) -> Result<Value> {
    let (_, region) = batch.stream_name_and_region()?;
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "approximateArrivalTimestamp": r.arrival,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{}:{}", batch.shard_id, r.sequence_number),
                "eventName": "aws:kinesis:record",
                "awsRegion": region,
                "eventSourceARN": batch.stream_arn,
            })
        })
        .collect();
    Ok(json!({ "Records": records }))
}

/// Whether a function's answer to a replayed Kinesis event reports failed
/// records (`batchItemFailures`): those are not done.
pub fn failed_items(response: &Value) -> usize {
    response
        .get("batchItemFailures")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ARN: &str = "arn:aws:kinesis:eu-central-1:123456789012:stream/access";

    fn kinesis_message(start: &str, end: &str) -> String {
        json!({
            "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:eu-central-1:123456789012:function:lp",
                "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0", "timestamp": "2026-12-01T00:38:06.021Z",
            "KinesisBatchInfo": {"shardId": "shardId-000000000001", "startSequenceNumber": start,
                "endSequenceNumber": end, "batchSize": 2, "streamArn": ARN}
        })
        .to_string()
    }

    #[test]
    fn an_async_record_replays_its_payload_to_its_function() {
        let body = json!({
            "version": "1.0", "timestamp": "2026-12-01T18:16:05.568Z",
            "requestContext": {"requestId": "e4", "functionArn": "arn:aws:lambda:eu-central-1:1:function:lp:$LATEST",
                "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": {"awslogs": {"data": "H4sI"}},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": "boom"}
        })
        .to_string();
        assert_eq!(
            parse(&body, None).unwrap(),
            Failed::Invoke {
                function: "arn:aws:lambda:eu-central-1:1:function:lp:$LATEST".into(),
                payload: json!({"awslogs": {"data": "H4sI"}}),
            }
        );
        let Failed::Invoke { function, .. } = parse(&body, Some("other")).unwrap() else {
            panic!("an invoke")
        };
        assert_eq!(function, "other");
    }

    #[test]
    fn a_kinesis_record_names_its_range_at_full_width() {
        let start = "49601189658422359378836298521827638475320189012309704722";
        let end = "49601189658422359378836298522902373528957594348623495186";
        let Failed::Kinesis { batch, function } =
            parse(&kinesis_message(start, end), None).unwrap()
        else {
            panic!("a Kinesis batch")
        };
        assert!(function.ends_with(":function:lp"));
        assert_eq!(
            batch.stream_name_and_region().unwrap(),
            ("access", "eu-central-1")
        );
        assert!(batch.contains(start) && batch.contains(end));
        assert!(!batch.contains("49601189658422359378836298521827638475320189012309704721"));
        assert!(batch.is_past("49601189658422359378836298522902373528957594348623495187"));
        assert!(!batch.is_past(end));

        let event = kinesis_event(
            &batch,
            &[StreamRecord {
                sequence_number: start.into(),
                partition_key: "p".into(),
                data: b"hi".to_vec(),
                arrival: 1.5,
            }],
        )
        .unwrap();
        let r = &event["Records"][0];
        assert_eq!(r["eventID"], format!("shardId-000000000001:{start}"));
        assert_eq!(r["eventSourceARN"], ARN);
        assert_eq!(r["kinesis"]["data"], "aGk=");
        assert_eq!(r["awsRegion"], "eu-central-1");
        // The function's own event type reads it.
        let parsed: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_value(event).unwrap();
        assert_eq!(parsed.records[0].kinesis.data.0, b"hi");
    }

    #[test]
    fn sequence_numbers_order_as_integers_of_any_width() {
        assert_eq!(cmp_seq("9", "10"), Some(Ordering::Less));
        assert_eq!(cmp_seq("010", "10"), Some(Ordering::Equal));
        assert_eq!(cmp_seq("0", "000"), Some(Ordering::Equal));
        let a = "49601189658422359378836298521827638475320189012309704722";
        let b = "49601189658422359378836298521827638475320189012309704723";
        assert_eq!(cmp_seq(a, b), Some(Ordering::Less));
        assert_eq!(cmp_seq(b, a), Some(Ordering::Greater));
        assert_eq!(cmp_seq(a, "1"), Some(Ordering::Greater));
        assert_eq!(cmp_seq("", "1"), None);
        assert_eq!(cmp_seq("1e5", "1"), None);
        assert_eq!(cmp_seq("-1", "1"), None);
        assert_eq!(cmp_seq(&"1".repeat(129), "1"), None);
    }

    #[test]
    fn bad_records_are_errors_and_other_sources_are_unsupported() {
        assert!(parse("not json", None).is_err());
        assert!(parse("{}", None).is_err());
        assert!(parse(&kinesis_message("5", "4"), None).is_err());
        assert!(parse(&kinesis_message("x", "4"), None).is_err());
        let ddb =
            json!({"requestContext": {"functionArn": "f"}, "DDBStreamBatchInfo": {}}).to_string();
        assert_eq!(
            parse(&ddb, None).unwrap(),
            Failed::Unsupported {
                what: "DDBStreamBatchInfo".into()
            }
        );
        assert_eq!(
            failed_items(&json!({"batchItemFailures": [{"itemIdentifier": "1"}]})),
            1
        );
        assert_eq!(failed_items(&json!({"batchItemFailures": []})), 0);
    }
}
