//! `tollgate`, the operator CLI: tables, plans, keys, usage.
//!
//! It talks to DynamoDB through the standard AWS configuration (profile,
//! environment, `--region`); `AWS_ENDPOINT_URL_DYNAMODB` points it at
//! DynamoDB Local.

mod tables;

use anyhow::Result;
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
    /// Create or describe tollgate's DynamoDB tables.
    Tables {
        #[command(subcommand)]
        command: tables::TablesCommand,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let client = tollgate_store::client_from_env(cli.region.as_deref()).await;
    let names = TableNames::from_env();
    match cli.command {
        Command::Tables { command } => tables::run(&client, &names, command).await,
    }
}
