//! `tollgate usage show|top`: the same queries as `GET /v1/usage` and
//! `GET /v1/usage/top`, through the same use cases (`tollgate_app`).

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::Client;
use clap::{Subcommand, ValueEnum};
use tollgate_app::top::{parse_top_query, top, TopReport};
use tollgate_app::usage::{parse_usage_query, query_usage, Source, UsageReport};
use tollgate_core::{Aggregation, MeterName, Region};
use tollgate_store::{KeysStore, TableNames, UsageStore};

/// `usage show --window`: the windows usage can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UsageWindow {
    Hour,
    Day,
    Month,
}

impl UsageWindow {
    /// The query parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageWindow::Hour => "hour",
            UsageWindow::Day => "day",
            UsageWindow::Month => "month",
        }
    }
}

/// `usage top --window`: the windows the top index holds
/// (`tollgate_store::usage::TOP_WINDOWS`: months only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopWindow {
    Month,
}

impl TopWindow {
    /// The query parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            TopWindow::Month => "month",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// One identity's usage of a meter, period by period, summed over regions.
    Show {
        /// Who: key:<id>, ip:<addr> or referer:<host>.
        #[arg(long)]
        identity: String,
        /// The meter.
        #[arg(long)]
        meter: String,
        /// hour, day or month.
        #[arg(long, value_enum, default_value_t = UsageWindow::Day)]
        window: UsageWindow,
        /// The first period: a label (2026-11-01), a date, an RFC 3339 time or epoch ms.
        #[arg(long)]
        from: Option<String>,
        /// The last period (default: the current one).
        #[arg(long)]
        to: Option<String>,
        /// Show each region's value.
        #[arg(long)]
        regions: bool,
        /// Every region of the deployment: each region's own items are read
        /// from its own table (default: TOLLGATE_REGIONS; none: only this
        /// region's table, which then must hold every region's copies).
        #[arg(long, value_delimiter = ',', env = "TOLLGATE_REGIONS")]
        deployment: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The identities with the largest usage of a meter in one period.
    Top {
        /// The meter.
        #[arg(long)]
        meter: String,
        /// month (the top index holds month periods only).
        #[arg(long, value_enum, default_value_t = TopWindow::Month)]
        window: TopWindow,
        /// The period label (2026-11 for a month, 2026-11-21 for a day).
        #[arg(long)]
        period: String,
        /// How many identities.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Every region of the deployment (default: TOLLGATE_REGIONS, else --region).
        #[arg(long, value_delimiter = ',', env = "TOLLGATE_REGIONS")]
        regions: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(
    client: &Client,
    names: &TableNames,
    region: Option<&str>,
    command: UsageCommand,
) -> Result<()> {
    let store = UsageStore::new(client.clone(), names.usage.clone());
    match command {
        UsageCommand::Show {
            identity,
            meter,
            window,
            from,
            to,
            regions,
            deployment,
            json,
        } => {
            let deployment = parse_regions(&deployment, None)?;
            let stores = region_stores(&deployment, names).await;
            let sources: Vec<Source<'_>> = if stores.is_empty() {
                vec![Source {
                    store: &store,
                    region: None,
                }]
            } else {
                stores
                    .iter()
                    .map(|(region, store)| Source {
                        store,
                        region: Some(region),
                    })
                    .collect()
            };
            let params = [
                ("identity", Some(identity)),
                ("meter", Some(meter)),
                ("window", Some(window.as_str().to_owned())),
                ("from", from),
                ("to", to),
                ("regions", Some(regions.to_string())),
                (
                    "limit",
                    Some(tollgate_app::usage::MAX_PAGE_PERIODS.to_string()),
                ),
            ];
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, v)| v.clone())
            };
            let now = chrono::Utc::now().timestamp_millis();
            let mut query = parse_usage_query(get, now)?;
            let mut report: Option<UsageReport> = None;
            loop {
                let page = query_usage(&sources, &query)
                    .await
                    .context("reading usage")?;
                query.next = page.next.clone();
                match report.as_mut() {
                    Some(r) => r.periods.extend(page.periods),
                    None => report = Some(page),
                }
                if query.next.is_none() {
                    break;
                }
            }
            let Some(mut report) = report else {
                bail!("no answer")
            };
            report.next = None;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_usage(&report));
            }
        }
        UsageCommand::Top {
            meter,
            window,
            period,
            limit,
            regions,
            json,
        } => {
            let params = [
                ("meter", meter),
                ("window", window.as_str().to_owned()),
                ("period", period),
                ("limit", limit.to_string()),
            ];
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            };
            let query = parse_top_query(get)?;
            let all = parse_regions(&regions, region)?;
            if all.is_empty() {
                bail!("name the deployment's regions with --regions (or TOLLGATE_REGIONS)");
            }
            let stores = region_stores(&all, names).await;
            let lists: Vec<(Region, &UsageStore)> =
                stores.iter().map(|(r, s)| (r.clone(), s)).collect();
            let aggregation = aggregation_of(client, names, &query.meter).await?;
            let report = top(&lists, aggregation, &query)
                .await
                .context("reading the top list")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_top(&report));
            }
        }
    }
    Ok(())
}

