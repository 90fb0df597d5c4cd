//! How an extract is described in `dataset.toml`: its own column names,
//! its date formats, and its deprivation geography.
//!
//! ```toml
//! extract_date = 2026-11-20
//! lsoa_vintage = 2021          # the LSOA codes the extract carries
//! imd = "2025"                 # the index applied (or the extract's imd_decile is from)
//! date_format = "%d/%m/%Y"     # every text date of every table, unless a table or column says otherwise
//!
//! [tables.patients]
//! date_format = "%d-%b-%Y"
//! [tables.patients.columns]
//! patient_id = "Patient ID"
//! date_of_birth = { name = "Date of Birth", date_format = "%d/%m/%Y" }
//! ```
//!
//! Nothing is guessed: a date is read in its one stated format (ISO
//! `YYYY-MM-DD` unless one is given), a mapped column must exist under its
//! mapped name, and messages name the extract's own column.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;

use super::columns::parse_iso_date;

/// A date format: ISO `YYYY-MM-DD` (fast path), or a chrono `strftime`
/// pattern such as `%d/%m/%Y` or `%d-%b-%Y`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DateFormat {
    /// `None`: ISO.
    pattern: Option<String>,
}

impl DateFormat {
    pub const ISO: DateFormat = DateFormat { pattern: None };

    /// Checks a pattern: it must name a day, a month and a four-digit year,
    /// and read back a date it wrote.
    pub fn parse(pattern: &str) -> Result<DateFormat, String> {
        let p = pattern.trim();
        if p == "%Y-%m-%d" || p.eq_ignore_ascii_case("iso") || p == "YYYY-MM-DD" {
            return Ok(DateFormat::ISO);
        }
        if p.contains("%y") {
            return Err(format!(
                "{pattern:?}: two-digit years (%y) are ambiguous for dates of birth; use %Y"
            ));
        }
        let has = |any: &[&str]| any.iter().any(|s| p.contains(s));
        if !has(&["%d", "%e"]) || !has(&["%m", "%b", "%B", "%h"]) || !has(&["%Y"]) {
            return Err(format!(
                "{pattern:?} is not a date format with a day (%d), a month (%m, %b) and a year (%Y)"
            ));
        }
        use chrono::format::{Item, StrftimeItems};
        if StrftimeItems::new(p).any(|i| matches!(i, Item::Error)) {
            return Err(format!("{pattern:?} is not a valid date format"));
        }
        let probe = NaiveDate::from_ymd_opt(2020, 11, 23).expect("a date");
        let f = DateFormat {
            pattern: Some(p.to_string()),
        };
        if f.read(&probe.format(p).to_string()) != Some(probe) {
            return Err(format!("{pattern:?} cannot read back the dates it writes"));
        }
        Ok(f)
    }

    /// The date in `text` (already trimmed), if it is one in this format.
    pub fn read(&self, text: &str) -> Option<NaiveDate> {
        match &self.pattern {
            None => parse_iso_date(text),
            Some(p) => NaiveDate::parse_from_str(text, p).ok(),
        }
    }

    /// [`DateFormat::read`] as an Arrow Date32 value (ISO text straight to
    /// the day number, without a calendar date).
    pub fn read_days(&self, text: &str) -> Option<i32> {
        match &self.pattern {
            None => super::columns::iso_date_days(text),
            Some(_) => self.read(text).map(super::columns::date_to_days),
        }
    }

    pub fn is_iso(&self) -> bool {
        self.pattern.is_none()
    }

    /// The format for people: `YYYY-MM-DD`, `DD/MM/YYYY`, `DD-Mon-YYYY`.
    pub fn describe(&self) -> String {
        match &self.pattern {
            None => "YYYY-MM-DD".into(),
            Some(p) => p
                .replace("%d", "DD")
                .replace("%e", "D")
                .replace("%m", "MM")
                .replace("%b", "Mon")
                .replace("%h", "Mon")
                .replace("%B", "Month")
                .replace("%Y", "YYYY"),
        }
    }

    /// As written in dataset.toml (`%Y-%m-%d` for ISO).
    pub fn pattern(&self) -> &str {
        self.pattern.as_deref().unwrap_or("%Y-%m-%d")
    }
}

impl fmt::Display for DateFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// One table's description: contract column → the extract's name, and
/// date formats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSpec {
    /// (our name, the extract's name), in dataset.toml order.
    pub renames: Vec<(String, String)>,
    /// Per column (our name), where it differs from `date_format`.
    pub column_dates: BTreeMap<String, DateFormat>,
    /// The table's date format (the dataset's, unless the table has its own).
    pub date_format: DateFormat,
    /// Where `date_format` was stated (`"dataset"`, `"table"`, or `""`: the ISO default).
    pub date_format_from: &'static str,
}

