//! The log-processor's Kinesis path, for the cargo-fuzz target
//! `fuzz/log-processor` `kinesis`: [`fuzz_kinesis`] (a Kinesis event's
//! records read one by one, their sequence numbers as watermark
//! positions, their data decoded, its source checked, counted and planned).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use ::log_processor::batch::{self, kinesis_source_id, plan_in, BatchAggregate, Counting};
use ::log_processor::decode::{gunzip_capped, parse_payload, MessageType};
use ::log_processor::handler::shard_attribute;
use ::log_processor::line::Rules;
use ::log_processor::reject::{self, kinesis_records, Rejection};
use ::quota_sync::record::SequenceNumber;
use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tollgate_core::{
    CountedWindows, Ipv6Prefix, LogSources, Position, Region, StatusRanges, Window,
};

/// The most bytes a record's data decompresses to here.
pub const LIMIT: usize = 1 << 20;
/// The only log group the entry's log-processor takes payloads from.
pub const LOG_GROUP: &str = "/aws/apigateway/tollgate";
/// The only account the entry's log-processor takes payloads from.
pub const ACCOUNT: &str = "123456789012";

/// A Kinesis record of `data` at `sequence` (the shape Lambda delivers).
pub fn record(sequence: &str, data: &[u8]) -> Value {
    json!({
        "awsRegion": "eu-central-1",
        "eventID": format!("shardId-000000000000:{sequence}"),
        "eventName": "aws:kinesis:record",
        "eventSource": "aws:kinesis",
        "eventSourceARN": "arn:aws:kinesis:eu-central-1:123456789012:stream/tollgate-logs",
        "eventVersion": "1.0",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/log-processor",
        "kinesis": {
            "approximateArrivalTimestamp": 1795000000.5,
            "data": STANDARD.encode(data),
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "p",
            "sequenceNumber": sequence,
        }
    })
}

/// The first byte picks the mode: 0, the rest is a Kinesis event's JSON;
/// 1, the rest is `<sequence number>\n<data>`, one record built around
/// it; 2, the rest is two sequence numbers, `<a>\n<b>`, whose orders as
/// watermark positions and as stream sequence numbers are compared.
///
/// Panics only if an invariant breaks: every record is read or
/// quarantined, none lost; a position reads back from its stored form and
/// orders as the numbers do; decompression stays under [`LIMIT`]; a
/// payload from another log group or account is rejected and counted
/// nowhere; an accepted one's tally adds up and its chunks are within
/// DynamoDB's limits; the shard attribute is `w:` and 12 hex digits.
pub fn fuzz_kinesis(bytes: &[u8]) {
    let Some((&mode, rest)) = bytes.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(value) = serde_json::from_slice::<Value>(rest) {
                let records = match value.get("Records").and_then(Value::as_array) {
                    Some(r) => r.clone(),
                    None => value.as_array().cloned().unwrap_or_default(),
                };
                check_records(&records);
            }
        }
        1 => {
            let (seq, data) = split_line(rest);
            let seq = String::from_utf8_lossy(seq);
            let records = [record(&seq, data)];
            let read = check_records(&records);
            assert_eq!(read, 1, "a well-formed record was not read");
        }
        _ => {
            let (a, b) = split_line(rest);
            compare_orders(&String::from_utf8_lossy(a), &String::from_utf8_lossy(b));
        }
    }
}

fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[]),
    }
}

/// Watermark positions order as the sequence numbers they stand for, and
/// a stored watermark reads only in the form a position is stored in.
fn compare_orders(a: &str, b: &str) {
    for stored in [a, b] {
        if let Ok(p) = Position::parse(stored) {
            let digits = stored.get(3..).unwrap_or_default();
            assert_eq!(
                Position::of_sequence(digits).ok().as_ref(),
                Some(&p),
                "{stored:?}"
            );
            assert_eq!(p.as_str(), stored);
        }
    }
    let (Ok(pa), Ok(pb)) = (Position::of_sequence(a), Position::of_sequence(b)) else {
        return;
    };
    for p in [&pa, &pb] {
        assert_eq!(Position::parse(p.as_str()).ok().as_ref(), Some(p));
    }
    let by_position = pa.cmp(&pb);
    let by_sequence = SequenceNumber(a.to_owned()).cmp(&SequenceNumber(b.to_owned()));
    if by_position != Ordering::Equal {
        assert_eq!(by_position, by_sequence, "{a:?} vs {b:?}");
    }
    // Equal positions are the same number: they differ by leading zeros.
    if by_position == Ordering::Equal {
        assert_eq!(a.trim_start_matches('0'), b.trim_start_matches('0'));
    }
}

