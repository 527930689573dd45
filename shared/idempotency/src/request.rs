//! Pieces of the crate's DynamoDB requests: the condition expressions,
//! attribute values and random tokens.

use aws_sdk_dynamodb::types::AttributeValue;

/// Acquire: no live record, or an in-progress one whose lease ended.
pub(crate) const COND_ACQUIRE: &str =
    "attribute_not_exists(#k) OR #exp < :now OR (#st = :inprog AND #ipe < :now_ms)";
/// A marker: no live record.
pub(crate) const COND_MARKER: &str = "attribute_not_exists(#k) OR #exp < :now";
/// Complete or release: the record is still in progress under my lease.
pub(crate) const COND_MINE: &str = "#st = :inprog AND #lease = :lease";

/// A number attribute.
pub(crate) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A string attribute.
pub(crate) fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// A random 128-bit token (leases, transaction request tokens), as hex.
pub(crate) fn token() -> String {
    format!("{:032x}", rand::random::<u128>())
}
