//! `report.html`: one self-contained page a PCN clinical director can read
//! and sign off: the run at a glance, lists per PCN and practice (with the
//! changes since the previous run), why people are listed, whether the
//! lists reach deprived areas (equity by IMD quintile, age band and sex,
//! with inline SVG bars), data-quality findings and links to every list.
//!
//! Built from what the run already holds (the manifest's counts, the
//! ranked lists, the patients table, the population bits of the outcomes)
//! into a plain [`Report`] value, then rendered by the template
//! `report.html.j2` with minijinja (HTML auto-escaping). Aggregate counts
//! follow [`suppress`]; the page holds no patient identifiers.

pub mod suppress;

use std::collections::BTreeMap;

use arrow::array::Array;
use chrono::NaiveDate;
use serde::Serialize;

use crate::dataset::Patients;
use crate::exec::Outcomes;
use crate::list::manifest::Manifest;
use crate::list::{PracticeList, PreviousTiers, TierChange};
use crate::pack::Pack;
use suppress::{one, table, Counts, Shown};

/// Everything the page shows, already formatted.
#[derive(Debug, Serialize)]
pub struct Report {
    pub title: String,
    pub pack: String,
    pub as_of: String,
    pub extract_date: String,
    pub strata_version: String,
    pub counts_rule: String,
    pub exact_counts: bool,
    pub glance: Vec<Line>,
    pub practices: TableView,
    pub changes: Option<TableView>,
    /// Why people left the lists since the previous run.
    pub left: Vec<Line>,
    pub rules: Vec<RuleLine>,
    pub tier_reasons: Vec<TierReasons>,
    pub equity: Vec<EquityView>,
    /// Which deprivation index the quintiles are, and how they were found.
    pub deprivation: String,
    pub data_quality: Vec<String>,
    pub lists: Vec<ListLink>,
    pub pcn_lists: Vec<ListLink>,
}

#[derive(Debug, Serialize)]
pub struct Line {
    pub label: String,
    pub value: String,
}

/// A table of counts with totals, already shown under the counts rule.
#[derive(Debug, Serialize)]
pub struct TableView {
    pub headings: Vec<String>,
    pub rows: Vec<TableRow>,
    pub totals: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct TableRow {
    pub group: String,
    pub label: String,
    pub cells: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RuleLine {
    pub id: String,
    pub points: String,
    pub fired: String,
    pub unknown: String,
}

#[derive(Debug, Serialize)]
pub struct TierReasons {
    pub tier: String,
    pub listed: String,
    pub reasons: Vec<Share>,
}

#[derive(Debug, Serialize)]
pub struct Share {
    pub label: String,
    pub percent: String,
    /// Bar width in the SVG, 0-100.
    pub width: u32,
}

#[derive(Debug, Serialize)]
pub struct EquityView {
    pub title: String,
    pub rows: Vec<EquityRow>,
}

#[derive(Debug, Serialize)]
pub struct EquityRow {
    pub group: String,
    pub population: String,
    pub listed: String,
    /// Listed per 100 of the population, or "–" when not shown.
    pub rate: String,
    /// Bar width in the SVG, 0-100 (relative to the largest rate).
    pub width: u32,
}

#[derive(Debug, Serialize)]
pub struct ListLink {
    pub practice: String,
    pub file: String,
    pub listed: String,
    /// "N weeks of calls at C a week", when a capacity is set.
    pub weeks: Option<String>,
    /// The recently-contacted file and how many are in it.
    pub recent: Option<(String, String)>,
}

/// What the report is built from.
pub struct Inputs<'a> {
    pub pack: &'a Pack,
    pub manifest: &'a Manifest,
    pub patients: &'a Patients,
    pub outcomes: &'a Outcomes,
    pub lists: &'a [PracticeList],
    /// The PCN-wide lists, when the pack writes them.
    pub pcn_lists: &'a [PracticeList],
    /// Per practice: people listed but for a recent call.
    pub recently_contacted: &'a [PracticeList],
    pub previous: Option<&'a PreviousTiers>,
    /// Who left the lists since the previous run, and why.
    pub leavers: Option<&'a [crate::list::changes::Leaver]>,
    pub as_of: NaiveDate,
    pub extract_date: Option<NaiveDate>,
    /// Calls a practice makes in a week, if set.
    pub capacity: Option<u32>,
    pub counts: Counts,
}

const TEMPLATE: &str = include_str!("report.html.j2");

/// The page, rendered.
pub fn render(inputs: &Inputs<'_>) -> Result<String, minijinja::Error> {
    let report = build(inputs);
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE)?;
    env.get_template("report.html")?.render(&report)
}

