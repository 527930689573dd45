//! Where a meter finds an event's value inside a CloudEvent's `data`: a
//! small JSONPath subset, `$` followed by `.name`, `['name']` or `[index]`
//! steps (`$.tokens`, `$.usage.output_tokens`, `$.items[0]['gpu-ms']`).
//! No wildcards, filters or recursion: a path names exactly one value, so
//! the value counted never depends on how a library resolves a query.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::CoreError;

/// The longest value path, in bytes.
pub const MAX_VALUE_PATH: usize = 256;

/// The path read when a `sum` or `max` meter declares none.
pub const DEFAULT_VALUE_PATH: &str = "$.value";

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// An object member.
    Member(String),
    /// An array element.
    Index(usize),
}

/// A parsed value path; its text form is kept for display and storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ValuePath {
    text: String,
    steps: Vec<Step>,
}

fn invalid(text: &str, why: &str) -> CoreError {
    CoreError::Value(format!(
        "value path {text:?}: {why} (expected $ then .name, ['name'] or [index] steps, e.g. $.tokens)"
    ))
}

impl ValuePath {
    /// Parses a path such as `$.usage.tokens`.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        if text.len() > MAX_VALUE_PATH {
            return Err(invalid(text, "too long"));
        }
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| invalid(text, "must start with $"))?;
        let bytes = rest.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < bytes.len()
                        && (bytes[end].is_ascii_alphanumeric()
                            || bytes[end] == b'_'
                            || bytes[end] == b'-')
                    {
                        end += 1;
                    }
                    if end == start {
                        return Err(invalid(text, "an empty member name after '.'"));
                    }
                    steps.push(Step::Member(rest[start..end].to_owned()));
                    i = end;
                }
                b'[' if bytes.get(i + 1) == Some(&b'\'') => {
                    let start = i + 2;
                    let close = rest[start..]
                        .find("']")
                        .ok_or_else(|| invalid(text, "an unclosed ['name']"))?;
                    let name = &rest[start..start + close];
                    if name.is_empty() || name.contains('\'') || name.contains('\\') {
                        return Err(invalid(
                            text,
                            "a bracketed name must be non-empty, without quotes or backslashes",
                        ));
                    }
                    steps.push(Step::Member(name.to_owned()));
                    i = start + close + 2;
                }
                b'[' => {
                    let close = rest[i..]
                        .find(']')
                        .ok_or_else(|| invalid(text, "an unclosed [index]"))?;
                    let digits = &rest[i + 1..i + close];
                    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(invalid(text, "an index must be digits"));
                    }
                    let index = digits
                        .parse::<usize>()
                        .map_err(|_| invalid(text, "an index is too large"))?;
                    steps.push(Step::Index(index));
                    i += close + 1;
                }
                _ => return Err(invalid(text, "unexpected character")),
            }
        }
        if steps.is_empty() {
            return Err(invalid(text, "names no value inside data"));
        }
        Ok(ValuePath {
            text: text.to_owned(),
            steps,
        })
    }

    /// The default path, `$.value`.
    pub fn default_path() -> Self {
        ValuePath {
            text: DEFAULT_VALUE_PATH.to_owned(),
            steps: vec![Step::Member("value".to_owned())],
        }
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The path's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value the path names in `data`, if there is one (JSON `null`
    /// counts as none).
    pub fn find<'v>(&self, data: &'v Value) -> Option<&'v Value> {
        let mut at = data;
        for step in &self.steps {
            at = match step {
                Step::Member(name) => at.as_object()?.get(name)?,
                Step::Index(i) => at.as_array()?.get(*i)?,
            };
        }
        (!at.is_null()).then_some(at)
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ValuePath {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ValuePath::parse(s)
    }
}

impl TryFrom<String> for ValuePath {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ValuePath::parse(&s)
    }
}

impl From<ValuePath> for String {
    fn from(p: ValuePath) -> Self {
        p.text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_parse_and_find() {
        let data = json!({"tokens": 5, "usage": {"out": 7, "gpu-ms": 9}, "items": [{"n": 3}], "nil": null});
        let find = |p: &str| ValuePath::parse(p).unwrap().find(&data).cloned();
        assert_eq!(find("$.tokens"), Some(json!(5)));
        assert_eq!(find("$.usage.out"), Some(json!(7)));
        assert_eq!(find("$.usage['gpu-ms']"), Some(json!(9)));
        assert_eq!(find("$['usage'].out"), Some(json!(7)));
        assert_eq!(find("$.items[0].n"), Some(json!(3)));
        assert_eq!(find("$.items[1].n"), None);
        assert_eq!(find("$.missing"), None);
        assert_eq!(find("$.nil"), None, "null is no value");
        assert_eq!(find("$.tokens.deeper"), None);
        assert_eq!(
            ValuePath::default_path(),
            ValuePath::parse("$.value").unwrap()
        );
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in [
            "",
            "$",
            "tokens",
            "$.",
            "$..a",
            "$.a b",
            "$[",
            "$[x]",
            "$['a",
            "$['']",
            "$[*]",
            "$.a[99999999999999999999999]",
        ] {
            let err = ValuePath::parse(bad).unwrap_err().to_string();
            assert!(err.contains("value path"), "{bad}: {err}");
        }
        assert!(ValuePath::parse(&format!("$.{}", "a".repeat(254))).is_ok());
        assert!(ValuePath::parse(&format!("$.{}", "a".repeat(255))).is_err());
    }

    #[test]
    fn serde_round_trip() {
        let p: ValuePath = serde_json::from_str("\"$.usage.tokens\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"$.usage.tokens\"");
        assert!(serde_json::from_str::<ValuePath>("\"usage\"").is_err());
    }
}
