//! The whole bill: every service a deployment of `template.yaml` pays, per
//! million calls, for tollgate and the write-per-request baseline, per
//! service and per function; what a region costs idle; the seed's anchor
//! and the goal. Prices from [`super::prices`] only.

use serde_json::{json, Value};

use super::idle::{Idle, SCHEDULED_PER_MONTH};
use super::play::KinesisRecords;
use super::prices as p;
use super::{say, FUNCTIONS, MEMORY_MB};

/// Metrics the template's alarms read in a region (a test counts them):
/// 15 single-metric alarms and one of three metrics; one more with Kinesis.
pub const ALARM_METRICS_DIRECT: f64 = 18.0;
pub const ALARM_METRICS_KINESIS: f64 = 19.0;
/// X-Ray's default sampling rule: the first request each second, then 5 %.
const XRAY_RESERVOIR_PER_SECOND: f64 = 1.0;
const XRAY_RATE: f64 = 0.05;
/// The seed: 25 million calls a month from 10 regions, about $150 all-in.
const SEED_CALLS_PER_MONTH: f64 = 25e6;
const SEED_DOLLARS_PER_MONTH: f64 = 150.0;

/// One function's measured totals over the run.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Function {
    pub read: f64,
    pub write: f64,
    pub invocations: f64,
    pub billed_seconds: f64,
    /// Log events and bytes it printed (tracing and EMF lines).
    pub log_events: f64,
    pub log_bytes: f64,
    /// Of which embedded-metric lines (none with `Metrics=false`).
    pub emf_events: f64,
    pub emf_bytes: f64,
}

/// What the bill reads, totals over the run.
pub(super) struct Inputs<'a> {
    pub calls: f64,
    pub regions: f64,
    pub seconds: f64,
    /// The workload's calls per second (all regions).
    pub calls_per_second: f64,
    pub kinesis: bool,
    pub functions: [Function; 4],
    pub access_lines: f64,
    pub access_bytes: f64,
    pub records: KinesisRecords,
    /// Custom metrics published per region (the most any region published).
    pub metrics: f64,
    /// Of which the authorizer's (the baseline publishes those alone).
    pub authorizer_metrics: f64,
    pub idle: &'a Idle,
    /// The baseline's DynamoDB units.
    pub baseline_read: f64,
    pub baseline_write: f64,
}

/// Dollars per million calls of one design, by service.
#[derive(Debug, Default, Clone)]
struct Design {
    services: Vec<(&'static str, f64)>,
}

impl Design {
    fn total(&self) -> f64 {
        self.services.iter().map(|(_, d)| d).sum()
    }
    fn get(&self, name: &str) -> f64 {
        self.services
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, d)| *d)
    }
}

/// Dollars of a function's DynamoDB units, Lambda requests, GB-s and own
/// logs, over the run.
fn function_dollars(f: &Function, memory_mb: f64) -> [f64; 4] {
    [
        f.write * p::WRITE_PER_MILLION / 1e6 + f.read * p::READ_PER_MILLION / 1e6,
        f.invocations * p::LAMBDA_PER_MILLION / 1e6,
        f.billed_seconds * memory_mb / 1024.0 * p::LAMBDA_PER_GB_SECOND,
        logs_dollars(f.log_bytes, f.log_events),
    ]
}

/// CloudWatch Logs ingestion of `bytes` in `events` events.
fn logs_dollars(bytes: f64, events: f64) -> f64 {
    (bytes + events * p::LOGS_EVENT_OVERHEAD_BYTES as f64) / 1e9 * p::LOGS_INGEST_PER_GB
}

/// A region's fixed monthly fees: alarms and its dashboard (charged in full
/// here; an account's first 3 dashboards are free, see [`dashboards_free`]).
fn fixed_per_region_month(kinesis: bool) -> f64 {
    let alarms = if kinesis {
        ALARM_METRICS_KINESIS
    } else {
        ALARM_METRICS_DIRECT
    };
    alarms * p::ALARM_METRIC_PER_MONTH + p::DASHBOARD_PER_MONTH
}

/// What an account of `regions` saves a month because its first 3 dashboards are free.
fn dashboards_free(regions: f64) -> f64 {
    regions.min(3.0) * p::DASHBOARD_PER_MONTH
}

