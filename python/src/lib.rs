//! `strata` from Python: the same Rust engine, packs and run folders as the
//! command line, called in-process.
//!
//! Inputs to `score` arrive through the Arrow C data interface (any object
//! with `__arrow_c_stream__`: pyarrow, Polars, DuckDB, pandas ≥ 2.2), so
//! the engine reads the caller's buffers without a copy through Python
//! objects; the result goes back the same way, as a `pyarrow.Table`. The
//! GIL is released while the engine works. Errors are Python exceptions
//! carrying the CLI's exact messages.

use std::path::PathBuf;

use arrow::pyarrow::{FromPyArrow, IntoPyArrow, Table};
use chrono::NaiveDate;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

create_exception!(
    strata,
    StrataError,
    PyException,
    "A strata run could not be done (the CLI's exit 1: strata's or its environment's fault)."
);
create_exception!(
    strata,
    InputError,
    StrataError,
    "Bad input: a rule pack, dataset or argument (the CLI's exit 2). The message names the file, line or row, and column."
);

/// A strata error as the matching Python exception, with the CLI's message.
fn py_err(e: strata::Error) -> PyErr {
    let message = e.to_string();
    match e.blame() {
        strata::Blame::Input => InputError::new_err(message),
        _ => StrataError::new_err(message),
    }
}

/// Checks a rule pack: a list of diagnostics (empty when the pack is sound),
/// each a dict with code, severity, message, file, line, column, help and
/// text (the diagnostic as `strata check` prints it).
#[pyfunction]
fn check(py: Python<'_>, pack_dir: PathBuf) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    if let Err(errors) = py.detach(|| strata::pack::load(&pack_dir)) {
        for d in &errors.diagnostics {
            let item = PyDict::new(py);
            item.set_item("code", d.code.code())?;
            item.set_item("severity", "error")?;
            item.set_item("message", &d.message)?;
            item.set_item("file", &d.file)?;
            item.set_item("line", d.location.as_ref().map(|l| l.line))?;
            item.set_item("column", d.location.as_ref().map(|l| l.column))?;
            item.set_item("help", d.help.as_deref())?;
            item.set_item("text", d.to_string().trim_end())?;
            out.append(item)?;
        }
    }
    Ok(out)
}

/// Runs the nightly batch: the same run folder as `strata run`. Returns a
/// summary dict: dir, as_of, in_population, listed, practices, timings_ms.
#[pyfunction]
#[pyo3(signature = (pack_dir, data_dir, out_dir, as_of=None, previous=None, threads=None, capacity=None, exact_counts=false, name=None))]
#[allow(clippy::too_many_arguments)]
fn run<'py>(
    py: Python<'py>,
    pack_dir: PathBuf,
    data_dir: PathBuf,
    out_dir: PathBuf,
    as_of: Option<NaiveDate>,
    previous: Option<PathBuf>,
    threads: Option<usize>,
    capacity: Option<u32>,
    exact_counts: bool,
    name: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let config = strata::RunConfig {
        pack: pack_dir,
        data: data_dir,
        out: out_dir,
        name,
        as_of,
        previous,
        threads,
        exact_counts,
        capacity,
        command_line: vec!["strata (Python)".into(), "run".into()],
    };
    let summary = py.detach(|| strata::run(&config)).map_err(py_err)?;
    let d = PyDict::new(py);
    d.set_item("dir", summary.dir.display().to_string())?;
    d.set_item("as_of", summary.as_of)?;
    d.set_item("in_population", summary.in_population)?;
    d.set_item("listed", summary.listed)?;
    d.set_item("practices", summary.practices)?;
    d.set_item("timings_ms", summary.timings_ms)?;
    Ok(d)
}

/// Every batch of an Arrow stream (`__arrow_c_stream__`), named `what` in errors.
fn batches(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<arrow::array::RecordBatch>> {
    let table = Table::from_pyarrow_bound(obj).map_err(|e| {
        InputError::new_err(format!(
            "{what}: not an Arrow table (give a pyarrow Table, Polars DataFrame, DuckDB relation or anything with __arrow_c_stream__): {e}"
        ))
    })?;
    // A table without rows may come as a schema and no batches: keep its
    // columns as one empty batch.
    let (mut batches, schema) = table.into_inner();
    if batches.is_empty() {
        batches.push(arrow::array::RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// Scores people handed over as Arrow tables, without writing anything:
/// a `pyarrow.Table` with the rows and columns of a run's `list.parquet`
/// (practice by practice, by rank).
#[pyfunction]
#[pyo3(signature = (pack_dir, patients, events=None, contacts=None, as_of=None, threads=None, imd=None, lsoa_vintage=None))]
#[allow(clippy::too_many_arguments)]
fn score<'py>(
    py: Python<'py>,
    pack_dir: PathBuf,
    patients: &Bound<'py, PyAny>,
    events: Option<&Bound<'py, PyDict>>,
    contacts: Option<&Bound<'py, PyAny>>,
    as_of: Option<NaiveDate>,
    threads: Option<usize>,
    imd: Option<String>,
    lsoa_vintage: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    // The deprivation geography, as dataset.toml states it for a folder
    // (the values read as there; the pairing worded for keyword arguments).
    if imd.is_some() != lsoa_vintage.is_some() {
        return Err(InputError::new_err(
            "imd and lsoa_vintage are given together (\"2025\" and \"2021\", say) or not at all",
        ));
    }
    let deprivation =
        strata::dataset::DeprivationSpec::stated(imd.as_deref(), lsoa_vintage.as_deref())
            .map_err(InputError::new_err)?;
    let patients = batches(patients, "patients")?;
    let mut tables = Vec::new();
    if let Some(events) = events {
        for (name, table) in events.iter() {
            let name: String = name.extract().map_err(|_| {
                InputError::new_err("events: the keys are table names (str)".to_string())
            })?;
            let b = batches(&table, &name)?;
            tables.push((name, b));
        }
    }
    let contacts = contacts.map(|c| batches(c, "contacts")).transpose()?;
    let result = py
        .detach(|| {
            let mut dataset = strata::dataset::Dataset::in_memory(patients, tables, contacts, None)
                .map_err(strata::Error::from)?;
            dataset.meta.deprivation = deprivation;
            strata::score(&pack_dir, dataset, as_of, threads)
        })
        .map_err(py_err)?;
    Table::try_new(result.batches, result.schema)
        .map_err(|e| StrataError::new_err(e.to_string()))?
        .into_pyarrow(py)
}

/// The version of the strata engine.
#[pyfunction]
fn version() -> &'static str {
    strata::VERSION
}

#[pymodule]
fn _strata(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add("StrataError", m.py().get_type::<StrataError>())?;
    m.add("InputError", m.py().get_type::<InputError>())?;
    Ok(())
}
