//! `tollgate bench cost`: what tollgate costs per million calls, measured.
//!
//! Plays a workload ([`super::workload`]) through the real handlers of all
//! four functions, in this process, against DynamoDB Local with three
//! simulated regions, counting every DynamoDB request and the capacity it
//! consumed (per function) and every invocation with its duration. Then plays
//! the same allowed calls through the write-per-request baseline (one counter
//! update per request, every change copied to every other region) and prints
//! both, per million calls, with prices, for 3 regions and projected to 10.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use quota_sync::pump::{InProcess, Invoke, PumpOptions, RegionPump, StartPosition};
use serde_json::{json, Value};
use tollgate_core::{ApiKey, CounterKey, Identity, KeyRecord, KeyStatus, MeterName, Plan, Window};
use tollgate_store::attr::{n, s};
use tollgate_store::client::local_config;
use tollgate_store::{KeysStore, RequestCounter, TableNames, UsageStore, TABLES};

use super::events::authorizer_request;
use super::workload::{calls, Call, Caller, Workload};

/// Public on-demand prices, us-east-1, as published on 2026-11-21.
pub mod prices {
    /// DynamoDB on-demand, per million write request units.
    pub const WRITE_PER_MILLION: f64 = 0.625;
    /// DynamoDB on-demand, per million read request units.
    pub const READ_PER_MILLION: f64 = 0.125;
    /// Lambda (arm64), per million requests.
    pub const LAMBDA_PER_MILLION: f64 = 0.20;
    /// Lambda (arm64), per GB-second.
    pub const LAMBDA_PER_GB_SECOND: f64 = 0.000_013_333_4;
}

/// Settings of a cost run.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// `w1` (10 calls/s, like a 25M-calls-a-month API) or `w2` (1,000 calls/s).
    #[arg(long, default_value = "w1")]
    pub workload: String,
    /// Simulated regions.
    #[arg(long, default_value_t = 3)]
    pub regions: usize,
    /// Simulated seconds (default: the workload's).
    #[arg(long)]
    pub seconds: Option<u32>,
    /// Seconds between two log deliveries per region (default: the workload's).
    #[arg(long)]
    pub log_batch_seconds: Option<u32>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How access logs reach the log-processor: `direct` (a CloudWatch Logs
    /// subscription, one invocation per delivery, transactions with dedupe
    /// markers) or `kinesis` (subscription -> Kinesis, one invocation per
    /// batching window, per-shard watermarks).
    #[arg(long, default_value = "direct")]
    pub source: String,
    /// quota-sync's replication: `hot` (the default) or `all`.
    #[arg(long, default_value = "hot")]
    pub replication: String,
    /// Keep the top index (TOLLGATE_TOP_INDEX=true).
    #[arg(long)]
    pub top_index: bool,
}

/// Seconds of log events in one CloudWatch Logs delivery (a Kinesis record).
const DELIVERY_SECONDS: i64 = 5;

const FUNCTIONS: [&str; 4] = ["authorizer", "log-processor", "ingest", "quota-sync"];
/// Memory (MB) of each function, as in template.yaml.
const MEMORY_MB: [f64; 4] = [128.0, 128.0, 256.0, 128.0];
const PAID_DAILY: u64 = 1_500;
const PAID_MONTHLY: u64 = 30_000;
const ANON_DAILY: u64 = 200;

#[derive(Debug, Default, Clone)]
struct Invocations {
    count: u64,
    seconds: f64,
}

struct Region {
    name: String,
    authorizer: authorizer::Authorizer,
    clock: authorizer::cache::ManualClock,
    log: log_processor::Processor,
    ingest: ingest::Ingest,
    pump: RegionPump,
    counters: [RequestCounter; 4],
    /// The next Kinesis sequence number of this region's log stream.
    next_seq: u128,
}

