//! The event scan: one fused pass over each event table feeds every
//! aggregate of a pack at once.
//!
//! Work is split in rounds. In a round, parts of a table (Parquet row groups,
//! or CSV batches) are decoded in parallel; each part maps its code
//! dictionary to codelist match sets once, then walks its rows keeping only
//! events whose code is in some codelist and whose date is on or before the
//! as-of date. Those hits are bucketed by person shard. Then every shard
//! applies its hits to its own slice of the per-person accumulators, again in
//! parallel and without locks. Memory is bounded by the round, not the table.
//!
//! Every accumulator is order-independent (counts, minima, maxima, and "last
//! value" with ties broken by the larger value), so the result does not
//! depend on the thread count or on how the table is sorted.

use crate::pack::semantics::{contact_counts, contact_outcome};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use rayon::prelude::*;

use crate::dataset::columns::PatientIds;
use crate::dataset::events::{ContactReader, EventBatch, EventReader};
use crate::dataset::quality::{batch_findings, resolve_rows, Findings, IntRows};
use crate::dataset::raw::row_group_sizes;
use crate::dataset::{DatasetError, Patients, TableFile};
use crate::plan::{AccKind, ScanPlan, TableScan};

/// One event that matched at least one codelist.
#[derive(Debug, Clone, Copy)]
struct Hit {
    row: u32,
    date: i32,
    /// The code's match set (never 0: unmatched events are dropped).
    set: u32,
    /// NaN when the event has no finite value.
    value: f64,
    /// The exactly listed code's id (`u32::MAX`: none, or not needed).
    code: u32,
}

/// Per-person accumulator storage, one column per accumulator.
#[derive(Debug, Clone)]
pub enum AccColumn {
    /// One bit a person (bit `i % 64` of word `i / 64`).
    Any(Vec<u64>),
    Count(Vec<u32>),
    /// Earliest date per person.
    MinDate(Dates),
    /// Latest date per person.
    MaxDate(Dates),
    /// Latest date with a value, and the value (largest on a tie).
    LastValue(Vec<i32>, Vec<f64>),
    MinValue(Vec<f64>),
    MaxValue(Vec<f64>),
    /// While scanning: (person within shard, code id) pairs per shard of
    /// persons; [`AccColumn::finish`] turns them into a `Count`.
    DistinctCodes(Vec<Vec<(u32, u32)>>),
    /// Likewise (person within shard, day) pairs.
    DistinctDays(Vec<Vec<(u32, u32)>>),
}

/// Sentinels: no date yet / no value yet.
pub const NO_MIN_DATE: i32 = i32::MAX;
pub const NO_MAX_DATE: i32 = i32::MIN;

impl AccColumn {
    fn new(kind: AccKind, n: usize) -> AccColumn {
        match kind {
            AccKind::Any => AccColumn::Any(vec![0; n.div_ceil(64)]),
            AccKind::Count => AccColumn::Count(vec![0; n]),
            AccKind::MinDate => AccColumn::MinDate(Dates::new(false, n)),
            AccKind::MaxDate => AccColumn::MaxDate(Dates::new(true, n)),
            AccKind::LastValue => AccColumn::LastValue(vec![NO_MAX_DATE; n], vec![f64::NAN; n]),
            AccKind::MinValue => AccColumn::MinValue(vec![f64::NAN; n]),
            AccKind::MaxValue => AccColumn::MaxValue(vec![f64::NAN; n]),
            AccKind::DistinctCodes => {
                AccColumn::DistinctCodes(vec![Vec::new(); n.div_ceil(1 << SHARD_SHIFT).max(1)])
            }
            AccKind::DistinctDays => {
                AccColumn::DistinctDays(vec![Vec::new(); n.div_ceil(1 << SHARD_SHIFT).max(1)])
            }
        }
    }

