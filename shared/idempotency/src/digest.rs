//! SHA-256 of canonical JSON: the digest behind every key and payload
//! fingerprint, written through one reused writer per thread.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical::value::canonical_json;
use crate::canonical::writer::Canon;

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
pub(crate) fn hash_serialize<T: Serialize + ?Sized>(
    v: &T,
) -> Result<Option<String>, serde_json::Error> {
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
    fn equal_canonical_forms_hash_equal() {
        let a: Value =
            serde_json::from_str(r#"{ "z": 1, "a": {"y": [1, 2.5, "é\n"], "b": true} }"#)
                .unwrap_or_default();
        let b: Value =
            serde_json::from_str(r#"{"a":{"b":true,"y":[1,2.5,"é\n"]},"z":1}"#).unwrap_or_default();
        assert_eq!(hash_canonical(&a), hash_canonical(&b));
        assert_eq!(
            hash_canonical(&a),
            sha256_hex(canonical_json(&b).as_bytes())
        );
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
}
