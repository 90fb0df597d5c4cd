//! Reading and validating a dataset folder into Arrow record batches.
//!
//! A dataset is a folder holding a `patients` table, any number of event
//! tables (`events`, `admissions`, `medications`, ...), an optional
//! `contacts` table and an optional `dataset.toml`; each table is
//! `NAME.parquet` or `NAME.csv`. See the input contract in DESIGN.md.
//!
//! [`Dataset::open`] only looks at the folder; [`Dataset::read_patients`]
//! loads the (small) patients table whole; event tables are streamed in
//! record batches by [`events::EventReader`] so memory does not grow with
//! the number of events.

pub mod columns;
pub mod error;
pub mod events;
pub mod patients;
pub mod quality;
pub mod raw;
pub mod spec;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;

pub use error::{DatasetError, Location};
pub use events::{EventBatch, EventReader};
pub use patients::Patients;
pub use spec::{DateFormat, TableSpec};

use crate::reference::deprivation::{ImdVersion, LsoaVintage};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a table is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
    /// Arrow record batches handed over in memory (the Python API).
    Memory,
}

/// One table file of a dataset.
#[derive(Debug, Clone)]
pub struct TableFile {
    /// Table name: the file name without its extension.
    pub name: String,
    pub path: PathBuf,
    pub format: Format,
    /// The batches of a [`Format::Memory`] table.
    pub batches: Option<std::sync::Arc<[arrow::array::RecordBatch]>>,
    /// Its column names and date formats, from dataset.toml.
    pub spec: Arc<TableSpec>,
    /// A Parquet file's footer, parsed once and shared by every reader of
    /// the file (the scan opens one reader a row group).
    pub parquet_footer: Arc<std::sync::OnceLock<parquet::arrow::arrow_reader::ArrowReaderMetadata>>,
    /// The file's size and BLAKE3 hash, set by a reader that read all of
    /// it in order (the CSV chunk reader), so the manifest's hash of the
    /// input need not read the file a second time.
    pub read_digest: Arc<std::sync::OnceLock<FileDigest>>,
}

/// A file's size and the BLAKE3 hash of its bytes (hex; `b3sum` gives the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub bytes: u64,
    pub blake3: String,
}

impl TableFile {
    /// A table handed over as Arrow record batches, named `name` in messages.
    pub fn in_memory(name: &str, batches: Vec<arrow::array::RecordBatch>) -> TableFile {
        TableFile {
            name: name.to_string(),
            path: PathBuf::from(name),
            format: Format::Memory,
            batches: Some(batches.into()),
            spec: Arc::default(),
            parquet_footer: Arc::default(),
            read_digest: Arc::default(),
        }
    }

    /// The file name used in messages (`patients.csv`; an in-memory table:
    /// `patients` as given).
    pub fn display_name(&self) -> String {
        if self.format == Format::Memory {
            return self.name.clone();
        }
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.name.clone())
    }
}

/// The optional `dataset.toml`.
#[derive(Debug, Clone, Default)]
pub struct DatasetMeta {
    /// When the data was taken from the clinical system.
    pub extract_date: Option<NaiveDate>,
    /// Free text: where the data came from.
    pub source: Option<String>,
    pub deprivation: DeprivationSpec,
    /// Per table name: column names and date formats.
    pub tables: BTreeMap<String, TableSpec>,
    /// The dataset-wide date format, when one is given.
    pub date_format: Option<DateFormat>,
}

/// Which index of deprivation applies, and which LSOA codes the extract
/// carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DeprivationSpec {
    /// `imd` in dataset.toml.
    pub index: ImdVersion,
    /// `lsoa_vintage` in dataset.toml.
    pub lsoa_vintage: LsoaVintage,
    /// `"dataset.toml"`, or `"default"` (neither key given: IMD 2019 on
    /// 2011 LSOAs, the contract's original geography).
    pub stated_in: &'static str,
}

impl DeprivationSpec {
    /// `imd` and `lsoa_vintage` as a dataset states them (dataset.toml, or
    /// the Python API's arguments): both or neither.
    pub fn stated(
        imd: Option<&str>,
        lsoa_vintage: Option<&str>,
    ) -> Result<DeprivationSpec, String> {
        match (imd, lsoa_vintage) {
            (None, None) => Ok(DeprivationSpec::default()),
            (Some(i), Some(v)) => Ok(DeprivationSpec {
                index: ImdVersion::parse(i).ok_or_else(|| {
                    format!("imd: {i:?} is not an index strata has (\"2019\" or \"2025\")")
                })?,
                lsoa_vintage: LsoaVintage::parse(v).ok_or_else(|| {
                    format!("lsoa_vintage: {v:?} is not an LSOA vintage (2011 or 2021)")
                })?,
                stated_in: "dataset.toml",
            }),
            (Some(_), None) => Err("imd is given without lsoa_vintage: say which LSOA codes the extract carries (lsoa_vintage = 2011 or 2021)".into()),
            (None, Some(_)) => Err("lsoa_vintage is given without imd: say which index to apply (imd = \"2019\" or \"2025\")".into()),
        }
    }
}

