//! The Usage table's key encoding (DESIGN.md): `pk = <meter>#<identity>`,
//! `sk = <window>#<period>#<region>`, and where in its item a counter lives.
//!
//! A day's counter is stored in its month's item, as the attribute
//! `d01`..`d31` beside the month's own counter `n`: the day and the month
//! of a batch's increments are then one `UpdateItem` (one write unit), not
//! two. Minute, hour and month counters have an item of their own (`n`).
//!
//! Anonymous identities (IP addresses, Referer hosts) are many, and each
//! makes few calls: one item each would cost one write per identity per
//! batch. Their counters share items instead: `pk = <meter>#anon:<bucket>`
//! ([`bucket_of`]), `sk = <window>#<period>#<region>` of the counter's own
//! period, one attribute per identity, named by its text form (`ip:…`,
//! `referer:…`). A batch's calls of a bucket's identities are one write
//! per part: a bucket is held by parts of bounded size ([`crate::bucket`]).
//!
//! A region only ever increments items whose `sk` ends with its own name.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{CoreError, CounterKey, Identity, MeterName, Period, Window};

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

/// The attribute names of a month item's day counters, `d01` to `d31`.
const DAY_ATTRIBUTES: [&str; 31] = [
    "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12", "d13",
    "d14", "d15", "d16", "d17", "d18", "d19", "d20", "d21", "d22", "d23", "d24", "d25", "d26",
    "d27", "d28", "d29", "d30", "d31",
];

/// The period of the Usage item that holds a period's counter: a day's
/// counter lives in its month's item, every other counter in its own.
pub fn item_period(period: Period) -> Period {
    match period.window {
        Window::Day => Window::Month.period_of(period.start).unwrap_or(period),
        _ => period,
    }
}

pub use crate::bucket::{bucket_of, ANONYMOUS_BUCKETS};

/// The `pk` segment of an anonymous bucket item: `anon:<bucket>`.
const BUCKET_PREFIX: &str = "anon:";

/// The `sk` suffix of a bucket's part `part` (none for part 0).
fn part_suffix(part: u32) -> String {
    if part == 0 {
        String::new()
    } else {
        format!("#{part:06}")
    }
}

/// Where a counter lives in its Usage item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cell {
    /// The item's own counter, attribute `n`.
    Own,
    /// One day (1 to 31) of a month item, attribute `d01`..`d31`.
    Day(u8),
    /// An anonymous identity's counter in its bucket's item, attribute
    /// named by the identity (`ip:203.0.113.7`).
    Member(Identity),
}

impl Cell {
    /// Every cell a month item can hold: its own counter, then its days.
    pub fn of_month() -> impl Iterator<Item = Cell> {
        std::iter::once(Cell::Own).chain((1..=31).map(Cell::Day))
    }

    /// Every cell an item of `window` can hold: a month item's
    /// [`of_month`](Cell::of_month), any other item's own counter only.
    pub fn of(window: Window) -> impl Iterator<Item = Cell> {
        let cells = if window == Window::Month {
            1 + DAY_ATTRIBUTES.len()
        } else {
            1
        };
        Cell::of_month().take(cells)
    }

    /// The item attribute holding the counter.
    pub fn attribute(&self) -> Cow<'static, str> {
        match self {
            Cell::Own => Cow::Borrowed("n"),
            Cell::Day(d) => Cow::Borrowed(DAY_ATTRIBUTES[usize::from((*d).clamp(1, 31)) - 1]),
            Cell::Member(identity) => Cow::Owned(identity.to_string()),
        }
    }

    /// The anonymous identity an attribute of a bucket item counts, if the
    /// attribute is such a counter (other attributes, such as `agg` or a
    /// watermark `w:…`, are not).
    pub fn member_of_attribute(name: &str) -> Option<Identity> {
        if !(name.starts_with("ip:") || name.starts_with("referer:")) {
            return None;
        }
        name.parse::<Identity>().ok().filter(Identity::is_anonymous)
    }
}

/// Names one Usage item: its partition and sort keys. The counters an item
/// holds (a month and its days, a bucket's identities) share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

