//! `tollgate-dev`: what only runs on a developer's machine, against
//! DynamoDB Local: the demo (`make demo`), the cost harness (`make bench`),
//! the stream pump that stands in for quota-sync's event source mapping,
//! the generator of the sample events in `events/log-processor/`, and the
//! start-time measurement of the function binaries.
//!
//! It drives the real functions, in this process or as the binaries that
//! `cargo lambda watch` serves; nothing here ships in a Lambda function or
//! in the operator CLI `tollgate`.

mod bench;
mod ddb_proxy;
mod demo;
mod events;
mod gen_events;
mod invoke;
mod pump;
mod start_time;
mod workload;
mod write_cost;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tollgate_store::TableNames;

/// tollgate's local tools: demo, cost harness, stream pump, sample events.
#[derive(Debug, Parser)]
#[command(name = "tollgate-dev", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Play traffic across three simulated regions through the real functions (`make demo`).
    Demo(demo::DemoArgs),
    /// Benchmarks that drive the real functions.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Pump the Usage streams of simulated regions into quota-sync.
    Pump(pump::PumpArgs),
    /// Write the sample events of `events/log-processor/`.
    GenEvents(gen_events::GenEventsArgs),
    /// Time each function binary from process start to its first `next` call.
    StartTime(start_time::StartTimeArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// What tollgate costs per million calls, against the write-per-request design.
    Cost(bench::BenchArgs),
    /// The log-processor's write units per request, direct delivery, against one UpdateItem per request.
    WriteCost(write_cost::WriteCostArgs),
    /// A model of the hard-limit designs (blocks, leases, reserve) under the hazards of issue 18; no DynamoDB.
    Limits(bench::limits::LimitsArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Bench {
            command: BenchCommand::Cost(_)
        }
    ) {
        // The cost run counts the bytes the functions log (and still shows its own on stderr).
        bench::capture::install();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Bench {
            command: BenchCommand::Cost(args),
        } => bench::run(args).await,
        Command::Bench {
            command: BenchCommand::WriteCost(args),
        } => write_cost::run(args).await,
        Command::Bench {
            command: BenchCommand::Limits(args),
        } => bench::limits::run(&args),
        Command::Pump(args) => pump::run(&TableNames::from_env(), args).await,
        Command::GenEvents(args) => gen_events::run(&args),
        Command::StartTime(args) => start_time::run(args).await,
    }
}
