//! `tollgate-dev bench limits`: a model of how the authorizer holds hard
//! limits across regions, for issue 18. Pure and fast: no DynamoDB, no
//! functions; the workload's calls ([`crate::workload`]) over many regions,
//! each with several authorizer containers, through three designs:
//!
//! - `blocks` (today): a call is allowed until the *counted* global usage
//!   reaches the limit; counts arrive after the log batching window, one
//!   stream pass and the authorizer's cache;
//! - `leases`: the rules of [`tollgate_core::lease`] on
//!   [`tollgate_store::memory::MemoryAllowances`], one lease book per
//!   container;
//! - `reserve`: near a limit, one conditional decrement per call on the
//!   region's reserve, funded from the last counted usage.
//!
//! Each runs in every hazard's scenario ([`Scenario`]), and the report says,
//! against the truth (every allowed call): the calls allowed past a hard
//! limit, the calls denied while the true usage was below it, the store
//! writes per call and the store calls per decision. See [`designs`] for
//! what each design does, call by call.

mod designs;
mod sim;
#[cfg(test)]
mod tests;

use anyhow::{anyhow, Result};

use crate::workload::Workload;

/// Settings of a `bench limits` run.
#[derive(Debug, clap::Args)]
pub struct LimitsArgs {
    /// `w1` (9.6 calls/s), `w2` (1,000 calls/s) or `both`.
    #[arg(long, default_value = "both")]
    pub workload: String,
    /// Simulated regions.
    #[arg(long, default_value_t = 10)]
    pub regions: usize,
    /// Authorizer containers per region (a call goes to one at random).
    #[arg(long, default_value_t = 4)]
    pub containers: usize,
    /// Simulated seconds (default: 3,600 for W1, 600 for W2).
    #[arg(long)]
    pub seconds: Option<u32>,
    /// Seconds between two log deliveries per region: the counting lag is
    /// this + one stream pass (1 s) + the authorizer's cache (5 s).
    #[arg(long, default_value_t = 300)]
    pub log_batch_seconds: u32,
    /// Scenarios, comma-separated (default: all): base, burst, one-region,
    /// churn, region-down, plan-change, near-limits.
    #[arg(long, value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// Designs, comma-separated (default: all): blocks, leases, reserve.
    #[arg(long, value_delimiter = ',')]
    pub design: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// How the edge knows when to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    Blocks,
    Leases,
    Reserve,
}

impl Design {
    /// Every design, in the report's order.
    pub const ALL: [Design; 3] = [Design::Blocks, Design::Leases, Design::Reserve];

    /// The design's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Design::Blocks => "blocks",
            Design::Leases => "leases",
            Design::Reserve => "reserve",
        }
    }
}

/// The hazards, one per scenario; each starts a day (and a month) with
/// no usage counted, so every one also bursts from zero at the workload's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The workload as it is.
    Base,
    /// The first 60 s at 10 times the rate.
    Burst,
    /// Every call in the first region.
    OneRegion,
    /// 5 % of the containers replaced every minute (their leases lost).
    Churn,
    /// The last region down for the whole run: its callers fail over to
    /// the others, and its allowance cannot be reached.
    RegionDown,
    /// The paid plan's daily limit raised from 1,500 to 3,000 a third into
    /// the run, lowered to 1,000 at two thirds.
    PlanChange,
    /// The 500 most popular keys start 5 calls below their daily limit,
    /// 5,000 anonymous IPs 2 below theirs.
    NearLimits,
}

impl Scenario {
    /// Every scenario, in the report's order.
    pub const ALL: [Scenario; 7] = [
        Scenario::Base,
        Scenario::Burst,
        Scenario::OneRegion,
        Scenario::Churn,
        Scenario::RegionDown,
        Scenario::PlanChange,
        Scenario::NearLimits,
    ];

