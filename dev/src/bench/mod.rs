//! `tollgate-dev bench cost`: what tollgate costs per million calls, measured.
//!
//! Plays a workload ([`crate::workload`]) through the real handlers of all
//! four functions, in this process, against DynamoDB Local with simulated
//! regions, counting every DynamoDB request and the capacity it consumed
//! (per function), every invocation with its duration, and the bytes of
//! every log line (access log, the functions' own: [`capture`]). Then plays
//! the same allowed calls through the write-per-request baseline (one counter
//! update per request, every change copied to every other region) and prices
//! both designs, every service, per million calls ([`bill`], [`prices`]).
//! `--smoke` plays a tiny workload and fails unless the counts are exact.

mod baseline;
mod bill;
pub mod capture;
mod idle;
pub mod limits;
mod play;
pub mod prices;
mod report;
mod setup;
mod smoke;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tollgate_core::{CounterKey, Identity, MeterName, Window};
use tollgate_store::{RequestCounter, TableNames, UsageStore};
use tollgate_testkit::pump::RegionPump;

use crate::workload::{calls, Workload};

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
    /// `text` (the tables) or `json` (the whole report as one JSON document
    /// on stdout; the tables go to stderr).
    #[arg(long, default_value = "text")]
    pub output: String,
    /// A functional check in well under a minute: a tiny W1 (2 regions,
    /// 40 s, deliveries every 20 s unless given), failing unless every
    /// count is exact; its tables are deleted afterwards.
    #[arg(long)]
    pub smoke: bool,
}

/// Seconds of log events in one CloudWatch Logs delivery (a Kinesis record).
const DELIVERY_SECONDS: i64 = 5;

const FUNCTIONS: [&str; 4] = ["authorizer", "log-processor", "ingest", "quota-sync"];
/// Memory (MB) of each function, as in template.yaml (a test reads it).
const MEMORY_MB: [f64; 4] = [128.0, 128.0, 256.0, 128.0];
const PAID_DAILY: u64 = 1_500;
const PAID_MONTHLY: u64 = 30_000;
const ANON_DAILY: u64 = 200;

/// One function's invocations and the time they took.
#[derive(Debug, Default, Clone)]
struct Invocations {
    count: u64,
    seconds: f64,
    /// As Lambda bills it: each invocation rounded up to the millisecond.
    billed_seconds: f64,
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
    /// The region's quota-sync, for its scheduled retry of pending copies.
    quota_sync: std::sync::Arc<quota_sync::handler::QuotaSync>,
    counters: [RequestCounter; 4],
    /// The next Kinesis sequence number of this region's log stream.
    next_seq: u128,
}

/// Whether the text tables go to stderr (`--output json`).
static TEXT_TO_STDERR: AtomicBool = AtomicBool::new(false);
/// Runs of this process, so two runs in one millisecond get their own tables.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// Prints a line of the text report: stdout, or stderr with `--output json`.
macro_rules! say {
    ($($t:tt)*) => {
        if $crate::bench::text_to_stderr() {
            eprintln!($($t)*)
        } else {
            println!($($t)*)
        }
    };
}
pub(crate) use say;

/// See [`say`].
pub(crate) fn text_to_stderr() -> bool {
    TEXT_TO_STDERR.load(Ordering::Relaxed)
}

/// Runs the cost benchmark and prints the report (`--output json`: one
/// JSON document); with `--smoke`, fails unless the counts are exact.
pub async fn run(mut args: BenchArgs) -> Result<()> {
    let report = measure(&mut args).await?;
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if args.smoke {
        smoke::check(&report)?;
        eprintln!("smoke: every count exact");
    }
    Ok(())
}

/// Plays the run (printing the text report on the way) and returns the
/// whole report as JSON.
pub(crate) async fn measure(args: &mut BenchArgs) -> Result<Value> {
    if args.smoke {
        smoke::settings(args);
    }
    let (w, kinesis) = settings(args)?;
    TEXT_TO_STDERR.store(args.output == "json", Ordering::Relaxed);
    capture::install();
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .context("AWS_ENDPOINT_URL_DYNAMODB must point at DynamoDB Local")?;
    let region_names: Vec<String> = (0..args.regions)
        .map(|i| format!("bench-{}", (b'a' + i as u8) as char))
        .collect();
    let names = TableNames::prefixed(&format!(
        "bench{}p{}r{}",
        chrono::Utc::now().timestamp_millis(),
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let calls = calls(&w, args.regions, args.seed);
    let start_ms = chrono::Utc::now().timestamp_millis() - i64::from(w.seconds) * 1000;
    say!("{}", prices::listing());
    say!(
        "workload {}: {:.1} calls/s, {} simulated s, {} calls, {} keys (Zipf {}), {} anonymous IPs ({:.0} %), {} regions, logs delivered every {} s per region ({})",
        w.name, w.calls_per_second, w.seconds, calls.len(), w.keys, w.zipf_s, w.anonymous_ips, w.anonymous_share * 100.0, args.regions, w.log_batch_seconds, args.source
    );

    let setup_started = Instant::now();
    let secrets =
        setup::tables_and_keys(&endpoint, &region_names, &names, &calls, start_ms, args).await?;
    let args_ref = &*args;
    let mut regions = futures::future::try_join_all(
        region_names
            .iter()
            .map(|name| setup::region(&endpoint, name, &region_names, &names, start_ms, args_ref)),
    )
    .await?;
    // Start each stream reader at the current end of its stream; count from here.
    for r in &mut regions {
        r.pump.round().await?;
    }
    say!(
        "set-up: {} keys in {} regions, in parallel, in {:.1} s (not counted)",
        secrets.len(),
        args.regions,
        setup_started.elapsed().as_secs_f64()
    );
    let idle = idle::measure(&regions).await?;
    for r in &regions {
        for c in &r.counters {
            c.reset();
        }
    }
    capture::reset(regions.len());

    let played = play::play(&mut regions, &calls, &secrets, &w, args, start_ms, kinesis).await?;
    let printed = capture::snapshot();
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
    let report = report::report(&report::Run {
        workload: &w,
        args,
        calls: calls.len() as u64,
        regions: &regions,
        played: &played,
        printed: &printed,
        idle: &idle,
        kinesis,
        baseline_counter: &baseline_counter,
        baseline,
        mismatches,
        checked,
        baseline_seconds: baseline_started.elapsed().as_secs_f64(),
    });
    if args.smoke {
        setup::delete_tables(&endpoint, &region_names, &names).await?;
    }
    Ok(report)
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
    if !matches!(args.output.as_str(), "text" | "json") {
        bail!("unknown --output {:?}: use text or json", args.output);
    }
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
    let seconds = started.elapsed().as_secs_f64();
    e.count += 1;
    e.seconds += seconds;
    e.billed_seconds += billed(seconds);
}

/// A duration as Lambda bills it: rounded up to the millisecond.
fn billed(seconds: f64) -> f64 {
    (seconds * 1000.0).ceil().max(1.0) / 1000.0
}

#[cfg(test)]
mod template_test;
