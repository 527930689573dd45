//! `tollgate demo`: plays realistic traffic across three simulated regions
//! through the real function binaries (served by `cargo lambda watch`) on
//! DynamoDB Local, and prints what happened. `scripts/demo.sh` starts the
//! servers; this drives them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use quota_sync::pump::{Invoke, PumpOptions, RegionPump, RuntimeApi, StartPosition};
use serde_json::{json, Value};
use tollgate_core::{
    Aggregation, ApiKey, CounterKey, Identity, KeyRecord, KeyStatus, MeterDef, MeterName, Plan,
    Window,
};
use tollgate_store::{local_client, KeysStore, TableNames, UsageStore, TABLES};

use super::ddb_proxy;
use super::events::{authorizer_allowed, authorizer_request, ingest_request};

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
    let mut clients = vec![
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
    ];
    let now = chrono::Utc::now().timestamp_millis();
    for region in &args.regions {
        let ddb = local_client(&endpoint, region);
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
        })
        .await?;
        for c in &mut clients {
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
                };
                // Keys are copied to every region at signup.
                if let Err(e) = keys.create_key(&key.digest(), &record, now).await {
                    tracing::debug!("key exists already: {e}");
                }
            }
        }
    }
    for c in &clients {
        println!("  {:<32} identity {}", c.label, c.identity);
    }

    let mut pumps = Vec::new();
    let mut invokers = Vec::new();
    for (region, url) in args.regions.iter().zip(&args.function_urls) {
        let reader =
            quota_sync::local_reader(&endpoint, region, &names.usage, StartPosition::Latest);
        let qs: Arc<dyn Invoke> = Arc::new(RuntimeApi::new(
            url,
            "quota-sync",
            Duration::from_secs(120),
        )?);
        pumps.push(RegionPump::new(reader, qs, PumpOptions::default()));
        invokers.push(Invokers {
            authorizer: RuntimeApi::new(url, "authorizer", Duration::from_secs(120))?,
            log_processor: RuntimeApi::new(url, "log-processor", Duration::from_secs(120))?,
            ingest: RuntimeApi::new(url, "ingest", Duration::from_secs(120))?,
        });
    }
    // Start each stream reader at the current end of its stream.
    for p in &mut pumps {
        p.round().await?;
    }

    println!("\n== Traffic: {} rounds; each round's access logs are delivered as a CloudWatch Logs subscription event ==", args.rounds);
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut seq = 0u64;
    let mut log_summaries: Vec<String> = Vec::new();
    let mut meter_summary = (0u64, 0u64, 0u64);
    let mut previous_meter_batch: Option<(usize, String)> = None;
    for round in 1..=args.rounds {
        let mut lines: Vec<Vec<log_processor::sample::Event>> =
            vec![Vec::new(); args.regions.len()];
        let mut meter_events: Vec<Vec<Value>> = vec![Vec::new(); args.regions.len()];
        for c in &clients {
            for i in 0..c.calls_per_round {
                seq += 1;
                let r = (round as usize + i as usize) % args.regions.len();
                let region = &args.regions[r];
                let at = chrono::Utc::now().timestamp_millis();
                let request_id = format!("req-{round}-{seq}");
                let event = authorizer_request(
                    region,
                    &request_id,
                    at,
                    c.key.as_ref().map(ApiKey::expose_secret),
                    c.ip,
                );
                let response = invokers[r]
                    .authorizer
                    .invoke(event)
                    .await
                    .with_context(|| format!("authorizer in {region}"))?;
                let (allowed, context) = authorizer_allowed(&response);
                let who = (region.clone(), c.identity.to_string());
                if allowed {
                    *tally.allowed.entry(who).or_default() += 1;
                    if c.label.starts_with("acme") {
                        meter_events[r].push(json!({"id": format!("tok-{request_id}"), "meter": "tokens", "identity": c.identity.to_string(), "value": 120, "time": at}));
                    }
                } else {
                    *tally.denied.entry(who.clone()).or_default() += 1;
                    let reason = context["reason"].as_str().unwrap_or("denied").to_owned();
                    tally.first_denial.entry(who).or_insert((
                        round,
                        started.elapsed().as_secs_f64(),
                        reason,
                    ));
                }
                let access = log_processor::sample::access_line(&log_processor::sample::Request {
                    request_id: &request_id,
                    time_ms: at,
                    ip: c.ip,
                    identity: &c.identity.to_string(),
                    status: if allowed { 200 } else { 403 },
                    error_type: if allowed { "-" } else { "ACCESS_DENIED" },
                });
                lines[r].push(log_processor::sample::Event {
                    id: log_processor::sample::event_id(at, seq),
                    timestamp: at,
                    message: access,
                });
            }
        }
        // CloudWatch Logs delivers each region's batch; some are delivered twice.
        for (r, batch) in lines.iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let payload = log_processor::sample::payload_json(
                "/tollgate/prod/access",
                &format!("stream-{}", args.regions[r]),
                batch,
            );
            let event = log_processor::sample::direct_event(&payload);
            let deliveries = if round % 4 == 2 && r == 1 { 2 } else { 1 };
            for d in 0..deliveries {
                let summary = invokers[r]
                    .log_processor
                    .invoke(event.clone())
                    .await
                    .with_context(|| "log-processor")?;
                if d > 0 {
                    log_summaries.push(format!(
                        "round {round}, {}: batch of {} lines delivered again -> {} new chunks, {} duplicate chunks (counted once)",
                        args.regions[r], batch.len(), summary["new_chunks"], summary["duplicate_chunks"]
                    ));
                }
            }
        }
        // The backend posts meter events; one batch is posted again (a client retry).
        for (r, events) in meter_events.iter().enumerate() {
            if events.is_empty() {
                continue;
            }
            let body = serde_json::to_string(events)?;
            let statuses = post_events(&invokers[r].ingest, &args.regions[r], body.clone()).await?;
            meter_summary.0 += statuses.0;
            meter_summary.1 += statuses.1;
            meter_summary.2 += statuses.2;
            previous_meter_batch = Some((r, body));
        }
        if round % 5 == 0 {
            if let Some((r, body)) = &previous_meter_batch {
                let statuses =
                    post_events(&invokers[*r].ingest, &args.regions[*r], body.clone()).await?;
                meter_summary.1 += statuses.1;
                println!("  round {round}: a meter-event request was retried by the client: {} events answered `duplicate`", statuses.1);
            }
        }
        // The stream pump feeds quota-sync in every region; replicas feed the peers' streams.
        for _ in 0..2 {
            for p in &mut pumps {
                p.round()
                    .await
                    .with_context(|| format!("stream pump of {}", p.region()))?;
            }
        }
        let line: Vec<String> = args
            .regions
            .iter()
            .map(|region| {
                let a: u64 = tally
                    .allowed
                    .iter()
                    .filter(|((r, _), _)| r == region)
                    .map(|(_, n)| n)
                    .sum();
                let d: u64 = tally
                    .denied
                    .iter()
                    .filter(|((r, _), _)| r == region)
                    .map(|(_, n)| n)
                    .sum();
                format!("{region}: {a:>3} allowed {d:>3} denied")
            })
            .collect();
        println!("  round {round:>2}  {}", line.join("  |  "));
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }

    report(
        &args,
        &names,
        &endpoint,
        &clients,
        &tally,
        &log_summaries,
        meter_summary,
        &counts,
    )
    .await
}

struct Invokers {
    authorizer: RuntimeApi,
    log_processor: RuntimeApi,
    ingest: RuntimeApi,
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
async fn post_events(ingest: &RuntimeApi, region: &str, body: String) -> Result<(u64, u64, u64)> {
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

#[allow(clippy::too_many_arguments)]
async fn report(
    args: &DemoArgs,
    names: &TableNames,
    endpoint: &str,
    clients: &[Client],
    tally: &Tally,
    log_summaries: &[String],
    meters: (u64, u64, u64),
    counts: &ddb_proxy::Counts,
) -> Result<()> {
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
