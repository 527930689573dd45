//! Stream records in, counter changes out: decoding a Lambda DynamoDB
//! stream record of the Usage table, and collapsing repeated updates of one
//! item within a batch to its largest value.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use aws_lambda_events::event::dynamodb::EventRecord;
use serde::Deserialize;
use tollgate_core::{Cell, UsageKey};
use tollgate_store::usage::{ImageError, Scalar, UsageItem};

/// A stream record's sequence number. Sequence numbers are decimal strings
/// of varying length, so they order by numeric value, not as text. The
/// order is total and equality agrees with it: numbers first (`7` equals
/// `007`), then anything else, as text.
#[derive(Debug, Clone)]
pub struct SequenceNumber(pub String);

impl SequenceNumber {
    fn digits(&self) -> &str {
        let t = self.0.trim_start_matches('0');
        if t.is_empty() && !self.0.is_empty() {
            "0"
        } else {
            t
        }
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.is_numeric(), other.is_numeric()) {
            (true, true) => {
                let (a, b) = (self.digits(), other.digits());
                a.len().cmp(&b.len()).then_with(|| a.cmp(b))
            }
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => self.0.cmp(&other.0),
        }
    }
}

impl SequenceNumber {
    fn is_numeric(&self) -> bool {
        !self.0.is_empty() && self.0.bytes().all(|b| b.is_ascii_digit())
    }
}

// By hand, to agree with `Ord` (a derive would tell `7` from `007`).
impl PartialEq for SequenceNumber {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SequenceNumber {}

impl std::hash::Hash for SequenceNumber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if self.is_numeric() {
            (0u8, self.digits()).hash(state);
        } else {
            (1u8, self.0.as_str()).hash(state);
        }
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One counter's new value, from one stream record (a record of a month
/// item can change its own counter and its days': one change each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The record's position in its batch.
    pub position: usize,
    /// The record's sequence number (what `batchItemFailures` reports).
    pub sequence: SequenceNumber,
    /// The counter as the record's new image shows it.
    pub item: UsageItem,
    /// Whether the record created the item (`INSERT`).
    pub inserted: bool,
    /// Whether the item is marked shared ([`tollgate_store::usage::SHARED`]).
    pub shared: bool,
}

/// Why a record was skipped rather than processed. Skipped records succeed:
/// retrying them could never change the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not a DynamoDB stream record at all.
    NotARecord(String),
    /// A record of another table's stream.
    OtherTable(String),
    /// A REMOVE (a TTL expiry, or a deleted item): nothing to copy or count.
    Remove,
    /// An event name other than INSERT, MODIFY or REMOVE.
    UnknownEvent(String),
    /// No new image (a stream view type without one).
    NoNewImage,
    /// No sequence number, so a failure could not be reported for it.
    NoSequenceNumber,
    /// The new image is not a Usage item.
    NotUsage(String),
    /// An item with Usage keys whose counters cannot be read.
    Unreadable(String),
    /// No counter of the item changed (its old image shows the same values).
    Unchanged,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NotARecord(why) => write!(f, "not a DynamoDB stream record: {why}"),
            Skip::OtherTable(arn) => write!(f, "a record of another table ({arn})"),
            Skip::Remove => f.write_str("a REMOVE (TTL expiry or deletion)"),
            Skip::UnknownEvent(name) => write!(f, "unknown event name {name:?}"),
            Skip::NoNewImage => f.write_str("no NewImage"),
            Skip::NoSequenceNumber => f.write_str("no SequenceNumber"),
            Skip::NotUsage(why) => write!(f, "not a Usage item: {why}"),
            Skip::Unreadable(why) => write!(f, "an unreadable Usage item: {why}"),
            Skip::Unchanged => f.write_str("no counter changed"),
        }
    }
}

