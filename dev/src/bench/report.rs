//! The cost run's report: per function, per design, per region count.

use std::collections::HashMap;

use tollgate_core::{Identity, Period};
use tollgate_store::RequestCounter;

use serde_json::{json, Value};

use super::bill::{self, Function};
use super::capture::Tally;
use super::idle::Idle;
use super::play::Played;
use super::{prices, say, BenchArgs, Invocations, Region, FUNCTIONS, MEMORY_MB};
use crate::workload::Workload;

/// Everything the report reads.
pub(super) struct Run<'a> {
    pub workload: &'a Workload,
    pub args: &'a BenchArgs,
    /// Calls played (allowed and denied).
    pub calls: u64,
    pub regions: &'a [Region],
    pub played: &'a Played,
    /// What the functions printed during the play.
    pub printed: &'a Tally,
    pub idle: &'a Idle,
    /// Whether logs came through Kinesis.
    pub kinesis: bool,
    pub baseline_counter: &'a RequestCounter,
    /// The baseline's (identities checked, identities that differ).
    pub baseline: (u64, u64),
    /// tollgate's identities that differ, of those checked.
    pub mismatches: u64,
    pub checked: u64,
    pub baseline_seconds: f64,
}

/// DynamoDB requests and capacity units.
#[derive(Debug, Default, Clone, Copy)]
struct Units {
    requests: u64,
    read: f64,
    write: f64,
}

/// What `u` costs on demand.
fn dollars(u: Units) -> f64 {
    u.write * prices::WRITE_PER_MILLION / 1e6 + u.read * prices::READ_PER_MILLION / 1e6
}

/// Prints the report and returns it as JSON.
pub(super) fn report(run: &Run<'_>) -> Value {
    let per_million = 1e6 / run.calls.max(1) as f64;
    let (t, t10, lambda) = per_function(run, per_million);
    let r = run.args.regions as f64;
    let b = run.baseline_counter.snapshot();
    let bu = Units {
        requests: b.values().map(|c| c.requests).sum(),
        read: b.values().map(|c| c.read_units).sum::<f64>() * per_million,
        write: b.values().map(|c| c.write_units).sum::<f64>() * per_million,
    };
    let bu10 = Units {
        requests: 0,
        read: bu.read * 10.0 / r,
        write: bu.write * 10.0 / r,
    };
    designs(run, [t, bu, t10, bu10], lambda);
    let all_in = bill::bill(&bill_inputs(run, bu, per_million));
    counts_and_accuracy(run);
    let held = limits_held(run);
    let played = run.played;
    let invocations: serde_json::Map<String, Value> = played
        .invocations
        .iter()
        .map(|(f, inv)| {
            (
                (*f).to_owned(),
                json!({"count": inv.count, "seconds": inv.seconds, "billed_seconds": inv.billed_seconds}),
            )
        })
        .collect();
    json!({
        "prices": prices::json(),
        "workload": {
            "name": run.workload.name, "calls_per_second": run.workload.calls_per_second,
            "seconds": run.workload.seconds, "log_batch_seconds": run.workload.log_batch_seconds,
            "keys": run.workload.keys, "anonymous_ips": run.workload.anonymous_ips,
        },
        "settings": {
            "regions": run.args.regions, "source": run.args.source, "replication": run.args.replication,
            "enforce": run.args.enforce, "top_index": run.args.top_index, "seed": run.args.seed, "smoke": run.args.smoke,
        },
        "calls": run.calls,
        "denied": played.denied,
        "allowed": played.allowed_calls.len(),
        "redelivered_batches": played.redelivered_batches,
        "play_seconds": played.seconds,
        "invocations": invocations,
        "dynamodb_per_million": {
            "tollgate": units_json(t), "baseline": units_json(bu),
            "tollgate_projected_10": units_json(t10), "baseline_projected_10": units_json(bu10),
            "ratio": dollars(t) / dollars(bu).max(1e-12),
        },
        "all_in_per_million": all_in,
        "counts": {
            "tollgate_checked": run.checked, "tollgate_differ": run.mismatches,
            "baseline_checked": run.baseline.0, "baseline_differ": run.baseline.1,
            "truth_identities": played.truth.len(),
        },
        "limits": held,
    })
}

