//! The rules that map a CloudEvents 1.0 event onto a meter event: which
//! event it is (its dedupe identity, `source` + `id`), who is metered
//! (`subject`) and what is counted (`type` names the meter).

use sha2::{Digest, Sha256};

use crate::{CoreError, Identity};

/// The only CloudEvents version accepted.
pub const SPECVERSION: &str = "1.0";

/// The prefix of the event id a CloudEvent is deduplicated by.
pub const DEDUPE_PREFIX: &str = "ce:";

/// The event id a CloudEvent is counted once by: `ce:` and the SHA-256 (hex)
/// of its `source` and `id`, length-prefixed so that no two pairs collide.
///
/// CloudEvents makes `source` + `id` unique per distinct event, and puts no
/// bound on their length; the digest keeps the dedupe marker's key short
/// whatever they are. tollgate's own format uses the sender's `id` as is,
/// so an id of that format that starts with `ce:` shares this namespace.
///
/// ```
/// use tollgate_core::cloudevent::dedupe_id;
/// assert_eq!(dedupe_id("svc", "1"), dedupe_id("svc", "1"));
/// assert_ne!(dedupe_id("svc", "1"), dedupe_id("svc1", ""));
/// assert_eq!(dedupe_id("a", "b").len(), 3 + 64);
/// ```
pub fn dedupe_id(source: &str, id: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(source.len().to_string().as_bytes());
    hash.update(b":");
    hash.update(source.as_bytes());
    hash.update(id.as_bytes());
    format!("{DEDUPE_PREFIX}{}", hex::encode(hash.finalize()))
}

/// The identity a CloudEvent's `subject` meters: an identity's text form
/// (`key:<id>`, `ip:<addr>`, `referer:<host>`, whatever
/// [`Identity`] parses), or a bare key id (`k_0123456789abcdef`, no `:`),
/// which is read as `key:<subject>`.
///
/// ```
/// use tollgate_core::cloudevent::subject_identity;
/// assert_eq!(subject_identity("k_1").unwrap().to_string(), "key:k_1");
/// assert_eq!(subject_identity("key:k_1").unwrap().to_string(), "key:k_1");
/// assert!(subject_identity("user:x").is_err());
/// ```
pub fn subject_identity(subject: &str) -> Result<Identity, CoreError> {
    if subject.contains(':') {
        subject.parse()
    } else {
        Identity::key(subject)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dedupe_ids_are_stable_and_distinct() {
        // A pinned value: changing the derivation would count retried
        // events again, so it must never change.
        assert_eq!(
            dedupe_id("service-0", "00001"),
            "ce:2401ebacf4d9d1a6584df7aca201732e2520fd352efb5d4457a8d644fa141f11"
        );
        let pairs = [
            ("ab", "c"),
            ("a", "bc"),
            ("", "abc"),
            ("abc", ""),
            ("a:b", "c"),
        ];
        let ids: std::collections::HashSet<String> =
            pairs.iter().map(|(s, i)| dedupe_id(s, i)).collect();
        assert_eq!(ids.len(), pairs.len());
        let long = dedupe_id(&"s".repeat(10_000), &"i".repeat(10_000));
        assert_eq!(long.len(), 67);
        assert!(long.starts_with("ce:"));
    }

    #[test]
    fn subjects() {
        assert_eq!(
            subject_identity("k_0123456789abcdef").unwrap(),
            Identity::Key("k_0123456789abcdef".into())
        );
        assert_eq!(
            subject_identity("ip:::ffff:10.0.0.1").unwrap().to_string(),
            "ip:10.0.0.1"
        );
        assert!(subject_identity("").is_err());
        assert!(subject_identity("a b").is_err());
        assert!(subject_identity(&"k".repeat(65)).is_err());
    }
}