/// Whose counters a Usage item holds, as its keys say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKeys {
    /// One identity's item: the key of its own counter (`n`), from which
    /// [`UsageKey::at_cell`] derives its other cells' keys.
    Counter(UsageKey),
    /// A bucket of anonymous identities' counters of one period.
    Bucket(BucketItem),
}

/// The keys of an anonymous bucket item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketItem {
    pub meter: MeterName,
    pub bucket: u32,
    pub period: Period,
    pub region: Region,
    /// Which of the bucket's parts (see [`crate::bucket`]).
    pub part: u32,
}

impl BucketItem {
    /// The key of `identity`'s counter in this item; an error if the
    /// identity does not belong in this bucket.
    pub fn member(&self, identity: Identity) -> Result<UsageKey, CoreError> {
        if bucket_of(&identity) != Some(self.bucket) {
            return Err(CoreError::UsageKey(
                format!("{}{} / {identity}", BUCKET_PREFIX, self.bucket),
                "the identity belongs in another bucket",
            ));
        }
        let mut key = CounterKey {
            meter: self.meter.clone(),
            identity,
            period: self.period,
        }
        .into_region(&self.region);
        key.part = self.part;
        Ok(key)
    }
}

impl ItemKeys {
    /// Parses a Usage item's `pk` and `sk`.
    pub fn parse(pk: &str, sk: &str) -> Result<Self, CoreError> {
        let bucket = pk
            .split_once('#')
            .and_then(|(meter, rest)| Some((meter, rest.strip_prefix(BUCKET_PREFIX)?)));
        let bad = |why| CoreError::UsageKey(format!("{pk} / {sk}"), why);
        let Some((meter, bucket)) = bucket else {
            let key = UsageKey::parse(pk, sk)?;
            if key.counter.identity.is_anonymous() {
                return Err(bad(
                    "an anonymous identity's counters live in its bucket's items",
                ));
            }
            return Ok(ItemKeys::Counter(key));
        };
        let bucket = bucket
            .parse::<u32>()
            .ok()
            .filter(|b| *b < ANONYMOUS_BUCKETS)
            .ok_or_else(|| bad("no such anonymous bucket"))?;
        let shape = "sk must be <window>#<period>#<region>[#<part>]";
        let mut fields = sk.splitn(4, '#');
        let (Some(window), Some(label), Some(region)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad(shape));
        };
        let part = match fields.next() {
            None => 0,
            Some(p) if p.len() == 6 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u32>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("part 0 has no suffix"))?,
            Some(_) => return Err(bad(shape)),
        };
        Ok(ItemKeys::Bucket(BucketItem {
            meter: MeterName::new(meter)?,
            bucket,
            period: format!("{window}#{label}").parse::<Period>()?,
            region: Region::new(region)?,
            part,
        }))
    }
}

/// The key of one region's value of one counter. Its `pk` and `sk` name
/// the item that holds it, and its [`cell`](UsageKey::cell) the attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageKey {
    pub counter: CounterKey,
    pub region: Region,
    /// The part of an anonymous identity's bucket that holds this cell of
    /// the counter (see [`crate::bucket`]); always 0 for an API key.
    pub part: u32,
}

impl UsageKey {
    /// The partition key: `<meter>#<identity>`.
    pub fn pk(&self) -> String {
        self.counter.pk()
    }

    /// The sort key of the item holding the counter: `<window>#<period>#<region>`
    /// of its [item period](CounterKey::item_period).
    pub fn sk(&self) -> String {
        format!(
            "{}#{}{}",
            self.counter.item_period(),
            self.region,
            part_suffix(self.part)
        )
    }

    /// The same counter's cell in part `part` of its bucket.
    pub fn in_part(&self, part: u32) -> Self {
        let mut key = self.clone();
        key.part = part;
        key
    }

    /// The `sk` range of every part of this key's item in its region (for a
    /// Query of a bucket's last part): part 0's `sk` and that `sk` + `#~`.
    pub fn part_range(&self) -> (String, String) {
        let base = format!("{}#{}", self.counter.item_period(), self.region);
        let end = format!("{base}#~");
        (base, end)
    }

