//! Playing the calls: each through its region's authorizer; the allowed
//! ones' access logs (some delivered twice) through the log-processor, their
//! meter events through ingest, and the stream pumps through quota-sync.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};
use tollgate_core::{ApiKey, Identity, Period, Window};
use tollgate_testkit::cloudwatch::{
    direct_event, event_id, gzip, kinesis_event, payload_json, Event,
};
use tollgate_testkit::traffic::{access_line, Request};

use tracing::Instrument;

use super::setup::caller;
use super::{
    billed, capture, record, BenchArgs, Invocations, Region, ANON_DAILY, DELIVERY_SECONDS,
    PAID_DAILY, PAID_MONTHLY,
};
use crate::events::authorizer_request;
use crate::workload::{Call, Workload};

/// What playing the calls did.
pub(super) struct Played {
    /// Invocations by function.
    pub invocations: BTreeMap<&'static str, Invocations>,
    /// The allowed calls of each identity.
    pub truth: BTreeMap<Identity, u64>,
    /// Each allowed call: (region, identity, whether its log batch was delivered twice).
    pub allowed_calls: Vec<(usize, Identity, bool)>,
    /// Calls allowed beyond a hard daily limit, per identity and region.
    pub over_limit: BTreeMap<Identity, Vec<u64>>,
    /// Calls the authorizer denied.
    pub denied: u64,
    /// The hard limits against the truth, and the authorizer's store
    /// requests per decision.
    pub held: Held,
    /// Log batches delivered twice.
    pub redelivered_batches: u64,
    /// Wall-clock seconds of the play.
    pub seconds: f64,
    /// Access log lines (allowed and denied calls) and their bytes.
    pub access_lines: u64,
    pub access_bytes: u64,
    /// The Kinesis records the subscription would put (`--source kinesis`).
    pub kinesis: KinesisRecords,
}

/// The Kinesis records of the run, as Kinesis bills them.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct KinesisRecords {
    /// Records put (one per 5-second delivery) and their bytes.
    pub records: u64,
    pub bytes: u64,
    /// Each record rounded up to 1 KB (on-demand's unit), in KB.
    pub billed_kb: u64,
    /// Each record in 25 KB PUT payload units (provisioned's unit).
    pub put_units: u64,
    /// KB read by the log-processor (a redelivered batch is read again).
    pub read_kb: u64,
}

/// Decisions are counted by their store requests up to this (the last: that many or more).
const PER_DECISION: usize = 16;

/// The hard limits against the truth (every allowed call), per identity and
/// period, and the authorizer's store requests per decision.
#[derive(Debug, Default)]
pub(super) struct Held {
    allowed: HashMap<(Identity, Period), u64>,
    /// Calls allowed while the identity's allowed calls had reached the period's limit.
    pub over: HashMap<(Identity, Period), u64>,
    /// Calls allowed past at least one hard limit.
    pub over_calls: u64,
    /// Calls denied while every limit had room, by the period with the least.
    pub false_denied: HashMap<(Identity, Period), u64>,
    pub false_calls: u64,
    /// Decisions by the authorizer's store requests (a delta of its counter).
    pub per_decision: Vec<u64>,
}

/// The hard limits of `identity` at `at`: the anonymous plan's day, the
/// paid plan's day and month.
pub(super) fn hard_limits(identity: &Identity, at: i64) -> Vec<(Period, u64)> {
    let windows: &[(Window, u64)] = if identity.is_anonymous() {
        &[(Window::Day, ANON_DAILY)]
    } else {
        &[(Window::Day, PAID_DAILY), (Window::Month, PAID_MONTHLY)]
    };
    windows
        .iter()
        .filter_map(|&(w, limit)| Some((w.period_of(at).ok()?, limit)))
        .collect()
}

