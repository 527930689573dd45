//! `tollgate-dev pump`: the local stand-in for quota-sync's event source
//! mapping. It reads the Usage table's stream in each simulated region of
//! DynamoDB Local and invokes quota-sync with Lambda-shaped stream events,
//! either in this process (one handler per region, the others as its
//! peers) or through the Lambda invoke API of `cargo lambda watch`. The
//! pump itself is the test kit's ([`tollgate_testkit::pump`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use quota_sync::QuotaSync;
use serde_json::Value;
use tollgate_store::TableNames;
use tollgate_testkit::pump::{local_pump, InProcess, Invoke, Pump, PumpOptions, Round};
use tollgate_testkit::streams::StartPosition;
use tracing::Instrument;

use crate::invoke::InvokeClient;

/// Options of `tollgate-dev pump`.
#[derive(Debug, Args)]
pub struct PumpArgs {
    /// The simulated regions (DynamoDB Local region names), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    regions: Vec<String>,
    /// Invoke quota-sync through the Lambda invoke API at this base URL
    /// (`cargo lambda watch`, e.g. http://127.0.0.1:9000) instead of in this
    /// process: `URL` for every region, or `REGION=URL`; repeatable. Each
    /// function process must run with its region's TOLLGATE_REGION.
    #[arg(long = "function-url")]
    function_urls: Vec<String>,
    /// The function name in the invoke path.
    #[arg(long, default_value = "quota-sync")]
    function_name: String,
    /// Pump until every stream is quiet, then exit (instead of polling forever).
    #[arg(long)]
    once: bool,
    /// The polling interval, in milliseconds.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
    /// Records per invocation (the event source mapping's BatchSize).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Give a batch up after this many deliveries (default: retry until it succeeds).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Start after the newest record instead of at the oldest one.
    #[arg(long)]
    latest: bool,
    /// The DynamoDB Local endpoint.
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB")]
    endpoint: String,
}

/// quota-sync's `handler`, invoked in this process.
pub fn in_process(handler: Arc<QuotaSync>) -> Arc<dyn Invoke> {
    Arc::new(InProcess::new("quota-sync", move |event: Value| {
        let handler = handler.clone();
        async move {
            // As the function's main.rs: the runtime's span, then the metric line.
            let outcome = handler
                .handle(&event)
                .instrument(crate::bench::capture::request_span())
                .await
                .map_err(|e| e.to_string())?;
            quota_sync::metrics::emit(&outcome.stats);
            serde_json::to_value(&outcome.response).map_err(|e| e.to_string())
        }
    }))
}

/// Runs `tollgate-dev pump`.
pub async fn run(names: &TableNames, args: PumpArgs) -> Result<()> {
    let regions: Vec<&str> = args.regions.iter().map(String::as_str).collect();
    let options = PumpOptions {
        batch_size: args.batch_size,
        max_attempts: args.max_attempts,
        start: if args.latest {
            StartPosition::Latest
        } else {
            StartPosition::TrimHorizon
        },
        ..PumpOptions::default()
    };
    let mut pump = if args.function_urls.is_empty() {
        in_process_pump(&args.endpoint, &regions, names, &options)?
    } else {
        let mut functions = Vec::new();
        for region in &regions {
            let url = function_url(&args.function_urls, region)?;
            let invoker: Arc<dyn Invoke> = Arc::new(InvokeClient::new(
                url,
                &args.function_name,
                Duration::from_secs(120),
            )?);
            functions.push((*region, invoker));
        }
        local_pump(&args.endpoint, &names.usage, &options, functions)
    };
    let interval = Duration::from_millis(args.interval_ms);
    if args.once {
        let (total, idle) = pump
            .run_until_idle(interval, 10_000)
            .await
            .context("pumping the Usage streams")?;
        println!("{}", summary(&total, idle));
        if !idle {
            bail!("the streams did not go quiet");
        }
    } else {
        eprintln!(
            "pumping the Usage streams of {} every {interval:?} (Ctrl-C stops)",
            regions.join(", ")
        );
        pump.run(interval, std::future::pending()).await;
    }
    Ok(())
}

/// A pump with one in-process quota-sync per region (the others its peers).
fn in_process_pump(
    endpoint: &str,
    regions: &[&str],
    names: &TableNames,
    options: &PumpOptions,
) -> Result<Pump> {
    let mut functions = Vec::new();
    for region in regions {
        let config = quota_sync::local_config(region, regions, names)
            .context("configuring quota-sync for the simulated regions")?;
        let handler = Arc::new(quota_sync::local(&config, endpoint));
        functions.push((*region, in_process(handler)));
    }
    Ok(local_pump(endpoint, &names.usage, options, functions))
}

/// The one-line JSON summary of `--once`.
fn summary(total: &Round, idle: bool) -> Value {
    serde_json::json!({
        "read": total.read,
        "invocations": total.invocations,
        "delivered": total.delivered,
        "completed": total.completed,
        "partial_failures": total.partial_failures,
        "failed_invocations": total.failed_invocations,
        "discarded": total.discarded,
        "idle": idle,
    })
}

/// The function URL for `region`: its `REGION=URL`, or the bare `URL`.
fn function_url<'a>(urls: &'a [String], region: &str) -> Result<&'a str> {
    let mut default = None;
    for entry in urls {
        match entry.split_once('=') {
            Some((r, url)) if r == region => return Ok(url),
            Some(_) => {}
            None => default = Some(entry.as_str()),
        }
    }
    default.with_context(|| format!("no --function-url for region {region}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn picks_the_function_url_of_a_region() {
        let urls = vec![
            "local-b=http://127.0.0.1:9001".to_owned(),
            "http://127.0.0.1:9000".to_owned(),
        ];
        assert_eq!(
            function_url(&urls, "local-b").unwrap(),
            "http://127.0.0.1:9001"
        );
        assert_eq!(
            function_url(&urls, "local-a").unwrap(),
            "http://127.0.0.1:9000"
        );
        assert!(function_url(&urls[..1], "local-a").is_err());
    }
}
