//! `bench cost --smoke`: a functional check of the whole harness in well
//! under a minute. A tiny W1 through both designs, then every count checked
//! exact; no figure (dollars, units, durations) is asserted. `cargo test`
//! runs it in process on both log paths (`make test`).

use anyhow::{bail, Result};
use serde_json::Value;

use super::BenchArgs;

/// Regions, simulated seconds and seconds between deliveries of a smoke run.
const REGIONS: usize = 2;
const SECONDS: u32 = 40;
const LOG_BATCH_SECONDS: u32 = 20;

/// The smoke run's settings: 2 regions, 40 simulated seconds, deliveries
/// every 20 s (unless `--seconds` or `--log-batch-seconds` say otherwise).
pub(super) fn settings(args: &mut BenchArgs) {
    args.regions = REGIONS;
    args.seconds.get_or_insert(SECONDS);
    args.log_batch_seconds.get_or_insert(LOG_BATCH_SECONDS);
}

/// Fails unless every count of `report` is exact: each identity's counters
/// against the allowed calls (tollgate's: the baseline counts redelivered
/// batches twice and its check reads copies that 16 concurrent writers put
/// in any order, so it is priced, not checked), calls against the
/// allowed and denied, one authorizer invocation and one access log line per
/// call, and every function invoked.
pub(super) fn check(report: &Value) -> Result<()> {
    let n = |path: &[&str]| {
        path.iter()
            .fold(report, |v, k| &v[*k])
            .as_u64()
            .or_else(|| {
                path.iter()
                    .fold(report, |v, k| &v[*k])
                    .as_f64()
                    .map(|f| f as u64)
            })
    };
    let mut wrong = Vec::new();
    let calls = n(&["calls"]).unwrap_or(0);
    if calls == 0 {
        wrong.push("no call played".to_owned());
    }
    let mut want = |what: &str, got: Option<u64>, expected: u64| {
        if got != Some(expected) {
            wrong.push(format!("{what}: {got:?}, expected {expected}"));
        }
    };
    want(
        "tollgate's counters that differ",
        n(&["counts", "tollgate_differ"]),
        0,
    );
    let allowed = n(&["allowed"]).unwrap_or(0);
    let denied = n(&["denied"]).unwrap_or(0);
    want("allowed + denied calls", Some(allowed + denied), calls);
    want(
        "authorizer invocations",
        n(&["invocations", "authorizer", "count"]),
        calls,
    );
    want(
        "access log lines",
        n(&["all_in_per_million", "access_log", "lines"]),
        calls,
    );
    let truth = n(&["counts", "truth_identities"]).unwrap_or(0);
    want(
        "identities checked",
        n(&["counts", "tollgate_checked"]),
        truth.min(900),
    );
    if truth == 0 {
        wrong.push("no identity counted".to_owned());
    }
    for f in ["log-processor", "quota-sync"] {
        if n(&["invocations", f, "count"]).unwrap_or(0) == 0 {
            wrong.push(format!("{f} never invoked"));
        }
    }
    if !report["all_in_per_million"]["tollgate_total"].is_number() {
        wrong.push("no all-in total".to_owned());
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        bail!("smoke: counts not exact: {}", wrong.join("; "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn report(differ: u64, authorizer: u64) -> Value {
        json!({
            "calls": 10, "allowed": 8, "denied": 2, "redelivered_batches": 0,
            "counts": {"tollgate_differ": differ, "baseline_differ": 0, "tollgate_checked": 5, "truth_identities": 5},
            "invocations": {"authorizer": {"count": authorizer}, "log-processor": {"count": 2}, "quota-sync": {"count": 1}},
            "all_in_per_million": {"tollgate_total": 0.5, "access_log": {"lines": 10}},
        })
    }

    #[test]
    fn the_check_fails_on_a_count_that_differs() {
        assert!(check(&report(0, 10)).is_ok());
        let e = check(&report(1, 10)).unwrap_err().to_string();
        assert!(e.contains("tollgate's counters that differ"), "{e}");
        let e = check(&report(0, 9)).unwrap_err().to_string();
        assert!(e.contains("authorizer invocations"), "{e}");
    }

    /// The smoke run on the suite's DynamoDB Local, on both log paths.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_smoke_run_counts_exactly_on_both_log_paths() {
        assert!(
            std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
            "start DynamoDB Local: export AWS_ENDPOINT_URL_DYNAMODB=$(scripts/dynamodb-local.sh start)"
        );
        for source in ["direct", "kinesis"] {
            let mut args =
                Cli::parse_from(["cost", "--smoke", "--source", source, "--output", "json"]).args;
            let report = super::super::measure(&mut args)
                .await
                .expect("the smoke run");
            check(&report).unwrap_or_else(|e| panic!("{source}: {e}"));
            assert_eq!(report["settings"]["regions"], REGIONS);
            assert_eq!(report["settings"]["source"], source);
        }
    }
}
