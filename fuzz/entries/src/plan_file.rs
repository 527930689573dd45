//! The CLI's plan files, for the cargo-fuzz target `fuzz/cli`
//! `plan_file`: [`fuzz_plan_file`].

use tollgate_app::plan_file::parse_plans;

/// The first byte picks the file's name (`plans.json`, read as JSON, or
/// `plans.yaml`); the rest is its text (lossy UTF-8). Panics only if an
/// invariant breaks: accepted plans are at least one, each valid, no name
/// twice, and they print (YAML and JSON, as `tollgate plans show` does)
/// and read back the same.
pub fn fuzz_plan_file(bytes: &[u8]) {
    let Some((&mode, rest)) = bytes.split_first() else {
        return;
    };
    let file = if mode % 2 == 0 {
        "plans.json"
    } else {
        "plans.yaml"
    };
    let text = String::from_utf8_lossy(rest);
    let Ok(plans) = parse_plans(&text, file) else {
        return;
    };
    assert!(!plans.is_empty());
    for (i, plan) in plans.iter().enumerate() {
        assert!(plan.validate().is_ok());
        assert!(plans[..i].iter().all(|p| p.name != plan.name));
    }
    let yaml = serde_yaml_ng::to_string(&plans).unwrap_or_default();
    assert_eq!(
        parse_plans(&yaml, "again.yaml").ok().as_ref(),
        Some(&plans),
        "{yaml}"
    );
    let json = serde_json::to_string(&plans).unwrap_or_default();
    assert_eq!(
        parse_plans(&json, "again.json").ok().as_ref(),
        Some(&plans),
        "{json}"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_plan_file_reads_back() {
        let yaml = b"\x01- {name: free, limits: [{meter: requests, window: day, limit: 100}]}\n- {name: pro, overage: soft, failure: open}\n";
        fuzz_plan_file(yaml);
        assert_eq!(
            parse_plans(&String::from_utf8_lossy(&yaml[1..]), "a.yaml")
                .unwrap()
                .len(),
            2
        );
    }

    fn limit() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("requests"), Just("tokens"), Just("Bad"), Just("a-b")],
            prop_oneof![
                Just("minute"),
                Just("hour"),
                Just("day"),
                Just("month"),
                Just("week")
            ],
            prop_oneof![
                Just("0"),
                Just("1"),
                Just("18446744073709551615"),
                Just("-1"),
                Just("1.5")
            ],
        )
            .prop_map(|(m, w, l)| format!("{{meter: {m}, window: {w}, limit: {l}}}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn structured_plan_files_keep_the_invariants(
            plans in proptest::collection::vec((prop_oneof![Just("free"), Just("pro"), Just("x_1"), Just("")], proptest::collection::vec(limit(), 0..4), prop_oneof![Just(""), Just(", overage: soft"), Just(", failure: open"), Just(", extra: 1")]), 0..4),
            as_list in any::<bool>(),
        ) {
            let docs: Vec<String> = plans.iter().map(|(n, l, more)| format!("{{name: {n:?}, limits: [{}]{more}}}", l.join(", "))).collect();
            let text = if as_list || docs.len() != 1 { format!("[{}]", docs.join(", ")) } else { docs[0].clone() };
            let mut input = vec![1u8];
            input.extend(text.as_bytes());
            fuzz_plan_file(&input);
        }

        #[test]
        fn arbitrary_bytes_never_panic(mode in 0u8..2, text in "\\PC{0,300}") {
            let mut input = vec![mode];
            input.extend(text.as_bytes());
            fuzz_plan_file(&input);
        }
    }
}
