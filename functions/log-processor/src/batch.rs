//! From decoded log events to deterministic chunks of increments.
//!
//! A batch is aggregated first (one increment per meter, identity and
//! period, whatever the number of requests behind it), then its sorted
//! increments are cut into chunks of at most [`CHUNK_INCREMENTS`], so that a
//! chunk and its dedupe marker fit in one `TransactWriteItems`. The same
//! batch always gives the same chunks with the same ids, so a redelivered
//! batch finds every chunk's marker and writes nothing again.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tollgate_core::{
    Aggregation, Aggregator, CountedWindows, CounterKey, Identity, MeterName, Region, UsageKey,
    Window,
};

use crate::line::{parse_message, Line, NotCounted, Rules};
use crate::payload::{truncate, LogEvent, LogsPayload};

/// Increments per chunk: with its dedupe marker, 100 actions, the most one
/// transaction holds.
pub const CHUNK_INCREMENTS: usize = 99;

/// How many skipped lines per payload are sampled into the function's log.
pub const SKIP_SAMPLES: usize = 3;

/// How much of a skipped line a sample shows at most.
pub const SAMPLE_BYTES: usize = 80;

/// What a batch's lines turned out to be.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Log events read.
    pub events: u64,
    /// Events counted.
    pub counted: u64,
    /// Valid access-log lines whose status does not count.
    pub not_counted_status: u64,
    /// Requests the gateway or the authorizer stopped.
    pub denied: u64,
    /// Requests without an identity.
    pub no_identity: u64,
    /// Lines in neither format, or invalid.
    pub skipped: u64,
    /// Referer identities charged besides their line's IP identity.
    pub referers: u64,
}

impl Tally {
    /// Adds another tally.
    pub fn merge(&mut self, other: &Tally) {
        self.events += other.events;
        self.counted += other.counted;
        self.not_counted_status += other.not_counted_status;
        self.denied += other.denied;
        self.no_identity += other.no_identity;
        self.skipped += other.skipped;
        self.referers += other.referers;
    }
}

/// A skipped line, as sampled into the log: the reason, the log event id and
/// a short, redacted prefix of the line (never the whole line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipSample {
    /// The skip reason.
    pub reason: &'static str,
    /// Its details.
    pub detail: String,
    /// The log event id.
    pub event_id: String,
    /// The line's length in bytes.
    pub len: usize,
    /// At most [`SAMPLE_BYTES`] of the line, cut before anything that may be a secret.
    pub prefix: String,
}

/// Cuts a sample before anything that may start a secret (an API key
/// `tg_...`, an `Authorization` header, a bearer token).
pub fn redact(sample: &str) -> String {
    let lower = sample.to_ascii_lowercase();
    let cut = [
        "tg_",
        "authorization",
        "bearer",
        "secret",
        "password",
        "token",
    ]
    .iter()
    .filter_map(|needle| lower.find(needle))
    .min();
    match cut {
        Some(at) => format!("{}[redacted]", &sample[..at]),
        None => sample.to_owned(),
    }
}

/// What the lines of one or more payloads add up to.
#[derive(Debug, Default)]
pub struct BatchAggregate {
    /// The increments, by counter.
    pub aggregator: Aggregator,
    /// What the lines were.
    pub tally: Tally,
    /// Up to [`SKIP_SAMPLES`] skipped lines.
    pub samples: Vec<SkipSample>,
}

/// Counting settings besides the line rules.
#[derive(Debug, Clone)]
pub struct Counting {
    /// The line rules.
    pub rules: Rules,
    /// The windows each meter's events are added to, for API keys and
    /// for anonymous identities: the configured ones and the plans'.
    pub windows: Arc<CountedWindows>,
    /// Meters aggregated as `max`.
    pub max_meters: BTreeSet<MeterName>,
}

impl Counting {
    fn aggregation_of(&self, meter: &MeterName) -> Aggregation {
        if meter.as_str() == MeterName::REQUESTS {
            Aggregation::Count
        } else if self.max_meters.contains(meter) {
            Aggregation::Max
        } else {
            Aggregation::Sum
        }
    }
}