/// Reads `records` as the handler does; returns how many were readable.
fn check_records(records: &[Value]) -> usize {
    let (event, rejected) = kinesis_records(records);
    let read = event.records.len();
    assert_eq!(read as u64 + rejected, records.len() as u64);
    if read > 0 {
        let shard = shard_attribute(&event);
        assert!(shard.len() == 14 && shard.starts_with("w:"), "{shard}");
        assert!(shard[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    }
    check_event(&event);
    read
}

fn counting() -> Counting {
    Counting {
        rules: Rules {
            count_status: StatusRanges::default_counted(),
            ipv6_prefix: Ipv6Prefix::DEFAULT,
        },
        windows: Arc::new(CountedWindows::configured(&Window::ALL, &Window::ALL)),
        max_meters: BTreeSet::new(),
    }
}

fn check_event(event: &KinesisEvent) {
    let sources = LogSources::new([LOG_GROUP], Some(ACCOUNT.to_owned()));
    let counting = counting();
    let Ok(region) = Region::new("fuzz") else {
        return;
    };
    for record in &event.records {
        let seq = &record.kinesis.sequence_number;
        if let Ok(p) = Position::of_sequence(seq) {
            assert_eq!(Position::parse(p.as_str()).ok().as_ref(), Some(&p));
        }
        let source = kinesis_source_id(
            record.event_source_arn.as_deref().unwrap_or(""),
            record.event_id.as_deref().unwrap_or(""),
            seq,
        );
        assert!(source.starts_with("kin#") && source.ends_with(seq.as_str()));
        let bytes = match gunzip_capped(&record.kinesis.data.0, LIMIT) {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = Rejection::from(e).detail();
                continue;
            }
        };
        assert!(bytes.len() <= LIMIT);
        let Ok(payload) = parse_payload(&bytes) else {
            continue;
        };
        match reject::accept(&sources, &payload) {
            Ok(MessageType::Data) => {
                assert_eq!(
                    (payload.log_group.as_ref(), payload.owner.as_ref()),
                    (LOG_GROUP, ACCOUNT)
                );
            }
            Ok(_) => continue,
            Err(rejection) => {
                // Rejected: nothing of it is aggregated or written.
                let _ = rejection.detail();
                continue;
            }
        }
        let mut aggregate = BatchAggregate::new();
        aggregate.add_events(&payload.log_events, &counting);
        let t = &aggregate.tally;
        assert_eq!(t.events, payload.log_events.len() as u64);
        assert_eq!(
            t.counted + t.skipped + t.denied + t.no_identity + t.not_counted_status,
            t.events
        );
        let plan = plan_in(
            &source,
            aggregate.aggregator.into_increments(),
            &region,
            None,
        );
        assert!(plan
            .all_chunks()
            .all(|c| !c.increments.is_empty() && c.increments.len() <= batch::CHUNK_INCREMENTS));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ::log_processor::ACCESS_LOG_FORMAT;
    use proptest::prelude::*;
    use tollgate_tests::cloudwatch::{gzip, payload_json, Event};
    use tollgate_tests::traffic::Traffic;

    fn sample_event() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/log-processor/kinesis.json"
        );
        std::fs::read(path).unwrap()
    }

    fn real_data(log_group: &str) -> Vec<u8> {
        let (events, _): (Vec<Event>, _) =
            Traffic::new(ACCESS_LOG_FORMAT, 20, 1.1, 10, 0.3, 5).events(10, 1_795_000_000_000, 10);
        gzip(&payload_json(log_group, "s", &events))
    }

    #[test]
    fn the_sample_event_reads_through_the_entry() {
        let mut input = vec![0u8];
        input.extend(sample_event());
        fuzz_kinesis(&input);
        let value: Value = serde_json::from_slice(&sample_event()).unwrap();
        let records = value["Records"].as_array().unwrap();
        assert_eq!(check_records(records), records.len());
    }

    #[test]
    fn sequence_numbers_order_alike() {
        for (a, b) in [
            ("9", "10"),
            ("007", "7"),
            ("49590338271490256608559692538361571095", "5"),
            ("0", "00"),
            ("0019", "+12123456789012"),
            ("00200", "0010"),
        ] {
            compare_orders(a, b);
            compare_orders(b, a);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(mode in 0u8..3, data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut input = vec![mode];
            input.extend(data);
            fuzz_kinesis(&input);
        }

        #[test]
        fn records_of_any_source_and_sequence_keep_the_invariants(
            seq in prop_oneof!["[0-9]{1,60}", "\\PC{0,20}"],
            ours in any::<bool>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        ) {
            let mut data = if ours { real_data(LOG_GROUP) } else { real_data("/other") };
            for (at, byte) in flips {
                let i = at.index(data.len());
                data[i] ^= byte;
            }
            let mut input = vec![1u8];
            input.extend(seq.as_bytes());
            input.push(b'\n');
            input.extend(data);
            fuzz_kinesis(&input);
        }

        #[test]
        fn positions_order_as_numbers(a in "0{0,3}[0-9]{1,40}", b in "0{0,3}[0-9]{1,40}") {
            compare_orders(&a, &b);
        }
    }
}
