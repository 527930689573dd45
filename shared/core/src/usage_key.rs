//! The Usage table's key encoding (DESIGN.md): `pk = <meter>#<identity>`,
//! `sk = <window>#<period>#<region>`. One item per counter and region; a
//! region only ever increments items whose `sk` ends with its own name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{CoreError, CounterKey, Identity, MeterName, Period};

/// An AWS region name (or a local stand-in such as `local-a`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// Checks and wraps a region name.
    pub fn new(name: &str) -> Result<Self, CoreError> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Region(name.to_owned()))
        } else {
            Err(CoreError::Region(name.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Region {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::new(s)
    }
}

impl TryFrom<String> for Region {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Region::new(&s)
    }
}

impl From<Region> for String {
    fn from(r: Region) -> Self {
        r.0
    }
}

/// The key of one region's Usage item for one counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageKey {
    pub counter: CounterKey,
    pub region: Region,
}

impl UsageKey {
    /// The partition key: `<meter>#<identity>`.
    pub fn pk(&self) -> String {
        self.counter.pk()
    }

    /// The sort key: `<window>#<period>#<region>`.
    pub fn sk(&self) -> String {
        format!("{}#{}", self.counter.period, self.region)
    }

    /// Parses a Usage item's keys.
    pub fn parse(pk: &str, sk: &str) -> Result<Self, CoreError> {
        let bad = |why| CoreError::UsageKey(format!("{pk} / {sk}"), why);
        let (meter, identity) = pk
            .split_once('#')
            .ok_or_else(|| bad("pk must be <meter>#<identity>"))?;
        let (period, region) = sk
            .rsplit_once('#')
            .ok_or_else(|| bad("sk must be <window>#<period>#<region>"))?;
        Ok(UsageKey {
            counter: CounterKey {
                meter: MeterName::new(meter)?,
                identity: identity.parse::<Identity>()?,
                period: period.parse::<Period>()?,
            },
            region: Region::new(region)?,
        })
    }
}

impl CounterKey {
    /// The Usage partition key of this counter: `<meter>#<identity>`.
    pub fn pk(&self) -> String {
        format!("{}#{}", self.meter, self.identity)
    }

    /// The prefix of the sort keys of this counter's region items, for one
    /// Query that sums the counter over all regions.
    pub fn sk_prefix(&self) -> String {
        format!("{}#", self.period)
    }

    /// This counter's item in `region`.
    pub fn in_region(&self, region: &Region) -> UsageKey {
        self.clone().into_region(region)
    }

    /// This counter's item in `region`, without copying the counter.
    pub fn into_region(self, region: &Region) -> UsageKey {
        UsageKey {
            counter: self,
            region: region.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Window;
    use proptest::prelude::*;

    #[test]
    fn encodes_as_designed() {
        let key = CounterKey {
            meter: MeterName::requests(),
            identity: "ip:2001:db8::1".parse().unwrap(),
            period: Window::Month.period_of(1_795_000_000_000).unwrap(),
        }
        .in_region(&Region::new("eu-central-1").unwrap());
        assert_eq!(key.pk(), "requests#ip:2001:db8::1");
        assert_eq!(key.sk(), "month#2026-11#eu-central-1");
        assert_eq!(UsageKey::parse(&key.pk(), &key.sk()).unwrap(), key);
        assert!(key.sk().starts_with(&key.counter.sk_prefix()));
    }

    #[test]
    fn rejects_bad_keys() {
        for (pk, sk) in [
            ("requests", "day#2026-11-21#eu-west-1"),
            ("requests#key:a", "day#2026-11-21"),
            ("requests#key:a", "day#2026-11-21#EU"),
            ("Requests#key:a", "day#2026-11-21#eu-west-1"),
            ("requests#user:a", "day#2026-11-21#eu-west-1"),
            ("requests#key:a", "week#2026-11-21#eu-west-1"),
        ] {
            assert!(UsageKey::parse(pk, sk).is_err(), "{pk} {sk}");
        }
        assert!(Region::new("").is_err());
        assert!(Region::new("us east").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(meter in "[a-z0-9_-]{1,20}", id in "[A-Za-z0-9_-]{1,30}", at in 0i64..4_000_000_000_000, w in 0usize..4, region in "[a-z0-9-]{1,20}") {
            let key = CounterKey {
                meter: MeterName::new(&meter).unwrap(),
                identity: Identity::key(&id).unwrap(),
                period: Window::ALL[w].period_of(at).unwrap(),
            }.in_region(&Region::new(&region).unwrap());
            prop_assert_eq!(UsageKey::parse(&key.pk(), &key.sk()).unwrap(), key);
        }

        #[test]
        fn parse_never_panics(pk in "\\PC{0,40}", sk in "\\PC{0,40}") {
            let _ = UsageKey::parse(&pk, &sk);
        }
    }
}
