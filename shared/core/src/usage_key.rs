//! The Usage table's key encoding (DESIGN.md): `pk = <meter>#<identity>`,
//! `sk = <window>#<period>#<region>`, and where in its item a counter lives.
//!
//! A day's counter is stored in its month's item, as the attribute
//! `d01`..`d31` beside the month's own counter `n`: the day and the month
//! of a batch's increments are then one `UpdateItem` (one write unit), not
//! two. Minute, hour and month counters have an item of their own (`n`).
//! A region only ever increments items whose `sk` ends with its own name.

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

/// Where a counter lives in its Usage item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cell {
    /// The item's own counter, attribute `n`.
    Own,
    /// One day (1 to 31) of a month item, attribute `d01`..`d31`.
    Day(u8),
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
    pub fn attribute(self) -> &'static str {
        match self {
            Cell::Own => "n",
            Cell::Day(d) => DAY_ATTRIBUTES[usize::from(d.clamp(1, 31)) - 1],
        }
    }
}

/// The key of one region's value of one counter. Its `pk` and `sk` name
/// the item that holds it, and its [`cell`](UsageKey::cell) the attribute.
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

    /// The sort key of the item holding the counter: `<window>#<period>#<region>`
    /// of its [item period](CounterKey::item_period).
    pub fn sk(&self) -> String {
        format!("{}#{}", self.counter.item_period(), self.region)
    }

    /// Where in the item the counter lives.
    pub fn cell(&self) -> Cell {
        self.counter.cell()
    }

    /// The key of the item's own counter: the same for every counter the
    /// item holds (a month and its days), so it names the item.
    pub fn item(&self) -> UsageKey {
        let mut key = self.clone();
        key.counter.period = self.counter.item_period();
        key
    }

    /// The counter's name in its partition, `<window>#<period>#<region>`:
    /// its item's `sk`, except for a day counter, which lives in its
    /// month's item. [`UsageKey::parse`] reads it back.
    pub fn label(&self) -> String {
        format!("{}#{}", self.counter.period, self.region)
    }

    /// The key of the counter in `cell` of this key's item, `self` being the
    /// item's own counter (as [`UsageKey::parse`] reads it from `pk` and `sk`).
    pub fn at_cell(&self, cell: Cell) -> Result<Self, CoreError> {
        let Cell::Day(day) = cell else {
            return Ok(self.clone());
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

    /// Parses a Usage item's keys: the key of the item's own counter.
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

    /// The prefix of the sort keys of the items holding this counter in
    /// every region, for one Query that sums the counter over all regions.
    pub fn sk_prefix(&self) -> String {
        format!("{}#", self.item_period())
    }

    /// The period of the item that holds this counter (see [`item_period`]).
    pub fn item_period(&self) -> Period {
        item_period(self.period)
    }

    /// Where in that item the counter lives.
    pub fn cell(&self) -> Cell {
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
        assert_eq!(day.item(), month);
        assert_eq!(month.item(), month);
        assert_eq!(month.at_cell(Cell::Own).unwrap(), month);
        assert_eq!(month.at_cell(Cell::Day(21)).unwrap(), day);
        assert_eq!(day.label(), "day#2026-11-21#eu-central-1");
        assert_eq!(UsageKey::parse(&day.pk(), &day.label()).unwrap(), day);
        // Day 31 of November, or a day cell of a non-month item, is no counter.
        assert!(month.at_cell(Cell::Day(31)).is_err());
        assert!(month.at_cell(Cell::Day(0)).is_err());
        let hour = UsageKey::parse(&day.pk(), "hour#2026-11-21T10#eu-central-1").unwrap();
        assert!(hour.at_cell(Cell::Day(1)).is_err());
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
            prop_assert_eq!(UsageKey::parse(&key.pk(), &key.sk()).unwrap().at_cell(key.cell()).unwrap(), key.clone());
            prop_assert!(key.sk().starts_with(&key.counter.sk_prefix()));
            let attribute = key.cell().attribute();
            prop_assert!(attribute == "n" || (key.counter.period.window == Window::Day && attribute.len() == 3));
        }

        #[test]
        fn parse_never_panics(pk in "\\PC{0,40}", sk in "\\PC{0,40}") {
            let _ = UsageKey::parse(&pk, &sk);
        }
    }
}