/// The page's content.
pub fn build(inp: &Inputs<'_>) -> Report {
    let c = inp.counts;
    let m = inp.manifest;
    let show = |n: u64| one(n, c).to_string();

    let mut glance = vec![
        Line {
            label: "People in the patients table".into(),
            value: show(m.people.in_patients_table),
        },
        Line {
            label: "In the pack's population".into(),
            value: show(m.people.in_population),
        },
        Line {
            label: "Listed".into(),
            value: show(m.people.listed),
        },
    ];
    let mut by_tier = vec![0u64; inp.pack.tiers.len()];
    for l in inp.lists {
        for (all, n) in by_tier.iter_mut().zip(l.tier_counts(inp.pack.tiers.len())) {
            *all += n;
        }
    }
    for (t, n) in inp.pack.tiers.iter().zip(&by_tier) {
        glance.push(Line {
            label: format!("Listed in {} ({})", t.id, t.label),
            value: show(*n),
        });
    }
    glance.push(Line {
        label: "In the population but in no tier (not listed)".into(),
        value: show(m.people.not_in_any_tier),
    });
    for (id, n) in &m.people.excluded {
        let reason = inp
            .pack
            .exclusions
            .iter()
            .find(|x| &x.id == id)
            .map_or(id.clone(), |x| x.reason.clone());
        glance.push(Line {
            label: format!("Left off: {reason}"),
            value: show(*n),
        });
    }
    for (id, n) in &m.people.forced_out {
        glance.push(Line {
            label: format!("Forced off by the override {id}"),
            value: show(*n),
        });
    }

    // Per PCN and practice, by tier.
    let pcn_of = |l: &PracticeList| -> String {
        l.entries
            .first()
            .and_then(|e| inp.patients.pcn_code.get(e.person))
            .unwrap_or("no PCN")
            .to_string()
    };
    let mut ordered: Vec<(String, &PracticeList)> =
        inp.lists.iter().map(|l| (pcn_of(l), l)).collect();
    ordered.sort_by(|a, b| (&a.0, &a.1.practice_code).cmp(&(&b.0, &b.1.practice_code)));
    let cells: Vec<Vec<u64>> = ordered
        .iter()
        .map(|(_, l)| l.tier_counts(inp.pack.tiers.len()))
        .collect();
    let tier_ids: Vec<String> = inp.pack.tiers.iter().map(|t| t.id.clone()).collect();
    let practices = table_view(
        &ordered,
        &cells,
        tier_ids
            .iter()
            .cloned()
            .chain(["All tiers".into()])
            .collect(),
        c,
    );

    // Changes since the previous run.
    let changes = inp.previous.map(|_| {
        let mut cells: Vec<Vec<u64>> = ordered
            .iter()
            .map(|(_, l)| {
                let mut row = vec![0u64; 4];
                for e in &l.entries {
                    match e.change {
                        Some(TierChange::New) => row[0] += 1,
                        Some(TierChange::Up) => row[1] += 1,
                        Some(TierChange::Down) => row[2] += 1,
                        _ => {}
                    }
                }
                row
            })
            .collect();
        // No longer listed: counted at the practice they are registered
        // with now, if it has a list; otherwise on a line of their own.
        let mut gone_elsewhere = 0u64;
        let index: BTreeMap<&str, usize> = ordered
            .iter()
            .enumerate()
            .map(|(i, (_, l))| (l.practice_code.as_str(), i))
            .collect();
        for l in inp.leavers.unwrap_or_default() {
            match index.get(l.practice_code.as_str()) {
                Some(&i) => cells[i][3] += 1,
                None => gone_elsewhere += 1,
            }
        }
        let mut view = table_view(
            &ordered,
            &cells,
            vec![
                "New".into(),
                "Moved up a tier".into(),
                "Moved down a tier".into(),
                "No longer listed".into(),
                "All changes".into(),
            ],
            c,
        );
        if gone_elsewhere > 0 {
            view.rows.push(TableRow {
                group: String::new(),
                label: "no longer in the extract, or at a practice with no one listed now".into(),
                cells: vec![
                    String::new(),
                    String::new(),
                    String::new(),
                    show(gone_elsewhere),
                    String::new(),
                ],
            });
        }
        view
    });

    let mut left_counts: BTreeMap<crate::list::changes::Why, u64> = BTreeMap::new();
    for l in inp.leavers.unwrap_or_default() {
        *left_counts.entry(l.why).or_insert(0) += 1;
    }
    let left = left_counts
        .into_iter()
        .map(|(why, n)| Line {
            label: why.label().to_string(),
            value: show(n),
        })
        .collect();

    // Why people are listed.
    let rules = inp
        .pack
        .rules
        .iter()
        .zip(&m.rules)
        .map(|(r, count)| RuleLine {
            id: r.id.clone(),
            points: r.points.normalize().to_string(),
            fired: show(count.fired),
            unknown: show(count.unknown),
        })
        .collect();
    let tier_reasons = tier_reasons(inp, &by_tier);

    let equity = equity(inp);

    let mut data_quality = Vec::new();
    for (n, what) in m.patient_findings.lines() {
        data_quality.push(format!("patients table: {} {what}", show(n)));
    }
    for t in &m.tables {
        let f = &t.findings;
        for (n, what) in [
            (
                f.unknown_patient,
                "rows whose patient_id is not in the patients table (ignored)",
            ),
            (
                f.after_as_of,
                "rows dated after the as-of date (never counted)",
            ),
            (
                f.before_birth,
                "rows dated before the person's date of birth",
            ),
        ] {
            if n > 0 {
                data_quality.push(format!("{}: {} {what}", t.file, show(n)));
            }
        }
    }
    if data_quality.is_empty() {
        data_quality.push("No findings: every date of birth is plausible, and every event row belongs to a person in the patients table and is dated between their birth and the as-of date.".into());
    }

    let lists = ordered
        .iter()
        .map(|(_, l)| ListLink {
            practice: l.practice_code.clone(),
            file: format!(
                "lists/{}.csv",
                crate::list::safe_file_name(&l.practice_code)
            ),
            listed: one(l.entries.len() as u64, c).to_string(),
            recent: inp
                .recently_contacted
                .iter()
                .find(|r| r.practice_code == l.practice_code)
                .map(|r| {
                    (
                        format!(
                            "lists/{}-recently-contacted.csv",
                            crate::list::safe_file_name(&r.practice_code)
                        ),
                        one(r.entries.len() as u64, c).to_string(),
                    )
                }),
            weeks: inp.capacity.map(|cap| {
                let weeks = (l.entries.len() as u64).div_ceil(u64::from(cap));
                format!(
                    "{weeks} week{} of calls at {cap} a week",
                    if weeks == 1 { "" } else { "s" }
                )
            }),
        })
        .collect();

    Report {
        title: inp.pack.meta.title.clone(),
        pack: format!(
            "{} {} ({})",
            inp.pack.meta.id,
            inp.pack.meta.version,
            &inp.pack.content_hash[..12.min(inp.pack.content_hash.len())]
        ),
        as_of: inp.as_of.to_string(),
        extract_date: inp
            .extract_date
            .map_or_else(|| "not given".to_string(), |d| d.to_string()),
        strata_version: env!("CARGO_PKG_VERSION").to_string(),
        counts_rule: c.rule().to_string(),
        exact_counts: c == Counts::Exact,
        glance,
        practices,
        changes,
        left,
        rules,
        tier_reasons,
        equity,
        deprivation: m.deprivation.describe(),
        data_quality,
        lists,
        pcn_lists: inp
            .pcn_lists
            .iter()
            .map(|l| ListLink {
                practice: if l.practice_code.is_empty() {
                    "no PCN".into()
                } else {
                    format!("PCN {}", l.practice_code)
                },
                file: if l.practice_code.is_empty() {
                    "lists/pcn-none_.csv".into()
                } else {
                    format!(
                        "lists/pcn-{}.csv",
                        crate::list::safe_file_name(&l.practice_code)
                    )
                },
                listed: one(l.entries.len() as u64, c).to_string(),
                weeks: None,
                recent: None,
            })
            .collect(),
    }
}

