//! Decoding CloudWatch Logs subscription payloads: base64, then gzip with
//! a cap on the decompressed size, then the payload's JSON.
//!
//! `aws_lambda_events`' `LogsEvent` decompresses `awslogs.data` while it
//! deserializes, without any size limit, so a gzip bomb would exhaust the
//! function's memory. This module decodes the same bytes with a cap and
//! borrows the log lines from the decompressed buffer where it can.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::ops::Deref;
use std::sync::OnceLock;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use flate2::read::GzDecoder;
use serde::Deserialize;

use crate::access::{self, AccessFields, AccessLine};

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
fn gunzip_whole(bytes: &[u8], limit: usize, out: &mut Vec<u8>) -> bool {
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
    pub message: Message<'a>,
}

/// A log event's message (the log line), a string that dereferences to
/// its text.
///
/// The one-pass payload reader keeps a message whose JSON string has only
/// one-character escapes (`\"`, `\\`, `\n`, ...) as it is, checked, and
/// unescapes it only when its text is first asked for: the line reader
/// reads most such messages (a JSON line is full of `\"`) straight from
/// their escaped form ([`Message::escaped`]), without copying them.
#[derive(Clone, Default)]
pub struct Message<'a> {
    /// The JSON text between the string's quotes, holding only checked
    /// one-character escapes; `None` when `text` was set from the start.
    escaped: Option<&'a str>,
    /// The text, set from the start or unescaped on first use.
    text: OnceLock<Cow<'a, str>>,
    /// Where the fields are in `escaped` when it is an access line written
    /// exactly in the template, as the payload reader found while checking it.
    access: Option<AccessLine>,
}

impl<'a> Message<'a> {
    /// A message from JSON string content whose escapes are all checked
    /// one-character ones (see [`simple_escape`]).
    fn from_escaped(escaped: &'a str) -> Self {
        Message {
            escaped: Some(escaped),
            text: OnceLock::new(),
            access: None,
        }
    }

    /// The fields of the access line this message is, when the payload
    /// reader read it in exactly [`crate::line::ACCESS_LOG_FORMAT`]
    /// (the same fields the general line reader reads from it).
    pub(crate) fn access(&self) -> Option<AccessFields<'a>> {
        self.access?.fields(self.escaped?)
    }

    /// The message's JSON string content as the payload had it (between the
    /// quotes, only one-character escapes), when it was kept so.
    pub fn escaped(&self) -> Option<&'a str> {
        self.escaped
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.text.get_or_init(|| match self.escaped {
            Some(escaped) => Cow::Owned(unescape_simple(escaped)),
            None => Cow::Borrowed(""),
        })
    }
}

impl<'a> From<Cow<'a, str>> for Message<'a> {
    fn from(text: Cow<'a, str>) -> Self {
        Message {
            escaped: None,
            text: OnceLock::from(text),
            access: None,
        }
    }
}

impl<'a> From<&'a str> for Message<'a> {
    fn from(text: &'a str) -> Self {
        Cow::Borrowed(text).into()
    }
}

impl From<String> for Message<'_> {
    fn from(text: String) -> Self {
        Cow::<str>::Owned(text).into()
    }
}

impl Deref for Message<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Message<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Message<'_> {}

