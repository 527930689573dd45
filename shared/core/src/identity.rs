//! Who is metered: an API key, or for the anonymous free tier an IP address
//! (an IPv6 client by its prefix) or a Referer host. Parsing normalises, so
//! one client has one identity.
//!
//! [`Identity::anonymous_ip`] is the one rule that turns a client address
//! into its anonymous identity; the authorizer and the log-processor both go
//! through it, so logs, usage counters and blocks name the same identity.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The metered party. Its text form is `key:<id>`, `ip:<addr>` (an IPv6
/// prefix shorter than /128 is written `ip:<network>/<len>`, such as
/// `ip:2001:db8:1:2::/64`) or `referer:<host>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Identity {
    /// An API key, by its public key id (never the secret).
    Key(String),
    /// An anonymous client by IP address: an IPv4 address, or an IPv6
    /// network of the configured prefix length (see [`Identity::anonymous_ip`]).
    Ip(IpPrefix),
    /// An anonymous client by the host of its Referer, lower-case, without port.
    Referer(String),
}

/// An IPv4 address (always a /32) or an IPv6 network: the address with its
/// host bits cleared and its prefix length. Build one with
/// [`Identity::anonymous_ip`] or by parsing an identity's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length: 32 for IPv4, 32..=128 for IPv6.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `addr` (as a client address, unwrapped like
    /// [`Identity::anonymous_ip`] does) lies in this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, unwrap_ipv4(addr)) {
            (IpAddr::V4(a), IpAddr::V4(b)) => a == b,
            (IpAddr::V6(net), IpAddr::V6(b)) => mask(b, self.len) == net,
            _ => false,
        }
    }

    fn v6(addr: Ipv6Addr, len: u8) -> IpPrefix {
        IpPrefix {
            addr: IpAddr::V6(mask(addr, len)),
            len,
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V6(a) if self.len < 128 => write!(f, "{a}/{}", self.len),
            a => write!(f, "{a}"),
        }
    }
}

/// How many leading bits of an IPv6 client address make its anonymous
/// identity (`TOLLGATE_ANONYMOUS_IPV6_PREFIX`, 32 to 128, default 64).
///
/// A /64 is what one subscriber line or one cloud instance is usually
/// given, so it is one client however many addresses it rotates through;
/// /56 or /48 also catch a client holding a whole delegated site prefix, at
/// the risk of metering neighbours together; /128 meters each address apart
/// (every client with a /64 then has 2^64 free quotas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix(u8);

impl Ipv6Prefix {
    /// The environment variable that sets the prefix length.
    pub const ENV: &'static str = "TOLLGATE_ANONYMOUS_IPV6_PREFIX";
    /// The default: one /64 is one client.
    pub const DEFAULT: Ipv6Prefix = Ipv6Prefix(64);
    /// The shortest prefix allowed.
    pub const MIN: u8 = 32;
    /// The longest prefix allowed (one address).
    pub const MAX: u8 = 128;

    /// A prefix length, checked to be within 32..=128.
    pub fn new(len: u8) -> Result<Self, CoreError> {
        if (Self::MIN..=Self::MAX).contains(&len) {
            Ok(Ipv6Prefix(len))
        } else {
            Err(Self::invalid(&len.to_string()))
        }
    }

    /// Reads the setting's value (`None` or blank: the default). The error
    /// names [`Ipv6Prefix::ENV`], so a bad deployment says what to fix.
    pub fn from_setting(value: Option<&str>) -> Result<Self, CoreError> {
        let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Self::DEFAULT);
        };
        let text = text.strip_prefix('/').unwrap_or(text);
        text.parse::<u8>()
            .ok()
            .and_then(|len| Self::new(len).ok())
            .ok_or_else(|| Self::invalid(text))
    }

    /// The prefix length in bits.
    pub fn bits(&self) -> u8 {
        self.0
    }

    fn invalid(value: &str) -> CoreError {
        CoreError::Setting {
            name: Self::ENV,
            value: value.to_owned(),
            expected: "a prefix length from 32 to 128",
        }
    }
}