/// Units as JSON.
fn units_json(u: Units) -> Value {
    json!({"wru": u.write, "rru": u.read, "dollars": dollars(u)})
}

/// The bill's inputs: the run's totals per function.
fn bill_inputs<'a>(run: &'a Run<'_>, baseline: Units, per_million: f64) -> bill::Inputs<'a> {
    let mut functions = [Function::default(); 4];
    for (k, f) in FUNCTIONS.iter().enumerate() {
        let (mut read, mut write) = (0.0, 0.0);
        for region in run.regions {
            let (r, w) = region.counters[k].total_units();
            read += r;
            write += w;
        }
        let inv = run.played.invocations.get(f).cloned().unwrap_or_default();
        let printed = run.printed.functions[k];
        functions[k] = Function {
            read,
            write,
            invocations: inv.count as f64,
            billed_seconds: inv.billed_seconds,
            log_events: (printed.lines + printed.emf_lines) as f64,
            log_bytes: (printed.bytes + printed.emf_bytes) as f64,
            emf_events: printed.emf_lines as f64,
            emf_bytes: printed.emf_bytes as f64,
        };
    }
    let series = |only: Option<&str>| {
        run.printed
            .series
            .iter()
            .map(|s| {
                s.iter()
                    .filter(|k| only.is_none_or(|f| k.starts_with(&format!("{f}|"))))
                    .count()
            })
            .max()
            .unwrap_or(0) as f64
    };
    bill::Inputs {
        calls: run.calls as f64,
        regions: run.args.regions as f64,
        seconds: f64::from(run.workload.seconds),
        calls_per_second: run.workload.calls_per_second,
        kinesis: run.kinesis,
        functions,
        access_lines: run.played.access_lines as f64,
        access_bytes: run.played.access_bytes as f64,
        records: run.played.kinesis,
        metrics: series(None),
        authorizer_metrics: series(Some("authorizer")),
        idle: run.idle,
        baseline_read: baseline.read / per_million,
        baseline_write: baseline.write / per_million,
    }
}

/// The hard limits against the truth (every allowed call), and what the
/// authorizer's enforcement cost on the hot path.
fn limits_held(run: &Run<'_>) -> Value {
    let held = &run.played.held;
    let calls = run.calls.max(1) as f64;
    let regions = run.args.regions as u64;
    say!(
        "\n== Hard limits against the truth (--enforce {}) ==",
        run.args.enforce
    );
    let describe = |max: Option<(&(Identity, Period), u64, u64)>| match max {
        None => "0".to_owned(),
        Some(((identity, period), n, limit)) => format!(
            "{n} ({:.1} % of {limit}, {identity} {period})",
            n as f64 * 100.0 / limit as f64
        ),
    };
    let (over, over_missed) = worst(&held.over, &|limit| (limit / 100).max(regions));
    say!(
        "  overshoot: max {} per identity-period, {} calls in all past a hard limit; {over_missed} identity-periods past the goal (max(1 % of the limit, 1 call per region))",
        describe(over),
        held.over_calls
    );
    let (denied, false_missed) = worst(&held.false_denied, &|limit| limit / 100);
    say!(
        "  false denials (denied while the true usage was below every limit): max {} per identity-period, {} in all; {false_missed} identity-periods past the goal (1 % of the limit)",
        describe(denied),
        held.false_calls
    );
    let (read, write) = run.regions.iter().fold((0.0, 0.0), |(r, w), region| {
        let (rr, ww) = region.counters[0].total_units();
        (r + rr, w + ww)
    });
    let requests: u64 = run
        .regions
        .iter()
        .map(|r| r.counters[0].total_requests())
        .sum();
    let max = held.per_decision.iter().rposition(|&n| n > 0).unwrap_or(0);
    say!(
        "  authorizer: {:.4} store requests, {:.4} WRU and {:.4} RRU per call; store requests per decision p50 {} / p99 {} / max {}{}",
        requests as f64 / calls,
        write / calls,
        read / calls,
        held.quantile(0.5),
        held.quantile(0.99),
        max,
        if max + 1 >= held.per_decision.len() { "+" } else { "" }
    );
    json!({
        "overshoot_max": over.map(|(_, n, limit)| json!({"calls": n, "limit": limit})),
        "overshoot_calls": held.over_calls,
        "overshoot_past_goal": over_missed,
        "false_denials_max": denied.map(|(_, n, limit)| json!({"calls": n, "limit": limit})),
        "false_denials": held.false_calls,
        "false_denials_past_goal": false_missed,
        "authorizer_requests_per_call": requests as f64 / calls,
        "authorizer_wru_per_call": write / calls,
        "authorizer_rru_per_call": read / calls,
    })
}

