//! Property tests: arbitrary bytes through the same entry point as the fuzz
//! target (`fuzz/log-processor`) never panic, and mutated real payloads are
//! either decoded or rejected with an error.
#![allow(clippy::unwrap_used)]

use log_processor::{decode_and_count, ACCESS_LOG_FORMAT};
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
