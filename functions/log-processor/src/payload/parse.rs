//! [`parse_payload`]: the one-pass scanner where it reads a payload
//! exactly, `serde_json` for everything else, and [`fast_payload_agrees`],
//! the check that the two agree.

use super::gzip::DecodeError;
use super::model::LogsPayload;
use super::scan::parse_payload_fast;
use super::template;

/// Parses decompressed payload bytes.
///
/// A payload in the plain shape CloudWatch Logs sends is read by
/// [`parse_payload_fast`] in one pass; anything else (and every error) goes
/// through `serde_json`, which gives the same result for what the fast path
/// reads ([`fast_payload_agrees`], checked by the tests and the fuzz target).
pub fn parse_payload(bytes: &[u8]) -> Result<LogsPayload<'_>, DecodeError> {
    let payload = match std::str::from_utf8(bytes).ok().and_then(parse_payload_fast) {
        Some(payload) => payload,
        None => parse_payload_serde(bytes)?,
    };
    payload.kind()?;
    Ok(payload)
}

/// Parses payload bytes with `serde_json` only.
fn parse_payload_serde(bytes: &[u8]) -> Result<LogsPayload<'_>, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))
}

/// Whether [`parse_payload_fast`] agrees with `serde_json` on `bytes`: it
/// either declines them or reads exactly what `serde_json` reads. For the
/// tests and the fuzz target.
pub fn fast_payload_agrees(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes).ok().and_then(parse_payload_fast) {
        None => true,
        Some(fast) => {
            // The access lines read while reading the payload are the ones
            // the template reader reads from each message on its own.
            fast.log_events
                .iter()
                .all(|e| e.message.access() == e.message.escaped().and_then(template::read_escaped))
                && parse_payload_serde(bytes).ok() == Some(fast)
        }
    }
}