impl PartialEq<str> for Message<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Message<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Message<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Message<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Message::from(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Message::from(v.to_owned()))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// Unescapes JSON string content whose escapes are one-character ones
/// (anything else, which the payload reader never lets through, is kept as it is).
fn unescape_simple(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.bytes().next().and_then(simple_escape) {
            Some(b) => {
                out.push(char::from(b));
                // The escaped character is ASCII: one byte.
                rest = after.get(1..).unwrap_or("");
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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
        Some(fast) => {
            // The access lines read while reading the payload are the ones
            // the template reader reads from each message on its own.
            fast.log_events
                .iter()
                .all(|e| e.message.access() == e.message.escaped().and_then(access::read_escaped))
                && parse_payload_serde(bytes).ok() == Some(fast)
        }
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
                let start = p.at;
                events.push(log_event(p)?);
                if events.len() == 1 {
                    // Room for as many events as the rest of the payload
                    // holds at the first one's size (within reason), rather
                    // than a dozen reallocations of a growing vector.
                    let per_event = (p.at - start).max(64);
                    events.reserve(((p.text.len() - p.at) / per_event).min(10_000));
                }
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
    let start = p.at;
    if let Some(event) = plain_log_event(p) {
        return Some(event);
    }
    p.at = start;
    let (mut id, mut timestamp, mut message) = (None, None, None);
    p.object(|p, key| match key {
        "id" => once(&mut id, p.string()?),
        "timestamp" => once(&mut timestamp, p.uint()?),
        "message" => once(&mut message, p.message()?),
        _ => p.skip_value(),
    })?;
    Some(LogEvent {
        id: id?,
        timestamp: timestamp?,
        message: message?,
    })
}

/// Reads a log event written as CloudWatch Logs writes them, without
/// whitespace, an id without escapes first and then the timestamp and the
/// message: `{"id":"...","timestamp":...,"message":"..."}` (or the message
/// before the timestamp, as `serde_json` writes a `Value`, keys sorted).
/// `None` for anything else, which [`log_event`] then reads in general (and
/// the same way when this reads it).
fn plain_log_event<'a>(p: &mut Scan<'a>) -> Option<LogEvent<'a>> {
    p.fixed(br#"{"id":""#)?;
    let start = p.at;
    let end = find_special(p.bytes(), start)?;
    if p.bytes().get(end) != Some(&b'"') {
        return None;
    }
    let id = p.text.get(start..end)?;
    p.at = end + 1;
    let (timestamp, message);
    if p.fixed(br#","timestamp":"#).is_some() {
        timestamp = p.uint()?;
        p.fixed(br#","message":"#)?;
        message = p.message()?;
    } else {
        p.fixed(br#","message":"#)?;
        message = p.message()?;
        p.fixed(br#","timestamp":"#)?;
        timestamp = p.uint()?;
    }
    p.fixed(b"}")?;
    Some(LogEvent {
        id: Cow::Borrowed(id),
        timestamp,
        message,
    })
}

/// Reads one JSON string (with its quotes) as the payload reader reads a
/// log event's message. For the tests and the fuzz target.
pub(crate) fn read_message(quoted: &str) -> Option<Message<'_>> {
    let mut p = Scan::new(quoted);
    let message = p.message()?;
    p.end()?;
    Some(message)
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
///
/// In escaped mode ([`Scan::escaped`]) it reads JSON that is itself the
/// content of a JSON string with only one-character escapes (a log line as
/// the payload holds it): `\"` is a quote, `\n` a new line, and so on. It
/// then borrows only strings without escapes in the inner JSON, which are
/// the same text escaped or not, and declines any other string.
pub(crate) struct Scan<'a> {
    text: &'a str,
    at: usize,
    scratch: Vec<u8>,
    escaped: bool,
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

/// The high bit of each byte of `w` that is `"`, `\\` or a control
/// character, and of no other byte.
#[inline]
fn specials_exact(w: u64) -> u64 {
    bytes_equal(w, b'"') | bytes_equal(w, b'\\') | controls(w)
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The high bit of each byte of `w` that is `c`, and of no other byte.
#[inline]
fn bytes_equal(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * u64::from(c));
    !(((x & LOW7) + LOW7) | x) & HIGHS
}

/// The high bit of each byte of `w` that is a control character, and of no other byte.
#[inline]
fn controls(w: u64) -> u64 {
    !((w & LOW7) + ONES * 0x60) & !w & HIGHS
}

/// The position of the first byte in `bytes` from `from` that `wanted`
/// accepts, eight bytes at a time: `marks` sets the high bit of each wanted
/// byte of a word, `wanted` judges the tail shorter than a word.
#[inline]
fn find_by_word(
    bytes: &[u8],
    mut from: usize,
    marks: impl Fn(u64) -> u64,
    wanted: impl Fn(u8) -> bool,
) -> Option<usize> {
    while let Some(chunk) = bytes.get(from..from.checked_add(8)?) {
        let m = marks(u64::from_le_bytes(chunk.try_into().ok()?));
        if m != 0 {
            return Some(from + (m.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    bytes
        .get(from..)?
        .iter()
        .position(|&b| wanted(b))
        .map(|i| from + i)
}

/// The position of the first backslash in `bytes` from `from`, eight bytes at a time.
pub(crate) fn find_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    find_by_word(bytes, from, |w| bytes_equal(w, b'\\'), |b| b == b'\\')
}

/// The position of the first `"`, `\\` or control character in `bytes`
/// from `from`, eight bytes at a time.
pub(crate) fn find_special(bytes: &[u8], from: usize) -> Option<usize> {
    find_by_word(bytes, from, specials, |b| {
        b == b'"' || b == b'\\' || b < 0x20
    })
}

/// The non-negative integer of 1 to 18 digits without a leading zero at
/// `at` (so it fits `i64` and `u64` alike), and the position after its
/// digits; `None` for anything else, longer numbers included.
#[inline]
pub(crate) fn read_uint(bytes: &[u8], at: usize) -> Option<(i64, usize)> {
    let digits = bytes.get(at..)?;
    let mut n: i64 = 0;
    let mut len = 0;
    for &b in digits.iter().take(18) {
        if !b.is_ascii_digit() {
            break;
        }
        n = n * 10 + i64::from(b - b'0');
        len += 1;
    }
    let more = digits.get(len).is_some_and(u8::is_ascii_digit);
    if len == 0 || more || (len > 1 && digits[0] == b'0') {
        return None;
    }
    Some((n, at + len))
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
            escaped: false,
        }
    }

    /// A reader of the JSON in `text`, JSON string content with only
    /// one-character escapes and no control character, as
    /// [`Message::escaped`] gives it.
    pub(crate) fn escaped(text: &'a str) -> Self {
        Scan {
            escaped: true,
            ..Scan::new(text)
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The byte at the position: in escaped mode, what an escape there stands for.
    #[inline]
    fn peek(&self) -> Option<u8> {
        let b = self.bytes().get(self.at).copied()?;
        if self.escaped && b == b'\\' {
            return simple_escape(*self.bytes().get(self.at + 1)?);
        }
        Some(b)
    }

    /// Steps over the byte at the position, or in escaped mode an escape.
    #[inline]
    fn step(&mut self) {
        self.at += if self.escaped && self.bytes().get(self.at) == Some(&b'\\') {
            2
        } else {
            1
        };
    }

    /// Skips JSON whitespace.
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.step();
        }
    }

    /// Expects `byte` after optional whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.ws();
        (self.peek()? == byte).then(|| self.step())
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
        let (n, end) = read_uint(self.bytes(), self.at)?;
        self.at = end;
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        Some(n)
    }

    /// Steps over `fixed` when the text has it at the position. Generic
    /// over the length, so that each comparison is a few inline word
    /// compares instead of a call to `memcmp`.
    #[inline(always)]
    pub(crate) fn fixed<const N: usize>(&mut self, fixed: &[u8; N]) -> Option<()> {
        let end = self.at.checked_add(N)?;
        let here: &[u8; N] = self.bytes().get(self.at..end)?.try_into().ok()?;
        (here == fixed).then(|| self.at = end)
    }

    /// Finds the next `"`, `\\` or control character from the position.
    fn next_special(&mut self) -> Option<u8> {
        self.at = find_special(self.bytes(), self.at)?;
        self.bytes().get(self.at).copied()
    }

    /// Reads a string without escapes, borrowed.
    pub(crate) fn plain_string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        self.step();
        let start = self.at;
        if self.escaped {
            // The content has no quote or control character (a checked
            // message): the string ends at the first backslash, which
            // must escape its closing quote.
            let end = find_backslash(self.bytes(), start)?;
            if self.bytes().get(end + 1) != Some(&b'"') {
                return None;
            }
            self.at = end + 2;
            return self.text.get(start..end);
        }
        let special = self.next_special()?;
        let text = self.text.get(start..self.at)?;
        match special {
            b'"' => {
                self.at += 1;
                Some(text)
            }
            _ => None,
        }
    }

    /// Reads a string: borrowed when it has no escapes, unescaped otherwise
    /// (in escaped mode, declined).
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.escaped {
            return self.plain_string().map(Cow::Borrowed);
        }
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

    /// Reads a log event's message string: kept escaped when its escapes
    /// are all one-character ones, unescaped otherwise. It checks every
    /// escape, eight bytes at a time between them.
    fn message(&mut self) -> Option<Message<'a>> {
        if self.escaped || self.peek()? != b'"' {
            return None;
        }
        let bytes = self.bytes();
        let start = self.at + 1;
        // Most messages are access lines in exactly the template: checked
        // and read in one pass (see `access::read`).
        if let Some((line, end)) = access::read(self.text, start) {
            if bytes.get(end) == Some(&b'"') {
                self.at = end + 1;
                return Some(Message {
                    access: Some(line),
                    ..Message::from_escaped(self.text.get(start..end)?)
                });
            }
        }
        let mut escapes = false;
        let mut i = start;
        // What the special byte at `k` means: the end at `Ok(k)`, an escape
        // checked (`Err(true)`) or anything else (`Err(false)`).
        let special = |k: usize| -> Result<usize, bool> {
            match bytes.get(k) {
                Some(b'"') => Ok(k),
                Some(b'\\') => Err(bytes
                    .get(k + 1)
                    .is_some_and(|&c| simple_escape(c).is_some())),
                _ => Err(false),
            }
        };
        // Whether the byte at `i` is escaped by a backslash before it.
        let mut carry = false;
        let end: Option<usize> = 'search: loop {
            if let Some(chunk) = bytes.get(i..i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().ok()?);
                // The common word first, without a branch per escape: no
                // control character, no escaped backslash, and every
                // escaped byte a quote and every quote escaped (`\"`).
                let backslashes = bytes_equal(w, b'\\');
                let escaped = (backslashes << 8) | (u64::from(carry) << 7);
                if controls(w) == 0 && backslashes & escaped == 0 && bytes_equal(w, b'"') == escaped
                {
                    escapes |= backslashes != 0;
                    carry = backslashes >> 63 != 0;
                    i += 8;
                    continue;
                }
                if carry {
                    // The escape that ended the last word.
                    if simple_escape(*bytes.get(i)?).is_none() {
                        break None;
                    }
                    carry = false;
                    i += 1;
                    continue;
                }
                let mut m = specials_exact(w);
                let mut next = i + 8;
                while m != 0 {
                    let k = i + (m.trailing_zeros() / 8) as usize;
                    match special(k) {
                        Ok(end) => break 'search Some(end),
                        Err(true) => {
                            escapes = true;
                            let after = k + 2;
                            if after >= i + 8 {
                                next = after;
                                break;
                            }
                            m &= u64::MAX << ((after - i) * 8);
                        }
                        Err(false) => break 'search None,
                    }
                }
                i = next;
            } else if carry {
                if simple_escape(*bytes.get(i)?).is_none() {
                    break None;
                }
                carry = false;
                i += 1;
            } else {
                match bytes.get(i)? {
                    b'"' | b'\\' => match special(i) {
                        Ok(end) => break Some(end),
                        Err(true) => {
                            escapes = true;
                            i += 2;
                        }
                        Err(false) => break None,
                    },
                    b if *b < 0x20 => return None,
                    _ => i += 1,
                }
            }
        };
        let Some(end) = end else {
            // A `\u` escape, or an error: read as any string.
            self.at = start - 1;
            return self.string().map(Message::from);
        };
        let text = self.text.get(start..end)?;
        self.at = end + 1;
        Some(if escapes {
            Message::from_escaped(text)
        } else {
            Message::from(text)
        })
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
    fn exact_specials() {
        let naive = |w: u64| {
            w.to_le_bytes()
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'"' || b == b'\\' || b < 0x20)
                .fold(0u64, |m, (i, _)| m | (0x80 << (8 * i)))
        };
        for b in 0..=255u8 {
            for at in 0..8 {
                for fill in [b'a', 0, b'"', 0xff, 0x20, 0x1f] {
                    let mut bytes = [fill; 8];
                    bytes[at] = b;
                    let w = u64::from_le_bytes(bytes);
                    assert_eq!(specials_exact(w), naive(w), "{bytes:?}");
                }
            }
        }
        let mut w = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            w = w.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            assert_eq!(specials_exact(w), naive(w));
        }
    }

    #[test]
    fn keeps_simple_escapes_for_later() {
        let read = |quoted: &str| {
            read_message(quoted).map(|m| (m.escaped().is_some(), m.as_str().to_owned()))
        };
        assert_eq!(read(r#""plain""#), Some((false, "plain".into())));
        let long = format!(r#""{}\"x\"{}\n""#, "a".repeat(13), "b".repeat(9));
        let want = format!("{}\"x\"{}\n", "a".repeat(13), "b".repeat(9));
        assert_eq!(read(&long), Some((true, want)));
        for quoted in [
            r#""\"""#,
            r#""ab\\""#,
            r#""abcdefg\\""#,
            r#""abcdefgh\\\"""#,
            r#""abcdefg\"h""#,
            r#""\/\b\f\n\r\t""#,
        ] {
            let want = serde_json::from_str::<String>(quoted).unwrap();
            assert_eq!(read(quoted), Some((true, want)), "{quoted}");
        }
        assert_eq!(read(r#""\u00e9\"""#), Some((false, "\u{e9}\"".into())));
        for bad in [
            "\"a\u{1}\"",
            "\"abcdefgh\tij\"",
            r#""a\q""#,
            r#""abcdefghij\q""#,
            r#""abc"#,
            r#""abcdefghij\"#,
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_messages_as_serde_json_does() {
        // Random strings of a few troublesome characters, across word boundaries.
        let alphabet = [
            "a", "\"", "\\", "n", "u", "0", "é", "\u{1}", "/", "\\\"", "\\\\",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut valid = 0;
        for _ in 0..50_000 {
            let len = next(40);
            let inner: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            let quoted = format!("\"{inner}\"");
            let want = serde_json::from_str::<String>(&quoted).ok();
            let got = read_message(&quoted).map(|m| m.as_str().to_owned());
            valid += usize::from(want.is_some());
            assert_eq!(got, want, "{quoted}");
        }
        assert!(valid > 5_000, "{valid} valid strings");
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
    fn a_decoder_reusing_its_buffers_decodes_as_the_functions_do() {
        let payload = |n: usize| {
            crate::sample::payload_json(
                "g",
                "s",
                &crate::sample::Traffic::new(50, 1.1, 50, 0.2, 7)
                    .events(n, 1_795_000_000_000, 3)
                    .0,
            )
        };
        let (big, small) = (gzip(&payload(300)), gzip(&payload(3)));
        let mut trailing = small.clone();
        trailing.extend_from_slice(b"junk");
        let inputs = [
            big.clone(),
            small.clone(),
            big[..big.len() / 2].to_vec(),
            b"not gzip".to_vec(),
            trailing,
            gzip(b""),
            gzip(&[7u8; 4097]),
            big,
            small,
        ];
        let mut decoder = Decoder::new();
        for gz in &inputs {
            for limit in [4096, 1 << 20] {
                assert_eq!(
                    decoder.gunzip(gz, limit).map(<[u8]>::to_vec),
                    gunzip_capped(gz, limit)
                );
                let text = base64::engine::general_purpose::STANDARD.encode(gz);
                assert_eq!(
                    decoder.decode_data(&text, limit).map(<[u8]>::to_vec),
                    decode_data(&text, limit)
                );
            }
        }
        assert_eq!(
            decoder.decode_data("not base64 !!", 1 << 20),
            decode_data("not base64 !!", 1 << 20).map(|_| &[][..])
        );
    }

    /// The one-call gunzip into a fresh buffer.
    fn whole(bytes: &[u8], limit: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        gunzip_whole(bytes, limit, &mut out).then_some(out)
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
        assert_eq!(whole(&gz, 1 << 20).as_deref(), Some(&plain[..]));
        assert!(gunzip_agrees(&gz, 1 << 20));
        assert_eq!(gunzip_capped(&gz, 1 << 20).unwrap(), plain);
        // Not taken: over the cap, trailing bytes, a header with a file name,
        // a wrong CRC or size; the streaming path decides as before.
        assert_eq!(whole(&gz, plain.len() - 1), None);
        assert_eq!(
            gunzip_capped(&gz, plain.len() - 1),
            Err(DecodeError::TooLarge {
                limit: plain.len() - 1
            })
        );
        let mut trailing = gz.clone();
        trailing.extend_from_slice(b"junk");
        assert_eq!(whole(&trailing, 1 << 20), None);
        assert_eq!(gunzip_capped(&trailing, 1 << 20).unwrap(), plain);
        let mut named = flate2::GzBuilder::new()
            .filename("payload.json")
            .write(Vec::new(), flate2::Compression::default());
        named.write_all(&plain).unwrap();
        let named = named.finish().unwrap();
        assert_eq!(whole(&named, 1 << 20), None);
        assert_eq!(gunzip_capped(&named, 1 << 20).unwrap(), plain);
        let n = gz.len();
        for at in [n - 8, n - 4, n - 1] {
            let mut bad = gz.clone();
            bad[at] ^= 0x01;
            assert_eq!(whole(&bad, 1 << 20), None);
            assert!(gunzip_capped(&bad, 1 << 20).is_err());
        }
        assert_eq!(whole(&gzip(b""), 1 << 20), None);
        assert_eq!(gunzip_capped(&gzip(b""), 1 << 20).unwrap(), b"");
    }
}