impl Held {
    /// Records one decision for `identity` at `at`, which made `requests`
    /// store requests.
    fn settle(&mut self, identity: &Identity, at: i64, allowed: bool, requests: u64) {
        if self.per_decision.is_empty() {
            self.per_decision = vec![0; PER_DECISION];
        }
        self.per_decision[(requests as usize).min(PER_DECISION - 1)] += 1;
        let limits = hard_limits(identity, at);
        let used = |held: &Held, period: &Period| {
            held.allowed
                .get(&(identity.clone(), *period))
                .copied()
                .unwrap_or(0)
        };
        if allowed {
            let mut past = false;
            for (period, limit) in &limits {
                if used(self, period) >= *limit {
                    *self.over.entry((identity.clone(), *period)).or_default() += 1;
                    past = true;
                }
            }
            self.over_calls += u64::from(past);
            for (period, _) in &limits {
                *self.allowed.entry((identity.clone(), *period)).or_default() += 1;
            }
        } else if let Some((room, period)) = limits
            .iter()
            .map(|(p, limit)| (*limit as i64 - used(self, p) as i64, *p))
            .min_by_key(|(room, _)| *room)
        {
            if room > 0 {
                *self
                    .false_denied
                    .entry((identity.clone(), period))
                    .or_default() += 1;
                self.false_calls += 1;
            }
        }
    }

    /// The p-th quantile of the store requests per decision.
    pub fn quantile(&self, q: f64) -> usize {
        let total: u64 = self.per_decision.iter().sum();
        let want = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        self.per_decision
            .iter()
            .position(|&n| {
                seen += n;
                seen >= want
            })
            .unwrap_or(0)
    }
}

/// The play in progress: what it did so far, and what waits for the next
/// log delivery.
struct Playing {
    played: Played,
    /// Each region's access log lines since its last delivery.
    lines: Vec<Vec<Event>>,
    /// Each region's meter events since its last delivery.
    meters: Vec<Vec<Value>>,
    /// Each region's allowed calls since its last delivery.
    allowed_pending: Vec<usize>,
    /// The xorshift state that picks the batches delivered twice.
    rng: u64,
    /// The share of log batches delivered twice.
    redelivery_share: f64,
    /// Whether logs come through Kinesis (else a direct subscription).
    kinesis: bool,
}

/// Plays `calls` through the regions' handlers.
pub(super) async fn play(
    regions: &mut [Region],
    calls: &[Call],
    secrets: &HashMap<usize, ApiKey>,
    w: &Workload,
    args: &BenchArgs,
    start_ms: i64,
    kinesis: bool,
) -> Result<Played> {
    let started = Instant::now();
    let mut playing = Playing {
        played: Played {
            invocations: BTreeMap::new(),
            truth: BTreeMap::new(),
            allowed_calls: Vec::new(),
            over_limit: BTreeMap::new(),
            denied: 0,
            held: Held::default(),
            redelivered_batches: 0,
            seconds: 0.0,
            access_lines: 0,
            access_bytes: 0,
            kinesis: KinesisRecords::default(),
        },
        allowed_pending: vec![0; regions.len()],
        lines: vec![Vec::new(); regions.len()],
        meters: vec![Vec::new(); regions.len()],
        rng: args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        redelivery_share: w.redelivery_share,
        kinesis,
    };
    let batch_ms = i64::from(w.log_batch_seconds) * 1000;
    let mut next_flush = batch_ms;
    let mut progress = Progress::new("calls", calls.len());
    for (seq, call) in calls.iter().enumerate() {
        while call.at_ms >= next_flush {
            playing.flush(regions).await?;
            next_flush += batch_ms;
        }
        playing.call(regions, seq, call, secrets, start_ms).await;
        progress.tick(seq + 1);
    }
    playing.flush(regions).await?;
    for _ in 0..3 {
        pump_all(regions, &mut playing.played.invocations).await?;
    }
    playing.played.seconds = started.elapsed().as_secs_f64();
    Ok(playing.played)
}

