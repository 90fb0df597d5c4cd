//! Data-quality findings and the dataset summary printed by `strata inspect`.
//!
//! Problems that do not stop a run (events for unknown patients, dates after
//! the as-of date or before the person's birth) are counted here, per table,
//! so that the manifest and `inspect` can report them.

use std::collections::BTreeMap;
use std::fmt;

use arrow::array::Array;
use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use super::columns::{date_to_days, days_to_date, short_key, PatientIds};
use super::error::DatasetError;
use super::events::{ContactReader, EventBatch, EventReader};
use super::patients::Patients;
use super::Dataset;

/// Counts of rows kept but flagged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    /// Rows whose patient_id is not in the patients table (ignored by scoring).
    pub unknown_patient: u64,
    /// Rows dated after the as-of date (never counted by any window).
    pub after_as_of: u64,
    /// Rows dated before the person's date of birth.
    pub before_birth: u64,
}

impl Findings {
    pub fn add(&mut self, other: &Findings) {
        self.unknown_patient += other.unknown_patient;
        self.after_as_of += other.after_as_of;
        self.before_birth += other.before_birth;
    }

    pub fn total(&self) -> u64 {
        self.unknown_patient + self.after_as_of + self.before_birth
    }
}

/// Patients whose date of birth is implausible on the as-of date. They are
/// kept (a data lead fixes the record; the night's lists still run): a birth
/// after the as-of date has no age, so no age-based population holds them;
/// an age over 120 is scored as recorded. Counted so the manifest, the
/// report and `strata inspect` show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PatientFindings {
    /// Born after the as-of date.
    pub born_after_as_of: u64,
    /// Alive and registered on the as-of date and older than 120.
    pub aged_over_120: u64,
    /// With an `lsoa_code` that is not an English LSOA of the dataset's
    /// `lsoa_vintage` (their decile, when derived, is NULL).
    pub lsoa_not_in_vintage: u64,
}

impl PatientFindings {
    pub fn total(&self) -> u64 {
        self.born_after_as_of + self.aged_over_120 + self.lsoa_not_in_vintage
    }

