//! Times N idempotent calls (first executions, then the same N again as
//! duplicates), one after another, against the DynamoDB endpoint in
//! `AWS_ENDPOINT_URL_DYNAMODB`. `scripts/bench-idempotency-vs-powertools.py`
//! runs it beside Powertools for AWS Lambda (Python).
//!
//! `cargo run -p tollgate-idempotency --example calls -- <table> <n>`
//! prints one JSON line: `{"n":..,"first_s":..,"duplicate_s":..}`.

use std::time::Instant;

use serde_json::json;
use tollgate_idempotency::{Deadline, Idempotency, IdempotencyConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let table = args.next().ok_or("usage: calls <table> <n>")?;
    let n: usize = args.next().ok_or("usage: calls <table> <n>")?.parse()?;
    let aws = aws_config::load_from_env().await;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let idem = Idempotency::new(
        client,
        IdempotencyConfig::new(table)
            .namespace("calls")
            .key_path("order_id")?,
    );
    let run_id = format!("{:08x}", rand::random::<u32>());
    let events: Vec<_> = (0..n)
        .map(|i| json!({"order_id": format!("{run_id}-{i}"), "amount": i, "note": "x".repeat(200)}))
        .collect();
    let mut times = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        for event in &events {
            let deadline =
                Deadline::from(std::time::SystemTime::now() + std::time::Duration::from_secs(30));
            let out = idem
                .run(event, deadline, || async {
                    Ok::<_, std::io::Error>(json!({"status": "ok", "order": event["order_id"]}))
                })
                .await?;
            assert_eq!(out["order"], event["order_id"]);
        }
        times.push(started.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        json!({"n": n, "first_s": times[0], "duplicate_s": times[1]})
    );
    Ok(())
}
