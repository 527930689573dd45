//! A reader for access log lines written exactly in [`ACCESS_LOG_FORMAT`]
//! (its keys in its order, no whitespace), as the payload holds them:
//! escaped, every `"` written `\"`.
//!
//! Nearly every line of an API's log group is rendered from that one
//! template, so instead of reading each key and looking it up, this reader
//! compares the template's fixed text and takes the values between. The
//! payload reader runs it on each message as it meets it, which both checks
//! the message as a JSON string and reads its fields in one pass (see
//! `Scan::message` in [`crate::payload`]). Any difference (another key
//! order, whitespace, an escape inside a value, a value of another type,
//! trailing text) makes it decline, and the general readers read the
//! message and its line instead. When it accepts a line, it reads exactly
//! what the general reader reads: checked by the tests, the property tests
//! and the fuzz target through [`crate::line::fast_line_agrees`].
//!

use super::swar::{find_special, read_uint};

/// The API Gateway access log format that `template.yaml` sets for the REST
/// API stage (`AccessLogSetting.Format`). One JSON object per request.
///
/// - `requestTimeEpoch` and `status` are numbers (API Gateway always sets them).
/// - `identity` is the authorizer's context value `identity` (`key:<id>`,
///   `ip:<addr>`, `referer:<host>`); `principalId` is the fallback.
/// - `errorType` (`$context.error.responseType`) names the gateway response
///   when API Gateway answered itself (`ACCESS_DENIED`, `UNAUTHORIZED`,
///   `AUTHORIZER_FAILURE`, `THROTTLED`, ...), and `integrationStatus` is `-`
///   when the request never reached the integration.
/// - `referer` is the authorizer's context value `referer` (`referer:<host>`
///   for an anonymous request when Referer limiting is on, else `-`).
/// - Values that API Gateway has no value for come out as `"-"` or `""`.
pub const ACCESS_LOG_FORMAT: &str = r#"{"requestId":"$context.requestId","requestTimeEpoch":$context.requestTimeEpoch,"ip":"$context.identity.sourceIp","method":"$context.httpMethod","resourcePath":"$context.resourcePath","status":$context.status,"integrationStatus":"$context.integrationStatus","errorType":"$context.error.responseType","principalId":"$context.authorizer.principalId","identity":"$context.authorizer.identity","authorizerError":"$context.authorizer.error","referer":"$context.authorizer.referer"}"#;

/// Lines longer than this are skipped without parsing (tollgate's lines are
/// a few hundred bytes; CloudWatch Logs allows 256 KB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// The values of one access line that classifying it needs, borrowed from
/// the escaped message (a value without escapes is the same text escaped
/// or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccessFields<'a> {
    pub request_id: &'a str,
    pub request_time_epoch: i64,
    pub status: i64,
    pub error_type: &'a str,
    pub principal_id: &'a str,
    pub identity: &'a str,
    pub authorizer_error: &'a str,
    pub ip: &'a str,
    pub referer: &'a str,
}

/// Where the values of an access line are in its escaped message, as the
/// payload reader keeps it beside the message (positions instead of
/// borrowed strings: a quarter of the size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccessLine {
    /// Start and end of `requestId`, `errorType`, `principalId`,
    /// `identity`, `authorizerError`, `ip` and `referer`, in that order.
    texts: [(u16, u16); 7],
    request_time_epoch: i64,
    status: i64,
}

impl AccessLine {
    /// The fields, from the escaped message this was read from.
    pub(crate) fn fields<'a>(&self, escaped: &'a str) -> Option<AccessFields<'a>> {
        let text = |i: usize| {
            let (start, end) = self.texts[i];
            escaped.get(usize::from(start)..usize::from(end))
        };
        Some(AccessFields {
            request_id: text(0)?,
            request_time_epoch: self.request_time_epoch,
            status: self.status,
            error_type: text(1)?,
            principal_id: text(2)?,
            identity: text(3)?,
            authorizer_error: text(4)?,
            ip: text(5)?,
            referer: text(6)?,
        })
    }
}

