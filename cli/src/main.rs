//! `tollgate`, the operator CLI: tables, plans, keys, usage, blocks.
//! (The local-only tools, demo, cost harness and stream pump, are
//! `tollgate-dev`, in `dev/`.)
//!
//! It talks to DynamoDB through the standard AWS configuration (profile,
//! environment, `--region`); `AWS_ENDPOINT_URL_DYNAMODB` points it at
//! DynamoDB Local.

mod blocks;
mod export;
mod keys;
mod meters;
mod plans;
mod recompute;
mod replay;
mod stack;
mod tables;
mod usage;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Operate tollgate's tables, plans, keys and usage.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
struct Cli {
    /// The AWS region (or DynamoDB Local region name) to act on.
    #[arg(long, global = true, env = "AWS_REGION")]
    region: Option<String>,
    /// The deployed stage whose tables to use (`tollgate-keys-<stage>`, ...,
    /// as template.yaml names them). Without it: `TOLLGATE_*_TABLE`, else
    /// `tollgate-keys`, ... (local runs).
    #[arg(long, global = true, env = "TOLLGATE_STAGE")]
    stage: Option<String>,
    /// A deployed stack: table names (and the dead-letter queue) from its
    /// outputs. Wins over --stage.
    #[arg(long, global = true, env = "TOLLGATE_STACK")]
    stack: Option<String>,
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
    /// Write one billing record per customer, meter and period (stripe, csv or ndjson).
    Export(export::ExportArgs),
    /// Reprocess what the log-processor's dead-letter queue holds, exactly once.
    Replay(replay::ReplayArgs),
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
    let target = stack::Target::from_args(cli.stage.clone(), cli.stack.clone())?;
    let (names, outputs) = stack::resolve(&target, cli.region.as_deref()).await?;
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
        Command::Export(args) => export::run(&client, &names, args).await,
        Command::Replay(args) => replay::run(cli.region.as_deref(), &outputs, args).await,
    }
}
