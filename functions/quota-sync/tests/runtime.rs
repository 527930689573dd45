//! The real binary under the Lambda Runtime API stand-in: a sample event
//! from `events/quota-sync/`, and AWS's own sample DynamoDB events, whose
//! records of foreign tables and shapes are skipped, not failed.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;
use tollgate_tests::runtime_api::invoke_binary;
use tollgate_tests::Harness;

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// AWS's sample DynamoDB stream events, as shipped with `aws_lambda_events`.
fn aws_samples() -> Vec<Value> {
    let registry = std::path::PathBuf::from(
        std::env::var("CARGO_HOME")
            .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap())),
    )
    .join("registry/src");
    let mut out = Vec::new();
    for index in std::fs::read_dir(&registry).unwrap().flatten() {
        let fixtures = index.path().join("aws_lambda_events-1.2.1/src/fixtures");
        for name in [
            "example-dynamodb-event.json",
            "example-dynamodb-event-null-items.json",
        ] {
            let path = fixtures.join(name);
            if path.exists() {
                out.push(load(path.to_str().unwrap()));
            }
        }
    }
    assert!(!out.is_empty(), "AWS's sample events under {registry:?}");
    out
}

/// Points a sample event's records at the test's Usage table.
fn retarget(mut event: Value, table: &str) -> Value {
    for record in event["Records"].as_array_mut().unwrap() {
        if let Some(arn) = record["eventSourceARN"].as_str() {
            if arn.contains("table/tollgate-usage/") {
                record["eventSourceARN"] = arn.replace("tollgate-usage", table).into();
            }
        }
    }
    event
}

#[tokio::test]
async fn the_binary_handles_sample_events_and_skips_foreign_records() {
    let h = Harness::with_regions("qs-runtime", &REGIONS).await;
    let samples = ["stream-batch.json", "ttl-expiry.json"].map(|n| {
        retarget(
            load(&format!(
                "{}/../../events/quota-sync/{n}",
                env!("CARGO_MANIFEST_DIR")
            )),
            &h.tables.usage,
        )
    });
    let mut events: Vec<Value> = samples.to_vec();
    events.extend(aws_samples());
    events.push(serde_json::json!({"not": "a stream event"}));
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", h.endpoint.as_str()),
        ("AWS_REGION", "local-a"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("TOLLGATE_REGION", "local-a"),
        ("TOLLGATE_PEER_REGIONS", "local-b,local-c"),
        ("TOLLGATE_USAGE_TABLE", h.tables.usage.as_str()),
        ("TOLLGATE_KEYS_TABLE", h.tables.keys.as_str()),
        // The sample key has no plan: copy every change, to see the copies.
        ("TOLLGATE_REPLICATION", "all"),
        ("RUST_LOG", "info"),
    ];
    let results = tokio::task::spawn_blocking({
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            invoke_binary(env!("CARGO_BIN_EXE_quota-sync"), &env, &events)
        }
    })
    .await
    .unwrap();
    assert_eq!(results.len(), samples.len() + aws_samples().len() + 1);
    for (i, result) in results[..results.len() - 1].iter().enumerate() {
        let response = result
            .as_ref()
            .unwrap_or_else(|e| panic!("event {i} failed: {e}"));
        assert_eq!(failures(response), Vec::<String>::new(), "event {i}");
    }
    let last = results.last().unwrap();
    let error = last.as_ref().unwrap_err().to_string();
    assert!(error.contains("not a DynamoDB stream event"), "{error}");

    // The sample batch's own item reached both peers, at its largest value.
    let id = "key:k_0123456789abcdef".parse().unwrap();
    let month = tollgate_core::CounterKey {
        meter: tollgate_core::MeterName::requests(),
        identity: id,
        period: "month#2026-11".parse().unwrap(),
    };
    // So did its day 21, which lives in the same month item (`d21`).
    let day = tollgate_core::CounterKey {
        period: "day#2026-11-21".parse().unwrap(),
        ..month.clone()
    };
    for peer in ["local-b", "local-c"] {
        assert_eq!(
            values_in(&h, peer, &month).await.get("local-a"),
            Some(&42),
            "{peer}"
        );
        assert_eq!(
            values_in(&h, peer, &day).await.get("local-a"),
            Some(&42),
            "{peer}"
        );
    }
    // The sample's anonymous IP counts in its bucket's day item (`requests#anon:467`, under the default bucket secret).
    let ip_day = tollgate_core::CounterKey {
        identity: "ip:203.0.113.7".parse().unwrap(),
        ..day.clone()
    };
    assert_eq!(ip_day.pk(), "requests#anon:467");
    for peer in ["local-b", "local-c"] {
        assert_eq!(
            values_in(&h, peer, &ip_day).await.get("local-a"),
            Some(&3),
            "{peer}"
        );
    }
    // The replica of local-b's item is not copied again.
    assert!(!values_in(&h, "local-c", &month)
        .await
        .contains_key("local-b"));
}