    /// Distinct codes or days counted per person (other accumulators are
    /// final).
    fn finish(&mut self, n: usize) {
        if let AccColumn::MinDate(d) | AccColumn::MaxDate(d) = self {
            d.finish();
        }
        if let AccColumn::DistinctCodes(shards) | AccColumn::DistinctDays(shards) = self {
            let mut counts = vec![0u32; n];
            for (s, pairs) in shards.iter_mut().enumerate() {
                pairs.sort_unstable();
                pairs.dedup();
                for &(i, _) in pairs.iter() {
                    counts[(s << SHARD_SHIFT) + i as usize] += 1;
                }
            }
            *self = AccColumn::Count(counts);
        }
    }

    /// Keeps persons `0 .. persons` only (a multiple of 64), giving the
    /// rest's memory back.
    pub fn truncate(&mut self, persons: usize) {
        fn keep<T>(v: &mut Vec<T>, len: usize) {
            v.truncate(len);
            v.shrink_to_fit();
        }
        debug_assert_eq!(persons % 64, 0);
        match self {
            AccColumn::Any(v) => keep(v, persons / 64),
            AccColumn::Count(v) => keep(v, persons),
            AccColumn::MinDate(d) | AccColumn::MaxDate(d) => d.truncate(persons),
            AccColumn::LastValue(d, x) => {
                keep(d, persons);
                keep(x, persons);
            }
            AccColumn::MinValue(v) | AccColumn::MaxValue(v) => keep(v, persons),
            // Counted into a `Count` by `finish` before evaluation.
            AccColumn::DistinctCodes(_) | AccColumn::DistinctDays(_) => {}
        }
    }

    /// Bytes held (buffers' capacity).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of_val;
        match self {
            AccColumn::Any(v) => size_of_val(v.as_slice()),
            AccColumn::Count(v) => size_of_val(v.as_slice()),
            AccColumn::MinDate(d) | AccColumn::MaxDate(d) => d.memory_bytes(),
            AccColumn::LastValue(d, x) => size_of_val(d.as_slice()) + size_of_val(x.as_slice()),
            AccColumn::MinValue(v) | AccColumn::MaxValue(v) => size_of_val(v.as_slice()),
            AccColumn::DistinctCodes(v) | AccColumn::DistinctDays(v) => {
                v.iter().map(|p| size_of_val(p.as_slice())).sum()
            }
        }
    }

    /// Whether person `i` has a match (an `Any` accumulator).
    #[inline]
    pub fn any(words: &[u64], i: usize) -> bool {
        words[i >> 6] >> (i & 63) & 1 == 1
    }

    /// Splits the column into shards of `rows` persons (a multiple of 64).
    fn shards(&mut self, rows: usize) -> Vec<AccSlice<'_>> {
        debug_assert_eq!(rows % 64, 0);
        match self {
            AccColumn::Any(v) => v.chunks_mut(rows / 64).map(AccSlice::Any).collect(),
            AccColumn::Count(v) => v.chunks_mut(rows).map(AccSlice::Count).collect(),
            AccColumn::MinDate(d) | AccColumn::MaxDate(d) => {
                debug_assert_eq!(rows, 1 << SHARD_SHIFT);
                let latest = d.latest;
                d.shards
                    .iter_mut()
                    .map(|shard| AccSlice::Dates(shard, latest))
                    .collect()
            }
            AccColumn::LastValue(d, x) => d
                .chunks_mut(rows)
                .zip(x.chunks_mut(rows))
                .map(|(d, x)| AccSlice::LastValue(d, x))
                .collect(),
            AccColumn::MinValue(v) => v.chunks_mut(rows).map(AccSlice::MinValue).collect(),
            AccColumn::MaxValue(v) => v.chunks_mut(rows).map(AccSlice::MaxValue).collect(),
            AccColumn::DistinctCodes(v) => v.iter_mut().map(AccSlice::DistinctCodes).collect(),
            AccColumn::DistinctDays(v) => v.iter_mut().map(AccSlice::DistinctDays).collect(),
        }
    }
}

