//! The CloudWatch Logs subscription payload, borrowing from its bytes, and
//! the one entry point that reads it ([`parse_payload`]).

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::Deserialize;

use super::gzip::DecodeError;
use super::swar::simple_escape;
use super::template::{AccessFields, AccessLine};

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
    pub(super) escaped: Option<&'a str>,
    /// The text, set from the start or unescaped on first use.
    pub(super) text: OnceLock<Cow<'a, str>>,
    /// Where the fields are in `escaped` when it is an access line written
    /// exactly in the template, as the payload reader found while checking it.
    pub(super) access: Option<AccessLine>,
}

impl<'a> Message<'a> {
    /// A message from JSON string content whose escapes are all checked
    /// one-character ones (see [`simple_escape`]).
    pub(super) fn from_escaped(escaped: &'a str) -> Self {
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
