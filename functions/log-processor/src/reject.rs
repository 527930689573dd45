//! Poison input: a Kinesis record or a direct delivery that can never be
//! processed (not base64, not gzip, over the decompressed cap, not a
//! CloudWatch Logs payload, from a log group or account that is not
//! configured, an unreadable sequence number).
//!
//! Retrying such input cannot succeed, and a Kinesis record reported as
//! failed holds its whole shard behind it. So it is quarantined instead:
//! logged once with its id and reason as one structured line (fields, no
//! payload content beyond a short redacted detail), counted as `rejected`
//! in the run summary, and acknowledged. Store failures (throttling,
//! timeouts, conflicts) are not rejections: they still retry.

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_core::{LogSources, SourceRejection};

use crate::batch::redact;
use crate::payload::{truncate, DecodeError, LogsPayload, MessageType};

/// How much of a rejection's detail is logged at most.
const DETAIL_BYTES: usize = 160;

/// Why input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The bytes could not be decoded into a CloudWatch Logs payload.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The payload comes from a log group or an account not configured.
    #[error(transparent)]
    Source(#[from] SourceRejection),
    /// The delivery or record does not have the shape of its event type.
    #[error("malformed event: {0}")]
    Event(String),
    /// A Kinesis sequence number that is not a decimal position.
    #[error("unreadable sequence number: {0}")]
    Sequence(String),
}

impl Rejection {
    /// A short, stable reason code (the `reason` field of the log line).
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Decode(DecodeError::Base64(_)) => "not_base64",
            Rejection::Decode(DecodeError::NotGzip) => "not_gzip",
            Rejection::Decode(DecodeError::Gzip(_)) => "corrupt_gzip",
            Rejection::Decode(DecodeError::TooLarge { .. }) => "too_large",
            Rejection::Decode(DecodeError::Json(_)) => "not_cloudwatch_logs",
            Rejection::Source(s) => s.reason(),
            Rejection::Event(_) => "malformed_event",
            Rejection::Sequence(_) => "bad_sequence_number",
        }
    }

    /// The error text, truncated and cut before anything that may be a secret.
    pub fn detail(&self) -> String {
        redact(truncate(&self.to_string(), DETAIL_BYTES))
    }
}

/// The id of a direct delivery in a quarantine line: its log group, log
/// stream and first event id when its payload could be read, and always a
/// digest and the length of its `awslogs.data` text (to find it again in
/// an on-failure queue or a test fixture).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectId {
    /// The payload's `logGroup` (empty when unread).
    pub log_group: String,
    /// The payload's `logStream` (empty when unread).
    pub log_stream: String,
    /// The payload's first log event id (empty when unread or none).
    pub first_event_id: String,
    /// The first 16 hex digits of SHA-256 over the `awslogs.data` text.
    pub data_sha256: String,
    /// The `awslogs.data` text's length in bytes.
    pub data_len: usize,
}

impl DirectId {
    /// The id of a delivery whose `awslogs.data` is `data`.
    pub fn of_data(data: &str) -> Self {
        let digest = Sha256::digest(data.as_bytes());
        DirectId {
            data_sha256: hex::encode(&digest[..8]),
            data_len: data.len(),
            ..DirectId::default()
        }
    }

    /// Adds what the payload names.
    pub fn with_payload(mut self, payload: &LogsPayload<'_>) -> Self {
        self.log_group = truncate(&payload.log_group, 512).to_owned();
        self.log_stream = truncate(&payload.log_stream, 512).to_owned();
        self.first_event_id = payload
            .log_events
            .first()
            .map(|e| truncate(&e.id, 64).to_owned())
            .unwrap_or_default();
        self
    }
}

/// Reads a Kinesis event's records one by one: a record that does not
/// have a Kinesis record's shape (data that is not base64, a missing
/// field) is quarantined on its own, by its sequence number when it has
/// one, instead of failing the whole event. Returns the readable records
/// and how many were quarantined.
pub fn kinesis_records(records: &[Value]) -> (KinesisEvent, u64) {
    let mut event = KinesisEvent::default();
    let mut rejected = 0;
    for value in records {
        match KinesisEventRecord::deserialize(value) {
            Ok(record) => event.records.push(record),
            Err(e) => {
                let seq = value
                    .pointer("/kinesis/sequenceNumber")
                    .and_then(Value::as_str)
                    .unwrap_or("-");
                let data = value.pointer("/kinesis/data").unwrap_or(&Value::Null);
                let reason = if data.is_string()
                    && aws_lambda_events::encodings::Base64Data::deserialize(data).is_err()
                {
                    Rejection::Decode(DecodeError::Base64(e.to_string()))
                } else {
                    Rejection::Event(format!("bad Kinesis record: {e}"))
                };
                kinesis(seq, &reason);
                rejected += 1;
            }
        }
    }
    (event, rejected)
}

/// Whether a decoded payload is counted: its kind, or why it is rejected
/// (a log group or account not configured). A control message is
/// acknowledged whatever its source.
pub fn accept(sources: &LogSources, payload: &LogsPayload<'_>) -> Result<MessageType, Rejection> {
    let kind = payload.kind()?;
    if kind == MessageType::Data {
        sources.check(&payload.log_group, &payload.owner)?;
    }
    Ok(kind)
}

/// Logs a quarantined Kinesis record.
pub fn kinesis(sequence_number: &str, rejection: &Rejection) {
    tracing::warn!(
        quarantine = true,
        source = "kinesis",
        sequence_number = truncate(sequence_number, 128),
        reason = rejection.reason(),
        detail = %rejection.detail(),
        "poison input quarantined; it is acknowledged, not retried"
    );
}