impl Playing {
    /// One call through its region's authorizer; when allowed, its access
    /// log line and (some calls) a meter event wait for the next delivery.
    async fn call(
        &mut self,
        regions: &[Region],
        seq: usize,
        call: &Call,
        secrets: &HashMap<usize, ApiKey>,
        start_ms: i64,
    ) {
        let played = &mut self.played;
        let at = start_ms + call.at_ms;
        let r = &regions[call.region];
        r.clock.set(at);
        let (identity, key, ip) = caller(call, secrets);
        // API Gateway's request ids are UUIDs: the access log line's bytes depend on it.
        let request_id = format!("{:08x}-0000-4000-8000-{:012x}", seq >> 16, seq);
        let event = authorizer_request(
            &r.name,
            &request_id,
            at,
            key.map(ApiKey::expose_secret),
            &ip,
        );
        let requests_before = r.counters[0].total_requests();
        let response = {
            let _invoking = capture::invoking(call.region, 0);
            let started = Instant::now();
            let response = r
                .authorizer
                .handle_bytes(event.to_string().as_bytes())
                .instrument(capture::request_span())
                .await;
            record(&mut played.invocations, "authorizer", started);
            response
        };
        let requests = r.counters[0].total_requests() - requests_before;
        let body = response
            .ok()
            .and_then(|body| serde_json::from_str::<Value>(body.get()).ok())
            .unwrap_or(Value::Null);
        let allowed = body["policyDocument"]["Statement"][0]["Effect"] == "Allow";
        played.held.settle(&identity, at, allowed, requests);
        // Every call writes an access log line, a denied one too (429,
        // ACCESS_DENIED: delivered, read and not counted).
        let (status, error_type) = if allowed {
            (200, "-")
        } else {
            (429, "ACCESS_DENIED")
        };
        let line = access_line(
            log_processor::ACCESS_LOG_FORMAT,
            &Request {
                request_id: &request_id,
                time_ms: at,
                ip: &ip,
                identity: &identity.to_string(),
                status,
                error_type,
            },
        );
        // The authorizer's principalId, as the stage writes it.
        let line = match body["principalId"].as_str() {
            Some(principal) => line.replacen(
                "\"principalId\":\"-\"",
                &format!("\"principalId\":\"{principal}\""),
                1,
            ),
            None => line,
        };
        played.access_lines += 1;
        played.access_bytes += line.len() as u64;
        self.lines[call.region].push(Event {
            id: event_id(at, seq as u64),
            timestamp: at,
            message: line,
        });
        if !allowed {
            played.denied += 1;
            return;
        }
        self.allowed_pending[call.region] += 1;
        let count = played.truth.entry(identity.clone()).or_default();
        *count += 1;
        let limit = if identity.is_anonymous() {
            ANON_DAILY
        } else {
            PAID_DAILY
        };
        if *count > limit {
            played
                .over_limit
                .entry(identity.clone())
                .or_insert_with(|| vec![0; regions.len()])[call.region] += 1;
        }
        played
            .allowed_calls
            .push((call.region, identity.clone(), false));
        if call.meter_event {
            self.meters[call.region].push(json!({"id": format!("m{seq}"), "meter": "tokens", "identity": identity.to_string(), "value": 250, "time": at}));
        }
    }