fn table_view(
    ordered: &[(String, &PracticeList)],
    cells: &[Vec<u64>],
    headings: Vec<String>,
    c: Counts,
) -> TableView {
    let t = table(cells, c);
    let text = |s: &Shown| s.to_string();
    let rows = ordered
        .iter()
        .zip(t.cells.iter().zip(&t.row_totals))
        .map(|((pcn, l), (row, total))| TableRow {
            group: pcn.clone(),
            label: l.practice_code.clone(),
            cells: row.iter().chain([total]).map(text).collect(),
        })
        .collect();
    TableView {
        headings,
        rows,
        totals: t.column_totals.iter().chain([&t.total]).map(text).collect(),
    }
}

/// For each tier: the share of its listed people each rule fired for.
fn tier_reasons(inp: &Inputs<'_>, by_tier: &[u64]) -> Vec<TierReasons> {
    use rayon::prelude::*;
    let n_rules = inp.pack.rules.len();
    let tiers = inp.pack.tiers.len();
    // Per tier, how many listed people each rule fired for; and how many
    // an override forced in. Practice lists are counted side by side.
    let empty = || (vec![vec![0u64; n_rules]; tiers], vec![0u64; tiers]);
    let (fired, forced) = inp
        .lists
        .par_iter()
        .fold(empty, |(mut fired, mut forced), l| {
            for e in &l.entries {
                let t = usize::from(e.tier);
                for (r, counts) in fired[t].iter_mut().enumerate() {
                    let a = &inp.outcomes.rules[r];
                    if a.is_valid(e.slot) && a.value(e.slot) {
                        *counts += 1;
                    }
                }
                if inp.outcomes.forced[e.slot].is_some() {
                    forced[t] += 1;
                }
            }
            (fired, forced)
        })
        .reduce(empty, |(mut fired, mut forced), (f, o)| {
            for (a, b) in fired.iter_mut().flatten().zip(f.iter().flatten()) {
                *a += b;
            }
            for (a, b) in forced.iter_mut().zip(&o) {
                *a += b;
            }
            (fired, forced)
        });
    inp.pack
        .tiers
        .iter()
        .enumerate()
        .map(|(t, tier)| {
            let total = by_tier[t];
            // Most common first; rules in pack order on a tie.
            let mut counted: Vec<(u64, &str)> = inp
                .pack
                .rules
                .iter()
                .zip(&fired[t])
                .filter(|(_, &n)| n > 0)
                .map(|(r, &n)| (n, r.id.as_str()))
                .collect();
            counted.sort_by_key(|c| std::cmp::Reverse(c.0));
            let mut reasons: Vec<Share> = counted
                .into_iter()
                .map(|(n, id)| share(id, n, total, inp.counts))
                .collect();
            if forced[t] > 0 {
                reasons.push(share(
                    "forced in by an override",
                    forced[t],
                    total,
                    inp.counts,
                ));
            }
            TierReasons {
                tier: tier.label.clone(),
                listed: one(total, inp.counts).to_string(),
                reasons,
            }
        })
        .collect()
}

