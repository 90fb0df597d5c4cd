//! The patients table: one row per person, loaded whole and validated.
//!
//! Columns are normalised to the contract's types (see DESIGN.md): ids stay
//! integers or text as stored, dates become Date32, sex becomes `F`/`M`/`U`.
//! Columns beyond the contract are kept as stored (CSV: text) for rule packs
//! that name them.

use std::sync::Arc;

use crate::reference::deprivation::DeprivationLookup;

use hashbrown::HashTable;
use rayon::prelude::*;

use arrow::array::{
    Array, ArrayRef, Date32Array, Date32Builder, Int32Array, Int32Builder, Int64Builder,
    StringArray, StringBuilder,
};
use arrow::compute::concat;

use super::columns::{self, PatientIds, Site, TextColumn, TextColumnBuilder};
use super::error::{DatasetError, Location};
use super::raw::{Locator, RawTable};
use super::TableFile;

mod plain;
use plain::plain_part;

use crate::contract::PATIENT_COLUMNS;
pub use crate::contract::{
    DATE_OF_BIRTH, DATE_OF_DEATH, IMD_DECILE, LSOA_CODE, PATIENT_ID, PCN_CODE, PRACTICE_CODE,
    REGISTRATION_END, SEX,
};

/// The whole patients table, typed.
#[derive(Debug)]
pub struct Patients {
    pub file: String,
    /// Its column names and date formats (dataset.toml).
    pub spec: std::sync::Arc<super::TableSpec>,
    /// The index `imd_decile` is from, and the LSOA vintage of `lsoa_code`.
    pub deprivation: super::DeprivationSpec,
    /// Whether `imd_decile` was read from the file (else derived from `lsoa_code`).
    pub imd_from_column: bool,
    pub ids: PatientIds,
    pub practice_code: TextColumn,
    pub pcn_code: TextColumn,
    pub date_of_birth: Date32Array,
    pub sex: TextColumn,
    pub lsoa_code: TextColumn,
    pub imd_decile: Int32Array,
    pub registration_end: Date32Array,
    pub date_of_death: Date32Array,
    /// Columns beyond the contract, by name, as stored.
    pub extras: Vec<(String, ArrayRef)>,
    index: PatientIndex,
}

/// Finds a person's row from an event's patient id: hash tables of row
/// numbers (4 bytes a person; the ids themselves stay in `ids`), split into
/// shards by hash so they are built in parallel.
#[derive(Debug)]
struct PatientIndex {
    shards: Vec<HashTable<u32>>,
    /// Integer ids in strictly increasing order (as extracts and `strata
    /// synth` usually write them): unique by construction, and found by
    /// binary search, so no hash table is built.
    sorted: bool,
}

/// How many shards the index of `n` ids has: at least 16 (they are built
/// in parallel), and as many more as leave each shard's table, whose bucket
/// count is a power of two, about 85% full. With 16 shards whatever the
/// size a table was between 44% and 87% full, by where `n` fell between
/// powers of two: at 62M people the index took 671 MB where 377 MB do.
fn index_shards(n: usize) -> usize {
    const MIN_SHARDS: usize = 16;
    const LOAD: f64 = 0.85;
    let per_shard = (n / MIN_SHARDS).max(1) as f64;
    // The largest table (a power of two of buckets) 16 shards fill to 85%.
    let buckets = 2f64.powi((per_shard / LOAD).log2().floor() as i32);
    ((n as f64 / (buckets * LOAD)).ceil() as usize).max(MIN_SHARDS)
}

/// A 64-bit hash of an integer id (folded multiply: every bit mixes).
#[inline]
fn int_hash(id: i64) -> u64 {
    let m = u128::from(id as u64) * 0x9E37_79B9_7F4A_7C15_u128;
    (m as u64) ^ ((m >> 64) as u64)
}

/// A 64-bit hash of a text id (FNV-1a, then mixed like an integer id).
#[inline]
fn text_hash(id: &str) -> u64 {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    int_hash(h as i64)
}

