//! The patients table: one row per person, loaded whole and validated.
//!
//! Columns are normalised to the contract's types (see DESIGN.md): ids stay
//! integers or text as stored, dates become Date32, sex becomes `F`/`M`/`U`.
//! Columns beyond the contract are kept as stored (CSV: text) for rule packs
//! that name them.

use hashbrown::HashMap;
use rayon::prelude::*;

use arrow::array::{Array, ArrayRef, Date32Array, Int32Array, StringArray};
use arrow::compute::concat;

use super::columns::{self, PatientIds, Site};
use super::error::{DatasetError, Location};
use super::raw::{Locator, RawTable};
use super::TableFile;

use crate::contract::PATIENT_COLUMNS;
pub use crate::contract::{
    DATE_OF_BIRTH, DATE_OF_DEATH, IMD_DECILE, LSOA_CODE, PATIENT_ID, PCN_CODE, PRACTICE_CODE,
    REGISTRATION_END, SEX,
};

/// The whole patients table, typed.
#[derive(Debug)]
pub struct Patients {
    pub file: String,
    pub ids: PatientIds,
    pub practice_code: StringArray,
    pub pcn_code: StringArray,
    pub date_of_birth: Date32Array,
    pub sex: StringArray,
    pub lsoa_code: StringArray,
    pub imd_decile: Int32Array,
    pub registration_end: Date32Array,
    pub date_of_death: Date32Array,
    /// Columns beyond the contract, by name, as stored.
    pub extras: Vec<(String, ArrayRef)>,
    index: PatientIndex,
}

/// Finds a person's row from an event's patient id: hash maps split into
/// shards by id, so they are built in parallel.
#[derive(Debug)]
enum PatientIndex {
    Int(Vec<HashMap<i64, u32>>),
    Text(Vec<HashMap<Box<str>, u32>>),
}

/// Shards of the patient index (a power of two).
const INDEX_SHARDS: usize = 16;