fn share(label: &str, n: u64, total: u64, c: Counts) -> Share {
    let small = c == Counts::SmallNumbersSuppressed && (1..=7).contains(&n);
    let p = if total == 0 {
        0.0
    } else {
        100.0 * n as f64 / total as f64
    };
    Share {
        label: label.to_string(),
        percent: if small {
            "1–7 people".into()
        } else {
            format!("{}%", p.round())
        },
        width: if small { 0 } else { p.round() as u32 },
    }
}

/// Age bands of the equity table: (label, youngest age).
const AGE_BANDS: [(&str, i64); 6] = [
    ("0-17", 0),
    ("18-49", 18),
    ("50-64", 50),
    ("65-74", 65),
    ("75-84", 75),
    ("85+", 85),
];

/// One person's groups: IMD quintile (5 unknown), age band (6 unknown),
/// sex (0 female, 1 male, 2 other or unknown).
struct Grouper<'a> {
    patients: &'a Patients,
    cutoffs: Vec<i32>,
    as_of_days: i32,
    /// By the sex column's dictionary key.
    sex_of_key: Vec<usize>,
}

impl Grouper<'_> {
    #[inline]
    fn groups(&self, row: usize) -> [usize; 3] {
        let p = self.patients;
        // 0-based quintile; 5 for unknown.
        let quintile = p
            .imd_decile
            .is_valid(row)
            .then(|| p.imd_decile.value(row))
            .and_then(crate::reference::deprivation::quintile_of_decile)
            .map_or(5, |q| q as usize - 1);
        let band = if p.date_of_birth.is_valid(row) && p.date_of_birth.value(row) <= self.as_of_days
        {
            let dob = p.date_of_birth.value(row);
            self.cutoffs.iter().filter(|&&c| dob <= c).count()
        } else {
            AGE_BANDS.len()
        };
        let sex = p.sex.key(row).map_or(2, |k| self.sex_of_key[k]);
        [quintile, band, sex]
    }
}

