//! `changes.csv`: everyone listed by the previous run who is not listed
//! now, and why (died, left the practice, no longer in the extract,
//! outside the population, forced off by an override, left off by an
//! exclusion such as a recent call, or no longer in any tier). The ranked
//! lists already mark who is new and who moved (`new_since_previous`,
//! `tier_change`); together they account for every change.

use std::collections::{BTreeMap, HashSet};

use arrow::array::Array;
use chrono::NaiveDate;

use super::run_dir::RunDir;
use super::{ListError, PracticeList, PreviousTiers};
use crate::dataset::columns::date_to_days;
use crate::dataset::Patients;
use crate::exec::{Fate, Outcomes};
use crate::pack::Pack;

/// Why someone listed last time is not listed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Why {
    Died,
    Deregistered,
    NotInExtract,
    OutsidePopulation,
    ForcedOff,
    Excluded,
    NoTier,
}

impl Why {
    pub fn code(self) -> &'static str {
        match self {
            Why::Died => "died",
            Why::Deregistered => "deregistered",
            Why::NotInExtract => "not_in_extract",
            Why::OutsidePopulation => "outside_population",
            Why::ForcedOff => "forced_off",
            Why::Excluded => "excluded",
            Why::NoTier => "no_tier",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Why::Died => "died",
            Why::Deregistered => "left the practice (registration ended)",
            Why::NotInExtract => "no longer in the extract",
            Why::OutsidePopulation => "no longer in the pack's population",
            Why::ForcedOff => "forced off by an override (a clinician's code)",
            Why::Excluded => "left off by an exclusion (e.g. a recent call)",
            Why::NoTier => "no longer in any tier",
        }
    }
}

/// One person who left the lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaver {
    pub patient_id: String,
    /// Empty when the person is not in the patients table any more.
    pub practice_code: String,
    pub previous_tier: String,
    pub why: Why,
    pub detail: String,
}

/// Everyone in `previous` who is not on `lists`, with why, ordered by
/// practice then patient id.
pub fn leavers(
    pack: &Pack,
    patients: &Patients,
    outcomes: &Outcomes,
    lists: &[PracticeList],
    previous: &PreviousTiers,
    as_of: NaiveDate,
) -> Vec<Leaver> {
    let listed: HashSet<usize> = lists
        .iter()
        .flat_map(|l| l.entries.iter().map(|e| e.person))
        .collect();
    let as_of_days = date_to_days(as_of);
    let mut out = Vec::new();
    for (id, tier) in previous {
        let row = patients.row_of_text(id).map(|r| r as usize);
        if row.is_some_and(|r| listed.contains(&r)) {
            continue;
        }
        let (practice, why, detail) = match row {
            None => (
                String::new(),
                Why::NotInExtract,
                "not in the patients table".to_string(),
            ),
            Some(r) => {
                let practice = patients.practice_code.value(r).to_string();
                let date = |a: &arrow::array::Date32Array| {
                    (a.is_valid(r) && a.value(r) <= as_of_days).then(|| a.value(r))
                };
                let shown = |d: i32| {
                    crate::dataset::columns::days_to_date(d)
                        .map_or_else(String::new, |d| d.to_string())
                };
                if let Some(d) = date(&patients.date_of_death) {
                    (practice, Why::Died, format!("date of death {}", shown(d)))
                } else if let Some(d) = date(&patients.registration_end) {
                    (
                        practice,
                        Why::Deregistered,
                        format!("registration ended {}", shown(d)),
                    )
                } else {
                    match outcomes.fate.get(r).map(|&f| Fate::of(f)) {
                        Some(Fate::ForcedOut(o)) => (
                            practice,
                            Why::ForcedOff,
                            pack.overrides.get(o).map_or_else(String::new, |o| {
                                format!("override {}: the latest code says not to list", o.id)
                            }),
                        ),
                        Some(Fate::Excluded(x)) => (
                            practice,
                            Why::Excluded,
                            pack.exclusions
                                .get(x)
                                .map_or_else(String::new, |x| x.reason.clone()),
                        ),
                        Some(Fate::NoTier) => (
                            practice,
                            Why::NoTier,
                            "in the population, but no tier's condition holds now".into(),
                        ),
                        _ => (
                            practice,
                            Why::OutsidePopulation,
                            "the pack's population condition no longer holds".into(),
                        ),
                    }
                }
            }
        };
        out.push(Leaver {
            patient_id: id.clone(),
            practice_code: practice,
            previous_tier: tier.clone(),
            why,
            detail,
        });
    }
    out.sort_by(|a, b| {
        (&a.practice_code, a.why)
            .cmp(&(&b.practice_code, b.why))
            .then_with(|| super::compare_id_text(&a.patient_id, &b.patient_id))
    });
    out
}

/// Writes `changes.csv` and returns how many left for each reason.
pub fn write_changes(run: &RunDir, leavers: &[Leaver]) -> Result<BTreeMap<Why, u64>, ListError> {
    let file = run.file("changes.csv")?;
    let werr = |e: csv::Error| ListError::Write {
        file: "changes.csv".into(),
        message: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(file);
    w.write_record([
        "patient_id",
        "practice_code",
        "previous_tier",
        "why",
        "detail",
    ])
    .map_err(werr)?;
    let mut counts = BTreeMap::new();
    for l in leavers {
        w.write_record([
            &*super::inert(&l.patient_id),
            &*super::inert(&l.practice_code),
            &*super::inert(&l.previous_tier),
            l.why.code(),
            &*super::inert(&l.detail),
        ])
        .map_err(werr)?;
        *counts.entry(l.why).or_insert(0) += 1;
    }
    w.flush().map_err(|e| ListError::Write {
        file: "changes.csv".into(),
        message: e.to_string(),
    })?;
    Ok(counts)
}
