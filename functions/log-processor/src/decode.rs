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
    if let Some(out) = gunzip_whole(bytes, limit) {
        return Ok(out);
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

/// The common case in one call: one gzip member with a plain 10-byte header
/// (no optional fields) that ends exactly at the end of `bytes`, whose
/// trailer gives a size within the cap. It is inflated straight into a
/// buffer of that size (which lets the inflater skip its window buffer and
/// the copy out of it) and then checked against the trailer's CRC-32 and
/// size. `None` for anything else, left to [`GzDecoder`]: whatever this
/// returns, [`GzDecoder`] would return the same bytes for.
fn gunzip_whole(bytes: &[u8], limit: usize) -> Option<Vec<u8>> {
    use flate2::{Crc, Decompress, FlushDecompress, Status};
    let header = bytes.get(..10)?;
    let trailer = bytes.len().checked_sub(8).and_then(|at| bytes.get(at..))?;
    if header[..4] != [0x1f, 0x8b, 8, 0] || bytes.len() < 18 {
        return None;
    }
    let crc = u32::from_le_bytes(trailer[..4].try_into().ok()?);
    let size = usize::try_from(u32::from_le_bytes(trailer[4..].try_into().ok()?)).ok()?;
    if size == 0 || size > limit {
        return None;
    }
    let deflated = &bytes[10..bytes.len() - 8];
    let mut out = Vec::with_capacity(size);
    let mut inflater = Decompress::new(false);
    match inflater.decompress_vec(deflated, &mut out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) => {}
        _ => return None,
    }
    if inflater.total_in() != deflated.len() as u64 || out.len() != size {
        return None;
    }
    let mut check = Crc::new();
    check.update(&out);
    (check.sum() == crc).then_some(out)
}

/// Whether the one-call gunzip agrees with the streaming one on `bytes`:
/// it either declines them or returns what the streaming one returns. For
/// the tests and the fuzz target.
pub fn gunzip_agrees(bytes: &[u8], limit: usize) -> bool {
    match gunzip_whole(bytes, limit) {
        None => true,
        Some(out) => {
            let cap = limit.saturating_add(1);
            let mut streamed = Vec::new();
            GzDecoder::new(bytes)
                .take(cap as u64)
                .read_to_end(&mut streamed)
                .is_ok()
                && streamed == out
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
        Some(fast) => parse_payload_serde(bytes).ok() == Some(fast),
    }
}

/// Reads a payload in one pass when it is a plain JSON object of the
/// expected shape; `None` (leaving it to `serde_json`) for anything else:
/// surrogate escapes, numbers other than plain non-negative integers,
/// nested values other than `logEvents` and arrays of plain values,
/// duplicate or missing fields, trailing text, any error.
pub fn parse_payload_fast(text: &str) -> Option<LogsPayload<'_>> {
    let mut p = Scan::new(text);
    let (mut message_type, mut owner, mut log_group, mut log_stream, mut log_events) =
        (None, None, None, None, None);
    p.object(|p, key| match key {
        "messageType" => once(&mut message_type, p.string()?),
        "owner" => once(&mut owner, p.string()?),
        "logGroup" => once(&mut log_group, p.string()?),
        "logStream" => once(&mut log_stream, p.string()?),
        "logEvents" => {
            let mut events = Vec::new();
            p.array(|p| {
                events.push(log_event(p)?);
                Some(())
            })?;
            once(&mut log_events, events)
        }
        _ => p.skip_value(),
    })?;
    p.end()?;
    Some(LogsPayload {
        message_type: message_type?,
        owner: owner.unwrap_or_default(),
        log_group: log_group?,
        log_stream: log_stream?,
        log_events: log_events.unwrap_or_default(),
    })
}

fn log_event<'a>(p: &mut Scan<'a>) -> Option<LogEvent<'a>> {
    let (mut id, mut timestamp, mut message) = (None, None, None);
    p.object(|p, key| match key {
        "id" => once(&mut id, p.string()?),
        "timestamp" => once(&mut timestamp, p.uint()?),
        "message" => once(&mut message, p.string()?),
        _ => p.skip_value(),
    })?;
    Some(LogEvent {
        id: id?,
        timestamp: timestamp?,
        message: message?,
    })
}

/// Sets a field seen for the first time (serde rejects duplicate fields).
pub(crate) fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

/// A strict, minimal JSON reader for the fast paths: every method returns
/// `None` for anything it does not read exactly as `serde_json` would, and
/// the caller then falls back to `serde_json`. Positions only ever stop at
/// ASCII bytes, so slicing the text there is always at a char boundary.
pub(crate) struct Scan<'a> {
    text: &'a str,
    at: usize,
    scratch: Vec<u8>,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is `"`, `\\` or a control
/// character, and maybe of bytes above the first such one: the lowest set
/// bit always marks a real one.
#[inline]
fn specials(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    ((quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash)
        | (w.wrapping_sub(ONES * 0x20) & !w))
        & HIGHS
}

