//! Contact lists: rank the listed people per practice, compare with an
//! earlier run, and write the run folder (per-practice CSV lists,
//! `list.parquet`, `manifest.json`) atomically.

pub mod changes;
mod csv_out;
pub mod manifest;
mod parquet_out;
mod rank;
pub mod run_dir;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema};
use rayon::prelude::*;

use crate::contract;
use crate::dataset::Patients;
use crate::exec::column::Cells;
use crate::exec::Outcomes;
use crate::pack::Pack;
use crate::plan::types::{DECIMAL_PRECISION, DECIMAL_SCALE};
use crate::plan::Plan;

pub use rank::{compare_id_text, rank, rank_within};
pub use run_dir::{OutputLock, RunDir, RunDirError};

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("writing {file}: {message}")]
    Write { file: String, message: String },
    #[error("{path}: cannot read the previous run's list.parquet: {message}")]
    Previous { path: String, message: String },
    #[error(
        "{root}: another strata run is writing here ({holder}); wait for it to finish, or \
         remove {root}/.strata.lock if that run is no longer going"
    )]
    Locked { root: String, holder: String },
}

/// How a person's tier moved since the previous run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierChange {
    Up,
    Down,
    Same,
    New,
}

impl TierChange {
    pub fn as_str(self) -> &'static str {
        match self {
            TierChange::Up => "up",
            TierChange::Down => "down",
            TierChange::Same => "same",
            TierChange::New => "new",
        }
    }
}

/// One ranked row of a contact list.
#[derive(Debug, Clone)]
pub struct ListEntry {
    /// Row in the patients table.
    pub person: usize,
    /// Slot in the run's outcomes.
    pub slot: usize,
    pub rank: u32,
    pub tier: u16,
    pub change: Option<TierChange>,
    /// Age on the as-of date (computed once, for ranking and both outputs).
    pub age: Option<i64>,
}

/// The ranked contact list of one practice.
#[derive(Debug, Clone)]
pub struct PracticeList {
    pub practice_code: String,
    pub entries: Vec<ListEntry>,
}

impl PracticeList {
    /// How many people the list holds in each of `tiers` tiers.
    pub fn tier_counts(&self, tiers: usize) -> Vec<u64> {
        let mut counts = vec![0u64; tiers];
        for e in &self.entries {
            counts[usize::from(e.tier)] += 1;
        }
        counts
    }
}

/// The previous run's tiers by patient id (as text).
pub type PreviousTiers = HashMap<String, String>;

/// Reads `list.parquet` of an earlier run.
pub fn read_previous(run: &Path) -> Result<PreviousTiers, ListError> {
    let path = run.join("list.parquet");
    let err = |message: String| ListError::Previous {
        path: run.display().to_string(),
        message,
    };
    let file = std::fs::File::open(&path).map_err(|e| err(e.to_string()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| err(e.to_string()))?
        .build()
        .map_err(|e| err(e.to_string()))?;
    let mut out = HashMap::new();
    for batch in reader {
        let batch = batch.map_err(|e| err(e.to_string()))?;
        let (Some(ids), Some(tiers)) = (
            batch.column_by_name(contract::PATIENT_ID),
            batch.column_by_name("tier"),
        ) else {
            return Err(err("no patient_id and tier columns".into()));
        };
        let ids = arrow::compute::cast(ids, &DataType::Utf8).map_err(|e| err(e.to_string()))?;
        let ids = ids.as_string::<i32>();
        let tiers = tiers
            .as_string_opt::<i32>()
            .ok_or_else(|| err("tier is not text".into()))?;
        for i in 0..ids.len() {
            out.insert(ids.value(i).to_string(), tiers.value(i).to_string());
        }
    }
    Ok(out)
}

/// What a run's lists carry besides the pack's columns.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListOptions {
    /// Compared with a previous run: `new_since_previous`, `tier_change`.
    pub with_previous: bool,
    /// Calls a practice makes in a week: `call_this_week` marks the first
    /// this many people of each practice's list.
    pub capacity: Option<u32>,
}

