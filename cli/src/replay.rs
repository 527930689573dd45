//! `tollgate replay`: reprocesses the deliveries the log-processor failed for
//! good, from its dead-letter queue, and reports what it did.
//!
//! Exactly once comes from the function, not from replay: a replayed
//! delivery carries the same CloudWatch Logs event ids (direct path) or the
//! same stream, shard and sequence numbers (Kinesis) as the original, which
//! the log-processor's dedupe keys on. A message is deleted only after the
//! function has answered without error; replaying it again (a second run, a
//! delete that failed) counts nothing twice.

mod kinesis;
mod record;

use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::stack::Outputs;
use record::Failed;

/// The stack output naming the log-processor's dead-letter queue.
pub const QUEUE_OUTPUT: &str = "LogProcessorDeadLetterQueueUrl";

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The dead-letter queue's URL (default: the stack's
    /// `LogProcessorDeadLetterQueueUrl` output, with --stack).
    #[arg(long)]
    queue_url: Option<String>,
    /// Invoke this function (name or ARN) instead of the one each record names.
    #[arg(long)]
    function: Option<String>,
    /// Stop after this many messages.
    #[arg(long, default_value_t = 1000)]
    max: usize,
    /// Read and check the messages, invoke nothing, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What one message came to.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub message_id: String,
    /// `invoke` (a direct delivery), `kinesis` (a stream range) or `unsupported`.
    pub kind: String,
    /// `replayed` (and deleted), `checked` (dry run), `failed` or `skipped`
    /// (both left in the queue).
    pub result: String,
    /// Kinesis records read back from the stream.
    pub records: usize,
    pub detail: String,
}

/// Everything a run did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub queue_url: String,
    pub replayed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub checked: usize,
    pub messages: Vec<Outcome>,
}

pub async fn run(region: Option<&str>, outputs: &Outputs, args: ReplayArgs) -> Result<()> {
    let queue_url = match (&args.queue_url, outputs.get(QUEUE_OUTPUT)) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => url,
        (None, None) => bail!("name the queue: --queue-url URL, or --stack NAME"),
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    let sdk = loader.load().await;
    let report = replay(&sdk, &queue_url, &args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for m in &report.messages {
            println!(
                "{} {} {} records={} {}",
                m.message_id, m.kind, m.result, m.records, m.detail
            );
        }
        println!(
            "replayed={} failed={} skipped={} checked={} queue={}",
            report.replayed, report.failed, report.skipped, report.checked, report.queue_url
        );
    }
    if report.failed > 0 {
        bail!(
            "{} message(s) could not be replayed; they stay in the queue",
            report.failed
        );
    }
    Ok(())
}

/// Drains up to `args.max` messages of the queue once each.
async fn replay(sdk: &SdkConfig, queue_url: &str, args: &ReplayArgs) -> Result<Report> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut report = Report {
        queue_url: queue_url.to_owned(),
        ..Report::default()
    };
    let mut seen = HashSet::new();
    while report.messages.len() < args.max {
        let want = (args.max - report.messages.len()).min(10);
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(i32::try_from(want).unwrap_or(10))
            // Longer than a replay of one message takes: nobody else gets it meanwhile.
            .visibility_timeout(900)
            .wait_time_seconds(1)
            .send()
            .await
            .with_context(|| format!("receiving from {queue_url}"))?;
        let mut fresh = Vec::new();
        for m in received.messages() {
            if seen.insert(m.message_id().unwrap_or_default().to_owned()) {
                fresh.push(m);
            } else {
                // Seen in this run already (it failed, or was skipped): leave
                // it visible for the next run.
                release(&sqs, queue_url, m.receipt_handle()).await;
            }
        }
        if fresh.is_empty() {
            break;
        }
        for message in fresh {
            let id = message.message_id().unwrap_or_default().to_owned();
            let body = message.body().unwrap_or_default();
            let mut outcome = one(sdk, &id, body, args).await;
            if outcome.result == "replayed" {
                let deleted = sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .set_receipt_handle(message.receipt_handle().map(str::to_owned))
                    .send()
                    .await;
                if let Err(e) = deleted {
                    // Replayed, not deleted: a later run replays it again, and the
                    // function's dedupe counts nothing twice.
                    outcome.detail = format!("replayed, but not deleted: {e}");
                }
            }
            if outcome.result != "replayed" {
                release(&sqs, queue_url, message.receipt_handle()).await;
            }
            match outcome.result.as_str() {
                "replayed" => report.replayed += 1,
                "checked" => report.checked += 1,
                "skipped" => report.skipped += 1,
                _ => report.failed += 1,
            }
            report.messages.push(outcome);
        }
    }
    Ok(report)
}

