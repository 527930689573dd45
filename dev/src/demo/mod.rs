//! `tollgate-dev demo`: plays realistic traffic across three simulated regions
//! through the real function binaries (served by `cargo lambda watch`) on
//! DynamoDB Local, and prints what happened. `scripts/demo.sh` starts the
//! servers; this drives them.

mod report;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use log_processor::ACCESS_LOG_FORMAT;
use serde_json::{json, Value};
use tollgate_core::{
    Aggregation, ApiKey, Identity, KeyRecord, KeyStatus, MeterDef, MeterName, Plan,
};
use tollgate_store::{local_client, KeysStore, TableNames, TABLES};
use tollgate_testkit::cloudwatch::{direct_event, event_id, payload_json, Event};
use tollgate_testkit::pump::{Invoke, PumpOptions, RegionPump};
use tollgate_testkit::streams::{local_reader, StartPosition};
use tollgate_testkit::traffic::{access_line, Request};

use crate::ddb_proxy;
use crate::events::{authorizer_allowed, authorizer_request, ingest_request};
use crate::invoke::InvokeClient;

/// Settings of a demo run.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Simulated regions (DynamoDB Local region names).
    #[arg(long, value_delimiter = ',', default_value = "local-a,local-b,local-c")]
    pub regions: Vec<String>,
    /// The `cargo lambda watch` server of each region, in the same order.
    #[arg(long, value_delimiter = ',')]
    pub function_urls: Vec<String>,
    /// The loopback port of the counting DynamoDB proxy the functions use.
    #[arg(long)]
    pub proxy_port: u16,
    /// Rounds of traffic.
    #[arg(long, default_value_t = 14)]
    pub rounds: u32,
    /// Pause between rounds, in milliseconds.
    #[arg(long, default_value_t = 600)]
    pub pause_ms: u64,
}

const STARTER_DAILY: u64 = 40;
const ANONYMOUS_DAILY: u64 = 12;

fn plans() -> Result<Vec<Plan>> {
    Ok(vec![
        serde_json::from_value(json!({"name": "starter", "overage": "hard", "limits": [
            {"meter": "requests", "window": "day", "limit": STARTER_DAILY},
            {"meter": "requests", "window": "month", "limit": 1000},
            {"meter": "tokens", "window": "month", "limit": 100000}]}))?,
        serde_json::from_value(json!({"name": "pro-soft", "overage": "soft", "limits": [
            {"meter": "requests", "window": "day", "limit": 10}]}))?,
        serde_json::from_value(json!({"name": "anonymous", "overage": "hard", "limits": [
            {"meter": "requests", "window": "day", "limit": ANONYMOUS_DAILY}]}))?,
    ])
}

/// One simulated client.
struct Client {
    label: &'static str,
    key: Option<ApiKey>,
    identity: Identity,
    ip: &'static str,
    calls_per_round: u32,
    limit: Option<u64>,
}

#[derive(Default)]
struct Tally {
    allowed: BTreeMap<(String, String), u64>,
    denied: BTreeMap<(String, String), u64>,
    first_denial: BTreeMap<(String, String), (u32, f64, String)>,
}

/// What the rounds saw, for the report.
#[derive(Default)]
struct Play {
    tally: Tally,
    /// The calls made so far (request ids and log event ids).
    seq: u64,
    /// Log batches delivered twice, and what the log-processor said.
    log_summaries: Vec<String>,
    /// Meter events (accepted, duplicate, rejected).
    meters: (u64, u64, u64),
    /// The last meter-event request, posted again as a client retry.
    previous_meter_batch: Option<(usize, String)>,
}

