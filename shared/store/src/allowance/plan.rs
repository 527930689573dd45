//! The pure part of the allowance writes: from what is known of an item,
//! the one conditional `UpdateItem` a take, a peer's debit or a credit
//! makes next, and what it grants or moves if its condition holds.

use tollgate_core::lease::{allowance, initial_share, pull_amount, refund, Taken};

use crate::attr::{get_u64, Item};
use crate::StoreError;

/// One region's allowance item as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Alw {
    left: u64,
    taken: u64,
    limit: u64,
    /// Units a lowered limit took away that were not left to take (already
    /// granted): a later raise pays them first, so a limit that goes down
    /// and up again (containers whose plan caches disagree for a minute)
    /// never grants more than its highest share.
    owed: u64,
}

pub(super) fn parse(item: &Item) -> Result<Alw, StoreError> {
    let get = |name: &str| {
        get_u64(item, name).ok_or_else(|| StoreError::Malformed {
            table: "Keys",
            message: format!("allowance item without a whole `{name}`"),
        })
    };
    Ok(Alw {
        left: get("left")?,
        taken: get("taken")?,
        limit: get("limit")?,
        owed: get_u64(item, "owed").unwrap_or(0),
    })
}

/// What an item funded for `a.limit` has left, and still owes, once funded
/// for `limit` instead ([`refund`]).
fn refunded(a: Alw, limit: u64, regions: usize, index: usize) -> (u64, u64) {
    refund((a.left, a.owed), a.limit, limit, regions, index)
}

/// What is known of an item before a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Known {
    /// Nothing yet: assume the common case.
    Nothing,
    /// The item does not exist.
    Absent,
    /// The item as a failed condition returned it.
    Item(Alw),
}

/// One conditional `UpdateItem`: expressions and values (`#left`, `#taken`,
/// `#limit` and `#ttl` name the attributes).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Write {
    pub(super) update: &'static str,
    pub(super) condition: &'static str,
    pub(super) values: Vec<(&'static str, u64)>,
}

const CREATE: &str = "attribute_not_exists(pk)";
const SET_ALL: &str = "SET #left = :left, #taken = :taken, #limit = :limit, #ttl = :ttl";

impl Write {
    /// Creates the item with `left` and `taken` (the `ttl` is added when sent).
    fn create(left: u64, taken: u64, limit: u64) -> Write {
        Write {
            update: SET_ALL,
            condition: CREATE,
            values: vec![(":left", left), (":taken", taken), (":limit", limit)],
        }
    }

    /// Sets `left` (and adds `granted` to `taken`) on the item exactly as
    /// it was seen, funded for `limit` from then on.
    fn exact(seen: Alw, (left, owed): (u64, u64), granted: u64, limit: u64) -> Write {
        Write {
            update: "SET #left = :left, #owed = :owed, #taken = #taken + :g, #limit = :limit",
            condition: "#left = :seen AND #limit = :old",
            values: vec![
                (":left", left),
                (":owed", owed),
                (":g", granted),
                (":limit", limit),
                (":seen", seen.left),
                (":old", seen.limit),
            ],
        }
    }
}