#[inline]
fn int_shard(id: i64) -> usize {
    ((id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize & (INDEX_SHARDS - 1)
}

#[inline]
fn text_shard(id: &str) -> usize {
    // FNV-1a over the bytes.
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h >> 60) as usize & (INDEX_SHARDS - 1)
}

/// A typed patient column by contract name, for the planner.
pub enum PatientColumn<'a> {
    Text(&'a StringArray),
    Date(&'a Date32Array),
    Int(&'a Int32Array),
    Extra(&'a ArrayRef),
}

impl Patients {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Row of the person with this integer id.
    #[inline]
    pub fn row_of_int(&self, id: i64) -> Option<u32> {
        match &self.index {
            PatientIndex::Int(maps) => maps[int_shard(id)].get(&id).copied(),
            PatientIndex::Text(maps) => {
                let id = id.to_string();
                maps[text_shard(&id)].get(id.as_str()).copied()
            }
        }
    }

    /// Row of the person with this text id.
    #[inline]
    pub fn row_of_text(&self, id: &str) -> Option<u32> {
        match &self.index {
            PatientIndex::Int(maps) => id
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|i| maps[int_shard(i)].get(&i).copied()),
            PatientIndex::Text(maps) => {
                let id = id.trim();
                maps[text_shard(id)].get(id).copied()
            }
        }
    }

    /// A column by name: contract columns typed, extras as stored.
    pub fn column(&self, name: &str) -> Option<PatientColumn<'_>> {
        Some(match name {
            PRACTICE_CODE => PatientColumn::Text(&self.practice_code),
            PCN_CODE => PatientColumn::Text(&self.pcn_code),
            SEX => PatientColumn::Text(&self.sex),
            LSOA_CODE => PatientColumn::Text(&self.lsoa_code),
            DATE_OF_BIRTH => PatientColumn::Date(&self.date_of_birth),
            REGISTRATION_END => PatientColumn::Date(&self.registration_end),
            DATE_OF_DEATH => PatientColumn::Date(&self.date_of_death),
            IMD_DECILE => PatientColumn::Int(&self.imd_decile),
            _ => {
                return self
                    .extras
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, a)| PatientColumn::Extra(a))
            }
        })
    }

    /// Reads and validates a patients table file.
    pub fn read(table: &TableFile) -> Result<Patients, DatasetError> {
        let file = table.display_name();
        // Read every column: extras are available to rule packs by name.
        let probe = RawTable::open(table, &[], &[])?;
        let all: Vec<String> = probe.file_columns().to_vec();
        drop(probe);
        for required in PATIENT_COLUMNS.iter().filter(|c| c.required) {
            if !all.iter().any(|c| c == required.name) {
                return Err(DatasetError::MissingColumn {
                    file,
                    column: required.name,
                    found: all.join(", "),
                });
            }
        }
        let wanted: Vec<&str> = all.iter().map(String::as_str).collect();
        let read_part = |groups: Option<Vec<usize>>| -> Result<Vec<Part>, DatasetError> {
            let mut raw = match groups {
                Some(g) => RawTable::open_row_groups(table, &wanted, &[], g)?,
                None => RawTable::open(table, &wanted, &[])?,
            };
            let mut parts = Vec::new();
            while let Some(batch) = raw.next_batch()? {
                parts.push(to_part(&file, &all, batch)?);
            }
            Ok(parts)
        };
        // Parquet row groups are decoded in parallel; the first error in
        // file order is the one reported.
        let groups = super::raw::row_group_sizes(table)?.len();
        let parts: Vec<Part> = if table.format == super::Format::Parquet && groups > 1 {
            let results: Vec<Result<Vec<Part>, DatasetError>> = (0..groups)
                .into_par_iter()
                .map(|g| read_part(Some(vec![g])))
                .collect();
            let mut parts = Vec::new();
            for r in results {
                parts.extend(r?);
            }
            parts
        } else {
            read_part(None)?
        };
        if parts.iter().all(|p| p.rows == 0) {
            return Err(DatasetError::EmptyPatients { file });
        }
        Patients::assemble(file, parts)
    }

    fn assemble(file: String, parts: Vec<Part>) -> Result<Patients, DatasetError> {
        let cat = |arrays: Vec<&dyn Array>| -> Result<ArrayRef, DatasetError> {
            concat(&arrays).map_err(|e| DatasetError::Parquet {
                file: file.clone(),
                message: e.to_string(),
            })
        };
        use arrow::array::AsArray;
        let text = |f: fn(&Part) -> &StringArray| -> Result<StringArray, DatasetError> {
            Ok(cat(parts.iter().map(|p| f(p) as &dyn Array).collect())?
                .as_string::<i32>()
                .clone())
        };
        let date = |f: fn(&Part) -> &Date32Array| -> Result<Date32Array, DatasetError> {
            Ok(cat(parts.iter().map(|p| f(p) as &dyn Array).collect())?
                .as_primitive::<arrow::datatypes::Date32Type>()
                .clone())
        };
        let ids = match &parts[0].ids {
            PatientIds::Int(_) => {
                let arrays: Vec<&dyn Array> = parts
                    .iter()
                    .filter_map(|p| match &p.ids {
                        PatientIds::Int(a) => Some(a as &dyn Array),
                        PatientIds::Text(_) => None,
                    })
                    .collect();
                PatientIds::Int(
                    cat(arrays)?
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .clone(),
                )
            }
            PatientIds::Text(_) => PatientIds::Text(
                cat(parts
                    .iter()
                    .filter_map(|p| match &p.ids {
                        PatientIds::Text(a) => Some(a as &dyn Array),
                        PatientIds::Int(_) => None,
                    })
                    .collect())?
                .as_string::<i32>()
                .clone(),
            ),
        };
        let imd_decile = cat(parts.iter().map(|p| &p.imd_decile as &dyn Array).collect())?
            .as_primitive::<arrow::datatypes::Int32Type>()
            .clone();
        let extras = match parts.first() {
            Some(first) => first
                .extras
                .iter()
                .enumerate()
                .map(|(k, (name, _))| {
                    let arrays: Vec<&dyn Array> =
                        parts.iter().map(|p| p.extras[k].1.as_ref()).collect();
                    cat(arrays).map(|a| (name.clone(), a))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let index = build_index(&file, &ids, &parts)?;
        Ok(Patients {
            practice_code: text(|p| &p.practice_code)?,
            pcn_code: text(|p| &p.pcn_code)?,
            date_of_birth: date(|p| &p.date_of_birth)?,
            sex: text(|p| &p.sex)?,
            lsoa_code: text(|p| &p.lsoa_code)?,
            imd_decile,
            registration_end: date(|p| &p.registration_end)?,
            date_of_death: date(|p| &p.date_of_death)?,
            extras,
            ids,
            index,
            file,
        })
    }
}

/// One batch of the patients table typed into a [`Part`].
fn to_part(file: &str, all: &[String], batch: super::raw::RawBatch) -> Result<Part, DatasetError> {
    let site = Site {
        file,
        locator: &batch.locator,
    };
    let col = |name: &str| batch.batch.column_by_name(name).cloned();
    let n = batch.batch.num_rows();
    let req = |name: &str| {
        col(name).ok_or_else(|| DatasetError::MissingColumn {
            file: file.to_string(),
            column: crate::contract::patient_column(name).map_or(PATIENT_ID, |c| c.name),
            found: all.join(", "),
        })
    };
    let opt_text = |name: &str| -> Result<StringArray, DatasetError> {
        match col(name) {
            Some(c) => columns::texts(&c, name, &site, false),
            None => Ok(StringArray::new_null(n)),
        }
    };
    let opt_date = |name: &str| -> Result<Date32Array, DatasetError> {
        match col(name) {
            Some(c) => columns::dates(&c, name, &site, false),
            None => Ok(Date32Array::new_null(n)),
        }
    };
    let sex = match col(SEX) {
        Some(c) => columns::sexes(&c, SEX, &site)?,
        None => StringArray::from(vec!["U"; n]),
    };
    let lsoa_code = opt_text(LSOA_CODE)?;
    // Without an imd_decile column, derive it from the 2011 LSOA
    // through the bundled IMD 2019 lookup.
    let imd_decile = match col(IMD_DECILE) {
        Some(c) => columns::deciles(&c, IMD_DECILE, &site)?,
        None => lsoa_code
            .iter()
            .map(|l| l.and_then(crate::reference::imd_decile).map(i32::from))
            .collect(),
    };
    Ok(Part {
        ids: columns::patient_ids(&req(PATIENT_ID)?, PATIENT_ID, &site)?,
        practice_code: columns::texts(&req(PRACTICE_CODE)?, PRACTICE_CODE, &site, true)?,
        pcn_code: opt_text(PCN_CODE)?,
        date_of_birth: columns::dates(&req(DATE_OF_BIRTH)?, DATE_OF_BIRTH, &site, true)?,
        sex,
        lsoa_code,
        imd_decile,
        registration_end: opt_date(REGISTRATION_END)?,
        date_of_death: opt_date(DATE_OF_DEATH)?,
        extras: all
            .iter()
            .filter(|c| crate::contract::patient_column(c).is_none())
            .filter_map(|c| col(c).map(|a| (c.clone(), a)))
            .collect(),
        locator: batch.locator.clone(),
        rows: n,
    })
}

/// One batch's worth of typed patient columns, before concatenation.
struct Part {
    ids: PatientIds,
    practice_code: StringArray,
    pcn_code: StringArray,
    date_of_birth: Date32Array,
    sex: StringArray,
    lsoa_code: StringArray,
    imd_decile: Int32Array,
    registration_end: Date32Array,
    date_of_death: Date32Array,
    extras: Vec<(String, ArrayRef)>,
    locator: Locator,
    rows: usize,
}

/// Location of global row `row` in the source file.
fn locate(parts: &[Part], mut row: usize) -> Location {
    for p in parts {
        if row < p.rows {
            return p.locator.at(row);
        }
        row -= p.rows;
    }
    Location::Row(0)
}

/// One shard of the index being built, with its first duplicate id (the
/// row of the second occurrence and of the first).
type Shard<K> = (HashMap<K, u32>, Option<(usize, u32)>);

fn build_index(file: &str, ids: &PatientIds, parts: &[Part]) -> Result<PatientIndex, DatasetError> {
    let duplicate = |row: usize, first: u32| DatasetError::DuplicatePatient {
        file: file.to_string(),
        at: locate(parts, row),
        first: locate(parts, first as usize),
    };
    let capacity = ids.len() / INDEX_SHARDS + ids.len() / 64 + 16;
    // Each shard takes its ids in row order, so the duplicate reported (the
    // earliest second occurrence over all shards) is the one a single map
    // would report.
    fn first_duplicate<K>(shards: &[Shard<K>]) -> Option<(usize, u32)> {
        shards
            .iter()
            .filter_map(|(_, d)| *d)
            .min_by_key(|(row, _)| *row)
    }
    match ids {
        PatientIds::Int(a) => {
            let values = a.values();
            let shards: Vec<Shard<i64>> = (0..INDEX_SHARDS)
                .into_par_iter()
                .map(|s| {
                    let mut map = HashMap::with_capacity(capacity);
                    for (row, &id) in values.iter().enumerate() {
                        if int_shard(id) == s {
                            if let Some(first) = map.insert(id, row as u32) {
                                return (map, Some((row, first)));
                            }
                        }
                    }
                    (map, None)
                })
                .collect();
            if let Some((row, first)) = first_duplicate(&shards) {
                return Err(duplicate(row, first));
            }
            Ok(PatientIndex::Int(
                shards.into_iter().map(|(m, _)| m).collect(),
            ))
        }
        PatientIds::Text(a) => {
            let shards: Vec<Shard<Box<str>>> = (0..INDEX_SHARDS)
                .into_par_iter()
                .map(|s| {
                    let mut map: HashMap<Box<str>, u32> = HashMap::with_capacity(capacity);
                    for row in 0..a.len() {
                        let id = a.value(row);
                        if text_shard(id) == s {
                            if let Some(first) = map.insert(id.into(), row as u32) {
                                return (map, Some((row, first)));
                            }
                        }
                    }
                    (map, None)
                })
                .collect();
            if let Some((row, first)) = first_duplicate(&shards) {
                return Err(duplicate(row, first));
            }
            Ok(PatientIndex::Text(
                shards.into_iter().map(|(m, _)| m).collect(),
            ))
        }
    }
}
