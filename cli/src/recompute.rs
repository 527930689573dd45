//! `tollgate recompute-blocks`: after plans change (an upgrade, a
//! downgrade, a switch to a soft plan), re-evaluate blocks against the
//! current plans and global usage, in each region: blocks no longer
//! justified are removed, missing or changed ones written.

use anyhow::{Context, Result};
use clap::Args;
use tollgate_app::recompute::{recompute, BlockChange, Scope};
use tollgate_core::Identity;
use tollgate_store::{KeysStore, TableNames, UsageStore};

/// Options of `tollgate recompute-blocks`.
#[derive(Debug, Args)]
pub struct RecomputeArgs {
    /// Only this identity (`key:<id>`, `ip:<addr>`, `referer:<host>`);
    /// default: every identity with a block or with usage in a current period.
    #[arg(long)]
    identity: Option<String>,
    /// The regions to recompute in, comma-separated (default: --region).
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// The plan of identities without a key.
    #[arg(long, env = "TOLLGATE_ANONYMOUS_PLAN", default_value = "anonymous")]
    anonymous_plan: String,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Recomputes blocks in each region; prints one JSON line per block decision.
pub async fn run(region: Option<&str>, names: &TableNames, args: RecomputeArgs) -> Result<()> {
    let identity = args
        .identity
        .as_deref()
        .map(str::parse::<Identity>)
        .transpose()
        .context("--identity")?;
    let scope = Scope {
        identity,
        dry_run: args.dry_run,
    };
    let regions: Vec<Option<&str>> = if args.regions.is_empty() {
        vec![region]
    } else {
        args.regions.iter().map(|r| Some(r.as_str())).collect()
    };
    let now = chrono::Utc::now().timestamp_millis();
    for region in regions {
        let client = tollgate_store::client_from_env(region).await;
        let label = region.unwrap_or("(default region)");
        let report = recompute(
            &KeysStore::new(client.clone(), &names.keys),
            &UsageStore::new(client, &names.usage),
            &args.anonymous_plan,
            &scope,
            now,
        )
        .await
        .with_context(|| format!("recomputing blocks in {label}"))?;
        let line = |action: &str, c: &BlockChange| {
            serde_json::json!({
                "region": label,
                "action": action,
                "identity": c.identity.to_string(),
                "meter": c.block.meter.as_str(),
                "period": c.block.period.to_string(),
                "limit": c.block.limit,
                "used": c.block.used,
                "dry_run": args.dry_run,
            })
        };
        for (action, list) in [
            ("removed", &report.removed),
            ("written", &report.written),
            ("kept", &report.kept),
        ] {
            for change in list {
                println!("{}", line(action, change));
            }
        }
        eprintln!(
            "{label}: {} counters checked, {} blocks kept, {} written, {} removed{}",
            report.checked,
            report.kept.len(),
            report.written.len(),
            report.removed.len(),
            if args.dry_run { " (dry run)" } else { "" }
        );
    }
    Ok(())
}
