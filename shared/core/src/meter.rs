//! What is counted. `requests` is fed by the log-processor; any other meter
//! (tokens, bytes, milliseconds) by meter events posted to ingest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A meter's name: 1-64 characters of `a-z`, `0-9`, `_`, `-` (never `#`,
/// which separates the parts of a Usage key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MeterName(String);

impl MeterName {
    /// The built-in meter of API requests.
    pub const REQUESTS: &'static str = "requests";

    /// Checks and wraps a meter name.
    pub fn new(name: &str) -> Result<Self, CoreError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(MeterName(name.to_owned()))
        } else {
            Err(CoreError::MeterName(name.to_owned()))
        }
    }

    /// The `requests` meter.
    pub fn requests() -> Self {
        MeterName(Self::REQUESTS.to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MeterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MeterName {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MeterName::new(s)
    }
}

impl TryFrom<String> for MeterName {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        MeterName::new(&s)
    }
}

impl From<MeterName> for String {
    fn from(m: MeterName) -> Self {
        m.0
    }
}

/// How a meter's events combine into a period's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// One per event, whatever its value.
    #[default]
    Count,
    /// The sum of the events' values.
    Sum,
    /// The largest value seen.
    Max,
}

impl Aggregation {
    /// Combines a counter's current value with one event's value.
    pub fn combine(self, current: u64, value: u64) -> u64 {
        match self {
            Aggregation::Count => current.saturating_add(1),
            Aggregation::Sum => current.saturating_add(value),
            Aggregation::Max => current.max(value),
        }
    }

    /// The counter contribution of a single event of `value`.
    pub fn unit(self, value: u64) -> u64 {
        self.combine(0, value)
    }
}

impl FromStr for Aggregation {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "count" => Ok(Aggregation::Count),
            "sum" => Ok(Aggregation::Sum),
            "max" => Ok(Aggregation::Max),
            other => Err(CoreError::Aggregation(other.to_owned())),
        }
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Aggregation::Count => "count",
            Aggregation::Sum => "sum",
            Aggregation::Max => "max",
        })
    }
}

/// A meter definition, as stored in the Keys table and managed with `tollgate meters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterDef {
    pub name: MeterName,
    #[serde(default)]
    pub aggregation: Aggregation,
    /// The unit of a value, for people (`tokens`, `bytes`, `ms`).
    #[serde(default)]
    pub unit: String,
    /// Where a CloudEvent's `data` holds the value of a `sum` or `max`
    /// meter (`$.tokens`); `None`: [`crate::value_path::DEFAULT_VALUE_PATH`].
    /// `count` meters read no value. tollgate's own event format carries
    /// the value in its `value` field and ignores this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_path: Option<crate::value_path::ValuePath>,
}

impl MeterDef {
    /// The path a CloudEvent's value is read from: `None` for a `count`
    /// meter (one per event), else the declared path or `$.value`.
    pub fn cloudevent_value_path(&self) -> Option<crate::value_path::ValuePath> {
        match self.aggregation {
            Aggregation::Count => None,
            _ => Some(
                self.value_path
                    .clone()
                    .unwrap_or_else(crate::value_path::ValuePath::default_path),
            ),
        }
    }
}

/// Checks a meter event's value: a finite, non-negative whole number.
///
/// Values are whole numbers of the meter's unit so that sums are exact;
/// a fractional quantity is sent in a smaller unit (milliseconds, not seconds).
pub fn parse_value(value: f64) -> Result<u64, CoreError> {
    if !value.is_finite() {
        return Err(CoreError::Value("value must be a finite number".into()));
    }
    if value < 0.0 {
        return Err(CoreError::Value("value must not be negative".into()));
    }
    if value.fract() != 0.0 {
        return Err(CoreError::Value(
            "value must be a whole number of the meter's unit (send 1500 ms, not 1.5 s)".into(),
        ));
    }
    if value > crate::ceiling::MAX_EVENT_VALUE as f64 {
        return Err(CoreError::Value(format!(
            "value is too large (at most {}, 9e15)",
            crate::ceiling::MAX_EVENT_VALUE
        )));
    }
    Ok(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(MeterName::new("tokens").is_ok());
        assert!(MeterName::new("gpu_ms-2").is_ok());
        for bad in ["", "Tokens", "a#b", "a b", &"x".repeat(65)] {
            assert_eq!(
                MeterName::new(bad),
                Err(CoreError::MeterName(bad.to_owned()))
            );
        }
    }

    #[test]
    fn aggregations_combine() {
        assert_eq!(Aggregation::Count.combine(5, 100), 6);
        assert_eq!(Aggregation::Sum.combine(5, 100), 105);
        assert_eq!(Aggregation::Max.combine(5, 100), 100);
        assert_eq!(Aggregation::Max.combine(500, 100), 500);
        assert_eq!("sum".parse::<Aggregation>(), Ok(Aggregation::Sum));
        assert!("avg".parse::<Aggregation>().is_err());
    }

    #[test]
    fn values() {
        assert_eq!(parse_value(0.0), Ok(0));
        assert_eq!(parse_value(42.0), Ok(42));
        assert!(parse_value(-1.0).is_err());
        assert!(parse_value(f64::NAN).is_err());
        assert!(parse_value(f64::INFINITY).is_err());
        assert!(parse_value(1.5).is_err());
        assert!(parse_value(1e300).is_err());
    }
}