/// Runs the cost benchmark and prints the report.
pub async fn run(args: BenchArgs) -> Result<()> {
    let mut w = Workload::named(&args.workload)
        .ok_or_else(|| anyhow!("unknown workload {:?}: use w1 or w2", args.workload))?;
    if let Some(s) = args.seconds {
        w.seconds = s;
    }
    if let Some(b) = args.log_batch_seconds {
        w.log_batch_seconds = b;
    }
    let kinesis = match args.source.as_str() {
        "direct" => false,
        "kinesis" => true,
        other => bail!("unknown --source {other:?}: use direct or kinesis"),
    };
    if !matches!(args.replication.as_str(), "hot" | "all") {
        bail!(
            "unknown --replication {:?}: use hot or all",
            args.replication
        );
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .context("AWS_ENDPOINT_URL_DYNAMODB must point at DynamoDB Local")?;
    let region_names: Vec<String> = (0..args.regions)
        .map(|i| format!("bench-{}", (b'a' + i as u8) as char))
        .collect();
    let names = TableNames::prefixed(&format!("bench{}", chrono::Utc::now().timestamp_millis()));
    let calls = calls(&w, args.regions, args.seed);
    let start_ms = chrono::Utc::now().timestamp_millis() - i64::from(w.seconds) * 1000;
    println!(
        "workload {}: {:.1} calls/s, {} simulated s, {} calls, {} keys (Zipf {}), {} anonymous IPs ({:.0} %), {} regions, logs delivered every {} s per region",
        w.name, w.calls_per_second, w.seconds, calls.len(), w.keys, w.zipf_s, w.anonymous_ips, w.anonymous_share * 100.0, args.regions, w.log_batch_seconds
    );

    // Set-up (not counted): tables, plans, meters, keys in every region.
    let setup_started = Instant::now();
    let keys_used: Vec<usize> = {
        let mut k: Vec<usize> = calls
            .iter()
            .filter_map(|c| match c.caller {
                Caller::Key(i) => Some(i),
                _ => None,
            })
            .collect();
        k.sort_unstable();
        k.dedup();
        k
    };
    let secrets: HashMap<usize, ApiKey> = keys_used
        .iter()
        .map(|&i| (i, key_for(args.seed, i)))
        .collect();
    for region in &region_names {
        let client = tollgate_store::local_client(&endpoint, region);
        for spec in TABLES {
            spec.create(&client, names.name_of(&spec)).await?;
        }
        let store = KeysStore::new(client, &names.keys);
        for plan in plans()? {
            store.put_plan(&plan).await?;
        }
        store
            .put_meter(&tollgate_core::MeterDef {
                name: MeterName::new("tokens")?,
                aggregation: tollgate_core::Aggregation::Sum,
                unit: "tokens".into(),
            })
            .await?;
        let jobs = secrets.iter().map(|(i, key)| {
            let store = store.clone();
            let record = KeyRecord {
                key_id: key.key_id(),
                customer: format!("customer-{i}"),
                plan: "paid".into(),
                status: KeyStatus::Active,
                expires_at: None,
            };
            let digest = key.digest();
            async move { store.create_key(&digest, &record, start_ms).await }
        });
        let results: Vec<_> = futures::stream::iter(jobs)
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    println!(
        "set-up: {} keys in {} regions in {:.1} s (not counted)",
        secrets.len(),
        args.regions,
        setup_started.elapsed().as_secs_f64()
    );

    let mut regions = Vec::new();
    for name in &region_names {
        regions.push(region(&endpoint, name, &region_names, &names, start_ms, &args).await?);
    }
    for r in &mut regions {
        r.pump.round().await?;
    }
    for r in &regions {
        for c in &r.counters {
            c.reset();
        }
    }

    // Play.
    let played = Instant::now();
    let mut invocations: BTreeMap<&str, Invocations> = BTreeMap::new();
    let mut truth: BTreeMap<Identity, u64> = BTreeMap::new();
    let mut allowed_calls: Vec<(usize, Identity, bool)> = Vec::new();
    let mut over_limit: BTreeMap<Identity, Vec<u64>> = BTreeMap::new();
    let mut denied = 0u64;
    let mut pending_lines: Vec<Vec<log_processor::sample::Event>> = vec![Vec::new(); regions.len()];
    let mut pending_meters: Vec<Vec<Value>> = vec![Vec::new(); regions.len()];
    let batch_ms = i64::from(w.log_batch_seconds) * 1000;
    let mut next_flush = batch_ms;
    let mut rng_state = args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut redelivered_batches = 0u64;
    for (seq, call) in calls.iter().enumerate() {
        while call.at_ms >= next_flush {
            let redeliver = flush(
                &mut regions,
                &mut pending_lines,
                &mut pending_meters,
                &mut invocations,
                &mut rng_state,
                w.redelivery_share,
                &mut allowed_calls,
                kinesis,
            )
            .await?;
            redelivered_batches += redeliver;
            next_flush += batch_ms;
        }
        let at = start_ms + call.at_ms;
        let r = &regions[call.region];
        r.clock.set(at);
        let (identity, key, ip) = caller(call, &secrets);
        let event = authorizer_request(
            &r.name,
            &format!("r{seq}"),
            at,
            key.map(ApiKey::expose_secret),
            &ip,
        );
        let started = Instant::now();
        let response = r
            .authorizer
            .handle_bytes(event.to_string().as_bytes())
            .await;
        record(&mut invocations, "authorizer", started);
        let allowed = response
            .ok()
            .and_then(|body| serde_json::from_str::<Value>(body.get()).ok())
            .is_some_and(|v| v["policyDocument"]["Statement"][0]["Effect"] == "Allow");
        if allowed {
            let count = truth.entry(identity.clone()).or_default();
            *count += 1;
            let limit = if identity.is_anonymous() {
                ANON_DAILY
            } else {
                PAID_DAILY
            };
            if *count > limit {
                over_limit
                    .entry(identity.clone())
                    .or_insert_with(|| vec![0; regions.len()])[call.region] += 1;
            }
            allowed_calls.push((call.region, identity.clone(), false));
            pending_lines[call.region].push(log_processor::sample::Event {
                id: log_processor::sample::event_id(at, seq as u64),
                timestamp: at,
                message: log_processor::sample::access_line(&log_processor::sample::Request {
                    request_id: &format!("r{seq}"),
                    time_ms: at,
                    ip: &ip,
                    identity: &identity.to_string(),
                    status: 200,
                    error_type: "-",
                }),
            });
            if call.meter_event {
                pending_meters[call.region].push(json!({"id": format!("m{seq}"), "meter": "tokens", "identity": identity.to_string(), "value": 250, "time": at}));
            }
        } else {
            denied += 1;
        }
    }
    redelivered_batches += flush(
        &mut regions,
        &mut pending_lines,
        &mut pending_meters,
        &mut invocations,
        &mut rng_state,
        w.redelivery_share,
        &mut allowed_calls,
        kinesis,
    )
    .await?;
    for _ in 0..3 {
        pump_all(&mut regions, &mut invocations).await?;
    }
    let play_seconds = played.elapsed().as_secs_f64();

    // Exactness: every region's view of every counter against the truth.
    let day = |at: i64| Window::Day.period_of(at);
    let mut mismatches = 0u64;
    let mut checked = 0u64;
    let today = day(start_ms + i64::from(w.seconds) * 1000 - 1)?;
    let first_day = day(start_ms)?;
    if today == first_day {
        // Each region's own item, from its own table (replication `hot`
        // copies only counters near a limit), summed: the usage API's view.
        let stores: Vec<(tollgate_core::Region, UsageStore)> = region_names
            .iter()
            .map(|r| {
                Ok((
                    tollgate_core::Region::new(r)?,
                    UsageStore::new(tollgate_store::local_client(&endpoint, r), &names.usage),
                ))
            })
            .collect::<Result<_>>()?;
        for (identity, want) in truth.iter().take(900) {
            let counter = CounterKey {
                meter: MeterName::requests(),
                identity: identity.clone(),
                period: today,
            };
            let mut got = 0;
            for (region, usage) in &stores {
                got += usage
                    .regions_of(&counter)
                    .await?
                    .get(region)
                    .copied()
                    .unwrap_or(0);
            }
            checked += 1;
            if got != *want {
                mismatches += 1;
            }
        }
    }

    // Baseline: one counter update per request (redelivered batches twice), copied to every other region.
    let baseline_counter = RequestCounter::with_capacity();
    let baseline_started = Instant::now();
    let baseline = baseline(
        &endpoint,
        &region_names,
        &names,
        &allowed_calls,
        &baseline_counter,
        today,
    )
    .await?;
    let baseline_seconds = baseline_started.elapsed().as_secs_f64();

    report(
        &w,
        &args,
        calls.len() as u64,
        denied,
        &regions,
        &invocations,
        &baseline_counter,
        baseline,
        redelivered_batches,
        mismatches,
        checked,
        &over_limit,
        play_seconds,
        baseline_seconds,
    );
    Ok(())
}

fn plans() -> Result<Vec<Plan>> {
    Ok(vec![
        serde_json::from_value(json!({"name": "paid", "overage": "hard", "limits": [
            {"meter": "requests", "window": "day", "limit": PAID_DAILY},
            {"meter": "requests", "window": "month", "limit": PAID_MONTHLY}]}))?,
        serde_json::from_value(json!({"name": "anonymous", "overage": "hard", "limits": [
            {"meter": "requests", "window": "day", "limit": ANON_DAILY}]}))?,
    ])
}

/// The n-th key of a run: deterministic, so a run repeats.
fn key_for(seed: u64, i: usize) -> ApiKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    ApiKey::generate(bytes)
}

fn caller<'a>(
    call: &Call,
    secrets: &'a HashMap<usize, ApiKey>,
) -> (Identity, Option<&'a ApiKey>, String) {
    match call.caller {
        Caller::Key(i) => {
            let key = secrets.get(&i);
            let id = key.map_or_else(
                || Identity::Key(format!("missing-{i}")),
                |k| Identity::Key(k.key_id()),
            );
            (id, key, format!("192.0.2.{}", i % 250 + 1))
        }
        Caller::Anonymous(i) => {
            let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            let id = Identity::parse_anonymous_ip(&ip, tollgate_core::Ipv6Prefix::DEFAULT)
                .unwrap_or(Identity::Referer("invalid".into()));
            (id, None, ip)
        }
    }
}

