//! Key rotation with grace: `tollgate keys roll <key-id> --grace 24h` gives
//! a key id a new secret; the secret it replaces keeps working until the
//! grace ends, then is refused ([`crate::DenyReason::RolledKey`], decided by
//! [`crate::decide`] from the secret's [`crate::KeyRecord::valid_until`]).
//! Whichever secret is presented, the request is the key's: same key id,
//! customer, plan and limits, so usage (keyed by key id) is counted once.
//!
//! Repeated rolls: a roll ends no earlier grace and lengthens none. Every
//! secret a roll replaced works until its own grace end, so rolling again
//! (for example re-running a roll whose output was lost) never cuts off the
//! secret clients still use. At most [`MAX_GRACED`] secrets can be in grace
//! at once besides the current one; a roll beyond that is refused (wait for
//! a grace to end, or revoke the key). Revocation is immediate and ends
//! every secret of the key, current and in grace.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{CoreError, UnixMillis};

/// The longest grace a roll may give the secret it replaces (30 days).
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);

/// How many replaced secrets may be in grace at once (this bounds the
/// items a roll or a revocation writes in one transaction).
pub const MAX_GRACED: usize = 8;

/// How long after its grace end a replaced secret's item is deleted by the
/// table's TTL (clean-up only: the grace rule never depends on it, and the
/// margin keeps the item readable, so refused as rolled, not unknown, for a
/// while and whatever the clocks' skew).
pub const CLEANUP_AFTER: Duration = Duration::from_secs(3_600);

/// Reads a grace such as `30m`, `24h`, `7d` (also `s`, and `0` for none):
/// a whole number and one unit, at most [`MAX_GRACE`].
pub fn parse_grace(text: &str) -> Result<Duration, CoreError> {
    let bad = |why: &'static str| CoreError::Setting {
        name: "--grace",
        value: text.to_owned(),
        expected: why,
    };
    const FORMAT: &str = "a whole number and a unit s, m, h or d, such as 30m, 24h or 7d";
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let unit = t.chars().last().ok_or_else(|| bad(FORMAT))?;
    let number = &t[..t.len() - unit.len_utf8()];
    let unit_secs: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(bad(FORMAT)),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(FORMAT));
    }
    let n: u64 = number.parse().map_err(|_| bad("at most 30d"))?;
    let secs = n.checked_mul(unit_secs).ok_or_else(|| bad("at most 30d"))?;
    let grace = Duration::from_secs(secs);
    if grace > MAX_GRACE {
        return Err(bad("at most 30d"));
    }
    Ok(grace)
}

/// When a grace of `grace` from `now` ends.
pub fn grace_end(now: UnixMillis, grace: Duration) -> UnixMillis {
    now.saturating_add(grace.as_millis().min(i64::MAX as u128) as i64)
}

/// The TTL (epoch seconds) of a replaced secret's item whose grace ends at
/// `valid_until`: [`CLEANUP_AFTER`] later, rounded up.
pub fn cleanup_ttl(valid_until: UnixMillis) -> i64 {
    let at = grace_end(valid_until, CLEANUP_AFTER);
    at.div_euclid(1000) + i64::from(at.rem_euclid(1000) != 0)
}

/// The secrets in grace after a roll at `now` that replaces the current
/// secret `replaced` (its digest) with a grace ending at `until`, given
/// those in grace before (`digest → valid_until`). Graces that ended are
/// dropped (their secrets are refused already); the others keep their own
/// end. An error when more than [`MAX_GRACED`] would remain.
pub fn graced_after_roll(
    before: &BTreeMap<String, UnixMillis>,
    replaced: &str,
    until: UnixMillis,
    now: UnixMillis,
) -> Result<BTreeMap<String, UnixMillis>, CoreError> {
    let mut after: BTreeMap<String, UnixMillis> = before
        .iter()
        .filter(|(_, &t)| now < t)
        .map(|(d, &t)| (d.clone(), t))
        .collect();
    if now < until {
        after.insert(replaced.to_owned(), until);
    }
    if after.len() > MAX_GRACED {
        return Err(CoreError::Setting {
            name: "roll",
            value: format!("{} secrets in grace", after.len()),
            expected: "at most 8 replaced secrets in grace at once: wait for a grace to end, or revoke the key",
        });
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_graces_with_a_maximum() {
        let h = |n: u64| Duration::from_secs(n * 3_600);
        assert_eq!(parse_grace("30m").unwrap(), Duration::from_secs(1_800));
        assert_eq!(parse_grace("24h").unwrap(), h(24));
        assert_eq!(parse_grace(" 7d ").unwrap(), h(168));
        assert_eq!(parse_grace("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_grace("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_grace("30d").unwrap(), MAX_GRACE);
        for bad in [
            "", "h", "24", "1.5h", "-1h", "+1h", "24H", "1w", "1 h", "24hh", "ä",
        ] {
            let e = parse_grace(bad).unwrap_err().to_string();
            assert!(e.contains("such as 30m, 24h or 7d"), "{bad:?}: {e}");
        }
        for big in [
            "31d",
            "721h",
            "2592001s",
            "99999999999999999999d",
            "18446744073709551615d",
        ] {
            let e = parse_grace(big).unwrap_err().to_string();
            assert!(e.contains("at most 30d"), "{big:?}: {e}");
        }
    }

    #[test]
    fn grace_end_and_cleanup_ttl() {
        assert_eq!(grace_end(1_000, Duration::from_secs(60)), 61_000);
        assert_eq!(grace_end(i64::MAX - 1, MAX_GRACE), i64::MAX);
        // An hour after, in seconds, rounded up.
        assert_eq!(cleanup_ttl(1_000), 3_601);
        assert_eq!(cleanup_ttl(1_001), 3_602);
    }

    #[test]
    fn a_roll_keeps_earlier_graces_drops_ended_ones_and_is_bounded() {
        let now = 1_000_000;
        let none = BTreeMap::new();
        let first = graced_after_roll(&none, "a", now + 100, now).unwrap();
        assert_eq!(first, BTreeMap::from([("a".to_owned(), now + 100)]));
        // A second roll: the first replaced secret keeps its own end.
        let second = graced_after_roll(&first, "b", now + 500, now + 10).unwrap();
        assert_eq!(
            second,
            BTreeMap::from([("a".to_owned(), now + 100), ("b".to_owned(), now + 500)])
        );
        // Once a's grace ended it leaves the list (refused by its record).
        let third = graced_after_roll(&second, "c", now + 900, now + 100).unwrap();
        assert_eq!(
            third,
            BTreeMap::from([("b".to_owned(), now + 500), ("c".to_owned(), now + 900)])
        );
        // A roll without grace lists nothing new.
        assert_eq!(graced_after_roll(&none, "d", now, now).unwrap(), none);
        // At most MAX_GRACED in grace.
        let full: BTreeMap<String, UnixMillis> = (0..MAX_GRACED)
            .map(|i| (format!("s{i}"), now + 1_000))
            .collect();
        let e = graced_after_roll(&full, "x", now + 1_000, now).unwrap_err();
        assert!(e.to_string().contains("at most 8"), "{e}");
        // Unless one of them has ended by now.
        assert_eq!(
            graced_after_roll(&full, "x", now + 2_000, now + 1_000)
                .unwrap()
                .len(),
            1
        );
    }
}
