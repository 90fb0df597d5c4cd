//! Errors met while reading a dataset folder.
//!
//! Every message names the file and, where there is one, the line (CSV) or
//! row (Parquet) and the column, and says what was expected. No message ever
//! contains a patient identifier: a duplicate id is reported by the two line
//! numbers where it occurs.

use std::fmt;
use std::path::PathBuf;

/// Where in a table a bad value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A physical line of a CSV file (1-based, the header is line 1).
    Line(u64),
    /// A data row of a Parquet file (1-based).
    Row(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "{n}"),
            Location::Row(n) => write!(f, "row {n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: not a dataset folder ({what})")]
    NotADirectory { path: PathBuf, what: &'static str },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{dir}: no patients table (expected patients.parquet or patients.csv)")]
    MissingPatients { dir: PathBuf },

    #[error("{dir}: table `{table}` is given twice ({first} and {second}); keep one")]
    DuplicateTable {
        dir: PathBuf,
        table: String,
        first: String,
        second: String,
    },

    #[error("{path}: {message}")]
    BadMetadata { path: PathBuf, message: String },

    #[error("{file}: missing required column `{column}` (found: {found})")]
    MissingColumn {
        file: String,
        column: &'static str,
        found: String,
    },

    #[error("{file}: column {column}: expected {expected}, found Parquet/Arrow type {found}")]
    WrongType {
        file: String,
        column: String,
        expected: &'static str,
        found: String,
    },

    #[error("{file}:{at}: column {column}: {problem}")]
    BadValue {
        file: String,
        at: Location,
        column: String,
        problem: String,
    },

    #[error("{file}:{at}: {message}")]
    Malformed {
        file: String,
        at: Location,
        message: String,
    },

    #[error("{file}:{at}: duplicate patient_id (first seen at {first})")]
    DuplicatePatient {
        file: String,
        at: Location,
        first: Location,
    },

    #[error("{file}: the patients table has no rows")]
    EmptyPatients { file: String },

    #[error("{file}: cannot read Parquet: {message}")]
    Parquet { file: String, message: String },

    /// dataset.toml maps a column the file does not have, or onto a name
    /// the file already uses.
    #[error("{message}")]
    BadMapping { message: String },

    /// An in-memory event table with a name that is not an event table's.
    #[error("event table {name:?}: not a usable event table name (not empty, not `patients` or `contacts`)")]
    BadTableName { name: String },

    /// A Parquet file that cannot be opened at all (empty, cut short).
    #[error("{file}: {message}")]
    ParquetFile { file: String, message: String },
}