/// One region's functions, served by `cargo lambda watch`.
struct Region<'a> {
    name: &'a str,
    invokers: Invokers,
    pump: RegionPump,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<()> {
    if args.regions.len() != args.function_urls.len() {
        bail!("give one --function-urls entry per region");
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .context("AWS_ENDPOINT_URL_DYNAMODB must point at DynamoDB Local")?;
    let names = TableNames::from_env();
    let (_, counts) = ddb_proxy::start_on(&endpoint, args.proxy_port).await?;

    println!(
        "\n== Set-up: tables, plans, keys in {} regions ==",
        args.regions.len()
    );
    let clients = clients();
    set_up(&args.regions, &endpoint, &names, &clients).await?;
    for c in &clients {
        println!("  {:<32} identity {}", c.label, c.identity);
    }
    let mut regions = connect(&args, &endpoint, &names).await?;

    println!("\n== Traffic: {} rounds; each round's access logs are delivered as a CloudWatch Logs subscription event ==", args.rounds);
    let started = Instant::now();
    let mut play = Play::default();
    for round in 1..=args.rounds {
        play_round(round, &mut regions, &clients, started, &mut play).await?;
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }

    report::report(&args, &names, &endpoint, &clients, &play, &counts).await
}

/// The simulated clients: two customers' keys and two anonymous IPs.
fn clients() -> Vec<Client> {
    vec![
        client(
            "acme (starter, hard 40/day)",
            Some(random_key()),
            "192.0.2.10",
            6,
            Some(STARTER_DAILY),
        ),
        client(
            "globex (pro-soft, soft 10/day)",
            Some(random_key()),
            "192.0.2.20",
            2,
            None,
        ),
        client(
            "anonymous heavy IP",
            None,
            "203.0.113.7",
            2,
            Some(ANONYMOUS_DAILY),
        ),
        client(
            "anonymous light IP",
            None,
            "198.51.100.4",
            1,
            Some(ANONYMOUS_DAILY),
        ),
    ]
}

/// Creates the tables, plans, the `tokens` meter and the clients' keys in
/// every region (keys are copied to every region at signup).
async fn set_up(
    regions: &[String],
    endpoint: &str,
    names: &TableNames,
    clients: &[Client],
) -> Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    for region in regions {
        let ddb = local_client(endpoint, region);
        for spec in TABLES {
            spec.create(&ddb, names.name_of(&spec)).await?;
        }
        let keys = KeysStore::new(ddb, &names.keys);
        for plan in plans()? {
            keys.put_plan(&plan).await?;
        }
        keys.put_meter(&MeterDef {
            name: MeterName::new("tokens")?,
            aggregation: Aggregation::Sum,
            unit: "tokens".into(),
            value_path: None,
        })
        .await?;
        for c in clients {
            if let Some(key) = &c.key {
                let plan = if c.label.starts_with("acme") {
                    "starter"
                } else {
                    "pro-soft"
                };
                let customer = c.label.split_whitespace().next().unwrap_or("customer");
                let record = KeyRecord {
                    key_id: key.key_id(),
                    customer: customer.into(),
                    plan: plan.into(),
                    status: KeyStatus::Active,
                    expires_at: None,
                    valid_until: None,
                };
                if let Err(e) = keys.create_key(&key.digest(), &record, now).await {
                    tracing::debug!("key exists already: {e}");
                }
            }
        }
    }
    Ok(())
}

/// Each region's functions through its `cargo lambda watch` server, and a
/// stream pump feeding its quota-sync, started at the current end of the
/// region's Usage stream.
async fn connect<'a>(
    args: &'a DemoArgs,
    endpoint: &str,
    names: &TableNames,
) -> Result<Vec<Region<'a>>> {
    let mut regions = Vec::new();
    for (region, url) in args.regions.iter().zip(&args.function_urls) {
        let reader = local_reader(endpoint, region, &names.usage, StartPosition::Latest);
        let qs: Arc<dyn Invoke> = Arc::new(InvokeClient::new(
            url,
            "quota-sync",
            Duration::from_secs(120),
        )?);
        let mut pump = RegionPump::new(reader, qs, PumpOptions::default());
        pump.round().await?;
        regions.push(Region {
            name: region,
            invokers: Invokers {
                authorizer: InvokeClient::new(url, "authorizer", Duration::from_secs(120))?,
                log_processor: InvokeClient::new(url, "log-processor", Duration::from_secs(120))?,
                ingest: InvokeClient::new(url, "ingest", Duration::from_secs(120))?,
            },
            pump,
        });
    }
    Ok(regions)
}

