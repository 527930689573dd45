//! The one-pass payload reader: a strict, minimal JSON scanner that reads
//! the plain shape CloudWatch Logs writes, or declines (and `serde_json`
//! reads the payload instead).

use std::borrow::Cow;

use super::model::{LogEvent, LogsPayload, Message};
use super::swar::{
    bytes_equal, controls, find_backslash, find_special, hex4, read_uint, simple_escape, specials,
    specials_exact,
};
use super::template;

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
        // and read in one pass (see `template::read`).
        if let Some((line, end)) = template::read(self.text, start) {
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
