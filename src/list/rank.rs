//! Ranking: the listed people of each practice (or PCN) in call order:
//! tier, then the pack's order keys, then patient id.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rayon::prelude::*;

use super::{ListEntry, PracticeList, PreviousTiers, TierChange};
use crate::dataset::columns::PatientIds;
use crate::dataset::Patients;
use crate::exec::column::value_at;
use crate::exec::Outcomes;
use crate::pack::semantics::Ages;
use crate::pack::{Pack, Value};
use crate::plan::{OrderKeyPlan, Plan};

/// One ordering key of one person, typed for comparison.
#[derive(Debug, Clone)]
enum SortKey {
    Null,
    /// Ints, dates (days), booleans and scaled scores.
    Num(i128),
    Float(f64),
    Other(Value),
}

impl SortKey {
    fn of(v: Value) -> SortKey {
        match v {
            Value::Null => SortKey::Null,
            Value::Bool(b) => SortKey::Num(i128::from(b)),
            Value::Int(i) => SortKey::Num(i128::from(i)),
            Value::Date(d) => SortKey::Num(i128::from(crate::dataset::columns::date_to_days(d))),
            Value::Float(x) => SortKey::Float(x),
            other => SortKey::Other(other),
        }
    }

    /// NULL last whatever the direction; otherwise ascending or descending.
    fn compare(&self, other: &SortKey, descending: bool) -> Ordering {
        let o = match (self, other) {
            (SortKey::Null, SortKey::Null) => return Ordering::Equal,
            (SortKey::Null, _) => return Ordering::Greater,
            (_, SortKey::Null) => return Ordering::Less,
            (SortKey::Num(a), SortKey::Num(b)) => a.cmp(b),
            (SortKey::Float(a), SortKey::Float(b)) => a.total_cmp(b),
            (SortKey::Other(a), SortKey::Other(b)) => compare_values(a, b),
            _ => Ordering::Equal,
        };
        if descending {
            o.reverse()
        } else {
            o
        }
    }
}