    /// Plain-words lines for the report and `inspect`, one per finding.
    pub fn lines(&self) -> Vec<(u64, &'static str)> {
        [
            (self.born_after_as_of, "people born after the as-of date (no age; in no age-based population)"),
            (self.aged_over_120, "registered people aged over 120 on the as-of date (a date of birth or death to check)"),
            (self.lsoa_not_in_vintage, "people whose lsoa_code is not an English LSOA of the dataset's LSOA vintage (no deprivation decile for them)"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .collect()
    }
}

/// People with an `lsoa_code` that is / is not an LSOA of the dataset's
/// vintage (each distinct code looked up once).
fn lsoa_counts(patients: &Patients) -> (u64, u64) {
    let d = patients.deprivation;
    let lookup = crate::reference::deprivation::DeprivationLookup::get(d.index, d.lsoa_vintage);
    let codes = &patients.lsoa_code;
    let known: Vec<bool> = (0..codes.dictionary_len())
        .map(|k| lookup.lookup(codes.dictionary_value(k)).is_some())
        .collect();
    use rayon::prelude::*;
    (0..codes.len())
        .into_par_iter()
        .with_min_len(1 << 16)
        .fold(
            || (0u64, 0u64),
            |(found, not_found), i| match codes.key(i) {
                Some(k) if known[k] => (found + 1, not_found),
                Some(_) => (found, not_found + 1),
                None => (found, not_found),
            },
        )
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// The deprivation a dataset's people get: which index, on which LSOAs,
/// from where (manifest, `inspect`, report).
#[derive(Debug, Clone, Serialize)]
pub struct DeprivationSummary {
    /// `"2019"` or `"2025"`.
    pub index: crate::reference::deprivation::ImdVersion,
    pub index_title: &'static str,
    /// `"2011"` or `"2021"`: the LSOA codes the extract carries.
    pub lsoa_vintage: crate::reference::deprivation::LsoaVintage,
    /// `"dataset.toml"` or `"default"`.
    pub stated_in: &'static str,
    /// `"imd_decile column"`, or `"lsoa_code"` (looked up in the index,
    /// through the 2011 ↔ 2021 lookup when the vintages differ).
    pub decile_from: &'static str,
    /// People with an lsoa_code of the vintage, and with one that is not.
    pub lsoa_found: u64,
    pub lsoa_not_found: u64,
}

impl DeprivationSummary {
    pub fn of(patients: &Patients) -> DeprivationSummary {
        let d = patients.deprivation;
        let (lsoa_found, lsoa_not_found) = lsoa_counts(patients);
        DeprivationSummary {
            index: d.index,
            index_title: d.index.title(),
            lsoa_vintage: d.lsoa_vintage,
            stated_in: d.stated_in,
            decile_from: if patients.imd_from_column {
                "imd_decile column"
            } else {
                "lsoa_code"
            },
            lsoa_found,
            lsoa_not_found,
        }
    }

    /// One line for people: `IoD2025 deciles from lsoa_code (2011 LSOAs, converted; stated in dataset.toml)`.
    pub fn describe(&self) -> String {
        let how = if self.decile_from == "lsoa_code" {
            if self.index.vintage() == self.lsoa_vintage {
                format!("from lsoa_code ({})", self.lsoa_vintage)
            } else {
                format!(
                    "from lsoa_code ({}, converted to {} through the ONS lookup; split areas take their most deprived part)",
                    self.lsoa_vintage,
                    self.index.vintage()
                )
            }
        } else {
            "as given in the imd_decile column".to_string()
        };
        let stated = if self.stated_in == "default" {
            "the default: dataset.toml states no imd and lsoa_vintage"
        } else {
            "stated in dataset.toml"
        };
        format!("{} deciles {how}; {stated}", self.index)
    }
}

/// Counts the patients table's implausible ages on `as_of`; LSOAs not of
/// the vintage are taken from `deprivation` (counted there).
pub fn patient_findings(
    patients: &Patients,
    as_of: NaiveDate,
    deprivation: &DeprivationSummary,
) -> PatientFindings {
    let as_of_days = date_to_days(as_of);
    // Born on or before this day: 121 or older on the as-of date.
    let oldest = as_of
        .with_year(as_of.year() - 121)
        .or_else(|| NaiveDate::from_ymd_opt(as_of.year() - 121, 2, 28))
        .map_or(i32::MIN, date_to_days);
    let dob = &patients.date_of_birth;
    let mut f = PatientFindings {
        lsoa_not_in_vintage: deprivation.lsoa_not_found,
        ..PatientFindings::default()
    };
    for i in 0..patients.len() {
        if !dob.is_valid(i) {
            continue;
        }
        let d = dob.value(i);
        if d > as_of_days {
            f.born_after_as_of += 1;
            continue;
        }
        let gone = |col: &arrow::array::Date32Array| col.is_valid(i) && col.value(i) <= as_of_days;
        if d <= oldest && !gone(&patients.date_of_death) && !gone(&patients.registration_end) {
            f.aged_over_120 += 1;
        }
    }
    f
}

/// Patients-table rows after the last one found that are compared with a
/// new id before the index is asked.
const LOOK_AHEAD: usize = 8;

/// Integer ids resolved to patients-table rows one at a time, by the rules
/// of [`resolve_rows`] (which uses it).
pub struct IntRows<'a> {
    patients: &'a Patients,
    /// The patients table's ids (empty when they are text).
    table: &'a [i64],
    last: Option<(i64, u32)>,
    next: usize,
}

impl<'a> IntRows<'a> {
    pub fn new(patients: &'a Patients) -> IntRows<'a> {
        IntRows {
            patients,
            table: match &patients.ids {
                PatientIds::Int(p) => p.values(),
                PatientIds::Text(_) => &[],
            },
            last: None,
            next: 0,
        }
    }

    /// The row of `id` (`u32::MAX`: unknown).
    #[inline]
    pub fn row(&mut self, id: i64) -> u32 {
        match self.last {
            Some((l, r)) if l == id => r,
            _ => self.look_up(id),
        }
    }

    #[inline(never)]
    fn look_up(&mut self, id: i64) -> u32 {
        // People without events are skipped: look a few rows ahead.
        let ahead = self.table.get(self.next..).unwrap_or(&[]);
        let r = match ahead.iter().take(LOOK_AHEAD).position(|&t| t == id) {
            Some(k) => (self.next + k) as u32,
            None => self.patients.row_of_int(id).unwrap_or(u32::MAX),
        };
        if r != u32::MAX {
            self.next = r as usize + 1;
        }
        self.last = Some((id, r));
        r
    }
}

/// `a == b`, for ids of up to 15 bytes (most) as numbers ([`short_key`])
/// rather than by a call to `memcmp`: a person's events follow each other,
/// so each event's id is compared with the one before, whose number
/// (`a_key`, its `short_key`) is worked out once.
#[inline]
fn same_text(a: &[u8], a_key: Option<u128>, b: &[u8]) -> bool {
    match (a_key, short_key(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Row ids of an event batch resolved to patients-table rows (`u32::MAX`:
/// unknown). Consecutive equal ids (tables grouped by patient) are looked up
/// once; and when a new id is on one of the few patients rows after the
/// last one found (events in the patients table's order, some people
/// without events), it is taken from there without a hash probe. Either way the id itself is compared, so
/// any order gives the same rows.
pub fn resolve_rows(patients: &Patients, ids: &PatientIds, out: &mut Vec<u32>) {
    out.clear();
    out.reserve(ids.len());
    match ids {
        PatientIds::Int(a) => {
            let mut rows = IntRows::new(patients);
            out.extend(a.values().iter().map(|&id| rows.row(id)));
        }
        PatientIds::Text(a) => {
            let table = match &patients.ids {
                PatientIds::Text(p) => Some(p),
                PatientIds::Int(_) => None,
            };
            let mut last: Option<(&str, Option<u128>, u32)> = None;
            let mut next = 0usize;
            for i in 0..a.len() {
                let id = a.value(i);
                let row = match last {
                    Some((l, key, r)) if same_text(l.as_bytes(), key, id.as_bytes()) => r,
                    _ => {
                        let ahead = |t: &arrow::array::StringArray| {
                            let id = id.trim();
                            (next..t.len().min(next + LOOK_AHEAD)).find(|&k| t.value(k) == id)
                        };
                        let r = match table.and_then(ahead) {
                            Some(k) => k as u32,
                            None => patients.row_of_text(id).unwrap_or(u32::MAX),
                        };
                        if r != u32::MAX {
                            next = r as usize + 1;
                        }
                        last = Some((id, short_key(id.as_bytes()), r));
                        r
                    }
                };
                out.push(row);
            }
        }
    }
}

/// Findings for one event batch, with rows already resolved.
pub fn batch_findings(
    patients: &Patients,
    batch: &EventBatch,
    rows: &[u32],
    as_of_days: i32,
) -> Findings {
    let mut f = Findings::default();
    let dob = patients.date_of_birth.values();
    for (&row, &date) in rows.iter().zip(batch.dates.values().iter()) {
        if row == u32::MAX {
            f.unknown_patient += 1;
            continue;
        }
        if date > as_of_days {
            f.after_as_of += 1;
        }
        if date < dob[row as usize] {
            f.before_birth += 1;
        }
    }
    f
}

#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    pub name: String,
    pub file: String,
    pub rows: u64,
    pub first_date: Option<NaiveDate>,
    pub last_date: Option<NaiveDate>,
    pub distinct_codes: Option<u64>,
    pub findings: Findings,
}

impl TableSummary {
    fn empty(table: &super::TableFile) -> TableSummary {
        TableSummary {
            name: table.name.clone(),
            file: table.display_name(),
            rows: 0,
            first_date: None,
            last_date: None,
            distinct_codes: None,
            findings: Findings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary {
    pub dir: String,
    pub as_of: NaiveDate,
    pub as_of_source: &'static str,
    pub patients: u64,
    pub registered_alive: u64,
    pub deceased: u64,
    pub deregistered: u64,
    /// People per practice, by practice code.
    pub practices: BTreeMap<String, u64>,
    pub pcns: BTreeMap<String, u64>,
    pub patient_findings: PatientFindings,
    pub deprivation: DeprivationSummary,
    /// Per table: how its columns were mapped and its date formats.
    #[serde(skip)]
    pub mappings: Vec<(String, super::TableSpec)>,
    pub tables: Vec<TableSummary>,
}

/// Reads the whole dataset once and summarises it.
pub fn summarise(ds: &Dataset) -> Result<DatasetSummary, DatasetError> {
    let patients = ds.read_patients()?;
    let mut tables = Vec::new();
    let mut rows = Vec::new();
    // As-of: the extract date, else the latest event date (never the clock).
    let (as_of, as_of_source) = match ds.meta.extract_date {
        Some(d) => (d, "dataset.toml extract_date"),
        None => (
            latest_event_date(ds)?.unwrap_or(NaiveDate::MIN),
            "latest event date",
        ),
    };
    let as_of_days = date_to_days(as_of);
    for table in &ds.event_tables {
        let mut s = TableSummary::empty(table);
        let (mut lo, mut hi) = (i32::MAX, i32::MIN);
        let mut codes = std::collections::HashSet::new();
        for batch in EventReader::open(table)? {
            let batch = batch?;
            resolve_rows(&patients, &batch.ids, &mut rows);
            s.findings
                .add(&batch_findings(&patients, &batch, &rows, as_of_days));
            s.rows += batch.len() as u64;
            for &d in batch.dates.values().iter() {
                lo = lo.min(d);
                hi = hi.max(d);
            }
            let dict = batch.codes.values();
            if let Some(strings) = dict.as_any().downcast_ref::<arrow::array::StringArray>() {
                for k in batch.codes.keys().values().iter() {
                    if codes.len() < 10_000_000 {
                        codes.insert(strings.value(*k as usize).to_string());
                    }
                }
            }
        }
        if s.rows > 0 {
            s.first_date = days_to_date(lo);
            s.last_date = days_to_date(hi);
        }
        s.distinct_codes = Some(codes.len() as u64);
        tables.push(s);
    }
    if let Some(table) = &ds.contacts {
        let mut s = TableSummary::empty(table);
        let (mut lo, mut hi) = (i32::MAX, i32::MIN);
        for batch in ContactReader::open(table)? {
            let batch = batch?;
            resolve_rows(&patients, &batch.ids, &mut rows);
            s.rows += batch.dates.len() as u64;
            for (&row, &d) in rows.iter().zip(batch.dates.values().iter()) {
                lo = lo.min(d);
                hi = hi.max(d);
                if row == u32::MAX {
                    s.findings.unknown_patient += 1;
                } else if d > as_of_days {
                    s.findings.after_as_of += 1;
                }
            }
        }
        if s.rows > 0 {
            s.first_date = days_to_date(lo);
            s.last_date = days_to_date(hi);
        }
        tables.push(s);
    }

    let mut practices = BTreeMap::new();
    let mut pcns = BTreeMap::new();
    let (mut deceased, mut deregistered, mut registered_alive) = (0, 0, 0);
    for i in 0..patients.len() {
        *practices
            .entry(patients.practice_code.value(i).to_string())
            .or_insert(0) += 1;
        if patients.pcn_code.is_valid(i) {
            *pcns
                .entry(patients.pcn_code.value(i).to_string())
                .or_insert(0) += 1;
        }
        let dead =
            patients.date_of_death.is_valid(i) && patients.date_of_death.value(i) <= as_of_days;
        let left = patients.registration_end.is_valid(i)
            && patients.registration_end.value(i) <= as_of_days;
        deceased += u64::from(dead);
        deregistered += u64::from(left && !dead);
        registered_alive += u64::from(!dead && !left);
    }
    let deprivation = DeprivationSummary::of(&patients);
    Ok(DatasetSummary {
        dir: ds.dir.display().to_string(),
        as_of,
        as_of_source,
        patients: patients.len() as u64,
        registered_alive,
        deceased,
        deregistered,
        practices,
        pcns,
        patient_findings: patient_findings(&patients, as_of, &deprivation),
        deprivation,
        mappings: std::iter::once(&ds.patients)
            .chain(ds.event_tables.iter())
            .chain(ds.contacts.iter())
            .map(|t| (t.display_name(), (*t.spec).clone()))
            .collect(),
        tables,
    })
}

/// The latest date in any event table (the default as-of without an extract date).
pub fn latest_event_date(ds: &Dataset) -> Result<Option<NaiveDate>, DatasetError> {
    let mut hi: Option<i32> = None;
    for table in &ds.event_tables {
        for batch in EventReader::open(table)? {
            let batch = batch?;
            if let Some(m) = batch.dates.values().iter().max() {
                hi = Some(hi.map_or(*m, |h| h.max(*m)));
            }
        }
    }
    Ok(hi.and_then(days_to_date))
}

impl fmt::Display for DatasetSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset   {}", self.dir)?;
        writeln!(f, "as-of     {} ({})", self.as_of, self.as_of_source)?;
        writeln!(
            f,
            "patients  {} ({} registered and alive, {} deceased, {} deregistered)",
            self.patients, self.registered_alive, self.deceased, self.deregistered
        )?;
        writeln!(
            f,
            "practices {} in {} PCNs",
            self.practices.len(),
            self.pcns.len()
        )?;
        for (code, n) in &self.practices {
            writeln!(f, "  {code}  {n:>8} people")?;
        }
        writeln!(f, "deprivation {}", self.deprivation.describe())?;
        if self.deprivation.lsoa_found + self.deprivation.lsoa_not_found > 0 {
            writeln!(
                f,
                "  lsoa_code: {} people with an LSOA of the vintage, {} without one",
                self.deprivation.lsoa_found, self.deprivation.lsoa_not_found
            )?;
        }
        if self.mappings.iter().all(|(_, s)| s.is_plain()) {
            writeln!(
                f,
                "columns and dates: the contract's names, dates YYYY-MM-DD"
            )?;
        } else {
            writeln!(f, "columns and dates")?;
            for (file, spec) in &self.mappings {
                let formats = std::iter::once(format!(
                    "dates {}{}",
                    spec.date_format,
                    match spec.date_format_from {
                        "dataset" => " (dataset.toml)",
                        "table" => " (dataset.toml, this table)",
                        _ => " (the default)",
                    }
                ))
                .chain(spec.column_dates.iter().map(|(c, f)| format!("{c} {f}")))
                .collect::<Vec<_>>()
                .join(", ");
                writeln!(f, "  {file}: {formats}")?;
                for (ours, theirs) in &spec.renames {
                    writeln!(f, "    {ours} <- {theirs:?}")?;
                }
            }
        }
        writeln!(f, "tables")?;
        for t in &self.tables {
            let range = match (t.first_date, t.last_date) {
                (Some(a), Some(b)) => format!("{a} .. {b}"),
                _ => "no rows".to_string(),
            };
            let codes = t
                .distinct_codes
                .map(|c| format!(", {c} distinct codes"))
                .unwrap_or_default();
            writeln!(f, "  {:<12} {:>11} rows  {range}{codes}", t.name, t.rows)?;
        }
        writeln!(f, "data-quality findings")?;
        let mut any = false;
        for (n, what) in self.patient_findings.lines() {
            any = true;
            writeln!(f, "  patients: {n} {what}")?;
        }
        for t in &self.tables {
            let fi = &t.findings;
            for (n, what) in [
                (fi.unknown_patient, "rows for a patient_id not in patients"),
                (fi.after_as_of, "rows dated after the as-of date"),
                (fi.before_birth, "rows dated before the person's birth"),
            ] {
                if n > 0 {
                    any = true;
                    writeln!(f, "  {}: {n} {what}", t.file)?;
                }
            }
        }
        if !any {
            writeln!(f, "  none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{same_text, short_key};

    #[test]
    fn same_text_is_equality_at_every_length() {
        for n in 0..=20usize {
            let a: Vec<u8> = (0..n as u8).map(|i| b'0' + i % 10).collect();
            let key = short_key(&a);
            assert!(same_text(&a, key, &a.clone()), "{n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] = b'x';
                assert!(!same_text(&a, key, &b), "{n} bytes, differing at {i}");
            }
            let mut longer = a.clone();
            longer.push(b'0');
            assert!(!same_text(&a, key, &longer), "{n}");
        }
    }
}
