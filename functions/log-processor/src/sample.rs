//! Building CloudWatch Logs subscription events in the shapes AWS delivers
//! them: for the sample events in `events/log-processor/`, the tests, the
//! benchmark and the write-cost measurement.

use std::io::Write;

use base64::Engine;
use flate2::write::GzEncoder;
use serde::Serialize;
use serde_json::{json, Value};

use crate::line::ACCESS_LOG_FORMAT;

/// One request as API Gateway would log it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `$context.requestId`.
    pub request_id: &'a str,
    /// `$context.requestTimeEpoch`, epoch milliseconds.
    pub time_ms: i64,
    /// `$context.identity.sourceIp`.
    pub ip: &'a str,
    /// `$context.authorizer.identity` (`""` for none).
    pub identity: &'a str,
    /// `$context.status`.
    pub status: u16,
    /// `$context.error.responseType` (`"-"` for none).
    pub error_type: &'a str,
}

/// Renders [`ACCESS_LOG_FORMAT`] for one request, as API Gateway does
/// (absent values become `-`).
pub fn access_line(r: &Request<'_>) -> String {
    let integration = if r.error_type == "-" {
        r.status.to_string()
    } else {
        "-".to_owned()
    };
    ACCESS_LOG_FORMAT
        .replace("$context.requestId", r.request_id)
        .replace("$context.requestTimeEpoch", &r.time_ms.to_string())
        .replace("$context.identity.sourceIp", r.ip)
        .replace("$context.httpMethod", "GET")
        .replace("$context.resourcePath", "/v1/lookup/{ip}")
        .replace("$context.status", &r.status.to_string())
        .replace("$context.integrationStatus", &integration)
        .replace("$context.error.responseType", r.error_type)
        .replace("$context.authorizer.principalId", "-")
        .replace(
            "$context.authorizer.identity",
            if r.identity.is_empty() {
                "-"
            } else {
                r.identity
            },
        )
        .replace("$context.authorizer.error", "-")
}

/// One log event of a payload.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The event id (CloudWatch's are 56 decimal digits).
    pub id: String,
    /// Ingestion time, epoch milliseconds.
    pub timestamp: i64,
    /// The line.
    pub message: String,
}

/// A CloudWatch-style event id: 56 digits, unique per `(timestamp, seq)`.
pub fn event_id(timestamp: i64, seq: u64) -> String {
    format!(
        "{:020}{:020}{:016}",
        timestamp,
        seq,
        seq.wrapping_mul(2_654_435_761) % 10_000_000_000_000_000
    )
}

/// The JSON of a `DATA_MESSAGE` payload.
pub fn payload_json(log_group: &str, log_stream: &str, events: &[Event]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": ["tollgate-usage"],
        "logEvents": events,
    }))
    .unwrap_or_default()
}

/// The JSON of a `CONTROL_MESSAGE` payload.
pub fn control_json() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 1_795_000_000_000i64, "message": "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}],
    }))
    .unwrap_or_default()
}

/// Gzips bytes, as CloudWatch Logs does.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Base64 (padded), as Lambda delivers `awslogs.data` and Kinesis data.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A direct subscription event: `{"awslogs": {"data": ...}}`.
pub fn direct_event(payload_json: &[u8]) -> Value {
    json!({"awslogs": {"data": base64(&gzip(payload_json))}})
}

/// A Kinesis event whose records carry the given (already gzipped) data,
/// with sequence numbers `first_seq`, `first_seq + 1`, ...
pub fn kinesis_event(records: &[Vec<u8>], first_seq: u128) -> Value {
    let records: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let seq = format!("{:056}", first_seq + i as u128);
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "f2b4a8c5d1e3",
                    "sequenceNumber": seq,
                    "data": base64(data),
                    "approximateArrivalTimestamp": 1_795_000_000.5,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/log-processor",
                "awsRegion": "eu-central-1",
                "eventSourceARN": "arn:aws:kinesis:eu-central-1:123456789012:stream/tollgate-logs",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// A small deterministic pseudo-random generator (SplitMix64), so that the
/// library needs no `rand` and generated workloads are reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }
}

/// Zipf-distributed ranks `0..n` with exponent `s` (rank 0 the most popular).
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks.
    pub fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n.max(1) {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    /// The rank for a uniform number `u` in [0, 1).
    pub fn rank(&self, u: f64) -> usize {
        self.cdf
            .partition_point(|c| *c <= u)
            .min(self.cdf.len() - 1)
    }
}

/// A realistic API traffic mix: keys with Zipf popularity, anonymous
/// callers by IP, some 404s, denials and 5xx.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// The distinct API keys.
    pub keys: usize,
    /// The distinct anonymous IPs.
    pub anonymous_ips: usize,
    /// The share of requests from anonymous callers.
    pub anonymous_share: f64,
    zipf: Zipf,
    rng: SplitMix,
    seq: u64,
}

/// What one generated request is, for computing the true counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The identity text.
    pub identity: String,
    /// Whether tollgate must count it (2xx-4xx, not denied).
    pub counts: bool,
    /// Its time, epoch milliseconds.
    pub time_ms: i64,
}

impl Traffic {
    /// `keys` keys with Zipf exponent `s`, `anonymous_ips` IPs taking
    /// `anonymous_share` of requests, seeded.
    pub fn new(keys: usize, s: f64, anonymous_ips: usize, anonymous_share: f64, seed: u64) -> Self {
        Traffic {
            keys,
            anonymous_ips,
            anonymous_share,
            zipf: Zipf::new(keys, s),
            rng: SplitMix(seed),
            seq: 0,
        }
    }

    /// `n` log events starting at `start_ms`, `spacing_ms` apart: 93% 200,
    /// 3% 404, 2% denied (403/429 ACCESS_DENIED), 2% 502.
    pub fn events(
        &mut self,
        n: usize,
        start_ms: i64,
        spacing_ms: i64,
    ) -> (Vec<Event>, Vec<Generated>) {
        let mut events = Vec::with_capacity(n);
        let mut truth = Vec::with_capacity(n);
        for i in 0..n {
            self.seq += 1;
            let time_ms = start_ms + i as i64 * spacing_ms;
            let anonymous = self.rng.next_f64() < self.anonymous_share;
            let (identity, ip) = if anonymous {
                let a = self.rng.below(self.anonymous_ips) as u32;
                let ip = format!("10.{}.{}.{}", (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
                (format!("ip:{ip}"), ip)
            } else {
                let k = self.zipf.rank(self.rng.next_f64());
                let ip = format!("198.51.{}.{}", (k >> 8) & 0xff, k & 0xff);
                (format!("key:k{k:05}"), ip)
            };
            let roll = self.rng.below(100);
            let (status, error_type) = match roll {
                0..=92 => (200, "-"),
                93..=95 => (404, "-"),
                96 => (403, "ACCESS_DENIED"),
                97 => (429, "ACCESS_DENIED"),
                _ => (502, "-"),
            };
            let request_id = format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                self.rng.next_u64() as u32,
                self.seq & 0xffff,
                i & 0xfff,
                roll,
                self.seq
            );
            let message = access_line(&Request {
                request_id: &request_id,
                time_ms,
                ip: &ip,
                identity: &identity,
                status,
                error_type,
            });
            events.push(Event {
                id: event_id(time_ms, self.seq),
                timestamp: time_ms + 40,
                message,
            });
            truth.push(Generated {
                identity,
                counts: error_type == "-" && status < 500,
                time_ms,
            });
        }
        (events, truth)
    }
}
