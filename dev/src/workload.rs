//! Synthetic traffic for the demo and the cost benchmark: calls from API
//! keys with Zipf-distributed popularity and from anonymous IPs, arriving
//! as a Poisson process, spread over regions. Seeded, so a run repeats.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tollgate_testkit::traffic::Zipf;

/// The shape of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: &'static str,
    /// Mean calls per second over all regions.
    pub calls_per_second: f64,
    /// Number of API keys, popularity Zipf(`zipf_s`).
    pub keys: usize,
    pub zipf_s: f64,
    /// Number of anonymous IPs (uniform) and their share of calls.
    pub anonymous_ips: usize,
    pub anonymous_share: f64,
    /// Share of calls that also post a meter event.
    pub meter_event_share: f64,
    /// Share of log batches that CloudWatch Logs delivers twice.
    pub redelivery_share: f64,
    /// Seconds between two log deliveries of one region (one log stream).
    pub log_batch_seconds: u32,
    /// Simulated seconds to play.
    pub seconds: u32,
}

impl Workload {
    /// W1, a busy public API: 25 million calls a month (about 10 per second).
    pub fn w1() -> Workload {
        Workload {
            name: "w1",
            calls_per_second: 25_000_000.0 / (30.0 * 86_400.0),
            keys: 10_000,
            zipf_s: 1.1,
            anonymous_ips: 50_000,
            anonymous_share: 0.2,
            meter_event_share: 0.01,
            redelivery_share: 0.01,
            log_batch_seconds: 60,
            seconds: 3_600,
        }
    }

    /// W2, metering at scale: 1,000 calls per second, the same shape.
    pub fn w2() -> Workload {
        Workload {
            name: "w2",
            calls_per_second: 1_000.0,
            seconds: 120,
            ..Workload::w1()
        }
    }

    /// A workload by name (`w1`, `w2`).
    pub fn named(name: &str) -> Option<Workload> {
        match name {
            "w1" => Some(Workload::w1()),
            "w2" => Some(Workload::w2()),
            _ => None,
        }
    }

    /// The expected number of calls.
    pub fn expected_calls(&self) -> f64 {
        self.calls_per_second * f64::from(self.seconds)
    }
}

/// Who made a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Caller {
    /// The n-th API key (0 is the most popular).
    Key(usize),
    /// The n-th anonymous IP.
    Anonymous(usize),
}

/// One API call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Call {
    /// Milliseconds since the start of the run.
    pub at_ms: i64,
    pub region: usize,
    pub caller: Caller,
    /// Whether the backend also posts a meter event for it.
    pub meter_event: bool,
}

/// The calls of a workload over `regions` regions, in time order.
pub fn calls(w: &Workload, regions: usize, seed: u64) -> Vec<Call> {
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(w.keys, w.zipf_s);
    let end_ms = i64::from(w.seconds) * 1000;
    let mut out = Vec::with_capacity(w.expected_calls() as usize + 16);
    let mut t = 0.0f64;
    loop {
        // Exponential inter-arrival times: a Poisson process.
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        t += -u.ln() / w.calls_per_second * 1000.0;
        let at_ms = t as i64;
        if at_ms >= end_ms {
            return out;
        }
        let caller = if rng.random::<f64>() < w.anonymous_share {
            Caller::Anonymous(rng.random_range(0..w.anonymous_ips.max(1)))
        } else {
            Caller::Key(zipf.rank(rng.random()))
        };
        out.push(Call {
            at_ms,
            region: rng.random_range(0..regions.max(1)),
            caller,
            meter_event: rng.random::<f64>() < w.meter_event_share,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ranks_and_stays_in_range() {
        let z = Zipf::new(1000, 1.1);
        let mut rng = StdRng::seed_from_u64(7);
        let samples: Vec<usize> = (0..20_000).map(|_| z.rank(rng.random())).collect();
        assert!(samples.iter().all(|&k| k < 1000));
        let top = samples.iter().filter(|&&k| k == 0).count() as f64 / 20_000.0;
        // P(rank 0) = 1 / H(1000, 1.1), about 0.15.
        assert!((0.12..0.19).contains(&top), "rank 0 share {top}");
        assert!(
            samples.iter().filter(|&&k| k == 0).count()
                > samples.iter().filter(|&&k| k == 10).count() * 5
        );
    }

    #[test]
    fn calls_follow_the_workload_shape() {
        let w = Workload {
            seconds: 600,
            ..Workload::w1()
        };
        let calls = calls(&w, 3, 1);
        let n = calls.len() as f64;
        assert!(
            (n - w.expected_calls()).abs() < 0.1 * w.expected_calls(),
            "{n} calls"
        );
        assert!(calls.windows(2).all(|p| p[0].at_ms <= p[1].at_ms));
        let anon = calls
            .iter()
            .filter(|c| matches!(c.caller, Caller::Anonymous(_)))
            .count() as f64
            / n;
        assert!((0.15..0.25).contains(&anon), "anonymous share {anon}");
        assert!(calls.iter().all(|c| c.region < 3));
        assert_eq!(calls, super::calls(&w, 3, 1), "seeded runs repeat");
    }
}
