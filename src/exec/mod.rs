//! Execution: rayon over Arrow record batches, from events to per-person
//! aggregates, features, points, tiers and reasons.
//!
//! Two phases. The [`scan`] makes one fused pass over each event table and
//! leaves per-person accumulators. Then people are evaluated in chunks, in
//! parallel: population, features (in dependency order), rules and the
//! exact decimal score, overrides, exclusions, tiers. Every step is
//! deterministic per person, so results do not depend on the thread count.

pub mod column;
pub mod eval;
pub mod scan;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::compute::concat;
use rayon::prelude::*;
use rust_decimal::Decimal;

use crate::dataset::{Dataset, DatasetError, Patients};
use crate::pack::semantics::{self, Facts};
use crate::pack::{Pack, Type, Value};
use crate::plan::types::{scaled_to_decimal, DECIMAL_SCALE};
use crate::plan::Plan;
use column::{value_at, Column};
use eval::{tri_state, true_mask, Chunk, EvalError};
use scan::{ScanResult, TableCounts};

pub use crate::pack::semantics::Forced;

/// People per evaluation chunk.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// Whose outcomes [`execute`] keeps once everyone has been evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Only people on a list (what a run writes); counts cover everyone.
    Listed,
    /// Everyone, slot = patients-table row (for tests and audits).
    Everyone,
}

/// In a tier, not forced off, but left off by an exclusion that reads the
/// contacts table: listed but for a recent call.
pub fn recently_contacted(plan: &Plan, d: &semantics::Decision) -> bool {
    d.in_population
        && d.tier.is_some()
        && !matches!(d.forced, Some((_, Forced::Out)))
        && d.excluded_by
            .is_some_and(|x| plan.contact_exclusions.get(x).copied().unwrap_or(false))
}

/// What was decided about one person, one byte each ([`Outcomes::fate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    OutsidePopulation,
    Listed,
    /// In the population, in no tier.
    NoTier,
    /// Forced off the list by this override.
    ForcedOut(usize),
    /// Left off by this exclusion.
    Excluded(usize),
}

impl Fate {
    const FORCED: u8 = 3;
    /// Overrides get codes 3..=127, exclusions 128..=255.
    const EXCLUDED: u8 = 128;

    fn code(d: &semantics::Decision) -> u8 {
        if !d.in_population {
            0
        } else if let Some((o, Forced::Out)) = d.forced {
            Fate::FORCED.saturating_add(o.min(124) as u8)
        } else if let Some(x) = d.excluded_by {
            Fate::EXCLUDED.saturating_add(x.min(127) as u8)
        } else if d.tier.is_some() {
            1
        } else {
            2
        }
    }

    pub fn of(code: u8) -> Fate {
        match code {
            0 => Fate::OutsidePopulation,
            1 => Fate::Listed,
            2 => Fate::NoTier,
            c if c < Fate::EXCLUDED => Fate::ForcedOut(usize::from(c - Fate::FORCED)),
            c => Fate::Excluded(usize::from(c - Fate::EXCLUDED)),
        }
    }
}

/// Counts over everyone evaluated, for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub in_population: u64,
    pub listed: u64,
    /// In the population, not forced out or excluded, and in no tier.
    pub not_in_any_tier: u64,
    pub forced_in: u64,
    /// Per override: people it forced out.
    pub forced_out: Vec<u64>,
    /// Per exclusion: people it excluded (not forced out first).
    pub excluded: Vec<u64>,
    /// Per rule, among the population: fired, and NULL (missing data).
    pub rule_fired: Vec<u64>,
    pub rule_unknown: Vec<u64>,
}

impl Tally {
    fn new(plan: &Plan) -> Tally {
        Tally {
            forced_out: vec![0; plan.overrides.len()],
            excluded: vec![0; plan.exclusions.len()],
            rule_fired: vec![0; plan.rules.len()],
            rule_unknown: vec![0; plan.rules.len()],
            ..Tally::default()
        }
    }

    fn add(&mut self, o: &Tally) {
        self.in_population += o.in_population;
        self.listed += o.listed;
        self.not_in_any_tier += o.not_in_any_tier;
        self.forced_in += o.forced_in;
        let sum = |a: &mut Vec<u64>, b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        sum(&mut self.forced_out, &o.forced_out);
        sum(&mut self.excluded, &o.excluded);
        sum(&mut self.rule_fired, &o.rule_fired);
        sum(&mut self.rule_unknown, &o.rule_unknown);
    }