fn counted(endpoint: &str, region: &str, counter: &RequestCounter) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        local_config(endpoint, region)
            .interceptor(counter.clone())
            .build(),
    )
}

async fn region(
    endpoint: &str,
    name: &str,
    all: &[String],
    names: &TableNames,
    start_ms: i64,
    args: &BenchArgs,
) -> Result<Region> {
    let counters: [RequestCounter; 4] = std::array::from_fn(|_| RequestCounter::with_capacity());
    let vars = |extra: &[(&str, String)]| {
        let mut m: HashMap<String, String> = HashMap::from([
            ("TOLLGATE_REGION".into(), name.to_owned()),
            ("TOLLGATE_KEYS_TABLE".into(), names.keys.clone()),
            ("TOLLGATE_USAGE_TABLE".into(), names.usage.clone()),
            (
                "TOLLGATE_IDEMPOTENCY_TABLE".into(),
                names.idempotency.clone(),
            ),
            ("TOLLGATE_ANONYMOUS_PLAN".into(), "anonymous".into()),
            ("TOLLGATE_WINDOWS".into(), "day,month".into()),
            ("TOLLGATE_TOP_INDEX".into(), args.top_index.to_string()),
            ("TOLLGATE_REPLICATION".into(), args.replication.clone()),
        ]);
        for (k, v) in extra {
            m.insert((*k).to_owned(), v.clone());
        }
        m
    };
    let clock = authorizer::cache::ManualClock::at(start_ms);
    let auth_vars = vars(&[]);
    let auth_config = authorizer::config::Config::from_lookup(|k| auth_vars.get(k).cloned())
        .map_err(|e| anyhow!("{e:?}"))?;
    let authorizer = authorizer::Authorizer::new(
        auth_config,
        KeysStore::new(counted(endpoint, name, &counters[0]), &names.keys),
        Arc::new(clock.clone()),
    );
    authorizer.load_plans().await?;

    // The anonymous plan limits days only: its identities' months are not counted.
    let log_vars = vars(&[("TOLLGATE_ANONYMOUS_WINDOWS", "day".into())]);
    let log_config = log_processor::Config::from_lookup(|k| log_vars.get(k).cloned())
        .map_err(|e| anyhow!("{e}"))?;
    let log = log_processor::Processor::new(counted(endpoint, name, &counters[1]), log_config);

    let ingest_vars = vars(&[("TOLLGATE_WINDOWS", "day,month".into())]);
    let ingest_config =
        ingest::Config::from_vars(|k| ingest_vars.get(k).cloned()).map_err(|e| anyhow!("{e}"))?;
    let ingest = ingest::Ingest::new(counted(endpoint, name, &counters[2]), ingest_config);

    let peers: Vec<String> = all.iter().filter(|r| *r != name).cloned().collect();
    let qs_vars = vars(&[("TOLLGATE_PEER_REGIONS", peers.join(","))]);
    let qs_config = quota_sync::config::Config::from_vars(|k| qs_vars.get(k).cloned())
        .map_err(|e| anyhow!("{e}"))?;
    let qs_client = counted(endpoint, name, &counters[3]);
    let peer_stores = peers
        .iter()
        .map(|p| {
            Ok(quota_sync::handler::Peer {
                region: tollgate_core::Region::new(p)?,
                usage: UsageStore::new(counted(endpoint, p, &counters[3]), &names.usage),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let qs = quota_sync::handler::QuotaSync::new(
        &qs_config,
        UsageStore::new(qs_client.clone(), &names.usage),
        KeysStore::new(qs_client, &names.keys),
        peer_stores,
    )
    // Its caches expire on the simulation's time, as they would in a real hour.
    .with_clock(Arc::new(clock.clone()));
    let reader = quota_sync::local_reader(endpoint, name, &names.usage, StartPosition::Latest);
    let invoker: Arc<dyn Invoke> = Arc::new(InProcess(Arc::new(qs)));
    let pump = RegionPump::new(
        reader,
        invoker,
        PumpOptions {
            batch_size: 100,
            ..PumpOptions::default()
        },
    );
    Ok(Region {
        name: name.to_owned(),
        authorizer,
        clock,
        log,
        ingest,
        pump,
        counters,
        next_seq: 1_000,
    })
}

fn record(
    invocations: &mut BTreeMap<&'static str, Invocations>,
    function: &'static str,
    started: Instant,
) {
    let e = invocations.entry(function).or_default();
    e.count += 1;
    e.seconds += started.elapsed().as_secs_f64();
}

/// Delivers each region's pending log lines (some twice) and meter events,
/// then runs the stream pumps. Returns the number of redelivered batches.
///
/// Direct: the lines are one CloudWatch Logs delivery. Kinesis: they are
/// cut into deliveries of [`DELIVERY_SECONDS`] (one Kinesis record each),
/// and the batching window's records are one Kinesis event.
#[allow(clippy::too_many_arguments)]
async fn flush(
    regions: &mut [Region],
    lines: &mut [Vec<log_processor::sample::Event>],
    meters: &mut [Vec<Value>],
    invocations: &mut BTreeMap<&'static str, Invocations>,
    rng: &mut u64,
    redelivery_share: f64,
    allowed_calls: &mut [(usize, Identity, bool)],
    kinesis: bool,
) -> Result<u64> {
    let mut redelivered = 0;
    for (r, region) in regions.iter_mut().enumerate() {
        let batch = std::mem::take(&mut lines[r]);
        if !batch.is_empty() {
            let group = "/tollgate/bench/access";
            let event = if kinesis {
                let mut records = Vec::new();
                for delivery in batch.chunk_by(|a, b| {
                    a.timestamp.div_euclid(DELIVERY_SECONDS * 1000)
                        == b.timestamp.div_euclid(DELIVERY_SECONDS * 1000)
                }) {
                    records.push(log_processor::sample::gzip(
                        &log_processor::sample::payload_json(group, &region.name, delivery),
                    ));
                }
                let event = log_processor::sample::kinesis_event(&records, region.next_seq);
                region.next_seq += records.len() as u128;
                event
            } else {
                log_processor::sample::direct_event(&log_processor::sample::payload_json(
                    group,
                    &region.name,
                    &batch,
                ))
            };
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            let twice = (*rng % 10_000) as f64 / 10_000.0 < redelivery_share;
            for _ in 0..if twice { 2 } else { 1 } {
                let started = Instant::now();
                let response = region
                    .log
                    .handle(event.clone())
                    .await
                    .map_err(|e| anyhow!("log-processor: {e}"))?;
                if response["batchItemFailures"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
                {
                    bail!("log-processor reported failed records: {response}");
                }
                record(invocations, "log-processor", started);
            }
            if twice {
                redelivered += 1;
                // The baseline counts a redelivered batch twice: mark its calls
                // (the region's latest `batch.len()` allowed calls).
                for call in allowed_calls
                    .iter_mut()
                    .rev()
                    .filter(|c| c.0 == r)
                    .take(batch.len())
                {
                    call.2 = true;
                }
            }
        }
        let events = std::mem::take(&mut meters[r]);
        for chunk in events.chunks(1000) {
            let body = serde_json::to_vec(chunk)?;
            let started = Instant::now();
            let response = region.ingest.post_events(&body).await;
            record(invocations, "ingest", started);
            if response.status >= 300 {
                return Err(anyhow!(
                    "ingest answered {}: {}",
                    response.status,
                    response.body
                ));
            }
        }
    }
    pump_all(regions, invocations).await?;
    Ok(redelivered)
}

async fn pump_all(
    regions: &mut [Region],
    invocations: &mut BTreeMap<&'static str, Invocations>,
) -> Result<()> {
    // Replicas written by one region's quota-sync appear in its peers' streams: pump until quiet.
    for _ in 0..4 {
        let mut moved = 0;
        for region in regions.iter_mut() {
            let started = Instant::now();
            let round = region.pump.round().await?;
            if round.invocations > 0 {
                let e = invocations.entry("quota-sync").or_default();
                e.count += round.invocations as u64;
                e.seconds += started.elapsed().as_secs_f64();
            }
            moved += round.read + round.pending;
        }
        if moved == 0 {
            break;
        }
    }
    Ok(())
}

/// The write-per-request design: each counted request is one `UpdateItem`
/// on its identity's daily counter in its region, and each change is copied
/// to every other region. Returns the counters' final global values' error
/// against the truth: (counters, counters that differ).
async fn baseline(
    endpoint: &str,
    regions: &[String],
    names: &TableNames,
    allowed: &[(usize, Identity, bool)],
    counter: &RequestCounter,
    day: tollgate_core::Period,
) -> Result<(u64, u64)> {
    let table = format!("{}-baseline", names.usage);
    let clients: Vec<aws_sdk_dynamodb::Client> = regions
        .iter()
        .map(|r| counted(endpoint, r, counter))
        .collect();
    for (r, region) in regions.iter().enumerate() {
        let mut spec = tollgate_store::USAGE;
        spec.stream = false;
        spec.create(&tollgate_store::local_client(endpoint, region), &table)
            .await?;
        let _ = r;
    }
    counter.reset();
    let jobs = allowed.iter().flat_map(|(r, identity, twice)| {
        let times = if *twice { 2 } else { 1 };
        (0..times).map(move |_| (*r, identity.clone()))
    });
    let results: Vec<Result<()>> = futures::stream::iter(jobs.map(|(r, identity)| {
        let clients = clients.clone();
        let table = table.clone();
        async move {
            let pk = format!("requests#{identity}");
            let sk = format!("{day}#{r}");
            let out = clients[r]
                .update_item()
                .table_name(&table)
                .key("pk", s(&pk))
                .key("sk", s(&sk))
                .update_expression("ADD #n :one")
                .expression_attribute_names("#n", "n")
                .expression_attribute_values(":one", n(1))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                .send()
                .await?;
            let value = out
                .attributes()
                .and_then(|a| a.get("n"))
                .cloned()
                .unwrap_or(n(0));
            for (peer, client) in clients.iter().enumerate() {
                if peer != r {
                    client
                        .put_item()
                        .table_name(&table)
                        .item("pk", s(&pk))
                        .item("sk", s(&sk))
                        .item("n", value.clone())
                        .send()
                        .await?;
                }
            }
            Ok(())
        }
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    // Count check (not counted): the first region's view of each identity against the truth.
    let mut truth: BTreeMap<&Identity, u64> = BTreeMap::new();
    for (_, identity, _) in allowed {
        *truth.entry(identity).or_default() += 1;
    }
    let mut wrong = 0;
    let reader = tollgate_store::local_client(endpoint, &regions[0]);
    for (identity, want) in truth.iter().take(300) {
        let out = reader
            .query()
            .table_name(&table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("requests#{identity}")))
            .send()
            .await?;
        let got: u64 = out
            .items()
            .iter()
            .filter_map(|i| tollgate_store::attr::get_u64(i, "n"))
            .sum();
        if got != *want {
            wrong += 1;
        }
    }
    Ok((truth.len().min(300) as u64, wrong))
}

#[derive(Debug, Default, Clone, Copy)]
struct Units {
    requests: u64,
    read: f64,
    write: f64,
}

fn dollars(u: Units) -> f64 {
    u.write * prices::WRITE_PER_MILLION / 1e6 + u.read * prices::READ_PER_MILLION / 1e6
}

#[allow(clippy::too_many_arguments)]
fn report(
    w: &Workload,
    args: &BenchArgs,
    calls: u64,
    denied: u64,
    regions: &[Region],
    invocations: &BTreeMap<&'static str, Invocations>,
    baseline_counter: &RequestCounter,
    baseline: (u64, u64),
    redelivered: u64,
    mismatches: u64,
    checked: u64,
    over_limit: &BTreeMap<Identity, Vec<u64>>,
    play_seconds: f64,
    baseline_seconds: f64,
) {
    let per_million = 1e6 / calls.max(1) as f64;
    let r = args.regions as f64;
    println!("\n== tollgate, per 1,000,000 calls ({} calls played in {play_seconds:.1} s; {denied} denied; {redelivered} log batches delivered twice) ==", calls);
    println!(
        "  {:<14} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "function", "requests", "RRU", "WRU", "invocations", "GB-s"
    );
    let mut total = Units::default();
    let mut projected = Units::default();
    let mut lambda = (0.0, 0.0);
    for (i, f) in FUNCTIONS.iter().enumerate() {
        let mut u = Units::default();
        for region in regions {
            let snap = region.counters[i].snapshot();
            u.requests += snap.values().map(|c| c.requests).sum::<u64>();
            u.read += snap.values().map(|c| c.read_units).sum::<f64>();
            u.write += snap.values().map(|c| c.write_units).sum::<f64>();
        }
        let inv = invocations.get(f).cloned().unwrap_or_default();
        let gbs = inv.seconds * MEMORY_MB[i] / 1024.0;
        println!(
            "  {f:<14} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>12.2}",
            u.requests as f64 * per_million,
            u.read * per_million,
            u.write * per_million,
            inv.count as f64 * per_million,
            gbs * per_million
        );
        total.requests += u.requests;
        total.read += u.read;
        total.write += u.write;
        lambda.0 += inv.count as f64 * per_million;
        lambda.1 += gbs * per_million;
        // Projection to 10 regions: quota-sync copies to R-1 peers and every region evaluates.
        let (pr, pw) = if *f == "quota-sync" {
            (u.read * 10.0 / r, u.write * 9.0 / (r - 1.0).max(1.0))
        } else {
            (u.read, u.write)
        };
        projected.read += pr;
        projected.write += pw;
    }
    let t = Units {
        requests: total.requests,
        read: total.read * per_million,
        write: total.write * per_million,
    };
    let t10 = Units {
        requests: 0,
        read: projected.read * per_million,
        write: projected.write * per_million,
    };
    let lambda_dollars =
        lambda.0 * prices::LAMBDA_PER_MILLION / 1e6 + lambda.1 * prices::LAMBDA_PER_GB_SECOND;

    let b = baseline_counter.snapshot();
    let bu = Units {
        requests: b.values().map(|c| c.requests).sum(),
        read: b.values().map(|c| c.read_units).sum::<f64>() * per_million,
        write: b.values().map(|c| c.write_units).sum::<f64>() * per_million,
    };
    let bu10 = Units {
        requests: 0,
        read: bu.read * 10.0 / r,
        write: bu.write * 10.0 / r,
    };

    println!(
        "\n== DynamoDB cost per 1,000,000 calls (on-demand: ${}/M WRU, ${}/M RRU) ==",
        prices::WRITE_PER_MILLION,
        prices::READ_PER_MILLION
    );
    println!(
        "  {:<34} {:>10} {:>10} {:>10} {:>10}",
        "design", "WRU", "RRU", "$", "ratio"
    );
    let row = |name: &str, u: Units, base: Units| {
        println!(
            "  {name:<34} {:>10.0} {:>10.0} {:>10.3} {:>10.3}",
            u.write,
            u.read,
            dollars(u),
            dollars(u) / dollars(base).max(1e-12)
        );
    };
    row(&format!("tollgate, {} regions", args.regions), t, bu);
    row(&format!("baseline, {} regions", args.regions), bu, bu);
    row("tollgate, projected to 10 regions", t10, bu10);
    row("baseline, projected to 10 regions", bu10, bu10);
    println!(
        "  Lambda (all four functions): {:.0} invocations, {:.2} GB-s = ${lambda_dollars:.3} per 1,000,000 calls (arm64: ${}/M requests, ${}/GB-s)",
        lambda.0, lambda.1, prices::LAMBDA_PER_MILLION, prices::LAMBDA_PER_GB_SECOND
    );
    println!("  baseline played in {baseline_seconds:.1} s");

    println!("\n== Counts against the truth ==");
    println!("  tollgate: {mismatches} of {checked} identities' daily counters (each region's own item, summed over the tables) differ from the allowed calls");
    println!("  baseline: {} of {} identities' daily counters differ (redelivered batches counted twice)", baseline.1, baseline.0);

    println!("\n== Quota accuracy: calls allowed beyond a hard daily limit ==");
    if over_limit.is_empty() {
        println!("  no identity reached its limit in this run");
    }
    let mut worst: Vec<(&Identity, &Vec<u64>)> = over_limit.iter().collect();
    worst.sort_by_key(|(_, v)| std::cmp::Reverse(v.iter().sum::<u64>()));
    for (identity, per_region) in worst.iter().take(5) {
        println!(
            "  {identity}: {} beyond the limit (per region {:?})",
            per_region.iter().sum::<u64>(),
            per_region
        );
    }
    println!(
        "  pipeline delay simulated: up to {} s of log batching + one stream-pump pass + the authorizer's 5 s cache; \
         bound: at most (calls per second of the identity) x (that delay) calls beyond a limit",
        w.log_batch_seconds
    );
}
