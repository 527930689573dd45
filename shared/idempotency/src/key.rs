//! Idempotency keys and payload fingerprints: a selector picks part of the
//! event, which is written as canonical JSON (object keys sorted, no
//! insignificant whitespace) and hashed with SHA-256.

//!
//! The pieces live in their own modules and are re-exported here: JSON
//! paths ([`JsonPath`]), the canonical form ([`write_canonical`],
//! [`canonical_json`]) and its digest ([`hash_canonical`]).

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

pub use crate::canonical::value::{canonical_json, write_canonical};
pub use crate::digest::hash_canonical;
use crate::digest::hash_serialize;
pub use crate::path::{JsonPath, PathError, Step};
use crate::select;

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
                    .map(|p| Ok(select::select(event, &p.steps)?.unwrap_or(Value::Null)))
                    .collect::<Result<Vec<_>, serde_json::Error>>()?;
                let v = Value::Array(values);
                Ok((!is_missing(&v)).then(|| hash_canonical(&v)))
            }
            KeySelector::Whole => hash_serialize(event),
            KeySelector::Path(p) if p.steps.is_empty() => hash_serialize(event),
            KeySelector::Path(p) => Ok(select::select(event, &p.steps)?
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
