//! The model's world: the calls of a scenario, the truth (every allowed
//! call), the counts as they arrive after the counting lag, the authorizer
//! containers of every region with their caches, and the hazards' events
//! (container churn, plan changes). The designs' decisions are in
//! [`super::designs`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tollgate_core::lease::{initial_share, leased_limits, LeaseBook};
use tollgate_core::{Identity, Ipv6Prefix, Limit, MeterName, OveragePolicy, Plan, Window};
use tollgate_store::memory::MemoryAllowances;

use super::{Design, Scenario, Settings};
use crate::bench::{ANON_DAILY, PAID_DAILY, PAID_MONTHLY};
use crate::workload::{calls, Call, Caller, Workload};

/// 2026-12-01T00:00:00Z: every run starts a day and a month.
pub(super) const T0: i64 = 1_796_083_200_000;
/// One pass of the Usage stream through quota-sync, after a log delivery.
pub(super) const STREAM_PASS_MS: i64 = 1_000;
/// `churn`: the share of containers replaced every simulated minute.
const CHURN_PER_MINUTE: f64 = 0.05;
/// `burst`: the first [`BURST_SECONDS`] play at this many times the rate.
const BURST_FACTOR: f64 = 10.0;
const BURST_SECONDS: u32 = 60;
/// `near-limits`: the most popular keys start this close to their daily limit,
/// and the first anonymous IPs this close to theirs.
const NEAR_KEYS: usize = 500;
const NEAR_KEY_LEFT: u64 = 5;
const NEAR_IPS: usize = 5_000;
const NEAR_IP_LEFT: u64 = 2;
/// `plan-change`: the paid plan's daily limit from a third and from two
/// thirds of the run.
const PLAN_RAISED: u64 = 3_000;
const PLAN_LOWERED: u64 = 1_000;
/// The allowances a container's lease book holds at most: more than the
/// model's identity-periods, so that no book evicts (an eviction scans the
/// whole book, computing each period's end, which makes a full book of
/// 10,000 entries cost milliseconds per new identity).
const BOOK_ENTRIES: usize = 1 << 20;
/// Store calls per decision are counted up to this (the last bucket is "or more").
pub(super) const HISTOGRAM: usize = 32;

/// What a container remembers of an identity's key item (5 s by default):
/// per window (day, month) whether a block was written, and whether
/// quota-sync had switched it to reserve mode.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cached {
    pub at: i64,
    pub blocked: [bool; 2],
    pub reserve: [bool; 2],
}

/// One authorizer container.
#[derive(Debug)]
pub(super) struct Container {
    pub book: LeaseBook,
    pub cache: HashMap<u32, Cached>,
    /// Reserve mode: identity-periods found spent, and until when.
    pub spent_until: HashMap<usize, i64>,
    pub plans_read_at: i64,
    pub plan_version: usize,
}

impl Container {
    fn new(now: i64, version: usize) -> Container {
        Container {
            book: LeaseBook::new(BOOK_ENTRIES),
            cache: HashMap::new(),
            spent_until: HashMap::new(),
            plans_read_at: now,
            plan_version: version,
        }
    }
}

/// The store calls the decisions made.
#[derive(Debug, Clone, Default)]
pub(super) struct Stats {
    pub reads: u64,
    pub writes: u64,
    pub pulls: u64,
    /// Decisions by their store calls (index: calls).
    pub histogram: Vec<u64>,
}

/// Reserve mode's state: which identity-periods are in it, and each
/// region's reserve of them.
#[derive(Debug, Default)]
pub(super) struct Reserve {
    pub mode: Vec<bool>,
    pub left: std::collections::HashMap<(usize, usize), u64>,
    /// Identity-periods switched to reserve mode.
    pub switched: u64,
}

impl Reserve {
    pub(super) fn new(slots: usize) -> Reserve {
        Reserve {
            mode: vec![false; slots],
            ..Reserve::default()
        }
    }
}

