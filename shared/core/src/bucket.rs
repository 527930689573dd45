//! Anonymous bucket items: which bucket holds an anonymous identity's
//! counters, and how a bucket's items stay bounded whatever the number of
//! identities.
//!
//! **Which bucket.** A keyed hash of the identity's text form: SHA-256 over
//! a per-deployment secret ([`BUCKET_SECRET_VAR`]) and the identity, modulo
//! [`ANONYMOUS_BUCKETS`]. Without the secret an outsider cannot choose
//! identities (IPv6 addresses are cheap to mint) that all land in one bucket.
//!
//! **Parts.** A bucket's counters of one meter, period and region are held
//! by one or more *parts*, items of at most [`PART_ITEM_BYTES`] bytes each:
//! part 0 has the sort key `<window>#<period>#<region>`, part `p > 0` the
//! sort key `<window>#<period>#<region>#<p, six digits>`. Every write to a
//! part reserves, in the part's attribute `m`, [`member_bytes`] for every
//! counter it adds to (whether or not the counter is there already), under
//! the condition that the reservations stay within [`PART_MEMBER_BYTES`]: a
//! part therefore never holds more than that in counters, and a write that
//! finds its part full moves on to the next part. An identity's counter may
//! so be spread over several parts of its bucket: its value is the sum of
//! its cells in every part, and readers read all parts (one Query returns
//! them, by `pk` and `sk` prefix, paginated).

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::{CoreError, Identity};

/// How many buckets (per meter, period and region) share the anonymous
/// identities' counters. Every function must agree on it: changing it
/// moves identities to other items.
pub const ANONYMOUS_BUCKETS: u32 = 1024;

/// The environment variable holding the per-deployment bucket secret (at
/// least [`MIN_SECRET_LEN`] bytes). Every function of a deployment, and the
/// CLI pointed at it, must use the same secret: changing it moves
/// identities to other buckets (their counters of the current periods then
/// start again from 0).
pub const BUCKET_SECRET_VAR: &str = "TOLLGATE_BUCKET_SECRET";

/// The secret used when [`BUCKET_SECRET_VAR`] is not set: public, so a
/// deployment that keeps it lets outsiders aim identities at one bucket
/// (which costs it write units, never counts). Callers warn when they use it.
pub const DEFAULT_BUCKET_SECRET: &str = "tollgate-public-default-bucket-secret";

/// The shortest bucket secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// The largest part item, in DynamoDB's item size (attribute names and
/// values): at most [`PART_MEMBER_BYTES`] of counters plus the keys and the
/// bookkeeping attributes (`pk`, `sk`, `agg`, `updated_at`, `ttl`, `m`,
/// `shared`), at most [`PART_OVERHEAD_BYTES`]. An `UpdateItem` of a part
/// then costs at most 4 write units (8 in a transaction).
pub const PART_ITEM_BYTES: u64 = 4096;

/// The counters' share of a part: the bound on its reservations `m`.
pub const PART_MEMBER_BYTES: u64 = 3584;

/// The bound on what a part holds besides its counters: `pk` (meter of at
/// most 64 bytes, `#anon:`, bucket), `sk` (at most 64 bytes), `agg`,
/// `updated_at`, `ttl`, `m` and `shared`, with their names.
pub const PART_OVERHEAD_BYTES: u64 = PART_ITEM_BYTES - PART_MEMBER_BYTES;

/// The largest number DynamoDB stores takes 21 bytes (38 digits).
const NUMBER_BYTES: u64 = 21;

/// The highest part number (its sort key suffix has six digits): a bucket
/// holds at most about 3.5 GB of one meter, period and region.
pub const MAX_PART: u32 = 999_999;

/// The most counters one write adds to: keeps an update expression
/// (`ADD #c199 :a199, …`, 14 bytes a counter) far below DynamoDB's 4 KB.
pub const MAX_ADDS_PER_WRITE: usize = 200;

/// The attribute of a part holding its reservations, in bytes.
pub const RESERVED_ATTRIBUTE: &str = "m";

static HASHER: OnceLock<Sha256> = OnceLock::new();

fn keyed(secret: &str) -> Sha256 {
    let mut hasher = Sha256::new();
    hasher.update((secret.len() as u64).to_be_bytes());
    hasher.update(secret.as_bytes());
    hasher
}

/// Sets the bucket secret for this process, once, before any bucket is
/// computed. An error if it is shorter than [`MIN_SECRET_LEN`], or if
/// another secret (or the default, by a bucket computed first) is in use.
pub fn install_secret(secret: &str) -> Result<(), CoreError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(CoreError::Value(format!(
            "{BUCKET_SECRET_VAR} must be at least {MIN_SECRET_LEN} bytes"
        )));
    }
    let wanted = keyed(secret);
    let installed = HASHER.get_or_init(|| wanted.clone());
    if installed.clone().finalize() == wanted.finalize() {
        Ok(())
    } else {
        Err(CoreError::Value(format!(
            "another {BUCKET_SECRET_VAR} is already in use in this process"
        )))
    }
}