/// Listed people against the population by IMD quintile, age band and
/// sex.
fn equity(inp: &Inputs<'_>) -> Vec<EquityView> {
    use rayon::prelude::*;
    let p = inp.patients;
    let ages = crate::pack::semantics::Ages::new(inp.as_of);
    let grouper = Grouper {
        patients: p,
        cutoffs: AGE_BANDS[1..]
            .iter()
            .map(|&(_, a)| ages.born_by(a))
            .collect(),
        as_of_days: crate::dataset::columns::date_to_days(inp.as_of),
        sex_of_key: (0..p.sex.dictionary_len())
            .map(|k| match p.sex.dictionary_value(k) {
                "F" => 0,
                "M" => 1,
                _ => 2,
            })
            .collect(),
    };
    let empty = || [vec![0u64; 6], vec![0u64; 7], vec![0u64; 3]];
    let add = |mut a: [Vec<u64>; 3], b: [Vec<u64>; 3]| {
        for (x, y) in a.iter_mut().zip(b) {
            x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
        }
        a
    };
    // Plain loops over blocks of rows, so that `groups` is inlined into
    // them (through rayon's per-row fold it was not always, and the report
    // took 40% longer at 10M people).
    const BLOCK: usize = 1 << 16;
    let pop = (0..p.len().div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let mut acc = empty();
            for row in b * BLOCK..p.len().min((b + 1) * BLOCK) {
                if inp.outcomes.row_in_population(row) {
                    for (k, g) in grouper.groups(row).into_iter().enumerate() {
                        acc[k][g] += 1;
                    }
                }
            }
            acc
        })
        .reduce(empty, add);
    let listed = inp
        .lists
        .par_iter()
        .map(|l| {
            let mut acc = empty();
            for e in &l.entries {
                for (k, g) in grouper.groups(e.person).into_iter().enumerate() {
                    acc[k][g] += 1;
                }
            }
            acc
        })
        .reduce(empty, add);
    let names: [Vec<String>; 3] = [
        vec![
            "1 (most deprived)".into(),
            "2".into(),
            "3".into(),
            "4".into(),
            "5 (least deprived)".into(),
            "unknown".into(),
        ],
        AGE_BANDS
            .iter()
            .map(|b| b.0.to_string())
            .chain(["unknown".into()])
            .collect(),
        vec!["female".into(), "male".into(), "other or unknown".into()],
    ];
    let titles = [
        format!(
            "By {} quintile of the area people live in",
            inp.manifest.deprivation.index
        ),
        "By age band".into(),
        "By sex".into(),
    ];
    (0..3)
        .map(|k| {
            let rates: Vec<Option<f64>> = pop[k]
                .iter()
                .zip(&listed[k])
                .map(|(&n, &l)| {
                    let hidden = inp.counts == Counts::SmallNumbersSuppressed
                        && ((1..=7).contains(&l) || (1..=7).contains(&n));
                    (n > 0 && !hidden).then(|| 100.0 * l as f64 / n as f64)
                })
                .collect();
            let top = rates.iter().flatten().copied().fold(0.0_f64, f64::max);
            let rows = names[k]
                .iter()
                .enumerate()
                .filter(|&(i, _)| pop[k][i] > 0 || listed[k][i] > 0)
                .map(|(i, g)| EquityRow {
                    group: g.clone(),
                    population: one(pop[k][i], inp.counts).to_string(),
                    listed: one(listed[k][i], inp.counts).to_string(),
                    rate: rates[i].map_or_else(|| "–".to_string(), |r| format!("{r:.1}%")),
                    width: match rates[i] {
                        Some(r) if top > 0.0 => (100.0 * r / top).round() as u32,
                        _ => 0,
                    },
                })
                .collect();
            EquityView {
                title: titles[k].to_string(),
                rows,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::columns::{date_to_days, days_to_date};
    use crate::pack::semantics::age_on;

    /// The age band cut-offs agree with `age_on` for every birthday over
    /// 90 years, on ordinary and leap-day as-of dates.
    #[test]
    fn age_band_cutoffs_agree_with_age_on() {
        for as_of in ["2020-03-23", "2020-02-29", "2021-02-28", "2024-03-01"] {
            let as_of = crate::dataset::columns::parse_iso_date(as_of).unwrap();
            let ages = crate::pack::semantics::Ages::new(as_of);
            let cutoffs: Vec<i32> = AGE_BANDS[1..]
                .iter()
                .map(|&(_, a)| ages.born_by(a))
                .collect();
            let end = date_to_days(as_of);
            for dob in end - 90 * 366..=end {
                let age = age_on(days_to_date(dob).unwrap(), as_of).unwrap();
                let expected = AGE_BANDS.iter().rposition(|&(_, lo)| age >= lo).unwrap();
                let band = cutoffs.iter().filter(|&&c| dob <= c).count();
                assert_eq!(
                    band,
                    expected,
                    "born {:?}, as of {as_of}",
                    days_to_date(dob)
                );
            }
        }
    }
}