/// The regions named (and `extra`), checked, without repeats.
fn parse_regions(names: &[String], extra: Option<&str>) -> Result<Vec<Region>> {
    let mut all: Vec<Region> = Vec::new();
    for r in names.iter().map(String::as_str).chain(extra) {
        let r = Region::new(r.trim())?;
        if !all.contains(&r) {
            all.push(r);
        }
    }
    Ok(all)
}

/// Each region's Usage table, through a client for that region.
async fn region_stores(regions: &[Region], names: &TableNames) -> Vec<(Region, UsageStore)> {
    let list: Vec<&str> = regions.iter().map(Region::as_str).collect();
    let clients = tollgate_store::client::clients_for_regions(&list).await;
    regions
        .iter()
        .cloned()
        .zip(clients)
        .map(|(r, c)| (r, UsageStore::new(c, names.usage.clone())))
        .collect()
}

async fn aggregation_of(
    client: &Client,
    names: &TableNames,
    meter: &MeterName,
) -> Result<Aggregation> {
    if meter.as_str() == MeterName::REQUESTS {
        return Ok(Aggregation::Count);
    }
    let keys = KeysStore::new(client.clone(), names.keys.clone());
    keys.list_meters()
        .await
        .context("reading the meters")?
        .into_iter()
        .find(|m| &m.name == meter)
        .map(|m| m.aggregation)
        .with_context(|| format!("unknown meter {meter}: define it with `tollgate meters put`"))
}

/// A usage report as a table.
pub fn render_usage(r: &UsageReport) -> String {
    let mut out = format!("{} {} per {}\n", r.identity, r.meter, r.window);
    out.push_str(&format!("{:<14} {:>16}  REGIONS\n", "PERIOD", "TOTAL"));
    for p in &r.periods {
        let regions = p
            .regions
            .as_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        out.push_str(&format!("{:<14} {:>16}  {regions}\n", p.period, p.total));
    }
    if r.periods.is_empty() {
        out.push_str("(no usage in these periods)\n");
    }
    out
}

/// A top list as a table.
pub fn render_top(r: &TopReport) -> String {
    let mut out = format!(
        "top {} by {} in {} {}\n",
        r.top.len(),
        r.meter,
        r.window,
        r.period
    );
    out.push_str(&format!(
        "{:>4}  {:<40} {:>16}\n",
        "RANK", "IDENTITY", "TOTAL"
    ));
    for e in &r.top {
        out.push_str(&format!(
            "{:>4}  {:<40} {:>16}\n",
            e.rank, e.identity, e.total
        ));
    }
    if !r.complete {
        out.push_str("(incomplete: the read limit was reached)\n");
    }
    out
}