/// Everything one run of one design in one scenario holds.
pub(super) struct World {
    pub s: Settings,
    pub design: Design,
    pub now: i64,
    /// The paid plan's version in force (indexes `paid`).
    pub version: usize,
    /// The paid plan's versions and when each takes effect.
    pub paid: Vec<(i64, Plan)>,
    pub anonymous: Plan,
    /// Per identity-period (slot): calls allowed (the truth) and counted so far.
    pub allowed: Vec<u64>,
    pub counted: Vec<u64>,
    pub over: Vec<u64>,
    pub false_denied: Vec<u64>,
    pub over_calls: u64,
    pub false_calls: u64,
    pub allowed_calls: u64,
    pub denied_calls: u64,
    /// Allowed calls not counted yet: (when quota-sync sees them, identity, region).
    pending: VecDeque<(i64, u32, usize)>,
    pub containers: Vec<Vec<Container>>,
    next_churn: i64,
    pub rng: StdRng,
    identities: Vec<Option<Identity>>,
    pub leases: Vec<MemoryAllowances>,
    pub reserve: Reserve,
    pub stats: Stats,
    /// The region that is down for the whole run (`region-down`).
    pub down: Option<usize>,
    scenario: Scenario,
}

/// The identity-periods (slots) of an identity: a key's day and month, an
/// anonymous IP's day.
pub(super) fn slots(w: &Workload, id: u32) -> ([usize; 2], usize) {
    let base = id as usize * 2;
    if (id as usize) < w.keys {
        ([base, base + 1], 2)
    } else {
        ([base, base], 1)
    }
}

fn id_of(w: &Workload, caller: Caller) -> u32 {
    match caller {
        Caller::Key(i) => i as u32,
        Caller::Anonymous(i) => (w.keys + i) as u32,
    }
}

fn plan(name: &str, limits: &[(Window, u64)]) -> Plan {
    Plan {
        name: name.into(),
        limits: limits
            .iter()
            .map(|&(window, limit)| Limit {
                meter: MeterName::requests(),
                window,
                limit,
            })
            .collect(),
        overage: OveragePolicy::Hard,
        failure: Default::default(),
    }
}

/// The calls a scenario plays, in time order.
pub(super) fn scenario_calls(s: &Settings, scenario: Scenario) -> Vec<Call> {
    let mut out = calls(&s.workload, s.regions, s.seed);
    match scenario {
        Scenario::Burst => {
            let burst = Workload {
                calls_per_second: s.workload.calls_per_second * (BURST_FACTOR - 1.0),
                seconds: BURST_SECONDS.min(s.workload.seconds),
                ..s.workload.clone()
            };
            out.extend(calls(&burst, s.regions, s.seed ^ 0xB5));
            out.sort_by_key(|c| c.at_ms);
        }
        Scenario::OneRegion => out.iter_mut().for_each(|c| c.region = 0),
        _ => {}
    }
    out
}

impl World {
    pub(super) fn new(s: &Settings, scenario: Scenario, design: Design) -> World {
        let w = &s.workload;
        let run_ms = i64::from(w.seconds) * 1000;
        let mut paid = vec![(
            T0,
            plan(
                "paid",
                &[(Window::Day, PAID_DAILY), (Window::Month, PAID_MONTHLY)],
            ),
        )];
        if scenario == Scenario::PlanChange {
            for (at, daily) in [(run_ms / 3, PLAN_RAISED), (2 * run_ms / 3, PLAN_LOWERED)] {
                paid.push((
                    T0 + at,
                    plan(
                        "paid",
                        &[(Window::Day, daily), (Window::Month, PAID_MONTHLY)],
                    ),
                ));
            }
        }
        let slots = (w.keys + w.anonymous_ips) * 2;
        let mut rng = StdRng::seed_from_u64(s.seed ^ 0x11_3175);
        let plan_ttl = s.plan_cache_ms();
        let containers = (0..s.regions)
            .map(|_| {
                (0..s.containers)
                    .map(|_| {
                        // Containers read the plans at different moments.
                        Container::new(T0 - rng.random_range(0..plan_ttl.max(1)), 0)
                    })
                    .collect()
            })
            .collect();
        let down = (scenario == Scenario::RegionDown && s.regions > 1).then_some(s.regions - 1);
        let leases = MemoryAllowances::deployment(s.regions);
        if let Some(d) = down {
            leases[0].set_down(d, true);
        }
        World {
            s: s.clone(),
            design,
            now: T0,
            version: 0,
            paid,
            anonymous: plan("anonymous", &[(Window::Day, ANON_DAILY)]),
            allowed: vec![0; slots],
            counted: vec![0; slots],
            over: vec![0; slots],
            false_denied: vec![0; slots],
            over_calls: 0,
            false_calls: 0,
            allowed_calls: 0,
            denied_calls: 0,
            pending: VecDeque::new(),
            containers,
            next_churn: T0 + 60_000,
            rng,
            identities: vec![None; w.keys + w.anonymous_ips],
            leases,
            reserve: Reserve::new(slots),
            stats: Stats {
                histogram: vec![0; HISTOGRAM],
                ..Stats::default()
            },
            down,
            scenario,
        }
    }