/// Reads an access line in exactly the template from `start` in `text`,
/// JSON string content as the payload holds a message; returns it and the
/// position after its closing `}`, which is where the message must end.
/// `None` for anything else, and for lines longer than [`MAX_LINE_BYTES`]
/// (the general reader's limit).
///
/// Each string value ends at its first `"`, `\` or control character,
/// which must be the `\` of its closing `\"`: so the message it reads is a
/// JSON string whose only escapes are the template's `\"`.
pub(crate) fn read(text: &str, start: usize) -> Option<(AccessLine, usize)> {
    let mut r = Reader {
        bytes: text.as_bytes(),
        start,
        at: start,
    };
    r.fixed(br#"{\"requestId\":\""#)?;
    let request_id = r.string()?;
    r.fixed(br#",\"requestTimeEpoch\":"#)?;
    let request_time_epoch = r.uint()?;
    r.fixed(br#",\"ip\":\""#)?;
    let ip = r.string()?;
    r.fixed(br#",\"method\":\""#)?;
    r.string()?;
    r.fixed(br#",\"resourcePath\":\""#)?;
    r.string()?;
    r.fixed(br#",\"status\":"#)?;
    let status = r.uint()?;
    r.fixed(br#",\"integrationStatus\":\""#)?;
    r.string()?;
    r.fixed(br#",\"errorType\":\""#)?;
    let error_type = r.string()?;
    r.fixed(br#",\"principalId\":\""#)?;
    let principal_id = r.string()?;
    r.fixed(br#",\"identity\":\""#)?;
    let identity = r.string()?;
    r.fixed(br#",\"authorizerError\":\""#)?;
    let authorizer_error = r.string()?;
    r.fixed(br#",\"referer\":\""#)?;
    let referer = r.string()?;
    r.fixed(b"}")?;
    if r.at - start > MAX_LINE_BYTES {
        return None;
    }
    let line = AccessLine {
        texts: [
            request_id,
            error_type,
            principal_id,
            identity,
            authorizer_error,
            ip,
            referer,
        ],
        request_time_epoch,
        status,
    };
    Some((line, r.at))
}

/// Reads a whole escaped message (as [`crate::payload::Message::escaped`]
/// gives it) in exactly the template.
pub(crate) fn read_escaped(escaped: &str) -> Option<AccessFields<'_>> {
    match read(escaped, 0)? {
        (line, end) if end == escaped.len() => line.fields(escaped),
        _ => None,
    }
}

/// A position in the text being read.
struct Reader<'a> {
    bytes: &'a [u8],
    /// Where the message starts: value positions are relative to it.
    start: usize,
    at: usize,
}

impl Reader<'_> {
    /// Steps over `fixed` when the text has it at the position. Generic
    /// over the length, so that each comparison is a few inline word
    /// compares instead of a call to `memcmp`.
    #[inline(always)]
    fn fixed<const N: usize>(&mut self, fixed: &[u8; N]) -> Option<()> {
        let end = self.at.checked_add(N)?;
        let here: &[u8; N] = self.bytes.get(self.at..end)?.try_into().ok()?;
        (here == fixed).then(|| self.at = end)
    }

    /// Reads a string value after its opening `\"`, through its closing
    /// `\"`: its start and end relative to the message.
    #[inline]
    fn string(&mut self) -> Option<(u16, u16)> {
        let end = find_special(self.bytes, self.at)?;
        if self.bytes.get(end..end + 2)? != br#"\""# {
            return None;
        }
        // Both ends are at ASCII bytes, so the value is whole characters.
        let span = (
            u16::try_from(self.at - self.start).ok()?,
            u16::try_from(end - self.start).ok()?,
        );
        self.at = end + 2;
        Some(span)
    }

    /// Reads a non-negative integer as the general reader reads one (1 to
    /// 18 digits, no leading zero). What follows it must be the next fixed
    /// text, so a fraction or an exponent makes the line decline.
    #[inline]
    fn uint(&mut self) -> Option<i64> {
        let (n, end) = read_uint(self.bytes, self.at)?;
        self.at = end;
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A line as JSON string content, as the payload holds it.
    fn escaped(line: &str) -> String {
        let quoted = serde_json::to_string(line).unwrap();
        quoted[1..quoted.len() - 1].to_owned()
    }

    /// The template with a distinct value for every placeholder.
    fn rendered() -> String {
        ACCESS_LOG_FORMAT
            .replace("$context.requestId", "r-1")
            .replace("$context.requestTimeEpoch", "1795000000123")
            .replace("$context.identity.sourceIp", "203.0.113.7")
            .replace("$context.httpMethod", "GET")
            .replace("$context.resourcePath", "/v1/lookup/{ip}")
            .replace("$context.status", "201")
            .replace("$context.integrationStatus", "202")
            .replace("$context.error.responseType", "-")
            .replace("$context.authorizer.principalId", "cust_1")
            .replace("$context.authorizer.identity", "key:k1")
            .replace("$context.authorizer.error", "")
            .replace("$context.authorizer.referer", "referer:a.example")
    }

    #[test]
    fn reads_a_rendered_line() {
        let text = escaped(&rendered());
        let want = AccessFields {
            request_id: "r-1",
            request_time_epoch: 1_795_000_000_123,
            status: 201,
            error_type: "-",
            principal_id: "cust_1",
            identity: "key:k1",
            authorizer_error: "",
            ip: "203.0.113.7",
            referer: "referer:a.example",
        };
        assert_eq!(read_escaped(&text), Some(want));
        // Inside a payload: positions are relative to the message.
        let payload = format!(r#"{{"message":"{text}"}}"#);
        let (line, end) = read(&payload, 12).unwrap();
        assert_eq!(&payload[end..], "\"}");
        assert_eq!(line.fields(&payload[12..end]), Some(want));
    }

    #[test]
    fn every_fixed_byte_is_checked() {
        // Changing any byte outside the values makes the reader decline:
        // the fixed text in the code is exactly the template's.
        let text = escaped(&rendered());
        let values = [
            "r-1",
            "1795000000123",
            "203.0.113.7",
            "GET",
            "/v1/lookup/{ip}",
            "201",
            "202",
            "-",
            "cust_1",
            "key:k1",
            "referer:a.example",
        ];
        let mut in_value = vec![false; text.len()];
        let mut from = 0;
        for v in values {
            let at = from + text[from..].find(v).unwrap();
            in_value[at..at + v.len()]
                .iter_mut()
                .for_each(|b| *b = true);
            from = at + v.len();
        }
        let want = read_escaped(&text).unwrap();
        for (i, _) in text.bytes().enumerate().filter(|(i, _)| !in_value[*i]) {
            for replacement in [b'x', b' ', b'"', b'\\'] {
                let mut changed = text.clone().into_bytes();
                if changed[i] == replacement {
                    continue;
                }
                changed[i] = replacement;
                let changed = String::from_utf8(changed).unwrap();
                assert_eq!(read_escaped(&changed), None, "{changed}");
            }
        }
        assert_eq!(read_escaped(&text), Some(want));
    }

    #[test]
    fn declines_anything_else() {
        let text = escaped(&rendered());
        assert_eq!(read_escaped(&format!("{text} ")), None);
        assert_eq!(read_escaped(&format!("{text}\\n")), None);
        assert_eq!(read_escaped(&format!(" {text}")), None);
        for (from, to) in [
            (",\\\"referer\\\":\\\"referer:a.example\\\"}", "}"),
            ("201,", "\\\"201\\\","),
            ("cust_1", "cu\\nst"),
            ("cust_1", "cu\\\\st"),
            ("cust_1", "cu\\u0041st"),
            ("cust_1", "cu\"st"),
            ("cust_1", "cu\u{1}st"),
            ("\\\"status\\\":", "\\\"status\\\": "),
            ("201,", "0201,"),
            ("201,", ","),
            ("201,", "-201,"),
            ("201,", "201.0,"),
            ("201,", "2e2,"),
            ("201,", "1234567890123456789,"),
            ("1795000000123", "1795000000123.0"),
            ("\\\"identity\\\"", "\\\"identitx\\\""),
        ] {
            let changed = text.replacen(from, to, 1);
            assert_ne!(changed, text, "{from}");
            assert_eq!(read_escaped(&changed), None, "{changed}");
        }
        // 18 digits are read, as the general reader reads them.
        let long = text.replacen("201,", "123456789012345678,", 1);
        assert_eq!(read_escaped(&long).unwrap().status, 123_456_789_012_345_678);
        // Within the line length limit only.
        let padded = rendered().replace("r-1", &"r".repeat(MAX_LINE_BYTES));
        assert_eq!(read_escaped(&escaped(&padded)), None);
        // Non-ASCII values are whole characters.
        let accented = rendered().replace("cust_1", "cüst_1");
        assert_eq!(
            read_escaped(&escaped(&accented)).unwrap().principal_id,
            "cüst_1"
        );
    }
}