/// Makes a received message visible again at once, for the next run.
async fn release(sqs: &aws_sdk_sqs::Client, queue_url: &str, receipt: Option<&str>) {
    let result = sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .set_receipt_handle(receipt.map(str::to_owned))
        .visibility_timeout(0)
        .send()
        .await;
    if let Err(e) = result {
        // Harmless: it becomes visible when its visibility timeout ends.
        tracing::warn!(error = %e, "could not make a message visible again");
    }
}

/// Replays one message; never fails the run, the outcome says what happened.
async fn one(sdk: &SdkConfig, id: &str, body: &str, args: &ReplayArgs) -> Outcome {
    let outcome = |kind: &str, result: &str, records: usize, detail: String| Outcome {
        message_id: id.to_owned(),
        kind: kind.to_owned(),
        result: result.to_owned(),
        records,
        detail,
    };
    let failed = match record::parse(body, args.function.as_deref()) {
        Ok(f) => f,
        Err(e) => return outcome("unknown", "skipped", 0, format!("{e:#}")),
    };
    match failed {
        Failed::Unsupported { what } => outcome(
            "unsupported",
            "skipped",
            0,
            format!("{what} records are not replayed by this command"),
        ),
        Failed::Invoke { function, payload } => {
            if args.dry_run {
                return outcome("invoke", "checked", 0, format!("would invoke {function}"));
            }
            match invoke(sdk, &function, &payload).await {
                Ok(_) => outcome("invoke", "replayed", 0, format!("invoked {function}")),
                Err(e) => outcome("invoke", "failed", 0, format!("{e:#}")),
            }
        }
        Failed::Kinesis { function, batch } => {
            let records = match kinesis::read_range(sdk, &batch).await {
                Ok(r) => r,
                Err(e) => return outcome("kinesis", "failed", 0, format!("{e:#}")),
            };
            let n = records.len();
            if args.dry_run {
                return outcome("kinesis", "checked", n, format!("would invoke {function}"));
            }
            let event = match record::kinesis_event(&batch, &records) {
                Ok(e) => e,
                Err(e) => return outcome("kinesis", "failed", n, format!("{e:#}")),
            };
            match invoke(sdk, &function, &event).await {
                Ok(response) => match record::failed_items(&response) {
                    0 => outcome("kinesis", "replayed", n, format!("invoked {function}")),
                    k => outcome(
                        "kinesis",
                        "failed",
                        n,
                        format!("{function} reported {k} failed record(s)"),
                    ),
                },
                Err(e) => outcome("kinesis", "failed", n, format!("{e:#}")),
            }
        }
    }
}

/// A synchronous invoke, in the region a function ARN names (else the
/// CLI's); a function error is an error.
async fn invoke(sdk: &SdkConfig, function: &str, payload: &Value) -> Result<Value> {
    let mut conf = aws_sdk_lambda::config::Builder::from(sdk);
    if let Some(region) = function
        .strip_prefix("arn:")
        .and_then(|rest| rest.split(':').nth(2))
        .filter(|r| !r.is_empty())
    {
        conf = conf.region(Region::new(region.to_owned()));
    }
    let out = aws_sdk_lambda::Client::from_conf(conf.build())
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(serde_json::to_vec(payload)?))
        .send()
        .await
        .with_context(|| format!("invoking {function}"))?;
    let body = out
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    if let Some(error) = out.function_error() {
        bail!(
            "{function} failed ({error}): {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        );
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).context("the function's answer is not JSON")
}
