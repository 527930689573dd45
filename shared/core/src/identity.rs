//! Who is metered: an API key, or for the anonymous free tier an IP address
//! or a Referer host. Parsing normalises, so one client has one identity.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The metered party. Its text form is `key:<id>`, `ip:<addr>` or `referer:<host>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Identity {
    /// An API key, by its public key id (never the secret).
    Key(String),
    /// An anonymous client by IP address, in canonical form (IPv4-mapped IPv6 becomes IPv4).
    Ip(IpAddr),
    /// An anonymous client by the host of its Referer, lower-case, without port.
    Referer(String),
}

const MAX_KEY_ID: usize = 64;
const MAX_HOST: usize = 253;

impl Identity {
    /// A key identity, checking the id's shape.
    pub fn key(id: &str) -> Result<Self, CoreError> {
        let ok = !id.is_empty()
            && id.len() <= MAX_KEY_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Identity::Key(id.to_owned()))
        } else {
            Err(CoreError::Identity(
                format!("key:{id}"),
                "a key id is 1-64 characters of A-Z, a-z, 0-9, '_' or '-'",
            ))
        }
    }

    /// An IP identity in canonical form.
    pub fn ip(addr: IpAddr) -> Self {
        let addr = match addr {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        Identity::Ip(addr)
    }

    /// Parses an IP address text (surrounding spaces allowed) into an identity.
    pub fn parse_ip(text: &str) -> Result<Self, CoreError> {
        text.trim()
            .parse::<IpAddr>()
            .map(Identity::ip)
            .map_err(|_| CoreError::Identity(format!("ip:{text}"), "not an IPv4 or IPv6 address"))
    }

    /// A Referer identity from a Referer header value (a URL) or a bare host.
    pub fn referer(value: &str) -> Result<Self, CoreError> {
        referer_host(value)
            .map(Identity::Referer)
            .ok_or_else(|| CoreError::Identity(format!("referer:{value}"), "no valid host name"))
    }

    /// Whether this is an anonymous (free tier) identity.
    pub fn is_anonymous(&self) -> bool {
        !matches!(self, Identity::Key(_))
    }
}

/// Reduces a Referer URL (or bare host) to its host: lower-case, no port,
/// no user info, no trailing dot. `None` when no valid host is there.
fn referer_host(value: &str) -> Option<String> {
    let rest = value.trim();
    let rest = match rest.find("://") {
        Some(i) => &rest[i + 3..],
        None => rest,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        // An IPv6 literal host: keep it canonical.
        let inner = v6.split(']').next()?;
        return inner
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| a.to_string());
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= MAX_HOST
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(host)
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Key(id) => write!(f, "key:{id}"),
            Identity::Ip(addr) => write!(f, "ip:{addr}"),
            Identity::Referer(host) => write!(f, "referer:{host}"),
        }
    }
}

impl FromStr for Identity {
    type Err = CoreError;

    /// Parses the text form, normalising it (`ip:::ffff:1.2.3.4` becomes `ip:1.2.3.4`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, value) = s.split_once(':').ok_or_else(|| {
            CoreError::Identity(
                s.to_owned(),
                "expected key:<id>, ip:<addr> or referer:<host>",
            )
        })?;
        match kind {
            "key" => Identity::key(value),
            "ip" => Identity::parse_ip(value),
            "referer" => Identity::referer(value),
            _ => Err(CoreError::Identity(
                s.to_owned(),
                "expected key:<id>, ip:<addr> or referer:<host>",
            )),
        }
    }
}

impl TryFrom<String> for Identity {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Identity> for String {
    fn from(id: Identity) -> Self {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_each_kind() {
        for text in [
            "key:k_123-ABC",
            "ip:203.0.113.7",
            "ip:2001:db8::1",
            "referer:example.com",
        ] {
            assert_eq!(text.parse::<Identity>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn normalises_ips() {
        assert_eq!(
            "ip:::ffff:192.0.2.1"
                .parse::<Identity>()
                .unwrap()
                .to_string(),
            "ip:192.0.2.1"
        );
        assert_eq!(
            "ip:2001:0DB8:0000:0000:0000:0000:0000:0001"
                .parse::<Identity>()
                .unwrap()
                .to_string(),
            "ip:2001:db8::1"
        );
        assert_eq!(
            Identity::parse_ip(" 10.0.0.1 ").unwrap().to_string(),
            "ip:10.0.0.1"
        );
    }

    #[test]
    fn reduces_referers_to_hosts() {
        for (input, host) in [
            ("https://Docs.Example.COM/path?q=1#x", "docs.example.com"),
            ("http://user:pw@example.com:8080/", "example.com"),
            ("example.com.", "example.com"),
            ("https://[2001:db8::1]:443/", "2001:db8::1"),
        ] {
            assert_eq!(
                Identity::referer(input).unwrap(),
                Identity::Referer(host.into()),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_bad_identities() {
        for bad in [
            "",
            "key:",
            "key:has space",
            "key:has#hash",
            "ip:999.1.1.1",
            "ip:",
            "referer:",
            "referer:https:///nohost",
            "referer:bad..dots",
            "referer:-lead.com",
            "user:x",
            "noprefix",
        ] {
            assert!(
                bad.parse::<Identity>().is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(Identity::key(&"a".repeat(65)).is_err());
        assert!(Identity::referer(&format!("{}.com", "a".repeat(300))).is_err());
    }

    #[test]
    fn anonymity() {
        assert!(!Identity::key("k").unwrap().is_anonymous());
        assert!(Identity::parse_ip("1.2.3.4").unwrap().is_anonymous());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(addr in any::<std::net::IpAddr>(), id in "[A-Za-z0-9_-]{1,64}", host in "[a-z0-9]{1,20}(\\.[a-z0-9]{1,10}){0,3}") {
            for identity in [Identity::ip(addr), Identity::key(&id).unwrap(), Identity::referer(&host).unwrap()] {
                let text = identity.to_string();
                prop_assert_eq!(text.parse::<Identity>().unwrap(), identity);
            }
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<Identity>();
            let _ = Identity::referer(&s);
        }
    }
}