    /// Where in the item the counter lives.
    pub fn cell(&self) -> Cell {
        self.counter.cell()
    }

    /// The item holding the counter: the same for every counter the item
    /// holds (a month and its days, a bucket's identities).
    pub fn item(&self) -> ItemKey {
        ItemKey {
            pk: self.pk(),
            sk: self.sk(),
        }
    }

    /// The counter's name in its partition, `<window>#<period>#<region>`:
    /// its item's `sk`, except for a day counter, which lives in its
    /// month's item. [`UsageKey::parse`] reads it back.
    pub fn label(&self) -> String {
        format!("{}#{}", self.counter.period, self.region)
    }

    /// The key of the counter in `cell` of this key's item, `self` being the
    /// item's own counter (as [`UsageKey::parse`] reads it from `pk` and `sk`).
    pub fn at_cell(&self, cell: &Cell) -> Result<Self, CoreError> {
        let day = match cell {
            Cell::Own => return Ok(self.clone()),
            Cell::Day(day) => *day,
            Cell::Member(_) => {
                return Err(CoreError::UsageKey(
                    format!("{} / {}", self.pk(), self.sk()),
                    "only a bucket item holds anonymous identities",
                ))
            }
        };
        let bad = |why| CoreError::UsageKey(format!("{} / {}", self.pk(), self.sk()), why);
        let month = self.counter.period;
        if month.window != Window::Month {
            return Err(bad("only a month item holds day counters"));
        }
        let at = month.start + (i64::from(day) - 1) * 86_400_000;
        if day == 0 || !month.contains(at) {
            return Err(bad("no such day in the month"));
        }
        let mut key = self.clone();
        key.counter.period = Window::Day.period_of(at)?;
        Ok(key)
    }

    /// Parses `<meter>#<identity>` and `<window>#<period>#<region>`: an
    /// identity's item keys (the key of the item's own counter), or a
    /// counter's [`pk`](CounterKey::pk) of the identity and its
    /// [`label`](UsageKey::label). A bucket item's keys are read with
    /// [`ItemKeys::parse`].
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
            part: 0,
        })
    }
}

impl CounterKey {
    /// The Usage partition key of this counter: `<meter>#<identity>`, or
    /// for an anonymous identity `<meter>#anon:<bucket>` (see [`bucket_of`]).
    pub fn pk(&self) -> String {
        match bucket_of(&self.identity) {
            Some(bucket) => format!("{}#{BUCKET_PREFIX}{bucket}", self.meter),
            None => format!("{}#{}", self.meter, self.identity),
        }
    }

    /// The counter's name in reports and tests, `<meter>#<identity>`: its
    /// item's `pk`, except for an anonymous identity (a bucket's item).
    pub fn name(&self) -> String {
        format!("{}#{}", self.meter, self.identity)
    }

    /// The prefix of the sort keys of the items holding this counter in
    /// every region, for one Query that sums the counter over all regions.
    pub fn sk_prefix(&self) -> String {
        format!("{}#", self.item_period())
    }

    /// The period of the item that holds this counter (see [`item_period`]);
    /// an anonymous identity's bucket item holds one period.
    pub fn item_period(&self) -> Period {
        if self.identity.is_anonymous() {
            self.period
        } else {
            item_period(self.period)
        }
    }