enum AccSlice<'a> {
    Any(&'a mut [u64]),
    Count(&'a mut [u32]),
    Dates(&'a mut DateShard, bool),
    LastValue(&'a mut [i32], &'a mut [f64]),
    MinValue(&'a mut [f64]),
    MaxValue(&'a mut [f64]),
    DistinctCodes(&'a mut Vec<(u32, u32)>),
    DistinctDays(&'a mut Vec<(u32, u32)>),
}

impl AccSlice<'_> {
    #[inline]
    fn apply(&mut self, i: usize, date: i32, value: f64, code: u32) {
        match self {
            AccSlice::DistinctCodes(v) => {
                if code != u32::MAX {
                    v.push((i as u32, code));
                }
            }
            // Any distinct u32 per day will do: dates before 1970 wrap.
            AccSlice::DistinctDays(v) => v.push((i as u32, date as u32)),
            AccSlice::Any(v) => v[i >> 6] |= 1 << (i & 63),
            AccSlice::Count(v) => v[i] = v[i].saturating_add(1),
            AccSlice::Dates(shard, latest) => shard.apply(*latest, i, date),
            AccSlice::LastValue(d, x) => {
                if !value.is_nan()
                    && (date > d[i] || (date == d[i] && (x[i].is_nan() || value > x[i])))
                {
                    d[i] = date;
                    x[i] = value;
                }
            }
            AccSlice::MinValue(v) => {
                if !value.is_nan() && (v[i].is_nan() || value < v[i]) {
                    v[i] = value;
                }
            }
            AccSlice::MaxValue(v) => {
                if !value.is_nan() && (v[i].is_nan() || value > v[i]) {
                    v[i] = value;
                }
            }
        }
    }
}

/// The earliest or latest date of each person's events in a codelist,
/// a shard of persons at a time. Few people have codes in most codelists
/// (being housebound, or shielding: a person in a hundred), so a shard
/// holds its (person, date) hits until they would take more room than a
/// date for every person, and only then becomes a date a person. A date
/// for everyone in each of four such codelists took 160 MB at 10M people
/// and 1 GB at 62M, for 150,000 hits.
#[derive(Debug, Clone)]
pub struct Dates {
    /// Latest (`MaxDate`) or earliest (`MinDate`).
    latest: bool,
    /// Shard `s` holds persons `s << SHARD_SHIFT ..`.
    shards: Vec<DateShard>,
}

#[derive(Debug, Clone)]
pub enum DateShard {
    /// (person within the shard, date) hits; after [`Dates::finish`] one
    /// a person, persons ascending.
    Hits { rows: usize, hits: Vec<(u32, i32)> },
    /// A date for each person of the shard (the sentinel where none).
    Dense(Vec<i32>),
}

impl DateShard {
    #[inline]
    fn apply(&mut self, latest: bool, i: usize, date: i32) {
        match self {
            DateShard::Dense(v) => {
                v[i] = if latest {
                    v[i].max(date)
                } else {
                    v[i].min(date)
                };
            }
            DateShard::Hits { rows, hits } => {
                hits.push((i as u32, date));
                // Eight bytes a hit against four a person: when the hits
                // reach half the persons, they are cut to one a person;
                // more than a quarter left, the shard turns dense.
                if hits.len() >= (*rows / 2).max(64) {
                    reduce(hits, latest);
                    if hits.len() > *rows / 4 {
                        let mut v = vec![Dates::none(latest); *rows];
                        for &(i, d) in hits.iter() {
                            v[i as usize] = d;
                        }
                        *self = DateShard::Dense(v);
                    }
                }
            }
        }
    }
}

/// Hits sorted by person, one each: the latest (or earliest) date.
fn reduce(hits: &mut Vec<(u32, i32)>, latest: bool) {
    hits.sort_unstable();
    // Sorted by person then date: a person's last hit is the latest, the
    // first the earliest.
    hits.dedup_by(|next, kept| {
        if next.0 != kept.0 {
            return false;
        }
        if latest {
            kept.1 = next.1;
        }
        true
    });
    hits.shrink_to_fit();
}

impl Dates {
    fn new(latest: bool, n: usize) -> Dates {
        let size = 1usize << SHARD_SHIFT;
        Dates {
            latest,
            shards: (0..n.div_ceil(size))
                .map(|s| DateShard::Hits {
                    rows: size.min(n - s * size),
                    hits: Vec::new(),
                })
                .collect(),
        }
    }

    /// The sentinel for no date.
    fn none(latest: bool) -> i32 {
        if latest {
            NO_MAX_DATE
        } else {
            NO_MIN_DATE
        }
    }

    fn finish(&mut self) {
        for shard in &mut self.shards {
            if let DateShard::Hits { hits, .. } = shard {
                reduce(hits, self.latest);
            }
        }
    }

    /// Each person's date in `range` ([`NO_MAX_DATE`] or [`NO_MIN_DATE`]:
    /// none).
    pub fn dates(&self, range: std::ops::Range<usize>) -> Vec<i32> {
        self.fill(range, Dates::none(self.latest), |d| d)
    }

    /// Each person's date in `range`, `None` where there is none (the
    /// engine's date column).
    pub fn options(&self, range: std::ops::Range<usize>) -> Vec<Option<i32>> {
        self.fill(range, None, Some)
    }

    /// Each person's date in `range` as `value` makes it, `missing` where
    /// there is none.
    fn fill<T: Copy>(
        &self,
        range: std::ops::Range<usize>,
        missing: T,
        value: impl Fn(i32) -> T,
    ) -> Vec<T> {
        let none = Dates::none(self.latest);
        let mut out = vec![missing; range.len()];
        let mut s = range.start >> SHARD_SHIFT;
        while let Some(shard) = self.shards.get(s) {
            let base = s << SHARD_SHIFT;
            if base >= range.end {
                break;
            }
            let from = range.start.max(base);
            match shard {
                DateShard::Dense(v) => {
                    let to = range.end.min(base + v.len());
                    for (o, &d) in out[from - range.start..to - range.start]
                        .iter_mut()
                        .zip(&v[from - base..to - base])
                    {
                        *o = if d == none { missing } else { value(d) };
                    }
                }
                DateShard::Hits { hits, .. } => {
                    for &(i, d) in hits {
                        let row = base + i as usize;
                        if range.contains(&row) {
                            out[row - range.start] = value(d);
                        }
                    }
                }
            }
            s += 1;
        }
        out
    }

    /// Keeps (at least) persons `0 .. persons`, giving the other shards'
    /// memory back.
    fn truncate(&mut self, persons: usize) {
        self.shards.truncate(persons.div_ceil(1 << SHARD_SHIFT));
        self.shards.shrink_to_fit();
    }

    fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s {
                DateShard::Dense(v) => std::mem::size_of_val(v.as_slice()),
                DateShard::Hits { hits, .. } => std::mem::size_of_val(hits.as_slice()),
            })
            .sum()
    }
}

/// What the scan produced: accumulators plus counts for the manifest.
#[derive(Debug)]
pub struct ScanResult {
    pub accs: Vec<AccColumn>,
    /// Latest contact on or before the as-of date, by outcome set (0: any
    /// outcome).
    pub last_contact: Vec<LastContacts>,
    pub tables: Vec<TableCounts>,
}

/// The latest contact date of each person contacted, rows ascending. A
/// practice contacts a few people in a hundred, so this holds those only
/// (a date for every person took 248 MB at 62M people, at the scan's
/// memory peak).
#[derive(Debug, Default)]
pub struct LastContacts {
    rows: Vec<u32>,
    dates: Vec<i32>,
}

impl LastContacts {
    /// From (row, date) pairs in any order: the latest date of each row.
    fn new(mut pairs: Vec<(u32, i32)>) -> LastContacts {
        reduce(&mut pairs, true);
        let (rows, dates) = pairs.into_iter().unzip();
        LastContacts { rows, dates }
    }

    /// The latest contact of each person in `range` ([`NO_MAX_DATE`]:
    /// never contacted).
    pub fn dates(&self, range: std::ops::Range<usize>) -> Vec<i32> {
        let mut out = vec![NO_MAX_DATE; range.len()];
        let from = self.rows.partition_point(|&r| (r as usize) < range.start);
        for (&row, &date) in self.rows[from..].iter().zip(&self.dates[from..]) {
            let row = row as usize;
            if row >= range.end {
                break;
            }
            out[row - range.start] = date;
        }
        out
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(self.rows.as_slice()) + std::mem::size_of_val(self.dates.as_slice())
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableCounts {
    pub table: String,
    pub file: String,
    pub rows: u64,
    pub matched: u64,
    pub findings: Findings,
}

/// Persons per shard (a power of two keeps the shard of a row a shift).
const SHARD_SHIFT: u32 = 16;

/// Runs the scan of every table the plan needs.
pub fn scan(
    plan: &ScanPlan,
    patients: &Patients,
    tables: &[(TableFile, &TableScan)],
    contacts: Option<(&TableFile, &[Vec<String>])>,
    as_of_days: i32,
) -> Result<ScanResult, DatasetError> {
    let n = patients.len();
    let mut accs: Vec<AccColumn> = plan
        .accs
        .iter()
        .map(|a| AccColumn::new(a.kind, n))
        .collect();
    let mut counts = Vec::new();
    for (file, table) in tables {
        counts.push(scan_table(
            plan, table, file, patients, &mut accs, as_of_days,
        )?);
    }
    for acc in &mut accs {
        acc.finish(n);
    }
    let sets: &[Vec<String>] = contacts.map_or(&[], |c| c.1);
    let mut contacted: Vec<Vec<(u32, i32)>> = vec![Vec::new(); sets.len().max(1)];
    if let Some((file, _)) = contacts {
        let mut rows = Vec::new();
        let mut c = TableCounts {
            table: file.name.clone(),
            file: file.display_name(),
            ..TableCounts::default()
        };
        for batch in ContactReader::open(file)? {
            let batch = batch?;
            resolve_rows(patients, &batch.ids, &mut rows);
            c.rows += rows.len() as u64;
            for (i, (&row, &date)) in rows.iter().zip(batch.dates.values().iter()).enumerate() {
                if row == u32::MAX {
                    c.findings.unknown_patient += 1;
                } else if date > as_of_days {
                    c.findings.after_as_of += 1;
                } else {
                    // Normalised once a row, and only when an outcome set
                    // beyond "any contact" (set 0) is read.
                    let outcome = batch
                        .outcomes
                        .as_ref()
                        .filter(|_| sets.len() > 1)
                        .and_then(|o| o.is_valid(i).then(|| contact_outcome(o.value(i))));
                    for (set, pairs) in sets.iter().zip(contacted.iter_mut()) {
                        if contact_counts(outcome.as_deref(), set) {
                            pairs.push((row, date));
                        }
                    }
                    c.matched += 1;
                }
            }
        }
        counts.push(c);
    }
    Ok(ScanResult {
        accs,
        last_contact: contacted.into_iter().map(LastContacts::new).collect(),
        tables: counts,
    })
}

/// Output of one part of a table: hits bucketed by shard, plus counts.
struct PartOutput {
    buckets: Vec<Vec<Hit>>,
    counts: TableCounts,
    /// The last code dictionary seen, its match sets and (when distinct
    /// codes are counted) code ids: Parquet batches of one row group share
    /// a dictionary, so it is mapped once.
    dictionary: Option<(ArrayRef, Vec<u32>, Vec<u32>)>,
    /// Scratch: the rows of a batch whose code is in some codelist.
    candidates: Vec<u32>,
}

fn scan_table(
    plan: &ScanPlan,
    table: &TableScan,
    file: &TableFile,
    patients: &Patients,
    accs: &mut [AccColumn],
    as_of_days: i32,
) -> Result<TableCounts, DatasetError> {
    let n = patients.len();
    let n_shards = (n >> SHARD_SHIFT) + 1;
    let mut total = TableCounts {
        table: file.name.clone(),
        file: file.display_name(),
        ..TableCounts::default()
    };
    let groups = row_group_sizes(file)?;
    let round = rayon::current_num_threads().max(1) * 8;
    let parts: Vec<usize> = (0..groups.len()).collect();

    let mut apply = |outputs: Vec<PartOutput>, accs: &mut [AccColumn]| {
        for o in &outputs {
            total.rows += o.counts.rows;
            total.matched += o.counts.matched;
            total.findings.add(&o.counts.findings);
        }
        apply_hits(plan, table, accs, &outputs, n_shards);
    };

    if groups.len() > 1 || file.format != crate::dataset::Format::Csv {
        for chunk in parts.chunks(round) {
            let outputs: Vec<PartOutput> = chunk
                .par_iter()
                .map(|&g| {
                    let mut reader =
                        EventReader::open_part(file, Some(vec![g]), table.reads_values)?;
                    let mut out = PartOutput::new(n_shards);
                    while let Some(batch) = reader.next_batch()? {
                        out.absorb(table, patients, &batch, as_of_days);
                    }
                    Ok(out)
                })
                .collect::<Result<_, DatasetError>>()?;
            apply(outputs, accs);
        }
    } else {
        // CSV: the file is read in chunks of whole records; splitting them
        // into fields, typing (ids, codes, dates, values) and matching run in
        // parallel, a round of chunks at a time. The first error in file
        // order is reported.
        let typer = EventReader::open_part(file, None, table.reads_values)?.typer();
        let wanted = EventReader::columns(table.reads_values);
        let (_, mut chunks) = crate::dataset::raw::CsvChunks::open(file, wanted)?;
        chunks.par_rounds(
            round,
            |chunk| {
                let mut out = PartOutput::new(n_shards);
                for batch in typer.typed_chunk(&chunk)? {
                    out.absorb(table, patients, &batch, as_of_days);
                }
                Ok(out)
            },
            |outputs| {
                apply(outputs, accs);
                Ok(())
            },
        )?;
    }
    Ok(total)
}

impl PartOutput {
    fn new(n_shards: usize) -> PartOutput {
        PartOutput {
            buckets: vec![Vec::new(); n_shards],
            counts: TableCounts::default(),
            dictionary: None,
            candidates: Vec::new(),
        }
    }

    /// Matches one batch: codes to codelist match sets, rows to persons.
    fn absorb(
        &mut self,
        table: &TableScan,
        patients: &Patients,
        batch: &EventBatch,
        as_of_days: i32,
    ) {
        self.counts.rows += batch.len() as u64;
        // One match set per distinct code of the batch's dictionary.
        let dict = batch.codes.values();
        let reuse = matches!(&self.dictionary, Some((d, _, _)) if Arc::ptr_eq(d, dict));
        if !reuse {
            let (masks, ids): (Vec<u32>, Vec<u32>) =
                match dict.as_any().downcast_ref::<StringArray>() {
                    Some(strings) => (0..strings.len())
                        .map(|i| {
                            if strings.is_null(i) {
                                (0, u32::MAX)
                            } else {
                                let code = strings.value(i);
                                let id = if table.reads_codes() {
                                    table.code_id(code)
                                } else {
                                    u32::MAX
                                };
                                (table.match_set(code), id)
                            }
                        })
                        .unzip(),
                    None => (Vec::new(), Vec::new()),
                };
            self.dictionary = Some((dict.clone(), masks, ids));
        }
        let (masks, ids): (&[u32], &[u32]) = self
            .dictionary
            .as_ref()
            .map(|(_, m, c)| (m.as_slice(), c.as_slice()))
            .unwrap_or((&[], &[]));
        let keys = batch.codes.keys().values();
        let dates = batch.dates.values();
        let values = batch.values.as_ref();
        let mut hit = |i: usize, row: u32, date: i32, set: u32| {
            // Non-finite values (NaN, ±infinity) count as no value.
            let value = match values {
                Some(v) if v.is_valid(i) && v.value(i).is_finite() => v.value(i),
                _ => f64::NAN,
            };
            self.counts.matched += 1;
            let code = ids.get(keys[i] as usize).copied().unwrap_or(u32::MAX);
            self.buckets[(row >> SHARD_SHIFT) as usize].push(Hit {
                row,
                date,
                set,
                value,
                code,
            });
        };
        match &batch.ids {
            // One pass: each id resolved (once a run of equal ids), the
            // findings counted, and the events in a codelist kept.
            PatientIds::Int(patient_ids) => {
                let ids = patient_ids.values();
                // First, branch-free, the few rows whose code is in a codelist
                // (into a buffer kept from batch to batch: zeroing a fresh one
                // for every batch cost more than the matching).
                let candidates = &mut self.candidates;
                if candidates.len() < ids.len() {
                    candidates.resize(ids.len(), 0);
                }
                let mut found = 0usize;
                for (i, &k) in keys.iter().enumerate() {
                    candidates[found] = i as u32;
                    found += usize::from(masks.get(k as usize).is_some_and(|&m| m != 0));
                }
                let mut next = candidates[..found].iter().copied().peekable();
                // Then run by run of equal ids (a person's events are
                // usually together): the id resolved once, the findings
                // counted over the run's dates, the candidates kept.
                let mut rows = IntRows::new(patients);
                let dob = patients.date_of_birth.values();
                let mut f = Findings::default();
                let mut start = 0;
                while start < ids.len() {
                    let id = ids[start];
                    let end = start
                        + 1
                        + ids[start + 1..]
                            .iter()
                            .position(|&x| x != id)
                            .unwrap_or(ids.len() - start - 1);
                    let row = rows.row(id);
                    if row == u32::MAX {
                        f.unknown_patient += (end - start) as u64;
                        while next.next_if(|&c| (c as usize) < end).is_some() {}
                        start = end;
                        continue;
                    }
                    let birth = dob[row as usize];
                    let (mut after, mut before) = (0u32, 0u32);
                    for &d in &dates[start..end] {
                        after += u32::from(d > as_of_days);
                        before += u32::from(d < birth);
                    }
                    f.after_as_of += u64::from(after);
                    f.before_birth += u64::from(before);
                    while let Some(c) = next.next_if(|&c| (c as usize) < end) {
                        let i = c as usize;
                        if dates[i] <= as_of_days {
                            hit(i, row, dates[i], masks[keys[i] as usize]);
                        }
                    }
                    start = end;
                }
                self.counts.findings.add(&f);
            }
            PatientIds::Text(_) => {
                let mut rows = Vec::with_capacity(batch.len());
                resolve_rows(patients, &batch.ids, &mut rows);
                self.counts
                    .findings
                    .add(&batch_findings(patients, batch, &rows, as_of_days));
                for (i, &row) in rows.iter().enumerate() {
                    let set = masks.get(keys[i] as usize).copied().unwrap_or(0);
                    if set == 0 || row == u32::MAX || dates[i] > as_of_days {
                        continue;
                    }
                    hit(i, row, dates[i], set);
                }
            }
        }
    }
}

fn apply_hits(
    plan: &ScanPlan,
    table: &TableScan,
    accs: &mut [AccColumn],
    outputs: &[PartOutput],
    n_shards: usize,
) {
    let shard_rows = 1usize << SHARD_SHIFT;
    let mut per_shard: Vec<Vec<(usize, AccSlice<'_>)>> =
        (0..n_shards).map(|_| Vec::new()).collect();
    for (a, col) in accs.iter_mut().enumerate() {
        if !table.uses_acc(a) {
            continue;
        }
        for (s, slice) in col.shards(shard_rows).into_iter().enumerate() {
            per_shard[s].push((a, slice));
        }
    }
    per_shard
        .into_par_iter()
        .enumerate()
        .for_each(|(s, mut slices)| {
            // Accumulator position within this shard's list, by accumulator index.
            let mut local = vec![usize::MAX; plan.accs.len()];
            for (k, (a, _)) in slices.iter().enumerate() {
                local[*a] = k;
            }
            let base = s << SHARD_SHIFT;
            for out in outputs {
                for hit in &out.buckets[s] {
                    let i = hit.row as usize - base;
                    for &(a, lower) in &table.accs_by_set[hit.set as usize] {
                        if hit.date >= lower {
                            slices[local[a]].1.apply(i, hit.date, hit.value, hit.code);
                        }
                    }
                }
            }
        });
}

#[cfg(test)]
mod last_contact_tests {
    use super::*;

    #[test]
    fn a_persons_latest_contact_is_kept_and_the_rest_read_as_never() {
        let last = LastContacts::new(vec![(7, 100), (2, 50), (7, 300), (7, 200), (9, -5)]);
        assert_eq!(last.dates(0..10)[2], 50);
        assert_eq!(last.dates(0..10)[7], 300);
        assert_eq!(last.dates(0..10)[9], -5);
        assert_eq!(
            last.dates(5..9),
            vec![NO_MAX_DATE, NO_MAX_DATE, 300, NO_MAX_DATE]
        );
        assert_eq!(last.dates(10..12), vec![NO_MAX_DATE; 2]);
        assert_eq!(
            LastContacts::new(Vec::new()).dates(0..3),
            vec![NO_MAX_DATE; 3]
        );
    }
}

#[cfg(test)]
mod date_tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Earliest and latest dates kept as hits, cut to one a person, or
    /// turned dense as hits crowd a shard, read back over any range as a
    /// date for every person would give them.
    #[test]
    fn dates_read_back_as_a_date_for_every_person_would_give_them() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let size = 1usize << SHARD_SHIFT;
        // Hits per person from rare (a few in a shard) to several each.
        for (n, hits) in [
            (10, 3),
            (size + 5, 40),
            (3 * size, 50_000),
            (2 * size + 1, 300_000),
        ] {
            for latest in [true, false] {
                let mut dates = Dates::new(latest, n);
                let none = Dates::none(latest);
                let mut want = vec![none; n];
                for _ in 0..hits {
                    // Crowd the first shard; spread the rest.
                    let row = if rng.random_bool(0.7) {
                        rng.random_range(0..n.min(size))
                    } else {
                        rng.random_range(0..n)
                    };
                    let date = rng.random_range(-20_000..20_000);
                    let s = row >> SHARD_SHIFT;
                    dates.shards[s].apply(latest, row - (s << SHARD_SHIFT), date);
                    want[row] = if want[row] == none {
                        date
                    } else if latest {
                        want[row].max(date)
                    } else {
                        want[row].min(date)
                    };
                }
                dates.finish();
                assert_eq!(dates.dates(0..n), want, "{n} people, {hits} hits");
                let mid = n / 3;
                assert_eq!(dates.dates(mid..n), want[mid..], "{n} from {mid}");
                assert_eq!(dates.dates(1..mid + 1), want[1..mid + 1]);
                assert_eq!(dates.dates(n..n), Vec::<i32>::new());
                // Crowded shards turned dense, the others kept hits.
                let dense = |d: &Dates| {
                    d.shards
                        .iter()
                        .map(|s| matches!(s, DateShard::Dense(_)))
                        .collect::<Vec<_>>()
                };
                match hits {
                    ..100 => assert!(dense(&dates).iter().all(|d| !d)),
                    50_000 => assert_eq!(dense(&dates), [true, false, false]),
                    _ => assert_eq!(dense(&dates), [true, true, false]),
                }
                if n > size {
                    dates.truncate(size);
                    assert_eq!(dates.shards.len(), 1);
                    assert_eq!(dates.dates(0..size), want[..size]);
                }
            }
        }
    }
}
