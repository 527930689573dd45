//! `tollgate`, the operator CLI: tables, plans, keys, usage.
//!
//! It talks to DynamoDB through the standard AWS configuration (profile,
//! environment, `--region`); `AWS_ENDPOINT_URL_DYNAMODB` points it at
//! DynamoDB Local.

mod blocks;
mod keys;
mod meters;
mod plans;
mod pump;
mod recompute;
mod sim;
mod tables;
mod usage;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tollgate_store::TableNames;

/// Operate tollgate's tables, plans, keys and usage.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
struct Cli {
    /// The AWS region (or DynamoDB Local region name) to act on.
    #[arg(long, global = true, env = "AWS_REGION")]
    region: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Define or list the meters that ingest accepts events for.
    Meters {
        #[command(subcommand)]
        command: meters::MetersCommand,
    },
    /// Show an identity's usage, or the top identities of a period.
    Usage {
        #[command(subcommand)]
        command: usage::UsageCommand,
    },
    /// Create or describe tollgate's DynamoDB tables.
    Tables {
        #[command(subcommand)]
        command: tables::TablesCommand,
    },
    /// Put, list or show plans (limits per meter and window, overage and failure policies).
    Plans {
        #[command(subcommand)]
        command: plans::PlansCommand,
    },
    /// Create, revoke, list or show customers' API keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// List or clear the blocks of identities that reached a hard limit.
    Blocks {
        #[command(subcommand)]
        command: blocks::BlocksCommand,
    },
    /// Re-evaluate blocks against the current plans and global usage (after a plan change).
    RecomputeBlocks(recompute::RecomputeArgs),
    /// Play traffic across three simulated regions through the real functions (`make demo`).
    Demo(sim::demo::DemoArgs),
    /// Benchmarks that drive the real functions.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Local runs: the stream pump that feeds quota-sync from DynamoDB Local.
    Local {
        #[command(subcommand)]
        command: pump::LocalCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// What tollgate costs per million calls, against the write-per-request design.
    Cost(sim::bench::BenchArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    tollgate_store::install_bucket_secret_from_env().context("reading the bucket secret")?;
    let client = tollgate_store::client_from_env(cli.region.as_deref()).await;
    let names = TableNames::from_env();
    match cli.command {
        Command::Meters { command } => meters::run(&client, &names, command).await,
        Command::Usage { command } => {
            usage::run(&client, &names, cli.region.as_deref(), command).await
        }
        Command::Tables { command } => tables::run(&client, &names, command).await,
        Command::Plans { command } => plans::run(&client, &names, command).await,
        Command::Keys { command } => keys::run(&client, &names, command).await,
        Command::Blocks { command } => blocks::run(&client, &names, command).await,
        Command::RecomputeBlocks(args) => recompute::run(cli.region.as_deref(), &names, args).await,
        Command::Local { command } => pump::run(&names, command).await,
        Command::Demo(args) => sim::demo::run(args).await,
        Command::Bench {
            command: BenchCommand::Cost(args),
        } => sim::bench::run(args).await,
    }
}
