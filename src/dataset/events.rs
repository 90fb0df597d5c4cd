//! Event tables (`events`, `admissions`, ...) and the `contacts` table,
//! streamed as typed record batches.
//!
//! An event batch holds patient ids as stored, codes dictionary-encoded (so
//! codelist membership is decided once per distinct code), dates as Date32
//! and optional numeric values.

use arrow::array::{AsArray, Date32Array, DictionaryArray, Float64Array};
use arrow::datatypes::Int32Type;

use super::columns::{self, PatientIds, Site};
use super::error::DatasetError;
use super::raw::{Locator, RawBatch, RawTable};
use super::TableFile;

pub use crate::contract::{CODE, DATE, OUTCOME, PATIENT_ID, VALUE};

/// One typed batch of an event table.
#[derive(Debug, Clone)]
pub struct EventBatch {
    pub ids: PatientIds,
    pub codes: DictionaryArray<Int32Type>,
    pub dates: Date32Array,
    pub values: Option<Float64Array>,
    pub locator: Locator,
}

impl EventBatch {
    pub fn len(&self) -> usize {
        self.dates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }
}

/// Streams an event table (or some of its Parquet row groups) batch by batch.
pub struct EventReader {
    raw: RawTable,
    typer: EventTyper,
}

impl EventReader {
    pub fn open(table: &TableFile) -> Result<EventReader, DatasetError> {
        Self::open_part(table, None, true)
    }

    /// The columns read: `value` only when it is needed.
    pub fn columns(with_value: bool) -> &'static [&'static str] {
        const ALL: [&str; 4] = [PATIENT_ID, CODE, DATE, VALUE];
        if with_value {
            &ALL[..]
        } else {
            &ALL[..3]
        }
    }

    /// Opens the whole table, or only the given Parquet row groups; without
    /// `with_value` the `value` column is neither decoded nor checked.
    pub fn open_part(
        table: &TableFile,
        row_groups: Option<Vec<usize>>,
        with_value: bool,
    ) -> Result<EventReader, DatasetError> {
        let wanted = Self::columns(with_value);
        let raw = match row_groups {
            None => RawTable::open(table, wanted, &[CODE])?,
            Some(groups) => RawTable::open_row_groups(table, wanted, &[CODE], groups)?,
        };
        let file = table.display_name();
        for required in crate::contract::EVENT_REQUIRED {
            if !raw.file_columns().iter().any(|c| c == required) {
                return Err(DatasetError::MissingColumn {
                    file,
                    column: required,
                    found: raw.file_columns().join(", "),
                });
            }
        }
        let has_value = with_value && raw.file_columns().iter().any(|c| c == VALUE);
        Ok(EventReader {
            raw,
            typer: EventTyper {
                file,
                has_value,
                spec: table.spec.clone(),
            },
        })
    }

    pub fn next_batch(&mut self) -> Result<Option<EventBatch>, DatasetError> {
        match self.raw.next_batch()? {
            Some(raw) => self.typer.typed(raw).map(Some),
            None => Ok(None),
        }
    }

    /// What types this table's raw batches (shareable between threads:
    /// CSV chunks are typed in parallel).
    pub fn typer(&self) -> EventTyper {
        self.typer.clone()
    }
}

/// Types raw batches of one event table: text to ids, codes, dates and values.
#[derive(Debug, Clone)]
pub struct EventTyper {
    file: String,
    has_value: bool,
    spec: std::sync::Arc<super::TableSpec>,
}

impl EventTyper {
    /// Types one raw batch.
    pub fn typed(&self, raw: RawBatch) -> Result<EventBatch, DatasetError> {
        let site = Site {
            file: &self.file,
            locator: &raw.locator,
            spec: &self.spec,
        };
        let col = |name: &str| raw.batch.column_by_name(name);
        let (Some(ids), Some(codes), Some(dates)) = (col(PATIENT_ID), col(CODE), col(DATE)) else {
            return Err(DatasetError::Malformed {
                file: self.file.clone(),
                at: raw.locator.at(0),
                message: "a required column vanished while reading".into(),
            });
        };
        let values = match (self.has_value, col(VALUE)) {
            (true, Some(v)) => Some(columns::floats(v, VALUE, &site)?),
            _ => None,
        };
        Ok(EventBatch {
            ids: columns::patient_ids(ids, PATIENT_ID, &site)?,
            codes: columns::codes(codes, CODE, &site)?,
            dates: columns::dates(dates, DATE, &site, true)?,
            values,
            locator: raw.locator,
        })
    }
}

impl Iterator for EventReader {
    type Item = Result<EventBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

/// One typed batch of the contacts table.
#[derive(Debug, Clone)]
pub struct ContactBatch {
    pub ids: PatientIds,
    pub dates: Date32Array,
    /// The `outcome` column, when the table has one.
    pub outcomes: Option<arrow::array::StringArray>,
}

/// Streams the contacts table (patient_id, date; outcome is not needed to
/// decide who was contacted).
pub struct ContactReader {
    file: String,
    raw: RawTable,
    spec: std::sync::Arc<super::TableSpec>,
}

impl ContactReader {
    pub fn open(table: &TableFile) -> Result<ContactReader, DatasetError> {
        let raw = RawTable::open(table, &[PATIENT_ID, DATE, OUTCOME], &[])?;
        let file = table.display_name();
        for required in [PATIENT_ID, DATE] {
            if !raw.file_columns().iter().any(|c| c == required) {
                return Err(DatasetError::MissingColumn {
                    file,
                    column: required,
                    found: raw.file_columns().join(", "),
                });
            }
        }
        Ok(ContactReader {
            file,
            raw,
            spec: table.spec.clone(),
        })
    }
}

impl Iterator for ContactReader {
    type Item = Result<ContactBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let raw = match self.raw.next_batch() {
            Ok(Some(raw)) => raw,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        let site = Site {
            file: &self.file,
            locator: &raw.locator,
            spec: &self.spec,
        };
        let (Some(ids), Some(dates)) = (
            raw.batch.column_by_name(PATIENT_ID),
            raw.batch.column_by_name(DATE),
        ) else {
            return None;
        };
        Some((|| {
            Ok(ContactBatch {
                ids: columns::patient_ids(ids, PATIENT_ID, &site)?,
                dates: columns::dates(dates, DATE, &site, true)?,
                outcomes: match raw.batch.column_by_name(OUTCOME) {
                    None => None,
                    Some(o) => Some(
                        arrow::compute::cast(o, &arrow::datatypes::DataType::Utf8)
                            .map_err(|_| DatasetError::WrongType {
                                file: self.file.clone(),
                                column: OUTCOME.into(),
                                expected: "text",
                                found: o.data_type().to_string(),
                            })?
                            .as_string::<i32>()
                            .clone(),
                    ),
                },
            })
        })())
    }
}