impl ListOptions {
    fn call_this_week(&self, rank: u32) -> Option<bool> {
        self.capacity.map(|c| rank <= c)
    }
}

/// The column headings of a list, in order.
pub fn headings(pack: &Pack, opts: &ListOptions) -> Vec<String> {
    let mut h: Vec<String> = [
        "rank",
        contract::PATIENT_ID,
        contract::PRACTICE_CODE,
        contract::PCN_CODE,
        "tier",
        "tier_label",
        "score",
        "age",
        contract::SEX,
        contract::IMD_DECILE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    h.extend(
        pack.list
            .display
            .iter()
            .map(|&f| pack.features[f].name.clone()),
    );
    h.push("reasons".into());
    if opts.capacity.is_some() {
        h.push("call_this_week".into());
    }
    if opts.with_previous {
        h.push("new_since_previous".into());
        h.push("tier_change".into());
    }
    h
}

/// Each listed person's reasons as the lists show them (`; `-joined), in
/// list order.
fn reason_texts(pack: &Pack, plan: &Plan, outcomes: &Outcomes, list: &PracticeList) -> StringArray {
    let mut texts =
        arrow::array::StringBuilder::with_capacity(list.entries.len(), 64 * list.entries.len());
    let (mut one, mut scratch) = (String::new(), String::new());
    for e in &list.entries {
        one.clear();
        outcomes.write_reasons(pack, plan, e.slot, &mut one, &mut scratch);
        texts.append_value(&one);
    }
    texts.finish()
}

/// The rows of `list.parquet`, practice by practice, without writing
/// anything: its schema, and one batch a practice with anyone listed.
pub fn list_batches(
    pack: &Pack,
    plan: &Plan,
    patients: &Patients,
    outcomes: &Outcomes,
    lists: &[PracticeList],
    opts: &ListOptions,
) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>), ListError> {
    let schema = list_schema(pack, patients, outcomes, opts)?;
    let batches = lists
        .par_iter()
        .filter(|l| !l.entries.is_empty())
        .map(|list| {
            let reasons = reason_texts(pack, plan, outcomes, list);
            practice_batch(pack, patients, outcomes, &list.entries, &reasons, opts)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// Writes `lists/<practice>.csv` for every practice and `list.parquet`.
///
/// Practices are taken a window at a time, in order: each practice's
/// reasons are rendered once, its CSV written and its Parquet batch built,
/// in parallel; a thread of its own encodes the batches into
/// `list.parquet` meanwhile. Memory is bounded by the window, not the list.
pub fn write_lists(
    run: &RunDir,
    pack: &Pack,
    plan: &Plan,
    patients: &Patients,
    outcomes: &Outcomes,
    lists: &[PracticeList],
    opts: &ListOptions,
) -> Result<(), ListError> {
    /// Practices in flight at once: up to 32, and no more than hold a
    /// quarter of a million listed people between them (one practice at
    /// least). The window's rows are all held at once, as Arrow batches;
    /// at 62M people in three practices, three whole lists were 1.4 GB.
    const WINDOW: usize = 32;
    const WINDOW_ROWS: usize = 1 << 18;
    /// Rows in a row group of `list.parquet`: the encoder holds a whole
    /// group while it fills (the default, a million rows, was 100 MB).
    const LIST_ROW_GROUP: usize = 1 << 18;
    run.subdir("lists")?;
    let heads = headings(pack, opts);
    let werr = |message: String| ListError::Write {
        file: "list.parquet".into(),
        message,
    };
    let schema = list_schema(pack, patients, outcomes, opts)?;
    let file = run.file("list.parquet")?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        // Nobody filters on the reasons' minimum and maximum: not worked out.
        .set_column_statistics_enabled(
            parquet::schema::types::ColumnPath::from("reasons"),
            parquet::file::properties::EnabledStatistics::None,
        )
        // Every id differs: a dictionary would only be built to be dropped.
        .set_column_dictionary_enabled(
            parquet::schema::types::ColumnPath::from(contract::PATIENT_ID),
            false,
        )
        .set_created_by(format!("strata {}", env!("CARGO_PKG_VERSION")))
        .set_max_row_group_row_count(Some(LIST_ROW_GROUP))
        .build();
    let max_rows = props
        .max_row_group_row_count()
        .unwrap_or(parquet::file::properties::DEFAULT_MAX_ROW_GROUP_ROW_COUNT);
    let writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props))
        .map_err(|e| werr(e.to_string()))?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(WINDOW);
    std::thread::scope(|s| {
        let schema = &schema;
        let encoder = s.spawn(move || -> Result<(), ListError> {
            parquet_out::encode(writer, schema, max_rows, rx).map_err(|e| werr(e.to_string()))
        });
        let mut produced = Ok(());
        let mut rest = lists;
        'windows: while !rest.is_empty() {
            let mut take = 1;
            let mut rows = rest[0].entries.len();
            while take < rest.len().min(WINDOW) && rows + rest[take].entries.len() <= WINDOW_ROWS {
                rows += rest[take].entries.len();
                take += 1;
            }
            let (window, after) = rest.split_at(take);
            rest = after;
            // The window's batches first, handed to the encoder in order,
            // then its CSVs written from them while the encoder works.
            let batches: Vec<Result<RecordBatch, ListError>> = window
                .par_iter()
                .map(|list| {
                    let reasons = reason_texts(pack, plan, outcomes, list);
                    practice_batch(pack, patients, outcomes, &list.entries, &reasons, opts)
                })
                .collect();
            let mut built = Vec::with_capacity(batches.len());
            for batch in batches {
                match batch {
                    Ok(b) => built.push(b),
                    Err(e) => {
                        produced = Err(e);
                        break 'windows;
                    }
                }
            }
            for b in &built {
                // A closed channel means the encoder failed: its error is reported.
                if tx.send(b.clone()).is_err() {
                    break 'windows;
                }
            }
            let written = window.par_iter().zip(&built).try_for_each(|(list, batch)| {
                write_practice_list(run, ("", ""), &heads, pack, list, batch, opts)
            });
            if let Err(e) = written {
                produced = Err(e);
                break 'windows;
            }
        }
        drop(tx);
        let encoded = encoder
            .join()
            .unwrap_or_else(|_| Err(werr("the encoder thread failed".into())));
        produced.and(encoded)
    })
}