/// The share of calls X-Ray's default rule samples, in a region taking
/// `rate` calls per second (Poisson): the first of each second, 5 % of the rest.
fn xray_share(rate: f64) -> f64 {
    if rate <= 0.0 {
        return 0.0;
    }
    let first = XRAY_RESERVOIR_PER_SECOND.min(1.0 - (-rate).exp());
    (first + XRAY_RATE * (rate - first)) / rate
}

/// Computes, prints and returns the bill.
pub(super) fn bill(i: &Inputs<'_>) -> Value {
    let per_million = 1e6 / i.calls.max(1.0);
    let monthly_calls = i.calls_per_second * 30.0 * 86_400.0;
    let monthly_millions = (monthly_calls / 1e6).max(1e-9);
    let fixed_monthly = |per_region: f64| per_region * i.regions / monthly_millions;

    // tollgate, by function and service.
    let mut by_function = Vec::new();
    let mut sums = [0.0; 4];
    for (k, f) in i.functions.iter().enumerate() {
        let d = function_dollars(f, MEMORY_MB[k]).map(|x| x * per_million);
        for (s, x) in sums.iter_mut().zip(d) {
            *s += x;
        }
        by_function.push((FUNCTIONS[k], d));
    }
    let access = logs_dollars(i.access_bytes, i.access_lines) * per_million;
    let r = &i.records;
    let (kinesis_on_demand, kinesis_provisioned, shards) = if i.kinesis {
        let gb = |kb: u64| kb as f64 * 1024.0 / 1e9;
        let od = fixed_monthly(p::HOURS_PER_MONTH * p::KINESIS_STREAM_HOUR)
            + (gb(r.billed_kb) * p::KINESIS_IN_PER_GB + gb(r.read_kb) * p::KINESIS_OUT_PER_GB)
                * per_million;
        // One shard takes 1 MB/s and 1,000 records/s; a region needs one at these rates.
        let per_region_s = i.regions * i.seconds.max(1.0);
        let shards = (r.bytes as f64 / per_region_s / 1e6)
            .max(r.records as f64 / per_region_s / 1000.0)
            .ceil()
            .max(1.0);
        let prov = fixed_monthly(shards * p::HOURS_PER_MONTH * p::KINESIS_SHARD_HOUR)
            + r.put_units as f64 * p::KINESIS_PUT_UNITS_PER_MILLION / 1e6 * per_million;
        (od, prov, shards)
    } else {
        (0.0, 0.0, 0.0)
    };
    let metrics = fixed_monthly(i.metrics * p::METRIC_PER_MONTH);
    let fixed = fixed_monthly(fixed_per_region_month(i.kinesis))
        - dashboards_free(i.regions) / monthly_millions;
    let traces = i.calls * xray_share(i.calls_per_second / i.regions.max(1.0))
        + i.functions[1..].iter().map(|f| f.invocations).sum::<f64>();
    let xray_if_on = traces * p::XRAY_PER_MILLION_TRACES / 1e6 * per_million;
    let tollgate = Design {
        services: vec![
            ("DynamoDB", sums[0]),
            ("Lambda requests", sums[1]),
            ("Lambda duration", sums[2]),
            ("CloudWatch Logs: access log", access),
            ("CloudWatch Logs: functions' logs", sums[3]),
            ("CloudWatch custom metrics (EMF)", metrics),
            ("CloudWatch alarms and dashboard", fixed),
            ("Kinesis (on demand)", kinesis_on_demand),
            ("SQS (dead letters only)", 0.0),
            ("EventBridge (schedule only)", 0.0),
            ("X-Ray (off by default)", 0.0),
        ],
    };
    // The baseline: one authorizer-like invocation per call (tollgate's
    // authorizer's measured duration and log lines: a floor, it also waits
    // for its write), its DynamoDB writes, no access log to count from.
    let a = &i.functions[0];
    let per_call = |x: f64| x / a.invocations.max(1.0);
    let baseline_fn = Function {
        read: i.baseline_read,
        write: i.baseline_write,
        invocations: i.calls,
        billed_seconds: per_call(a.billed_seconds) * i.calls,
        log_events: per_call(a.log_events) * i.calls,
        log_bytes: per_call(a.log_bytes) * i.calls,
        emf_events: per_call(a.emf_events) * i.calls,
        emf_bytes: per_call(a.emf_bytes) * i.calls,
    };
    let b = function_dollars(&baseline_fn, MEMORY_MB[0]).map(|x| x * per_million);
    let baseline = Design {
        services: vec![
            ("DynamoDB", b[0]),
            ("Lambda requests", b[1]),
            ("Lambda duration", b[2]),
            ("CloudWatch Logs: access log", 0.0),
            ("CloudWatch Logs: functions' logs", b[3]),
            (
                "CloudWatch custom metrics (EMF)",
                fixed_monthly(i.authorizer_metrics * p::METRIC_PER_MONTH),
            ),
            ("CloudWatch alarms and dashboard", 0.0),
            ("Kinesis (on demand)", 0.0),
            ("SQS (dead letters only)", 0.0),
            ("EventBridge (schedule only)", 0.0),
            ("X-Ray (off by default)", 0.0),
        ],
    };

    say!(
        "\n== All-in, $ per 1,000,000 calls, {} regions (fixed monthly fees spread over the workload's {:.1} M calls a month) ==",
        i.regions,
        monthly_millions
    );
    say!("  {:<36} {:>10} {:>10}", "service", "tollgate", "baseline");
    for (name, d) in &tollgate.services {
        say!("  {name:<36} {d:>10.4} {:>10.4}", baseline.get(name));
    }
    say!(
        "  {:<36} {:>10.4} {:>10.4}",
        "all-in, API Gateway apart",
        tollgate.total(),
        baseline.total()
    );
    say!(
        "  {:<36} {:>10.4} {:>10.4}   (context: API Gateway's own fee)",
        "API Gateway REST",
        p::API_GATEWAY_REST_PER_MILLION,
        p::API_GATEWAY_REST_PER_MILLION
    );
    // Metrics=false (a template parameter): no EMF line, no custom metric.
    let metrics_off_saves = metrics
        + i.functions
            .iter()
            .map(|f| logs_dollars(f.emf_bytes, f.emf_events))
            .sum::<f64>()
            * per_million;
    say!(
        "  alternatives: X-Ray on (default sampling, {:.1} % of calls traced) +{xray_if_on:.4}; Metrics=false -{metrics_off_saves:.4} (its alarms then read nothing)",
        xray_share(i.calls_per_second / i.regions.max(1.0)) * 100.0
    );
    if i.kinesis {
        say!("  Kinesis provisioned ({shards} shard per region) {kinesis_provisioned:.4} instead of {kinesis_on_demand:.4} on demand");
    }

    say!("\n== tollgate by function, $ per 1,000,000 calls ==");
    say!(
        "  {:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "function",
        "DynamoDB",
        "requests",
        "GB-s",
        "own logs",
        "total",
        "log B/inv"
    );
    for (k, (name, d)) in by_function.iter().enumerate() {
        let f = &i.functions[k];
        say!(
            "  {name:<14} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>12.0}",
            d[0],
            d[1],
            d[2],
            d[3],
            d.iter().sum::<f64>(),
            f.log_bytes / f.invocations.max(1.0)
        );
    }
    say!(
        "  access log: {:.0} lines, {:.1} bytes a line (+26 billed per event)",
        i.access_lines,
        i.access_bytes / i.access_lines.max(1.0)
    );

    let overhead = tollgate.total();
    let anchor_month = overhead * SEED_CALLS_PER_MONTH / 1e6
        + p::API_GATEWAY_REST_PER_MILLION * SEED_CALLS_PER_MONTH / 1e6;
    say!(
        "  the seed's anchor (25 M calls a month, 10 regions, ~${SEED_DOLLARS_PER_MONTH} all-in, API Gateway ${:.2}): tollgate's overhead at this run's rate ${:.2} a month, ${anchor_month:.2} with API Gateway",
        p::API_GATEWAY_REST_PER_MILLION * 25.0,
        overhead * 25.0
    );
    say!(
        "  goal: overhead <= 20 % of API Gateway's fee ($0.70 per million) at W1, <= 10 % ($0.35) at W2: this run ${overhead:.4}, {:.0} % of the fee",
        overhead / p::API_GATEWAY_REST_PER_MILLION * 100.0
    );
    let idle = idle_costs(i);
    json!({
        "regions": i.regions,
        "monthly_calls": monthly_calls,
        "services": tollgate.services.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "tollgate": services_json(&tollgate),
        "baseline": services_json(&baseline),
        "tollgate_total": tollgate.total(),
        "baseline_total": baseline.total(),
        "api_gateway_rest": p::API_GATEWAY_REST_PER_MILLION,
        "overhead_share_of_api_gateway": overhead / p::API_GATEWAY_REST_PER_MILLION,
        "by_function": by_function.iter().enumerate().map(|(k, (name, d))| json!({
            "function": name, "dynamodb": d[0], "lambda_requests": d[1], "lambda_duration": d[2], "own_logs": d[3],
            "log_bytes_per_invocation": i.functions[k].log_bytes / i.functions[k].invocations.max(1.0),
            "emf_bytes_per_invocation": i.functions[k].emf_bytes / i.functions[k].invocations.max(1.0),
        })).collect::<Vec<_>>(),
        "access_log": {"lines": i.access_lines, "bytes_per_line": i.access_bytes / i.access_lines.max(1.0)},
        "kinesis": {"records": r.records, "bytes": r.bytes, "billed_kb": r.billed_kb, "read_kb": r.read_kb, "put_units": r.put_units,
                     "on_demand": kinesis_on_demand, "provisioned": kinesis_provisioned, "shards_per_region": shards},
        "xray_if_on": xray_if_on,
        "metrics_off_saves": metrics_off_saves,
        "custom_metrics_per_region": i.metrics,
        "seed_anchor": {"calls_per_month": SEED_CALLS_PER_MONTH, "dollars_per_month": SEED_DOLLARS_PER_MONTH,
                        "tollgate_overhead_per_month": overhead * 25.0, "with_api_gateway": anchor_month},
        "idle_per_region_month": idle,
    })
}

