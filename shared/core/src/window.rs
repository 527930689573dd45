//! Windows (`minute`, `hour`, `day`, `month`, in UTC) and periods: the one
//! concrete window a timestamp falls in, such as `day#2026-11-21`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::{CoreError, UnixMillis};

/// A kind of quota window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Minute,
    Hour,
    Day,
    Month,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 4] = [Window::Minute, Window::Hour, Window::Day, Window::Month];

    /// The window's name as it appears in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// The period of this window that contains `at`.
    pub fn period_of(self, at: UnixMillis) -> Result<Period, CoreError> {
        let t = to_datetime(at)?;
        let start = match self {
            Window::Minute => t.date_naive().and_hms_opt(t.hour(), t.minute(), 0),
            Window::Hour => t.date_naive().and_hms_opt(t.hour(), 0, 0),
            Window::Day => t.date_naive().and_hms_opt(0, 0, 0),
            Window::Month => {
                NaiveDate::from_ymd_opt(t.year(), t.month(), 1).and_then(|d| d.and_hms_opt(0, 0, 0))
            }
        }
        .ok_or(CoreError::Timestamp(at))?;
        Ok(Period {
            window: self,
            start: start.and_utc().timestamp_millis(),
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Window {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Window::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| CoreError::Window(s.to_owned()))
    }
}

/// Supported timestamps: years 1970 to 9999, so period texts have a fixed shape.
const MAX_MILLIS: UnixMillis = 253_402_300_799_999;

fn to_datetime(at: UnixMillis) -> Result<DateTime<Utc>, CoreError> {
    if !(0..=MAX_MILLIS).contains(&at) {
        return Err(CoreError::Timestamp(at));
    }
    Utc.timestamp_millis_opt(at)
        .single()
        .ok_or(CoreError::Timestamp(at))
}

/// One concrete window: its kind and its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Period {
    pub window: Window,
    /// The first millisecond of the period (UTC).
    pub start: UnixMillis,
}

impl Period {
    /// The first millisecond after the period: when its quota resets.
    pub fn end(&self) -> UnixMillis {
        let Ok(start) = to_datetime(self.start) else {
            return self.start;
        };
        let end = match self.window {
            Window::Minute => start + chrono::Duration::minutes(1),
            Window::Hour => start + chrono::Duration::hours(1),
            Window::Day => start + chrono::Duration::days(1),
            Window::Month => start
                .checked_add_months(Months::new(1))
                .unwrap_or(start + chrono::Duration::days(31)),
        };
        end.timestamp_millis()
    }

    /// The day of the month (1 to 31) the period starts on.
    pub fn day_of_month(&self) -> u8 {
        to_datetime(self.start).map_or(1, |t| u8::try_from(t.day()).unwrap_or(1))
    }

    /// Whether `at` falls inside the period.
    pub fn contains(&self, at: UnixMillis) -> bool {
        at >= self.start && at < self.end()
    }

    /// The period's label without the window, such as `2026-11-21`.
    pub fn label(&self) -> String {
        let t = to_datetime(self.start).unwrap_or_default();
        match self.window {
            Window::Minute => t.format("%Y-%m-%dT%H:%M").to_string(),
            Window::Hour => t.format("%Y-%m-%dT%H").to_string(),
            Window::Day => t.format("%Y-%m-%d").to_string(),
            Window::Month => t.format("%Y-%m").to_string(),
        }
    }

    /// Parses a window and a label (`day`, `2026-11-21`).
    pub fn parse_label(window: Window, label: &str) -> Result<Period, CoreError> {
        let bad = |why| CoreError::Period(format!("{window}#{label}"), why);
        let naive = match window {
            Window::Minute => NaiveDateTime::parse_from_str(label, "%Y-%m-%dT%H:%M")
                .map_err(|_| bad("expected YYYY-MM-DDTHH:MM"))?,
            Window::Hour => NaiveDateTime::parse_from_str(&format!("{label}:00"), "%Y-%m-%dT%H:%M")
                .map_err(|_| bad("expected YYYY-MM-DDTHH"))?,
            Window::Day => NaiveDate::parse_from_str(label, "%Y-%m-%d")
                .map_err(|_| bad("expected YYYY-MM-DD"))?
                .and_hms_opt(0, 0, 0)
                .ok_or_else(|| bad("invalid date"))?,
            Window::Month => NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d")
                .map_err(|_| bad("expected YYYY-MM"))?
                .and_hms_opt(0, 0, 0)
                .ok_or_else(|| bad("invalid date"))?,
        };
        let period = window.period_of(naive.and_utc().timestamp_millis())?;
        // Reject non-canonical texts such as `2026-1-5`, so one period has one key.
        if period.label() != label {
            return Err(bad("not in canonical form"));
        }
        Ok(period)
    }
}