    /// Delivers each region's pending log lines (some twice) and meter events,
    /// then runs the stream pumps.
    ///
    /// Direct: the lines are one CloudWatch Logs delivery. Kinesis: they are
    /// cut into deliveries of [`DELIVERY_SECONDS`] (one Kinesis record each),
    /// and the batching window's records are one Kinesis event.
    async fn flush(&mut self, regions: &mut [Region]) -> Result<()> {
        let (lines, meters, rng) = (&mut self.lines, &mut self.meters, &mut self.rng);
        let allowed_pending = &mut self.allowed_pending;
        let (redelivery_share, kinesis) = (self.redelivery_share, self.kinesis);
        let played = &mut self.played;
        let mut redelivered = 0;
        for (r, region) in regions.iter_mut().enumerate() {
            let batch = std::mem::take(&mut lines[r]);
            let allowed_in_batch = std::mem::take(&mut allowed_pending[r]);
            if !batch.is_empty() {
                let group = "/tollgate/bench/access";
                let mut read_kb = 0;
                let event = if kinesis {
                    let mut records = Vec::new();
                    for delivery in batch.chunk_by(|a, b| {
                        a.timestamp.div_euclid(DELIVERY_SECONDS * 1000)
                            == b.timestamp.div_euclid(DELIVERY_SECONDS * 1000)
                    }) {
                        records.push(gzip(&payload_json(group, &region.name, delivery)));
                    }
                    let k = &mut played.kinesis;
                    for record in &records {
                        let len = record.len() as u64;
                        k.records += 1;
                        k.bytes += len;
                        k.billed_kb += len.div_ceil(1024);
                        k.put_units += len.div_ceil(25 * 1024);
                        read_kb += len.div_ceil(1024);
                    }
                    let event = kinesis_event(&records, region.next_seq);
                    region.next_seq += records.len() as u128;
                    event
                } else {
                    direct_event(&payload_json(group, &region.name, &batch))
                };
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                let twice = (*rng % 10_000) as f64 / 10_000.0 < redelivery_share;
                for _ in 0..if twice { 2 } else { 1 } {
                    played.kinesis.read_kb += read_kb;
                    let _invoking = capture::invoking(r, 1);
                    let started = Instant::now();
                    let response = region
                        .log
                        .handle(event.clone())
                        .instrument(capture::request_span())
                        .await
                        .map_err(|e| anyhow!("log-processor: {e}"))?;
                    if response["batchItemFailures"]
                        .as_array()
                        .is_some_and(|f| !f.is_empty())
                    {
                        bail!("log-processor reported failed records: {response}");
                    }
                    record(&mut played.invocations, "log-processor", started);
                }
                if twice {
                    redelivered += 1;
                    // The baseline counts a redelivered batch twice: mark its calls
                    // (the region's latest allowed calls, those of this batch).
                    for call in played
                        .allowed_calls
                        .iter_mut()
                        .rev()
                        .filter(|c| c.0 == r)
                        .take(allowed_in_batch)
                    {
                        call.2 = true;
                    }
                }
            }
            let events = std::mem::take(&mut meters[r]);
            for chunk in events.chunks(1000) {
                let body = serde_json::to_vec(chunk)?;
                let _invoking = capture::invoking(r, 2);
                let started = Instant::now();
                let response = region
                    .ingest
                    .post_events(&body)
                    .instrument(capture::request_span())
                    .await;
                // What the function's router does after every request.
                ingest::metrics::emit(&response);
                record(&mut played.invocations, "ingest", started);
                if response.status >= 300 {
                    return Err(anyhow!(
                        "ingest answered {}: {}",
                        response.status,
                        response.body
                    ));
                }
            }
        }
        pump_all(regions, &mut played.invocations).await?;
        played.redelivered_batches += redelivered;
        Ok(())
    }
}

/// Runs every region's stream pump until the streams are quiet (at most four passes).
pub(super) async fn pump_all(
    regions: &mut [Region],
    invocations: &mut BTreeMap<&'static str, Invocations>,
) -> Result<()> {
    // Replicas written by one region's quota-sync appear in its peers' streams: pump until quiet.
    for _ in 0..4 {
        let mut moved = 0;
        for (r, region) in regions.iter_mut().enumerate() {
            let _invoking = capture::invoking(r, 3);
            let started = Instant::now();
            let round = region.pump.round().await?;
            if round.invocations > 0 {
                let e = invocations.entry("quota-sync").or_default();
                let seconds = started.elapsed().as_secs_f64();
                e.count += round.invocations as u64;
                e.seconds += seconds;
                // The round's time split evenly over its invocations, each rounded up to 1 ms.
                e.billed_seconds +=
                    round.invocations as f64 * billed(seconds / round.invocations as f64);
            }
            moved += round.read + round.pending;
        }
        if moved == 0 {
            break;
        }
    }
    Ok(())
}

/// A progress line on stderr every few seconds, with the ETA.
pub(super) struct Progress {
    what: &'static str,
    total: usize,
    started: Instant,
    last: Instant,
}

impl Progress {
    /// Progress over `total` `what`s.
    pub(super) fn new(what: &'static str, total: usize) -> Progress {
        let now = Instant::now();
        Progress {
            what,
            total,
            started: now,
            last: now,
        }
    }

    /// `done` of them done.
    pub(super) fn tick(&mut self, done: usize) {
        if self.last.elapsed().as_secs() < 5 && done < self.total {
            return;
        }
        self.last = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = elapsed / done.max(1) as f64 * (self.total - done) as f64;
        let _ = say_progress(self.what, done, self.total, elapsed, eta);
    }
}

/// Prints one progress line (stderr, whatever `--output`).
fn say_progress(
    what: &str,
    done: usize,
    total: usize,
    elapsed: f64,
    eta: f64,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "progress: {done}/{total} {what} ({:.0} %), {elapsed:.0} s, ETA {eta:.0} s",
        done as f64 * 100.0 / total.max(1) as f64
    )
}