    /// The limit of `slot` in plan version `version`.
    pub(super) fn limit(&self, slot: usize, version: usize) -> u64 {
        if slot / 2 >= self.s.workload.keys {
            ANON_DAILY
        } else if slot % 2 == 1 {
            PAID_MONTHLY
        } else {
            self.paid[version].1.limits[0].limit
        }
    }

    /// The smallest limit of `slot` in force during the run (the goals'
    /// reference when a plan changes).
    pub(super) fn smallest_limit(&self, slot: usize) -> u64 {
        (0..self.paid.len())
            .map(|v| self.limit(slot, v))
            .min()
            .unwrap_or(0)
    }

    /// The identity behind index `id`.
    pub(super) fn identity(&mut self, id: u32) -> Identity {
        let keys = self.s.workload.keys;
        self.identities[id as usize]
            .get_or_insert_with(|| {
                let i = id as usize;
                if i < keys {
                    Identity::Key(format!("k_{i:016x}"))
                } else {
                    let ip = Ipv4Addr::from(0x0A00_0000 | (i - keys) as u32);
                    Identity::anonymous_ip(IpAddr::V4(ip), Ipv6Prefix::DEFAULT)
                }
            })
            .clone()
    }

    /// The plan of identity `id` as plan version `version` has it.
    pub(super) fn plan_of(&self, id: u32, version: usize) -> &Plan {
        if (id as usize) < self.s.workload.keys {
            &self.paid[version].1
        } else {
            &self.anonymous
        }
    }

    /// `near-limits`: the usage the run starts with, counted, and taken
    /// from the regions' allowances evenly.
    pub(super) fn prime(&mut self) {
        if self.scenario != Scenario::NearLimits {
            return;
        }
        let w = self.s.workload.clone();
        let near = (0..NEAR_KEYS.min(w.keys))
            .map(|i| (i as u32, PAID_DAILY - NEAR_KEY_LEFT))
            .chain(
                (0..NEAR_IPS.min(w.anonymous_ips))
                    .map(|i| ((w.keys + i) as u32, ANON_DAILY - NEAR_IP_LEFT)),
            );
        for (id, used) in near.collect::<Vec<_>>() {
            let (slots, n) = slots(&w, id);
            for &slot in &slots[..n] {
                self.allowed[slot] = used;
                self.counted[slot] = used;
            }
            let identity = self.identity(id);
            for leased in leased_limits(self.plan_of(id, 0), &identity, T0) {
                for (r, handle) in self.leases.iter().enumerate() {
                    let want = initial_share(used, self.s.regions, r);
                    // Cannot fail: no region is down in this scenario.
                    let _ = futures::executor::block_on(tollgate_store::ports::Allowances::take(
                        handle, &leased, want,
                    ));
                }
            }
            if self.design == Design::Reserve {
                for &slot in &slots[..n] {
                    self.reserve_evaluate(slot, 0, &[]);
                }
            }
        }
        self.stats = Stats {
            histogram: vec![0; HISTOGRAM],
            ..Stats::default()
        };
    }

