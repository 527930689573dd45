//! The one error type of the domain: every rejection says what was wrong.

use thiserror::Error;

/// Why a value was rejected by the domain rules.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    #[error("invalid identity {0:?}: {1}")]
    Identity(String, &'static str),
    #[error("invalid meter name {0:?}: use 1-64 characters of a-z, 0-9, '_' or '-'")]
    MeterName(String),
    #[error("unknown aggregation {0:?}: expected count, sum or max")]
    Aggregation(String),
    #[error("unknown window {0:?}: expected minute, hour, day or month")]
    Window(String),
    #[error("invalid period {0:?}: {1}")]
    Period(String, &'static str),
    #[error("timestamp {0} is outside the supported range")]
    Timestamp(i64),
    #[error("invalid value: {0}")]
    Value(String),
    #[error("invalid region {0:?}: use 1-32 characters of a-z, 0-9 or '-'")]
    Region(String),
    #[error("invalid usage key {0:?}: {1}")]
    UsageKey(String, &'static str),
    #[error("invalid plan {0:?}: {1}")]
    Plan(String, String),
    #[error("invalid {name}={value:?}: {expected}")]
    Setting {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("invalid API key: {0}")]
    ApiKey(&'static str),
}