impl BatchAggregate {
    /// An empty aggregate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every line of a payload's events into the aggregate.
    ///
    /// Identities are parsed once per text within the call (a batch holds
    /// many lines of few identities).
    pub fn add_events<'e>(&mut self, events: &'e [LogEvent<'_>], counting: &Counting) {
        let requests = MeterName::requests();
        let mut identities: HashMap<&'e str, Identity> = HashMap::new();
        for event in events {
            self.tally.events += 1;
            let skip = match parse_message(&event.message, event.timestamp, &counting.rules) {
                Line::Count(usage) => {
                    let mut add = || {
                        let named;
                        let meter = match &usage.meter {
                            None => &requests,
                            Some(m) => {
                                named = MeterName::new(m)?;
                                &named
                            }
                        };
                        let mut charge = |text: &Cow<'e, str>| {
                            let parsed;
                            let identity = match *text {
                                Cow::Borrowed(text) => match identities.entry(text) {
                                    Entry::Occupied(known) => known.into_mut(),
                                    Entry::Vacant(new) => new.insert(text.parse()?),
                                },
                                Cow::Owned(ref text) => {
                                    parsed = text.parse::<Identity>()?;
                                    &parsed
                                }
                            };
                            self.aggregator.add(
                                meter,
                                counting.aggregation_of(meter),
                                identity,
                                usage.at,
                                usage.value,
                                counting.windows.of(meter, identity.is_anonymous()),
                            )
                        };
                        charge(&usage.identity)?;
                        match &usage.referer {
                            Some(referer) => charge(referer).map(|()| 1),
                            None => Ok(0),
                        }
                    };
                    match add() {
                        Ok(referers) => {
                            self.tally.counted += 1;
                            self.tally.referers += referers;
                            None
                        }
                        Err(e) => Some(("invalid_field", e.to_string())),
                    }
                }
                Line::NotCounted(NotCounted::Status) => {
                    self.tally.not_counted_status += 1;
                    None
                }
                Line::NotCounted(NotCounted::Denied) => {
                    self.tally.denied += 1;
                    None
                }
                Line::NotCounted(NotCounted::NoIdentity) => {
                    self.tally.no_identity += 1;
                    None
                }
                Line::Skipped(skip) => Some((skip.reason, skip.detail)),
            };
            if let Some((reason, detail)) = skip {
                self.tally.skipped += 1;
                if self.samples.len() < SKIP_SAMPLES {
                    self.samples.push(SkipSample {
                        reason,
                        detail: truncate(&detail, 200).to_owned(),
                        event_id: truncate(&event.id, 64).to_owned(),
                        len: event.message.len(),
                        prefix: redact(truncate(&event.message, SAMPLE_BYTES)),
                    });
                }
            }
        }
    }
}

/// One chunk of increments, committed with its dedupe marker in one
/// transaction (the committer's chunk): its id is the source id and the
/// chunk's index, its increments this region's count and sum counters,
/// sorted, at most [`CHUNK_INCREMENTS`].
pub use tollgate_app::commit::Chunk;

/// What one source (a payload, a Kinesis record) writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WritePlan {
    /// Count and sum increments of API keys' counters, in chunks.
    pub chunks: Vec<Chunk>,
    /// Count and sum increments of anonymous identities' counters, in
    /// chunks of their own (ids `<source_id>#a<index>`), in bucket order:
    /// their writes never share a transaction with an API key's.
    pub anonymous: Vec<Chunk>,
    /// `max` counters: raised outside the transactions (idempotent by nature).
    pub maxes: Vec<(UsageKey, u64)>,
}

impl WritePlan {
    /// The increments in all chunks.
    pub fn increments(&self) -> usize {
        self.all_chunks().map(|c| c.increments.len()).sum()
    }

    /// Every chunk: API keys' first, then anonymous identities'.
    pub fn all_chunks(&self) -> impl Iterator<Item = &Chunk> {
        self.chunks.iter().chain(&self.anonymous)
    }
}

/// Cuts sorted increments into chunks for `region`, the chunk ids being
/// `<source_id>#<index>` (API keys) and `<source_id>#a<index>` (anonymous
/// identities, sorted by bucket item so that a chunk touches few items).
/// Increments that add nothing are dropped. Every window is taken as
/// configured: see [`plan_in`] for windows that only the plans add.
pub fn plan(
    source_id: &str,
    increments: Vec<(CounterKey, Aggregation, u64)>,
    region: &Region,
) -> WritePlan {
    plan_in(source_id, increments, region, None)
}