impl fmt::Display for Period {
    /// The period's key text, such as `month#2026-11`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.window, self.label())
    }
}

impl FromStr for Period {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (window, label) = s
            .split_once('#')
            .ok_or_else(|| CoreError::Period(s.to_owned(), "expected <window>#<label>"))?;
        Period::parse_label(window.parse()?, label)
    }
}

impl TryFrom<String> for Period {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Period> for String {
    fn from(p: Period) -> Self {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, milli: i64) -> UnixMillis {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .timestamp_millis()
            + milli
    }

    #[test]
    fn labels() {
        let at = ms(2026, 11, 21, 13, 5, 7, 123);
        assert_eq!(
            Window::Minute.period_of(at).unwrap().to_string(),
            "minute#2026-11-21T13:05"
        );
        assert_eq!(
            Window::Hour.period_of(at).unwrap().to_string(),
            "hour#2026-11-21T13"
        );
        assert_eq!(
            Window::Day.period_of(at).unwrap().to_string(),
            "day#2026-11-21"
        );
        assert_eq!(
            Window::Month.period_of(at).unwrap().to_string(),
            "month#2026-11"
        );
    }

    #[test]
    fn month_ends_and_leap_years() {
        let feb_2028 = Window::Month
            .period_of(ms(2028, 2, 10, 0, 0, 0, 0))
            .unwrap();
        assert_eq!(feb_2028.end(), ms(2028, 3, 1, 0, 0, 0, 0));
        let feb_2026 = Window::Month
            .period_of(ms(2026, 2, 10, 0, 0, 0, 0))
            .unwrap();
        assert_eq!(feb_2026.end(), ms(2026, 3, 1, 0, 0, 0, 0));
        let dec = Window::Month
            .period_of(ms(2026, 12, 31, 23, 59, 59, 999))
            .unwrap();
        assert_eq!(dec.to_string(), "month#2026-12");
        assert_eq!(dec.end(), ms(2027, 1, 1, 0, 0, 0, 0));
        let leap_day = Window::Day.period_of(ms(2028, 2, 29, 12, 0, 0, 0)).unwrap();
        assert_eq!(leap_day.to_string(), "day#2028-02-29");
        assert!("day#2026-02-29".parse::<Period>().is_err());
    }

    #[test]
    fn last_millisecond_belongs_to_the_period() {
        let last = ms(2026, 11, 30, 23, 59, 59, 999);
        assert_eq!(
            Window::Month.period_of(last).unwrap().to_string(),
            "month#2026-11"
        );
        assert_eq!(
            Window::Month.period_of(last + 1).unwrap().to_string(),
            "month#2026-12"
        );
    }

    #[test]
    fn rejections() {
        assert_eq!(
            "week".parse::<Window>(),
            Err(CoreError::Window("week".into()))
        );
        for bad in [
            "day",
            "day#2026-1-5",
            "day#2026-13-01",
            "month#2026-11-01",
            "fortnight#2026-11",
            "hour#2026-11-21T24",
            "minute#2026-11-21T13:60",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
        assert!(Window::Day.period_of(-1).is_err());
        assert!(Window::Day.period_of(MAX_MILLIS + 1).is_err());
    }

    proptest! {
        #[test]
        fn period_contains_its_timestamp_and_round_trips(at in 0i64..MAX_MILLIS, w in 0usize..4) {
            let window = Window::ALL[w];
            let p = window.period_of(at).unwrap();
            prop_assert!(p.contains(at));
            prop_assert!(!p.contains(p.end()));
            prop_assert!(p.contains(p.end() - 1));
            prop_assert_eq!(window.period_of(p.end() - 1).unwrap(), p);
            prop_assert_eq!(p.to_string().parse::<Period>().unwrap(), p);
            if p.end() <= MAX_MILLIS {
                prop_assert_eq!(window.period_of(p.end()).unwrap().start, p.end());
            }
        }

        #[test]
        fn period_parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Period>();
        }
    }
}
