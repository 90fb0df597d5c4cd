//! Execution: rayon over Arrow record batches, from events to per-person
//! aggregates, features, points, tiers and reasons.
//!
//! Two phases. The [`scan`] makes one fused pass over each event table and
//! leaves per-person accumulators. Then people are evaluated in chunks, in
//! parallel: population, features (in dependency order), rules and the
//! exact decimal score, overrides, exclusions, tiers. Every step is
//! deterministic per person, so results do not depend on the thread count.

pub mod eval;
pub mod scan;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Decimal128Array};
use arrow::compute::concat;
use rayon::prelude::*;

use crate::dataset::{Dataset, DatasetError, Patients};
use crate::pack::{Pack, Type, Value};
use crate::plan::types::{scaled_to_decimal, DECIMAL_PRECISION, DECIMAL_SCALE};
use crate::plan::Plan;
use eval::{tri_state, true_mask, value_at, Env, EvalError};
use scan::{ScanResult, TableCounts};

/// People per evaluation chunk.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// How an override decided for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    /// Forced into the override's tier.
    In(u16),
    /// Forced off the list.
    Out(u16),
}

/// Everything the engine decided, one entry per person (patients-table order).
#[derive(Debug)]
pub struct Outcomes {
    pub in_population: Vec<bool>,
    /// Feature arrays (full length) in the pack's feature order; `None` for
    /// features nothing reads after evaluation (see [`Plan::keep_features`]).
    pub features: Vec<Option<ArrayRef>>,
    /// Per rule: TRUE fired, FALSE not, NULL unknown (missing data).
    pub rules: Vec<BooleanArray>,
    /// Score as a scaled integer (scale 10).
    pub score: Vec<i128>,
    pub forced: Vec<Option<Forced>>,
    pub excluded_by: Vec<Option<u16>>,
    pub tier: Vec<Option<u16>>,
    pub tables: Vec<TableCounts>,
}

impl Outcomes {
    pub fn len(&self) -> usize {
        self.in_population.len()
    }

    pub fn is_empty(&self) -> bool {
        self.in_population.is_empty()
    }

    /// Whether person `i` is on a contact list.
    pub fn listed(&self, i: usize) -> bool {
        self.in_population[i]
            && !matches!(self.forced[i], Some(Forced::Out(_)))
            && self.excluded_by[i].is_none()
            && self.tier[i].is_some()
    }

    pub fn feature_value(&self, pack: &Pack, f: usize, i: usize) -> Value {
        match &self.features[f] {
            Some(a) => value_at(a.as_ref(), pack.features[f].ty, i),
            None => Value::Null,
        }
    }

    pub fn score_decimal(&self, i: usize) -> rust_decimal::Decimal {
        scaled_to_decimal(self.score[i])
    }

    /// Reason texts for person `i`: a forced-in override's reason first, then
    /// the fired rules, highest points first (ties in pack order).
    pub fn reasons(&self, pack: &Pack, plan: &Plan, i: usize) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(Forced::In(o)) = self.forced[i] {
            out.push(pack.overrides[o as usize].reason.clone());
        }
        let mut fired: Vec<usize> = (0..pack.rules.len())
            .filter(|&r| self.rules[r].is_valid(i) && self.rules[r].value(i))
            .collect();
        fired.sort_by(|&a, &b| plan.points[b].cmp(&plan.points[a]).then(a.cmp(&b)));
        if fired.is_empty() {
            return out;
        }
        let values: Vec<Value> = (0..pack.features.len())
            .map(|f| self.feature_value(pack, f, i))
            .collect();
        out.extend(
            fired
                .into_iter()
                .map(|r| pack.rules[r].reason.render(&values)),
        );
        out
    }
}

/// One chunk's decisions, before concatenation.
struct ChunkOutcome {
    in_population: Vec<bool>,
    features: Vec<Option<ArrayRef>>,
    rules: Vec<BooleanArray>,
    score: Vec<i128>,
    forced: Vec<Option<Forced>>,
    excluded_by: Vec<Option<u16>>,
    tier: Vec<Option<u16>>,
}

/// Runs a bound pack over the dataset.
pub fn execute(
    pack: &Pack,
    plan: &Plan,
    ds: &Dataset,
    patients: &Patients,
) -> Result<Outcomes, ExecError> {
    let tables: Vec<_> = plan
        .tables
        .iter()
        .map(|(f, i)| (f.clone(), &plan.scan.tables[*i]))
        .collect();
    let contacts = if plan.needs_contacts {
        ds.contacts.as_ref()
    } else {
        None
    };
    let started = std::time::Instant::now();
    let scanned = scan::scan(&plan.scan, patients, &tables, contacts, plan.as_of_days)?;
    tracing::info!(
        stage = "scan",
        tables = scanned.tables.len(),
        rows = scanned.tables.iter().map(|t| t.rows).sum::<u64>(),
        matched = scanned.tables.iter().map(|t| t.matched).sum::<u64>(),
        ms = started.elapsed().as_millis() as u64,
        "event tables scanned"
    );
    let started = std::time::Instant::now();
    let n = patients.len();
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    let chunks: Vec<ChunkOutcome> = starts
        .par_iter()
        .map(|&start| evaluate_chunk(pack, plan, patients, &scanned, start, CHUNK.min(n - start)))
        .collect::<Result<_, _>>()?;
    let out = assemble(pack, chunks, scanned.tables)?;
    tracing::info!(
        stage = "evaluate",
        people = n,
        ms = started.elapsed().as_millis() as u64,
        "features, rules and tiers evaluated"
    );
    Ok(out)
}