/// Writes `lists/<practice>.csv` from the practice's `list.parquet` rows
/// (`batch`, see [`practice_batch`]: the people's cells already gathered
/// in list order), formatted into a buffer ([`csv_out::CsvBuf`]) written
/// out each time it holds 4 MiB, so a list of millions of people does not
/// take its whole size in memory.
#[allow(clippy::too_many_arguments)]
fn write_practice_list(
    run: &RunDir,
    (prefix, suffix): (&str, &str),
    heads: &[String],
    pack: &Pack,
    list: &PracticeList,
    batch: &RecordBatch,
    opts: &ListOptions,
) -> Result<(), ListError> {
    let rel = format!(
        "lists/{prefix}{}{suffix}.csv",
        safe_file_name(&list.practice_code)
    );
    let werr = |message: String| ListError::Write {
        file: rel.clone(),
        message,
    };
    const FLUSH: usize = 4 << 20;
    use std::io::Write as _;
    let mut file = run.file(&rel)?;
    let mut out =
        csv_out::CsvBuf::with_capacity((160 * (list.entries.len() + 1)).min(FLUSH + (64 << 10)));
    for h in heads {
        out.text(h);
    }
    out.end();
    // Cells repeated on many rows are written once.
    let tiers: Vec<(Vec<u8>, Vec<u8>)> = pack
        .tiers
        .iter()
        .map(|t| {
            (
                csv_out::CsvBuf::rendered(&inert(&t.id)),
                csv_out::CsvBuf::rendered(&inert(&t.label)),
            )
        })
        .collect();
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| werr(format!("no {name} column in the list")))
    };
    let texts = |name: &str| -> Result<&StringArray, ListError> {
        column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| werr(format!("{name} is not text")))
    };
    let ids = column(contract::PATIENT_ID)?;
    let (practice, pcn, sex) = (
        texts(contract::PRACTICE_CODE)?,
        texts(contract::PCN_CODE)?,
        texts(contract::SEX)?,
    );
    // The pack's columns follow the ten fixed ones, then the reasons (by
    // position: a feature may share a name with a fixed column).
    const FIXED: usize = 10;
    let display = pack.list.display.len();
    let reasons = batch
        .columns()
        .get(FIXED + display)
        .and_then(|a| a.as_string_opt::<i32>())
        .ok_or_else(|| werr("no reasons column in the list".into()))?;
    let score = column("score")?
        .as_primitive_opt::<arrow::datatypes::Decimal128Type>()
        .ok_or_else(|| werr("score is not a decimal".into()))?;
    let imd = column(contract::IMD_DECILE)?
        .as_primitive_opt::<arrow::datatypes::Int32Type>()
        .ok_or_else(|| werr("imd_decile is not an integer".into()))?;
    let features: Vec<Cells> = pack
        .list
        .display
        .iter()
        .zip(&batch.columns()[FIXED..FIXED + display])
        .map(|(&f, a)| Cells::of(a.as_ref(), pack.features[f].ty))
        .collect();
    let text_cell = |out: &mut csv_out::CsvBuf, text: &str| out.text(&inert(text));
    // The practice and PCN are the same on every row, sex takes a few values.
    let (mut practice_cells, mut pcn_cells, mut sex_cells) = (
        RepeatedCells::default(),
        RepeatedCells::default(),
        RepeatedCells::default(),
    );
    // Lists are in score order: the last score's text is usually the next one's.
    let mut last_score: Option<(i128, String)> = None;
    let mut buf = String::new();
    for (r, e) in list.entries.iter().enumerate() {
        out.int(e.rank);
        match ids.as_primitive_opt::<arrow::datatypes::Int64Type>() {
            Some(ints) => out.int(ints.value(r)),
            None => text_cell(&mut out, ids.as_string::<i32>().value(r)),
        }
        practice_cells.write(&mut out, practice.value(r));
        pcn_cells.write(&mut out, pcn.value(r));
        let (tier_id, tier_label) = &tiers[e.tier as usize];
        out.cell(tier_id);
        out.cell(tier_label);
        let scaled = score.value(r);
        match &last_score {
            Some((s, text)) if *s == scaled => out.text(text),
            _ => {
                let text = crate::plan::types::scaled_to_decimal(scaled).to_string();
                out.text(&text);
                last_score = Some((scaled, text));
            }
        }
        match e.age {
            Some(a) => out.int(a),
            None => out.empty(),
        }
        sex_cells.write(&mut out, sex.value(r));
        if imd.is_valid(r) {
            out.int(imd.value(r));
        } else {
            out.empty();
        }
        for cells in &features {
            feature_cell(cells, &mut out, r, &mut buf);
        }
        text_cell(&mut out, reasons.value(r));
        if let Some(call) = opts.call_this_week(e.rank) {
            out.cell(if call { b"yes" } else { b"no" });
        }
        if opts.with_previous {
            let change = e.change.unwrap_or(TierChange::New);
            out.cell(if change == TierChange::New {
                b"yes"
            } else {
                b"no"
            });
            out.cell(change.as_str().as_bytes());
        }
        out.end();
        if out.bytes.len() >= FLUSH {
            file.write_all(&out.bytes)
                .map_err(|e| werr(e.to_string()))?;
            out.bytes.clear();
        }
    }
    file.write_all(&out.bytes)
        .and_then(|()| file.flush())
        .map_err(|e| werr(e.to_string()))
}