/// The four hex digits of a `\\u` escape at `at`.
fn hex4(text: &str, at: usize) -> Option<u32> {
    let hex = text.get(at..at + 4)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// The byte of an escape sequence's second character, for the one-byte escapes.
fn simple_escape(c: u8) -> Option<u8> {
    Some(match c {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        _ => return None,
    })
}

impl<'a> Scan<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Scan {
            text,
            at: 0,
            scratch: Vec::new(),
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    /// Skips JSON whitespace.
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Expects `byte` after optional whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.ws();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Expects nothing but whitespace to the end.
    pub(crate) fn end(&mut self) -> Option<()> {
        self.ws();
        (self.at == self.text.len()).then_some(())
    }

    /// Reads an object, calling `field` with each key, positioned at its value.
    pub(crate) fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.ws();
            let key = self.plain_string()?;
            self.eat(b':')?;
            self.ws();
            field(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Reads an array, calling `item` positioned at each item.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Skips a plain value: a string, a plain integer, `true`, `false`,
    /// `null`, or an array of those.
    pub(crate) fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'[' => self.array(|p| match p.peek()? {
                b'[' | b'{' => None,
                _ => p.skip_value(),
            }),
            _ => self.scalar().map(|_| ()),
        }
    }

    /// Reads a string, a plain integer, `true`, `false` or `null`.
    pub(crate) fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Scalar::Str),
            b'0'..=b'9' => self.uint().map(Scalar::Int),
            _ => {
                for (word, value) in [
                    ("true", Scalar::Bool(true)),
                    ("false", Scalar::Bool(false)),
                    ("null", Scalar::Null),
                ] {
                    if self.text[self.at..].starts_with(word) {
                        self.at += word.len();
                        return Some(value);
                    }
                }
                None
            }
        }
    }

    /// Reads a non-negative integer of at most 18 digits, without a
    /// fraction or exponent (so it fits `i64` and `u64` alike).
    pub(crate) fn uint(&mut self) -> Option<i64> {
        let digits = self.bytes()[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.text[self.at..self.at + digits];
        if digits == 0 || digits > 18 || (digits > 1 && text.starts_with('0')) {
            return None;
        }
        self.at += digits;
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        text.parse().ok()
    }

    /// Finds the next `"`, `\\` or control character from the position.
    fn next_special(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        while let Some(chunk) = bytes.get(self.at..self.at + 8) {
            let w = u64::from_le_bytes(chunk.try_into().ok()?);
            let m = specials(w);
            if m != 0 {
                self.at += (m.trailing_zeros() / 8) as usize;
                return bytes.get(self.at).copied();
            }
            self.at += 8;
        }
        while let Some(&b) = bytes.get(self.at) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// Reads a string without escapes, borrowed.
    pub(crate) fn plain_string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let start = self.at;
        match self.next_special()? {
            b'"' => {
                self.at += 1;
                Some(&self.text[start..self.at - 1])
            }
            _ => None,
        }
    }

    /// Reads a string: borrowed when it has no escapes, unescaped otherwise.
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let start = self.at;
        match self.next_special()? {
            b'"' => {
                self.at += 1;
                Some(Cow::Borrowed(&self.text[start..self.at - 1]))
            }
            b'\\' => self.unescape(start).map(Cow::Owned),
            _ => None,
        }
    }

    /// Finishes a string that has an escape at the position: unescapes it
    /// into the reused scratch buffer (8 bytes at a time between escapes),
    /// then copies it out at its exact size.
    fn unescape(&mut self, start: usize) -> Option<String> {
        let bytes = self.bytes();
        let out = &mut self.scratch;
        out.clear();
        out.extend_from_slice(bytes.get(start..self.at)?);
        let mut i = self.at;
        loop {
            while let Some(chunk) = bytes.get(i..i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().ok()?);
                let m = specials(w);
                // Copy the whole word, then drop what follows a special byte.
                out.extend_from_slice(&w.to_le_bytes());
                if m != 0 {
                    let keep = (m.trailing_zeros() / 8) as usize;
                    out.truncate(out.len() - (8 - keep));
                    i += keep;
                    break;
                }
                i += 8;
            }
            match *bytes.get(i)? {
                b'"' => {
                    self.at = i + 1;
                    return String::from_utf8(out.clone()).ok();
                }
                b'\\' => {
                    let c = *bytes.get(i + 1)?;
                    if let Some(b) = simple_escape(c) {
                        out.push(b);
                        i += 2;
                    } else if c == b'u' {
                        let code = hex4(self.text, i + 2)?;
                        let (c, len) = if (0xD800..0xDC00).contains(&code) {
                            // A surrogate pair; a lone surrogate is left to serde_json.
                            if bytes.get(i + 6..i + 8) != Some(&b"\\u"[..]) {
                                return None;
                            }
                            let low = hex4(self.text, i + 8)?;
                            if !(0xDC00..0xE000).contains(&low) {
                                return None;
                            }
                            let c =
                                char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00));
                            (c?, 12)
                        } else {
                            (char::from_u32(code)?, 6)
                        };
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        i += len;
                    } else {
                        return None;
                    }
                }
                b if b < 0x20 => return None,
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
    }
}