fn evaluate_chunk(
    pack: &Pack,
    plan: &Plan,
    patients: &Patients,
    scanned: &ScanResult,
    start: usize,
    len: usize,
) -> Result<ChunkOutcome, EvalError> {
    let columns = |name: &str| plan.columns.get(name).cloned();
    let base = Env {
        start,
        len,
        as_of: plan.as_of,
        as_of_days: plan.as_of_days,
        columns: &columns,
        date_of_birth: &patients.date_of_birth,
        registration_end: &patients.registration_end,
        date_of_death: &patients.date_of_death,
        accs: &scanned.accs,
        source: &plan.aggs,
        last_contact: &scanned.last_contact,
        features: &[],
        score: None,
    };
    let mut features: Vec<ArrayRef> = Vec::with_capacity(pack.features.len());
    let population = true_mask(base.eval(&pack.population)?, len)?;
    for f in &pack.features {
        let value = Env {
            features: &features,
            ..base
        }
        .eval(&f.expr)?
        .into_array(len)?;
        let value = fit(value, f.ty)?;
        features.push(value);
    }
    let env = Env {
        features: &features,
        ..base
    };

    let mut rules = Vec::with_capacity(pack.rules.len());
    let mut score = vec![0i128; len];
    for (r, rule) in pack.rules.iter().enumerate() {
        let state = tri_state(env.eval(&rule.condition)?, len)?;
        let points = plan.points[r];
        for (i, s) in score.iter_mut().enumerate() {
            if state.is_valid(i) && state.value(i) {
                *s += points;
            }
        }
        rules.push(state);
    }

    let mut forced: Vec<Option<Forced>> = vec![None; len];
    for (o, ov) in pack.overrides.iter().enumerate() {
        let (Some(a), Some(b)) = (plan.aggs.latest(ov.include), plan.aggs.latest(ov.exclude))
        else {
            continue;
        };
        let (da, db) = (
            date_acc(&scanned.accs[a], start, len),
            date_acc(&scanned.accs[b], start, len),
        );
        for i in 0..len {
            if forced[i].is_some() {
                continue;
            }
            forced[i] = eval::first_is_latest(da[i], db[i]).map(|include| {
                if include {
                    Forced::In(o as u16)
                } else {
                    Forced::Out(o as u16)
                }
            });
        }
    }

    let mut excluded_by: Vec<Option<u16>> = vec![None; len];
    for (x, ex) in pack.exclusions.iter().enumerate() {
        let mask = true_mask(env.eval(&ex.condition)?, len)?;
        for (i, e) in excluded_by.iter_mut().enumerate() {
            // People forced off the list are not also counted as excluded.
            if e.is_none() && mask.value(i) && !matches!(forced[i], Some(Forced::Out(_))) {
                *e = Some(x as u16);
            }
        }
    }

    let score_array: ArrayRef = Arc::new(
        Decimal128Array::from(score.clone())
            .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)?,
    );
    let env = Env {
        features: &features,
        score: Some(&score_array),
        ..base
    };
    let mut tier: Vec<Option<u16>> = forced
        .iter()
        .map(|f| match f {
            Some(Forced::In(o)) => Some(pack.overrides[*o as usize].tier as u16),
            _ => None,
        })
        .collect();
    for (t, tdef) in pack.tiers.iter().enumerate() {
        let mask = true_mask(env.eval(&tdef.condition)?, len)?;
        for (i, slot) in tier.iter_mut().enumerate() {
            if slot.is_none() && !matches!(forced[i], Some(Forced::Out(_))) && mask.value(i) {
                *slot = Some(t as u16);
            }
        }
    }
    Ok(ChunkOutcome {
        in_population: (0..len).map(|i| population.value(i)).collect(),
        features: features
            .into_iter()
            .zip(&plan.keep_features)
            .map(|(a, &keep)| keep.then_some(a))
            .collect(),
        rules,
        score,
        forced,
        excluded_by,
        tier,
    })
}

fn date_acc(acc: &scan::AccColumn, start: usize, len: usize) -> Vec<Option<i32>> {
    match acc {
        scan::AccColumn::MaxDate(v) => v[start..start + len]
            .iter()
            .map(|&d| (d != scan::NO_MAX_DATE).then_some(d))
            .collect(),
        _ => vec![None; len],
    }
}

/// A feature array in exactly the engine's type for the feature.
fn fit(a: ArrayRef, ty: Type) -> Result<ArrayRef, EvalError> {
    let target = crate::plan::types::arrow_type(ty);
    if a.data_type() == &target || ty == Type::Null {
        return Ok(a);
    }
    arrow::compute::cast(&a, &target).map_err(EvalError::from)
}

fn assemble(
    pack: &Pack,
    chunks: Vec<ChunkOutcome>,
    tables: Vec<TableCounts>,
) -> Result<Outcomes, EvalError> {
    let cat = |arrays: Vec<&dyn Array>| concat(&arrays).map_err(EvalError::from);
    let features = (0..pack.features.len())
        .map(|f| {
            if chunks.iter().any(|c| c.features[f].is_none()) {
                return Ok(None);
            }
            cat(chunks
                .iter()
                .filter_map(|c| c.features[f].as_deref())
                .collect())
            .map(Some)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rules = (0..pack.rules.len())
        .map(|r| {
            cat(chunks.iter().map(|c| &c.rules[r] as &dyn Array).collect())
                .map(|a| a.as_boolean().clone())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Outcomes {
        in_population: Vec::new(),
        features,
        rules,
        score: Vec::new(),
        forced: Vec::new(),
        excluded_by: Vec::new(),
        tier: Vec::new(),
        tables,
    };
    for c in chunks {
        out.in_population.extend(c.in_population);
        out.score.extend(c.score);
        out.forced.extend(c.forced);
        out.excluded_by.extend(c.excluded_by);
        out.tier.extend(c.tier);
    }
    Ok(out)
}
