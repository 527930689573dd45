//! Idempotency keys and payload fingerprints: a selector picks part of the
//! event, which is written as canonical JSON (object keys sorted, no
//! insignificant whitespace) and hashed with SHA-256.

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canon::{self, Canon};

/// A selector closure.
pub type SelectFn = Arc<dyn Fn(&Value) -> Option<Value> + Send + Sync>;

/// Picks the part of an event that identifies it (or that a fingerprint
/// covers).
///
/// ```
/// use serde_json::json;
/// use tollgate_idempotency::KeySelector;
///
/// let event = json!({"body": "{\"order_id\": 42, \"note\": \"x\"}", "headers": {}});
/// // A string met on the way is parsed as JSON (API Gateway bodies are strings).
/// let sel = KeySelector::path("body.order_id").unwrap();
/// assert_eq!(sel.select(&event), Some(json!(42)));
/// let sel = KeySelector::from_fn("order", |e| e.pointer("/headers/x-order").cloned());
/// assert_eq!(sel.select(&event), None);
/// ```
#[derive(Clone)]
pub enum KeySelector {
    /// The whole event.
    Whole,
    /// One simple JSON path, such as `body.order_id`, `$.a.b` or `items[0].id`.
    Path(JsonPath),
    /// Several paths; the selected value is the array of their values.
    Paths(Vec<JsonPath>),
    /// A closure over the event as JSON; `None` means the key is missing.
    Fn {
        /// A name for messages.
        name: String,
        /// The selector.
        f: SelectFn,
    },
}

impl fmt::Debug for KeySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySelector {
    /// A selector for one JSON path.
    pub fn path(path: &str) -> Result<Self, PathError> {
        Ok(KeySelector::Path(JsonPath::parse(path)?))
    }

    /// A selector for several JSON paths (their values, as an array).
    pub fn paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<Self, PathError> {
        Ok(KeySelector::Paths(
            paths
                .into_iter()
                .map(JsonPath::parse)
                .collect::<Result<_, _>>()?,
        ))
    }

    /// A selector from a closure.
    pub fn from_fn(
        name: &str,
        f: impl Fn(&Value) -> Option<Value> + Send + Sync + 'static,
    ) -> Self {
        KeySelector::Fn {
            name: name.to_owned(),
            f: Arc::new(f),
        }
    }

    /// The selected value, or `None` when it is missing (absent, `null`, or
    /// an array or object of nulls only).
    pub fn select(&self, event: &Value) -> Option<Value> {
        let v = match self {
            KeySelector::Whole => Some(event.clone()),
            KeySelector::Path(p) => p.select(event),
            KeySelector::Paths(ps) => Some(Value::Array(
                ps.iter()
                    .map(|p| p.select(event).unwrap_or(Value::Null))
                    .collect(),
            )),
            KeySelector::Fn { f, .. } => f(event),
        }?;
        (!is_missing(&v)).then_some(v)
    }

    /// Whether `self` and `other` surely select the same part of any event
    /// (closures only when they are the same closure).
    pub(crate) fn same_as(&self, other: &KeySelector) -> bool {
        match (self, other) {
            (KeySelector::Fn { f: a, .. }, KeySelector::Fn { f: b, .. }) => Arc::ptr_eq(a, b),
            _ => match (self.whole_or_steps(), other.whole_or_steps()) {
                (Some(a), Some(b)) => a == b,
                _ => match (self, other) {
                    (KeySelector::Paths(a), KeySelector::Paths(b)) => {
                        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.steps == y.steps)
                    }
                    _ => false,
                },
            },
        }
    }

    /// The steps of a one-path selector (none for the whole event).
    fn whole_or_steps(&self) -> Option<&[Step]> {
        match self {
            KeySelector::Whole => Some(&[]),
            KeySelector::Path(p) => Some(&p.steps),
            _ => None,
        }
    }

    /// Whether the selector needs the event as a `serde_json::Value`.
    pub(crate) fn needs_value(&self) -> bool {
        matches!(self, KeySelector::Fn { .. })
    }

    /// The SHA-256 (hex) of the canonical JSON of what this selector selects
    /// in a typed event, or `None` when that is missing; equal to
    /// `self.select(&serde_json::to_value(event)?)` then [`hash_canonical`],
    /// without building the event's `Value`. Closures go through `to_value`.
    pub(crate) fn digest_typed<T: Serialize + ?Sized>(
        &self,
        event: &T,
    ) -> Result<Option<String>, serde_json::Error> {
        match self {
            KeySelector::Fn { .. } => {
                let value = serde_json::to_value(event)?;
                Ok(self.select(&value).map(|v| hash_canonical(&v)))
            }
            KeySelector::Paths(ps) => {
                let values = ps
                    .iter()
                    .map(|p| Ok(canon::select(event, &p.steps)?.unwrap_or(Value::Null)))
                    .collect::<Result<Vec<_>, serde_json::Error>>()?;
                let v = Value::Array(values);
                Ok((!is_missing(&v)).then(|| hash_canonical(&v)))
            }
            KeySelector::Whole => hash_serialize(event),
            KeySelector::Path(p) if p.steps.is_empty() => hash_serialize(event),
            KeySelector::Path(p) => Ok(canon::select(event, &p.steps)?
                .filter(|v| !is_missing(v))
                .map(|v| hash_canonical(&v))),
        }
    }

    /// [`hash_canonical`] of what this selector selects in `event`, or `None`
    /// when that is missing; the whole event is hashed without a copy.
    pub(crate) fn digest_value(&self, event: &Value) -> Option<String> {
        match self {
            KeySelector::Whole => (!is_missing(event)).then(|| hash_canonical(event)),
            _ => self.select(event).map(|v| hash_canonical(&v)),
        }
    }

    /// The selector, for messages.
    pub fn describe(&self) -> String {
        match self {
            KeySelector::Whole => "$".to_owned(),
            KeySelector::Path(p) => p.source.clone(),
            KeySelector::Paths(ps) => {
                format!(
                    "[{}]",
                    ps.iter()
                        .map(|p| p.source.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            KeySelector::Fn { name, .. } => format!("fn {name}"),
        }
    }
}

fn is_missing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.iter().all(Value::is_null),
        Value::Object(o) => o.values().all(Value::is_null),
        _ => false,
    }
}