    /// Counts one person's decision.
    fn count(&mut self, d: &semantics::Decision) {
        if !d.in_population {
            return;
        }
        self.in_population += 1;
        match d.forced {
            Some((o, Forced::Out)) => {
                self.forced_out[o] += 1;
                return;
            }
            Some((_, Forced::In)) => self.forced_in += 1,
            None => {}
        }
        if let Some(x) = d.excluded_by {
            self.excluded[x] += 1;
        } else if d.tier.is_some() {
            self.listed += 1;
        } else {
            self.not_in_any_tier += 1;
        }
    }
}

/// Everything the engine decided about the people it kept (see [`Keep`]),
/// one slot each in patients-table order, plus counts over everyone.
#[derive(Debug)]
pub struct Outcomes {
    /// The patients-table row of each slot; `None` when every person is
    /// kept (slot = row).
    people: Option<Vec<u32>>,
    /// People evaluated (the patients table's rows).
    pub in_table: usize,
    pub tally: Tally,
    /// What was decided about each patients-table row (see [`Fate`]), for
    /// everyone evaluated: why someone listed last time is not now.
    pub fate: Vec<u8>,
    pub in_population: Vec<bool>,
    /// Feature arrays (one entry per slot) in the pack's feature order;
    /// `None` for features nothing reads after evaluation (see
    /// `PlannedFeature::keep`).
    pub features: Vec<Option<ArrayRef>>,
    pub feature_types: Vec<Type>,
    /// Per rule: TRUE fired, FALSE not, NULL unknown (missing data).
    pub rules: Vec<BooleanArray>,
    /// Score as a scaled integer (scale 10).
    pub score: Vec<i128>,
    /// The deciding override (index) and its direction.
    pub forced: Vec<Option<(u16, Forced)>>,
    pub excluded_by: Vec<Option<u16>>,
    pub tier: Vec<Option<u16>>,
    pub tables: Vec<TableCounts>,
}

impl Outcomes {
    /// Slots kept.
    pub fn len(&self) -> usize {
        self.in_population.len()
    }

    pub fn is_empty(&self) -> bool {
        self.in_population.is_empty()
    }

    /// Whether patients-table row `row` is in the population.
    #[inline]
    pub fn row_in_population(&self, row: usize) -> bool {
        self.fate
            .get(row)
            .is_some_and(|&f| Fate::of(f) != Fate::OutsidePopulation)
    }

    /// The patients-table row of slot `s`.
    #[inline]
    pub fn person(&self, s: usize) -> usize {
        match &self.people {
            Some(p) => p[s] as usize,
            None => s,
        }
    }

    /// The slot of patients-table row `row`, if that person was kept.
    pub fn slot_of(&self, row: usize) -> Option<usize> {
        match &self.people {
            Some(p) => p.binary_search(&(row as u32)).ok(),
            None => (row < self.len()).then_some(row),
        }
    }

    /// What was decided about the person in slot `i`.
    fn decision(&self, i: usize) -> semantics::Decision {
        semantics::Decision {
            in_population: self.in_population[i],
            forced: self.forced[i].map(|(o, f)| (o as usize, f)),
            excluded_by: self.excluded_by[i].map(usize::from),
            tier: self.tier[i].map(usize::from),
        }
    }

    /// Whether slot `i` would be listed but for a recent call.
    pub fn recently_contacted(&self, plan: &Plan, i: usize) -> bool {
        recently_contacted(plan, &self.decision(i))
    }

    /// Whether the person in slot `i` is on a contact list.
    pub fn listed(&self, i: usize) -> bool {
        self.decision(i).listed()
    }

    pub fn feature_value(&self, f: usize, i: usize) -> Value {
        match &self.features[f] {
            Some(a) => value_at(a.as_ref(), self.feature_types[f], i),
            None => Value::Null,
        }
    }

