//! Contact lists: rank the listed people per practice, compare with an
//! earlier run, and write the run folder (per-practice CSV lists,
//! `list.parquet`, `manifest.json`) atomically.

pub mod changes;
mod csv_out;
pub mod manifest;
pub mod run_dir;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
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
use crate::dataset::columns::{days_to_date, PatientIds};
use crate::dataset::Patients;
use crate::exec::column::value_at;
use crate::exec::Outcomes;
use crate::pack::semantics::age_on;
use crate::pack::{Pack, Value};
use crate::plan::types::{DECIMAL_PRECISION, DECIMAL_SCALE};
use crate::plan::{OrderKeyPlan, Plan};

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

/// One ordering key of one person, typed for comparison.
#[derive(Debug, Clone)]
enum SortKey {
    Null,
    /// Ints, dates (days), booleans and scaled scores.
    Num(i128),
    Float(f64),
    Other(Value),
}

impl SortKey {
    fn of(v: Value) -> SortKey {
        match v {
            Value::Null => SortKey::Null,
            Value::Bool(b) => SortKey::Num(i128::from(b)),
            Value::Int(i) => SortKey::Num(i128::from(i)),
            Value::Date(d) => SortKey::Num(i128::from(crate::dataset::columns::date_to_days(d))),
            Value::Float(x) => SortKey::Float(x),
            other => SortKey::Other(other),
        }
    }

    /// NULL last whatever the direction; otherwise ascending or descending.
    fn compare(&self, other: &SortKey, descending: bool) -> Ordering {
        let o = match (self, other) {
            (SortKey::Null, SortKey::Null) => return Ordering::Equal,
            (SortKey::Null, _) => return Ordering::Greater,
            (_, SortKey::Null) => return Ordering::Less,
            (SortKey::Num(a), SortKey::Num(b)) => a.cmp(b),
            (SortKey::Float(a), SortKey::Float(b)) => a.total_cmp(b),
            (SortKey::Other(a), SortKey::Other(b)) => compare_values(a, b),
            _ => Ordering::Equal,
        };
        if descending {
            o.reverse()
        } else {
            o
        }
    }
}