/// Calls per identity-period.
type PerPeriod = HashMap<(Identity, Period), u64>;

/// The worst identity-period of `m` (as a share of its limit): its key,
/// calls and limit; and how many are past `goal(limit)`.
#[allow(clippy::type_complexity)]
fn worst<'a>(
    m: &'a PerPeriod,
    goal: &dyn Fn(u64) -> u64,
) -> (Option<(&'a (Identity, Period), u64, u64)>, u64) {
    let mut max: Option<(&(Identity, Period), u64, u64)> = None;
    let mut missed = 0;
    for (k, &n) in m {
        let limit = limit_of(k);
        missed += u64::from(n > goal(limit));
        if max.is_none_or(|(_, m, l)| n as f64 / limit as f64 > m as f64 / l as f64) {
            max = Some((k, n, limit));
        }
    }
    (max, missed)
}

/// The hard limit of an identity-period of the run's plans.
fn limit_of((identity, period): &(Identity, Period)) -> u64 {
    super::play::hard_limits(identity, period.start)
        .into_iter()
        .find(|(p, _)| p == period)
        .map_or(1, |(_, limit)| limit)
}

/// The table per function; returns tollgate's units per million calls, in
/// the regions played and projected to 10, and Lambda's (invocations, GB-s)
/// per million calls.
fn per_function(run: &Run<'_>, per_million: f64) -> (Units, Units, (f64, f64)) {
    let (calls, played) = (run.calls, run.played);
    let r = run.args.regions as f64;
    say!(
        "\n== tollgate, per 1,000,000 calls ({} calls played in {:.1} s; {} denied; {} log batches delivered twice) ==",
        calls, played.seconds, played.denied, played.redelivered_batches
    );
    say!(
        "  {:<14} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "function",
        "requests",
        "RRU",
        "WRU",
        "invocations",
        "GB-s"
    );
    let mut total = Units::default();
    let mut projected = Units::default();
    let mut lambda = (0.0, 0.0);
    for (i, f) in FUNCTIONS.iter().enumerate() {
        let mut u = Units::default();
        for region in run.regions {
            let snap = region.counters[i].snapshot();
            u.requests += snap.values().map(|c| c.requests).sum::<u64>();
            u.read += snap.values().map(|c| c.read_units).sum::<f64>();
            u.write += snap.values().map(|c| c.write_units).sum::<f64>();
        }
        let inv: Invocations = played.invocations.get(f).cloned().unwrap_or_default();
        let gbs = inv.billed_seconds * MEMORY_MB[i] / 1024.0;
        say!(
            "  {f:<14} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>12.2}",
            u.requests as f64 * per_million,
            u.read * per_million,
            u.write * per_million,
            inv.count as f64 * per_million,
            gbs * per_million
        );
        total.requests += u.requests;
        total.read += u.read;
        total.write += u.write;
        lambda.0 += inv.count as f64 * per_million;
        lambda.1 += gbs * per_million;
        // Projection to 10 regions: quota-sync copies to R-1 peers and every region evaluates.
        let (pr, pw) = if *f == "quota-sync" {
            (u.read * 10.0 / r, u.write * 9.0 / (r - 1.0).max(1.0))
        } else {
            (u.read, u.write)
        };
        projected.read += pr;
        projected.write += pw;
    }
    let t = Units {
        requests: total.requests,
        read: total.read * per_million,
        write: total.write * per_million,
    };
    let t10 = Units {
        requests: 0,
        read: projected.read * per_million,
        write: projected.write * per_million,
    };
    (t, t10, lambda)
}

/// The DynamoDB cost of each design (tollgate, baseline; played and
/// projected to 10 regions) and Lambda's.
fn designs(run: &Run<'_>, [t, bu, t10, bu10]: [Units; 4], lambda: (f64, f64)) {
    let lambda_dollars =
        lambda.0 * prices::LAMBDA_PER_MILLION / 1e6 + lambda.1 * prices::LAMBDA_PER_GB_SECOND;
    say!(
        "\n== DynamoDB cost per 1,000,000 calls (on-demand: ${}/M WRU, ${}/M RRU) ==",
        prices::WRITE_PER_MILLION,
        prices::READ_PER_MILLION
    );
    say!(
        "  {:<34} {:>10} {:>10} {:>10} {:>10}",
        "design",
        "WRU",
        "RRU",
        "$",
        "ratio"
    );
    let row = |name: &str, u: Units, base: Units| {
        say!(
            "  {name:<34} {:>10.0} {:>10.0} {:>10.3} {:>10.3}",
            u.write,
            u.read,
            dollars(u),
            dollars(u) / dollars(base).max(1e-12)
        );
    };
    row(&format!("tollgate, {} regions", run.args.regions), t, bu);
    row(&format!("baseline, {} regions", run.args.regions), bu, bu);
    row("tollgate, projected to 10 regions", t10, bu10);
    row("baseline, projected to 10 regions", bu10, bu10);
    say!(
        "  Lambda (all four functions): {:.0} invocations, {:.2} GB-s = ${lambda_dollars:.3} per 1,000,000 calls (arm64: ${}/M requests, ${}/GB-s)",
        lambda.0, lambda.1, prices::LAMBDA_PER_MILLION, prices::LAMBDA_PER_GB_SECOND
    );
    say!("  baseline played in {:.1} s", run.baseline_seconds);
}

/// The counts against the truth, and the calls allowed beyond a limit.
fn counts_and_accuracy(run: &Run<'_>) {
    let (mismatches, checked, baseline) = (run.mismatches, run.checked, run.baseline);
    say!("\n== Counts against the truth ==");
    say!("  tollgate: {mismatches} of {checked} identities' daily counters (each region's own item, summed over the tables) differ from the allowed calls");
    say!("  baseline: {} of {} identities' daily counters differ (redelivered batches counted twice)", baseline.1, baseline.0);

    say!("\n== Quota accuracy: calls allowed beyond a hard daily limit ==");
    let over_limit = &run.played.over_limit;
    if over_limit.is_empty() {
        say!("  no identity reached its limit in this run");
    }
    let mut worst: Vec<(&Identity, &Vec<u64>)> = over_limit.iter().collect();
    worst.sort_by_key(|(_, v)| std::cmp::Reverse(v.iter().sum::<u64>()));
    for (identity, per_region) in worst.iter().take(5) {
        say!(
            "  {identity}: {} beyond the limit (per region {:?})",
            per_region.iter().sum::<u64>(),
            per_region
        );
    }
    say!(
        "  pipeline delay simulated: up to {} s of log batching + one stream-pump pass + the authorizer's 5 s cache; \
         bound: at most (calls per second of the identity) x (that delay) calls beyond a limit",
        run.workload.log_batch_seconds
    );
}