/// A take's next write, and what it grants and leaves if it holds;
/// `Err` when nothing is to be written (the allowance is spent).
pub(super) fn plan_take(
    known: Known,
    limit: u64,
    want: u64,
    regions: usize,
    index: usize,
) -> Result<(Write, Taken), Taken> {
    let common = || Write {
        update: "SET #left = #left - :n, #taken = #taken + :n",
        condition: "#left >= :n AND #limit = :limit",
        values: vec![(":n", want), (":limit", limit)],
    };
    match known {
        // One request whether or not the item exists yet: created with the
        // region's share if absent (asking at most the share), taken from
        // if it holds enough for the same limit.
        Known::Nothing => {
            let share = initial_share(allowance(limit), regions, index);
            if share == 0 {
                let taken = Taken {
                    granted: want,
                    left: 0,
                };
                return Ok((common(), taken));
            }
            let n = want.min(share);
            let write = Write {
                update: "SET #left = if_not_exists(#left, :share) - :n, \
                         #taken = if_not_exists(#taken, :zero) + :n, \
                         #limit = if_not_exists(#limit, :limit), #ttl = :ttl",
                condition: "attribute_not_exists(#left) OR (#left >= :n AND #limit = :limit)",
                values: vec![
                    (":n", n),
                    (":share", share),
                    (":zero", 0),
                    (":limit", limit),
                ],
            };
            Ok((
                write,
                Taken {
                    granted: n,
                    left: share - n,
                },
            ))
        }
        Known::Absent => {
            let share = initial_share(allowance(limit), regions, index);
            let granted = want.min(share);
            let left = share - granted;
            Ok((Write::create(left, granted, limit), Taken { granted, left }))
        }
        Known::Item(a) if a.limit == limit && a.left >= want => Ok((
            common(),
            Taken {
                granted: want,
                left: a.left - want,
            },
        )),
        Known::Item(a) if a.limit == limit && a.left == 0 => Err(Taken {
            granted: 0,
            left: 0,
        }),
        Known::Item(a) => {
            let (funded, owed) = refunded(a, limit, regions, index);
            let granted = want.min(funded);
            let left = funded - granted;
            Ok((
                Write::exact(a, (left, owed), granted, limit),
                Taken { granted, left },
            ))
        }
    }
}

/// A peer's debit: the write and the units it moves (`None`: nothing to
/// move, nothing written, so an absent item with no share is not created).
pub(super) fn plan_debit(
    known: Known,
    limit: u64,
    regions: usize,
    index: usize,
) -> Option<(Write, u64)> {
    match known {
        Known::Absent | Known::Nothing => {
            let share = initial_share(allowance(limit), regions, index);
            let m = pull_amount(share);
            (m > 0).then(|| (Write::create(share - m, 0, limit), m))
        }
        Known::Item(a) if a.limit == limit => {
            let m = pull_amount(a.left);
            (m > 0).then(|| {
                let debit = Write {
                    update: "SET #left = #left - :m",
                    condition: "#left >= :m AND #limit = :limit",
                    values: vec![(":m", m), (":limit", limit)],
                };
                (debit, m)
            })
        }
        Known::Item(a) => {
            let (funded, owed) = refunded(a, limit, regions, index);
            let m = pull_amount(funded);
            (m > 0).then(|| (Write::exact(a, (funded - m, owed), 0, limit), m))
        }
    }
}

