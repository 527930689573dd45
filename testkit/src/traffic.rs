//! Synthetic API Gateway traffic as access log lines: one request rendered
//! in an access-log format ([`access_line`]) and a realistic, seeded mix
//! of requests ([`Traffic`]), for the tests, the benchmarks and the dev
//! tools.

use crate::cloudwatch::{event_id, Event};

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

/// Renders the access-log `format` (log-processor's
/// `ACCESS_LOG_FORMAT`) for one request, as API Gateway does: every
/// `$context.*` variable the request does not set becomes `-`.
pub fn access_line(format: &str, r: &Request<'_>) -> String {
    let integration = if r.error_type == "-" {
        r.status.to_string()
    } else {
        "-".to_owned()
    };
    let value = |name: &str| -> String {
        match name {
            "requestId" => r.request_id.to_owned(),
            "requestTimeEpoch" => r.time_ms.to_string(),
            "identity.sourceIp" => r.ip.to_owned(),
            "httpMethod" => "GET".to_owned(),
            "resourcePath" => "/v1/lookup/{ip}".to_owned(),
            "status" => r.status.to_string(),
            "integrationStatus" => integration.clone(),
            "error.responseType" => r.error_type.to_owned(),
            "authorizer.identity" if !r.identity.is_empty() => r.identity.to_owned(),
            _ => "-".to_owned(),
        }
    };
    const VARIABLE: &str = "$context.";
    let mut out = String::with_capacity(format.len() + 64);
    let mut rest = format;
    while let Some(at) = rest.find(VARIABLE) {
        out.push_str(&rest[..at]);
        let name_start = at + VARIABLE.len();
        let name_len = rest[name_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(rest.len() - name_start);
        // A trailing `.` ends a sentence, not the name.
        let name = rest[name_start..name_start + name_len].trim_end_matches('.');
        out.push_str(&value(name));
        rest = &rest[name_start + name.len()..];
    }
    out.push_str(rest);
    out
}

/// A small deterministic pseudo-random generator (SplitMix64), so that
/// generated workloads are reproducible.
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
/// callers by IP, some 404s, denials and 5xx, logged in an access-log format.
#[derive(Debug, Clone)]
pub struct Traffic {
    format: String,
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
    /// `anonymous_share` of requests, seeded, logged in `format`
    /// (log-processor's `ACCESS_LOG_FORMAT`).
    pub fn new(
        format: &str,
        keys: usize,
        s: f64,
        anonymous_ips: usize,
        anonymous_share: f64,
        seed: u64,
    ) -> Self {
        Traffic {
            format: format.to_owned(),
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
            let message = access_line(
                &self.format,
                &Request {
                    request_id: &request_id,
                    time_ms,
                    ip: &ip,
                    identity: &identity,
                    status,
                    error_type,
                },
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: &str = r#"{"requestId":"$context.requestId","time":$context.requestTimeEpoch,"ip":"$context.identity.sourceIp","status":$context.status,"integrationStatus":"$context.integrationStatus","errorType":"$context.error.responseType","identity":"$context.authorizer.identity","other":"$context.authorizer.somethingNew"}"#;

    fn request<'a>(identity: &'a str, status: u16, error_type: &'a str) -> Request<'a> {
        Request {
            request_id: "r-1",
            time_ms: 1_795_000_000_000,
            ip: "192.0.2.1",
            identity,
            status,
            error_type,
        }
    }

    #[test]
    fn renders_each_variable_and_dashes_the_rest() {
        assert_eq!(
            access_line(FORMAT, &request("key:k1", 200, "-")),
            r#"{"requestId":"r-1","time":1795000000000,"ip":"192.0.2.1","status":200,"integrationStatus":"200","errorType":"-","identity":"key:k1","other":"-"}"#
        );
        assert_eq!(
            access_line(FORMAT, &request("", 403, "ACCESS_DENIED")),
            r#"{"requestId":"r-1","time":1795000000000,"ip":"192.0.2.1","status":403,"integrationStatus":"-","errorType":"ACCESS_DENIED","identity":"-","other":"-"}"#
        );
        assert_eq!(
            access_line("at $context.status.", &request("", 200, "-")),
            "at 200."
        );
    }

    #[test]
    fn a_seeded_mix_repeats_and_keeps_its_truth() {
        let run =
            |seed| Traffic::new(FORMAT, 50, 1.1, 20, 0.3, seed).events(500, 1_795_000_000_000, 10);
        let (events, truth) = run(7);
        assert_eq!(run(7).0.len(), 500);
        assert_eq!(
            run(7).0.iter().map(|e| &e.message).collect::<Vec<_>>(),
            events.iter().map(|e| &e.message).collect::<Vec<_>>()
        );
        assert_ne!(
            run(8).0.iter().map(|e| &e.message).collect::<Vec<_>>(),
            events.iter().map(|e| &e.message).collect::<Vec<_>>()
        );
        for (event, t) in events.iter().zip(&truth) {
            assert!(event.message.contains(&t.identity), "{}", event.message);
            assert_eq!(
                t.counts,
                event.message.contains(r#""errorType":"-""#) && !event.message.contains(":502,"),
                "{}",
                event.message
            );
        }
        let anonymous = truth
            .iter()
            .filter(|t| t.identity.starts_with("ip:"))
            .count();
        assert!(
            (100..200).contains(&anonymous),
            "{anonymous} of 500 anonymous (share 0.3)"
        );
    }
}
