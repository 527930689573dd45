//! Items in DynamoDB's typed JSON (`{"pk": {"S": "…"}, "n": {"N": "3"}}`,
//! the form of the CLI's and the console's exports and of stream images),
//! read into items and written back. The fuzz targets feed the readers of
//! Usage items and block items through it, so they need no SDK type.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};
use tollgate_core::Block;

use crate::attr::Item;
use crate::keys::{block_attribute, parse_blocks};
use crate::usage::UsageItem;
use crate::StoreError;

fn malformed(message: impl Into<String>) -> StoreError {
    StoreError::Malformed {
        table: "typed JSON",
        message: message.into(),
    }
}

/// Reads one attribute value (`S`, `N`, `BOOL`, `NULL`, `SS`, `NS`, `L`,
/// `M`; binary types are not read).
fn attribute(value: &Value) -> Result<AttributeValue, StoreError> {
    let object = value
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| malformed("an attribute value is an object of one type"))?;
    let (kind, inner) = object
        .iter()
        .next()
        .ok_or_else(|| malformed("an empty attribute value"))?;
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| malformed(format!("{kind} holds a string")))
    };
    let texts = |v: &Value| match v.as_array() {
        Some(a) => a.iter().map(text).collect::<Result<Vec<_>, _>>(),
        None => Err(malformed(format!("{kind} holds a list"))),
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text(inner)?),
        "N" => AttributeValue::N(text(inner)?),
        "BOOL" => AttributeValue::Bool(
            inner
                .as_bool()
                .ok_or_else(|| malformed("BOOL holds a boolean"))?,
        ),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(texts(inner)?),
        "NS" => AttributeValue::Ns(texts(inner)?),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or_else(|| malformed("L holds a list"))?
                .iter()
                .map(attribute)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(item_of(inner)?),
        other => return Err(malformed(format!("unread attribute type {other:?}"))),
    })
}

fn item_of(value: &Value) -> Result<HashMap<String, AttributeValue>, StoreError> {
    value
        .as_object()
        .ok_or_else(|| malformed("an item is an object"))?
        .iter()
        .map(|(name, v)| Ok((name.clone(), attribute(v)?)))
        .collect()
}

fn json_of(value: &AttributeValue) -> Value {
    let (kind, inner) = match value {
        AttributeValue::S(s) => ("S", Value::from(s.as_str())),
        AttributeValue::N(n) => ("N", Value::from(n.as_str())),
        AttributeValue::Bool(b) => ("BOOL", Value::from(*b)),
        AttributeValue::Ss(v) => ("SS", Value::from(v.clone())),
        AttributeValue::Ns(v) => ("NS", Value::from(v.clone())),
        AttributeValue::L(v) => ("L", Value::Array(v.iter().map(json_of).collect())),
        AttributeValue::M(m) => ("M", json_of_item(m)),
        _ => ("NULL", Value::Bool(true)),
    };
    Value::Object(Map::from_iter([(kind.to_owned(), inner)]))
}

fn json_of_item(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, v)| (name.clone(), json_of(v)))
            .collect(),
    )
}

/// The counters of a Usage item given in typed JSON, as
/// [`UsageItem::parse_all`] reads them.
pub fn usage_items(value: &Value) -> Result<Vec<UsageItem>, StoreError> {
    let item: Item = item_of(value)?;
    UsageItem::parse_all(&item)
}

/// The blocks of a block item given in typed JSON, as the authorizer's
/// lookups read them (entries that do not parse are skipped).
pub fn blocks(value: &Value) -> Result<Vec<Block>, StoreError> {
    Ok(parse_blocks(&item_of(value)?))
}

/// The attributes `blocks` would be stored as (what `KeysStore::put_block`
/// writes), in typed JSON: the printer [`blocks`] reads back.
pub fn block_item(blocks: &[Block]) -> Value {
    let item: Item = blocks.iter().map(block_attribute).collect();
    json_of_item(&item)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use tollgate_core::{MeterName, Window};

    #[test]
    fn a_block_item_reads_back() {
        let block = Block {
            meter: MeterName::requests(),
            period: Window::Day.period_of(1_795_000_000_000).unwrap(),
            limit: 10,
            used: 12,
        };
        let printed = block_item(std::slice::from_ref(&block));
        assert_eq!(blocks(&printed).unwrap(), vec![block]);
    }

    #[test]
    fn a_usage_item_reads_from_typed_json() {
        let item = json!({
            "pk": {"S": "requests#key:a"}, "sk": {"S": "month#2026-11#local-a"},
            "n": {"N": "9"}, "d02": {"N": "9"}, "shared": {"BOOL": true},
        });
        let counters = usage_items(&item).unwrap();
        assert_eq!(counters.len(), 2);
        assert!(usage_items(&json!({"pk": {"B": "AA=="}})).is_err());
        assert!(usage_items(&json!({"pk": {"S": "x", "N": "1"}})).is_err());
    }
}
