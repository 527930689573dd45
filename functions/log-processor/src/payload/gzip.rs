//! Base64 and gzip, capped: the bytes of a subscription payload.
//!
//! `aws_lambda_events`' `LogsEvent` decompresses `awslogs.data` while it
//! deserializes, without any size limit, so a gzip bomb would exhaust the
//! function's memory. This module decompresses the same bytes with a cap.

use std::io::Read;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use flate2::read::GzDecoder;

/// Base64 as CloudWatch Logs and Kinesis send it (padded), also accepting
/// unpadded text (as `aws_lambda_events` serializes it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why a payload could not be decoded. Nothing of such a payload is counted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
    let mut out = Vec::new();
    gunzip_into(bytes, limit, &mut out)?;
    Ok(out)
}

/// [`gunzip_capped`] into `out`, which it clears first and whose capacity
/// it reuses.
fn gunzip_into(bytes: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    out.clear();
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Err(DecodeError::NotGzip);
    }
    if gunzip_whole(bytes, limit, out) {
        return Ok(());
    }
    out.clear();
    let cap = limit.saturating_add(1);
    // A payload rarely compresses worse than 1:4; start there, within the cap.
    out.reserve(bytes.len().saturating_mul(8).min(cap));
    GzDecoder::new(bytes)
        .take(cap as u64)
        .read_to_end(out)
        .map_err(|e| DecodeError::Gzip(e.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(())
}

/// The common case in one call: one gzip member with a plain 10-byte header
/// (no optional fields) that ends exactly at the end of `bytes`, whose
/// trailer gives a size within the cap. It is inflated straight into `out`
/// (empty, with room for that size: this lets the inflater skip its window
/// buffer and the copy out of it) and then checked against the trailer's
/// CRC-32 and size. `false` for anything else, left to [`GzDecoder`]:
/// whatever this returns, [`GzDecoder`] would return the same bytes for.
pub(super) fn gunzip_whole(bytes: &[u8], limit: usize, out: &mut Vec<u8>) -> bool {
    use flate2::{Crc, Decompress, FlushDecompress, Status};
    let Some((crc, size)) = plain_gzip_trailer(bytes) else {
        return false;
    };
    if size == 0 || size > limit {
        return false;
    }
    let deflated = &bytes[10..bytes.len() - 8];
    out.clear();
    out.reserve(size);
    let mut inflater = Decompress::new(false);
    match inflater.decompress_vec(deflated, out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) => {}
        _ => return false,
    }
    if inflater.total_in() != deflated.len() as u64 || out.len() != size {
        return false;
    }
    let mut check = Crc::new();
    check.update(out);
    check.sum() == crc
}

/// The CRC-32 and size in the trailer of a gzip member with a plain
/// 10-byte header, when `bytes` is one.
fn plain_gzip_trailer(bytes: &[u8]) -> Option<(u32, usize)> {
    let header = bytes.get(..10)?;
    let trailer = bytes.len().checked_sub(8).and_then(|at| bytes.get(at..))?;
    if header[..4] != [0x1f, 0x8b, 8, 0] || bytes.len() < 18 {
        return None;
    }
    let crc = u32::from_le_bytes(trailer[..4].try_into().ok()?);
    let size = usize::try_from(u32::from_le_bytes(trailer[4..].try_into().ok()?)).ok()?;
    Some((crc, size))
}

/// Whether the one-call gunzip agrees with the streaming one on `bytes`:
/// it either declines them or returns what the streaming one returns. For
/// the tests and the fuzz target.
pub fn gunzip_agrees(bytes: &[u8], limit: usize) -> bool {
    let mut out = Vec::new();
    if !gunzip_whole(bytes, limit, &mut out) {
        return true;
    }
    let cap = limit.saturating_add(1);
    let mut streamed = Vec::new();
    GzDecoder::new(bytes)
        .take(cap as u64)
        .read_to_end(&mut streamed)
        .is_ok()
        && streamed == out
}

/// Base64 text to decompressed payload bytes.
pub fn decode_data(text: &str, limit: usize) -> Result<Vec<u8>, DecodeError> {
    gunzip_capped(&base64_decode(text)?, limit)
}

/// Decodes payloads into two buffers that it keeps from one payload to the
/// next: [`decode_data`] and [`gunzip_capped`] without allocating (and the
/// kernel without zeroing fresh pages for) a new buffer of the payload's
/// size per batch, once the buffers have grown to the largest payload
/// seen (at most the cap). For a processor that lives across invocations.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The base64-decoded (gzip) bytes.
    gzip: Vec<u8>,
    /// The decompressed payload.
    bytes: Vec<u8>,
}

impl Decoder {
    /// A decoder with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`decode_data`] into the kept buffers.
    pub fn decode_data(&mut self, text: &str, limit: usize) -> Result<&[u8], DecodeError> {
        self.gzip.clear();
        BASE64
            .decode_vec(text.trim(), &mut self.gzip)
            .map_err(|e| DecodeError::Base64(e.to_string()))?;
        gunzip_into(&self.gzip, limit, &mut self.bytes)?;
        Ok(&self.bytes)
    }

    /// [`gunzip_capped`] into the kept buffer.
    pub fn gunzip(&mut self, gzip: &[u8], limit: usize) -> Result<&[u8], DecodeError> {
        gunzip_into(gzip, limit, &mut self.bytes)?;
        Ok(&self.bytes)
    }
}