/// The shard of a hash among `shards`: from bits 25 to 56, which the
/// shard's table uses for neither its bucket (the low bits) nor its 7-bit
/// tag (the top bits); taking the top bits would leave every id of a shard
/// with nearly the same tag, and each insert comparing ids.
#[inline]
fn shard_of(hash: u64, shards: usize) -> usize {
    ((((hash >> 25) & 0xFFFF_FFFF) * shards as u64) >> 32) as usize
}

/// A typed patient column by contract name, for the planner.
pub enum PatientColumn<'a> {
    Text(&'a TextColumn),
    Date(&'a Date32Array),
    Int(&'a Int32Array),
    Extra(&'a ArrayRef),
    /// Worked out when asked for (`imd_quintile`).
    Derived(ArrayRef),
}

impl Patients {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Lets go of the index of ids, for the stages after the last lookup:
    /// after this, [`Self::row_of_int`] and [`Self::row_of_text`] find
    /// nobody (unless the ids are sorted integers, which need no index).
    /// One empty shard is left, so lookups need no check of their own.
    pub fn release_index(&mut self) {
        self.index.shards = vec![HashTable::new()];
    }

    /// Row of the person with this integer id.
    #[inline]
    pub fn row_of_int(&self, id: i64) -> Option<u32> {
        match &self.ids {
            PatientIds::Int(a) => {
                let ids = a.values();
                if self.index.sorted {
                    return ids.binary_search(&id).ok().map(|r| r as u32);
                }
                let h = int_hash(id);
                let shards = &self.index.shards;
                shards[shard_of(h, shards.len())]
                    .find(h, |&r| ids[r as usize] == id)
                    .copied()
            }
            PatientIds::Text(_) => self.row_of_text(&id.to_string()),
        }
    }

    /// Row of the person with this text id.
    #[inline]
    pub fn row_of_text(&self, id: &str) -> Option<u32> {
        let id = id.trim();
        match &self.ids {
            PatientIds::Int(_) => id.parse::<i64>().ok().and_then(|i| self.row_of_int(i)),
            PatientIds::Text(a) => {
                let h = text_hash(id);
                let shards = &self.index.shards;
                shards[shard_of(h, shards.len())]
                    .find(h, |&r| a.value(r as usize) == id)
                    .copied()
            }
        }
    }

    /// Bytes held by the table and its index (buffers' capacity).
    pub fn memory_bytes(&self) -> usize {
        let ids = match &self.ids {
            PatientIds::Int(a) => a.get_array_memory_size(),
            PatientIds::Text(a) => a.get_array_memory_size(),
        };
        let texts = [
            &self.practice_code,
            &self.pcn_code,
            &self.sex,
            &self.lsoa_code,
        ]
        .iter()
        .map(|c| c.memory_bytes())
        .sum::<usize>();
        let columns: [&dyn Array; 4] = [
            &self.date_of_birth,
            &self.imd_decile,
            &self.registration_end,
            &self.date_of_death,
        ];
        let index: usize = self
            .index
            .shards
            .iter()
            .map(|t| t.capacity() * std::mem::size_of::<u32>() * 9 / 8)
            .sum();
        ids + texts
            + columns
                .iter()
                .map(|c| c.get_array_memory_size())
                .sum::<usize>()
            + self
                .extras
                .iter()
                .map(|(_, a)| a.get_array_memory_size())
                .sum::<usize>()
            + index
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
            crate::contract::IMD_QUINTILE => PatientColumn::Derived(Arc::new(
                self.imd_decile
                    .iter()
                    .map(|d| {
                        d.and_then(crate::reference::deprivation::quintile_of_decile)
                            .map(i64::from)
                    })
                    .collect::<arrow::array::Int64Array>(),
            )),
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
    pub fn read(
        table: &TableFile,
        deprivation: super::DeprivationSpec,
    ) -> Result<Patients, DatasetError> {
        Self::read_with(table, deprivation, true)
    }

    /// [`Patients::read`]; without `plain`, CSV chunks are always split
    /// into text columns and typed the general way (the tests compare).
    fn read_with(
        table: &TableFile,
        deprivation: super::DeprivationSpec,
        plain: bool,
    ) -> Result<Patients, DatasetError> {
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
        // Text columns of the contract are read dictionary-encoded (Parquet
        // keeps them so): a key a row, each distinct text decoded once.
        let dictionary = [PRACTICE_CODE, PCN_CODE, SEX, LSOA_CODE];
        // Every batch of an opened part of the table, typed.
        let read_part = |raw: Result<RawTable, DatasetError>| -> Result<Vec<Part>, DatasetError> {
            let mut raw = raw?;
            let mut parts = Vec::new();
            while let Some(batch) = raw.next_batch()? {
                parts.push(to_part(&file, &table.spec, &deprivation, &all, batch)?);
            }
            Ok(parts)
        };
        // Parts are typed in parallel, a round at a time, and each round is
        // copied into the columns (allocated once, at their final size when
        // the file says how many rows it holds) before the next is typed:
        // a round's memory is then reused by the next, not held until the
        // end. The first error in file order is the one reported.
        let sizes = super::raw::row_group_sizes(table)?;
        let round = rayon::current_num_threads().max(1);
        let mut columns = Assembly::with_capacity(sizes.iter().sum::<u64>() as usize);
        if table.format == super::Format::Csv {
            // CSV: chunks of whole records, split and typed in parallel
            // while the next round is read.
            let (_, mut chunks) = super::raw::CsvChunks::open(table, &wanted)?;
            chunks.par_rounds(
                round * 2,
                |chunk| {
                    if plain {
                        if let Some(part) = plain_part(&chunk, &table.spec, &deprivation) {
                            return Ok(vec![part]);
                        }
                    }
                    chunk
                        .parse()?
                        .into_iter()
                        .map(|batch| to_part(&file, &table.spec, &deprivation, &all, batch))
                        .collect::<Result<Vec<Part>, _>>()
                },
                |typed| {
                    let parts: Vec<Part> = typed.into_iter().flatten().collect();
                    columns.append(&file, &parts)
                },
            )?;
        } else {
            // Parquet (or batches in memory): its row groups read side by
            // side, a round at a time; one large row group (a million rows is
            // the usual most) read in as many row ranges as there are
            // threads, on batch boundaries, where one reader had used a core.
            let batch = super::raw::BATCH_ROWS as u64;
            let units: Vec<Unit> = if sizes.len() > 1 {
                (0..sizes.len()).map(Unit::Group).collect()
            } else if table.format == super::Format::Parquet && round > 1 && sizes[0] >= 2 * batch {
                let step = sizes[0].div_ceil(round as u64).next_multiple_of(batch);
                (0..sizes[0])
                    .step_by(step as usize)
                    .map(|start| Unit::Rows(start..(start + step).min(sizes[0])))
                    .collect()
            } else {
                vec![Unit::Whole]
            };
            for round_units in units.chunks(round) {
                let typed: Vec<Result<Vec<Part>, DatasetError>> = round_units
                    .par_iter()
                    .map(|unit| {
                        read_part(match unit {
                            Unit::Whole => RawTable::open(table, &wanted, &dictionary),
                            Unit::Group(g) => {
                                RawTable::open_row_groups(table, &wanted, &dictionary, vec![*g])
                            }
                            Unit::Rows(rows) => RawTable::open_row_range(
                                table,
                                &wanted,
                                &dictionary,
                                0,
                                rows.clone(),
                            ),
                        })
                    })
                    .collect();
                let mut parts = Vec::new();
                for t in typed {
                    parts.extend(t?);
                }
                columns.append(&file, &parts)?;
            }
        }
        if columns.rows() == 0 {
            return Err(DatasetError::EmptyPatients { file });
        }
        let mut patients = columns.finish(file)?;

        patients.spec = table.spec.clone();
        patients.deprivation = deprivation;
        patients.imd_from_column = all.iter().any(|c| c == IMD_DECILE);
        Ok(patients)
    }
}

/// A part of a Parquet patients table read on its own.
enum Unit {
    Whole,
    Group(usize),
    /// Rows of the one row group.
    Rows(std::ops::Range<u64>),
}

/// The patients table's columns, put together part by part in file order.
struct Assembly {
    ids: Option<IdsBuilder>,
    practice_code: TextColumnBuilder,
    pcn_code: TextColumnBuilder,
    sex: TextColumnBuilder,
    lsoa_code: TextColumnBuilder,
    date_of_birth: Date32Builder,
    registration_end: Date32Builder,
    date_of_death: Date32Builder,
    imd_decile: Int32Builder,
    /// Columns beyond the contract: their parts, joined at the end.
    extras: Vec<(String, Vec<ArrayRef>)>,
    /// Where each part's rows came from, and how many it had.
    origins: Vec<(Locator, usize)>,
    /// Rows the columns are sized for (the file's, when it says).
    capacity: usize,
}

/// One of a part's columns.
type Field<T> = fn(&Part) -> &T;

enum IdsBuilder {
    Int(Int64Builder),
    Text(StringBuilder),
}

impl Assembly {
    fn with_capacity(rows: usize) -> Assembly {
        Assembly {
            ids: None,
            practice_code: TextColumnBuilder::with_capacity(rows),
            pcn_code: TextColumnBuilder::with_capacity(rows),
            sex: TextColumnBuilder::with_capacity(rows),
            lsoa_code: TextColumnBuilder::with_capacity(rows),
            date_of_birth: Date32Builder::with_capacity(rows),
            registration_end: Date32Builder::with_capacity(rows),
            date_of_death: Date32Builder::with_capacity(rows),
            imd_decile: Int32Builder::with_capacity(rows),
            extras: Vec::new(),
            origins: Vec::new(),
            capacity: rows,
        }
    }

    fn rows(&self) -> usize {
        self.origins.iter().map(|(_, n)| n).sum()
    }

    /// Copies parts (in file order) onto the columns, a column per task.
    fn append(&mut self, file: &str, parts: &[Part]) -> Result<(), DatasetError> {
        let Some(first) = parts.first() else {
            return Ok(());
        };
        let rows = self.capacity;
        let ids = self.ids.get_or_insert_with(|| match first.ids {
            PatientIds::Int(_) => IdsBuilder::Int(Int64Builder::with_capacity(rows)),
            PatientIds::Text(_) => IdsBuilder::Text(StringBuilder::new()),
        });
        if self.extras.is_empty() {
            self.extras = first
                .extras
                .iter()
                .map(|(name, _)| (name.clone(), Vec::new()))
                .collect();
        }
        let mut ids_failed: Option<String> = None;
        rayon::scope(|s| {
            s.spawn(|_| {
                for p in parts {
                    let appended = match (&mut *ids, &p.ids) {
                        (IdsBuilder::Int(b), PatientIds::Int(a)) => {
                            b.append_array(a);
                            Ok(())
                        }
                        (IdsBuilder::Text(b), PatientIds::Text(a)) => {
                            b.append_array(a).map_err(|e| e.to_string())
                        }
                        _ => Err("patient_id is stored as integers in one part of the \
                                  file and text in another"
                            .to_string()),
                    };
                    if let Err(e) = appended {
                        ids_failed = Some(e);
                        break;
                    }
                }
            });
            let texts: [(&mut TextColumnBuilder, Field<TextColumn>); 4] = [
                (&mut self.practice_code, |p| &p.practice_code),
                (&mut self.pcn_code, |p| &p.pcn_code),
                (&mut self.sex, |p| &p.sex),
                (&mut self.lsoa_code, |p| &p.lsoa_code),
            ];
            for (b, f) in texts {
                s.spawn(move |_| parts.iter().for_each(|p| b.append(f(p))));
            }
            let dates: [(&mut Date32Builder, Field<Date32Array>); 3] = [
                (&mut self.date_of_birth, |p| &p.date_of_birth),
                (&mut self.registration_end, |p| &p.registration_end),
                (&mut self.date_of_death, |p| &p.date_of_death),
            ];
            for (b, f) in dates {
                s.spawn(move |_| parts.iter().for_each(|p| b.append_array(f(p))));
            }
            let imd = &mut self.imd_decile;
            s.spawn(move |_| parts.iter().for_each(|p| imd.append_array(&p.imd_decile)));
        });
        for p in parts {
            for (k, (_, held)) in self.extras.iter_mut().enumerate() {
                if let Some((_, a)) = p.extras.get(k) {
                    held.push(a.clone());
                }
            }
            self.origins.push((p.locator.clone(), p.rows));
        }
        match ids_failed {
            Some(message) => Err(DatasetError::Parquet {
                file: file.to_string(),
                message,
            }),
            None => Ok(()),
        }
    }

    fn finish(mut self, file: String) -> Result<Patients, DatasetError> {
        let arrow_error = |e: arrow::error::ArrowError| DatasetError::Parquet {
            file: file.clone(),
            message: e.to_string(),
        };
        let ids = match self.ids {
            Some(IdsBuilder::Int(mut b)) => PatientIds::Int(b.finish()),
            Some(IdsBuilder::Text(mut b)) => PatientIds::Text(b.finish()),
            None => PatientIds::Int(Int64Builder::new().finish()),
        };
        let extras = self
            .extras
            .into_iter()
            .map(|(name, held)| {
                let arrays: Vec<&dyn Array> = held.iter().map(|a| a.as_ref()).collect();
                concat(&arrays).map(|a| (name, a)).map_err(arrow_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let index = build_index(&file, &ids, &self.origins)?;
        Ok(Patients {
            practice_code: self.practice_code.finish(),
            pcn_code: self.pcn_code.finish(),
            date_of_birth: self.date_of_birth.finish(),
            sex: self.sex.finish(),
            lsoa_code: self.lsoa_code.finish(),
            imd_decile: self.imd_decile.finish(),
            registration_end: self.registration_end.finish(),
            date_of_death: self.date_of_death.finish(),
            extras,
            ids,
            index,
            file,
            spec: Default::default(),
            deprivation: Default::default(),
            imd_from_column: false,
        })
    }
}

/// One batch of the patients table typed into a [`Part`].
fn to_part(
    file: &str,
    spec: &super::TableSpec,
    deprivation: &super::DeprivationSpec,
    all: &[String],
    batch: super::raw::RawBatch,
) -> Result<Part, DatasetError> {
    let site = Site {
        file,
        locator: &batch.locator,
        spec,
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
    let opt_text = |name: &str| -> Result<TextColumn, DatasetError> {
        let c = col(name).unwrap_or_else(|| Arc::new(StringArray::new_null(n)));
        columns::text_column(&c, name, &site, false)
    };
    let opt_date = |name: &str| -> Result<Date32Array, DatasetError> {
        match col(name) {
            Some(c) => columns::dates(&c, name, &site, false),
            None => Ok(Date32Array::new_null(n)),
        }
    };
    let sex = match col(SEX) {
        Some(c) => columns::sex_column(&c, SEX, &site)?,
        None => columns::sex_column(
            &(Arc::new(StringArray::new_null(n)) as ArrayRef),
            SEX,
            &site,
        )?,
    };
    let lsoa_code = opt_text(LSOA_CODE)?;
    // Without an imd_decile column, derive it from lsoa_code through the
    // bundled index dataset.toml names (IMD 2019 on 2011 LSOAs unless it
    // says otherwise), once per distinct code.
    let imd_decile = match col(IMD_DECILE) {
        Some(c) => columns::deciles(&c, IMD_DECILE, &site)?,
        None => derived_deciles(&lsoa_code, deprivation),
    };
    Ok(Part {
        ids: columns::patient_ids(&req(PATIENT_ID)?, PATIENT_ID, &site)?,
        practice_code: columns::text_column(&req(PRACTICE_CODE)?, PRACTICE_CODE, &site, true)?,
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

/// Deciles of deprivation from the LSOA codes, through the bundled index
/// dataset.toml names (IMD 2019 on 2011 LSOAs unless it says otherwise),
/// once per distinct code.
fn derived_deciles(lsoa_code: &TextColumn, deprivation: &super::DeprivationSpec) -> Int32Array {
    let lookup = DeprivationLookup::get(deprivation.index, deprivation.lsoa_vintage);
    let by_key: Vec<Option<i32>> = (0..lsoa_code.dictionary_len())
        .map(|k| {
            lookup
                .lookup(lsoa_code.dictionary_value(k))
                .map(|d| i32::from(d.decile))
        })
        .collect();
    (0..lsoa_code.len())
        .map(|i| lsoa_code.key(i).and_then(|k| by_key[k]))
        .collect()
}

/// One batch's worth of typed patient columns, before concatenation.
struct Part {
    ids: PatientIds,
    practice_code: TextColumn,
    pcn_code: TextColumn,
    date_of_birth: Date32Array,
    sex: TextColumn,
    lsoa_code: TextColumn,
    imd_decile: Int32Array,
    registration_end: Date32Array,
    date_of_death: Date32Array,
    extras: Vec<(String, ArrayRef)>,
    locator: Locator,
    rows: usize,
}

/// Location of global row `row` in the source file.
fn locate(origins: &[(Locator, usize)], mut row: usize) -> Location {
    for (locator, rows) in origins {
        if row < *rows {
            return locator.at(row);
        }
        row -= rows;
    }
    Location::Row(0)
}

fn build_index(
    file: &str,
    ids: &PatientIds,
    origins: &[(Locator, usize)],
) -> Result<PatientIndex, DatasetError> {
    let n = ids.len();
    if let PatientIds::Int(a) = ids {
        let v = a.values();
        if v.par_windows(2).all(|w| w[0] < w[1]) {
            return Ok(PatientIndex {
                shards: Vec::new(),
                sorted: true,
            });
        }
    }
    let hash_of = |r: usize| match ids {
        PatientIds::Int(a) => int_hash(a.value(r)),
        PatientIds::Text(a) => text_hash(a.value(r)),
    };
    let same = |r: usize, row: usize| match ids {
        PatientIds::Int(a) => a.value(r) == a.value(row),
        PatientIds::Text(a) => a.value(r) == a.value(row),
    };
    // Every id hashed once, block by block in parallel, its hash and row
    // put with its shard's (in row order): each shard's table is then
    // built from its own pairs read in sequence, not from hashes all over
    // memory.
    const BLOCK: usize = 1 << 20;
    let shards = index_shards(n);
    let blocks: Vec<Vec<(Vec<u64>, Vec<u32>)>> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let rows = b * BLOCK..n.min((b + 1) * BLOCK);
            let mut by_shard: Vec<(Vec<u64>, Vec<u32>)> = (0..shards)
                .map(|_| {
                    let room = rows.len() / shards + 64;
                    (Vec::with_capacity(room), Vec::with_capacity(room))
                })
                .collect();
            for row in rows {
                let h = hash_of(row);
                let shard = &mut by_shard[shard_of(h, shards)];
                shard.0.push(h);
                shard.1.push(row as u32);
            }
            by_shard
        })
        .collect();
    // Each shard takes its ids in row order and stops at its first repeat,
    // so the duplicate reported (the earliest second occurrence over all
    // shards) is the one a single table would report.
    type Built = (HashTable<u32>, Option<(usize, u32)>);
    let built: Vec<Built> = (0..shards)
        .into_par_iter()
        .map(|s| {
            let size: usize = blocks.iter().map(|b| b[s].1.len()).sum();
            let mut table = HashTable::with_capacity(size);
            for (hashes, rows) in blocks.iter().map(|b| &b[s]) {
                for (&h, &row) in hashes.iter().zip(rows) {
                    let row = row as usize;
                    match table.entry(h, |&r| same(r as usize, row), |&r| hash_of(r as usize)) {
                        hashbrown::hash_table::Entry::Occupied(first) => {
                            let first = *first.get();
                            return (table, Some((row, first)));
                        }
                        hashbrown::hash_table::Entry::Vacant(slot) => {
                            slot.insert(row as u32);
                        }
                    }
                }
            }
            (table, None)
        })
        .collect();
    drop(blocks);
    if let Some((row, first)) = built
        .iter()
        .filter_map(|(_, d)| *d)
        .min_by_key(|(row, _)| *row)
    {
        return Err(DatasetError::DuplicatePatient {
            file: file.to_string(),
            at: locate(origins, row),
            first: locate(origins, first as usize),
        });
    }
    Ok(PatientIndex {
        shards: built.into_iter().map(|(t, _)| t).collect(),
        sorted: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A patients.parquet of `n` rows in one row group (pages of 10,000
    /// rows), with an IMD decile of 11 at row `bad` (0-based) if given.
    fn one_group_parquet(dir: &std::path::Path, n: usize, bad: Option<usize>) -> TableFile {
        use arrow::array::{Date32Array, Int32Array, Int64Array, RecordBatch, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new(PATIENT_ID, DataType::Int64, false),
            Field::new(PRACTICE_CODE, DataType::Utf8, false),
            Field::new(PCN_CODE, DataType::Utf8, true),
            Field::new(DATE_OF_BIRTH, DataType::Date32, false),
            Field::new(SEX, DataType::Utf8, true),
            Field::new(LSOA_CODE, DataType::Utf8, true),
            Field::new(IMD_DECILE, DataType::Int32, true),
            Field::new(REGISTRATION_END, DataType::Date32, true),
            Field::new(DATE_OF_DEATH, DataType::Date32, true),
        ]));
        let path = dir.join("patients.parquet");
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(n))
            .set_data_page_row_count_limit(10_000)
            .set_write_batch_size(1_000)
            .build();
        let file = std::fs::File::create(&path).unwrap();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        for start in (0..n).step_by(50_000) {
            let rows = start..n.min(start + 50_000);
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(
                        rows.clone().map(|i| 9_000_000_000 - 7 * i as i64),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        rows.clone().map(|i| format!("P{}", i % 7)),
                    )),
                    Arc::new(StringArray::from_iter(
                        rows.clone()
                            .map(|i| (i % 5 != 0).then(|| format!("U{}", i % 3))),
                    )),
                    Arc::new(Date32Array::from_iter_values(
                        rows.clone().map(|i| -20_000 + (i % 30_000) as i32),
                    )),
                    Arc::new(StringArray::from_iter(
                        rows.clone()
                            .map(|i| [Some("F"), Some("M"), None, Some("U")][i % 4]),
                    )),
                    Arc::new(StringArray::from_iter(
                        rows.clone()
                            .map(|i| (i % 3 == 0).then(|| format!("E0{:07}", i % 500))),
                    )),
                    Arc::new(Int32Array::from_iter(rows.clone().map(|i| {
                        if Some(i) == bad {
                            Some(11)
                        } else {
                            (i % 11 != 0).then_some(1 + (i % 10) as i32)
                        }
                    }))),
                    Arc::new(Date32Array::from_iter(
                        rows.clone().map(|i| (i % 13 == 0).then_some(18_000)),
                    )),
                    Arc::new(Date32Array::from_iter(
                        rows.clone().map(|i| (i % 17 == 0).then_some(18_300)),
                    )),
                ],
            )
            .unwrap();
            w.write(&batch).unwrap();
        }
        w.close().unwrap();
        TableFile {
            name: "patients".into(),
            path,
            format: super::super::Format::Parquet,
            batches: None,
            spec: Default::default(),
            parquet_footer: Default::default(),
            read_digest: Default::default(),
        }
    }

    /// Every column of every row, or the error message.
    fn read_on(threads: usize, table: &TableFile) -> Result<Vec<String>, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let p = pool
            .install(|| Patients::read(table, Default::default()))
            .map_err(|e| e.to_string())?;
        let PatientIds::Int(ids) = &p.ids else {
            panic!("integer ids")
        };
        let date = |a: &Date32Array, i: usize| a.is_valid(i).then(|| a.value(i));
        Ok((0..p.len())
            .map(|i| {
                format!(
                    "{} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                    ids.value(i),
                    p.practice_code.get(i),
                    p.pcn_code.get(i),
                    date(&p.date_of_birth, i),
                    p.sex.get(i),
                    p.lsoa_code.get(i),
                    p.imd_decile.is_valid(i).then(|| p.imd_decile.value(i)),
                    date(&p.registration_end, i),
                    date(&p.date_of_death, i),
                    p.row_of_int(ids.value(i)),
                )
            })
            .collect())
    }

    /// One row group of 140,000 rows is read in ranges side by side on two
    /// threads or more: every row as a single reader reads it, in order,
    /// and a bad value in a later range is reported at its row of the file.
    #[test]
    fn one_large_row_group_is_read_in_ranges_as_one_reader_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let n = 140_000;
        let table = one_group_parquet(dir.path(), n, None);
        let one = read_on(1, &table).unwrap();
        assert_eq!(one.len(), n);
        assert!(
            one[0].starts_with("9000000000 Some(\"P0\") None "),
            "{}",
            one[0]
        );
        for threads in [2, 3] {
            assert_eq!(read_on(threads, &table).unwrap(), one, "{threads} threads");
        }
        // A bad decile in the first, a middle or the last range (ranges of
        // 131,072 rows on two threads, 65,536 on three).
        for bad in [3, 70_000, 139_999] {
            let dir = tempfile::tempdir().unwrap();
            let table = one_group_parquet(dir.path(), n, Some(bad));
            let one = read_on(1, &table).unwrap_err();
            assert!(one.contains(&format!("row {}", bad + 1)), "{one}");
            for threads in [2, 3] {
                assert_eq!(
                    read_on(threads, &table).unwrap_err(),
                    one,
                    "{threads} threads"
                );
            }
        }
    }

    /// Each shard's table, a power of two of buckets that hashbrown fills
    /// to 7/8 before doubling, ends between 75% and 87.5% full at sizes
    /// from a practice to England (ids spread evenly over the shards).
    #[test]
    fn index_tables_are_mostly_full_at_every_size() {
        for n in [
            100_000usize,
            1_000_000,
            6_400_000,
            10_000_000,
            33_554_432,
            62_000_000,
        ] {
            let shards = index_shards(n);
            assert!(shards >= 16, "{n}");
            let per_shard = n.div_ceil(shards);
            let buckets = (per_shard * 8 / 7 + 1).next_power_of_two();
            let fill = per_shard as f64 / buckets as f64;
            assert!(
                (0.75..=0.875).contains(&fill),
                "{n} ids: {shards} shards, {fill:.2} full"
            );
        }
        assert_eq!(index_shards(0), 16);
        assert_eq!(index_shards(1), 16);
    }

    #[test]
    fn hashes_spread_over_every_shard() {
        for shards in [16, 18, 23, 31] {
            let mut seen = vec![0usize; shards];
            for id in 0..100_000i64 {
                seen[shard_of(int_hash(id), shards)] += 1;
            }
            let expected = 100_000 / shards;
            assert!(
                seen.iter()
                    .all(|&c| c > expected * 9 / 10 && c < expected * 11 / 10),
                "{shards}: {seen:?}"
            );
        }
    }
}