/// [`plan`], with the increments of windows that `configured` does not
/// count (windows only a plan adds, see [`CountedWindows`]) in chunks of
/// their own, one run of chunks per kind of identity, window and meter:
/// ids `<source_id>#p:<window>:<meter>:<index>` (API keys) and
/// `<source_id>#p:<window>:<meter>:a<index>` (anonymous identities).
///
/// Exactly once when the plans change between a delivery and its retry:
/// the configured windows' chunks are the same whatever the plans say,
/// and so is each of these runs whenever its window is counted for its
/// meter at all. A run counted on the first attempt and not on the retry
/// is not written again; one not counted on the first attempt is new.
pub fn plan_in(
    source_id: &str,
    increments: Vec<(CounterKey, Aggregation, u64)>,
    region: &Region,
    configured: Option<&CountedWindows>,
) -> WritePlan {
    let mut plan = WritePlan::default();
    let mut named = Vec::with_capacity(increments.len());
    let mut anonymous = Vec::new();
    type Run = Vec<(UsageKey, Aggregation, u64)>;
    let mut added: BTreeMap<(bool, Window, MeterName), Run> = BTreeMap::new();
    for (counter, aggregation, amount) in increments {
        if amount == 0 {
            continue;
        }
        let key = counter.into_region(region);
        let anon = key.counter.identity.is_anonymous();
        let window = key.counter.period.window;
        match aggregation {
            Aggregation::Max => plan.maxes.push((key, amount)),
            _ if configured.is_some_and(|c| !c.of(&key.counter.meter, anon).contains(&window)) => {
                added
                    .entry((anon, window, key.counter.meter.clone()))
                    .or_default()
                    .push((key, aggregation, amount));
            }
            Aggregation::Count | Aggregation::Sum if anon => {
                anonymous.push((key, aggregation, amount))
            }
            Aggregation::Count | Aggregation::Sum => named.push((key, aggregation, amount)),
        }
    }
    // By item (pk, sk), then counter: computed once per increment.
    anonymous.sort_by_cached_key(|(key, _, _)| (key.item(), key.counter.clone()));
    plan.chunks = cut(source_id, "", named);
    plan.anonymous = cut(source_id, "a", anonymous);
    for ((anon, window, meter), mut run) in added {
        if anon {
            run.sort_by_cached_key(|(key, _, _)| (key.item(), key.counter.clone()));
            plan.anonymous
                .extend(cut(source_id, &format!("p:{window}:{meter}:a"), run));
        } else {
            run.sort_by(|a, b| a.0.cmp(&b.0));
            plan.chunks
                .extend(cut(source_id, &format!("p:{window}:{meter}:"), run));
        }
    }
    plan
}

fn cut(source_id: &str, tag: &str, adds: Vec<(UsageKey, Aggregation, u64)>) -> Vec<Chunk> {
    let mut chunks = Vec::with_capacity(adds.len().div_ceil(CHUNK_INCREMENTS));
    let mut adds = adds.into_iter();
    loop {
        let increments: Vec<_> = adds.by_ref().take(CHUNK_INCREMENTS).collect();
        if increments.is_empty() {
            return chunks;
        }
        let index = chunks.len();
        chunks.push(Chunk {
            id: format!("{source_id}#{tag}{index}"),
            increments,
        });
    }
}

/// The stable id of a directly delivered payload: SHA-256 over its log
/// group, log stream and every log event id, in order.
pub fn cloudwatch_source_id(payload: &LogsPayload<'_>) -> String {
    let mut hash = Sha256::new();
    hash.update(payload.log_group.as_bytes());
    hash.update([0]);
    hash.update(payload.log_stream.as_bytes());
    for event in &payload.log_events {
        hash.update([0]);
        hash.update(event.id.as_bytes());
    }
    format!("cwl#{}", hex::encode(hash.finalize()))
}

