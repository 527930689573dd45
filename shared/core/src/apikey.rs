//! API keys: a random secret shown once, stored and looked up only as its
//! SHA-256 digest. Secrets never appear in `Debug` output or logs.
//!
//! Keys issued now end with a checksum, so a key that was mistyped or made
//! up is rejected by its shape, without a database read:
//! `tg_<env>_<64 hex digits of secret><8 hex digits of checksum>` (a body of
//! exactly 72 characters). Keys issued before the checksum have a body of
//! 32 to 64 letters and digits; they are told apart by that length (no
//! checksummed body is that short) and keep working, at the cost of a read
//! for any made-up key of their shape.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::CoreError;

/// The printable prefix of every key tollgate issues.
pub const PREFIX: &str = "tg_live_";
/// Bytes of randomness in a secret (256 bits).
pub const SECRET_BYTES: usize = 32;
/// The longest header value the authorizer will even look at.
pub const MAX_PRESENTED_LEN: usize = 128;
/// Hex digits of the checksum that ends a key issued now.
pub const CHECKSUM_LEN: usize = 8;
/// The body length (after `tg_<env>_`) of a key with a checksum.
pub const CHECKSUMMED_BODY_LEN: usize = 2 * SECRET_BYTES + CHECKSUM_LEN;
/// The longest body of a key issued before checksums.
const LEGACY_BODY_MAX: usize = 64;

/// An API key secret as presented by a client. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// The SHA-256 digest of a key secret, lower-case hex: what the Keys table holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub String);

impl KeyDigest {
    /// The public key id that belongs to this digest.
    pub fn key_id(&self) -> String {
        format!("k_{}", &self.0[..16.min(self.0.len())])
    }
}

impl ApiKey {
    /// Builds a new key from random bytes (the caller supplies the entropy, so
    /// this crate stays free of I/O).
    pub fn generate(secret: [u8; SECRET_BYTES]) -> ApiKey {
        let unchecked = format!("{PREFIX}{}", hex::encode(secret));
        let sum = checksum(&unchecked);
        ApiKey(unchecked + &sum)
    }

    /// Whether this key ends with a checksum (issued after checksums were
    /// introduced), rather than being an older key of 32-64 characters.
    pub fn has_checksum(&self) -> bool {
        self.0
            .rsplit('_')
            .next()
            .is_some_and(|body| body.len() == CHECKSUMMED_BODY_LEN)
    }

    /// The key's public id: `k_` and the first 16 hex digits of its digest.
    /// Derived from the digest (never from the secret directly), so the
    /// authorizer knows the identity `key:<id>` before any read and can fetch
    /// the key and its blocks in one request.
    pub fn key_id(&self) -> String {
        self.digest().key_id()
    }

    /// Checks the shape of a presented key: `tg_<env>_` followed by either
    /// 64 hex digits and their 8-digit checksum (keys issued now), or 32-64
    /// letters and digits (older keys, no checksum). Shape failures,
    /// checksum failures included, cost no database read.
    pub fn parse(presented: &str) -> Result<ApiKey, CoreError> {
        let s = presented.trim();
        if s.is_empty() {
            return Err(CoreError::ApiKey("empty"));
        }
        if s.len() > MAX_PRESENTED_LEN {
            return Err(CoreError::ApiKey("too long"));
        }
        let rest = s
            .strip_prefix("tg_")
            .ok_or(CoreError::ApiKey("unknown prefix"))?;
        let (env, body) = rest.split_once('_').ok_or(CoreError::ApiKey("malformed"))?;
        let env_ok = (1..=8).contains(&env.len()) && env.bytes().all(|b| b.is_ascii_lowercase());
        let body_ok = if body.len() == CHECKSUMMED_BODY_LEN {
            let (secret, sum) = body.split_at(2 * SECRET_BYTES);
            secret
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && sum == checksum(&s[..s.len() - CHECKSUM_LEN])
        } else {
            (32..=LEGACY_BODY_MAX).contains(&body.len())
                && body.bytes().all(|b| b.is_ascii_alphanumeric())
        };
        if env_ok && body_ok {
            Ok(ApiKey(s.to_owned()))
        } else {
            Err(CoreError::ApiKey("malformed"))
        }
    }

    /// The digest under which the key is stored.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest(hex::encode(Sha256::digest(self.0.as_bytes())))
    }

    /// The secret, to show once at creation. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

/// The checksum of a key's text before it: the first 4 bytes of its
/// SHA-256, in hex. One made-up key in 2^32 passes it.
fn checksum(unchecked: &str) -> String {
    let digest = Sha256::digest(unchecked.as_bytes());
    hex::encode(&digest[..CHECKSUM_LEN / 2])
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_digest_stably() {
        let key = ApiKey::generate([7u8; 32]);
        let id = key.key_id();
        assert_eq!(id.len(), 18);
        assert!(key.digest().0.starts_with(&id[2..]));
        assert!(key.expose_secret().starts_with(PREFIX));
        let parsed = ApiKey::parse(key.expose_secret()).unwrap();
        assert_eq!(parsed.digest(), key.digest());
        assert_eq!(key.digest().0.len(), 64);
        assert_ne!(ApiKey::generate([8u8; 32]).digest(), key.digest());
    }

    #[test]
    fn new_keys_carry_a_checksum_and_old_keys_still_parse() {
        let key = ApiKey::generate([7u8; 32]);
        let text = key.expose_secret();
        assert_eq!(text.len(), PREFIX.len() + CHECKSUMMED_BODY_LEN);
        assert!(key.has_checksum());
        // Any one changed character breaks the checksum.
        let bytes = text.as_bytes();
        for i in PREFIX.len()..text.len() {
            let mut changed = bytes.to_vec();
            changed[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(changed).unwrap();
            assert_eq!(
                ApiKey::parse(&changed),
                Err(CoreError::ApiKey("malformed")),
                "position {i}"
            );
        }
        // Upper-case hex is not what tollgate issues.
        assert!(ApiKey::parse(&text.to_ascii_uppercase().replace("TG_LIVE_", "tg_live_")).is_err());
        // 65-71 and 73+ characters: neither shape.
        for len in [65, 70, 71, 73, 80] {
            assert!(
                ApiKey::parse(&format!("tg_live_{}", "a".repeat(len))).is_err(),
                "{len}"
            );
        }
        // Keys issued before checksums (32-64 characters) keep working.
        for old in [
            "tg_live_000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "tg_test_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef",
        ] {
            let k = ApiKey::parse(old).unwrap();
            assert!(!k.has_checksum());
            assert_eq!(k.expose_secret(), old);
        }
    }

    #[test]
    fn debug_redacts() {
        let key = ApiKey::generate([9u8; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose_secret()[8..]));
    }

    #[test]
    fn rejects_bad_shapes() {
        let long = format!("tg_live_{}", "a".repeat(200));
        for bad in [
            "",
            "   ",
            "abc",
            "tg_live_short",
            "tg__aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "tg_LIVE_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "xx_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "tg_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u{0}aaaa",
            long.as_str(),
        ] {
            assert!(ApiKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