    /// Appends feature `f` of person `i` as a list cell shows it: as the
    /// value's `Display` writes it, NULL as nothing. The common types are
    /// written straight from their arrays (this runs for every cell of
    /// every list); the others go through [`Value`].
    pub fn write_feature(&self, f: usize, i: usize, out: &mut String) {
        if let Some(a) = &self.features[f] {
            column::write_value(a.as_ref(), self.feature_types[f], i, out);
        }
    }

    pub fn score_decimal(&self, i: usize) -> Decimal {
        scaled_to_decimal(self.score[i])
    }

    /// Reason texts for person `i`: a forced-in override's reason first, then
    /// the fired rules in reason order (highest points first, ties in pack order).
    pub fn reasons(&self, pack: &Pack, plan: &Plan, i: usize) -> Vec<String> {
        let mut out = Vec::new();
        self.each_reason(pack, plan, i, &mut String::new(), |text| {
            out.push(text.to_string())
        });
        out
    }

    /// The reasons of person `i` appended to `out`, `; `-joined (the lists'
    /// `reasons` cell), without a `String` per reason: each is rendered
    /// into `scratch`, kept by the caller from person to person (a fresh
    /// one, allocated and grown for every person, was a third of the
    /// rendering's time).
    pub fn write_reasons(
        &self,
        pack: &Pack,
        plan: &Plan,
        i: usize,
        out: &mut String,
        scratch: &mut String,
    ) {
        let mut first = true;
        self.each_reason(pack, plan, i, scratch, |text| {
            if !first {
                out.push_str("; ");
            }
            first = false;
            out.push_str(text);
        });
    }

    /// Calls `emit` with each reason text of person `i` in order (see
    /// [`Outcomes::reasons`]), each rendered into `scratch`.
    fn each_reason(
        &self,
        pack: &Pack,
        plan: &Plan,
        i: usize,
        scratch: &mut String,
        mut emit: impl FnMut(&str),
    ) {
        if let Some((o, Forced::In)) = self.forced[i] {
            emit(&pack.overrides[o as usize].reason);
        }
        for &r in &plan.reason_order {
            let state = &self.rules[r];
            if !(state.is_valid(i) && state.value(i)) {
                continue;
            }
            scratch.clear();
            for segment in &pack.rules[r].reason.segments {
                match segment {
                    crate::pack::Segment::Text(t) => scratch.push_str(t),
                    // As the value's `Display` shows it; NULL as `unknown`.
                    crate::pack::Segment::Feature(f) => match &self.features[*f] {
                        Some(a) if a.is_valid(i) => self.write_feature(*f, i, scratch),
                        _ => scratch.push_str("unknown"),
                    },
                }
            }
            emit(scratch);
        }
    }
}

/// One chunk's decisions about the people it kept, before concatenation.
struct ChunkOutcome {
    people: Vec<u32>,
    tally: Tally,
    /// Every row of the chunk: what was decided ([`Fate`] codes).
    fate: Vec<u8>,
    in_population: Vec<bool>,
    features: Vec<Option<ArrayRef>>,
    rules: Vec<BooleanArray>,
    score: Vec<i128>,
    forced: Vec<Option<(u16, Forced)>>,
    excluded_by: Vec<Option<u16>>,
    tier: Vec<Option<u16>>,
}