/// A plain JSON value read by [`Scan::scalar`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    Null,
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

    #[test]
    fn the_one_pass_reader_agrees_with_serde_json() {
        let realistic = crate::sample::payload_json(
            "g",
            "s",
            &crate::sample::Traffic::new(50, 1.1, 50, 0.2, 7)
                .events(50, 1_795_000_000_000, 3)
                .0,
        );
        let parsed = parse_payload_fast(std::str::from_utf8(&realistic).unwrap()).unwrap();
        assert_eq!(parsed.log_events.len(), 50);
        assert!(fast_payload_agrees(&realistic));
        let control = crate::sample::control_json();
        assert!(parse_payload_fast(std::str::from_utf8(&control).unwrap()).is_some());
        assert!(fast_payload_agrees(&control));
        let ev = r#"{"id":"1","timestamp":5,"message":"m"}"#;
        let payloads = [
            PAYLOAD.to_owned(),
            format!(r#"{{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{ev}]}}"#),
            format!(r#"{{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{ev},{ev}],"owner":null}}"#),
            format!(r#"{{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{ev}],"logGroup":"h"}}"#),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logEvents":[]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s"}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":null}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":-5,"message":"m"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5.0,"message":"m"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"m","x":[1]}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"\u00e9\"\\\/\b\f\n\r\t\ud83d\ude00"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"\u00e9\"\\\/\b\f\n\r\t"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"\u00"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"a\ud83d"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"a\ud83dx"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"a\ud83d\u0041"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"a\ude00\ud83d"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"a\uDBFF\uDFFF\uD800\uDC00 \uFFFF\u0000"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"\q"}]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"m"},]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","subscriptionFilters":[["x"]]}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","subscriptionFilters":{}}"#.to_owned(),
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s"} trailing"#.to_owned(),
            "\u{feff}{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"g\",\"logStream\":\"s\"}".to_owned(),
            r#"{"messageType":1,"logGroup":"g","logStream":"s"}"#.to_owned(),
            String::new(),
            "[]".to_owned(),
        ];
        for payload in &payloads {
            assert!(fast_payload_agrees(payload.as_bytes()), "{payload}");
        }
        let emoji = r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"\ud83d\ude00 \u00e9\n"}]}"#;
        let parsed = parse_payload_fast(emoji).unwrap();
        assert_eq!(parsed.log_events[0].message, "\u{1f600} \u{e9}\n");
        let mut bad_utf8 = PAYLOAD.as_bytes().to_vec();
        bad_utf8[80] = 0xff;
        assert!(fast_payload_agrees(&bad_utf8));
        assert!(parse_payload(&bad_utf8).is_err());
    }

    #[test]
    fn the_one_call_gunzip_agrees_with_the_streaming_one() {
        let plain = crate::sample::payload_json(
            "g",
            "s",
            &crate::sample::Traffic::new(50, 1.1, 50, 0.2, 7)
                .events(200, 1_795_000_000_000, 3)
                .0,
        );
        let gz = gzip(&plain);
        assert_eq!(gunzip_whole(&gz, 1 << 20).as_deref(), Some(&plain[..]));
        assert!(gunzip_agrees(&gz, 1 << 20));
        assert_eq!(gunzip_capped(&gz, 1 << 20).unwrap(), plain);
        // Not taken: over the cap, trailing bytes, a header with a file name,
        // a wrong CRC or size; the streaming path decides as before.
        assert_eq!(gunzip_whole(&gz, plain.len() - 1), None);
        assert_eq!(
            gunzip_capped(&gz, plain.len() - 1),
            Err(DecodeError::TooLarge {
                limit: plain.len() - 1
            })
        );
        let mut trailing = gz.clone();
        trailing.extend_from_slice(b"junk");
        assert_eq!(gunzip_whole(&trailing, 1 << 20), None);
        assert_eq!(gunzip_capped(&trailing, 1 << 20).unwrap(), plain);
        let mut named = flate2::GzBuilder::new()
            .filename("payload.json")
            .write(Vec::new(), flate2::Compression::default());
        named.write_all(&plain).unwrap();
        let named = named.finish().unwrap();
        assert_eq!(gunzip_whole(&named, 1 << 20), None);
        assert_eq!(gunzip_capped(&named, 1 << 20).unwrap(), plain);
        let n = gz.len();
        for at in [n - 8, n - 4, n - 1] {
            let mut bad = gz.clone();
            bad[at] ^= 0x01;
            assert_eq!(gunzip_whole(&bad, 1 << 20), None);
            assert!(gunzip_capped(&bad, 1 << 20).is_err());
        }
        assert_eq!(gunzip_whole(&gzip(b""), 1 << 20), None);
        assert_eq!(gunzip_capped(&gzip(b""), 1 << 20).unwrap(), b"");
    }
}
