//! `tollgate-dev bench cost`: what tollgate costs per million calls, measured.
//!
//! Plays a workload ([`crate::workload`]) through the real handlers of all
//! four functions, in this process, against DynamoDB Local with three
//! simulated regions, counting every DynamoDB request and the capacity it
//! consumed (per function) and every invocation with its duration. Then plays
//! the same allowed calls through the write-per-request baseline (one counter
//! update per request, every change copied to every other region) and prints
//! both, per million calls, with prices, for 3 regions and projected to 10.

mod baseline;
pub mod limits;
mod play;
mod report;
mod setup;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use tollgate_core::{CounterKey, Identity, MeterName, Window};
use tollgate_store::{RequestCounter, TableNames, UsageStore};
use tollgate_testkit::pump::RegionPump;

use crate::workload::{calls, Workload};

/// Public on-demand prices, us-east-1, as published on 2026-11-21.
pub mod prices {
    /// DynamoDB on-demand, per million write request units.
    pub const WRITE_PER_MILLION: f64 = 0.625;
    /// DynamoDB on-demand, per million read request units.
    pub const READ_PER_MILLION: f64 = 0.125;
    /// Lambda (arm64), per million requests.
    pub const LAMBDA_PER_MILLION: f64 = 0.20;
    /// Lambda (arm64), per GB-second.
    pub const LAMBDA_PER_GB_SECOND: f64 = 0.000_013_333_4;
}

/// Settings of a cost run.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// `w1` (10 calls/s, like a 25M-calls-a-month API) or `w2` (1,000 calls/s).
    #[arg(long, default_value = "w1")]
    pub workload: String,
    /// Simulated regions.
    #[arg(long, default_value_t = 3)]
    pub regions: usize,
    /// Simulated seconds (default: the workload's).
    #[arg(long)]
    pub seconds: Option<u32>,
    /// Seconds between two log deliveries per region (default: the workload's).
    #[arg(long)]
    pub log_batch_seconds: Option<u32>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How access logs reach the log-processor: `direct` (a CloudWatch Logs
    /// subscription, one invocation per delivery, transactions with dedupe
    /// markers) or `kinesis` (subscription -> Kinesis, one invocation per
    /// batching window, per-shard watermarks).
    #[arg(long, default_value = "direct")]
    pub source: String,
    /// quota-sync's replication: `hot` (the default) or `all`.
    #[arg(long, default_value = "hot")]
    pub replication: String,
    /// Keep the top index (TOLLGATE_TOP_INDEX=true).
    #[arg(long)]
    pub top_index: bool,
    /// How the authorizer holds hard limits: `leases` (the default, one
    /// allowance store per region with the others as peers) or `blocks`
    /// (`TOLLGATE_LEASES=false`: only the blocks written from the counts).
    #[arg(long, default_value = "leases")]
    pub enforce: String,
}

/// Seconds of log events in one CloudWatch Logs delivery (a Kinesis record).
const DELIVERY_SECONDS: i64 = 5;

const FUNCTIONS: [&str; 4] = ["authorizer", "log-processor", "ingest", "quota-sync"];
/// Memory (MB) of each function, as in template.yaml.
const MEMORY_MB: [f64; 4] = [128.0, 128.0, 256.0, 128.0];
const PAID_DAILY: u64 = 1_500;
const PAID_MONTHLY: u64 = 30_000;
const ANON_DAILY: u64 = 200;

/// One function's invocations and the time they took.
#[derive(Debug, Default, Clone)]
struct Invocations {
    count: u64,
    seconds: f64,
}

/// One simulated region: its four functions' handlers, in this process,
/// each on a client that counts its DynamoDB requests.
struct Region {
    name: String,
    authorizer: authorizer::Authorizer<tollgate_store::KeysStore, tollgate_store::AllowanceStore>,
    clock: authorizer::cache::ManualClock,
    log: log_processor::Processor,
    ingest: ingest::Ingest,
    pump: RegionPump,
    counters: [RequestCounter; 4],
    /// The next Kinesis sequence number of this region's log stream.
    next_seq: u128,
}