/// A JSON path that [`JsonPath::parse`] rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON path {path:?}: {reason}")]
pub struct PathError {
    /// The path.
    pub path: String,
    /// Why.
    pub reason: &'static str,
}

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Field(String),
    /// An array element.
    Index(usize),
}

/// A simple JSON path: an optional `$`, then fields separated by `.` and
/// array indices in brackets (`$.records[0].body.id`, `body.order_id`,
/// `headers["x-id"]`). When a step meets a string while steps remain, the
/// string is parsed as JSON and the path continues inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    source: String,
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses a path.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let err = |reason| PathError {
            path: path.to_owned(),
            reason,
        };
        let mut rest = path.trim();
        rest = rest.strip_prefix('$').unwrap_or(rest);
        let mut steps = Vec::new();
        let mut first = true;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| err("unclosed ["))?;
                let inner = r[..end].trim();
                if let Some(quoted) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    steps.push(Step::Field(quoted.to_owned()));
                } else if let Some(quoted) =
                    inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\''))
                {
                    steps.push(Step::Field(quoted.to_owned()));
                } else {
                    steps.push(Step::Index(inner.parse().map_err(|_| err("bad index"))?));
                }
                rest = &r[end + 1..];
            } else {
                let r = match rest.strip_prefix('.') {
                    Some(r) => r,
                    None if first => rest,
                    None => return Err(err("expected . or [")),
                };
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(err("empty field name"));
                }
                steps.push(Step::Field(r[..end].to_owned()));
                rest = &r[end..];
            }
            first = false;
        }
        Ok(JsonPath {
            source: path.to_owned(),
            steps,
        })
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The value at this path, if any.
    pub fn select(&self, event: &Value) -> Option<Value> {
        select_steps(event, &self.steps)
    }
}

pub(crate) fn select_steps(cur: &Value, steps: &[Step]) -> Option<Value> {
    let Some((step, rest)) = steps.split_first() else {
        return Some(cur.clone());
    };
    match (step, cur) {
        (_, Value::String(s)) => select_steps(&serde_json::from_str(s).ok()?, steps),
        (Step::Field(f), Value::Object(m)) => select_steps(m.get(f)?, rest),
        (Step::Index(i), Value::Array(a)) => select_steps(a.get(*i)?, rest),
        _ => None,
    }
}

/// Writes `v` as canonical JSON: object keys sorted by their UTF-8 bytes, no
/// whitespace, strings escaped and numbers written as `serde_json` writes
/// them.
pub fn write_canonical<W: Write>(w: &mut W, v: &Value) -> io::Result<()> {
    match v {
        Value::Object(m) => {
            // serde_json's map is a BTreeMap unless `preserve_order` is on:
            // then it is already sorted and needs no copy.
            if m.keys().is_sorted() {
                write_object(w, m.iter())
            } else {
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                write_object(w, entries.into_iter())
            }
        }
        Value::Array(a) => {
            w.write_all(b"[")?;
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                write_canonical(w, v)?;
            }
            w.write_all(b"]")
        }
        other => serde_json::to_writer(w, other).map_err(io::Error::from),
    }
}

