//! `tollgate tables create|describe`: the tables as `shared/store` defines them.

use anyhow::{Context, Result};
use aws_sdk_dynamodb::Client;
use clap::Subcommand;
use serde::Serialize;
use tollgate_store::{TableNames, TABLES};

#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// Create every table that does not exist yet (on-demand, TTL, streams).
    Create,
    /// Show each table's status, item count, stream and TTL.
    Describe {
        /// Print a JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// One table as `tables describe` tells it (`None`: no stream, no TTL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Described {
    pub table: String,
    pub status: String,
    pub items: i64,
    pub stream: Option<String>,
    pub ttl: Option<String>,
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
        TablesCommand::Describe { json } => {
            let mut rows = Vec::new();
            for spec in TABLES {
                rows.push(describe(client, names.name_of(&spec)).await?);
            }
            print!("{}", render(&rows, json));
        }
    }
    Ok(())
}

async fn describe(client: &Client, name: &str) -> Result<Described> {
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
    Ok(Described {
        table: name.to_owned(),
        status: t.table_status().map_or("?", |s| s.as_str()).to_owned(),
        items: t.item_count().unwrap_or(0),
        stream: t.latest_stream_arn().map(str::to_owned),
        ttl,
    })
}

/// One line per table, or (`json`) one JSON array.
pub fn render(rows: &[Described], json: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string(rows).unwrap_or_default());
    }
    rows.iter()
        .map(|d| {
            format!(
                "{}: status={} items={} stream={} ttl={}\n",
                d.table,
                d.status,
                d.items,
                d.stream.as_deref().unwrap_or("none"),
                d.ttl.as_deref().unwrap_or("none"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tollgate_tests::Harness;

    #[tokio::test]
    async fn describes_every_table_as_lines_or_json() {
        let h = Harness::new("clitables").await;
        let mut rows = Vec::new();
        for spec in TABLES {
            rows.push(
                describe(&h.client(), h.tables.name_of(&spec))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(rows.len(), TABLES.len());
        let usage = rows.iter().find(|d| d.table == h.tables.usage).unwrap();
        assert_eq!(usage.status, "ACTIVE");
        let lines = render(&rows, false);
        assert_eq!(lines.lines().count(), TABLES.len());
        assert!(
            lines.contains(&format!("{}: status=ACTIVE", h.tables.keys)),
            "{lines}"
        );
        let json: serde_json::Value = serde_json::from_str(&render(&rows, true)).unwrap();
        let tables: Vec<&str> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["table"].as_str().unwrap())
            .collect();
        assert_eq!(tables.len(), TABLES.len());
        assert!(tables.contains(&h.tables.usage.as_str()));
        assert_eq!(json[0]["status"], "ACTIVE");
        assert!(json[0]["items"].is_i64());
    }
}
