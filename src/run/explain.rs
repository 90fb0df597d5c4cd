//! `explain`: the audit trail for one person. The person's record is read
//! from the dataset and decided by the reference evaluator (which also
//! cites the events behind each feature); the rank comes from the engine's
//! run over the whole list, loaded the same way as [`super::run`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow::array::{Array, AsArray};
use chrono::NaiveDate;

use super::Job;
use crate::contract;
use crate::dataset::columns::days_to_date;
use crate::dataset::events::{ContactReader, EventReader};
use crate::dataset::quality::resolve_rows;
use crate::error::Error;
use crate::exec::column::value_at;
use crate::pack::{EventRecord, PersonRecord};
use crate::plan::bind::bind_column;
use crate::plan::lower::PlannedColumn;

/// Whom to explain, with which pack and data.
#[derive(Debug, Clone, Default)]
pub struct ExplainConfig {
    pub pack: PathBuf,
    pub data: PathBuf,
    /// The patient_id (shown only in the returned text, never logged).
    pub patient: String,
    pub as_of: Option<NaiveDate>,
}

/// The audit trail as plain text.
pub fn explain(config: &ExplainConfig) -> Result<String, Error> {
    let job = Job::load(&config.pack, &config.data, config.as_of)?;
    let row = job
        .patients
        .row_of_text(&config.patient)
        .ok_or_else(|| Error::usage(format!("{}: no such patient_id", job.patients.file)))?
        as usize;
    let person = person_record(&job, row, &config.patient)?;
    let outcome = crate::pack::evaluate(&job.pack, &person, job.as_of);
    // Where the person's deprivation decile came from, after the person line.
    let mut text = crate::pack::explain_with(
        &job.pack,
        &person,
        job.as_of,
        &outcome,
        &[deprivation_line(&job.patients, row)],
    );

    // Rank comes from the whole list, so run the engine once.
    let outcomes = crate::exec::execute(
        &job.plan,
        &job.dataset,
        &job.patients,
        crate::exec::Keep::Listed,
    )?;
    let lists = crate::list::rank(&job.pack, &job.plan, &job.patients, &outcomes, None);
    let practice = job.patients.practice_code.value(row);
    let rank = lists
        .iter()
        .find(|l| l.practice_code == practice)
        .and_then(|l| {
            l.entries
                .iter()
                .find(|e| e.person == row)
                .map(|e| (e.rank, l.entries.len()))
        });
    match rank {
        Some((rank, of)) => text.push_str(&format!(
            "rank        {rank} of {of} on the list of practice {practice}\n"
        )),
        None => text.push_str(&format!(
            "rank        not on the list of practice {practice}\n"
        )),
    }
    Ok(text)
}

/// `deprivation decile 3, quintile 2 (IoD2025, from lsoa_code on 2011 LSOAs: the most deprived of 2 areas)`.
fn deprivation_line(patients: &crate::dataset::Patients, row: usize) -> String {
    use crate::reference::deprivation::{quintile_of_decile, DeprivationLookup, Resolution};
    let d = patients.deprivation;
    let decile = patients
        .imd_decile
        .is_valid(row)
        .then(|| patients.imd_decile.value(row));
    let value = match decile {
        Some(v) => format!(
            "decile {v}, quintile {}",
            quintile_of_decile(v).map_or("-".into(), |q| q.to_string())
        ),
        None => "unknown".to_string(),
    };
    let source = if patients.imd_from_column {
        format!("{}, as given in imd_decile", d.index)
    } else {
        let lookup = DeprivationLookup::get(d.index, d.lsoa_vintage);
        let how = match patients
            .lsoa_code
            .get(row)
            .and_then(|code| lookup.resolution(code))
        {
            None if patients.lsoa_code.get(row).is_none() => "no lsoa_code".to_string(),
            None => format!("lsoa_code is not one of the {}", d.lsoa_vintage),
            Some(Resolution::Direct) => format!("from lsoa_code, {}", d.lsoa_vintage),
            Some(Resolution::OneArea) => format!(
                "from lsoa_code, {} mapped to one of the {}",
                d.lsoa_vintage,
                d.index.vintage()
            ),
            Some(Resolution::MostDeprivedOf(n)) => format!(
                "from lsoa_code, {}: the most deprived of the {n} {} it maps to",
                d.lsoa_vintage,
                d.index.vintage()
            ),
        };
        format!("{}, {how}", d.index)
    };
    format!("deprivation {value} ({source})")
}