/// One round: every client's calls through the authorizers, the access
/// logs to the log-processors, the meter events to ingest, the stream
/// pumps; then one line of totals per region.
async fn play_round(
    round: u32,
    regions: &mut [Region<'_>],
    clients: &[Client],
    started: Instant,
    play: &mut Play,
) -> Result<()> {
    let (lines, meter_events) = call_authorizers(round, regions, clients, started, play).await?;
    deliver_logs(round, regions, &lines, play).await?;
    post_meter_events(round, regions, &meter_events, play).await?;
    // The stream pump feeds quota-sync in every region; replicas feed the peers' streams.
    for _ in 0..2 {
        for r in regions.iter_mut() {
            r.pump
                .round()
                .await
                .with_context(|| format!("stream pump of {}", r.pump.region()))?;
        }
    }
    let line: Vec<String> = regions
        .iter()
        .map(|region| {
            let sum = |m: &BTreeMap<(String, String), u64>| -> u64 {
                m.iter()
                    .filter(|((r, _), _)| r == region.name)
                    .map(|(_, n)| n)
                    .sum()
            };
            let (a, d) = (sum(&play.tally.allowed), sum(&play.tally.denied));
            format!("{}: {a:>3} allowed {d:>3} denied", region.name)
        })
        .collect();
    println!("  round {round:>2}  {}", line.join("  |  "));
    Ok(())
}

/// Each client's calls of the round, through the authorizer of the region
/// they land in: each region's access log lines, and the meter events its
/// backend posts for the allowed calls.
async fn call_authorizers(
    round: u32,
    regions: &[Region<'_>],
    clients: &[Client],
    started: Instant,
    play: &mut Play,
) -> Result<(Vec<Vec<Event>>, Vec<Vec<Value>>)> {
    let mut lines: Vec<Vec<Event>> = vec![Vec::new(); regions.len()];
    let mut meter_events: Vec<Vec<Value>> = vec![Vec::new(); regions.len()];
    for c in clients {
        for i in 0..c.calls_per_round {
            play.seq += 1;
            let seq = play.seq;
            let r = (round as usize + i as usize) % regions.len();
            let region = regions[r].name;
            let at = chrono::Utc::now().timestamp_millis();
            let request_id = format!("req-{round}-{seq}");
            let event = authorizer_request(
                region,
                &request_id,
                at,
                c.key.as_ref().map(ApiKey::expose_secret),
                c.ip,
            );
            let response = regions[r]
                .invokers
                .authorizer
                .invoke(event)
                .await
                .with_context(|| format!("authorizer in {region}"))?;
            let (allowed, context) = authorizer_allowed(&response);
            let who = (region.to_owned(), c.identity.to_string());
            if allowed {
                *play.tally.allowed.entry(who).or_default() += 1;
                if c.label.starts_with("acme") {
                    meter_events[r].push(json!({"id": format!("tok-{request_id}"), "meter": "tokens", "identity": c.identity.to_string(), "value": 120, "time": at}));
                }
            } else {
                *play.tally.denied.entry(who.clone()).or_default() += 1;
                let reason = context["reason"].as_str().unwrap_or("denied").to_owned();
                play.tally.first_denial.entry(who).or_insert((
                    round,
                    started.elapsed().as_secs_f64(),
                    reason,
                ));
            }
            let access = access_line(
                ACCESS_LOG_FORMAT,
                &Request {
                    request_id: &request_id,
                    time_ms: at,
                    ip: c.ip,
                    identity: &c.identity.to_string(),
                    status: if allowed { 200 } else { 403 },
                    error_type: if allowed { "-" } else { "ACCESS_DENIED" },
                },
            );
            lines[r].push(Event {
                id: event_id(at, seq),
                timestamp: at,
                message: access,
            });
        }
    }
    Ok((lines, meter_events))
}

/// CloudWatch Logs delivers each region's batch; some are delivered twice.
async fn deliver_logs(
    round: u32,
    regions: &[Region<'_>],
    lines: &[Vec<Event>],
    play: &mut Play,
) -> Result<()> {
    for (r, batch) in lines.iter().enumerate() {
        if batch.is_empty() {
            continue;
        }
        let payload = payload_json(
            "/tollgate/prod/access",
            &format!("stream-{}", regions[r].name),
            batch,
        );
        let event = direct_event(&payload);
        let deliveries = if round % 4 == 2 && r == 1 { 2 } else { 1 };
        for d in 0..deliveries {
            let summary = regions[r]
                .invokers
                .log_processor
                .invoke(event.clone())
                .await
                .with_context(|| "log-processor")?;
            if d > 0 {
                play.log_summaries.push(format!(
                    "round {round}, {}: batch of {} lines delivered again -> {} new chunks, {} duplicate chunks (counted once)",
                    regions[r].name, batch.len(), summary["new_chunks"], summary["duplicate_chunks"]
                ));
            }
        }
    }
    Ok(())
}

/// The backend posts meter events; every fifth round, the previous batch
/// is posted again (a client retry).
async fn post_meter_events(
    round: u32,
    regions: &[Region<'_>],
    meter_events: &[Vec<Value>],
    play: &mut Play,
) -> Result<()> {
    for (r, events) in meter_events.iter().enumerate() {
        if events.is_empty() {
            continue;
        }
        let body = serde_json::to_string(events)?;
        let statuses =
            post_events(&regions[r].invokers.ingest, regions[r].name, body.clone()).await?;
        play.meters.0 += statuses.0;
        play.meters.1 += statuses.1;
        play.meters.2 += statuses.2;
        play.previous_meter_batch = Some((r, body));
    }
    if round.is_multiple_of(5) {
        if let Some((r, body)) = &play.previous_meter_batch {
            let statuses =
                post_events(&regions[*r].invokers.ingest, regions[*r].name, body.clone()).await?;
            play.meters.1 += statuses.1;
            println!("  round {round}: a meter-event request was retried by the client: {} events answered `duplicate`", statuses.1);
        }
    }
    Ok(())
}

/// A region's authorizer, log-processor and ingest.
struct Invokers {
    authorizer: InvokeClient,
    log_processor: InvokeClient,
    ingest: InvokeClient,
}

fn client(
    label: &'static str,
    key: Option<ApiKey>,
    ip: &'static str,
    calls_per_round: u32,
    limit: Option<u64>,
) -> Client {
    let identity = match &key {
        Some(k) => Identity::Key(k.key_id()),
        None => Identity::anonymous_ip(
            ip.parse()
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            tollgate_core::Ipv6Prefix::DEFAULT,
        ),
    };
    Client {
        label,
        key,
        identity,
        ip,
        calls_per_round,
        limit,
    }
}

fn random_key() -> ApiKey {
    ApiKey::generate(rand::random())
}

/// Posts meter events; returns (accepted, duplicate, rejected).
async fn post_events(ingest: &InvokeClient, region: &str, body: String) -> Result<(u64, u64, u64)> {
    let response = ingest
        .invoke(ingest_request("POST", "/v1/events", "", Some(body), region))
        .await
        .context("ingest")?;
    let body: Value =
        serde_json::from_str(response["body"].as_str().unwrap_or("{}")).unwrap_or_default();
    let mut out = (0, 0, 0);
    for r in body["results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        match r["status"].as_str() {
            Some("accepted") => out.0 += 1,
            Some("duplicate") => out.1 += 1,
            _ => out.2 += 1,
        }
    }
    Ok(out)
}
