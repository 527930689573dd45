//! `tollgate tables create|describe`: the tables as `shared/store` defines them.

use anyhow::{Context, Result};
use aws_sdk_dynamodb::Client;
use clap::Subcommand;
use tollgate_store::{TableNames, TABLES};

#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// Create every table that does not exist yet (on-demand, TTL, streams).
    Create,
    /// Show each table's status, item count, stream and TTL.
    Describe,
}

pub async fn run(client: &Client, names: &TableNames, command: TablesCommand) -> Result<()> {
    match command {
        TablesCommand::Create => {
            for spec in TABLES {
                let name = names.name_of(&spec);
                let created = spec
                    .create(client, name)
                    .await
                    .with_context(|| format!("creating table {name}"))?;
                println!("{name}: {}", if created { "created" } else { "exists" });
            }
        }
        TablesCommand::Describe => {
            for spec in TABLES {
                let name = names.name_of(&spec);
                let out = client
                    .describe_table()
                    .table_name(name)
                    .send()
                    .await
                    .with_context(|| format!("describing table {name}"))?;
                let t = out.table().context("no table description")?;
                let ttl = client
                    .describe_time_to_live()
                    .table_name(name)
                    .send()
                    .await
                    .ok()
                    .and_then(|o| {
                        o.time_to_live_description()
                            .and_then(|d| d.attribute_name().map(str::to_owned))
                    });
                println!(
                    "{name}: status={} items={} stream={} ttl={}",
                    t.table_status().map_or("?", |s| s.as_str()),
                    t.item_count().unwrap_or(0),
                    t.latest_stream_arn().unwrap_or("none"),
                    ttl.as_deref().unwrap_or("none"),
                );
            }
        }
    }
    Ok(())
}
