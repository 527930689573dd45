//! The cost harness prices what template.yaml deploys: these tests keep its
//! constants equal to the template's settings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_yaml_ng::Value;

use super::bill::{ALARM_METRICS_DIRECT, ALARM_METRICS_KINESIS};
use super::idle::SCHEDULED_PER_MONTH;
use super::{FUNCTIONS, MEMORY_MB};

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// The logical id of each of [`FUNCTIONS`].
const LOGICAL_IDS: [&str; 4] = [
    "AuthorizerFunction",
    "LogProcessorFunction",
    "IngestFunction",
    "QuotaSyncFunction",
];

#[test]
fn the_harness_memory_is_the_templates() {
    let t = template();
    let global = t["Globals"]["Function"]["MemorySize"].as_f64().unwrap();
    for (k, id) in LOGICAL_IDS.iter().enumerate() {
        let own = t["Resources"][*id]["Properties"]["MemorySize"].as_f64();
        assert_eq!(
            MEMORY_MB[k],
            own.unwrap_or(global),
            "{} ({id})",
            FUNCTIONS[k]
        );
    }
}

#[test]
fn the_alarm_metrics_are_the_templates() {
    let t = template();
    let (mut direct, mut kinesis) = (0.0, 0.0);
    for (_, r) in t["Resources"].as_mapping().unwrap() {
        if r["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let metrics = match r["Properties"]["Metrics"].as_sequence() {
            Some(list) => list.iter().filter(|m| !m["MetricStat"].is_null()).count() as f64,
            None => 1.0,
        };
        match r["Condition"].as_str() {
            None => {
                direct += metrics;
                kinesis += metrics;
            }
            Some("WithKinesis") => kinesis += metrics,
            Some(other) => panic!("an alarm under condition {other}: price it"),
        }
    }
    assert_eq!(direct, ALARM_METRICS_DIRECT);
    assert_eq!(kinesis, ALARM_METRICS_KINESIS);
}

#[test]
fn the_priced_settings_are_the_templates_defaults() {
    let t = template();
    let p = &t["Parameters"];
    // Prices are arm64's; X-Ray is priced as off; Kinesis as on demand.
    assert_eq!(p["Architecture"]["Default"].as_str(), Some("arm64"));
    assert_eq!(p["XRayTracing"]["Default"].as_str(), Some("false"));
    assert_eq!(
        t["Resources"]["AccessLogStream"]["Properties"]["StreamModeDetails"]["StreamMode"].as_str(),
        Some("ON_DEMAND")
    );
    // The capture counts INFO lines and no platform line.
    let logging = &t["Globals"]["Function"]["LoggingConfig"];
    assert_eq!(logging["ApplicationLogLevel"].as_str(), Some("INFO"));
    assert_eq!(p["SystemLogLevel"]["Default"].as_str(), Some("WARN"));
    assert_eq!(
        t["Globals"]["Function"]["Environment"]["Variables"]["RUST_LOG"].as_str(),
        Some("info")
    );
    // The idle cost: quota-sync's schedule.
    let schedule =
        &t["Resources"]["QuotaSyncFunction"]["Properties"]["Events"]["RetryPendingCopies"];
    assert_eq!(
        schedule["Properties"]["Schedule"].as_str(),
        Some("rate(5 minutes)")
    );
    assert_eq!(SCHEDULED_PER_MONTH, 12.0 * 730.0);
    // Nothing polls SQS and nothing publishes to EventBridge: the queues
    // are dead letters only and the one rule is a schedule (both priced 0).
    for (id, r) in t["Resources"].as_mapping().unwrap() {
        let ty = r["Type"].as_str().unwrap_or_default();
        assert!(
            !matches!(
                ty,
                "AWS::Events::EventBus" | "AWS::Pipes::Pipe" | "AWS::Events::Rule"
            ),
            "{id:?}: {ty}"
        );
        if ty == "AWS::Lambda::EventSourceMapping" {
            let source = format!("{:?}", r["Properties"]["EventSourceArn"]);
            assert!(source.contains("AccessLogStream"), "{id:?}: {source}");
        }
        if let Some(events) = r["Properties"]["Events"].as_mapping() {
            for (name, e) in events {
                let kind = e["Type"].as_str().unwrap_or_default();
                assert!(
                    matches!(kind, "HttpApi" | "DynamoDB" | "Schedule"),
                    "{id:?} {name:?}: {kind}"
                );
            }
        }
    }
}