impl TableSpec {
    /// The extract's name for one of our columns.
    pub fn file_name<'a>(&'a self, ours: &'a str) -> &'a str {
        self.renames
            .iter()
            .find(|(o, _)| o == ours)
            .map_or(ours, |(_, t)| t.as_str())
    }

    /// Our name for one of the extract's columns.
    pub fn our_name<'a>(&'a self, theirs: &'a str) -> &'a str {
        self.renames
            .iter()
            .find(|(_, t)| t == theirs)
            .map_or(theirs, |(o, _)| o.as_str())
    }

    /// The column as messages name it: the extract's own name.
    pub fn label(&self, ours: &str) -> String {
        self.file_name(ours).to_string()
    }

    /// The date format of a column (our name).
    pub fn date_format(&self, ours: &str) -> &DateFormat {
        self.column_dates.get(ours).unwrap_or(&self.date_format)
    }

    /// Whether anything differs from the contract's names and ISO dates.
    pub fn is_plain(&self) -> bool {
        self.renames.is_empty() && self.column_dates.is_empty() && self.date_format.is_iso()
    }

    /// The file's column names as ours; an error when a mapped column is
    /// missing or a mapping would give two columns one name.
    pub fn map_header(&self, file: &str, header: &[String]) -> Result<Vec<String>, String> {
        for (ours, theirs) in &self.renames {
            if !header.iter().any(|h| h == theirs) {
                return Err(format!(
                    "{file} has no column {theirs:?} (dataset.toml maps {ours} to it; the file's columns: {})",
                    header.join(", ")
                ));
            }
            if ours != theirs && header.iter().any(|h| h == ours) {
                return Err(format!(
                    "{file} has a column {ours} and dataset.toml maps {ours} to {theirs:?}: one of the two would be ignored; rename one"
                ));
            }
        }
        Ok(header
            .iter()
            .map(|h| self.our_name(h).to_string())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    #[test]
    fn day_first_formats_read_the_day_first() {
        let f = DateFormat::parse("%d/%m/%Y").unwrap();
        assert_eq!(f.read("01/02/2020"), date(2020, 2, 1));
        assert_eq!(f.read("23/03/2020"), date(2020, 3, 23));
        assert_eq!(f.read("31/02/1950"), None);
        assert_eq!(f.read("2020-02-01"), None);
        assert_eq!(f.read("29/02/2019"), None);
        assert_eq!(f.read("29/02/2020"), date(2020, 2, 29));
        assert_eq!(f.describe(), "DD/MM/YYYY");
        let f = DateFormat::parse("%d-%b-%Y").unwrap();
        assert_eq!(f.read("23-Mar-2020"), date(2020, 3, 23));
        assert_eq!(f.read("01-Feb-2020"), date(2020, 2, 1));
        assert_eq!(f.read("23/03/2020"), None);
        assert_eq!(f.describe(), "DD-Mon-YYYY");
        // ISO, however it is spelt, is the fast reader.
        for iso in ["%Y-%m-%d", "ISO", "YYYY-MM-DD"] {
            let f = DateFormat::parse(iso).unwrap();
            assert!(f.is_iso());
            assert_eq!(f.read("2020-02-01"), date(2020, 2, 1));
        }
    }

    #[test]
    fn ambiguous_or_incomplete_formats_are_refused() {
        for bad in ["%d/%m/%y", "%m/%Y", "%d/%m", "hello", "%d/%m/%Y %Q"] {
            assert!(DateFormat::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_are_mapped_and_mistakes_named() {
        let spec = TableSpec {
            renames: vec![
                ("patient_id".into(), "Patient ID".into()),
                ("date_of_birth".into(), "Date of Birth".into()),
            ],
            ..TableSpec::default()
        };
        let header: Vec<String> = ["Patient ID", "Practice", "Date of Birth"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            spec.map_header("patients.csv", &header).unwrap(),
            ["patient_id", "Practice", "date_of_birth"]
        );
        assert_eq!(spec.label("date_of_birth"), "Date of Birth");
        assert_eq!(spec.label("sex"), "sex");
        let missing: Vec<String> = vec!["Patient ID".into(), "DOB".into()];
        assert_eq!(
            spec.map_header("patients.csv", &missing).unwrap_err(),
            "patients.csv has no column \"Date of Birth\" (dataset.toml maps date_of_birth to \
             it; the file's columns: Patient ID, DOB)"
        );
        let both: Vec<String> = vec![
            "Patient ID".into(),
            "patient_id".into(),
            "Date of Birth".into(),
        ];
        assert!(spec
            .map_header("patients.csv", &both)
            .unwrap_err()
            .starts_with("patients.csv has a column patient_id and dataset.toml maps patient_id"));
    }
}