/// This region's credit of `moved` units pulled from its peers.
pub(super) fn plan_credit(
    known: Known,
    limit: u64,
    moved: u64,
    regions: usize,
    index: usize,
) -> Write {
    match known {
        Known::Absent => {
            let share = initial_share(allowance(limit), regions, index);
            Write::create(share.saturating_add(moved), 0, limit)
        }
        Known::Item(a) if a.limit != limit => {
            let (funded, owed) = refunded(a, limit, regions, index);
            // What was moved pays what is owed first.
            let pays = moved.min(owed);
            Write::exact(a, (funded + moved - pays, owed - pays), 0, limit)
        }
        Known::Nothing | Known::Item(_) => Write {
            update: "SET #left = #left + :m",
            condition: "#limit = :limit",
            values: vec![(":m", moved), (":limit", limit)],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alw(left: u64, taken: u64, limit: u64) -> Alw {
        Alw {
            left,
            taken,
            limit,
            owed: 0,
        }
    }

    #[test]
    fn a_take_plans_the_write_its_state_calls_for() {
        // 10 over 3 regions: 4, 3, 3.
        let (w, t) = plan_take(Known::Nothing, 10, 2, 3, 0).unwrap();
        assert_eq!(
            w.condition,
            "attribute_not_exists(#left) OR (#left >= :n AND #limit = :limit)"
        );
        assert_eq!(t.granted, 2);
        // At most the share when the item may not exist yet (4 of 10 here);
        // a region with no share takes only from an item that exists.
        assert_eq!(plan_take(Known::Nothing, 10, 9, 3, 0).unwrap().1.granted, 4);
        let (w, _) = plan_take(Known::Nothing, 1, 1, 3, 2).unwrap();
        assert_eq!(w.condition, "#left >= :n AND #limit = :limit");
        let (w, t) = plan_take(Known::Absent, 10, 5, 3, 0).unwrap();
        assert_eq!(
            (w.condition, t),
            (
                CREATE,
                Taken {
                    granted: 4,
                    left: 0
                }
            )
        );
        let (w, t) = plan_take(Known::Item(alw(2, 2, 10)), 10, 5, 3, 0).unwrap();
        assert_eq!(
            t,
            Taken {
                granted: 2,
                left: 0
            }
        );
        assert!(w.values.contains(&(":seen", 2)));
        assert_eq!(
            plan_take(Known::Item(alw(0, 4, 10)), 10, 5, 3, 0),
            Err(Taken {
                granted: 0,
                left: 0
            })
        );
        // Raised to 31 (11, 10, 10): 0 + 11 - 4 = 7 left; lowered to 4 (2, 1, 1): none.
        let (_, t) = plan_take(Known::Item(alw(0, 4, 10)), 31, 5, 3, 0).unwrap();
        assert_eq!(
            t,
            Taken {
                granted: 5,
                left: 2
            }
        );
        let (w, t) = plan_take(Known::Item(alw(1, 3, 10)), 4, 5, 3, 0).unwrap();
        assert_eq!(
            t,
            Taken {
                granted: 0,
                left: 0
            }
        );
        assert!(w.values.contains(&(":old", 10)) && w.values.contains(&(":limit", 4)));
    }

    #[test]
    fn a_debit_moves_half_and_creates_nothing_from_no_share() {
        assert_eq!(plan_debit(Known::Absent, 1, 10, 3), None);
        let (w, m) = plan_debit(Known::Absent, 10, 3, 1).unwrap();
        assert_eq!((w.condition, m), (CREATE, 2));
        assert!(w.values.contains(&(":left", 1)));
        let (_, m) = plan_debit(Known::Item(alw(7, 0, 10)), 10, 3, 1).unwrap();
        assert_eq!(m, 4);
        assert_eq!(plan_debit(Known::Item(alw(0, 3, 10)), 10, 3, 1), None);
        // Its limit raised from 10 to 31 on the way: 3 + 10 - 3 = 10, half moves.
        let (w, m) = plan_debit(Known::Item(alw(3, 0, 10)), 31, 3, 1).unwrap();
        assert_eq!(m, 5);
        assert!(w.values.contains(&(":left", 5)));
    }

    #[test]
    fn a_credit_adds_to_the_funded_allowance() {
        let w = plan_credit(Known::Absent, 10, 3, 3, 0);
        assert!(w.values.contains(&(":left", 7)));
        let w = plan_credit(Known::Item(alw(1, 3, 10)), 31, 3, 3, 0);
        assert!(w.values.contains(&(":left", 11)));
        let w = plan_credit(Known::Nothing, 10, 3, 3, 0);
        assert_eq!(w.update, "SET #left = #left + :m");
        // No overflow at the extremes: the difference is added exactly.
        assert_eq!(refunded(alw(5, 0, 1), u64::MAX, 1, 0), (u64::MAX, 0));
        assert_eq!(refunded(alw(1, 0, 1), u64::MAX, 1, 0), (u64::MAX, 0));
        assert_eq!(refunded(alw(0, 0, 1), u64::MAX, 1, 0), (u64::MAX - 1, 0));
        assert_eq!(refunded(alw(3, 0, u64::MAX), 1, 1, 0), (0, u64::MAX - 4));
    }

    #[test]
    fn a_limit_lowered_then_raised_never_grants_more_than_its_highest_share() {
        // One region; limit 10, all 10 granted; lowered to 4: 6 owed.
        let spent = alw(0, 10, 10);
        assert_eq!(refunded(spent, 4, 1, 0), (0, 6));
        let lowered = Alw {
            limit: 4,
            owed: 6,
            ..spent
        };
        // Raised back to 10: nothing to grant; to 30: 20 more, not 26.
        assert_eq!(refunded(lowered, 10, 1, 0), (0, 0));
        assert_eq!(refunded(lowered, 30, 1, 0), (20, 0));
        let (_, t) = plan_take(Known::Item(lowered), 30, 100, 1, 0).unwrap();
        assert_eq!(t.granted, 20);
        // A credit after the lowering pays what is owed first.
        let w = plan_credit(Known::Item(spent), 4, 8, 1, 0);
        assert!(w.values.contains(&(":left", 2)) && w.values.contains(&(":owed", 0)));
    }
}