/// Row `r` of a displayed feature as a CSV cell: as
/// [`crate::exec::column::Cells::write`] shows it, booleans and integers
/// without a `String` on the way; texts are made inert, numbers stay
/// numbers (a negative one is not a formula).
fn feature_cell(cells: &Cells, out: &mut csv_out::CsvBuf, r: usize, buf: &mut String) {
    match *cells {
        Cells::Bool(a) if a.is_valid(r) => {
            out.cell(crate::pack::expr::yes_no(a.value(r)).as_bytes())
        }
        Cells::Int(a) if a.is_valid(r) => out.int(a.value(r)),
        Cells::Str(a) if a.is_valid(r) => out.text(&inert(a.value(r))),
        _ => {
            buf.clear();
            cells.write(r, buf);
            out.text(buf);
        }
    }
}

/// The written form of the last few distinct texts of a column that
/// repeats a handful of values down a list (each rendered once).
#[derive(Default)]
struct RepeatedCells {
    seen: Vec<(String, Vec<u8>)>,
}

impl RepeatedCells {
    /// Texts remembered; others are rendered every time.
    const KEEP: usize = 8;

    fn write(&mut self, out: &mut csv_out::CsvBuf, text: &str) {
        if let Some((_, cell)) = self.seen.iter().find(|(t, _)| t == text) {
            out.cell(cell);
        } else if self.seen.len() < Self::KEEP {
            let cell = csv_out::CsvBuf::rendered(&inert(text));
            out.cell(&cell);
            self.seen.push((text.to_string(), cell));
        } else {
            out.text(&inert(text));
        }
    }
}

