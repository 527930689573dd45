//! API keys: a random secret shown once, stored and looked up only as its
//! SHA-256 digest. Secrets never appear in `Debug` output or logs.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::CoreError;

/// The printable prefix of every key tollgate issues.
pub const PREFIX: &str = "tg_live_";
/// Bytes of randomness in a secret (256 bits).
pub const SECRET_BYTES: usize = 32;
/// The longest header value the authorizer will even look at.
pub const MAX_PRESENTED_LEN: usize = 128;

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
        ApiKey(format!("{PREFIX}{}", hex::encode(secret)))
    }

    /// The key's public id: `k_` and the first 16 hex digits of its digest.
    /// Derived from the digest (never from the secret directly), so the
    /// authorizer knows the identity `key:<id>` before any read and can fetch
    /// the key and its blocks in one request.
    pub fn key_id(&self) -> String {
        self.digest().key_id()
    }

    /// Checks the shape of a presented key: `tg_<env>_` followed by 32-64
    /// hex or alphanumeric characters. Shape failures cost no database read.
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
        let body_ok =
            (32..=64).contains(&body.len()) && body.bytes().all(|b| b.is_ascii_alphanumeric());
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