/// Logs a quarantined direct delivery.
pub fn direct(id: &DirectId, rejection: &Rejection) {
    tracing::warn!(
        quarantine = true,
        source = "direct",
        log_group = %id.log_group,
        log_stream = %id.log_stream,
        first_event_id = %id.first_event_id,
        data_sha256 = %id.data_sha256,
        data_len = id.data_len,
        reason = rejection.reason(),
        detail = %rejection.detail(),
        "poison input quarantined; it is acknowledged, not retried"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reasons_are_stable_and_details_redacted() {
        let cases = [
            (
                Rejection::from(DecodeError::Base64("x".into())),
                "not_base64",
            ),
            (DecodeError::NotGzip.into(), "not_gzip"),
            (DecodeError::Gzip("eof".into()).into(), "corrupt_gzip"),
            (DecodeError::TooLarge { limit: 9 }.into(), "too_large"),
            (DecodeError::Json("x".into()).into(), "not_cloudwatch_logs"),
            (SourceRejection::LogGroup.into(), "log_group_not_allowed"),
            (SourceRejection::Owner.into(), "owner_not_allowed"),
            (Rejection::Event("x".into()), "malformed_event"),
            (Rejection::Sequence("x".into()), "bad_sequence_number"),
        ];
        for (rejection, reason) in cases {
            assert_eq!(rejection.reason(), reason);
        }
        let secret = Rejection::from(DecodeError::Json(format!(
            "invalid type: string \"tg_live_{}\"",
            "a".repeat(40)
        )));
        let detail = secret.detail();
        assert!(!detail.contains("tg_live"), "{detail}");
        assert!(detail.ends_with("[redacted]"), "{detail}");
        let long = Rejection::Event("x".repeat(10_000));
        assert!(long.detail().len() <= DETAIL_BYTES);
    }

    #[test]
    fn direct_ids() {
        let a = DirectId::of_data("abc");
        assert_eq!(a.data_len, 3);
        assert_eq!(a.data_sha256.len(), 16);
        assert_ne!(a.data_sha256, DirectId::of_data("abd").data_sha256);
        let payload = LogsPayload {
            message_type: "DATA_MESSAGE".into(),
            owner: "o".into(),
            log_group: "g".into(),
            log_stream: "s".into(),
            log_events: vec![crate::payload::LogEvent {
                id: "e1".into(),
                timestamp: 1,
                message: "m".into(),
            }],
        };
        let id = a.with_payload(&payload);
        assert_eq!(
            (
                id.log_group.as_str(),
                id.log_stream.as_str(),
                id.first_event_id.as_str()
            ),
            ("g", "s", "e1")
        );
    }

    fn record(seq: &serde_json::Value, data: &serde_json::Value) -> Value {
        serde_json::json!({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "p",
                        "sequenceNumber": seq, "data": data,
                        "approximateArrivalTimestamp": 1.5},
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": "shardId-000000000000:1", "eventName": "aws:kinesis:record",
            "eventSourceARN": "arn:aws:kinesis:r:1:stream/s", "awsRegion": "r"
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any mix of records (data of any text or JSON type, any
        /// sequence number) is read record by record: each is either read
        /// or quarantined, never a panic, and the read ones keep their order.
        #[test]
        fn kinesis_records_are_read_one_by_one(
            items in proptest::collection::vec(
                (proptest::prelude::any::<String>(), proptest::prelude::any::<Vec<u8>>(), 0u8..4),
                0..24,
            )
        ) {
            use base64::Engine;
            let mut records = Vec::new();
            let mut readable = Vec::new();
            for (i, (text, bytes, kind)) in items.iter().enumerate() {
                let seq = serde_json::json!(format!("{i:056}"));
                let (data, ok) = match kind {
                    0 => (serde_json::json!(base64::engine::general_purpose::STANDARD.encode(bytes)), true),
                    // Any text: read if it is base64, quarantined if not.
                    1 => (serde_json::json!(text), false),
                    2 => (serde_json::json!(bytes.len()), false),
                    _ => (serde_json::json!(null), false),
                };
                let mut r = record(&seq, &data);
                if ok && text.len() % 5 == 0 {
                    r["kinesis"]["sequenceNumber"] = serde_json::json!(text.len());
                    records.push(r);
                    continue;
                }
                if ok {
                    readable.push(format!("{i:056}"));
                }
                records.push(r);
            }
            let (event, rejected) = kinesis_records(&records);
            proptest::prop_assert_eq!(event.records.len() as u64 + rejected, records.len() as u64);
            let read: Vec<String> = event.records.iter().map(|r| r.kinesis.sequence_number.clone()).collect();
            for seq in &readable {
                proptest::prop_assert!(read.contains(seq), "{} not read", seq);
            }
        }

        /// Sequence positions order as the numbers do, whatever the
        /// leading zeros; anything but 1-128 digits is refused, never a panic.
        #[test]
        fn sequence_positions_order_as_numbers(a in "[0-9]{1,60}", b in "[0-9]{1,60}", junk in proptest::prelude::any::<String>()) {
            use tollgate_core::Position;
            let number = |s: &str| {
                let t = s.trim_start_matches('0');
                (t.len(), t.to_owned())
            };
            let (pa, pb) = (Position::of_sequence(&a).unwrap(), Position::of_sequence(&b).unwrap());
            proptest::prop_assert_eq!(pa.cmp(&pb), number(&a).cmp(&number(&b)));
            let valid = !junk.is_empty() && junk.bytes().all(|c| c.is_ascii_digit())
                && junk.trim_start_matches('0').len() <= 128;
            proptest::prop_assert_eq!(Position::of_sequence(&junk).is_ok(), valid);
        }
    }
}
