//! The reference canonical form, written from a `serde_json::Value`.

use std::io::{self, Write};

use serde_json::Value;

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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
