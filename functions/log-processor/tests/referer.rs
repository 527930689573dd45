//! The access line's `referer` is counted like an IP, and `UNAUTHORIZED`
//! lines (unknown keys) are charged to their source IP (HELPERS contracts
//! 3 and 4; issue 17 items 3 and 5), against DynamoDB Local.
#![allow(clippy::unwrap_used)]

mod common;

use log_processor::ACCESS_LOG_FORMAT;
use serde_json::json;
use tollgate_core::Window;
use tollgate_tests::cloudwatch::{direct_event, gzip, kinesis_event, payload_json, Event};
use tollgate_tests::Harness;

use common::{config, label, start, usage_items};

/// An access line as API Gateway renders [`ACCESS_LOG_FORMAT`].
fn line(n: usize, ip: &str, identity: &str, error_type: &str, referer: &str) -> Event {
    let status = if error_type == "UNAUTHORIZED" {
        "401"
    } else {
        "200"
    };
    let message = ACCESS_LOG_FORMAT
        .replace("$context.requestId", &format!("req-{n}"))
        .replace(
            "$context.requestTimeEpoch",
            &(start() + n as i64).to_string(),
        )
        .replace("$context.identity.sourceIp", ip)
        .replace("$context.httpMethod", "GET")
        .replace("$context.resourcePath", "/v1/lookup/{ip}")
        .replace("$context.status", status)
        .replace(
            "$context.integrationStatus",
            if error_type == "-" { status } else { "-" },
        )
        .replace("$context.error.responseType", error_type)
        .replace("$context.authorizer.principalId", "-")
        .replace("$context.authorizer.identity", identity)
        .replace("$context.authorizer.error", "-")
        .replace("$context.authorizer.referer", referer);
    assert!(!message.contains('$'), "{message}");
    Event {
        id: format!("{n:020}"),
        timestamp: start() + n as i64,
        message,
    }
}

fn ip(n: usize) -> String {
    format!("10.{}.{}.{}", n / 65_536 % 256, n / 256 % 256, n % 256)
}

/// 1,000 calls with one Referer from 200 IPs, in one Kinesis batch of 10
/// records, delivered twice (a redelivery): the Referer identity is
/// counted 1,000 times and each IP 5 times; an API key's line with the same
/// Referer charges only the key.
#[tokio::test]
async fn one_referer_from_many_ips_is_counted_for_every_call() {
    let h = Harness::new("lp-referer").await;
    let processor = common::processor(
        h.client(),
        config(&h, &[("TOLLGATE_ANONYMOUS_WINDOWS", "day")]),
    );
    let events: Vec<Event> = (0..1_000)
        .map(|n| {
            let addr = ip(n % 200);
            line(n, &addr, &format!("ip:{addr}"), "-", "referer:app.example")
        })
        .collect();
    let records: Vec<Vec<u8>> = events
        .chunks(100)
        .map(|batch| gzip(&payload_json("g", "s", batch)))
        .collect();
    let key_line = line(5_000, "192.0.2.1", "key:k1", "-", "referer:app.example");
    for _ in 0..2 {
        let (resp, summary) = processor
            .handle_kinesis_records(kinesis_event(&records, 70)["Records"].as_array().unwrap())
            .await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(summary.tally.counted, 1_000);
        assert_eq!(summary.tally.referers, 1_000);
        let summary = processor
            .handle(direct_event(&payload_json(
                "g",
                "k",
                std::slice::from_ref(&key_line),
            )))
            .await
            .unwrap();
        assert_eq!(summary["referers"], 0, "{summary}");
    }
    let got = usage_items(&h.client(), &h.tables.usage).await;
    let day = |identity: &str| {
        got.get(&(format!("requests#{identity}"), label(Window::Day, start())))
            .copied()
    };
    assert_eq!(day("referer:app.example"), Some(1_000));
    assert_eq!(day("ip:10.0.0.0"), Some(5));
    assert_eq!(day("ip:10.0.0.199"), Some(5));
    assert_eq!(day("key:k1"), Some(1));
    let ips: Vec<u64> = got
        .iter()
        .filter(|((pk, _), _)| pk.starts_with("requests#ip:"))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(ips.len(), 200);
    assert!(ips.iter().all(|v| *v == 5));
}

/// 300 requests with unknown keys from one IP (errorType `UNAUTHORIZED`,
/// no authorizer identity), in a direct delivery and a Kinesis batch: the
/// IP's anonymous identity is charged once per request; an IPv4-mapped
/// form of the same address is the same identity.
#[tokio::test]
async fn unauthorized_lines_are_charged_to_the_source_ip() {
    let h = Harness::new("lp-unauth").await;
    let processor = common::processor(h.client(), config(&h, &[]));
    let direct: Vec<Event> = (0..200)
        .map(|n| {
            let addr = if n % 2 == 0 {
                "198.51.100.4"
            } else {
                "::ffff:198.51.100.4"
            };
            line(n, addr, "-", "UNAUTHORIZED", "-")
        })
        .collect();
    let summary = processor
        .handle(direct_event(&payload_json("g", "s", &direct)))
        .await
        .unwrap();
    assert_eq!(summary["counted"], 200, "{summary}");
    let kinesis: Vec<Event> = (200..300)
        .map(|n| line(n, "198.51.100.4", "-", "UNAUTHORIZED", "-"))
        .collect();
    let resp = processor
        .handle(kinesis_event(
            &[gzip(&payload_json("g", "s", &kinesis))],
            40,
        ))
        .await
        .unwrap();
    assert_eq!(resp["batchItemFailures"], json!([]));
    // Other denials still charge nobody.
    let denied = [line(900, "198.51.100.4", "key:k1", "ACCESS_DENIED", "-")];
    let summary = processor
        .handle(direct_event(&payload_json("g", "t", &denied)))
        .await
        .unwrap();
    assert_eq!(summary["denied"], 1);
    let got = usage_items(&h.client(), &h.tables.usage).await;
    assert_eq!(
        got.get(&(
            "requests#ip:198.51.100.4".to_owned(),
            label(Window::Day, start())
        )),
        Some(&300),
        "{got:?}"
    );
    assert!(!got.keys().any(|(pk, _)| pk.contains("key:k1")));
}