/// Sets the bucket secret from the variable's value: the value if it is
/// set and not empty, [`DEFAULT_BUCKET_SECRET`] otherwise. Returns whether
/// the default is used (the caller warns).
pub fn install_secret_from(value: Option<&str>) -> Result<bool, CoreError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(secret) => install_secret(secret).map(|()| false),
        None => install_secret(DEFAULT_BUCKET_SECRET).map(|()| true),
    }
}

fn hasher() -> &'static Sha256 {
    HASHER.get_or_init(|| keyed(DEFAULT_BUCKET_SECRET))
}

/// The bucket whose items hold an anonymous identity's counters (see the
/// module doc). `None` for an API key, whose counters have items of their own.
pub fn bucket_of(identity: &Identity) -> Option<u32> {
    if !identity.is_anonymous() {
        return None;
    }
    let mut hash = hasher().clone();
    hash.update([0]);
    hash.update(identity.to_string().as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u32::try_from(u64::from_be_bytes(first) % u64::from(ANONYMOUS_BUCKETS)).ok()
}

/// What a write reserves in a part for one counter of `identity`: its
/// attribute name and the largest number.
pub fn member_bytes(identity: &Identity) -> u64 {
    identity.to_string().len() as u64 + NUMBER_BYTES
}

/// A bucket's part that takes new counters, as a writer knows it: its
/// number and the bytes reserved in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenPart {
    /// The part number.
    pub part: u32,
    /// The bytes reserved in it (its `m`).
    pub reserved: u64,
}

impl OpenPart {
    /// Places a counter of `bytes`: in this part if it has room, else in the
    /// next one (which then becomes the open part). Returns the part, or an
    /// error past [`MAX_PART`].
    pub fn place(&mut self, bytes: u64) -> Result<u32, CoreError> {
        if self.reserved.saturating_add(bytes) > PART_MEMBER_BYTES {
            if self.part >= MAX_PART {
                return Err(CoreError::Value(format!(
                    "an anonymous bucket has no part left (at most {MAX_PART})"
                )));
            }
            self.part += 1;
            self.reserved = 0;
        }
        self.reserved = self.reserved.saturating_add(bytes);
        Ok(self.part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_keyed_and_spread() {
        let id = |s: &str| s.parse::<Identity>().unwrap();
        assert_eq!(bucket_of(&id("key:k")), None);
        let b = bucket_of(&id("ip:2001:db8::1")).unwrap();
        assert!(b < ANONYMOUS_BUCKETS);
        assert_eq!(bucket_of(&id("ip:2001:db8::1")), Some(b), "stable");
        // Another secret puts identities elsewhere.
        let other = |identity: &str| {
            let mut h = keyed("another-secret-of-this-length");
            h.update([0]);
            h.update(identity.as_bytes());
            let d = h.finalize();
            u64::from_be_bytes(d[..8].try_into().unwrap()) % u64::from(ANONYMOUS_BUCKETS)
        };
        let ips: Vec<String> = (0..200).map(|i| format!("ip:10.0.0.{i}")).collect();
        let moved = ips
            .iter()
            .filter(|ip| u64::from(bucket_of(&id(ip)).unwrap()) != other(ip))
            .count();
        assert!(moved > 190, "{moved} of 200 moved");
        // 100,000 identities over 1024 buckets: none far above the mean (~98).
        let mut counts = vec![0u32; ANONYMOUS_BUCKETS as usize];
        for i in 0..100_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            counts[bucket_of(&Identity::anonymous_ip(
                ip.into(),
                crate::Ipv6Prefix::DEFAULT,
            ))
            .unwrap() as usize] += 1;
        }
        assert!(counts.iter().all(|c| (40..=170).contains(c)), "{counts:?}");
        // Too short a secret is refused; the one in use is accepted again.
        assert!(install_secret("short").is_err());
        assert!(install_secret_from(None).unwrap());
        assert!(install_secret("another-secret-of-this-length").is_err());
    }

    #[test]
    fn parts_fill_then_spill() {
        let mut open = OpenPart::default();
        let bytes = member_bytes(&"ip:10.0.0.1".parse().unwrap());
        assert_eq!(bytes, 11 + 21);
        let per_part = PART_MEMBER_BYTES / bytes;
        for _ in 0..per_part {
            assert_eq!(open.place(bytes).unwrap(), 0);
        }
        assert_eq!(open.place(bytes).unwrap(), 1);
        assert_eq!(open.reserved, bytes);
        let mut last = OpenPart {
            part: MAX_PART,
            reserved: PART_MEMBER_BYTES,
        };
        assert!(last.place(1).is_err());
        // The bound holds for the longest identity.
        let label = "a".repeat(63);
        let host = format!("referer:{label}.{label}.{label}.{}", "b".repeat(61));
        let longest = member_bytes(&host.parse().unwrap());
        assert_eq!(longest, 8 + 253 + 21);
        assert!(longest * 2 < PART_MEMBER_BYTES);
        // The expression of the most counters one write adds to fits in 4 KB.
        let expression: String = (0..MAX_ADDS_PER_WRITE)
            .map(|i| format!("#c{i} :a{i}, "))
            .collect();
        assert!(expression.len() + 200 < 4096, "{}", expression.len());
    }
}
