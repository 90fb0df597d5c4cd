//! The rules of the pack language that both evaluators need, written once
//! and without Arrow: how old someone is, which override code wins, what
//! type widens to what, in which order reasons are listed, and how the
//! facts about a person become a decision (population, forced in or out,
//! excluded, tier).
//!
//! The reference evaluator ([`super::eval`]) and the vectorised engine
//! (`exec`) both call these functions, so they cannot drift apart on them;
//! each still evaluates expressions in its own independent way, which is
//! what the differential tests compare.

use chrono::{Datelike, NaiveDate};

use super::expr::{BinaryOp, Type};

/// Whole years from `dob` to `as_of`; a 29 February birthday turns a year
/// older on 1 March in non-leap years. `None` for a birth after `as_of`.
pub fn age_on(dob: NaiveDate, as_of: NaiveDate) -> Option<i64> {
    if dob > as_of {
        return None;
    }
    let mut years = i64::from(as_of.year() - dob.year());
    if (as_of.month(), as_of.day()) < (dob.month(), dob.day()) {
        years -= 1;
    }
    Some(years)
}

/// [`age_on`] for one as-of date and many dates of birth given as Date32
/// days: the latest date of birth of each age is worked out once (with
/// `age_on` itself), so a person's age is an estimate and one or two
/// integer comparisons instead of a calendar conversion.
#[derive(Debug, Clone)]
pub struct Ages {
    as_of: NaiveDate,
    /// `born_by[k]`: the latest date of birth of someone aged at least `k`.
    born_by: Vec<i32>,
}

impl Ages {
    /// Ages in the table; anyone older is worked out with [`age_on`].
    const YEARS: usize = 140;

    pub fn new(as_of: NaiveDate) -> Ages {
        Ages {
            as_of,
            born_by: (0..Self::YEARS as i64).map(|a| born_by(as_of, a)).collect(),
        }
    }

    /// The latest date of birth (as days) of someone aged at least `age`.
    pub fn born_by(&self, age: i64) -> i32 {
        usize::try_from(age)
            .ok()
            .and_then(|a| self.born_by.get(a).copied())
            .unwrap_or_else(|| born_by(self.as_of, age))
    }

    /// `age_on(dob, as_of)` for a date of birth in Date32 days.
    #[inline]
    pub fn of_days(&self, dob: i32) -> Option<i64> {
        let newest = self.born_by[0];
        if dob > newest {
            return None;
        }
        // Within a year of the age: days over the mean year length.
        let mut age = ((i64::from(newest) - i64::from(dob)) * 4 / 1461) as usize;
        if age + 1 < Self::YEARS {
            while dob > self.born_by[age] {
                age -= 1;
            }
            while age + 1 < Self::YEARS && dob <= self.born_by[age + 1] {
                age += 1;
            }
        }
        if age + 1 >= Self::YEARS {
            return crate::dataset::columns::days_to_date(dob).and_then(|d| age_on(d, self.as_of));
        }
        Some(age as i64)
    }
}

/// The latest date of birth (as days) of someone aged at least `age` on
/// `as_of` by [`age_on`] (`i32::MIN` when there is none).
fn born_by(as_of: NaiveDate, age: i64) -> i32 {
    use crate::dataset::columns::{date_to_days, days_to_date};
    let old_enough = |d: i32| {
        days_to_date(d)
            .and_then(|dob| age_on(dob, as_of))
            .is_some_and(|a| a >= age)
    };
    let mut d = u32::try_from(age)
        .ok()
        .and_then(|a| a.checked_mul(12))
        .and_then(|m| as_of.checked_sub_months(chrono::Months::new(m)))
        .map_or(i32::MIN, date_to_days);
    while d < i32::MAX && old_enough(d + 1) {
        d += 1;
    }
    while d > i32::MIN && !old_enough(d) {
        d -= 1;
    }
    d
}

/// A contact outcome as compared: trimmed, lower case (`Spoke ` is
/// `spoke`).
pub fn contact_outcome(text: &str) -> String {
    text.trim().to_lowercase()
}

/// Whether a contact whose outcome is `outcome` (already through
/// [`contact_outcome`]) counts for `contacted(window, outcomes)`: any
/// contact when no outcomes are named, else only those with one of them (a
/// contact without an outcome then does not count).
pub fn contact_counts(outcome: Option<&str>, outcomes: &[String]) -> bool {
    outcomes.is_empty() || outcome.is_some_and(|o| outcomes.iter().any(|x| x == o))
}

// ---- latest code wins --------------------------------------------------------

/// How an override decided for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forced {
    /// Forced into the override's tier.
    In,
    /// Forced off the list.
    Out,
}

/// "Latest code wins" between two latest dates: `Some(true)` when the
/// first is later, `Some(false)` when the second is later or on the same
/// day (the removal-code convention of the 2020 Shielded Patient List), and
/// `None` when neither has a code.
pub fn first_is_latest<D: Ord>(a: Option<D>, b: Option<D>) -> Option<bool> {
    match (a, b) {
        (None, None) => None,
        (Some(x), Some(y)) => Some(x > y),
        (Some(_), None) => Some(true),
        (None, Some(_)) => Some(false),
    }
}