/// The table name in a stream ARN (`arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`).
pub fn table_of_stream_arn(arn: &str) -> Option<&str> {
    let rest = arn.split_once(":table/")?.1;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Decodes one record of a Lambda DynamoDB stream event into the changes
/// of the counters its item holds. `usage_table` is the Usage table's name:
/// records whose `eventSourceARN` names another table are skipped (a record
/// without an ARN is judged by its shape).
///
/// With an old image (the table's stream view is `NEW_AND_OLD_IMAGES`) only
/// the counters whose value differs are changes, so a month item's update
/// of one day is not a change of its thirty other days. Without one, and
/// when the record marks the item shared (so that all of it must be copied),
/// every counter of the item is.
pub fn decode(
    record: &serde_json::Value,
    position: usize,
    usage_table: &str,
) -> Result<Vec<Change>, Skip> {
    let record = EventRecord::deserialize(record).map_err(|e| Skip::NotARecord(e.to_string()))?;
    if let Some(arn) = record.event_source_arn.as_deref() {
        if table_of_stream_arn(arn) != Some(usage_table) {
            return Err(Skip::OtherTable(arn.to_owned()));
        }
    }
    match record.event_name.as_str() {
        "INSERT" | "MODIFY" => {}
        "REMOVE" => return Err(Skip::Remove),
        other => return Err(Skip::UnknownEvent(other.to_owned())),
    }
    let image = &record.change.new_image;
    if image.is_empty() {
        return Err(Skip::NoNewImage);
    }
    let sequence = record
        .change
        .sequence_number
        .filter(|s| !s.is_empty())
        .ok_or(Skip::NoSequenceNumber)?;
    // The image's strings and numbers: the store reads the counters among
    // them (and ignores the rest, such as watermarks). An item with Usage
    // keys whose counters do not read is an error (logged as such), not
    // another table's item.
    let scalars = image.iter().filter_map(|(name, value)| match value {
        serde_dynamo::AttributeValue::S(v) => Some((name.clone(), Scalar::S(v.clone()))),
        serde_dynamo::AttributeValue::N(v) => Some((name.clone(), Scalar::N(v.clone()))),
        _ => None,
    });
    let counters = UsageItem::parse_image(scalars).map_err(|e| match e {
        ImageError::Unreadable(why) => Skip::Unreadable(why),
        ImageError::NotUsage(why) => Skip::NotUsage(why),
    })?;
    let is_shared = |image: &serde_dynamo::Item| {
        matches!(
            image.get(tollgate_store::usage::SHARED),
            Some(serde_dynamo::AttributeValue::Bool(true))
        )
    };
    let old = &record.change.old_image;
    let shared = is_shared(image);
    let whole = old.is_empty() || (shared && !is_shared(old));
    let before = |cell: Cell| match old.get(cell.attribute().as_ref()) {
        Some(serde_dynamo::AttributeValue::N(v)) => v.parse::<u64>().ok(),
        _ => None,
    };
    let inserted = record.event_name == "INSERT";
    let changes: Vec<Change> = counters
        .into_iter()
        .filter(|c| whole || before(c.key.cell()) != Some(c.value))
        .map(|item| Change {
            position,
            sequence: SequenceNumber(sequence.clone()),
            item,
            inserted,
            shared,
        })
        .collect();
    if changes.is_empty() {
        return Err(Skip::Unchanged);
    }
    Ok(changes)
}

/// One region's counter after collapsing a batch: its largest value, and the
/// earliest record that carried it (where a retry must start if it fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collapsed {
    /// The item at the largest value seen in the batch.
    pub item: UsageItem,
    /// The lowest sequence number among the item's records.
    pub first: SequenceNumber,
    /// How many records of the batch carried this item.
    pub records: usize,
    /// Whether one of the records created the item.
    pub inserted: bool,
    /// Whether one of the records showed the item marked shared.
    pub shared: bool,
}

/// Collapses the changes of a batch to one per region's counter (its
/// largest value; a tie keeps the later `updated_at`), in order of first
/// appearance. Counters only grow within a period, so the largest value is
/// the newest, whatever order the records came in.
pub fn collapse(changes: &[Change]) -> Vec<Collapsed> {
    let mut index: HashMap<&UsageKey, usize> = HashMap::with_capacity(changes.len());
    let mut out: Vec<Collapsed> = Vec::with_capacity(changes.len());
    for change in changes {
        match index.get(&change.item.key) {
            Some(&i) => {
                let entry = &mut out[i];
                entry.records += 1;
                entry.inserted |= change.inserted;
                entry.shared |= change.shared;
                if supersedes(&change.item, &entry.item) {
                    entry.item = change.item.clone();
                }
                if change.sequence < entry.first {
                    entry.first = change.sequence.clone();
                }
            }
            None => {
                index.insert(&change.item.key, out.len());
                out.push(Collapsed {
                    item: change.item.clone(),
                    first: change.sequence.clone(),
                    records: 1,
                    inserted: change.inserted,
                    shared: change.shared,
                });
            }
        }
    }
    out
}