/// Runs a bound plan over the dataset.
pub fn execute(
    plan: &Plan,
    ds: &Dataset,
    patients: &Patients,
    keep: Keep,
) -> Result<Outcomes, ExecError> {
    let tables: Vec<_> = plan
        .tables
        .iter()
        .map(|(f, i)| (f.clone(), &plan.scan.tables[*i]))
        .collect();
    let contacts = if plan.reads_contacts {
        ds.contacts.as_ref()
    } else {
        None
    };
    let started = std::time::Instant::now();
    let scanned = scan::scan(
        &plan.scan,
        patients,
        &tables,
        contacts.map(|c| (c, plan.physical.contact_sets.as_slice())),
        plan.as_of_days,
    )?;
    tracing::info!(
        stage = "scan",
        tables = scanned.tables.len(),
        rows = scanned.tables.iter().map(|t| t.rows).sum::<u64>(),
        matched = scanned.tables.iter().map(|t| t.matched).sum::<u64>(),
        accumulators = scanned.accs.len(),
        mib = (scanned.accs.iter().map(|a| a.memory_bytes()).sum::<usize>()
            + scanned
                .last_contact
                .iter()
                .map(|l| l.memory_bytes())
                .sum::<usize>())
            >> 20,
        ms = started.elapsed().as_millis() as u64,
        "event tables scanned"
    );
    let started = std::time::Instant::now();
    let n = patients.len();
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    // Chunks are evaluated a round at a time from the last people to the
    // first, and after each round the accumulators give back the memory of
    // the people evaluated: the accumulators shrink as the outcomes grow,
    // where holding both whole was the run's peak (62M people: 1.3 GB of
    // accumulators beside the patients table and every chunk's outcome).
    let mut scanned = scanned;
    let round = rayon::current_num_threads().max(1) * 16;
    let mut chunks: Vec<ChunkOutcome> = Vec::with_capacity(starts.len());
    for round_starts in starts.rchunks(round) {
        let done: Vec<ChunkOutcome> = round_starts
            .par_iter()
            .map(|&start| evaluate_chunk(plan, &scanned, start, CHUNK.min(n - start), keep))
            .collect::<Result<_, _>>()?;
        chunks.extend(done.into_iter().rev());
        let evaluated_from = round_starts[0];
        for acc in &mut scanned.accs {
            acc.truncate(evaluated_from);
        }
    }
    chunks.reverse();
    // The accumulators are no longer needed: free them before the chunk
    // outputs are put together.
    let ScanResult { accs, tables, .. } = scanned;
    drop(accs);
    let out = assemble(plan, chunks, tables, n, keep)?;
    tracing::info!(
        stage = "evaluate",
        people = n,
        ms = started.elapsed().as_millis() as u64,
        "features, rules and tiers evaluated"
    );
    Ok(out)
}

/// The index of the first condition that is TRUE, per row.
fn first_true(
    chunk: &Chunk,
    conditions: &[crate::plan::PhysicalExpr],
) -> Result<Vec<Option<u16>>, EvalError> {
    let mut first: Vec<Option<u16>> = vec![None; chunk.len];
    for (k, c) in conditions.iter().enumerate() {
        let state = tri_state(chunk.eval(c)?, chunk.len)?;
        // Branch-free: whether a condition holds is as good as random.
        for (slot, &v) in first.iter_mut().zip(&state) {
            let hit = slot.is_none() & (v == Some(true));
            *slot = if hit { Some(k as u16) } else { *slot };
        }
    }
    Ok(first)
}

