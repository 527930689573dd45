//! The demo's report: when each region started denying, the usage each
//! region sees, the duplicates ignored, the DynamoDB requests made.

use anyhow::Result;
use tollgate_core::{CounterKey, MeterName, Window};
use tollgate_store::{local_client, TableNames, UsageStore};

use super::{Client, DemoArgs, Play};
use crate::ddb_proxy;

/// Prints what happened: when each region started denying, the usage each
/// region sees, the duplicates ignored and the DynamoDB requests made.
pub(super) async fn report(
    args: &DemoArgs,
    names: &TableNames,
    endpoint: &str,
    clients: &[Client],
    play: &Play,
    counts: &ddb_proxy::Counts,
) -> Result<()> {
    let (tally, log_summaries, meters) = (&play.tally, &play.log_summaries, play.meters);
    println!("\n== When each region started denying ==");
    for c in clients {
        for region in &args.regions {
            match tally
                .first_denial
                .get(&(region.clone(), c.identity.to_string()))
            {
                Some((round, secs, reason)) => println!(
                    "  {:<32} {region}: from round {round} ({secs:.1} s), reason {reason}",
                    c.label
                ),
                None => println!("  {:<32} {region}: never denied", c.label),
            }
        }
    }

    println!("\n== Usage today (requests), as each region's Usage table sees it ==");
    let today = Window::Day.period_of(chrono::Utc::now().timestamp_millis())?;
    let mut header = format!("  {:<32} {:>6}", "identity", "limit");
    for r in &args.regions {
        header.push_str(&format!(" {:>22}", format!("{r} view (sum)")));
    }
    header.push_str(&format!(" {:>8}", "global"));
    println!("{header}");
    println!("  (a region's view holds its own item and the copies quota-sync made: only counters near a hard limit are copied; global = each region's own item, summed, as GET /v1/usage reads it)");
    for c in clients {
        let counter = CounterKey {
            meter: MeterName::requests(),
            identity: c.identity.clone(),
            period: today,
        };
        let mut row = format!(
            "  {:<32} {:>6}",
            c.label,
            c.limit.map_or("soft".into(), |l| l.to_string())
        );
        let mut global = 0;
        for region in &args.regions {
            let usage = UsageStore::new(local_client(endpoint, region), &names.usage);
            let per_region = usage.regions_of(&counter).await?;
            let parts: Vec<String> = per_region.values().map(u64::to_string).collect();
            let total: u64 = per_region.values().sum();
            global += tollgate_core::Region::new(region)
                .ok()
                .and_then(|r| per_region.get(&r).copied())
                .unwrap_or(0);
            row.push_str(&format!(
                " {:>22}",
                format!("{} ({total})", parts.join("+"))
            ));
        }
        row.push_str(&format!(" {global:>8}"));
        println!("{row}");
    }
    let allowed: u64 = tally.allowed.values().sum();
    let denied: u64 = tally.denied.values().sum();
    println!(
        "  (allowed calls in total: {allowed}; denied: {denied}; denied calls are not counted)"
    );

    println!("\n== Duplicates ignored ==");
    for s in log_summaries {
        println!("  {s}");
    }
    println!(
        "  meter events: {} accepted, {} duplicate (ignored), {} rejected",
        meters.0, meters.1, meters.2
    );

    println!("\n== DynamoDB requests made by the functions (through the counting proxy) ==");
    let snapshot = counts.lock().map(|m| m.clone()).unwrap_or_default();
    let mut total_w = 0.0;
    let mut total_r = 0.0;
    for ((region, op), u) in &snapshot {
        if op.contains("Describe") || op.contains("Create") || op.contains("TimeToLive") {
            continue;
        }
        println!(
            "  {region:<10} {op:<20} {:>5} requests  {:>7.1} RCU  {:>7.1} WCU",
            u.requests, u.read_units, u.write_units
        );
        total_w += u.write_units;
        total_r += u.read_units;
    }
    let calls = (allowed + denied).max(1) as f64;
    println!(
        "  total: {total_r:.1} read units, {total_w:.1} write units for {} calls = {:.2} WCU per call \
         (a write-per-request design with copies to {} peers: {} WCU per counted call)",
        allowed + denied,
        total_w / calls,
        args.regions.len() - 1,
        args.regions.len()
    );
    Ok(())
}