/// Per service as JSON.
fn services_json(d: &Design) -> Value {
    Value::Object(
        d.services
            .iter()
            .map(|(n, x)| ((*n).to_owned(), json!(x)))
            .collect(),
    )
}

/// What one region costs a month with no traffic, for each log path;
/// prints and returns it.
fn idle_costs(i: &Inputs<'_>) -> Value {
    let idle = i.idle;
    let schedule = SCHEDULED_PER_MONTH
        * (p::LAMBDA_PER_MILLION / 1e6
            + idle.billed_seconds * MEMORY_MB[3] / 1024.0 * p::LAMBDA_PER_GB_SECOND
            + idle.read * p::READ_PER_MILLION / 1e6
            + idle.write * p::WRITE_PER_MILLION / 1e6
            + idle.log_bytes / 1e9 * p::LOGS_INGEST_PER_GB);
    let metrics = idle.metrics as f64 * p::METRIC_PER_MONTH;
    let path = |kinesis: bool, stream: f64| {
        let fixed = fixed_per_region_month(kinesis);
        json!({"schedule": schedule, "metrics": metrics, "alarms_and_dashboard": fixed, "stream": stream,
               "total": schedule + metrics + fixed + stream})
    };
    let on_demand = p::HOURS_PER_MONTH * p::KINESIS_STREAM_HOUR;
    let provisioned = p::HOURS_PER_MONTH * p::KINESIS_SHARD_HOUR;
    let direct = path(false, 0.0);
    let od = path(true, on_demand);
    let prov = path(true, provisioned);
    say!("\n== Idle: one region, a month, no call ==");
    say!(
        "  quota-sync's schedule ({SCHEDULED_PER_MONTH:.0} invocations, {:.1} ms billed, {:.1} RRU, {:.0} log bytes each): ${schedule:.4}",
        idle.billed_seconds * 1000.0,
        idle.read,
        idle.log_bytes
    );
    say!(
        "  its custom metrics ({} at ${}): ${metrics:.2}; alarms and dashboard: ${:.2} direct, ${:.2} with Kinesis",
        idle.metrics,
        p::METRIC_PER_MONTH,
        fixed_per_region_month(false),
        fixed_per_region_month(true)
    );
    for (name, v) in [
        ("direct", &direct),
        ("kinesis on demand", &od),
        ("kinesis provisioned (1 shard)", &prov),
    ] {
        say!(
            "  {name:<30} ${:.2} a region, ${:.2} for 10 regions",
            v["total"].as_f64().unwrap_or(0.0),
            v["total"].as_f64().unwrap_or(0.0) * 10.0
        );
    }
    say!("  (DynamoDB on demand, Lambda, SQS and the stream reads cost nothing idle; storage is left out)");
    json!({"direct": direct, "kinesis_on_demand": od, "kinesis_provisioned": prov})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xray_samples_every_lone_call_and_five_percent_of_a_crowd() {
        assert!(xray_share(0.001) > 0.99);
        let busy = xray_share(1000.0);
        assert!(busy > 0.05 && busy < 0.052, "{busy}");
        assert_eq!(xray_share(0.0), 0.0);
    }
}
