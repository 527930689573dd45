//! Decoding CloudWatch Logs subscription payloads: base64, then gzip with
//! a cap on the decompressed size, then the payload's JSON.
//!
//! `aws_lambda_events`' `LogsEvent` decompresses `awslogs.data` while it
//! deserializes, without any size limit, so a gzip bomb would exhaust the
//! function's memory. This module decodes the same bytes with a cap and
//! borrows the log lines from the decompressed buffer where it can.

use std::borrow::Cow;
use std::io::Read;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use flate2::read::GzDecoder;
use serde::Deserialize;

/// Base64 as CloudWatch Logs and Kinesis send it (padded), also accepting
/// unpadded text (as `aws_lambda_events` serializes it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why a payload could not be decoded. Nothing of such a payload is counted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The text is not base64.
    #[error("payload is not valid base64: {0}")]
    Base64(String),
    /// The bytes do not start with the gzip magic number.
    #[error("payload is not gzip data (CloudWatch Logs always gzips subscription payloads)")]
    NotGzip,
    /// The gzip stream ends early or is corrupt.
    #[error("payload is truncated or corrupt gzip: {0}")]
    Gzip(String),
    /// The decompressed size exceeds the cap.
    #[error("payload decompresses to more than {limit} bytes (gzip bomb?); rejected")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The decompressed bytes are not a CloudWatch Logs payload.
    #[error("payload is not a CloudWatch Logs subscription payload: {0}")]
    Json(String),
}

/// Decodes base64 text.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    BASE64
        .decode(text.trim())
        .map_err(|e| DecodeError::Base64(e.to_string()))
}

/// Decompresses gzip bytes, failing once the output would exceed `limit` bytes.
pub fn gunzip_capped(bytes: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Err(DecodeError::NotGzip);
    }
    let cap = limit.saturating_add(1);
    // A payload rarely compresses worse than 1:4; start there, within the cap.
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(8).min(cap));
    GzDecoder::new(bytes)
        .take(cap as u64)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Gzip(e.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

/// Base64 text to decompressed payload bytes.
pub fn decode_data(text: &str, limit: usize) -> Result<Vec<u8>, DecodeError> {
    gunzip_capped(&base64_decode(text)?, limit)
}

/// The two kinds of CloudWatch Logs subscription payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Log events.
    Data,
    /// A health check of the destination: acknowledged and ignored.
    Control,
}

/// A decompressed CloudWatch Logs subscription payload, borrowing from its bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsPayload<'a> {
    /// `DATA_MESSAGE` or `CONTROL_MESSAGE`.
    #[serde(borrow)]
    pub message_type: Cow<'a, str>,
    /// The account that owns the log group.
    #[serde(default, borrow)]
    pub owner: Cow<'a, str>,
    /// The log group.
    #[serde(borrow)]
    pub log_group: Cow<'a, str>,
    /// The log stream.
    #[serde(borrow)]
    pub log_stream: Cow<'a, str>,
    /// The log events.
    #[serde(default, borrow)]
    pub log_events: Vec<LogEvent<'a>>,
}

/// One log event.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEvent<'a> {
    /// CloudWatch Logs' id of the event, unique and stable across redeliveries.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// When the event was ingested, epoch milliseconds.
    pub timestamp: i64,
    /// The log line.
    #[serde(borrow)]
    pub message: Cow<'a, str>,
}

impl LogsPayload<'_> {
    /// The payload's kind.
    pub fn kind(&self) -> Result<MessageType, DecodeError> {
        match self.message_type.as_ref() {
            "DATA_MESSAGE" => Ok(MessageType::Data),
            "CONTROL_MESSAGE" => Ok(MessageType::Control),
            other => Err(DecodeError::Json(format!(
                "unknown messageType {:?}",
                truncate(other, 40)
            ))),
        }
    }
}

/// Parses decompressed payload bytes.
pub fn parse_payload(bytes: &[u8]) -> Result<LogsPayload<'_>, DecodeError> {
    let payload: LogsPayload<'_> =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    payload.kind()?;
    Ok(payload)
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    const PAYLOAD: &str = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":5,"message":"{\"a\":1}\n"}],"policyLevel":"ACCOUNT_LEVEL_POLICY"}"#;

    #[test]
    fn decodes_a_payload_padded_or_not() {
        let gz = gzip(PAYLOAD.as_bytes());
        for text in [
            base64::engine::general_purpose::STANDARD.encode(&gz),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&gz),
        ] {
            let bytes = decode_data(&text, 1 << 20).unwrap();
            let payload = parse_payload(&bytes).unwrap();
            assert_eq!(payload.kind().unwrap(), MessageType::Data);
            assert_eq!(payload.log_group, "g");
            assert_eq!(payload.log_events.len(), 1);
            assert_eq!(payload.log_events[0].message, "{\"a\":1}\n");
            assert_eq!(payload.log_events[0].timestamp, 5);
        }
    }

    #[test]
    fn rejects_bad_input_clearly() {
        assert!(matches!(
            decode_data("not base64 !!", 1024),
            Err(DecodeError::Base64(_))
        ));
        let plain = base64::engine::general_purpose::STANDARD.encode(PAYLOAD);
        assert_eq!(decode_data(&plain, 1 << 20), Err(DecodeError::NotGzip));
        let gz = gzip(PAYLOAD.as_bytes());
        let truncated = base64::engine::general_purpose::STANDARD.encode(&gz[..gz.len() / 2]);
        assert!(matches!(
            decode_data(&truncated, 1 << 20),
            Err(DecodeError::Gzip(_))
        ));
        let mut corrupt = gz.clone();
        corrupt[12] ^= 0xff;
        corrupt[14] ^= 0xff;
        assert!(gunzip_capped(&corrupt, 1 << 20).is_err());
        let not_json = gzip(b"hello");
        assert!(matches!(
            parse_payload(&gunzip_capped(&not_json, 1024).unwrap()),
            Err(DecodeError::Json(_))
        ));
        let wrong_types =
            gzip(br#"{"messageType":"DATA_MESSAGE","logGroup":1,"logStream":"s","logEvents":[]}"#);
        assert!(matches!(
            parse_payload(&gunzip_capped(&wrong_types, 1024).unwrap()),
            Err(DecodeError::Json(_))
        ));
        let unknown = gzip(br#"{"messageType":"OTHER","logGroup":"g","logStream":"s"}"#);
        assert!(matches!(
            parse_payload(&gunzip_capped(&unknown, 1024).unwrap()),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn stops_a_gzip_bomb_at_the_cap() {
        // 64 MiB of zeros compress to about 64 KiB.
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 200_000);
        assert_eq!(
            gunzip_capped(&bomb, 16 << 20),
            Err(DecodeError::TooLarge { limit: 16 << 20 })
        );
        // Exactly at the cap is fine.
        assert_eq!(
            gunzip_capped(&gzip(&[7u8; 4096]), 4096).unwrap().len(),
            4096
        );
        assert_eq!(
            gunzip_capped(&gzip(&[7u8; 4097]), 4096),
            Err(DecodeError::TooLarge { limit: 4096 })
        );
    }

    #[test]
    fn truncates_at_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