/// The stable id of a Kinesis record: its stream, shard and sequence number.
pub fn kinesis_source_id(stream_arn: &str, event_id: &str, sequence_number: &str) -> String {
    let stream = stream_arn.rsplit('/').next().unwrap_or(stream_arn);
    let shard = event_id.split(':').next().unwrap_or("");
    format!("kin#{stream}#{shard}#{sequence_number}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::StatusRanges;

    fn counting() -> Counting {
        Counting {
            rules: Rules {
                count_status: StatusRanges::default_counted(),
                ipv6_prefix: tollgate_core::Ipv6Prefix::DEFAULT,
            },
            windows: Arc::new(CountedWindows::configured(
                &[Window::Day, Window::Month],
                &[Window::Day],
            )),
            max_meters: [MeterName::new("peak").unwrap()].into_iter().collect(),
        }
    }

    fn event(id: &str, message: &str) -> LogEvent<'static> {
        LogEvent {
            id: id.to_owned().into(),
            timestamp: 1_795_000_000_000,
            message: message.to_owned().into(),
        }
    }

    #[test]
    fn aggregates_and_tallies() {
        let mut agg = BatchAggregate::new();
        let mut events = Vec::new();
        for i in 0..10 {
            events.push(event(
                &i.to_string(),
                r#"{"tollgate":1,"identity":"key:a"}"#,
            ));
        }
        events.push(event(
            "a",
            r#"{"tollgate":1,"identity":"key:a","meter":"tokens","value":40}"#,
        ));
        events.push(event(
            "b",
            r#"{"tollgate":1,"identity":"key:a","meter":"tokens","value":2}"#,
        ));
        events.push(event(
            "c",
            r#"{"tollgate":1,"identity":"key:a","meter":"peak","value":7}"#,
        ));
        events.push(event(
            "d",
            r#"{"tollgate":1,"identity":"key:a","meter":"peak","value":3}"#,
        ));
        events.push(event("e", r#"{"tollgate":1,"identity":"user:x"}"#));
        events.push(event(
            "f",
            r#"{"tollgate":1,"identity":"key:a","meter":"Bad#"}"#,
        ));
        events.push(event(
            "g",
            "Authorization: Bearer tg_live_0123456789abcdef0123456789abcdef and more",
        ));
        events.push(event(
            "h",
            r#"{"requestId":"r","status":503,"identity":"key:a"}"#,
        ));
        agg.add_events(&events, &counting());
        assert_eq!(
            agg.tally,
            Tally {
                events: 18,
                counted: 14,
                not_counted_status: 1,
                denied: 0,
                no_identity: 0,
                skipped: 3,
                referers: 0,
            }
        );
        assert_eq!(agg.samples.len(), 3);
        assert!(agg.samples.iter().all(|s| !s.prefix.contains("tg_live")));
        assert_eq!(agg.samples[2].prefix, "[redacted]");
        let region = Region::new("local-a").unwrap();
        let plan = plan("src", agg.aggregator.into_increments(), &region);
        // requests, tokens: day and month each; peak: day and month maxes.
        assert_eq!(plan.chunks.len(), 1);
        let incs = &plan.chunks[0].increments;
        assert_eq!(incs.len(), 4);
        let find = |pk: &str, w: &str| {
            incs.iter()
                .find(|(k, _, _)| k.pk() == pk && k.label().starts_with(w))
                .map(|x| (x.1, x.2))
        };
        assert_eq!(
            find("requests#key:a", "day#"),
            Some((Aggregation::Count, 10))
        );
        assert_eq!(find("tokens#key:a", "month#"), Some((Aggregation::Sum, 42)));
        assert!(incs.iter().all(|(k, _, _)| k.sk().ends_with("#local-a")));
        assert_eq!(plan.maxes.len(), 2);
        assert!(plan
            .maxes
            .iter()
            .all(|(k, v)| k.pk() == "peak#key:a" && *v == 7));
    }

    #[test]
    fn chunks_deterministically() {
        let build = |order: &[usize]| {
            let mut agg = BatchAggregate::new();
            let events: Vec<_> = order
                .iter()
                .map(|i| {
                    event(
                        &i.to_string(),
                        &format!(r#"{{"tollgate":1,"identity":"key:k{i}"}}"#),
                    )
                })
                .collect();
            agg.add_events(&events, &counting());
            plan(
                "s",
                agg.aggregator.into_increments(),
                &Region::new("r").unwrap(),
            )
        };
        let forward: Vec<usize> = (0..250).collect();
        let backward: Vec<usize> = (0..250).rev().collect();
        let a = build(&forward);
        // 250 identities x 2 windows = 500 increments: 6 chunks of <= 99.
        assert_eq!(a.increments(), 500);
        assert_eq!(a.chunks.len(), 6);
        assert!(a
            .chunks
            .iter()
            .all(|c| c.increments.len() <= CHUNK_INCREMENTS));
        assert_eq!(a.chunks[5].id, "s#5");
        assert_eq!(
            a,
            build(&backward),
            "the order of lines does not change the chunks"
        );
    }

    #[test]
    fn source_ids() {
        let payload = |ids: &[&str]| LogsPayload {
            message_type: "DATA_MESSAGE".into(),
            owner: "o".into(),
            log_group: "g".into(),
            log_stream: "s".into(),
            log_events: ids.iter().map(|i| event(i, "x")).collect(),
        };
        let a = cloudwatch_source_id(&payload(&["1", "2"]));
        assert_eq!(a, cloudwatch_source_id(&payload(&["1", "2"])));
        assert_ne!(a, cloudwatch_source_id(&payload(&["12"])));
        assert_ne!(a, cloudwatch_source_id(&payload(&["1", "2", "3"])));
        assert!(a.starts_with("cwl#") && a.len() == 4 + 64);
        assert_eq!(
            kinesis_source_id(
                "arn:aws:kinesis:eu-west-1:123:stream/logs",
                "shardId-000000000006:4959033",
                "4959033"
            ),
            "kin#logs#shardId-000000000006#4959033"
        );
    }
}