impl Default for Ipv6Prefix {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The IPv4 address inside an IPv6 address that only carries one: IPv4-mapped
/// (`::ffff:0:0/96`), 6to4 (`2002::/16`, the address in bits 16-47) and the
/// NAT64 well-known prefix (`64:ff9b::/96`). Other addresses are unchanged.
pub fn unwrap_ipv4(addr: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = addr else {
        return addr;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    if s[0] == 0x2002 {
        return IpAddr::V4(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
    }
    addr
}

/// `addr` with every bit after the first `len` cleared.
fn mask(addr: Ipv6Addr, len: u8) -> Ipv6Addr {
    let bits = u128::from(addr);
    let kept = match len {
        0 => 0,
        l if l >= 128 => bits,
        l => bits & (u128::MAX << (128 - u32::from(l))),
    };
    Ipv6Addr::from(kept)
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

    /// The anonymous identity of a client address: the one rule every
    /// caller uses. An address that only carries an IPv4 address
    /// (IPv4-mapped, 6to4, NAT64) is that IPv4 address; an IPv4 address is
    /// itself; any other IPv6 address is its network of `prefix` bits.
    pub fn anonymous_ip(addr: IpAddr, prefix: Ipv6Prefix) -> Self {
        Identity::Ip(match unwrap_ipv4(addr) {
            IpAddr::V4(v4) => IpPrefix {
                addr: IpAddr::V4(v4),
                len: 32,
            },
            IpAddr::V6(v6) => IpPrefix::v6(v6, prefix.bits()),
        })
    }

    /// Parses a client address text (surrounding spaces allowed) into its
    /// anonymous identity, by [`Identity::anonymous_ip`].
    pub fn parse_anonymous_ip(text: &str, prefix: Ipv6Prefix) -> Result<Self, CoreError> {
        text.trim()
            .parse::<IpAddr>()
            .map(|a| Identity::anonymous_ip(a, prefix))
            .map_err(|_| CoreError::Identity(format!("ip:{text}"), "not an IPv4 or IPv6 address"))
    }

    /// Parses an IP identity's value as written in the text form: an
    /// address (IPv6: one address, /128) or `<IPv6 network>/<len>`.
    /// Host bits are cleared; addresses carrying IPv4 unwrap to it.
    fn parse_ip_value(text: &str) -> Result<Self, CoreError> {
        let bad = |why| CoreError::Identity(format!("ip:{text}"), why);
        let t = text.trim();
        let (addr, len) = match t.split_once('/') {
            None => (t, None),
            Some((a, l)) => (a, Some(l)),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("not an IPv4 or IPv6 address"))?;
        let Some(len) = len else {
            return Ok(Identity::anonymous_ip(addr, Ipv6Prefix(128)));
        };
        let len = len
            .parse::<u8>()
            .ok()
            .and_then(|l| Ipv6Prefix::new(l).ok())
            .ok_or_else(|| bad("an IPv6 prefix length is 32 to 128"))?;
        let IpAddr::V6(v6) = addr else {
            return Err(bad("only IPv6 identities carry a prefix length"));
        };
        // A network inside a range that carries IPv4 is still that IPv4
        // address when the prefix covers all of it.
        let carries_v4 = matches!(unwrap_ipv4(addr), IpAddr::V4(_));
        let covers = match v6.segments()[0] {
            0x2002 => len.bits() >= 48,
            _ => len.bits() == 128,
        };
        if carries_v4 && covers {
            return Ok(Identity::anonymous_ip(addr, len));
        }
        Ok(Identity::Ip(IpPrefix::v6(v6, len.bits())))
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
            Identity::Ip(prefix) => write!(f, "ip:{prefix}"),
            Identity::Referer(host) => write!(f, "referer:{host}"),
        }
    }
}

impl FromStr for Identity {
    type Err = CoreError;

    /// Parses the text form, normalising it (`ip:::ffff:1.2.3.4` becomes
    /// `ip:1.2.3.4`, `ip:2001:db8::5/64` becomes `ip:2001:db8::/64`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, value) = s.split_once(':').ok_or_else(|| {
            CoreError::Identity(
                s.to_owned(),
                "expected key:<id>, ip:<addr> or referer:<host>",
            )
        })?;
        match kind {
            "key" => Identity::key(value),
            "ip" => Identity::parse_ip_value(value),
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

    fn anon(text: &str) -> Identity {
        Identity::parse_anonymous_ip(text, Ipv6Prefix::DEFAULT).unwrap()
    }

    #[test]
    fn parses_and_prints_each_kind() {
        for text in [
            "key:k_123-ABC",
            "ip:203.0.113.7",
            "ip:2001:db8::1",
            "ip:2001:db8:1:2::/64",
            "ip:2001:db8::/32",
            "referer:example.com",
        ] {
            assert_eq!(text.parse::<Identity>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn normalises_ips() {
        for (text, canonical) in [
            ("ip:::ffff:192.0.2.1", "ip:192.0.2.1"),
            (
                "ip:2001:0DB8:0000:0000:0000:0000:0000:0001",
                "ip:2001:db8::1",
            ),
            ("ip:2001:db8:1:2:3:4:5:6/64", "ip:2001:db8:1:2::/64"),
            ("ip:2001:db8::1/128", "ip:2001:db8::1"),
            ("ip:2002:c000:0201::/48", "ip:192.0.2.1"),
            ("ip:64:ff9b::c000:201", "ip:192.0.2.1"),
        ] {
            assert_eq!(
                text.parse::<Identity>().unwrap().to_string(),
                canonical,
                "{text}"
            );
        }
        assert_eq!(anon(" 10.0.0.1 ").to_string(), "ip:10.0.0.1");
    }

    #[test]
    fn ipv6_clients_are_their_prefix() {
        assert_eq!(
            anon("2001:db8:1:2:aaaa:bbbb:cccc:dddd").to_string(),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(anon("2001:db8:1:2::1"), anon("2001:db8:1:2:ffff::9"));
        assert_ne!(anon("2001:db8:1:2::1"), anon("2001:db8:1:3::1"));
        let p48 = Ipv6Prefix::new(48).unwrap();
        let id = Identity::parse_anonymous_ip("2001:db8:1:ff00::1", p48).unwrap();
        assert_eq!(id.to_string(), "ip:2001:db8:1::/48");
        let exact = Ipv6Prefix::new(128).unwrap();
        let id = Identity::parse_anonymous_ip("2001:db8::7", exact).unwrap();
        assert_eq!(id.to_string(), "ip:2001:db8::7");
        match anon("2001:db8:1:2::1") {
            Identity::Ip(p) => {
                assert_eq!(p.prefix_len(), 64);
                assert!(p.contains("2001:db8:1:2:ffff::1".parse().unwrap()));
                assert!(!p.contains("2001:db8:1:3::1".parse().unwrap()));
                assert!(!p.contains("192.0.2.1".parse().unwrap()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn addresses_that_carry_ipv4_are_that_ipv4_address() {
        let v4 = anon("192.0.2.1");
        for text in [
            "::ffff:192.0.2.1",
            "2002:c000:0201::1",
            "2002:c000:201:ffff:1:2:3:4",
            "64:ff9b::192.0.2.1",
            "64:ff9b::c000:201",
        ] {
            assert_eq!(anon(text), v4, "{text}");
            // Whatever the prefix length.
            for len in [32, 64, 128] {
                let p = Ipv6Prefix::new(len).unwrap();
                assert_eq!(Identity::parse_anonymous_ip(text, p).unwrap(), v4);
            }
        }
        // Neighbours of those ranges are plain IPv6.
        assert_eq!(
            anon("2003:c000:201::1").to_string(),
            "ip:2003:c000:201::/64"
        );
        assert_eq!(anon("64:ff9b:1::c000:201").to_string(), "ip:64:ff9b:1::/64");
    }

    #[test]
    fn the_prefix_setting_is_validated_by_name() {
        assert_eq!(Ipv6Prefix::from_setting(None).unwrap(), Ipv6Prefix::DEFAULT);
        assert_eq!(Ipv6Prefix::from_setting(Some(" ")).unwrap().bits(), 64);
        assert_eq!(Ipv6Prefix::from_setting(Some("56")).unwrap().bits(), 56);
        assert_eq!(Ipv6Prefix::from_setting(Some("/48")).unwrap().bits(), 48);
        assert_eq!(Ipv6Prefix::from_setting(Some("32")).unwrap().bits(), 32);
        assert_eq!(Ipv6Prefix::from_setting(Some("128")).unwrap().bits(), 128);
        for bad in ["31", "129", "0", "-1", "64 bits", "x", "300"] {
            let e = Ipv6Prefix::from_setting(Some(bad)).unwrap_err();
            assert!(
                e.to_string().contains("TOLLGATE_ANONYMOUS_IPV6_PREFIX"),
                "{e}"
            );
        }
    }

    #[test]
    fn five_thousand_addresses_of_one_slash_64_are_one_identity() {
        let base = u128::from("2001:db8:abcd:12::".parse::<Ipv6Addr>().unwrap());
        let mut seen = std::collections::HashSet::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5_000 {
            // xorshift: spread over the whole interface id.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = IpAddr::V6(Ipv6Addr::from(base | u128::from(x)));
            seen.insert(Identity::anonymous_ip(addr, Ipv6Prefix::DEFAULT));
        }
        assert_eq!(seen.len(), 1);
        let only = seen.into_iter().next().unwrap();
        assert_eq!(only.to_string(), "ip:2001:db8:abcd:12::/64");
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
            "ip:192.0.2.1/24",
            "ip:2001:db8::/16",
            "ip:2001:db8::/129",
            "ip:2001:db8::/",
            "ip:2001:db8::/x",
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
        assert!(anon("1.2.3.4").is_anonymous());
        assert!(anon("2001:db8::1").is_anonymous());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(addr in any::<IpAddr>(), len in 32u8..=128, id in "[A-Za-z0-9_-]{1,64}", host in "[a-z0-9]{1,20}(\\.[a-z0-9]{1,10}){0,3}") {
            let prefix = Ipv6Prefix::new(len).unwrap();
            for identity in [Identity::anonymous_ip(addr, prefix), Identity::key(&id).unwrap(), Identity::referer(&host).unwrap()] {
                let text = identity.to_string();
                prop_assert_eq!(text.parse::<Identity>().unwrap(), identity);
            }
        }

        #[test]
        fn every_address_of_a_prefix_is_one_identity(net in any::<u128>(), a in any::<u128>(), b in any::<u128>(), len in 32u8..=128) {
            let prefix = Ipv6Prefix::new(len).unwrap();
            let host = |h: u128| {
                let kept = if len == 128 { 0 } else { u128::MAX >> len };
                IpAddr::V6(Ipv6Addr::from((net & !kept) | (h & kept)))
            };
            let (x, y) = (host(a), host(b));
            // Ranges that carry IPv4 unwrap, so compare only plain IPv6.
            prop_assume!(!matches!(unwrap_ipv4(x), IpAddr::V4(_)) && !matches!(unwrap_ipv4(y), IpAddr::V4(_)));
            prop_assert_eq!(Identity::anonymous_ip(x, prefix), Identity::anonymous_ip(y, prefix));
        }

        #[test]
        fn an_ipv4_address_and_its_ipv6_forms_are_one_identity(v4 in any::<Ipv4Addr>(), tail in any::<u64>(), len in 32u8..=128) {
            let prefix = Ipv6Prefix::new(len).unwrap();
            let n = u128::from(u32::from(v4));
            let forms = [
                IpAddr::V4(v4),
                IpAddr::V6(v4.to_ipv6_mapped()),
                IpAddr::V6(Ipv6Addr::from((0x2002u128 << 112) | (n << 80) | u128::from(tail))),
                IpAddr::V6(Ipv6Addr::from((0x0064_ff9bu128 << 96) | n)),
            ];
            let ids: std::collections::HashSet<_> = forms.iter().map(|a| Identity::anonymous_ip(*a, prefix)).collect();
            prop_assert_eq!(ids.len(), 1);
            prop_assert_eq!(ids.into_iter().next().unwrap().to_string(), format!("ip:{v4}"));
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<Identity>();
            let _ = Identity::referer(&s);
            let _ = Ipv6Prefix::from_setting(Some(&s));
        }
    }
}