    /// The scenario's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Base => "base",
            Scenario::Burst => "burst",
            Scenario::OneRegion => "one-region",
            Scenario::Churn => "churn",
            Scenario::RegionDown => "region-down",
            Scenario::PlanChange => "plan-change",
            Scenario::NearLimits => "near-limits",
        }
    }
}

/// What one model run plays.
#[derive(Debug, Clone)]
pub struct Settings {
    pub workload: Workload,
    pub regions: usize,
    pub containers: usize,
    pub seed: u64,
    key_cache_ms: i64,
    plan_cache_ms: i64,
}

impl Settings {
    /// `workload` over `regions` regions of `containers` containers each,
    /// with the authorizer's default cache lifetimes.
    pub fn new(workload: Workload, regions: usize, containers: usize, seed: u64) -> Settings {
        let d = authorizer::config::Config::default();
        Settings {
            workload,
            regions: regions.max(1),
            containers: containers.max(1),
            seed,
            key_cache_ms: d.cache_ttl.as_millis() as i64,
            plan_cache_ms: d.plan_cache_ttl.as_millis() as i64,
        }
    }

    fn batch_ms(&self) -> i64 {
        i64::from(self.workload.log_batch_seconds.max(1)) * 1000
    }

    fn key_cache_ms(&self) -> i64 {
        self.key_cache_ms
    }

    fn plan_cache_ms(&self) -> i64 {
        self.plan_cache_ms
    }
}

/// One design in one scenario, summed up against the truth.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub design: Design,
    pub scenario: Scenario,
    pub calls: u64,
    pub denied: u64,
    /// The most calls allowed past the limit of one identity-period, and that limit.
    pub over_max: (u64, u64),
    /// Calls allowed past at least one hard limit.
    pub over_total: u64,
    /// Identity-periods past the goal, max(1 % of the limit, 1 call per region).
    pub over_missed: u64,
    /// The most calls denied while the true usage was below the limit, of
    /// one identity-period, and that limit.
    pub false_max: (u64, u64),
    pub false_total: u64,
    /// Identity-periods past the goal, 1 % of the limit.
    pub false_missed: u64,
    /// Of the identity-periods falsely denied, the most calls short of the
    /// limit at the end of the run (units stranded, not calls refused), and that limit.
    pub short_max: (u64, u64),
    /// Store writes per call (the authorizer's, and reserve mode's funding).
    pub writes_per_call: f64,
    /// Pulls from peer regions (leases).
    pub pulls: u64,
    /// Store calls per decision: p50, p99, max.
    pub per_decision: (usize, usize, usize),
}

/// Plays `design` in `scenario` with `settings`.
pub fn outcome(settings: &Settings, scenario: Scenario, design: Design) -> Outcome {
    let world = sim::play(settings, scenario, design);
    let regions = settings.regions as u64;
    let (mut over_max, mut over_missed) = ((0, 0), 0);
    let (mut false_max, mut false_missed) = ((0, 0), 0);
    let mut short_max = (0, 0);
    for slot in 0..world.over.len() {
        let (over, denied) = (world.over[slot], world.false_denied[slot]);
        if over == 0 && denied == 0 {
            continue;
        }
        let limit = world.smallest_limit(slot);
        if over > over_max.0 {
            over_max = (over, limit);
        }
        over_missed += u64::from(over > (limit / 100).max(regions));
        if denied as f64 / limit as f64 > false_max.0 as f64 / false_max.1.max(1) as f64 {
            false_max = (denied, limit);
        }
        false_missed += u64::from(denied as f64 > limit as f64 / 100.0);
        let end_limit = world.limit(slot, world.version);
        let short = end_limit.saturating_sub(world.allowed[slot]);
        if denied > 0 && short > short_max.0 {
            short_max = (short, end_limit);
        }
    }
    let h = &world.stats.histogram;
    let decisions: u64 = h.iter().sum();
    let quantile = |q: f64| {
        let want = (q * decisions as f64).ceil() as u64;
        let mut seen = 0;
        h.iter()
            .position(|&n| {
                seen += n;
                seen >= want.max(1)
            })
            .unwrap_or(0)
    };
    let max = h.iter().rposition(|&n| n > 0).unwrap_or(0);
    Outcome {
        design,
        scenario,
        calls: world.allowed_calls + world.denied_calls,
        denied: world.denied_calls,
        over_max,
        over_total: world.over_calls,
        over_missed,
        false_max,
        false_total: world.false_calls,
        false_missed,
        short_max,
        writes_per_call: world.stats.writes as f64 / decisions.max(1) as f64,
        pulls: world.stats.pulls,
        per_decision: (quantile(0.5), quantile(0.99), max),
    }
}