fn evaluate_chunk(
    plan: &Plan,
    scanned: &ScanResult,
    start: usize,
    len: usize,
    keep: Keep,
) -> Result<ChunkOutcome, EvalError> {
    // Each patient column converted once per chunk, however often it is read.
    let columns: Vec<Column> = plan
        .columns
        .iter()
        .zip(&plan.physical.columns)
        .map(|(a, c)| Column::from_arrow_slice(a, c.ty, start, len))
        .collect::<Result<_, _>>()?;
    let ages = if plan.reads_age {
        Some(eval::ages(
            &plan.columns[plan.date_of_birth],
            &plan.ages,
            start,
            len,
        )?)
    } else {
        None
    };
    let base = Chunk {
        start,
        len,
        as_of: plan.as_of,
        columns: &columns,
        ages: ages.as_ref(),
        accs: &scanned.accs,
        last_contact: &scanned.last_contact,
        features: &[],
        score: None,
    };
    let population = true_mask(base.eval(&plan.population)?, len)?;
    let mut features: Vec<Column> = Vec::with_capacity(plan.features.len());
    for f in &plan.features {
        let value = Chunk {
            features: &features,
            ..base
        }
        .eval(&f.expr)?
        .into_column(f.ty, len);
        features.push(value);
    }
    let chunk = Chunk {
        features: &features,
        ..base
    };

    let mut rules = Vec::with_capacity(plan.rules.len());
    let mut tally = Tally::new(plan);
    // Scores are summed in 64 bits when every rule firing at once fits
    // (points are scaled integers: any pack with under 900 million points
    // in all), which the compiler can vectorise; in 128 bits otherwise.
    let most: u128 = plan.rules.iter().map(|r| r.points.unsigned_abs()).sum();
    let narrow = i64::try_from(most).is_ok();
    let mut score64 = vec![0i64; if narrow { len } else { 0 }];
    let mut score = vec![0i128; if narrow { 0 } else { len }];
    for (r, rule) in plan.rules.iter().enumerate() {
        let mut state = tri_state(chunk.eval(&rule.condition)?, len)?;
        // Outside the population nothing else applies: no rule fires.
        for (v, &inside) in state.iter_mut().zip(&population) {
            *v = if inside { *v } else { Some(false) };
        }
        // One branch-free pass scores, another counts firings and unknowns
        // among the population (whether a rule fires is as good as random).
        if narrow {
            let points = rule.points as i64;
            for (s, &v) in score64.iter_mut().zip(&state) {
                *s += if v == Some(true) { points } else { 0 };
            }
        } else {
            for (s, &v) in score.iter_mut().zip(&state) {
                *s += if v == Some(true) { rule.points } else { 0 };
            }
        }
        let (mut fired, mut unknown) = (0u64, 0u64);
        for &v in &state {
            fired += u64::from(v == Some(true));
            unknown += u64::from(v.is_none());
        }
        tally.rule_fired[r] = fired;
        tally.rule_unknown[r] = unknown;
        rules.push(state);
    }
    if narrow {
        score = score64.into_iter().map(i128::from).collect();
    }
    // `[score] add`: rounded to the score's 10 places, NULL adds nothing.
    if let Some(add) = &plan.score_add {
        let chunk = Chunk {
            features: &features,
            ..base
        };
        let Column::Decimal(values) = chunk.eval(add)?.into_column(Type::Decimal, len) else {
            return Err(EvalError::Internal("[score] add is not a decimal".into()));
        };
        for ((s, v), &inside) in score.iter_mut().zip(&values).zip(&population) {
            if let (true, Some(d)) = (inside, v) {
                *s += crate::plan::types::decimal_to_scaled(d.round_dp(DECIMAL_SCALE as u32))
                    .unwrap_or(0);
            }
        }
    }

    // Per override: latest include and exclude code dates of each person.
    type LatestDates = (Vec<Option<i32>>, Vec<Option<i32>>);
    let latest: Vec<LatestDates> = plan
        .overrides
        .iter()
        .map(|o| {
            Ok((
                date_acc(scanned, o.include, start, len)?,
                date_acc(scanned, o.exclude, start, len)?,
            ))
        })
        .collect::<Result<_, EvalError>>()?;
    let exclusions = first_true(&chunk, &plan.exclusions)?;
    let decimal_score = Column::Decimal(if plan.reads_score {
        score
            .iter()
            .map(|&s| Decimal::try_from_i128_with_scale(s, DECIMAL_SCALE as u32).ok())
            .collect()
    } else {
        Vec::new()
    });
    let tiers = first_true(
        &Chunk {
            score: Some(&decimal_score),
            ..chunk
        },
        &plan.tiers,
    )?;

    let mut out = ChunkOutcome {
        people: Vec::new(),
        tally,
        fate: Vec::with_capacity(len),
        in_population: Vec::new(),
        features: Vec::new(),
        rules: Vec::new(),
        score: Vec::new(),
        forced: Vec::new(),
        excluded_by: Vec::new(),
        tier: Vec::new(),
    };
    // Chunk rows of the people kept.
    let mut kept: Vec<u32> = Vec::new();
    for i in 0..len {
        let facts = Facts {
            in_population: population[i],
            forced: semantics::override_decision(latest.iter().map(|(inc, exc)| (inc[i], exc[i]))),
            first_exclusion: exclusions[i].map(usize::from),
            first_tier: tiers[i].map(usize::from),
        };
        let d = semantics::decide(facts, |o| plan.overrides[o].tier);
        out.tally.count(&d);
        out.fate.push(Fate::code(&d));
        // Also kept: people who would be listed but for a recent call,
        // for their own file (they never silently vanish).
        if keep == Keep::Everyone || d.listed() || recently_contacted(plan, &d) {
            kept.push(i as u32);
            out.people.push((start + i) as u32);
            out.in_population.push(d.in_population);
            out.forced.push(d.forced.map(|(o, f)| (o as u16, f)));
            out.excluded_by.push(d.excluded_by.map(|x| x as u16));
            out.tier.push(d.tier.map(|t| t as u16));
            out.score.push(score[i]);
        }
    }
    // Features and rules of the kept people only.
    let rows = (keep == Keep::Listed).then_some(kept.as_slice());
    out.features = features
        .iter()
        .zip(&plan.features)
        .map(|(c, f)| f.keep.then(|| c.to_arrow_rows(f.ty, rows)))
        .collect();
    out.rules = rules
        .iter()
        .map(|state| match rows {
            Some(r) => {
                column::bool_array(&r.iter().map(|&i| state[i as usize]).collect::<Vec<_>>())
            }
            None => column::bool_array(state),
        })
        .collect();
    Ok(out)
}