fn compare_values(a: &Value, b: &Value) -> Ordering {
    use Value::*;
    match (a, b) {
        // Unknown values sort last whatever the direction.
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Greater,
        (_, Null) => Ordering::Less,
        (Bool(x), Bool(y)) => x.cmp(y),
        (Int(x), Int(y)) => x.cmp(y),
        (Float(x), Float(y)) => x.total_cmp(y),
        (Int(x), Float(y)) => (*x as f64).total_cmp(y),
        (Float(x), Int(y)) => x.total_cmp(&(*y as f64)),
        (Decimal(x), Decimal(y)) => x.cmp(y),
        (Str(x), Str(y)) => x.cmp(y),
        (Date(x), Date(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Ranks the listed people within each practice: tier first, then the
/// pack's order (default: score, highest first), then patient id.
pub fn rank(
    pack: &Pack,
    plan: &Plan,
    patients: &Patients,
    outcomes: &Outcomes,
    previous: Option<&PreviousTiers>,
) -> Vec<PracticeList> {
    rank_within(
        pack,
        plan,
        patients,
        outcomes,
        previous,
        &patients.practice_code,
        &|s| outcomes.listed(s),
    )
}

/// Ranks the listed people within each group of `group` (practice code,
/// or PCN code for the PCN-wide lists), in the same order as [`rank`].
pub fn rank_within(
    pack: &Pack,
    plan: &Plan,
    patients: &Patients,
    outcomes: &Outcomes,
    previous: Option<&PreviousTiers>,
    group: &crate::dataset::columns::TextColumn,
    who: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<PracticeList> {
    // Who is listed is found in parallel; slots stay in patients-table order.
    let listed: Vec<usize> = (0..outcomes.len())
        .into_par_iter()
        .filter(|&s| who(s))
        .collect();
    // Grouped by the practice code's dictionary key first (no text
    // compared per person), then by the code itself.
    let practice = group;
    let mut by_key: Vec<Vec<usize>> = vec![Vec::new(); practice.dictionary_len() + 1];
    for s in listed {
        let k = practice
            .key(outcomes.person(s))
            .unwrap_or(practice.dictionary_len());
        by_key[k].push(s);
    }
    let mut by_practice: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, slots) in by_key.into_iter().enumerate() {
        if slots.is_empty() {
            continue;
        }
        let code = if k < practice.dictionary_len() {
            practice.dictionary_value(k)
        } else {
            ""
        };
        by_practice.entry(code).or_default().extend(slots);
    }
    let order = &plan.order;
    // Keys of the person in slot `s`.
    let key = |s: usize, by: &OrderKeyPlan| -> SortKey {
        let i = outcomes.person(s);
        match *by {
            // Scores share one scale, so the scaled integers order them exactly.
            OrderKeyPlan::Score => SortKey::Num(outcomes.score[s]),
            OrderKeyPlan::Age(_) => {
                age_of(patients, i, plan).map_or(SortKey::Null, |a| SortKey::Num(i128::from(a)))
            }
            OrderKeyPlan::Feature(f) => SortKey::of(outcomes.feature_value(f, s)),
            OrderKeyPlan::Column(c) => SortKey::of(value_at(
                plan.columns[c].as_ref(),
                plan.physical.columns[c].ty,
                i,
            )),
        }
    };
    let tier_pos = |id: &str| pack.tiers.iter().position(|t| t.id == id);
    // Each practice's list is ranked on its own, in parallel; the order of
    // the lists (by practice code) and of each list does not depend on it.
    let practices: Vec<(&str, Vec<usize>)> = by_practice.into_iter().collect();
    practices
        .into_par_iter()
        .map(|(practice, people)| {
            // Order keys are computed once per person into one flat table
            // (a row of `order.len()` keys per person), not per comparison.
            let width = order.len();
            let keys: Vec<SortKey> = people
                .iter()
                .flat_map(|&i| order.iter().map(move |(k, _)| key(i, k)))
                .collect();
            let positions = match packed_order(&keys, width, order, &people, outcomes, patients) {
                Some(p) => p,
                None => {
                    let mut positions: Vec<usize> = (0..people.len()).collect();
                    // The patient id makes the order total, so an unstable sort is
                    // deterministic.
                    positions.sort_unstable_by(|&x, &y| {
                        let (a, b) = (people[x], people[y]);
                        let ta = outcomes.tier[a].unwrap_or(u16::MAX);
                        let tb = outcomes.tier[b].unwrap_or(u16::MAX);
                        ta.cmp(&tb)
                            .then_with(|| {
                                let (ka, kb) =
                                    (&keys[x * width..][..width], &keys[y * width..][..width]);
                                for (((_, descending), va), vb) in order.iter().zip(ka).zip(kb) {
                                    let o = va.compare(vb, *descending);
                                    if o != Ordering::Equal {
                                        return o;
                                    }
                                }
                                Ordering::Equal
                            })
                            .then_with(|| {
                                compare_ids(&patients.ids, outcomes.person(a), outcomes.person(b))
                            })
                    });
                    positions
                }
            };
            let entries = positions
                .into_iter()
                .map(|x| people[x])
                .enumerate()
                .map(|(r, slot)| {
                    let person = outcomes.person(slot);
                    let tier = outcomes.tier[slot].unwrap_or(0);
                    let change = previous.map(|prev| match prev.get(&patients.ids.text(person)) {
                        None => TierChange::New,
                        Some(old) => match tier_pos(old) {
                            None => TierChange::New,
                            Some(o) => match (tier as usize).cmp(&o) {
                                Ordering::Less => TierChange::Up,
                                Ordering::Greater => TierChange::Down,
                                Ordering::Equal => TierChange::Same,
                            },
                        },
                    });
                    ListEntry {
                        person,
                        slot,
                        rank: r as u32 + 1,
                        tier,
                        change,
                        age: age_of(patients, person, plan),
                    }
                })
                .collect();
            PracticeList {
                practice_code: practice.to_string(),
                entries,
            }
        })
        .collect()
}

/// An order key as an integer that sorts as [`SortKey::compare`] does
/// (NULL last in either direction), when there is one.
fn packed_key(k: &SortKey, descending: bool) -> Option<i128> {
    const LIMIT: i128 = 1 << 126;
    let v = match k {
        SortKey::Null => return Some(i128::MAX),
        SortKey::Num(v) => *v,
        // The bits `f64::total_cmp` compares.
        SortKey::Float(x) => {
            let b = x.to_bits() as i64;
            i128::from(b ^ (((b >> 63) as u64) >> 1) as i64)
        }
        SortKey::Other(_) => return None,
    };
    (-LIMIT < v && v < LIMIT).then_some(if descending { -v } else { v })
}

/// The ranking of one list as a sort of plain integer tuples (tier, up to
/// two order keys, integer patient id), when every key packs into an
/// integer: the same order as the general comparison, without a
/// comparison that looks anything up. `None`: use the general one.
fn packed_order(
    keys: &[SortKey],
    width: usize,
    order: &[(OrderKeyPlan, bool)],
    people: &[usize],
    outcomes: &Outcomes,
    patients: &Patients,
) -> Option<Vec<usize>> {
    let PatientIds::Int(ids) = &patients.ids else {
        return None;
    };
    if width > 2 {
        return None;
    }
    let mut rows: Vec<(u16, i128, i128, i64, u32)> = Vec::with_capacity(people.len());
    for (x, &slot) in people.iter().enumerate() {
        let mut k = [0i128; 2];
        for (j, (_, descending)) in order.iter().enumerate() {
            k[j] = packed_key(&keys[x * width + j], *descending)?;
        }
        rows.push((
            outcomes.tier[slot].unwrap_or(u16::MAX),
            k[0],
            k[1],
            ids.value(outcomes.person(slot)),
            x as u32,
        ));
    }
    // Ids are unique, so the position never decides.
    rows.sort_unstable();
    Some(rows.into_iter().map(|r| r.4 as usize).collect())
}

/// The last tie-break: patient ids in the same order whether they were
/// stored as integers (Parquet) or as text (CSV). See [`compare_id_text`].
fn compare_ids(ids: &PatientIds, a: usize, b: usize) -> Ordering {
    match ids {
        PatientIds::Int(x) => x.value(a).cmp(&x.value(b)),
        PatientIds::Text(x) => compare_id_text(x.value(a), x.value(b)),
    }
}

/// Text ids that are integers written plainly (`42`, `-7`; not `042` or
/// `+7`) compare as numbers, before any other id; other ids compare byte
/// by byte. So `9` < `10` < `A1` whether the file stored the ids as
/// integers or as text.
pub fn compare_id_text(a: &str, b: &str) -> Ordering {
    match (plain_integer(a), plain_integer(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The integer an id spells exactly as an integer prints, if any.
fn plain_integer(s: &str) -> Option<i64> {
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

fn age_of(patients: &Patients, i: usize, plan: &Plan) -> Option<i64> {
    let d = patients.date_of_birth.value(i);
    days_to_date(d).and_then(|dob| age_on(dob, plan.as_of))
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
    let mut one = String::new();
    for e in &list.entries {
        one.clear();
        outcomes.write_reasons(pack, plan, e.slot, &mut one);
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
    let schema = practice_batch(
        pack,
        patients,
        outcomes,
        &[],
        &StringArray::from(Vec::<&str>::new()),
        opts,
    )?
    .schema();
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
    /// Practices in flight at once.
    const WINDOW: usize = 32;
    run.subdir("lists")?;
    let heads = headings(pack, opts);
    let werr = |message: String| ListError::Write {
        file: "list.parquet".into(),
        message,
    };
    // The schema, from the batch of an empty list.
    let schema = practice_batch(
        pack,
        patients,
        outcomes,
        &[],
        &StringArray::from(Vec::<&str>::new()),
        opts,
    )?
    .schema();
    let file = run.file("list.parquet")?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_created_by(format!("strata {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props))
        .map_err(|e| werr(e.to_string()))?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(WINDOW);
    std::thread::scope(|s| {
        let encoder = s.spawn(move || -> Result<(), ListError> {
            for batch in rx {
                writer.write(&batch).map_err(|e| werr(e.to_string()))?;
            }
            writer.close().map_err(|e| werr(e.to_string()))?;
            Ok(())
        });
        let mut produced = Ok(());
        'windows: for window in lists.chunks(WINDOW) {
            let batches: Vec<Result<RecordBatch, ListError>> = window
                .par_iter()
                .map(|list| {
                    let reasons = reason_texts(pack, plan, outcomes, list);
                    let batch =
                        practice_batch(pack, patients, outcomes, &list.entries, &reasons, opts)?;
                    write_practice_list(run, ("", ""), &heads, pack, list, &batch, opts)?;
                    Ok(batch)
                })
                .collect();
            for batch in batches {
                match batch {
                    // A closed channel means the encoder failed: its error is reported.
                    Ok(b) => {
                        if tx.send(b).is_err() {
                            break 'windows;
                        }
                    }
                    Err(e) => {
                        produced = Err(e);
                        break 'windows;
                    }
                }
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
/// in list order): the whole file is formatted into one buffer
/// ([`csv_out::CsvBuf`]) and written at once.
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
    let mut out = csv_out::CsvBuf::with_capacity(160 * (list.entries.len() + 1));
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
    let features: Vec<(&ArrayRef, crate::pack::Type)> = pack
        .list
        .display
        .iter()
        .zip(&batch.columns()[FIXED..FIXED + display])
        .map(|(&f, a)| (a, pack.features[f].ty))
        .collect();
    let text_cell = |out: &mut csv_out::CsvBuf, text: &str| out.text(&inert(text));
    // Lists are in score order: the last score's text is usually the next one's.
    let mut last_score: Option<(i128, String)> = None;
    let mut buf = String::new();
    for (r, e) in list.entries.iter().enumerate() {
        out.int(e.rank);
        match ids.as_primitive_opt::<arrow::datatypes::Int64Type>() {
            Some(ints) => out.int(ints.value(r)),
            None => text_cell(&mut out, ids.as_string::<i32>().value(r)),
        }
        text_cell(&mut out, practice.value(r));
        text_cell(&mut out, pcn.value(r));
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
        text_cell(&mut out, sex.value(r));
        if imd.is_valid(r) {
            out.int(imd.value(r));
        } else {
            out.empty();
        }
        for (a, ty) in &features {
            buf.clear();
            crate::exec::column::write_value(a.as_ref(), *ty, r, &mut buf);
            // Numbers stay numbers (a negative one is not a formula).
            if *ty == crate::pack::Type::Str {
                text_cell(&mut out, &buf);
            } else {
                out.text(&buf);
            }
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
    }
    use std::io::Write as _;
    let mut file = run.file(&rel)?;
    file.write_all(&out.bytes)
        .and_then(|()| file.flush())
        .map_err(|e| werr(e.to_string()))
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
        Arc::new(patients.practice_code.take_strings(&rows)),
    );
    push(
        contract::PCN_CODE,
        Arc::new(patients.pcn_code.take_strings(&rows)),
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
    push(contract::SEX, Arc::new(patients.sex.take_strings(&rows)));
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

#[cfg(test)]
mod id_order_tests {
    use super::compare_id_text;
    use std::cmp::Ordering::*;

    #[test]
    fn text_ids_order_as_integer_ids_do() {
        assert_eq!(compare_id_text("9", "10"), Less);
        assert_eq!(compare_id_text("-3", "2"), Less);
        assert_eq!(compare_id_text("10", "A1"), Less);
        assert_eq!(compare_id_text("B", "A1"), Greater);
        // Not plain integers: compared as text.
        assert_eq!(compare_id_text("010", "9"), Greater);
        assert_eq!(compare_id_text("010", "09"), Less);
        assert_eq!(compare_id_text("42", "42"), Equal);
    }
}

#[cfg(test)]
mod packed_order_tests {
    use super::{packed_key, SortKey};

    /// Within one order key every value is of one kind (or NULL): packed
    /// keys must order such values exactly as `SortKey::compare` does, in
    /// both directions, NULL last.
    #[test]
    fn packed_keys_order_as_sort_keys_do() {
        let nums = [
            0i128,
            -1,
            1,
            -7,
            80,
            120,
            10_000_000_000,
            -(1 << 100),
            1 << 100,
        ];
        let floats = [
            0.0f64,
            -0.0,
            1.5,
            -1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::NAN,
        ];
        let kinds: [Vec<SortKey>; 2] = [
            nums.iter()
                .map(|&n| SortKey::Num(n))
                .chain([SortKey::Null])
                .collect(),
            floats
                .iter()
                .map(|&x| SortKey::Float(x))
                .chain([SortKey::Null])
                .collect(),
        ];
        for values in &kinds {
            for a in values {
                for b in values {
                    for descending in [false, true] {
                        let packed = packed_key(a, descending)
                            .unwrap()
                            .cmp(&packed_key(b, descending).unwrap());
                        assert_eq!(
                            packed,
                            a.compare(b, descending),
                            "{a:?} vs {b:?}, {descending}"
                        );
                    }
                }
            }
        }
        // Beyond what packs exactly: the general comparison is used.
        assert_eq!(packed_key(&SortKey::Num(i128::MAX), false), None);
        assert_eq!(packed_key(&SortKey::Num(i128::MIN + 1), true), None);
    }
}
