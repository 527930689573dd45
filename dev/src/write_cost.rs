//! `tollgate-dev bench write-cost`: the write cost of exactly-once
//! counting, measured on DynamoDB Local with `ReturnConsumedCapacity`
//! (tollgate_store::RequestCounter).
//!
//! Workload: `REQUESTS` requests (default 100,000) over 10,000 API keys with
//! Zipf popularity (s = 1.1) taking 80% of requests, plus 50,000 anonymous
//! IPs taking 20%; 93% 200, 3% 404, 2% denied, 2% 502; windows day and
//! month; requests spread over one day; delivered in batches of `BATCH`
//! log events (default 1,000; CloudWatch Logs delivers up to 10,000 events
//! or about 1 MB per batch). The figures are scaled to 1,000,000 requests.
//!
//! ```sh
//! export AWS_ENDPOINT_URL_DYNAMODB=$(scripts/dynamodb-local.sh start)
//! cargo run -p tollgate-dev -- bench write-cost 100000 1000
//! ```

use std::collections::BTreeMap;

use anyhow::Result;
use log_processor::{Config, Processor, ACCESS_LOG_FORMAT};
use tollgate_store::{CommitStore, RequestCounter};
use tollgate_testkit::cloudwatch::{direct_event, payload_json};
use tollgate_testkit::traffic::Traffic;
use tollgate_testkit::{Harness, TEST_REGION};

/// Options of `tollgate-dev bench write-cost`.
#[derive(Debug, clap::Args)]
pub struct WriteCostArgs {
    /// Requests to play.
    #[arg(default_value_t = 100_000)]
    requests: usize,
    /// Log events per delivery.
    #[arg(default_value_t = 1_000)]
    batch: usize,
}

/// Measures and prints the write cost.
pub async fn run(args: WriteCostArgs) -> Result<()> {
    let WriteCostArgs { requests, batch } = args;
    let h = Harness::new("lp-cost").await;
    let counter = RequestCounter::with_capacity();
    let client = aws_sdk_dynamodb::Client::from_conf(
        tollgate_store::client::local_config(&h.endpoint, TEST_REGION)
            .interceptor(counter.clone())
            .build(),
    );
    let vars: BTreeMap<&str, &str> = [
        ("TOLLGATE_REGION", TEST_REGION),
        ("TOLLGATE_USAGE_TABLE", h.tables.usage.as_str()),
        ("TOLLGATE_IDEMPOTENCY_TABLE", h.tables.idempotency.as_str()),
    ]
    .into_iter()
    .collect();
    let config = Config::from_lookup(|k| vars.get(k).map(|v| v.to_string()))?;
    let markers = Processor::marker_config(&config);
    let keys = tollgate_store::KeysStore::new(client.clone(), config.keys_table.clone());
    let commits = CommitStore::on(client, &config.usage_table, config.top_index, markers);
    let processor = Processor::new(commits, keys, config);

    let mut traffic = Traffic::new(ACCESS_LOG_FORMAT, 10_000, 1.1, 50_000, 0.2, 2026);
    let spacing = (86_400_000 / requests.max(1)) as i64;
    let start = 1_795_046_400_000; // 2026-11-19T00:00:00Z
    let (mut counted, mut increments, mut transactions, mut done) = (0u64, 0u64, 0u64, 0usize);
    let started = std::time::Instant::now();
    while done < requests {
        let n = batch.min(requests - done);
        let (events, _) = traffic.events(n, start + done as i64 * spacing, spacing);
        let summary = processor
            .handle(direct_event(&payload_json("api-logs", "s", &events)))
            .await?;
        counted += summary["counted"].as_u64().unwrap_or(0);
        increments += summary["increments"].as_u64().unwrap_or(0);
        transactions += summary["transactions"].as_u64().unwrap_or(0);
        done += n;
    }
    let (_, wcu) = counter.total_units();
    let scale = 1_000_000.0 / requests as f64;
    println!(
        "requests {requests}, batch {batch} events, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("counted {counted}, increments {increments}, transactions {transactions}");
    println!(
        "requests by operation: {:?}",
        counter
            .snapshot()
            .iter()
            .map(|(k, v)| (k.clone(), v.requests))
            .collect::<Vec<_>>()
    );
    println!(
        "write units: {wcu:.0} = {:.3} per request; per 1,000,000 requests: {:.0} WCU, {:.0} increments, {:.0} transactions",
        wcu / requests as f64,
        wcu * scale,
        increments as f64 * scale,
        transactions as f64 * scale
    );

    // Baseline: one UpdateItem per request (one counter, no dedupe), measured
    // on a sample of the same traffic.
    counter.reset();
    let sample = 2_000usize;
    let (_, truth) =
        Traffic::new(ACCESS_LOG_FORMAT, 10_000, 1.1, 50_000, 0.2, 7).events(sample, start, 10);
    let client = aws_sdk_dynamodb::Client::from_conf(
        tollgate_store::client::local_config(&h.endpoint, TEST_REGION)
            .interceptor(counter.clone())
            .build(),
    );
    for g in &truth {
        client
            .update_item()
            .table_name(&h.tables.usage)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("baseline#{}", g.identity)),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("day#2026-11-19#{TEST_REGION}")),
            )
            .update_expression("ADD #n :one")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(
                ":one",
                aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
            )
            .send()
            .await?;
    }
    let (_, base) = counter.total_units();
    println!(
        "baseline, one UpdateItem per request: {:.3} WCU per request; per 1,000,000 requests: {:.0} WCU",
        base / sample as f64,
        base / sample as f64 * 1_000_000.0
    );
    Ok(())
}
