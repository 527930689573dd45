//! `tollgate-dev start-time`: how long each function's binary takes from
//! process start to its first `invocation/next` call, the part of a cold
//! start that is tollgate's (configuration, clients, the authorizer's plans
//! Query), measured against the Runtime API stand-in and DynamoDB Local.
//!
//! Each binary is started `--runs` times, one at a time, with the
//! environment it has in Lambda; the figures are the minimum, median and
//! maximum over the runs, and the binary's size on disk. Run it on an idle
//! machine (`scripts/start-time.sh` builds the release binaries first).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tollgate_core::{Limit, MeterName, OveragePolicy, Plan, Window};
use tollgate_store::KeysStore;
use tollgate_testkit::runtime_api::RuntimeApi;
use tollgate_testkit::Harness;

/// The functions, by binary name.
const FUNCTIONS: [&str; 4] = ["authorizer", "ingest", "log-processor", "quota-sync"];

/// How long one start may take before the run fails.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a start-time run.
#[derive(Debug, clap::Args)]
pub struct StartTimeArgs {
    /// The folder holding the four binaries (for example `target/release`).
    #[arg(long)]
    pub bin_dir: PathBuf,
    /// Starts per function.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Plans in the Keys table (the authorizer reads them all at start).
    #[arg(long, default_value_t = 3)]
    pub plans: usize,
}

/// One function's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub function: &'static str,
    pub bytes: u64,
    pub min: Duration,
    pub median: Duration,
    pub max: Duration,
}

/// Runs every function `args.runs` times and prints one row each.
pub async fn run(args: StartTimeArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let h = Harness::new("starttime").await;
    let keys = KeysStore::new(h.client(), h.tables.keys.clone());
    for i in 0..args.plans {
        keys.put_plan(&plan(i))
            .await
            .context("writing a plan to DynamoDB Local")?;
    }
    println!(
        "process start to the first `next` call, {} starts each, against DynamoDB Local at {}",
        args.runs, h.endpoint
    );
    println!(
        "{:<14} {:>12} {:>9} {:>9} {:>9}",
        "function", "bytes", "min ms", "median ms", "max ms"
    );
    for function in FUNCTIONS {
        let binary = args.bin_dir.join(function);
        let env = environment(function, &h);
        let figures = measure(function, &binary, &env, args.runs).await?;
        println!(
            "{:<14} {:>12} {:>9.2} {:>9.2} {:>9.2}",
            figures.function,
            figures.bytes,
            ms(figures.min),
            ms(figures.median),
            ms(figures.max)
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn plan(i: usize) -> Plan {
    Plan {
        name: format!("plan-{i}"),
        limits: [(Window::Day, 1_500), (Window::Month, 30_000)]
            .into_iter()
            .map(|(window, limit)| Limit {
                meter: MeterName::requests(),
                window,
                limit: limit * (i as u64 + 1),
            })
            .collect(),
        overage: OveragePolicy::Hard,
        failure: Default::default(),
    }
}

/// The variables `function` reads in Lambda, aimed at the harness's tables.
fn environment(function: &str, h: &Harness) -> Vec<(String, String)> {
    let mut env = vec![
        ("AWS_ENDPOINT_URL_DYNAMODB", h.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("AWS_REGION", "local-a".to_owned()),
        ("TOLLGATE_REGION", "local-a".to_owned()),
        ("TOLLGATE_KEYS_TABLE", h.tables.keys.clone()),
        ("TOLLGATE_USAGE_TABLE", h.tables.usage.clone()),
        ("TOLLGATE_IDEMPOTENCY_TABLE", h.tables.idempotency.clone()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
    ];
    if function == "quota-sync" {
        env.push(("TOLLGATE_PEER_REGIONS", "local-b,local-c".to_owned()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Starts `binary` `runs` times; the figures.
async fn measure(
    function: &'static str,
    binary: &Path,
    env: &[(String, String)],
    runs: usize,
) -> Result<Figures> {
    let bytes = std::fs::metadata(binary)
        .with_context(|| {
            format!(
                "{} (build it first: scripts/start-time.sh)",
                binary.display()
            )
        })?
        .len();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (binary, env) = (binary.to_owned(), env.to_owned());
        let took = tokio::task::spawn_blocking(move || start_once(&binary, &env))
            .await
            .context("the start-up thread")??;
        times.push(took);
    }
    times.sort();
    Ok(Figures {
        function,
        bytes,
        min: times[0],
        median: median(&times),
        max: times[times.len() - 1],
    })
}

/// The median of sorted `times` (the mean of the middle two for an even count).
fn median(times: &[Duration]) -> Duration {
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2
    }
}

/// One start: process spawn to the first `next` call.
fn start_once(binary: &Path, env: &[(String, String)]) -> Result<Duration> {
    let api = RuntimeApi::start();
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "start-time")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let first = api.wait_first_next(TIMEOUT);
    let init_error = api.init_error();
    let _ = child.kill();
    let _ = child.wait();
    api.stop();
    match (first, init_error) {
        (_, Some(e)) => bail!("{} reported an init error: {e}", binary.display()),
        (Some(at), None) => Ok(at.saturating_duration_since(started)),
        (None, None) => bail!(
            "{} did not ask for an event within {TIMEOUT:?}",
            binary.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let d = Duration::from_millis;
        assert_eq!(median(&[d(1), d(2), d(9)]), d(2));
        assert_eq!(median(&[d(1), d(3), d(5), d(9)]), d(4));
        assert_eq!(median(&[d(7)]), d(7));
    }
}