impl Default for DeprivationSpec {
    fn default() -> DeprivationSpec {
        DeprivationSpec {
            index: ImdVersion::Imd2019,
            lsoa_vintage: LsoaVintage::Lsoa2011,
            stated_in: "default",
        }
    }
}

/// A dataset folder, opened but not yet read.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub dir: PathBuf,
    pub meta: DatasetMeta,
    pub patients: TableFile,
    /// Event tables in name order.
    pub event_tables: Vec<TableFile>,
    pub contacts: Option<TableFile>,
}

impl Dataset {
    /// Finds the tables of the dataset at `dir`.
    pub fn open(dir: &Path) -> Result<Dataset, DatasetError> {
        if !dir.is_dir() {
            return Err(DatasetError::NotADirectory {
                path: dir.to_path_buf(),
                what: if dir.exists() {
                    "it is a file; give the folder that holds the tables"
                } else {
                    "no such directory"
                },
            });
        }
        let io = |source| DatasetError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut tables: Vec<TableFile> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(format) = raw::table_format(&path) else {
                continue;
            };
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            if let Some(other) = tables.iter().find(|t| t.name == name) {
                let (mut a, mut b) = (other.display_name(), path_name(&path));
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                return Err(DatasetError::DuplicateTable {
                    dir: dir.to_path_buf(),
                    table: name.to_string(),
                    first: a,
                    second: b,
                });
            }
            tables.push(TableFile {
                name: name.to_string(),
                path: path.clone(),
                format,
                batches: None,
                spec: Arc::default(),
                parquet_footer: Arc::default(),
                read_digest: Arc::default(),
            });
        }
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        let take = |tables: &mut Vec<TableFile>, name: &str| {
            tables
                .iter()
                .position(|t| t.name == name)
                .map(|i| tables.remove(i))
        };
        let patients = take(&mut tables, crate::contract::PATIENTS).ok_or_else(|| {
            DatasetError::MissingPatients {
                dir: dir.to_path_buf(),
            }
        })?;
        let mut contacts = take(&mut tables, crate::contract::CONTACTS);
        let meta = read_meta(dir)?;
        // Each table's description from dataset.toml; one it names that the
        // folder does not have is an error (a misspelt name would otherwise
        // leave the extract's headers unmapped).
        let mut patients = patients;
        let names: Vec<String> = std::iter::once(&patients)
            .chain(tables.iter())
            .chain(contacts.iter())
            .map(|t| t.name.clone())
            .collect();
        if let Some(unknown) = meta.tables.keys().find(|k| !names.contains(k)) {
            return Err(DatasetError::BadMetadata {
                path: dir.join("dataset.toml"),
                message: format!(
                    "[tables.{unknown}]: the folder has no table {unknown} (its tables: {})",
                    names.join(", ")
                ),
            });
        }
        for t in std::iter::once(&mut patients)
            .chain(tables.iter_mut())
            .chain(contacts.iter_mut())
        {
            t.spec = Arc::new(meta.spec_of(&t.name));
        }
        Ok(Dataset {
            dir: dir.to_path_buf(),
            meta,
            patients,
            event_tables: tables,
            contacts,
        })
    }

    /// A dataset handed over in memory: the patients table, event tables by
    /// name, and an optional contacts table, as Arrow record batches. The
    /// tables are checked exactly as files are (the same columns, types and
    /// messages, rows counted from 1).
    pub fn in_memory(
        patients: Vec<arrow::array::RecordBatch>,
        events: Vec<(String, Vec<arrow::array::RecordBatch>)>,
        contacts: Option<Vec<arrow::array::RecordBatch>>,
        extract_date: Option<NaiveDate>,
    ) -> Result<Dataset, DatasetError> {
        let mut event_tables: Vec<TableFile> = Vec::new();
        for (name, batches) in events {
            let reserved = [crate::contract::PATIENTS, crate::contract::CONTACTS];
            if name.is_empty() || reserved.contains(&name.as_str()) {
                return Err(DatasetError::BadTableName { name });
            }
            if event_tables.iter().any(|t| t.name == name) {
                return Err(DatasetError::DuplicateTable {
                    dir: PathBuf::from("(in memory)"),
                    table: name.clone(),
                    first: name.clone(),
                    second: name,
                });
            }
            event_tables.push(TableFile::in_memory(&name, batches));
        }
        event_tables.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Dataset {
            dir: PathBuf::from("(in memory)"),
            meta: DatasetMeta {
                extract_date,
                ..DatasetMeta::default()
            },
            patients: TableFile::in_memory(crate::contract::PATIENTS, patients),
            event_tables,
            contacts: contacts.map(|c| TableFile::in_memory(crate::contract::CONTACTS, c)),
        })
    }

    /// Every input file of the dataset, in a stable order (for hashing; an
    /// in-memory dataset has none).
    pub fn files(&self) -> Vec<PathBuf> {
        if self.patients.format == Format::Memory {
            return Vec::new();
        }
        let mut files = vec![self.patients.path.clone()];
        files.extend(self.event_tables.iter().map(|t| t.path.clone()));
        files.extend(self.contacts.iter().map(|t| t.path.clone()));
        let meta = self.dir.join("dataset.toml");
        if meta.is_file() {
            files.push(meta);
        }
        files
    }

    pub fn event_table(&self, name: &str) -> Option<&TableFile> {
        self.event_tables.iter().find(|t| t.name == name)
    }

    /// Loads and validates the patients table.
    pub fn read_patients(&self) -> Result<Patients, DatasetError> {
        Patients::read(&self.patients, self.meta.deprivation)
    }
}

