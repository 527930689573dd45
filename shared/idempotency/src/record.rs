//! The idempotency record and its DynamoDB item.

use std::collections::HashMap;
use std::io::{Read, Write};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::config::{AttributeNames, KeyLayout};

/// A record's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// An execution holds the lease.
    InProgress,
    /// Done: the stored response (or nothing, for a marker) is replayed.
    Completed,
}

impl Status {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "IN_PROGRESS",
            Status::Completed => "COMPLETED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "IN_PROGRESS" => Some(Status::InProgress),
            "COMPLETED" => Some(Status::Completed),
            _ => None,
        }
    }
}

/// A stored response: JSON text, or gzip-compressed JSON (a binary
/// attribute; DynamoDB counts its raw bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredData {
    /// JSON as it was serialized.
    Json(String),
    /// The same JSON, gzip-compressed.
    Gzip(Vec<u8>),
}

impl StoredData {
    /// Stores `json` as is, or compressed when it is longer than
    /// `compress_above` bytes and compression makes it shorter.
    pub fn encode(json: String, compress_above: usize) -> StoredData {
        if json.len() <= compress_above {
            return StoredData::Json(json);
        }
        let mut enc = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::default());
        match enc.write_all(json.as_bytes()).and_then(|()| enc.finish()) {
            Ok(gz) if gz.len() < json.len() => StoredData::Gzip(gz),
            _ => StoredData::Json(json),
        }
    }

    /// The JSON text.
    pub fn json(&self) -> Result<String, String> {
        match self {
            StoredData::Json(s) => Ok(s.clone()),
            StoredData::Gzip(gz) => {
                let mut out = String::with_capacity(gz.len() * 4);
                GzDecoder::new(gz.as_slice())
                    .read_to_string(&mut out)
                    .map_err(|e| format!("cannot decompress stored data: {e}"))?;
                Ok(out)
            }
        }
    }

    /// The bytes the attribute value takes in the item.
    pub fn stored_len(&self) -> usize {
        match self {
            StoredData::Json(s) => s.len(),
            StoredData::Gzip(b) => b.len(),
        }
    }

    fn to_attr(&self) -> AttributeValue {
        match self {
            StoredData::Json(s) => AttributeValue::S(s.clone()),
            StoredData::Gzip(b) => AttributeValue::B(Blob::new(b.clone())),
        }
    }
}

/// One idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record key (`<namespace>#v<version>#...`).
    pub key: String,
    /// In progress or completed.
    pub status: Status,
    /// When the record expires, epoch seconds.
    pub expiration_s: u64,
    /// When an in-progress lease ends, epoch milliseconds.
    pub in_progress_expiry_ms: Option<u64>,
    /// The lease token.
    pub lease: Option<String>,
    /// The stored response.
    pub data: Option<StoredData>,
    /// Whether `data` is a stored deterministic failure.
    pub failed: bool,
    /// The payload fingerprint.
    pub validation: Option<String>,
}