fn write_object<'a, W: Write>(
    w: &mut W,
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
) -> io::Result<()> {
    w.write_all(b"{")?;
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        serde_json::to_writer(&mut *w, k)?;
        w.write_all(b":")?;
        write_canonical(w, v)?;
    }
    w.write_all(b"}")
}

/// The canonical JSON of `v`, as a string.
///
/// ```
/// use serde_json::json;
/// assert_eq!(
///     tollgate_idempotency::canonical_json(&json!({"b": [1, {"d": 1, "c": null}], "a": "x"})),
///     r#"{"a":"x","b":[1,{"c":null,"d":1}]}"#
/// );
/// ```
pub fn canonical_json(v: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    // Writing to a Vec cannot fail.
    let _ = write_canonical(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

thread_local! {
    static CANON: std::cell::RefCell<Canon> = std::cell::RefCell::new(Canon::with_capacity(2048));
}

/// Runs `f` with this thread's canonical writer (a fresh one if it is busy).
fn with_canon<R>(f: impl FnOnce(&mut Canon) -> R) -> R {
    CANON.with(|c| match c.try_borrow_mut() {
        Ok(mut canon) => f(&mut canon),
        Err(_) => f(&mut Canon::default()),
    })
}

/// SHA-256 of `bytes` as 64 lower-case hex digits.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = [0u8; 64];
    // 64 is exactly twice 32: this cannot fail.
    let _ = hex::encode_to_slice(digest, &mut hex);
    hex.iter().map(|&b| char::from(b)).collect()
}

/// The SHA-256 (hex) of the canonical JSON of a typed value, or `None`
/// when it is missing (`null`, or an array or object of nulls only).
fn hash_serialize<T: Serialize + ?Sized>(v: &T) -> Result<Option<String>, serde_json::Error> {
    with_canon(|c| {
        let missing = c.write(v)?;
        Ok((!missing).then(|| sha256_hex(&c.out)))
    })
}

/// SHA-256 of the canonical JSON of `v`, as 64 lower-case hex digits.
pub fn hash_canonical(v: &Value) -> String {
    with_canon(|c| match c.write(v) {
        Ok(_) => sha256_hex(&c.out),
        // A Value always serializes; should it not, hash the reference form.
        Err(_) => sha256_hex(canonical_json(v).as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let a: Value =
            serde_json::from_str(r#"{ "z": 1, "a": {"y": [1, 2.5, "é\n"], "b": true} }"#)
                .unwrap_or_default();
        let b: Value =
            serde_json::from_str(r#"{"a":{"b":true,"y":[1,2.5,"é\n"]},"z":1}"#).unwrap_or_default();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"b":true,"y":[1,2.5,"é\n"]},"z":1}"#
        );
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(hash_canonical(&a), hash_canonical(&b));
    }

    #[test]
    fn hash_is_sha256_of_the_canonical_form() {
        // sha256("{}")
        assert_eq!(
            hash_canonical(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_ne!(
            hash_canonical(&json!({"a": 1})),
            hash_canonical(&json!({"a": "1"}))
        );
    }

    #[test]
    fn paths_parse_and_select() {
        let e = json!({"a": {"b": [10, {"c": "x"}]}, "body": "{\"id\": 7}", "h": {"x-id": "k"}});
        let sel = |p: &str| JsonPath::parse(p).map(|p| p.select(&e));
        assert_eq!(sel("$.a.b[0]"), Ok(Some(json!(10))));
        assert_eq!(sel("a.b[1].c"), Ok(Some(json!("x"))));
        assert_eq!(sel("body.id"), Ok(Some(json!(7))));
        assert_eq!(sel("h[\"x-id\"]"), Ok(Some(json!("k"))));
        assert_eq!(sel("a.nope"), Ok(None));
        assert_eq!(sel("$"), Ok(Some(e.clone())));
        assert!(JsonPath::parse("a..b").is_err());
        assert!(JsonPath::parse("a[1").is_err());
        assert!(JsonPath::parse("a[x]").is_err());
    }

    #[test]
    fn missing_values_are_none() {
        let e = json!({"a": null, "b": {"c": null}, "d": [null, null], "e": 0});
        for p in ["a", "b", "d", "zz"] {
            assert_eq!(KeySelector::path(p).map(|s| s.select(&e)), Ok(None), "{p}");
        }
        assert_eq!(
            KeySelector::path("e").map(|s| s.select(&e)),
            Ok(Some(json!(0)))
        );
        let multi = KeySelector::paths(["a", "e"]).map(|s| s.select(&e));
        assert_eq!(multi, Ok(Some(json!([null, 0]))));
        assert_eq!(
            KeySelector::paths(["a", "zz"]).map(|s| s.select(&e)),
            Ok(None)
        );
    }
}