/// Runs the cost benchmark and prints the report.
pub async fn run(args: BenchArgs) -> Result<()> {
    let (w, kinesis) = settings(&args)?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .context("AWS_ENDPOINT_URL_DYNAMODB must point at DynamoDB Local")?;
    let region_names: Vec<String> = (0..args.regions)
        .map(|i| format!("bench-{}", (b'a' + i as u8) as char))
        .collect();
    let names = TableNames::prefixed(&format!("bench{}", chrono::Utc::now().timestamp_millis()));
    let calls = calls(&w, args.regions, args.seed);
    let start_ms = chrono::Utc::now().timestamp_millis() - i64::from(w.seconds) * 1000;
    println!(
        "workload {}: {:.1} calls/s, {} simulated s, {} calls, {} keys (Zipf {}), {} anonymous IPs ({:.0} %), {} regions, logs delivered every {} s per region",
        w.name, w.calls_per_second, w.seconds, calls.len(), w.keys, w.zipf_s, w.anonymous_ips, w.anonymous_share * 100.0, args.regions, w.log_batch_seconds
    );

    let secrets =
        setup::tables_and_keys(&endpoint, &region_names, &names, &calls, start_ms, &args).await?;
    let mut regions = Vec::new();
    for name in &region_names {
        regions.push(setup::region(&endpoint, name, &region_names, &names, start_ms, &args).await?);
    }
    // Start each stream reader at the current end of its stream; count from here.
    for r in &mut regions {
        r.pump.round().await?;
    }
    for r in &regions {
        for c in &r.counters {
            c.reset();
        }
    }

    let played = play::play(&mut regions, &calls, &secrets, &w, &args, start_ms, kinesis).await?;
    let today = Window::Day.period_of(start_ms + i64::from(w.seconds) * 1000 - 1)?;
    let (checked, mismatches) = if today == Window::Day.period_of(start_ms)? {
        check_counts(&endpoint, &region_names, &names, &played.truth, today).await?
    } else {
        (0, 0)
    };

    // Baseline: one counter update per request (redelivered batches twice), copied to every other region.
    let baseline_counter = RequestCounter::with_capacity();
    let baseline_started = Instant::now();
    let baseline = baseline::baseline(
        &endpoint,
        &region_names,
        &names,
        &played.allowed_calls,
        &baseline_counter,
        today,
    )
    .await?;
    report::report(&report::Run {
        workload: &w,
        args: &args,
        calls: calls.len() as u64,
        regions: &regions,
        played: &played,
        baseline_counter: &baseline_counter,
        baseline,
        mismatches,
        checked,
        baseline_seconds: baseline_started.elapsed().as_secs_f64(),
    });
    Ok(())
}

/// The workload with the command line's overrides, and whether logs come
/// through Kinesis.
fn settings(args: &BenchArgs) -> Result<(Workload, bool)> {
    let mut w = Workload::named(&args.workload)
        .ok_or_else(|| anyhow!("unknown workload {:?}: use w1 or w2", args.workload))?;
    if let Some(s) = args.seconds {
        w.seconds = s;
    }
    if let Some(b) = args.log_batch_seconds {
        w.log_batch_seconds = b;
    }
    let kinesis = match args.source.as_str() {
        "direct" => false,
        "kinesis" => true,
        other => bail!("unknown --source {other:?}: use direct or kinesis"),
    };
    if !matches!(args.enforce.as_str(), "blocks" | "leases") {
        bail!("unknown --enforce {:?}: use blocks or leases", args.enforce);
    }
    if !matches!(args.replication.as_str(), "hot" | "all") {
        bail!(
            "unknown --replication {:?}: use hot or all",
            args.replication
        );
    }
    Ok((w, kinesis))
}

/// Exactness: each region's own item of every identity's daily counter,
/// from its own table (replication `hot` copies only counters near a
/// limit), summed (the usage API's view), against the truth. Returns
/// (identities checked, identities that differ).
async fn check_counts(
    endpoint: &str,
    region_names: &[String],
    names: &TableNames,
    truth: &BTreeMap<Identity, u64>,
    today: tollgate_core::Period,
) -> Result<(u64, u64)> {
    let stores: Vec<(tollgate_core::Region, UsageStore)> = region_names
        .iter()
        .map(|r| {
            Ok((
                tollgate_core::Region::new(r)?,
                UsageStore::new(tollgate_store::local_client(endpoint, r), &names.usage),
            ))
        })
        .collect::<Result<_>>()?;
    let (mut checked, mut mismatches) = (0, 0);
    for (identity, want) in truth.iter().take(900) {
        let counter = CounterKey {
            meter: MeterName::requests(),
            identity: identity.clone(),
            period: today,
        };
        let mut got = 0;
        for (region, usage) in &stores {
            got += usage
                .regions_of(&counter)
                .await?
                .get(region)
                .copied()
                .unwrap_or(0);
        }
        checked += 1;
        if got != *want {
            mismatches += 1;
        }
    }
    Ok((checked, mismatches))
}

/// Counts one invocation of `function` that started at `started`.
fn record(
    invocations: &mut BTreeMap<&'static str, Invocations>,
    function: &'static str,
    started: Instant,
) {
    let e = invocations.entry(function).or_default();
    e.count += 1;
    e.seconds += started.elapsed().as_secs_f64();
}