/// The deciding override: the first (in pack order) for which the person
/// has an include or exclude code, with its direction. `latest` yields, per
/// override, the latest include-code date and the latest exclude-code date.
pub fn override_decision<D: Ord>(
    latest: impl IntoIterator<Item = (Option<D>, Option<D>)>,
) -> Option<(usize, Forced)> {
    latest
        .into_iter()
        .enumerate()
        .find_map(|(i, (include, exclude))| {
            first_is_latest(include, exclude)
                .map(|inc| (i, if inc { Forced::In } else { Forced::Out }))
        })
}

// ---- the type lattice ----------------------------------------------------------

/// Whether a value of type `from` may be used where `to` is expected:
/// equal types, NULL anywhere, and the numeric widenings int -> float,
/// int -> decimal, decimal -> float. Nothing else converts implicitly.
pub fn widens_to(from: Type, to: Type) -> bool {
    use Type::*;
    from == to
        || from == Null
        || matches!((from, to), (Int, Float) | (Int, Decimal) | (Decimal, Float))
}

/// The common type of two operands of a comparison, of CASE branches or of
/// COALESCE arguments: the narrowest type both widen to, if any.
pub fn common_type(a: Type, b: Type) -> Option<Type> {
    use Type::*;
    [a, b, Int, Decimal, Float, Bool, Str, Date, Null]
        .into_iter()
        .find(|&t| widens_to(a, t) && widens_to(b, t))
}

/// Result type of `left op right` for numeric operands: int op int stays
/// int except for `/`, which is always float; any float makes a float;
/// decimal with int stays decimal. A NULL literal takes the other side's
/// type (int when both are NULL).
pub fn arithmetic_type(op: BinaryOp, left: Type, right: Type) -> Type {
    if op == BinaryOp::Div {
        return Type::Float;
    }
    match common_type(left, right) {
        Some(Type::Null) | None => Type::Int,
        Some(t) => t,
    }
}

// ---- reasons and the per-person decision ----------------------------------------

/// The order in which fired rules are given as reasons: highest points
/// first, ties in pack order. `fired` holds rule indices in pack order.
pub fn reason_order<K: Ord>(mut fired: Vec<usize>, points: impl Fn(usize) -> K) -> Vec<usize> {
    // A stable sort keeps pack order among equal points.
    fired.sort_by_key(|&r| std::cmp::Reverse(points(r)));
    fired
}

/// What is known about a person before the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The population condition was TRUE.
    pub in_population: bool,
    /// The deciding override, if any ([`override_decision`]).
    pub forced: Option<(usize, Forced)>,
    /// The first exclusion whose condition is TRUE.
    pub first_exclusion: Option<usize>,
    /// The first tier whose condition is TRUE.
    pub first_tier: Option<usize>,
}

/// The decision for one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub in_population: bool,
    pub forced: Option<(usize, Forced)>,
    pub excluded_by: Option<usize>,
    /// The forced tier, else the first TRUE tier; kept even when an
    /// exclusion applies (the list leaves such people out).
    pub tier: Option<usize>,
}

impl Decision {
    /// Whether the person appears on the contact list.
    pub fn listed(&self) -> bool {
        self.in_population
            && self.tier.is_some()
            && self.excluded_by.is_none()
            && !matches!(self.forced, Some((_, Forced::Out)))
    }
}

