//! The payload side: from the bytes Lambda delivers to log events.
//!
//! - [`gzip`]: base64, then gzip with a cap on the decompressed size.
//! - [`model`]: the CloudWatch Logs payload ([`LogsPayload`], [`LogEvent`],
//!   [`Message`]).
//! - [`parse`]: [`parse_payload`], which reads it with the one-pass
//!   scanner or, for anything else, `serde_json`.
//! - `scan`: the one-pass scanner (a strict JSON reader that declines
//!   anything it would not read exactly as `serde_json` does).
//! - `template`: the reader of access lines written exactly in
//!   [`ACCESS_LOG_FORMAT`], which the scanner runs on each message as it
//!   meets it. It lives here, beside the scanner it serves, so that the
//!   lines module ([`crate::line`]) depends on this one and not the other
//!   way round.
//! - `swar`: word-at-a-time byte searches shared by both readers.
//!
//! Nothing here imports the lines module: the dependency goes one way.

pub mod gzip;
pub mod model;
pub mod parse;
mod scan;
mod swar;
mod template;
#[cfg(test)]
mod tests;

pub use gzip::{base64_decode, decode_data, gunzip_agrees, gunzip_capped, DecodeError, Decoder};
pub use model::{truncate, LogEvent, LogsPayload, Message, MessageType};
pub use parse::{fast_payload_agrees, parse_payload};
pub use scan::parse_payload_fast;
pub use template::{ACCESS_LOG_FORMAT, MAX_LINE_BYTES};

pub(crate) use scan::{read_message, Scalar, Scan};
pub(crate) use template::{read_escaped, AccessFields};
