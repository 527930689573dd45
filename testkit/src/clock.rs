//! Test clocks derived from the wall clock.
//!
//! DynamoDB Local's TTL sweeper deletes an item once its `ttl` has passed
//! by the wall clock, so a test that writes items with a TTL (hour items,
//! kept 8 days after their hour; dedupe markers; request records) on a
//! fixed date starts failing some days after that date. [`test_now`] is a
//! "now" that never ages: it follows the wall clock, always ahead of it,
//! and always at the same place in its month and day, so a test can step a
//! few days or hours either way and compute every label it expects from it
//! ([`label`]) instead of writing dates.

use std::sync::OnceLock;

use tollgate_core::{UnixMillis, Window};

/// How far into its month [`test_now`] stands: 17 days, 11 h 6 min 40 s
/// (the 18th at 11:06:40 UTC).
pub const INTO_MONTH_MS: UnixMillis = ((17 * 24 + 11) * 60 + 6) * 60_000 + 40_000;

/// 11:06:40.000 UTC on the 18th of the month after the wall clock's,
/// computed once per process (a run that crosses midnight or a month keeps
/// one "now").
///
/// So it is 17 to 49 days ahead of the wall clock: every TTL a test writes
/// from it (8 days after an hour, 35 days of markers) is still ahead of the
/// sweeper when the test ends. Days 1 to 17 and 19 to 28 of its month, and
/// every hour of its day, are in the same month, so a test may step up to
/// 17 days back or 10 days forward without leaving it.
pub fn test_now() -> UnixMillis {
    static NOW: OnceLock<UnixMillis> = OnceLock::new();
    *NOW.get_or_init(|| at_in_next_month(wall_clock(), INTO_MONTH_MS))
}

/// The moment `into` milliseconds after the start of the month after the
/// one `wall` falls in.
pub fn at_in_next_month(wall: UnixMillis, into: UnixMillis) -> UnixMillis {
    // Both periods exist for any wall-clock time from 1970 to 9999.
    let next = Window::Month
        .period_of(wall)
        .map(|month| month.end())
        .unwrap_or(wall);
    next + into
}

/// The period text of `window` at `at`, such as `day#2026-11-18`: what a
/// test expects a counter's label to start with.
pub fn label(window: Window, at: UnixMillis) -> String {
    Window::period_of(window, at).map_or_else(|e| e.to_string(), |p| p.to_string())
}

/// [`label`] with the region, as a counter's sort key ends:
/// `day#2026-11-18#local-a`.
pub fn label_in(window: Window, at: UnixMillis, region: &str) -> String {
    format!("{}#{region}", label(window, at))
}

/// The wall clock, in milliseconds since the Unix epoch.
pub fn wall_clock() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as UnixMillis)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: UnixMillis = 86_400_000;

    #[test]
    fn stands_on_the_18th_of_the_next_month_ahead_of_the_wall_clock() {
        let wall = wall_clock();
        let now = test_now();
        assert!(now - wall > 15 * DAY_MS && now - wall < 49 * DAY_MS);
        assert!(label(Window::Minute, now).ends_with("-18T11:06"));
        // 2026-11-30T23:59:59.999Z and 2026-12-01T00:00:00Z: the 18th of
        // December, then of January.
        assert_eq!(
            label(
                Window::Minute,
                at_in_next_month(1_796_083_199_999, INTO_MONTH_MS)
            ),
            "minute#2026-12-18T11:06"
        );
        assert_eq!(
            label(
                Window::Minute,
                at_in_next_month(1_796_083_200_000, INTO_MONTH_MS)
            ),
            "minute#2027-01-18T11:06"
        );
    }

    #[test]
    fn steps_of_days_stay_in_the_month() {
        let now = test_now();
        let month = label(Window::Month, now);
        assert_eq!(label(Window::Month, now - 17 * DAY_MS), month);
        assert_eq!(label(Window::Month, now + 10 * DAY_MS), month);
        assert_eq!(
            label_in(Window::Month, now, "local-a"),
            format!("{month}#local-a")
        );
    }
}
