//! Plans: named quotas, each a `(meter, window, limit)`, with an overage
//! policy (`hard` denies once reached, `soft` allows and counts the overage)
//! and a failure policy for when the store cannot be read.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{CoreError, MeterName, Window};

/// One quota of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub meter: MeterName,
    pub window: Window,
    /// The number of units allowed in one period of the window.
    pub limit: u64,
}

/// What happens when a limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OveragePolicy {
    /// Deny once the limit is reached (a block is written).
    #[default]
    Hard,
    /// Allow and count the overage, for billing; never blocked.
    Soft,
}

/// What the authorizer does when the store cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Deny (the default): no free usage while the store is down.
    #[default]
    Closed,
    /// Allow and log: availability before quota.
    Open,
}

/// A plan, as written by `tollgate plans put` (YAML or JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    #[serde(default)]
    pub limits: Vec<Limit>,
    #[serde(default)]
    pub overage: OveragePolicy,
    #[serde(default)]
    pub failure: FailurePolicy,
}

impl Plan {
    /// Checks the plan: a valid name, positive limits, one limit per (meter, window).
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |why: String| CoreError::Plan(self.name.clone(), why);
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(bad(
                "a plan name is 1-64 characters of a-z, 0-9, '_' or '-'".into(),
            ));
        }
        for (i, l) in self.limits.iter().enumerate() {
            if l.limit == 0 {
                return Err(bad(format!(
                    "limit {i} ({} per {}) must be positive",
                    l.meter, l.window
                )));
            }
            if self.limits[..i]
                .iter()
                .any(|o| o.meter == l.meter && o.window == l.window)
            {
                return Err(bad(format!("two limits for {} per {}", l.meter, l.window)));
            }
        }
        Ok(())
    }

    /// Whether reaching a limit of this plan denies requests.
    pub fn is_hard(&self) -> bool {
        self.overage == OveragePolicy::Hard
    }

    /// The limit of this plan for a meter and window, if it has one.
    pub fn limit_for(&self, meter: &MeterName, window: Window) -> Option<u64> {
        self.limits
            .iter()
            .find(|l| &l.meter == meter && l.window == window)
            .map(|l| l.limit)
    }
}

/// The windows that any of `plans` limits for `meter`, sorted and unique:
/// the only windows worth counting for that meter.
pub fn windows_used<'a>(
    plans: impl IntoIterator<Item = &'a Plan>,
    meter: &MeterName,
) -> Vec<Window> {
    let mut windows: Vec<Window> = plans
        .into_iter()
        .flat_map(|p| p.limits.iter())
        .filter(|l| &l.meter == meter)
        .map(|l| l.window)
        .collect();
    windows.sort();
    windows.dedup();
    windows
}

/// The windows `meter` is counted in: `configured` plus every window that
/// any of `plans` limits for `meter`, sorted and unique. A limit whose
/// window were not counted would never be reached, so never enforced.
pub fn windows_counted<'a>(
    configured: &[Window],
    plans: impl IntoIterator<Item = &'a Plan>,
    meter: &MeterName,
) -> Vec<Window> {
    let mut windows = configured.to_vec();
    windows.extend(windows_used(plans, meter));
    windows.sort();
    windows.dedup();
    windows
}

/// Which windows each meter is counted in, for API keys (and customers)
/// and for anonymous identities: the configured windows of each kind
/// (`TOLLGATE_WINDOWS`, `TOLLGATE_ANONYMOUS_WINDOWS`) plus, per meter,
/// the windows the plans limit ([`windows_counted`]): for a named
/// identity, any plan's; for an anonymous identity, the anonymous plan's
/// only (no other plan applies to it, and each of its windows is a bucket
/// write of its own).
///
/// Every window can be stored for every identity kind: a minute or hour
/// counter of a key has an item of its own, an anonymous identity's a
/// bucket item of that one period, both kept a while past the period's end
/// (the Usage table's TTL).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountedWindows {
    named: Vec<Window>,
    anonymous: Vec<Window>,
    /// The meters some plan limits: their (named, anonymous) windows.
    meters: BTreeMap<MeterName, (Vec<Window>, Vec<Window>)>,
}

