//! The log-processor's entry point, for the cargo-fuzz target in
//! `fuzz/log-processor` (`decode_and_parse`): [`decode_and_count`].

use std::collections::BTreeSet;

use ::log_processor::batch::{self, cloudwatch_source_id, plan, BatchAggregate, Counting, Tally};
use ::log_processor::{decode, line};
use tollgate_core::{CountedWindows, Ipv6Prefix, Region, StatusRanges, Window};

/// Everything done to untrusted bytes before any write: the first byte
/// picks how the rest is read (base64 text of gzip, raw gzip, a
/// decompressed payload, or one log line); the payload's lines are parsed,
/// aggregated and planned into chunks. Never panics; decompresses at most
/// `limit` bytes.
pub fn decode_and_count(data: &[u8], limit: usize) -> Result<Tally, decode::DecodeError> {
    let Some((&mode, rest)) = data.split_first() else {
        return Ok(Tally::default());
    };
    let counting = Counting {
        rules: line::Rules {
            count_status: StatusRanges::default_counted(),
            ipv6_prefix: Ipv6Prefix::DEFAULT,
        },
        windows: std::sync::Arc::new(CountedWindows::configured(&Window::ALL, &Window::ALL)),
        max_meters: BTreeSet::new(),
    };
    let bytes = match mode % 4 {
        0 => decode::decode_data(&String::from_utf8_lossy(rest), limit)?,
        1 => decode::gunzip_capped(rest, limit)?,
        2 => rest.to_vec(),
        _ => {
            let text = String::from_utf8_lossy(rest);
            let _ = line::parse_line(&text, 1_795_000_000_000, &counting.rules);
            let _ = batch::redact(decode::truncate(&text, batch::SAMPLE_BYTES));
            return Ok(Tally::default());
        }
    };
    let payload = decode::parse_payload(&bytes)?;
    let mut aggregate = BatchAggregate::new();
    aggregate.add_events(&payload.log_events, &counting);
    let region = Region::new("fuzz").map_err(|e| decode::DecodeError::Json(e.to_string()))?;
    let planned = plan(
        &cloudwatch_source_id(&payload),
        aggregate.aggregator.into_increments(),
        &region,
    );
    debug_assert!(planned
        .chunks
        .iter()
        .all(|c| c.increments.len() <= batch::CHUNK_INCREMENTS));
    Ok(aggregate.tally)
}

#[cfg(test)]
mod tests {
    //! Moved with the entry point: `functions/log-processor/tests/arbitrary_bytes.rs`.
    //! Arbitrary bytes through the same entry point as the fuzz target
    //! never panic, and mutated real payloads are either decoded or
    //! rejected with an error.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ::log_processor::ACCESS_LOG_FORMAT;
    use proptest::prelude::*;
    use tollgate_tests::cloudwatch::{base64, gzip, payload_json};
    use tollgate_tests::traffic::Traffic;

    fn real_gzip() -> Vec<u8> {
        let (events, _) =
            Traffic::new(ACCESS_LOG_FORMAT, 50, 1.1, 20, 0.3, 3).events(20, 1_795_000_000_000, 10);
        gzip(&payload_json("g", "s", &events))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(mode in 0u8..4, data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut input = vec![mode];
            input.extend(data);
            let _ = decode_and_count(&input, 1 << 20);
        }

        #[test]
        fn mutated_payloads_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let mut gz = real_gzip();
            for (at, byte) in flips {
                let i = at.index(gz.len());
                gz[i] ^= byte | 1;
            }
            let cut = cut.index(gz.len() + 1);
            for mode in [0u8, 1] {
                let mut input = vec![mode];
                if mode == 0 {
                    input.extend(base64(&gz[..cut]).into_bytes());
                } else {
                    input.extend(&gz[..cut]);
                }
                let _ = decode_and_count(&input, 1 << 20);
            }
        }

        #[test]
        fn arbitrary_lines_in_a_valid_payload_never_panic(lines in proptest::collection::vec("\\PC{0,200}", 1..20)) {
            let events: Vec<_> = lines.iter().enumerate().map(|(i, m)| tollgate_tests::cloudwatch::Event {
                id: i.to_string(), timestamp: 1_795_000_000_000, message: m.clone(),
            }).collect();
            let mut input = vec![2u8];
            input.extend(payload_json("g", "s", &events));
            let tally = decode_and_count(&input, 1 << 20).unwrap();
            prop_assert_eq!(tally.events, lines.len() as u64);
            prop_assert_eq!(tally.counted + tally.skipped + tally.denied + tally.no_identity + tally.not_counted_status, tally.events);
        }
    }

    #[test]
    fn a_real_payload_counts_through_the_entry_point() {
        let mut input = vec![1u8];
        input.extend(real_gzip());
        let tally = decode_and_count(&input, 1 << 20).unwrap();
        assert_eq!(tally.events, 20);
        assert!(tally.counted >= 15, "{tally:?}");
    }
}