/// The decision procedure (documented in `rules/FORMAT.md`):
/// outside the population nothing else applies; a person forced out is
/// neither excluded nor tiered; otherwise the first TRUE exclusion excludes
/// (even when forced in) and the tier is the forced tier, else the first
/// TRUE tier. `override_tier` gives the tier of each override.
pub fn decide(facts: Facts, override_tier: impl Fn(usize) -> usize) -> Decision {
    if !facts.in_population {
        return Decision {
            in_population: false,
            forced: None,
            excluded_by: None,
            tier: None,
        };
    }
    match facts.forced {
        Some((_, Forced::Out)) => Decision {
            in_population: true,
            forced: facts.forced,
            excluded_by: None,
            tier: None,
        },
        Some((o, Forced::In)) => Decision {
            in_population: true,
            forced: facts.forced,
            excluded_by: facts.first_exclusion,
            tier: Some(override_tier(o)),
        },
        None => Decision {
            in_population: true,
            forced: None,
            excluded_by: facts.first_exclusion,
            tier: facts.first_tier,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// The table gives `age_on` for every date of birth over 150 years, on
    /// ordinary, leap-day and year-end as-of dates, and at the edges of
    /// the date range.
    #[test]
    fn ages_from_the_table_are_age_on() {
        use crate::dataset::columns::{date_to_days, days_to_date};
        for as_of in [
            "2020-03-23",
            "2020-02-29",
            "2021-02-28",
            "2024-03-01",
            "2023-12-31",
            "2024-01-01",
        ] {
            let as_of = d(as_of);
            let ages = Ages::new(as_of);
            let end = date_to_days(as_of);
            for dob in end - 150 * 366..=end + 400 {
                let expected = days_to_date(dob).and_then(|b| age_on(b, as_of));
                assert_eq!(
                    ages.of_days(dob),
                    expected,
                    "born {:?}, as of {as_of}",
                    days_to_date(dob)
                );
            }
            for dob in [i32::MIN, i32::MIN + 1, -1_000_000_000, i32::MAX] {
                let expected = days_to_date(dob).and_then(|b| age_on(b, as_of));
                assert_eq!(ages.of_days(dob), expected, "{dob} days");
            }
            assert_eq!(ages.of_days(end), Some(0));
            assert_eq!(ages.born_by(0), end);
        }
        // 80 on 23 March 2020: born on or before 23 March 1940.
        let ages = Ages::new(d("2020-03-23"));
        assert_eq!(ages.born_by(80), date_to_days(d("1940-03-23")));
        assert_eq!(ages.born_by(200), date_to_days(d("1820-03-23")));
    }

    #[test]
    fn leap_day_birthdays_turn_on_first_of_march() {
        let dob = d("2000-02-29");
        assert_eq!(age_on(dob, d("2021-02-28")), Some(20));
        assert_eq!(age_on(dob, d("2021-03-01")), Some(21));
        assert_eq!(age_on(dob, d("2024-02-29")), Some(24));
        assert_eq!(age_on(dob, dob), Some(0));
        assert_eq!(age_on(dob, d("1999-01-01")), None);
    }

    #[test]
    fn the_removal_code_wins_a_same_day_tie() {
        assert_eq!(first_is_latest(Some(5), Some(5)), Some(false));
        assert_eq!(first_is_latest(Some(6), Some(5)), Some(true));
        assert_eq!(first_is_latest(None, Some(1)), Some(false));
        assert_eq!(first_is_latest(Some(1), None), Some(true));
        assert_eq!(first_is_latest::<i32>(None, None), None);
        // The first override with any code decides, even if a later one has a newer code.
        let latest = [(None, None), (Some(3), Some(9)), (Some(20), None)];
        assert_eq!(override_decision(latest), Some((1, Forced::Out)));
        assert_eq!(override_decision::<i32>([(None, None)]), None);
    }

    #[test]
    fn lattice() {
        use Type::*;
        assert!(widens_to(Int, Float) && widens_to(Int, Decimal) && widens_to(Decimal, Float));
        assert!(!widens_to(Float, Int) && !widens_to(Float, Decimal) && !widens_to(Date, Str));
        assert_eq!(common_type(Int, Float), Some(Float));
        assert_eq!(common_type(Decimal, Int), Some(Decimal));
        assert_eq!(common_type(Float, Decimal), Some(Float));
        assert_eq!(common_type(Null, Date), Some(Date));
        assert_eq!(common_type(Null, Null), Some(Null));
        assert_eq!(common_type(Str, Date), None);
        assert_eq!(arithmetic_type(BinaryOp::Div, Int, Int), Float);
        assert_eq!(arithmetic_type(BinaryOp::Add, Int, Int), Int);
        assert_eq!(arithmetic_type(BinaryOp::Mul, Decimal, Int), Decimal);
        assert_eq!(arithmetic_type(BinaryOp::Sub, Null, Null), Int);
        assert_eq!(arithmetic_type(BinaryOp::Sub, Null, Float), Float);
    }

    #[test]
    fn reasons_by_points_then_pack_order() {
        let points = [1, 3, 3, 2];
        assert_eq!(
            reason_order(vec![0, 1, 2, 3], |r| points[r]),
            vec![1, 2, 3, 0]
        );
    }

    #[test]
    fn decision_procedure() {
        let tier_of = |o: usize| [0usize, 4][o];
        let base = Facts {
            in_population: true,
            forced: None,
            first_exclusion: None,
            first_tier: Some(2),
        };
        assert_eq!(decide(base, tier_of).tier, Some(2));
        assert!(decide(base, tier_of).listed());
        let out = decide(
            Facts {
                in_population: false,
                ..base
            },
            tier_of,
        );
        assert_eq!((out.tier, out.listed()), (None, false));
        let forced_in = decide(
            Facts {
                forced: Some((1, Forced::In)),
                first_exclusion: Some(0),
                ..base
            },
            tier_of,
        );
        assert_eq!((forced_in.tier, forced_in.excluded_by), (Some(4), Some(0)));
        assert!(!forced_in.listed());
        let forced_out = decide(
            Facts {
                forced: Some((0, Forced::Out)),
                first_exclusion: Some(0),
                ..base
            },
            tier_of,
        );
        assert_eq!((forced_out.tier, forced_out.excluded_by), (None, None));
    }
}