/// Runs the model and prints its table.
pub fn run(args: &LimitsArgs) -> Result<()> {
    let workloads: Vec<Workload> = match args.workload.as_str() {
        "both" => vec![Workload::w1(), Workload::w2()],
        name => vec![Workload::named(name)
            .ok_or_else(|| anyhow!("unknown workload {name:?}: use w1, w2 or both"))?],
    };
    let scenarios = pick(&args.scenario, &Scenario::ALL, |s| s.name(), "scenario")?;
    let designs = pick(&args.design, &Design::ALL, |d| d.name(), "design")?;
    for mut w in workloads {
        w.seconds = args
            .seconds
            .unwrap_or(if w.name == "w1" { 3_600 } else { 600 });
        w.log_batch_seconds = args.log_batch_seconds;
        let settings = Settings::new(w.clone(), args.regions, args.containers, args.seed);
        println!(
            "\n{}: {:.1} calls/s for {} s, {} regions x {} containers, logs every {} s (counting lag {} s + {} s stream pass + {} s cache)",
            w.name,
            w.calls_per_second,
            w.seconds,
            settings.regions,
            settings.containers,
            w.log_batch_seconds,
            w.log_batch_seconds,
            sim::STREAM_PASS_MS / 1000,
            settings.key_cache_ms() / 1000
        );
        println!("| scenario | design | denied | overshoot max (of limit) | overshoot total | false denials max (of limit) | false denials total | short of the limit at the end, max | writes/call | store calls/decision p50/p99/max | goals missed (over / false) |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for &scenario in &scenarios {
            for &design in &designs {
                let o = outcome(&settings, scenario, design);
                println!("{}", row(&o));
            }
        }
    }
    Ok(())
}

/// One row of the table.
fn row(o: &Outcome) -> String {
    let pct = |(n, limit): (u64, u64)| {
        if n == 0 {
            "0".to_owned()
        } else {
            format!(
                "{} ({:.1} % of {})",
                thousands(n),
                n as f64 * 100.0 / limit.max(1) as f64,
                thousands(limit)
            )
        }
    };
    let (p50, p99, max) = o.per_decision;
    let max = if max + 1 >= sim::HISTOGRAM {
        format!("{max}+")
    } else {
        max.to_string()
    };
    format!(
        "| {} | {} | {:.1} % | {} | {} | {} | {} | {} | {:.4}{} | {p50} / {p99} / {max} | {} / {} |",
        o.scenario.name(),
        o.design.name(),
        o.denied as f64 * 100.0 / o.calls.max(1) as f64,
        pct(o.over_max),
        thousands(o.over_total),
        pct(o.false_max),
        thousands(o.false_total),
        pct(o.short_max),
        o.writes_per_call,
        if o.pulls > 0 {
            format!(" ({} pulls)", thousands(o.pulls))
        } else {
            String::new()
        },
        o.over_missed,
        o.false_missed
    )
}

/// `n` with thousands separators.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The items of `all` named in `names` (all of them when empty).
fn pick<T: Copy>(
    names: &[String],
    all: &[T],
    name: impl Fn(T) -> &'static str,
    what: &str,
) -> Result<Vec<T>> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names
        .iter()
        .map(|n| {
            all.iter()
                .copied()
                .find(|&x| name(x) == n)
                .ok_or_else(|| anyhow!("unknown {what} {n:?}"))
        })
        .collect()
}