/// Writes `lists/pcn-<code>.csv` for every PCN: all its practices' listed
/// people, ranked within the PCN (CSV only: `list.parquet` already holds
/// everyone with their PCN). No `call_this_week` column: capacity is a
/// practice's.
pub fn write_pcn_lists(
    run: &RunDir,
    pack: &Pack,
    plan: &Plan,
    patients: &Patients,
    outcomes: &Outcomes,
    pcn_lists: &[PracticeList],
    with_previous: bool,
) -> Result<(), ListError> {
    let opts = ListOptions {
        with_previous,
        capacity: None,
    };
    let affix = |code: &str| {
        if code.is_empty() {
            ("pcn-none", "")
        } else {
            ("pcn-", "")
        }
    };
    write_csv_lists(run, pack, plan, patients, outcomes, pcn_lists, &opts, affix)
}

/// Writes `lists/<practice>-recently-contacted.csv`: people who would be
/// on the practice's list but for a recent call, ranked as the list is,
/// so they never silently vanish (and are never on the call list).
pub fn write_recently_contacted(
    run: &RunDir,
    pack: &Pack,
    plan: &Plan,
    patients: &Patients,
    outcomes: &Outcomes,
    lists: &[PracticeList],
) -> Result<(), ListError> {
    let affix = |_: &str| ("", "-recently-contacted");
    let opts = ListOptions::default();
    write_csv_lists(run, pack, plan, patients, outcomes, lists, &opts, affix)
}

/// Writes each list as `lists/<prefix><code><suffix>.csv` only (no
/// Parquet), in parallel; `affix` gives the prefix and suffix for a code.
#[allow(clippy::too_many_arguments)]
fn write_csv_lists(
    run: &RunDir,
    pack: &Pack,
    plan: &Plan,
    patients: &Patients,
    outcomes: &Outcomes,
    lists: &[PracticeList],
    opts: &ListOptions,
    affix: impl Fn(&str) -> (&'static str, &'static str) + Sync,
) -> Result<(), ListError> {
    let heads = headings(pack, opts);
    lists.par_iter().try_for_each(|list| {
        let reasons = reason_texts(pack, plan, outcomes, list);
        let batch = practice_batch(pack, patients, outcomes, &list.entries, &reasons, opts)?;
        write_practice_list(
            run,
            affix(&list.practice_code),
            &heads,
            pack,
            list,
            &batch,
            opts,
        )
    })
}

/// Text for a CSV cell a spreadsheet will open: a cell beginning with
/// `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with `'` so
/// it is shown as text and never run as a formula (OWASP's advice on CSV
/// injection). Only text columns go through it: numbers stay numbers.
pub fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Practice codes become file names; anything but letters, digits, `-` and `_` is replaced.
pub fn safe_file_name(code: &str) -> String {
    let s: String = code
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".into()
    } else {
        s
    }
}

