//! `strata explain`: the audit trail for one person, from the reference
//! evaluator, with the person's rank from the engine's full run.

use std::collections::BTreeMap;

use anyhow::Context;
use arrow::array::Array;

use super::{ExplainArgs, UsageError};
use crate::dataset::events::{ContactReader, EventReader};
use crate::dataset::quality::{self, resolve_rows};
use crate::dataset::{columns::days_to_date, Dataset};
use crate::pack::{EventRecord, PersonRecord};
use crate::plan::Plan;

pub fn explain(args: &ExplainArgs) -> anyhow::Result<()> {
    let pack = crate::pack::load(&args.pack)?;
    let ds = Dataset::open(&args.data)?;
    let as_of = match (args.as_of, ds.meta.extract_date) {
        (Some(d), _) | (None, Some(d)) => d,
        (None, None) => quality::latest_event_date(&ds)?.ok_or_else(|| {
            UsageError("the dataset has no events and no extract_date: give --as-of".into())
        })?,
    };
    let patients = ds.read_patients()?;
    let row = patients
        .row_of_text(&args.patient)
        .ok_or_else(|| UsageError(format!("{}: no such patient_id", patients.file)))?
        as usize;
    let plan = Plan::bind(&pack, &ds, &patients, as_of)?;

    // The person's record, for the reference evaluator.
    let mut columns = BTreeMap::new();
    for (name, array) in &plan.columns {
        let ty = pack
            .columns
            .iter()
            .find(|c| &c.name == name)
            .map(|c| c.ty)
            .unwrap_or_else(|| contract_type(name));
        columns.insert(
            name.clone(),
            crate::exec::eval::value_at(array.as_ref(), ty, row),
        );
    }
    let mut events = Vec::new();
    let mut rows = Vec::new();
    for table in &ds.event_tables {
        for batch in EventReader::open(table)? {
            let batch = batch?;
            resolve_rows(&patients, &batch.ids, &mut rows);
            for (i, &r) in rows.iter().enumerate() {
                if r as usize != row {
                    continue;
                }
                let code = batch
                    .codes
                    .values()
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>();
                let key = batch.codes.keys().value(i) as usize;
                events.push(EventRecord {
                    table: table.name.clone(),
                    code: code.map(|c| c.value(key).to_string()).unwrap_or_default(),
                    date: days_to_date(batch.dates.value(i)).context("event date out of range")?,
                    value: batch
                        .values
                        .as_ref()
                        .and_then(|v| v.is_valid(i).then(|| v.value(i))),
                });
            }
        }
    }
    let mut contacts = Vec::new();
    if let Some(table) = &ds.contacts {
        for batch in ContactReader::open(table)? {
            let batch = batch?;
            resolve_rows(&patients, &batch.ids, &mut rows);
            for (i, &r) in rows.iter().enumerate() {
                if r as usize == row {
                    contacts.extend(days_to_date(batch.dates.value(i)));
                }
            }
        }
    }
    let person = PersonRecord {
        patient_id: args.patient.clone(),
        columns,
        events,
        contacts,
    };
    let outcome = crate::pack::evaluate(&pack, &person, as_of);
    let mut text = crate::pack::explain(&pack, &person, as_of, &outcome);

    // Rank comes from the whole list, so run the engine once.
    let outcomes = crate::exec::execute(&pack, &plan, &ds, &patients)?;
    let lists = crate::list::rank(&pack, &plan, &patients, &outcomes, None);
    let practice = patients.practice_code.value(row);
    let rank_line = lists
        .iter()
        .find(|l| l.practice_code == practice)
        .and_then(|l| {
            l.entries
                .iter()
                .find(|e| e.person == row)
                .map(|e| (e.rank, l.entries.len()))
        });
    match rank_line {
        Some((rank, of)) => text.push_str(&format!(
            "rank        {rank} of {of} on the list of practice {practice}\n"
        )),
        None => text.push_str(&format!(
            "rank        not on the list of practice {practice}\n"
        )),
    }
    print!("{text}");
    Ok(())
}

fn contract_type(name: &str) -> crate::pack::Type {
    use crate::pack::Type;
    match name {
        "date_of_birth" | "registration_end" | "date_of_death" => Type::Date,
        "imd_decile" => Type::Int,
        _ => Type::Str,
    }
}
