//! `tollgate blocks list|clear`: the limits identities have reached.
//!
//! quota-sync writes a block when a hard limit is reached; it expires with
//! its period (TTL). `clear` lifts every block of one identity at once, for
//! example after a plan upgrade (the authorizer sees it within its cache time).

use anyhow::{Context, Result};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use tollgate_core::{Block, Identity, UnixMillis};
use tollgate_store::{KeysStore, TableNames};

#[derive(Debug, Subcommand)]
pub enum BlocksCommand {
    /// List the identities with current blocks (a Scan of the Keys table).
    List {
        /// Also list blocks whose period is over (not yet removed by TTL).
        #[arg(long)]
        all: bool,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove every block of one identity (`key:<id>`, `ip:<addr>`, `referer:<host>`).
    Clear {
        #[arg(long)]
        identity: String,
    },
}

pub async fn run(client: &Client, names: &TableNames, command: BlocksCommand) -> Result<()> {
    let store = KeysStore::new(client.clone(), names.keys.clone());
    let now = Utc::now().timestamp_millis();
    match command {
        BlocksCommand::List { all, json } => {
            let blocks = list_blocks(&store, now, all).await?;
            if json {
                println!("{}", render_list_json(&blocks, now));
            } else {
                print!("{}", render_list(&blocks, now));
            }
        }
        BlocksCommand::Clear { identity } => {
            let identity = clear_blocks(&store, &identity).await?;
            println!("cleared every block of {identity}");
        }
    }
    Ok(())
}

/// Every (identity, block), current ones only unless `all`, sorted.
pub async fn list_blocks(
    store: &KeysStore,
    now: UnixMillis,
    all: bool,
) -> Result<Vec<(Identity, Block)>> {
    let mut rows: Vec<(Identity, Block)> = store
        .list_blocks()
        .await
        .context("listing blocks")?
        .into_iter()
        .flat_map(|(id, blocks)| blocks.into_iter().map(move |b| (id.clone(), b)))
        .filter(|(_, b)| all || b.is_current(now))
        .collect();
    rows.sort_by(|a, b| {
        (a.0.to_string(), &a.1.meter, a.1.period).cmp(&(b.0.to_string(), &b.1.meter, b.1.period))
    });
    Ok(rows)
}

/// Parses `identity` and removes its blocks.
pub async fn clear_blocks(store: &KeysStore, identity: &str) -> Result<Identity> {
    let identity: Identity = identity.parse()?;
    store
        .clear_blocks(&identity)
        .await
        .with_context(|| format!("clearing the blocks of {identity}"))?;
    Ok(identity)
}

/// When `b`'s period ends (RFC 3339, seconds).
fn resets(b: &Block) -> String {
    DateTime::<Utc>::from_timestamp_millis(b.period.end())
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// One block as JSON: `{"meter","period","used","limit","resets"}`.
pub fn block_json(b: &Block) -> serde_json::Value {
    serde_json::json!({
        "meter": b.meter.as_str(),
        "period": b.period.to_string(),
        "used": b.used,
        "limit": b.limit,
        "resets": resets(b),
    })
}

/// `blocks list --json`: one object per block, with its `identity` and
/// whether its period is `current`.
pub fn render_list_json(rows: &[(Identity, Block)], now: UnixMillis) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|(id, b)| {
            let mut v = block_json(b);
            v["identity"] = serde_json::Value::String(id.to_string());
            v["current"] = serde_json::Value::Bool(b.is_current(now));
            v
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

pub fn render_list(rows: &[(Identity, Block)], now: UnixMillis) -> String {
    if rows.is_empty() {
        return "no blocks\n".to_owned();
    }
    let ids: Vec<String> = rows.iter().map(|(i, _)| i.to_string()).collect();
    let width = ids.iter().map(String::len).max().unwrap_or(8).max(8);
    let mut out = format!(
        "{:<width$}  {:<10}  {:<24}  {:>12}  RESETS\n",
        "IDENTITY", "METER", "PERIOD", "USED/LIMIT"
    );
    for ((_, b), id) in rows.iter().zip(&ids) {
        out.push_str(&format!(
            "{id:<width$}  {:<10}  {:<24}  {:>12}  {}{}\n",
            b.meter.as_str(),
            b.period.to_string(),
            format!("{}/{}", b.used, b.limit),
            resets(b),
            if b.is_current(now) { "" } else { " (over)" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tollgate_core::{MeterName, Window};
    use tollgate_tests::Harness;

    // In the future: DynamoDB Local's TTL sweeper deletes blocks by the wall clock.
    const NOW: UnixMillis = 1_921_496_707_000;

    fn block(window: Window, at: UnixMillis, used: u64) -> Block {
        Block {
            meter: MeterName::requests(),
            period: window.period_of(at).unwrap(),
            limit: used,
            used,
        }
    }

    #[tokio::test]
    async fn lists_and_clears_blocks() {
        let h = Harness::new("cliblocks").await;
        let store = KeysStore::new(h.client(), h.tables.keys.clone());
        assert!(list_blocks(&store, NOW, false).await.unwrap().is_empty());
        assert_eq!(render_list(&[], NOW), "no blocks\n");

        let ip: Identity = "ip:203.0.113.10".parse().unwrap();
        let key: Identity = "key:k_0123456789abcdef".parse().unwrap();
        store
            .put_block(&ip, &block(Window::Day, NOW, 100))
            .await
            .unwrap();
        store
            .put_block(&key, &block(Window::Month, NOW, 30_000))
            .await
            .unwrap();
        // Yesterday's block: over, shown only with --all.
        store
            .put_block(&key, &block(Window::Day, NOW - 86_400_000, 1500))
            .await
            .unwrap();

        let current = list_blocks(&store, NOW, false).await.unwrap();
        assert_eq!(current.len(), 2);
        let table = render_list(&current, NOW);
        assert!(table.contains("ip:203.0.113.10"), "{table}");
        assert!(table.contains("day#2030-11-21"), "{table}");
        assert!(table.contains("30000/30000"), "{table}");
        assert!(table.contains("2030-12-01T00:00:00Z"), "{table}");
        let all = list_blocks(&store, NOW, true).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(render_list(&all, NOW).contains("(over)"));
        let json: serde_json::Value = serde_json::from_str(&render_list_json(&all, NOW)).unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().filter(|r| r["current"] == false).count(), 1);
        let ip_row = rows
            .iter()
            .find(|r| r["identity"] == "ip:203.0.113.10")
            .unwrap();
        assert_eq!(ip_row["meter"], "requests");
        assert_eq!(ip_row["used"], ip_row["limit"]);
        assert_eq!(render_list_json(&[], NOW), "[]");

        // Clearing normalises the identity text.
        let cleared = clear_blocks(&store, "ip:::ffff:203.0.113.10")
            .await
            .unwrap();
        assert_eq!(cleared, ip);
        let left = list_blocks(&store, NOW, true).await.unwrap();
        assert!(left.iter().all(|(i, _)| i == &key));
        assert!(clear_blocks(&store, "user:x").await.is_err());
        // Clearing an identity without blocks is fine.
        clear_blocks(&store, "referer:example.com").await.unwrap();
    }
}
