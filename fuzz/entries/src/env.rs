//! The environment parsers (`tollgate_lambda::Env` and every function's
//! `Config::read` on it), for the cargo-fuzz target `fuzz/lambda` `env`:
//! [`fuzz_env`].

use std::collections::HashMap;

use tollgate_lambda::{Env, EnvError};

/// Every variable the functions read (the entry's input picks among them).
pub const VARS: &[&str] = &[
    "AWS_REGION",
    "TOLLGATE_ACCOUNT_ID",
    "TOLLGATE_ANONYMOUS_IPV6_PREFIX",
    "TOLLGATE_ANONYMOUS_PLAN",
    "TOLLGATE_ANONYMOUS_REFERER",
    "TOLLGATE_ANONYMOUS_WINDOWS",
    "TOLLGATE_API_KEY_HEADER",
    "TOLLGATE_API_KEY_QUERY",
    "TOLLGATE_CACHE_MAX_ENTRIES",
    "TOLLGATE_CACHE_SECONDS",
    "TOLLGATE_COUNT_STATUS",
    "TOLLGATE_DEDUPE_HOURS",
    "TOLLGATE_DEDUPE_NAMESPACE",
    "TOLLGATE_DEDUPE_WINDOW_DAYS",
    "TOLLGATE_FAILURE_POLICY",
    "TOLLGATE_GLOBAL_TABLES",
    "TOLLGATE_IDEMPOTENCY_KEY_HOURS",
    "TOLLGATE_IDEMPOTENCY_TABLE",
    "TOLLGATE_KEYS_TABLE",
    "TOLLGATE_KINESIS_DEDUPE",
    "TOLLGATE_LEASES",
    "TOLLGATE_LOG_GROUPS",
    "TOLLGATE_MAX_DECOMPRESSED_BYTES",
    "TOLLGATE_MAX_METERS",
    "TOLLGATE_METER_CACHE_SECONDS",
    "TOLLGATE_NEGATIVE_CACHE_SECONDS",
    "TOLLGATE_PEER_ENDPOINTS",
    "TOLLGATE_PEER_REGIONS",
    "TOLLGATE_PEER_TIMEOUT_MS",
    "TOLLGATE_PLAN_CACHE_SECONDS",
    "TOLLGATE_REGION",
    "TOLLGATE_REGIONS",
    "TOLLGATE_REPLICATION",
    "TOLLGATE_STORE_TIMEOUT_MS",
    "TOLLGATE_TOP_INDEX",
    "TOLLGATE_TRUSTED_PROXY_HOPS",
    "TOLLGATE_USAGE_IDENTIFIER_KEY",
    "TOLLGATE_USAGE_TABLE",
    "TOLLGATE_WINDOWS",
];

/// The variables `bytes` sets: one a line, the line's first byte picking
/// the variable from [`VARS`], the rest its value (lossy UTF-8).
pub fn vars_of(bytes: &[u8]) -> HashMap<&'static str, String> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let (&pick, value) = line.split_first()?;
            let var = VARS[usize::from(pick) % VARS.len()];
            Some((var, String::from_utf8_lossy(value).into_owned()))
        })
        .collect()
}

/// What every function's configuration reads from `vars`, as text (each
/// `Ok` value's debug form, or the error).
fn read_all(vars: &HashMap<&'static str, String>) -> Vec<Result<String, EnvError>> {
    let env = Env::from_lookup(|name| vars.get(name).cloned());
    vec![
        ::authorizer::Config::read(&env).map(|c| format!("{c:?}")),
        ::ingest::Config::read(&env).map(|c| format!("{c:?}")),
        ::log_processor::Config::read(&env).map(|c| format!("{c:?}")),
        ::quota_sync::config::Config::read(&env).map(|c| format!("{c:?}")),
    ]
}

/// Reads the variables `bytes` sets ([`vars_of`]) as each function does.
/// Panics only if an invariant breaks: an error names one of the
/// variables, one that is set when its value is invalid and one that is
/// unset when it is missing; values read trimmed (padding them with
/// spaces changes nothing); reading is deterministic.
pub fn fuzz_env(bytes: &[u8]) {
    let vars = vars_of(bytes);
    let read = read_all(&vars);
    for result in &read {
        let Err(e) = result else {
            continue;
        };
        assert!(VARS.contains(&e.var()), "{e}");
        let set = vars.get(e.var()).is_some_and(|v| !v.trim().is_empty());
        match e {
            EnvError::Invalid { .. } => assert!(set, "{e}: the variable is not set"),
            EnvError::Missing { .. } => assert!(!set, "{e}: the variable is set"),
        }
    }
    assert_eq!(read, read_all(&vars), "reading is not deterministic");
    let padded = vars.iter().map(|(k, v)| (*k, format!(" {v}\t"))).collect();
    assert_eq!(
        read,
        read_all(&padded),
        "padding a value changed what it reads as"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn index_of(var: &str) -> u8 {
        u8::try_from(VARS.iter().position(|v| *v == var).unwrap()).unwrap()
    }

    #[test]
    fn a_valid_environment_reads_in_every_function() {
        let mut bytes = Vec::new();
        for (var, value) in [
            ("TOLLGATE_REGION", "local-a"),
            ("TOLLGATE_PEER_REGIONS", "local-b,local-c"),
            ("TOLLGATE_WINDOWS", "day,month"),
        ] {
            bytes.push(index_of(var));
            bytes.extend(value.as_bytes());
            bytes.push(b'\n');
        }
        let read = read_all(&vars_of(&bytes));
        assert!(read.iter().all(Result::is_ok), "{read:?}");
        fuzz_env(&bytes);
    }

    #[test]
    fn an_error_names_its_variable() {
        let mut bytes = vec![index_of("TOLLGATE_REGION")];
        bytes.extend(b"local-a\n");
        bytes.push(index_of("TOLLGATE_PEER_REGIONS"));
        bytes.extend(b"local-a");
        let read = read_all(&vars_of(&bytes));
        let e = read[3].as_ref().unwrap_err();
        assert_eq!(e.var(), "TOLLGATE_PEER_REGIONS");
        fuzz_env(&bytes);
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("local-a".to_owned()),
            Just("local-b,local-c".to_owned()),
            Just("true".to_owned()),
            Just("OFF".to_owned()),
            Just("0".to_owned()),
            Just("64".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("day,month,day".to_owned()),
            Just(",".to_owned()),
            Just("200-299,404".to_owned()),
            Just("5xx".to_owned()),
            Just("hot".to_owned()),
            Just("watermark".to_owned()),
            "[a-z0-9,.:-]{0,16}",
            "\\PC{0,12}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn environments_keep_the_invariants(vars in proptest::collection::vec((any::<u8>(), value()), 0..12), region in any::<bool>()) {
            let mut bytes = Vec::new();
            if region {
                bytes.push(index_of("TOLLGATE_REGION"));
                bytes.extend(b"local-a\n");
            }
            for (pick, v) in vars {
                bytes.push(pick);
                bytes.extend(v.as_bytes());
                bytes.push(b'\n');
            }
            fuzz_env(&bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            fuzz_env(&bytes);
        }
    }
}