fn path_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl DatasetMeta {
    /// The description of table `name`: its own, with the dataset's date
    /// format where it gives none.
    pub fn spec_of(&self, name: &str) -> TableSpec {
        let mut spec = self.tables.get(name).cloned().unwrap_or_default();
        if spec.date_format_from.is_empty() {
            if let Some(f) = &self.date_format {
                spec.date_format = f.clone();
                spec.date_format_from = "dataset";
            }
        }
        spec
    }
}

fn read_meta(dir: &Path) -> Result<DatasetMeta, DatasetError> {
    let path = dir.join("dataset.toml");
    if !path.is_file() {
        return Ok(DatasetMeta::default());
    }
    let text = std::fs::read_to_string(&path).map_err(|source| DatasetError::Io {
        path: path.clone(),
        source,
    })?;
    parse_meta(&text).map_err(|message| DatasetError::BadMetadata { path, message })
}

/// A TOML value given as a string or a bare number/date, as text.
fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses the text of a `dataset.toml`.
pub fn parse_meta(text: &str) -> Result<DatasetMeta, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        extract_date: Option<toml::Value>,
        source: Option<String>,
        lsoa_vintage: Option<toml::Value>,
        imd: Option<toml::Value>,
        date_format: Option<String>,
        #[serde(default)]
        tables: BTreeMap<String, RawTable>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawTable {
        date_format: Option<String>,
        #[serde(default)]
        columns: toml::Table,
    }
    let raw: Raw = toml::from_str(text).map_err(|e| e.message().to_string())?;
    // Accept a TOML date (extract_date = 2020-03-23) or a string.
    let extract_date = match raw.extract_date {
        None => None,
        Some(v) => {
            let text = toml_text(&v);
            Some(columns::parse_iso_date(&text).ok_or_else(|| {
                format!("extract_date: {text:?} is not a date (expected YYYY-MM-DD)")
            })?)
        }
    };
    let deprivation = DeprivationSpec::stated(
        raw.imd.as_ref().map(toml_text).as_deref(),
        raw.lsoa_vintage.as_ref().map(toml_text).as_deref(),
    )?;
    let date_format = raw
        .date_format
        .as_deref()
        .map(|f| DateFormat::parse(f).map_err(|e| format!("date_format: {e}")))
        .transpose()?;
    let mut tables = BTreeMap::new();
    for (name, t) in raw.tables {
        let at = |what: &str| format!("[tables.{name}]{what}");
        let mut spec = TableSpec::default();
        if let Some(f) = &t.date_format {
            spec.date_format =
                DateFormat::parse(f).map_err(|e| format!("{}: date_format: {e}", at("")))?;
            spec.date_format_from = "table";
        }
        for (ours, v) in &t.columns {
            let (theirs, fmt) = match v {
                toml::Value::String(s) => (Some(s.clone()), None),
                toml::Value::Table(m) => {
                    if let Some(k) = m.keys().find(|k| *k != "name" && *k != "date_format") {
                        return Err(format!(
                            "{}: {ours}: unknown key {k:?} (a column takes name and date_format)",
                            at(".columns")
                        ));
                    }
                    let text = |k: &str| -> Result<Option<String>, String> {
                        match m.get(k) {
                            None => Ok(None),
                            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                            Some(_) => Err(format!("{}: {ours}.{k} must be text", at(".columns"))),
                        }
                    };
                    (text("name")?, text("date_format")?)
                }
                _ => {
                    return Err(format!(
                        "{}: {ours} must be the extract's column name, or {{ name = \"...\", date_format = \"...\" }}",
                        at(".columns")
                    ))
                }
            };
            if let Some(theirs) = theirs {
                if theirs.trim().is_empty() {
                    return Err(format!("{}: {ours}: the name is empty", at(".columns")));
                }
                if let Some((other, _)) = spec.renames.iter().find(|(_, t)| *t == theirs) {
                    return Err(format!(
                        "{}: {other} and {ours} are both mapped to {theirs:?}",
                        at(".columns")
                    ));
                }
                spec.renames.push((ours.clone(), theirs));
            }
            if let Some(f) = fmt {
                let f = DateFormat::parse(&f)
                    .map_err(|e| format!("{}: {ours}.date_format: {e}", at(".columns")))?;
                spec.column_dates.insert(ours.clone(), f);
            }
        }
        tables.insert(name, spec);
    }
    Ok(DatasetMeta {
        extract_date,
        source: raw.source,
        deprivation,
        tables,
        date_format,
    })
}