fn compare_values(a: &Value, b: &Value) -> Ordering {
    use Value::*;
    match (a, b) {
        // Unknown values sort last whatever the direction.
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Greater,
        (_, Null) => Ordering::Less,
        (Bool(x), Bool(y)) => x.cmp(y),
        (Int(x), Int(y)) => x.cmp(y),
        (Float(x), Float(y)) => x.total_cmp(y),
        (Int(x), Float(y)) => (*x as f64).total_cmp(y),
        (Float(x), Int(y)) => x.total_cmp(&(*y as f64)),
        (Decimal(x), Decimal(y)) => x.cmp(y),
        (Str(x), Str(y)) => x.cmp(y),
        (Date(x), Date(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Ranks the listed people within each practice: tier first, then the
/// pack's order (default: score, highest first), then patient id.
pub fn rank(
    pack: &Pack,
    plan: &Plan,
    patients: &Patients,
    outcomes: &Outcomes,
    previous: Option<&PreviousTiers>,
) -> Vec<PracticeList> {
    rank_within(
        pack,
        plan,
        patients,
        outcomes,
        previous,
        &patients.practice_code,
        &|s| outcomes.listed(s),
    )
}

/// Ranks the listed people within each group of `group` (practice code,
/// or PCN code for the PCN-wide lists), in the same order as [`rank`].
pub fn rank_within(
    pack: &Pack,
    plan: &Plan,
    patients: &Patients,
    outcomes: &Outcomes,
    previous: Option<&PreviousTiers>,
    group: &crate::dataset::columns::TextColumn,
    who: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<PracticeList> {
    // Who is listed is found in parallel; slots stay in patients-table order.
    let listed: Vec<usize> = (0..outcomes.len())
        .into_par_iter()
        .filter(|&s| who(s))
        .collect();
    // Grouped by the practice code's dictionary key first (no text
    // compared per person), then by the code itself.
    let practice = group;
    let mut by_key: Vec<Vec<usize>> = vec![Vec::new(); practice.dictionary_len() + 1];
    for s in listed {
        let k = practice
            .key(outcomes.person(s))
            .unwrap_or(practice.dictionary_len());
        by_key[k].push(s);
    }
    let mut by_practice: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, slots) in by_key.into_iter().enumerate() {
        if slots.is_empty() {
            continue;
        }
        let code = if k < practice.dictionary_len() {
            practice.dictionary_value(k)
        } else {
            ""
        };
        by_practice.entry(code).or_default().extend(slots);
    }
    let order = &plan.order;
    // Keys of the person in slot `s`.
    let key = |s: usize, by: &OrderKeyPlan| -> SortKey {
        let i = outcomes.person(s);
        match *by {
            // Scores share one scale, so the scaled integers order them exactly.
            OrderKeyPlan::Score => SortKey::Num(outcomes.score[s]),
            OrderKeyPlan::Age(_) => age_of(patients, i, &plan.ages)
                .map_or(SortKey::Null, |a| SortKey::Num(i128::from(a))),
            OrderKeyPlan::Feature(f) => SortKey::of(outcomes.feature_value(f, s)),
            OrderKeyPlan::Column(c) => SortKey::of(value_at(
                plan.columns[c].as_ref(),
                plan.physical.columns[c].ty,
                i,
            )),
        }
    };
    let tier_pos = |id: &str| pack.tiers.iter().position(|t| t.id == id);
    // Each practice's list is ranked on its own, in parallel; the order of
    // the lists (by practice code) and of each list does not depend on it.
    let practices: Vec<(&str, Vec<usize>)> = by_practice.into_iter().collect();
    practices
        .into_par_iter()
        .map(|(practice, people)| {
            // Order keys are computed once per person into one flat table
            // (a row of `order.len()` keys per person), not per comparison.
            let width = order.len();
            let keys: Vec<SortKey> = people
                .iter()
                .flat_map(|&i| order.iter().map(move |(k, _)| key(i, k)))
                .collect();
            let positions = match packed_order(&keys, width, order, &people, outcomes, patients) {
                Some(p) => p,
                None => {
                    let mut positions: Vec<usize> = (0..people.len()).collect();
                    // The patient id makes the order total, so an unstable sort is
                    // deterministic.
                    positions.sort_unstable_by(|&x, &y| {
                        let (a, b) = (people[x], people[y]);
                        let ta = outcomes.tier[a].unwrap_or(u16::MAX);
                        let tb = outcomes.tier[b].unwrap_or(u16::MAX);
                        ta.cmp(&tb)
                            .then_with(|| {
                                let (ka, kb) =
                                    (&keys[x * width..][..width], &keys[y * width..][..width]);
                                for (((_, descending), va), vb) in order.iter().zip(ka).zip(kb) {
                                    let o = va.compare(vb, *descending);
                                    if o != Ordering::Equal {
                                        return o;
                                    }
                                }
                                Ordering::Equal
                            })
                            .then_with(|| {
                                compare_ids(&patients.ids, outcomes.person(a), outcomes.person(b))
                            })
                    });
                    positions
                }
            };
            let entries = positions
                .into_iter()
                .map(|x| people[x])
                .enumerate()
                .map(|(r, slot)| {
                    let person = outcomes.person(slot);
                    let tier = outcomes.tier[slot].unwrap_or(0);
                    let change = previous.map(|prev| match prev.get(&patients.ids.text(person)) {
                        None => TierChange::New,
                        Some(old) => match tier_pos(old) {
                            None => TierChange::New,
                            Some(o) => match (tier as usize).cmp(&o) {
                                Ordering::Less => TierChange::Up,
                                Ordering::Greater => TierChange::Down,
                                Ordering::Equal => TierChange::Same,
                            },
                        },
                    });
                    ListEntry {
                        person,
                        slot,
                        rank: r as u32 + 1,
                        tier,
                        change,
                        age: age_of(patients, person, &plan.ages),
                    }
                })
                .collect();
            PracticeList {
                practice_code: practice.to_string(),
                entries,
            }
        })
        .collect()
}

/// An order key as an integer that sorts as [`SortKey::compare`] does
/// (NULL last in either direction), when there is one.
fn packed_key(k: &SortKey, descending: bool) -> Option<i128> {
    const LIMIT: i128 = 1 << 126;
    let v = match k {
        SortKey::Null => return Some(i128::MAX),
        SortKey::Num(v) => *v,
        // The bits `f64::total_cmp` compares.
        SortKey::Float(x) => {
            let b = x.to_bits() as i64;
            i128::from(b ^ (((b >> 63) as u64) >> 1) as i64)
        }
        SortKey::Other(_) => return None,
    };
    (-LIMIT < v && v < LIMIT).then_some(if descending { -v } else { v })
}

/// The ranking of one list as a sort of plain integer tuples (tier, up to
/// two order keys, patient id as an integer: see [`id_keys`]), when every
/// key packs into an integer: the same order as the general comparison,
/// without a comparison that looks anything up. `None`: use the general one.
fn packed_order(
    keys: &[SortKey],
    width: usize,
    order: &[(OrderKeyPlan, bool)],
    people: &[usize],
    outcomes: &Outcomes,
    patients: &Patients,
) -> Option<Vec<usize>> {
    if width > 2 {
        return None;
    }
    let mut rows: Vec<(u16, i128, i128, i128, u32)> = Vec::with_capacity(people.len());
    for (x, &slot) in people.iter().enumerate() {
        let mut k = [0i128; 2];
        for (j, (_, descending)) in order.iter().enumerate() {
            k[j] = packed_key(&keys[x * width + j], *descending)?;
        }
        rows.push((
            outcomes.tier[slot].unwrap_or(u16::MAX),
            k[0],
            k[1],
            0,
            x as u32,
        ));
    }
    for (row, id) in rows
        .iter_mut()
        .zip(id_keys(&patients.ids, people, outcomes))
    {
        row.3 = id;
    }
    // Ids are unique, so the position never decides.
    rows.sort_unstable();
    Some(rows.into_iter().map(|r| r.4 as usize).collect())
}

/// Each listed person's id as an integer in [`compare_ids`] order: an
/// integer id, or a text id that is a plain integer, is its value; other
/// text ids come after every integer, in byte order (their rank among
/// themselves, above 2^64).
fn id_keys(ids: &PatientIds, people: &[usize], outcomes: &Outcomes) -> Vec<i128> {
    match ids {
        PatientIds::Int(a) => people
            .iter()
            .map(|&slot| i128::from(a.value(outcomes.person(slot))))
            .collect(),
        PatientIds::Text(a) => {
            text_id_keys(people.iter().map(|&slot| a.value(outcomes.person(slot))))
        }
    }
}

/// [`id_keys`] of text ids.
fn text_id_keys<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> Vec<i128> {
    let mut keys = Vec::with_capacity(ids.len());
    let mut others: Vec<(&str, usize)> = Vec::new();
    for (x, id) in ids.enumerate() {
        match plain_integer(id) {
            Some(n) => keys.push(i128::from(n)),
            None => {
                keys.push(0);
                others.push((id, x));
            }
        }
    }
    others.sort_unstable();
    for (r, (_, x)) in others.into_iter().enumerate() {
        keys[x] = (1i128 << 64) + r as i128;
    }
    keys
}

/// The last tie-break: patient ids in the same order whether they were
/// stored as integers (Parquet) or as text (CSV). See [`compare_id_text`].
fn compare_ids(ids: &PatientIds, a: usize, b: usize) -> Ordering {
    match ids {
        PatientIds::Int(x) => x.value(a).cmp(&x.value(b)),
        PatientIds::Text(x) => compare_id_text(x.value(a), x.value(b)),
    }
}

/// Text ids that are integers written plainly (`42`, `-7`; not `042` or
/// `+7`) compare as numbers, before any other id; other ids compare byte
/// by byte. So `9` < `10` < `A1` whether the file stored the ids as
/// integers or as text.
pub fn compare_id_text(a: &str, b: &str) -> Ordering {
    match (plain_integer(a), plain_integer(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The integer an id spells exactly as an integer prints, if any: an
/// optional `-` and digits, without a leading zero (but `0` itself), and
/// within 64 bits.
fn plain_integer(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let plain = match digits.as_bytes() {
        [] => false,
        [b'0'] => digits.len() == s.len(),
        [first, ..] => *first != b'0' && digits.bytes().all(|b| b.is_ascii_digit()),
    };
    if plain {
        s.parse().ok()
    } else {
        None
    }
}

fn age_of(patients: &Patients, i: usize, ages: &Ages) -> Option<i64> {
    ages.of_days(patients.date_of_birth.value(i))
}

#[cfg(test)]
mod id_order_tests {
    use super::compare_id_text;
    use std::cmp::Ordering::*;

    #[test]
    fn text_ids_order_as_integer_ids_do() {
        assert_eq!(compare_id_text("9", "10"), Less);
        assert_eq!(compare_id_text("-3", "2"), Less);
        assert_eq!(compare_id_text("10", "A1"), Less);
        assert_eq!(compare_id_text("B", "A1"), Greater);
        // Not plain integers: compared as text.
        assert_eq!(compare_id_text("010", "9"), Greater);
        assert_eq!(compare_id_text("010", "09"), Less);
        assert_eq!(compare_id_text("42", "42"), Equal);
    }

    /// Text ids packed into integers sort as they compare.
    #[test]
    fn packed_text_ids_sort_as_they_compare() {
        let ids = [
            "10",
            "9",
            "A1",
            "B",
            "010",
            "-3",
            "0",
            "-0",
            "09",
            "9223372036854775807",
            "99999999999999999999",
            "-9223372036854775808",
            "a",
            "",
            "+5",
            "5",
        ];
        let keys = super::text_id_keys(ids.iter().copied());
        let mut packed: Vec<usize> = (0..ids.len()).collect();
        packed.sort_by_key(|&i| keys[i]);
        let mut compared: Vec<usize> = (0..ids.len()).collect();
        compared.sort_by(|&a, &b| compare_id_text(ids[a], ids[b]));
        let names = |order: Vec<usize>| order.into_iter().map(|i| ids[i]).collect::<Vec<_>>();
        assert_eq!(names(packed), names(compared));
    }

    /// An id is a plain integer exactly when it prints back as itself.
    #[test]
    fn plain_integers_print_back_as_themselves() {
        let printed = |s: &str| s.parse::<i64>().ok().filter(|n| n.to_string() == s);
        for id in [
            "0",
            "-0",
            "00",
            "7",
            "-7",
            "+7",
            "07",
            "-07",
            "42",
            "4a",
            "",
            "-",
            "--1",
            " 1",
            "1 ",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "١٢",
            "1.0",
            "1e3",
        ] {
            assert_eq!(super::plain_integer(id), printed(id), "{id:?}");
        }
    }
}

#[cfg(test)]
mod packed_order_tests {
    use super::{packed_key, SortKey};

    /// Within one order key every value is of one kind (or NULL): packed
    /// keys must order such values exactly as `SortKey::compare` does, in
    /// both directions, NULL last.
    #[test]
    fn packed_keys_order_as_sort_keys_do() {
        let nums = [
            0i128,
            -1,
            1,
            -7,
            80,
            120,
            10_000_000_000,
            -(1 << 100),
            1 << 100,
        ];
        let floats = [
            0.0f64,
            -0.0,
            1.5,
            -1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::NAN,
        ];
        let kinds: [Vec<SortKey>; 2] = [
            nums.iter()
                .map(|&n| SortKey::Num(n))
                .chain([SortKey::Null])
                .collect(),
            floats
                .iter()
                .map(|&x| SortKey::Float(x))
                .chain([SortKey::Null])
                .collect(),
        ];
        for values in &kinds {
            for a in values {
                for b in values {
                    for descending in [false, true] {
                        let packed = packed_key(a, descending)
                            .unwrap()
                            .cmp(&packed_key(b, descending).unwrap());
                        assert_eq!(
                            packed,
                            a.compare(b, descending),
                            "{a:?} vs {b:?}, {descending}"
                        );
                    }
                }
            }
        }
        // Beyond what packs exactly: the general comparison is used.
        assert_eq!(packed_key(&SortKey::Num(i128::MAX), false), None);
        assert_eq!(packed_key(&SortKey::Num(i128::MIN + 1), true), None);
    }
}