impl CountedWindows {
    /// The configured windows only, whatever the meter (no plan known).
    pub fn configured(named: &[Window], anonymous: &[Window]) -> Self {
        let sorted = |windows: &[Window]| windows_counted(windows, [], &MeterName::requests());
        CountedWindows {
            named: sorted(named),
            anonymous: sorted(anonymous),
            meters: BTreeMap::new(),
        }
    }

    /// The same configured windows, plus what `plans` limit; identities
    /// without a key are on the plan named `anonymous_plan`.
    pub fn with_plans<'a>(
        mut self,
        plans: impl IntoIterator<Item = &'a Plan>,
        anonymous_plan: &str,
    ) -> Self {
        let plans: Vec<&Plan> = plans.into_iter().collect();
        let anonymous: Vec<&Plan> = plans
            .iter()
            .copied()
            .filter(|p| p.name == anonymous_plan)
            .collect();
        let meters: BTreeSet<&MeterName> = plans
            .iter()
            .flat_map(|p| p.limits.iter().map(|l| &l.meter))
            .collect();
        self.meters = meters
            .into_iter()
            .map(|meter| {
                let named = windows_counted(&self.named, plans.iter().copied(), meter);
                let anon = windows_counted(&self.anonymous, anonymous.iter().copied(), meter);
                (meter.clone(), (named, anon))
            })
            .collect();
        self
    }

    /// The windows `meter` is counted in for an identity that is
    /// anonymous (`true`: an IP address or a Referer) or not, sorted.
    pub fn of(&self, meter: &MeterName, anonymous: bool) -> &[Window] {
        match (self.meters.get(meter), anonymous) {
            (Some((named, _)), false) => named,
            (Some((_, anon)), true) => anon,
            (None, false) => &self.named,
            (None, true) => &self.anonymous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str) -> Result<Plan, String> {
        serde_json::from_str::<Plan>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_defaults_and_limits() {
        let p = plan(r#"{"name":"pro","limits":[{"meter":"requests","window":"day","limit":1500},{"meter":"requests","window":"month","limit":30000}]}"#).unwrap();
        p.validate().unwrap();
        assert!(p.is_hard());
        assert_eq!(p.failure, FailurePolicy::Closed);
        assert_eq!(
            p.limit_for(&MeterName::requests(), Window::Month),
            Some(30000)
        );
        assert_eq!(p.limit_for(&MeterName::requests(), Window::Hour), None);
        assert_eq!(
            windows_used([&p], &MeterName::requests()),
            vec![Window::Day, Window::Month]
        );
        assert!(windows_used([&p], &MeterName::new("tokens").unwrap()).is_empty());
    }

    #[test]
    fn rejects_bad_plans() {
        assert!(
            plan(r#"{"name":"x","limits":[{"meter":"requests","window":"week","limit":1}]}"#)
                .is_err()
        );
        assert!(
            plan(r#"{"name":"x","limits":[{"meter":"requests","window":"day","limit":-1}]}"#)
                .is_err()
        );
        assert!(plan(r#"{"name":"x","overage":"maybe"}"#).is_err());
        assert!(plan(r#"{"name":"x","surprise":1}"#).is_err());
        let zero = plan(r#"{"name":"x","limits":[{"meter":"requests","window":"day","limit":0}]}"#)
            .unwrap();
        assert!(zero.validate().is_err());
        let dup = plan(r#"{"name":"x","limits":[{"meter":"requests","window":"day","limit":1},{"meter":"requests","window":"day","limit":2}]}"#).unwrap();
        assert!(dup.validate().is_err());
        let name = plan(r#"{"name":"Has Space"}"#).unwrap();
        assert!(name.validate().is_err());
    }

    fn limited(name: &str, limits: &[(&str, Window)]) -> Plan {
        Plan {
            name: name.into(),
            limits: limits
                .iter()
                .map(|(meter, window)| Limit {
                    meter: MeterName::new(meter).unwrap(),
                    window: *window,
                    limit: 10,
                })
                .collect(),
            overage: OveragePolicy::Hard,
            failure: FailurePolicy::Closed,
        }
    }

    #[test]
    fn counted_windows_are_the_configured_plus_the_plans() {
        use Window::{Day, Hour, Minute, Month};
        let requests = MeterName::requests();
        let tokens = MeterName::new("tokens").unwrap();
        let pro = limited("pro", &[("requests", Hour), ("tokens", Minute)]);
        let free = limited("anonymous", &[("requests", Day), ("requests", Minute)]);
        assert_eq!(
            windows_counted(&[Month, Day], [&pro, &free], &requests),
            [Minute, Hour, Day, Month]
        );
        assert_eq!(windows_counted(&[Day, Day], [], &tokens), [Day]);

        let configured = CountedWindows::configured(&[Month, Day], &[Day]);
        assert_eq!(configured.of(&requests, false), [Day, Month]);
        assert_eq!(configured.of(&tokens, true), [Day]);

        let counted = configured.clone().with_plans([&pro, &free], "anonymous");
        // A key: the configured windows and every plan's.
        assert_eq!(counted.of(&requests, false), [Minute, Hour, Day, Month]);
        assert_eq!(counted.of(&tokens, false), [Minute, Day, Month]);
        // Anonymous: the configured anonymous windows and the anonymous plan's.
        assert_eq!(counted.of(&requests, true), [Minute, Day]);
        assert_eq!(
            counted.of(&tokens, true),
            [Day],
            "pro's limit is not theirs"
        );
        // A meter no plan limits: the configured windows.
        let other = MeterName::new("bytes").unwrap();
        assert_eq!(counted.of(&other, false), [Day, Month]);
        assert_eq!(counted.of(&other, true), [Day]);
        // No anonymous plan by that name: anonymous identities keep theirs.
        let none = configured.clone().with_plans([&pro, &free], "free");
        assert_eq!(none.of(&requests, true), [Day]);
        // No plan: the configured windows.
        assert_eq!(configured.clone().with_plans([], "anonymous"), configured);
    }

    proptest::proptest! {
        /// Every window a plan limits is counted, for a key always and for
        /// an anonymous identity when it is the anonymous plan's; so is
        /// every configured window; nothing else is.
        #[test]
        fn every_limited_window_is_counted(
            named in proptest::collection::vec(0usize..4, 1..4),
            anon in proptest::collection::vec(0usize..4, 1..4),
            limits in proptest::collection::vec((0usize..2, 0usize..2, 0usize..4), 0..8),
        ) {
            let w = |i: usize| Window::ALL[i];
            let names = ["anonymous", "pro"];
            let meters = ["requests", "tokens"];
            let named: Vec<Window> = named.into_iter().map(w).collect();
            let anon: Vec<Window> = anon.into_iter().map(w).collect();
            let plans: Vec<Plan> = names
                .iter()
                .enumerate()
                .map(|(p, name)| {
                    let mut ls: Vec<(&str, Window)> = limits
                        .iter()
                        .filter(|(lp, _, _)| *lp == p)
                        .map(|(_, m, win)| (meters[*m], w(*win)))
                        .collect();
                    ls.sort();
                    ls.dedup();
                    limited(name, &ls)
                })
                .collect();
            let counted = CountedWindows::configured(&named, &anon).with_plans(&plans, "anonymous");
            for meter in meters.map(|m| MeterName::new(m).unwrap()) {
                for (anonymous, configured) in [(false, &named), (true, &anon)] {
                    let got = counted.of(&meter, anonymous);
                    proptest::prop_assert!(got.windows(2).all(|p| p[0] < p[1]), "sorted, unique");
                    for window in Window::ALL {
                        let limited = plans
                            .iter()
                            .filter(|p| !anonymous || p.name == "anonymous")
                            .any(|p| p.limit_for(&meter, window).is_some());
                        let want = limited || configured.contains(&window);
                        proptest::prop_assert_eq!(got.contains(&window), want);
                    }
                }
            }
        }
    }
}