/// The schema of `list.parquet`: that of an empty list's batch.
fn list_schema(
    pack: &Pack,
    patients: &Patients,
    outcomes: &Outcomes,
    opts: &ListOptions,
) -> Result<arrow::datatypes::SchemaRef, ListError> {
    let no_reasons = StringArray::from(Vec::<&str>::new());
    Ok(practice_batch(pack, patients, outcomes, &[], &no_reasons, opts)?.schema())
}

/// One practice's rows of `list.parquet`.
fn practice_batch(
    pack: &Pack,
    patients: &Patients,
    outcomes: &Outcomes,
    entries: &[ListEntry],
    reasons: &StringArray,
    opts: &ListOptions,
) -> Result<RecordBatch, ListError> {
    let rows = UInt32Array::from(entries.iter().map(|e| e.person as u32).collect::<Vec<_>>());
    let slots = UInt32Array::from(entries.iter().map(|e| e.slot as u32).collect::<Vec<_>>());
    let werr = |message: String| ListError::Write {
        file: "list.parquet".into(),
        message,
    };
    let pick = |a: &dyn Array| take(a, &rows, None).map_err(|e| werr(e.to_string()));
    let mut fields: Vec<Field> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut push = |name: &str, a: ArrayRef| {
        fields.push(Field::new(name, a.data_type().clone(), true));
        arrays.push(a);
    };
    push(
        "rank",
        Arc::new(Int32Array::from(
            entries.iter().map(|e| e.rank as i32).collect::<Vec<_>>(),
        )),
    );
    push(
        contract::PATIENT_ID,
        pick(patients.ids.as_array().as_ref())?,
    );
    push(
        contract::PRACTICE_CODE,
        Arc::new(patients.practice_code.take_strings(rows.values())),
    );
    push(
        contract::PCN_CODE,
        Arc::new(patients.pcn_code.take_strings(rows.values())),
    );
    push(
        "tier",
        Arc::new(StringArray::from_iter_values(
            entries
                .iter()
                .map(|e| pack.tiers[e.tier as usize].id.as_str()),
        )),
    );
    push(
        "tier_label",
        Arc::new(StringArray::from_iter_values(
            entries
                .iter()
                .map(|e| pack.tiers[e.tier as usize].label.as_str()),
        )),
    );
    push(
        "score",
        Arc::new(
            Decimal128Array::from(
                entries
                    .iter()
                    .map(|e| outcomes.score[e.slot])
                    .collect::<Vec<_>>(),
            )
            .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
            .map_err(|e| werr(e.to_string()))?,
        ),
    );
    push(
        "age",
        Arc::new(Int64Array::from(
            entries.iter().map(|e| e.age).collect::<Vec<_>>(),
        )),
    );
    push(
        contract::SEX,
        Arc::new(patients.sex.take_strings(rows.values())),
    );
    push(contract::IMD_DECILE, pick(&patients.imd_decile)?);
    for &f in &pack.list.display {
        let column = match &outcomes.features[f] {
            Some(a) => take(a.as_ref(), &slots, None).map_err(|e| werr(e.to_string()))?,
            None => arrow::array::new_null_array(
                &crate::plan::types::arrow_type(pack.features[f].ty),
                entries.len(),
            ),
        };
        push(&pack.features[f].name, column);
    }
    push("reasons", Arc::new(reasons.clone()));
    if opts.capacity.is_some() {
        push(
            "call_this_week",
            Arc::new(BooleanArray::from(
                entries
                    .iter()
                    .map(|e| opts.call_this_week(e.rank))
                    .collect::<Vec<_>>(),
            )),
        );
    }
    if opts.with_previous {
        push(
            "new_since_previous",
            Arc::new(BooleanArray::from(
                entries
                    .iter()
                    .map(|e| e.change == Some(TierChange::New))
                    .collect::<Vec<_>>(),
            )),
        );
        push(
            "tier_change",
            Arc::new(StringArray::from_iter_values(
                entries
                    .iter()
                    .map(|e| e.change.unwrap_or(TierChange::New).as_str()),
            )),
        );
    }
    let schema = Arc::new(Schema::new(fields));
    RecordBatch::try_new(schema, arrays).map_err(|e| werr(e.to_string()))
}