    /// Plays what happens up to `now`: counts arriving, containers
    /// replaced, plan changes, in time order.
    fn advance(&mut self, now: i64) {
        loop {
            let count = self.pending.front().map(|p| p.0).filter(|&t| t <= now);
            let churn = (self.scenario == Scenario::Churn && self.next_churn <= now)
                .then_some(self.next_churn);
            let change = self
                .paid
                .get(self.version + 1)
                .map(|p| p.0)
                .filter(|&t| t <= now);
            let next = [count, churn, change].into_iter().flatten().min();
            let Some(at) = next else { break };
            self.now = at;
            if change == Some(at) {
                self.version += 1;
                if self.design == Design::Reserve {
                    self.reserve_plan_changed();
                }
            } else if churn == Some(at) {
                for r in 0..self.s.regions {
                    for c in 0..self.s.containers {
                        if self.rng.random::<f64>() < CHURN_PER_MINUTE {
                            self.containers[r][c] = Container::new(at, self.version);
                        }
                    }
                }
                self.next_churn += 60_000;
            } else {
                self.count(at);
            }
        }
        self.now = now;
    }

    /// The counts of every call quota-sync sees at `at`.
    fn count(&mut self, at: i64) {
        let w = self.s.workload.clone();
        let mut batch: HashMap<usize, Vec<u64>> = HashMap::new();
        while let Some(&(t, id, region)) = self.pending.front() {
            if t != at {
                break;
            }
            self.pending.pop_front();
            let (slots, n) = slots(&w, id);
            for &slot in &slots[..n] {
                self.counted[slot] += 1;
                if self.design == Design::Reserve {
                    batch.entry(slot).or_insert_with(|| vec![0; self.s.regions])[region] += 1;
                }
            }
        }
        let mut changed: Vec<(usize, Vec<u64>)> = batch.into_iter().collect();
        changed.sort_unstable_by_key(|(slot, _)| *slot);
        for (slot, per_region) in changed {
            let n = per_region.iter().sum();
            self.reserve_evaluate(slot, n, &per_region);
        }
    }

    /// The region a call is served in: a down region's callers fail over
    /// to the others.
    fn route(&self, call: &Call, seq: usize) -> usize {
        match self.down {
            Some(d) if call.region == d => seq % d.max(1),
            _ => call.region,
        }
    }

    /// Records the decision against the truth.
    fn settle(&mut self, id: u32, region: usize, allowed: bool) {
        let (slots, n) = slots(&self.s.workload, id);
        let slots = &slots[..n];
        if allowed {
            self.allowed_calls += 1;
            let mut past = false;
            for &slot in slots {
                if self.allowed[slot] >= self.limit(slot, self.version) {
                    self.over[slot] += 1;
                    past = true;
                }
            }
            self.over_calls += u64::from(past);
            for &slot in slots {
                self.allowed[slot] += 1;
            }
            let batch = self.s.batch_ms();
            let delivered = T0 + ((self.now - T0) / batch + 1) * batch;
            self.pending
                .push_back((delivered + STREAM_PASS_MS, id, region));
        } else {
            self.denied_calls += 1;
            let room = slots
                .iter()
                .map(|&slot| {
                    (
                        self.limit(slot, self.version) as i64 - self.allowed[slot] as i64,
                        slot,
                    )
                })
                .min();
            if let Some((room, slot)) = room {
                if room > 0 {
                    self.false_denied[slot] += 1;
                    self.false_calls += 1;
                }
            }
        }
    }
}

/// Plays `design` in `scenario`.
pub(super) fn play(s: &Settings, scenario: Scenario, design: Design) -> World {
    let calls = scenario_calls(s, scenario);
    let mut world = World::new(s, scenario, design);
    world.prime();
    for (seq, call) in calls.iter().enumerate() {
        world.advance(T0 + call.at_ms);
        let region = world.route(call, seq);
        let container = world.rng.random_range(0..s.containers.max(1));
        let id = id_of(&s.workload, call.caller);
        let (allowed, store_calls) = world.decide(region, container, id);
        world.stats.histogram[store_calls.min(HISTOGRAM - 1)] += 1;
        world.settle(id, region, allowed);
    }
    world
}