    /// Where in that item the counter lives.
    pub fn cell(&self) -> Cell {
        if self.identity.is_anonymous() {
            return Cell::Member(self.identity.clone());
        }
        match self.period.window {
            Window::Day => Cell::Day(self.period.day_of_month()),
            _ => Cell::Own,
        }
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
            part: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_as_designed() {
        let key = CounterKey {
            meter: MeterName::requests(),
            identity: "key:k_1".parse().unwrap(),
            period: Window::Month.period_of(1_795_000_000_000).unwrap(),
        }
        .in_region(&Region::new("eu-central-1").unwrap());
        assert_eq!(key.pk(), "requests#key:k_1");
        assert_eq!(key.sk(), "month#2026-11#eu-central-1");
        assert_eq!(UsageKey::parse(&key.pk(), &key.sk()).unwrap(), key);
        assert_eq!(
            ItemKeys::parse(&key.pk(), &key.sk()).unwrap(),
            ItemKeys::Counter(key.clone())
        );
        assert!(key.sk().starts_with(&key.counter.sk_prefix()));
    }

    #[test]
    fn anonymous_identities_share_bucket_items() {
        let region = Region::new("eu-central-1").unwrap();
        let counter = |identity: &str, period: &str| {
            CounterKey {
                meter: MeterName::requests(),
                identity: identity.parse().unwrap(),
                period: period.parse().unwrap(),
            }
            .in_region(&region)
        };
        let ip = counter("ip:2001:db8::1", "day#2026-11-21");
        let bucket = bucket_of(&ip.counter.identity).unwrap();
        // Pinned: every function, and every version, must put an identity
        // in the same bucket.
        // (Under the default secret: a deployment's own moves it.)
        assert_eq!(bucket, PINNED_BUCKET);
        assert_eq!(ip.pk(), format!("requests#anon:{PINNED_BUCKET}"));
        // A day is an item of its own, not a cell of its month.
        assert_eq!(ip.sk(), "day#2026-11-21#eu-central-1");
        assert_eq!(ip.counter.sk_prefix(), "day#2026-11-21#");
        assert_eq!(ip.cell().attribute(), "ip:2001:db8::1");
        assert_eq!(bucket_of(&"key:k".parse().unwrap()), None);
        // Identities of one bucket name one item; their keys read back.
        let other = (0..10_000)
            .map(|i| format!("ip:10.0.{}.{}", i / 256, i % 256))
            .find(|text| bucket_of(&text.parse().unwrap()) == Some(bucket))
            .unwrap();
        let neighbour = counter(&other, "day#2026-11-21");
        assert_eq!(neighbour.item(), ip.item());
        assert_ne!(counter(&other, "month#2026-11").item(), ip.item());
        let ItemKeys::Bucket(item) = ItemKeys::parse(&ip.pk(), &ip.sk()).unwrap() else {
            panic!("not a bucket item");
        };
        assert_eq!(item.member(ip.counter.identity.clone()).unwrap(), ip);
        assert_eq!(
            item.member(neighbour.counter.identity.clone()).unwrap(),
            neighbour
        );
        // An identity of another bucket, or a key, is no member of it.
        let elsewhere = (0..100)
            .map(|i| format!("ip:10.1.0.{i}").parse::<Identity>().unwrap())
            .find(|id| bucket_of(id) != Some(bucket))
            .unwrap();
        assert!(item.member(elsewhere).is_err());
        assert!(item.member("key:k".parse().unwrap()).is_err());
        // Attribute names: anonymous identities only.
        assert_eq!(
            Cell::member_of_attribute("referer:docs.example.com"),
            Some("referer:docs.example.com".parse().unwrap())
        );
        for name in ["n", "d21", "agg", "w:0123456789ab", "key:k", "ip:nonsense"] {
            assert_eq!(Cell::member_of_attribute(name), None, "{name}");
        }
        // No item of an anonymous identity's own (nothing writes one).
        assert!(ItemKeys::parse("requests#ip:2001:db8::1", &ip.sk()).is_err());
        for pk in ["requests#anon:1024", "requests#anon:x", "requests#anon:"] {
            assert!(
                ItemKeys::parse(pk, "day#2026-11-21#eu-central-1").is_err(),
                "{pk}"
            );
        }
    }

    /// The bucket of `ip:2001:db8::1` under the default secret.
    const PINNED_BUCKET: u32 = 547;

    #[test]
    fn a_buckets_parts_have_their_own_keys() {
        let region = Region::new("eu-central-1").unwrap();
        let ip = CounterKey {
            meter: MeterName::requests(),
            identity: "ip:2001:db8::1".parse().unwrap(),
            period: "day#2026-11-21".parse().unwrap(),
        }
        .in_region(&region);
        assert_eq!(ip.part, 0);
        let third = ip.in_part(3);
        assert_eq!(third.sk(), "day#2026-11-21#eu-central-1#000003");
        assert_eq!(third.pk(), ip.pk());
        assert_ne!(third.item(), ip.item());
        let (from, to) = ip.part_range();
        assert_eq!(from, ip.sk());
        assert!(from < third.sk() && third.sk() < to);
        // Another region's parts are outside the range, and inside the prefix.
        let west = ip.counter.in_region(&Region::new("eu-central-10").unwrap());
        assert!(west.in_part(1).sk() > to);
        assert!(third.sk().starts_with(&ip.counter.sk_prefix()));
        let ItemKeys::Bucket(item) = ItemKeys::parse(&third.pk(), &third.sk()).unwrap() else {
            panic!("not a bucket item");
        };
        assert_eq!(item.part, 3);
        assert_eq!(item.member(ip.counter.identity.clone()).unwrap(), third);
        for sk in [
            "day#2026-11-21#eu-central-1#000000",
            "day#2026-11-21#eu-central-1#3",
            "day#2026-11-21#eu-central-1#00000x",
            "day#2026-11-21#eu-central-1#000001#1",
        ] {
            assert!(ItemKeys::parse(&ip.pk(), sk).is_err(), "{sk}");
        }
        // An API key's item has no parts.
        assert!(ItemKeys::parse("requests#key:k", "month#2026-11#eu-central-1#000001").is_err());
    }

    #[test]
    fn a_day_lives_in_its_month_item() {
        let day = CounterKey {
            meter: MeterName::requests(),
            identity: "key:k".parse().unwrap(),
            period: Period::parse_label(Window::Day, "2026-11-21").unwrap(),
        }
        .in_region(&Region::new("eu-central-1").unwrap());
        assert_eq!(day.sk(), "month#2026-11#eu-central-1");
        assert_eq!(day.cell(), Cell::Day(21));
        assert_eq!(day.cell().attribute(), "d21");
        assert_eq!(day.counter.sk_prefix(), "month#2026-11#");
        let month = UsageKey::parse(&day.pk(), &day.sk()).unwrap();
        assert_eq!(day.item(), month.item());
        assert_eq!(month.item().sk, month.sk());
        assert_eq!(month.at_cell(&Cell::Own).unwrap(), month);
        assert_eq!(month.at_cell(&Cell::Day(21)).unwrap(), day);
        assert_eq!(day.label(), "day#2026-11-21#eu-central-1");
        assert_eq!(UsageKey::parse(&day.pk(), &day.label()).unwrap(), day);
        // Day 31 of November, or a day cell of a non-month item, is no counter.
        assert!(month.at_cell(&Cell::Day(31)).is_err());
        assert!(month.at_cell(&Cell::Day(0)).is_err());
        let hour = UsageKey::parse(&day.pk(), "hour#2026-11-21T10#eu-central-1").unwrap();
        assert!(hour.at_cell(&Cell::Day(1)).is_err());
        assert_eq!(Cell::of(Window::Hour).collect::<Vec<_>>(), [Cell::Own]);
        assert_eq!(Cell::of(Window::Month).count(), 32);
        // Keys of the older layout, a day item of its own, still parse.
        let old = UsageKey::parse(&day.pk(), "day#2026-11-21#eu-central-1").unwrap();
        assert_eq!(old.counter.period, day.counter.period);
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
            prop_assert_eq!(UsageKey::parse(&key.pk(), &key.sk()).unwrap().at_cell(&key.cell()).unwrap(), key.clone());
            prop_assert!(key.sk().starts_with(&key.counter.sk_prefix()));
            let attribute = key.cell().attribute();
            prop_assert!(attribute == "n" || (key.counter.period.window == Window::Day && attribute.len() == 3));
        }

        #[test]
        fn parse_never_panics(pk in "\\PC{0,40}", sk in "\\PC{0,40}") {
            let _ = UsageKey::parse(&pk, &sk);
            let _ = ItemKeys::parse(&pk, &sk);
        }
    }
}
