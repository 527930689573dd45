//! Plans: named quotas, each a `(meter, window, limit)`, with an overage
//! policy (`hard` denies once reached, `soft` allows and counts the overage)
//! and a failure policy for when the store cannot be read.

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
}
