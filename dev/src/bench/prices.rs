//! The one price table of the cost harness: public list prices, on demand,
//! in one region on one date, printed with every run (and in its JSON), so
//! a figure can always be re-priced.
//!
//! Only what a deployment of `template.yaml` uses is here. Free tiers are
//! left out (a provider at scale is past them), except where a fixed fee's
//! free allowance decides whether it is paid at all (dashboards).

/// The region the prices are of.
pub const REGION: &str = "us-east-1";
/// The date the prices were read.
pub const DATE: &str = "2026-12-02";

/// DynamoDB on-demand, per million write request units.
pub const WRITE_PER_MILLION: f64 = 0.625;
/// DynamoDB on-demand, per million read request units.
pub const READ_PER_MILLION: f64 = 0.125;
/// Lambda (arm64, the template's default architecture), per million requests.
pub const LAMBDA_PER_MILLION: f64 = 0.20;
/// Lambda (arm64), per GB-second of billed duration (rounded up to 1 ms per invocation).
pub const LAMBDA_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// CloudWatch Logs ingestion (standard class; Lambda's logs at the first tier), per GB.
pub const LOGS_INGEST_PER_GB: f64 = 0.50;
/// Bytes CloudWatch Logs bills per log event on top of its message.
pub const LOGS_EVENT_OVERHEAD_BYTES: u64 = 26;
/// CloudWatch custom metrics (each name and dimension-value combination), per metric-month.
pub const METRIC_PER_MONTH: f64 = 0.30;
/// CloudWatch standard-resolution alarms, per metric an alarm reads, per month.
pub const ALARM_METRIC_PER_MONTH: f64 = 0.10;
/// CloudWatch dashboards, per dashboard-month (the first 3 of an account are free).
pub const DASHBOARD_PER_MONTH: f64 = 3.00;
/// Kinesis Data Streams on-demand, per stream-hour.
pub const KINESIS_STREAM_HOUR: f64 = 0.04;
/// Kinesis on-demand data in, per GB (each record rounded up to 1 KB).
pub const KINESIS_IN_PER_GB: f64 = 0.08;
/// Kinesis on-demand data retrieved, per GB (each record rounded up to 1 KB).
pub const KINESIS_OUT_PER_GB: f64 = 0.04;
/// Kinesis provisioned, per shard-hour.
pub const KINESIS_SHARD_HOUR: f64 = 0.015;
/// Kinesis provisioned, per million PUT payload units (25 KB each).
pub const KINESIS_PUT_UNITS_PER_MILLION: f64 = 0.014;
/// SQS standard queues, per million requests.
pub const SQS_PER_MILLION: f64 = 0.40;
/// EventBridge custom events, per million (scheduled rules are free).
pub const EVENTBRIDGE_PER_MILLION: f64 = 1.00;
/// X-Ray, per million traces recorded.
pub const XRAY_PER_MILLION_TRACES: f64 = 5.00;
/// API Gateway REST APIs, per million calls (the first 333 million of a month): context, not tollgate's.
pub const API_GATEWAY_REST_PER_MILLION: f64 = 3.50;

/// Hours in a month, as AWS bills them (730).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Every price: (name, unit, dollars), for the run's listing and its JSON.
pub const TABLE: &[(&str, &str, f64)] = &[
    ("dynamodb_write", "per million WRU", WRITE_PER_MILLION),
    ("dynamodb_read", "per million RRU", READ_PER_MILLION),
    ("lambda_requests", "per million (arm64)", LAMBDA_PER_MILLION),
    ("lambda_duration", "per GB-s (arm64)", LAMBDA_PER_GB_SECOND),
    (
        "logs_ingestion",
        "per GB (+26 B per event)",
        LOGS_INGEST_PER_GB,
    ),
    ("metrics", "per custom metric-month", METRIC_PER_MONTH),
    ("alarms", "per alarm metric-month", ALARM_METRIC_PER_MONTH),
    (
        "dashboard",
        "per dashboard-month (3 free per account)",
        DASHBOARD_PER_MONTH,
    ),
    (
        "kinesis_on_demand_stream",
        "per stream-hour",
        KINESIS_STREAM_HOUR,
    ),
    (
        "kinesis_on_demand_in",
        "per GB (1 KB records)",
        KINESIS_IN_PER_GB,
    ),
    (
        "kinesis_on_demand_out",
        "per GB (1 KB records)",
        KINESIS_OUT_PER_GB,
    ),
    (
        "kinesis_provisioned_shard",
        "per shard-hour",
        KINESIS_SHARD_HOUR,
    ),
    (
        "kinesis_provisioned_put",
        "per million 25 KB units",
        KINESIS_PUT_UNITS_PER_MILLION,
    ),
    ("sqs", "per million requests", SQS_PER_MILLION),
    (
        "eventbridge",
        "per million custom events",
        EVENTBRIDGE_PER_MILLION,
    ),
    (
        "xray",
        "per million traces recorded",
        XRAY_PER_MILLION_TRACES,
    ),
    (
        "api_gateway_rest",
        "per million calls (context)",
        API_GATEWAY_REST_PER_MILLION,
    ),
];

/// The listing printed with every run.
pub fn listing() -> String {
    let mut out = format!("prices: {REGION}, public on-demand list prices read {DATE}\n");
    for (name, unit, dollars) in TABLE {
        out.push_str(&format!("  {name:<26} ${dollars} {unit}\n"));
    }
    out
}

/// The table as JSON.
pub fn json() -> serde_json::Value {
    serde_json::json!({
        "region": REGION,
        "date": DATE,
        "items": TABLE.iter().map(|(name, unit, dollars)| serde_json::json!({"name": name, "unit": unit, "dollars": dollars})).collect::<Vec<_>>(),
    })
}
