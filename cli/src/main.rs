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
use clap::{Parser, Subcommand, ValueEnum};

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
    /// How results are printed: tables for people, or JSON for scripts
    /// (what each command's `--json` prints).
    #[arg(long, global = true, value_enum, default_value_t = Output::Table, env = "TOLLGATE_OUTPUT")]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// `--output`: how results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Tables and lines for people (YAML for `plans show`).
    Table,
    /// JSON, as each command's `--json` flag prints it.
    Json,
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
    let mut cli = Cli::parse();
    if cli.output == Output::Json {
        json_output(&mut cli.command)?;
    }
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

/// `--output json`: turns on the `--json` flag of a command that has one;
/// a command that only prints status lines (or, for `export`, picks its
/// format with `--format`) refuses it.
fn json_output(command: &mut Command) -> Result<()> {
    use blocks::BlocksCommand;
    use keys::KeysCommand;
    use meters::MetersCommand;
    use plans::PlansCommand;
    use tables::TablesCommand;
    use usage::UsageCommand;
    let json = match command {
        Command::Meters {
            command: MetersCommand::List { json },
        }
        | Command::Plans {
            command: PlansCommand::List { json } | PlansCommand::Show { json, .. },
        }
        | Command::Keys {
            command:
                KeysCommand::Create { json, .. }
                | KeysCommand::List { json, .. }
                | KeysCommand::Show { json, .. },
        }
        | Command::Blocks {
            command: BlocksCommand::List { json, .. },
        }
        | Command::Tables {
            command: TablesCommand::Describe { json },
        }
        | Command::Usage {
            command: UsageCommand::Show { json, .. } | UsageCommand::Top { json, .. },
        } => json,
        Command::Replay(args) => &mut args.json,
        Command::Export(_) => anyhow::bail!("export prints billing records: pick them with --format (stripe, csv or ndjson), not --output"),
        _ => anyhow::bail!(
            "--output json is not available for this command; it is for meters list, plans list|show, keys create|list|show, blocks list, tables describe, usage show|top and replay"
        ),
    };
    *json = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tollgate").chain(args.iter().copied()))
    }

    #[test]
    fn output_json_is_each_commands_json_flag() {
        for args in [
            &["--output", "json", "meters", "list"][..],
            &["plans", "list", "--output", "json"],
            &["plans", "show", "pro", "--output", "json"],
            &[
                "--output", "json", "usage", "top", "--meter", "requests", "--period", "2026-11",
            ],
            &["--output", "json", "replay", "--dry-run"],
            &["--output", "json", "keys", "list", "--customer", "acme"],
            &[
                "--output",
                "json",
                "keys",
                "show",
                "--customer",
                "acme",
                "--key-id",
                "k1",
            ],
            &["--output", "json", "blocks", "list", "--all"],
            &["--output", "json", "tables", "describe"],
        ] {
            let mut cli = parse(args).unwrap();
            assert_eq!(cli.output, Output::Json, "{args:?}");
            json_output(&mut cli.command).unwrap();
            let text = format!("{:?}", cli.command);
            assert!(text.contains("json: true"), "{args:?}: {text}");
        }
        // --json itself still works, and table is the default.
        let cli = parse(&["meters", "list", "--json"]).unwrap();
        assert_eq!(cli.output, Output::Table);
        assert!(format!("{:?}", cli.command).contains("json: true"));
        // Commands without JSON output refuse it.
        for args in [
            &["--output", "json", "tables", "create"][..],
            &[
                "--output",
                "json",
                "blocks",
                "clear",
                "--identity",
                "ip:192.0.2.1",
            ],
        ] {
            let mut cli = parse(args).unwrap();
            assert!(json_output(&mut cli.command).is_err(), "{args:?}");
        }
        assert!(parse(&["--output", "yaml", "meters", "list"]).is_err());
    }

    #[test]
    fn enum_flags_are_checked_by_clap() {
        assert!(parse(&["meters", "put", "tokens", "--aggregation", "avg"]).is_err());
        assert!(parse(&["meters", "put", "tokens", "--aggregation", "max"]).is_ok());
        let top = [
            "usage",
            "top",
            "--meter",
            "requests",
            "--period",
            "2026-11-01",
            "--window",
        ];
        assert!(parse(&[&top[..], &["day"]].concat()).is_err());
        assert!(parse(&[&top[..], &["month"]].concat()).is_ok());
        let show = [
            "usage",
            "show",
            "--identity",
            "ip:192.0.2.1",
            "--meter",
            "requests",
            "--window",
        ];
        assert!(parse(&[&show[..], &["minute"]].concat()).is_err());
        assert!(parse(&[&show[..], &["hour"]].concat()).is_ok());
    }

    #[test]
    fn enum_values_are_the_names_the_parsers_take() {
        use clap::ValueEnum;
        for a in meters::AggregationArg::value_variants() {
            assert!(a.as_str().parse::<tollgate_core::Aggregation>().is_ok());
            let name = a.to_possible_value().unwrap();
            assert_eq!(name.get_name(), a.as_str());
        }
        for w in usage::UsageWindow::value_variants() {
            let window: tollgate_core::Window = w.as_str().parse().unwrap();
            assert!(tollgate_app::usage::QUERY_WINDOWS.contains(&window));
            assert_eq!(w.to_possible_value().unwrap().get_name(), w.as_str());
        }
        assert_eq!(
            usage::UsageWindow::value_variants().len(),
            tollgate_app::usage::QUERY_WINDOWS.len()
        );
        for w in usage::TopWindow::value_variants() {
            let window: tollgate_core::Window = w.as_str().parse().unwrap();
            assert!(tollgate_store::usage::TOP_WINDOWS.contains(&window));
            assert_eq!(w.to_possible_value().unwrap().get_name(), w.as_str());
        }
        assert_eq!(
            usage::TopWindow::value_variants().len(),
            tollgate_store::usage::TOP_WINDOWS.len()
        );
    }
}
