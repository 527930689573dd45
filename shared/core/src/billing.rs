//! Billing export rules: one record per customer, meter and period, summed
//! over every region's counter and every key of the customer, and the
//! deterministic identifier a billing system deduplicates a record by.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::{Aggregation, Identity, MeterName, Period};

/// One region's counter of one identity, as read from the Usage table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRow {
    /// Who was metered.
    pub identity: Identity,
    /// The meter.
    pub meter: MeterName,
    /// How the meter's events combine.
    pub aggregation: Aggregation,
    /// The counter's value in its region.
    pub value: u64,
}

/// One customer's usage of one meter in one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingRecord {
    /// The customer (a key's owner; `key:<id>` for a key id with no owner).
    pub customer: String,
    /// The meter.
    pub meter: MeterName,
    /// The period.
    pub period: Period,
    /// How the value was combined (`count`/`sum`: summed; `max`: the largest).
    pub aggregation: Aggregation,
    /// The value over every region and key of the customer.
    pub value: u64,
    /// How many keys contributed.
    pub keys: usize,
}

/// What [`records`] left out, for the operator to see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Counters of anonymous identities (IP, Referer): no customer to bill.
    pub anonymous: usize,
    /// Key ids without an owner, exported under `key:<id>`.
    pub unowned_keys: Vec<String>,
}

/// Combines region counters into records, sorted by customer then meter.
/// `owner` gives a key id's customer. Counts and sums add up; a `max`
/// meter's record is the largest of its counters.
pub fn records(
    period: Period,
    rows: &[CounterRow],
    owner: impl Fn(&str) -> Option<String>,
) -> (Vec<BillingRecord>, Skipped) {
    let mut skipped = Skipped::default();
    let mut by: BTreeMap<
        (String, MeterName),
        (Aggregation, u64, std::collections::BTreeSet<String>),
    > = BTreeMap::new();
    for row in rows {
        let Identity::Key(key_id) = &row.identity else {
            skipped.anonymous += 1;
            continue;
        };
        let customer = owner(key_id).unwrap_or_else(|| {
            if !skipped.unowned_keys.contains(key_id) {
                skipped.unowned_keys.push(key_id.clone());
            }
            format!("key:{key_id}")
        });
        let entry = by.entry((customer, row.meter.clone())).or_insert((
            row.aggregation,
            0,
            Default::default(),
        ));
        entry.1 = match row.aggregation {
            Aggregation::Max => entry.1.max(row.value),
            _ => entry.1.saturating_add(row.value),
        };
        entry.2.insert(key_id.clone());
    }
    skipped.unowned_keys.sort();
    let out = by
        .into_iter()
        .map(
            |((customer, meter), (aggregation, value, keys))| BillingRecord {
                customer,
                meter,
                period,
                aggregation,
                value,
                keys: keys.len(),
            },
        )
        .collect();
    (out, skipped)
}

/// The identifier of a record in a billing system: `tg_` and 40 hex digits
/// of the SHA-256 of the deployment, customer, meter and period (each
/// length-prefixed). The same record of the same deployment always gets the
/// same identifier, so a re-export is deduplicated (Stripe keeps meter
/// event identifiers for at least 24 hours), and different deployments
/// (stages) never collide. 43 characters: within Stripe's 100.
pub fn identifier(deployment: &str, customer: &str, meter: &MeterName, period: &Period) -> String {
    let mut hash = Sha256::new();
    for part in [deployment, customer, meter.as_str(), &period.to_string()] {
        hash.update(part.len().to_string().as_bytes());
        hash.update(b":");
        hash.update(part.as_bytes());
    }
    let digest = hex::encode(hash.finalize());
    format!("tg_{}", &digest[..40])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(identity: &str, meter: &str, aggregation: Aggregation, value: u64) -> CounterRow {
        CounterRow {
            identity: identity.parse().unwrap(),
            meter: MeterName::new(meter).unwrap(),
            aggregation,
            value,
        }
    }

    #[test]
    fn records_sum_regions_and_keys_per_customer() {
        let period: Period = "month#2026-11".parse().unwrap();
        let rows = [
            row("key:k1", "tokens", Aggregation::Sum, 100),
            row("key:k1", "tokens", Aggregation::Sum, 50), // another region
            row("key:k2", "tokens", Aggregation::Sum, 7),
            row("key:k1", "peak", Aggregation::Max, 5),
            row("key:k2", "peak", Aggregation::Max, 9),
            row("key:k3", "tokens", Aggregation::Sum, 1),
            row("key:orphan", "tokens", Aggregation::Sum, 2),
            row("ip:10.0.0.1", "requests", Aggregation::Count, 4),
        ];
        let owner = |k: &str| match k {
            "k1" | "k2" => Some("cus_a".to_owned()),
            "k3" => Some("cus_b".to_owned()),
            _ => None,
        };
        let (records, skipped) = records(period, &rows, owner);
        let got: Vec<(&str, &str, u64, usize)> = records
            .iter()
            .map(|r| (r.customer.as_str(), r.meter.as_str(), r.value, r.keys))
            .collect();
        assert_eq!(
            got,
            [
                ("cus_a", "peak", 9, 2),
                ("cus_a", "tokens", 157, 2),
                ("cus_b", "tokens", 1, 1),
                ("key:orphan", "tokens", 2, 1),
            ]
        );
        assert_eq!(skipped.anonymous, 1);
        assert_eq!(skipped.unowned_keys, ["orphan"]);
    }

    #[test]
    fn identifiers_are_deterministic_and_distinct() {
        let m = MeterName::new("tokens").unwrap();
        let p: Period = "month#2026-11".parse().unwrap();
        let q: Period = "month#2026-12".parse().unwrap();
        let id = identifier("prod", "cus_a", &m, &p);
        assert_eq!(id, identifier("prod", "cus_a", &m, &p));
        assert_eq!(id.len(), 43);
        assert!(id.starts_with("tg_"));
        let others = [
            identifier("staging", "cus_a", &m, &p),
            identifier("prod", "cus_b", &m, &p),
            identifier("prod", "cus_a", &MeterName::new("calls").unwrap(), &p),
            identifier("prod", "cus_a", &m, &q),
            identifier("pro", "dcus_a", &m, &p),
        ];
        assert!(others.iter().all(|o| *o != id));
    }
}