/// Whether `new` should replace `current` (the same item): a larger value
/// wins; on equal values, the later update.
pub fn supersedes(new: &UsageItem, current: &UsageItem) -> bool {
    new.value > current.value || (new.value == current.value && new.updated_at > current.updated_at)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn record(event: &str, seq: &str, pk: &str, sk: &str, n: u64) -> serde_json::Value {
        json!({
            "eventID": "1", "eventName": event, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "local-a",
            "eventSourceARN": "arn:aws:dynamodb:local-a:000000000000:table/usage/stream/2026-01-01T00:00:00.000",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_795_000_000.0,
                "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
                "NewImage": {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": n.to_string()},
                             "agg": {"S": "count"}, "updated_at": {"N": "5"}},
                "SequenceNumber": seq, "SizeBytes": 60, "StreamViewType": "NEW_IMAGE"
            }
        })
    }

    #[test]
    fn sequence_numbers_order_numerically() {
        let s = |v: &str| SequenceNumber(v.to_owned());
        assert!(s("9") < s("10"));
        assert!(s("0009") < s("10"));
        assert!(s("100000000000000000001") > s("99999999999999999999"));
        assert_eq!(s("007").cmp(&s("7")), Ordering::Equal);
        // A total order that equality agrees with (found by the fuzz entry
        // `tollgate_fuzz::quota_sync`: `007` and `7` compared equal but were
        // unequal, and `2` < `10` < `1x` yet `2` > `1x`).
        assert_eq!(s("007"), s("7"));
        assert!(s("2") < s("10") && s("10") < s("1x") && s("2") < s("1x"));
        assert!(s("") > s("0") && s("x") > s(""));
    }

    #[test]
    fn decodes_a_usage_record() {
        let changes = decode(
            &record(
                "MODIFY",
                "42",
                "requests#key:k1",
                "month#2026-11#local-b",
                7,
            ),
            3,
            "usage",
        )
        .unwrap();
        assert_eq!(changes.len(), 1);
        let c = &changes[0];
        assert_eq!(c.position, 3);
        assert_eq!(c.sequence.0, "42");
        assert_eq!(c.item.value, 7);
        assert_eq!(c.item.key.region.as_str(), "local-b");
        assert_eq!(c.item.key.counter.identity.to_string(), "key:k1");
        assert_eq!(c.item.updated_at, 5);
    }

    #[test]
    fn skips_what_is_not_a_usage_change() {
        let good = record(
            "INSERT",
            "1",
            "requests#key:k1",
            "day#2026-11-21#local-a",
            1,
        );
        assert!(matches!(
            decode(&good, 0, "other-table"),
            Err(Skip::OtherTable(_))
        ));
        let remove = record(
            "REMOVE",
            "1",
            "requests#key:k1",
            "day#2026-11-21#local-a",
            1,
        );
        assert_eq!(decode(&remove, 0, "usage"), Err(Skip::Remove));
        let foreign = record("INSERT", "1", "user#1", "profile", 1);
        assert!(matches!(
            decode(&foreign, 0, "usage"),
            Err(Skip::NotUsage(_))
        ));
        let mut no_seq = good.clone();
        no_seq["dynamodb"]
            .as_object_mut()
            .unwrap()
            .remove("SequenceNumber");
        assert_eq!(decode(&no_seq, 0, "usage"), Err(Skip::NoSequenceNumber));
        let mut no_image = good.clone();
        no_image["dynamodb"]["NewImage"] = json!(null);
        assert_eq!(decode(&no_image, 0, "usage"), Err(Skip::NoNewImage));
        assert!(matches!(
            decode(&json!({"hello": 1}), 0, "usage"),
            Err(Skip::NotARecord(_))
        ));
        assert!(matches!(
            decode(&json!("text"), 0, "usage"),
            Err(Skip::NotARecord(_))
        ));
        let mut no_arn = good;
        no_arn.as_object_mut().unwrap().remove("eventSourceARN");
        assert!(decode(&no_arn, 0, "usage").is_ok());
    }

    /// A month item's record: month 12 with day 21 at 5 and day 22 at 7,
    /// after an update that added 2 to day 22 (and to the month).
    fn month_record(old: Option<serde_json::Value>, shared: bool) -> serde_json::Value {
        let (pk, sk) = ("requests#key:k1", "month#2026-11#local-a");
        let mut r = record("MODIFY", "7", pk, sk, 12);
        r["dynamodb"]["NewImage"]["d21"] = json!({"N": "5"});
        r["dynamodb"]["NewImage"]["d22"] = json!({"N": "7"});
        if shared {
            r["dynamodb"]["NewImage"]["shared"] = json!({"BOOL": true});
        }
        if let Some(old) = old {
            r["dynamodb"]["OldImage"] = old;
        }
        r
    }

    fn counters(changes: &[Change]) -> Vec<(String, u64)> {
        changes
            .iter()
            .map(|c| (c.item.key.counter.period.to_string(), c.item.value))
            .collect()
    }

    #[test]
    fn a_month_item_changes_only_the_counters_its_old_image_shows_changed() {
        let old = json!({"pk": {"S": "requests#key:k1"}, "sk": {"S": "month#2026-11#local-a"},
                         "n": {"N": "10"}, "d21": {"N": "5"}, "d22": {"N": "5"}});
        let changes = decode(&month_record(Some(old.clone()), false), 0, "usage").unwrap();
        assert_eq!(
            counters(&changes),
            [
                ("month#2026-11".to_owned(), 12),
                ("day#2026-11-22".to_owned(), 7)
            ]
        );
        // No old image (a NEW_IMAGE stream, a sample event): every counter.
        let changes = decode(&month_record(None, false), 0, "usage").unwrap();
        assert_eq!(changes.len(), 3);
        // Just marked shared: every counter, so that all of it is copied.
        let changes = decode(&month_record(Some(old), true), 0, "usage").unwrap();
        assert_eq!(changes.len(), 3);
        assert!(changes.iter().all(|c| c.shared));
        // Nothing changed (say, only a watermark): skipped.
        let same = json!({"pk": {"S": "requests#key:k1"}, "sk": {"S": "month#2026-11#local-a"},
                          "n": {"N": "12"}, "d21": {"N": "5"}, "d22": {"N": "7"}});
        assert_eq!(
            decode(&month_record(Some(same), false), 0, "usage"),
            Err(Skip::Unchanged)
        );
        // A day cell that is no day of the month, or not a number: an
        // unreadable Usage item (logged as an error), not another item.
        let mut bad = month_record(None, false);
        bad["dynamodb"]["NewImage"]["d31"] = json!({"N": "1"});
        assert!(matches!(decode(&bad, 0, "usage"), Err(Skip::Unreadable(_))));
        let mut bad = month_record(None, false);
        bad["dynamodb"]["NewImage"]["d21"] = json!({"N": "-1"});
        assert!(matches!(decode(&bad, 0, "usage"), Err(Skip::Unreadable(_))));
    }

    #[test]
    fn a_bucket_item_changes_only_the_identities_its_old_image_shows_changed() {
        let ips: Vec<UsageKey> = (0..2000)
            .map(|i| {
                UsageKey::parse(
                    &format!("requests#ip:10.0.{}.{}", i / 256, i % 256),
                    "day#2026-11-22#local-a",
                )
                .unwrap()
            })
            .collect();
        let (a, b) = ips
            .iter()
            .enumerate()
            .find_map(|(i, a)| Some((a, ips[i + 1..].iter().find(|b| b.pk() == a.pk())?)))
            .unwrap();
        let (name_a, name_b) = (
            a.counter.identity.to_string(),
            b.counter.identity.to_string(),
        );
        let mut r = record("MODIFY", "9", &a.pk(), &a.sk(), 0);
        let image = r["dynamodb"]["NewImage"].as_object_mut().unwrap();
        image.remove("n");
        image.insert(name_a.clone(), json!({"N": "3"}));
        image.insert(name_b.clone(), json!({"N": "8"}));
        image.insert("w:0123456789ab".into(), json!({"S": "x"}));
        let mut old = r["dynamodb"]["NewImage"].clone();
        old[&name_b] = json!({"N": "6"});
        r["dynamodb"]["OldImage"] = old;
        let changes = decode(&r, 0, "usage").unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!((&changes[0].item.key, changes[0].item.value), (b, 8));
        // Without the old image, both.
        r["dynamodb"].as_object_mut().unwrap().remove("OldImage");
        let mut both: Vec<UsageKey> = decode(&r, 0, "usage")
            .unwrap()
            .into_iter()
            .map(|c| c.item.key)
            .collect();
        both.sort();
        let mut want = vec![a.clone(), b.clone()];
        want.sort();
        assert_eq!(both, want);
    }

    #[test]
    fn collapses_to_the_largest_value_and_the_earliest_record() {
        let pk = "requests#key:k1";
        let changes: Vec<Change> = [
            ("12", "day#2026-11-21#local-a", 5),
            ("10", "day#2026-11-21#local-a", 3),
            ("11", "day#2026-11-21#local-b", 2),
            ("13", "day#2026-11-21#local-a", 4),
        ]
        .iter()
        .enumerate()
        .flat_map(|(i, (seq, sk, n))| {
            decode(&record("MODIFY", seq, pk, sk, *n), i, "usage").unwrap()
        })
        .collect();
        let out = collapse(&changes);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].item.value, 5);
        assert_eq!(out[0].first.0, "10");
        assert_eq!(out[0].records, 3);
        assert_eq!(out[1].item.key.region.as_str(), "local-b");
        assert_eq!(out[1].records, 1);
    }
}