fn date_acc(
    scanned: &ScanResult,
    acc: usize,
    start: usize,
    len: usize,
) -> Result<Vec<Option<i32>>, EvalError> {
    match scanned.accs.get(acc) {
        Some(scan::AccColumn::MaxDate(v)) => Ok(v.options(start..start + len)),
        _ => Err(EvalError::Internal(
            "override without a latest-date accumulator".into(),
        )),
    }
}

fn assemble(
    plan: &Plan,
    mut chunks: Vec<ChunkOutcome>,
    tables: Vec<TableCounts>,
    in_table: usize,
    keep: Keep,
) -> Result<Outcomes, EvalError> {
    // Each feature's and rule's pieces are moved out of the chunks and
    // concatenated on their own, in parallel, each piece let go as soon as
    // its column is whole: the pieces and the whole columns are never all
    // held together (at 62M people that was the run's peak).
    let mut features: Vec<Vec<ArrayRef>> = vec![Vec::new(); plan.features.len()];
    let mut rules: Vec<Vec<BooleanArray>> = vec![Vec::new(); plan.rules.len()];
    for c in &mut chunks {
        for (pieces, piece) in features.iter_mut().zip(std::mem::take(&mut c.features)) {
            pieces.extend(piece);
        }
        for (pieces, piece) in rules.iter_mut().zip(std::mem::take(&mut c.rules)) {
            pieces.push(piece);
        }
    }
    let cat = |arrays: &[&dyn Array]| {
        concat(arrays).map_err(|e| EvalError::Internal(format!("concatenating chunks: {e}")))
    };
    let features = features
        .into_par_iter()
        .map(|pieces| {
            // A feature not kept has no pieces (none in any chunk).
            if pieces.len() < chunks.len() {
                return Ok(None);
            }
            cat(&pieces.iter().map(|a| a.as_ref()).collect::<Vec<_>>()).map(Some)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rules = rules
        .into_par_iter()
        .map(|pieces| {
            cat(&pieces.iter().map(|a| a as &dyn Array).collect::<Vec<_>>())
                .map(|a| a.as_boolean().clone())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut tally = Tally::new(plan);
    for c in &chunks {
        tally.add(&c.tally);
    }
    let mut fate = Vec::with_capacity(in_table);
    for c in &chunks {
        fate.extend_from_slice(&c.fate);
    }
    // Reserved exactly: grown by doubling, the kept people's columns took
    // up to twice their size.
    let kept: usize = chunks.iter().map(|c| c.in_population.len()).sum();
    let mut out = Outcomes {
        people: (keep == Keep::Listed).then(|| Vec::with_capacity(kept)),
        in_table,
        tally,
        fate,
        in_population: Vec::with_capacity(kept),
        features,
        feature_types: plan.features.iter().map(|f| f.ty).collect(),
        rules,
        score: Vec::with_capacity(kept),
        forced: Vec::with_capacity(kept),
        excluded_by: Vec::with_capacity(kept),
        tier: Vec::with_capacity(kept),
        tables,
    };
    for (i, c) in chunks.into_iter().enumerate() {
        // The chunks were made on the worker threads, whose allocator
        // arenas keep what they free: given back now and then, so that the
        // chunks and the whole columns are not both held (at 62M people
        // that was the run's peak, 430 MB above the evaluation).
        if i % 128 == 127 {
            crate::run::release_free_memory();
        }
        if let Some(p) = &mut out.people {
            p.extend(c.people);
        }
        out.in_population.extend(c.in_population);
        out.score.extend(c.score);
        out.forced.extend(c.forced);
        out.excluded_by.extend(c.excluded_by);
        out.tier.extend(c.tier);
    }
    Ok(out)
}