impl Record {
    /// Whether the record counts as absent at `now_ms` (its expiry passed,
    /// whether or not TTL has deleted it yet).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expiration_s < now_ms / 1000
    }

    /// Whether an in-progress record's lease has ended at `now_ms`.
    pub fn lease_ended(&self, now_ms: u64) -> bool {
        self.status == Status::InProgress && self.in_progress_expiry_ms.is_none_or(|t| t < now_ms)
    }

    /// The DynamoDB item.
    pub fn to_item(
        &self,
        names: &AttributeNames,
        layout: &KeyLayout,
    ) -> HashMap<String, AttributeValue> {
        let mut item = key_item(&self.key, names, layout);
        item.insert(
            names.status.clone(),
            AttributeValue::S(self.status.as_str().to_owned()),
        );
        item.insert(
            names.expiration.clone(),
            AttributeValue::N(self.expiration_s.to_string()),
        );
        if let Some(t) = self.in_progress_expiry_ms {
            item.insert(
                names.in_progress_expiration.clone(),
                AttributeValue::N(t.to_string()),
            );
        }
        if let Some(l) = &self.lease {
            item.insert(names.lease.clone(), AttributeValue::S(l.clone()));
        }
        if let Some(d) = &self.data {
            item.insert(names.data.clone(), d.to_attr());
        }
        if self.failed {
            item.insert(names.failed.clone(), AttributeValue::Bool(true));
        }
        if let Some(v) = &self.validation {
            item.insert(names.validation.clone(), AttributeValue::S(v.clone()));
        }
        item
    }

    /// Reads a record from an item.
    pub fn from_item(
        item: &HashMap<String, AttributeValue>,
        names: &AttributeNames,
        layout: &KeyLayout,
    ) -> Result<Record, String> {
        let key_attr = match layout {
            KeyLayout::Hash => &names.key,
            KeyLayout::Composite { sort_attr, .. } => sort_attr,
        };
        let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let n = |name: &str| -> Result<Option<u64>, String> {
            match item.get(name) {
                None => Ok(None),
                Some(v) => {
                    let text = v.as_n().map_err(|_| format!("{name} is not a number"))?;
                    text.parse::<u64>()
                        .or_else(|_| text.parse::<f64>().map(|f| f as u64))
                        .map(Some)
                        .map_err(|_| format!("{name} is not a number: {text}"))
                }
            }
        };
        let status_text =
            s(&names.status).ok_or_else(|| format!("no {} attribute", names.status))?;
        let status =
            Status::parse(&status_text).ok_or_else(|| format!("unknown status {status_text}"))?;
        let data = match item.get(&names.data) {
            None | Some(AttributeValue::Null(_)) => None,
            Some(AttributeValue::S(j)) => Some(StoredData::Json(j.clone())),
            Some(AttributeValue::B(b)) => Some(StoredData::Gzip(b.as_ref().to_vec())),
            Some(_) => return Err(format!("{} is neither a string nor binary", names.data)),
        };
        Ok(Record {
            key: s(key_attr).ok_or_else(|| format!("no {key_attr} attribute"))?,
            status,
            expiration_s: n(&names.expiration)?.unwrap_or(0),
            in_progress_expiry_ms: n(&names.in_progress_expiration)?,
            lease: s(&names.lease),
            data,
            failed: item
                .get(&names.failed)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            validation: s(&names.validation),
        })
    }
}

/// The primary key of a record.
pub fn key_item(
    key: &str,
    names: &AttributeNames,
    layout: &KeyLayout,
) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::with_capacity(10);
    match layout {
        KeyLayout::Hash => {
            item.insert(names.key.clone(), AttributeValue::S(key.to_owned()));
        }
        KeyLayout::Composite {
            partition_attr,
            partition_value,
            sort_attr,
        } => {
            item.insert(
                partition_attr.clone(),
                AttributeValue::S(partition_value.clone()),
            );
            item.insert(sort_attr.clone(), AttributeValue::S(key.to_owned()));
        }
    }
    item
}

/// The attribute whose absence means "no record" in a condition.
pub fn existence_attr<'a>(names: &'a AttributeNames, layout: &'a KeyLayout) -> &'a str {
    match layout {
        KeyLayout::Hash => &names.key,
        KeyLayout::Composite { sort_attr, .. } => sort_attr,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn small_data_stays_json_large_data_is_compressed() {
        let small = StoredData::encode("{\"a\":1}".into(), 4096);
        assert_eq!(small, StoredData::Json("{\"a\":1}".into()));
        let big = format!("[{}]", vec!["\"tollgate\""; 5000].join(","));
        let enc = StoredData::encode(big.clone(), 4096);
        assert!(matches!(enc, StoredData::Gzip(_)));
        assert!(enc.stored_len() < big.len() / 10, "{}", enc.stored_len());
        assert_eq!(enc.json().unwrap(), big);
    }

    #[test]
    fn records_round_trip_through_items() {
        let names = AttributeNames::default();
        for layout in [
            KeyLayout::Hash,
            KeyLayout::Composite {
                partition_attr: "pk".into(),
                partition_value: "idem".into(),
                sort_attr: "sk".into(),
            },
        ] {
            let rec = Record {
                key: "ns#v1#abc".into(),
                status: Status::InProgress,
                expiration_s: 1_700_000_000,
                in_progress_expiry_ms: Some(1_700_000_000_123),
                lease: Some("lease".into()),
                data: Some(StoredData::encode("x".repeat(10_000), 10)),
                failed: true,
                validation: Some("fp".into()),
            };
            let item = rec.to_item(&names, &layout);
            assert_eq!(Record::from_item(&item, &names, &layout).unwrap(), rec);
        }
    }

    #[test]
    fn expiry_and_lease_end() {
        let mut rec = Record {
            key: "k".into(),
            status: Status::InProgress,
            expiration_s: 100,
            in_progress_expiry_ms: Some(50_000),
            lease: None,
            data: None,
            failed: false,
            validation: None,
        };
        assert!(!rec.is_expired(100_999));
        assert!(rec.is_expired(101_000));
        assert!(!rec.lease_ended(50_000));
        assert!(rec.lease_ended(50_001));
        rec.status = Status::Completed;
        assert!(!rec.lease_ended(60_000));
    }
}