/// Every person of a dataset through the row-at-a-time reference evaluator:
/// (patient id, outcome), in patients-table order, with the checked pack.
/// Slow (each person's events are found by a scan): for differential tests
/// and fuzzing against [`crate::score`], which must agree with it.
pub fn reference_run(
    pack_dir: &std::path::Path,
    dataset: crate::dataset::Dataset,
    as_of: NaiveDate,
) -> Result<(crate::pack::Pack, Vec<(String, crate::pack::Outcome)>), Error> {
    let pack = crate::pack::load(pack_dir)?;
    let job = Job::with_dataset(pack, dataset, Some(as_of), &mut super::Stopwatch::new())?;
    let mut out = Vec::with_capacity(job.patients.len());
    for row in 0..job.patients.len() {
        let id = job.patients.ids.text(row);
        let person = person_record(&job, row, &id)?;
        let outcome = crate::pack::evaluate(&job.pack, &person, job.as_of);
        out.push((id, outcome));
    }
    Ok((job.pack, out))
}

/// Everything the reference evaluator needs about the person in `row`.
pub(crate) fn person_record(
    job: &Job,
    row: usize,
    patient_id: &str,
) -> Result<PersonRecord, Error> {
    let patients = &job.patients;
    // Every patient column a pack may read, in its pack type.
    let mut columns = BTreeMap::new();
    for (name, ty) in contract::readable_patient_columns() {
        let planned = PlannedColumn {
            name: name.to_string(),
            ty,
        };
        let array = bind_column(patients, &planned)?;
        columns.insert(planned.name, value_at(array.as_ref(), ty, row));
    }
    // Declared columns as the planner converted them.
    for (c, array) in job.plan.physical.columns.iter().zip(&job.plan.columns) {
        columns.insert(c.name.clone(), value_at(array.as_ref(), c.ty, row));
    }
    let mut events = Vec::new();
    let mut rows = Vec::new();
    for table in &job.dataset.event_tables {
        for batch in EventReader::open(table)? {
            let batch = batch?;
            resolve_rows(patients, &batch.ids, &mut rows);
            let strings = batch.codes.values().as_string_opt::<i32>();
            for (i, &r) in rows.iter().enumerate() {
                if r as usize != row {
                    continue;
                }
                let key = batch.codes.keys().value(i) as usize;
                let date = days_to_date(batch.dates.value(i))
                    .ok_or_else(|| Error::Internal("event date out of range".into()))?;
                events.push(EventRecord {
                    table: table.name.clone(),
                    code: strings
                        .map(|c| c.value(key).to_string())
                        .unwrap_or_default(),
                    date,
                    value: batch
                        .values
                        .as_ref()
                        .and_then(|v| v.is_valid(i).then(|| v.value(i))),
                });
            }
        }
    }
    let (mut contacts, mut contact_outcomes) = (Vec::new(), Vec::new());
    if let Some(table) = &job.dataset.contacts {
        for batch in ContactReader::open(table)? {
            let batch = batch?;
            resolve_rows(patients, &batch.ids, &mut rows);
            for (i, &r) in rows.iter().enumerate() {
                if r as usize == row {
                    if let Some(d) = days_to_date(batch.dates.value(i)) {
                        contacts.push(d);
                        contact_outcomes.push(batch.outcomes.as_ref().and_then(|o| {
                            arrow::array::Array::is_valid(o, i).then(|| o.value(i).to_string())
                        }));
                    }
                }
            }
        }
    }
    Ok(PersonRecord {
        patient_id: patient_id.to_string(),
        columns,
        events,
        contacts,
        contact_outcomes,
    })
}
