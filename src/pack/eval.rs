//! The reference evaluator: one person at a time, no Arrow, written to be
//! obviously correct rather than fast. It is the oracle the vectorised
//! engine is tested against, and what `strata explain` prints.
//!
//! The decision procedure (documented in `rules/FORMAT.md`):
//! 1. population condition not TRUE -> not in the population, stop;
//! 2. features in order; 3. score = exact sum of fired rules' points;
//! 4. the first override with any include/exclude code decides, latest
//!    code wins, the exclude code on a same-day tie; forced out -> stop;
//! 5. the first TRUE exclusion excludes (even when forced in);
//! 6. tier = forced tier, else the first TRUE tier;
//! 7. reasons: forced-in reason, then fired rules by points (desc), ties
//!    in pack order.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::codelist::normalise_code;
use super::expr::{AggregateFunc, BinaryOp, Expr, Type, Value, Window};
use super::model::Pack;
use super::semantics::{self, age_on};

/// One row of an event table.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub table: String,
    pub code: String,
    pub date: NaiveDate,
    pub value: Option<f64>,
}

/// Everything the evaluator knows about one person.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PersonRecord {
    pub patient_id: String,
    /// Patients-table columns by name, already normalised (sex as F/M/U).
    /// A missing column reads as NULL.
    pub columns: BTreeMap<String, Value>,
    pub events: Vec<EventRecord>,
    /// Dates of proactive contacts already made.
    pub contacts: Vec<NaiveDate>,
    /// The outcome of each contact, in the same order (missing ones are
    /// contacts without an outcome).
    pub contact_outcomes: Vec<Option<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleResult {
    Fired,
    NotFired,
    /// The condition was NULL because of missing data: no points, but
    /// counted and shown so missing values never score silently.
    Unknown,
}

pub use super::semantics::Forced;

/// An event (or contact) behind a feature's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The codelist matched, or `contacts`.
    pub codelist: String,
    pub table: String,
    /// The event's code as normalised.
    pub code: String,
    pub term: Option<String>,
    pub date: NaiveDate,
    pub value: Option<f64>,
}

/// The result of the decision procedure for one person.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub in_population: bool,
    /// The population condition was NULL (missing data), not FALSE.
    pub population_unknown: bool,
    /// One value per feature (empty when not in the population).
    pub features: Vec<Value>,
    /// Per feature: the events that produced its aggregates.
    pub evidence: Vec<Vec<Evidence>>,
    /// One result per rule (empty when not in the population).
    pub rules: Vec<RuleResult>,
    pub score: Decimal,
    /// The deciding override (index) and its direction.
    pub forced: Option<(usize, Forced)>,
    /// The first exclusion whose condition is TRUE.
    pub excluded_by: Option<usize>,
    /// The forced tier, else the first tier whose condition is TRUE; set even
    /// when an exclusion applies (the list leaves such people out).
    pub tier: Option<usize>,
    pub reasons: Vec<String>,
}

impl Outcome {
    /// Whether the person appears on the contact list.
    pub fn listed(&self) -> bool {
        semantics::Decision {
            in_population: self.in_population,
            forced: self.forced,
            excluded_by: self.excluded_by,
            tier: self.tier,
        }
        .listed()
    }
}

/// Runs the decision procedure for one person.
pub fn evaluate(pack: &Pack, person: &PersonRecord, as_of: NaiveDate) -> Outcome {
    let ctx = Context::new(pack, person, as_of);
    let mut outcome = Outcome {
        in_population: false,
        population_unknown: false,
        features: Vec::new(),
        evidence: Vec::new(),
        rules: Vec::new(),
        score: Decimal::ZERO,
        forced: None,
        excluded_by: None,
        tier: None,
        reasons: Vec::new(),
    };

    let mut scratch = Vec::new();
    let population = ctx.eval(&pack.population, &[], None, &mut scratch);
    outcome.population_unknown = population.is_null();
    if !population.is_true() {
        return outcome;
    }
    outcome.in_population = true;

    for feature in &pack.features {
        let mut evidence = Vec::new();
        let v = ctx.eval(&feature.expr, &outcome.features, None, &mut evidence);
        outcome.features.push(conform(v, feature.ty));
        evidence
            .sort_by(|a, b| (a.date, &a.codelist, &a.code).cmp(&(b.date, &b.codelist, &b.code)));
        evidence.dedup();
        outcome.evidence.push(evidence);
    }

    for rule in &pack.rules {
        let result = match ctx.eval(&rule.condition, &outcome.features, None, &mut scratch) {
            Value::Bool(true) => RuleResult::Fired,
            Value::Null => RuleResult::Unknown,
            _ => RuleResult::NotFired,
        };
        if result == RuleResult::Fired {
            outcome.score += rule.points;
        }
        outcome.rules.push(result);
    }
    if let Some(add) = &pack.score_add {
        match ctx.eval(add, &outcome.features, None, &mut scratch) {
            Value::Int(i) => outcome.score += Decimal::from(i),
            // Rounded to the score's 10 places, as the engine keeps it.
            Value::Decimal(d) => outcome.score += d.round_dp(10),
            _ => {}
        }
    }

    let forced = semantics::override_decision(pack.overrides.iter().map(|o| {
        (
            ctx.latest(o.include, Window::Ever),
            ctx.latest(o.exclude, Window::Ever),
        )
    }));
    let score = Some(outcome.score);
    let first_true = |conditions: Vec<&Expr>| {
        conditions.into_iter().position(|c| {
            ctx.eval(c, &outcome.features, score, &mut Vec::new())
                .is_true()
        })
    };
    let forced_out = matches!(forced, Some((_, Forced::Out)));
    let facts = semantics::Facts {
        in_population: true,
        forced,
        first_exclusion: if forced_out {
            None
        } else {
            first_true(pack.exclusions.iter().map(|e| &e.condition).collect())
        },
        first_tier: if forced_out {
            None
        } else {
            first_true(pack.tiers.iter().map(|t| &t.condition).collect())
        },
    };
    let decision = semantics::decide(facts, |o| pack.overrides[o].tier);
    outcome.forced = decision.forced;
    outcome.excluded_by = decision.excluded_by;
    outcome.tier = decision.tier;

    let fired: Vec<usize> = (0..pack.rules.len())
        .filter(|&i| outcome.rules[i] == RuleResult::Fired)
        .collect();
    if let Some((o, Forced::In)) = outcome.forced {
        outcome.reasons.push(pack.overrides[o].reason.clone());
    }
    outcome.reasons.extend(
        semantics::reason_order(fired, |r| pack.rules[r].points)
            .into_iter()
            .map(|i| pack.rules[i].reason.render(&outcome.features)),
    );
    outcome
}

/// Makes a column or feature value fit its declared type: ints widen to
/// floats; anything else that does not fit reads as NULL.
fn conform(v: Value, ty: Type) -> Value {
    match (v, ty) {
        (Value::Null, _) => Value::Null,
        (Value::Int(i), Type::Float) => Value::Float(i as f64),
        (Value::Int(i), Type::Decimal) => Value::Decimal(Decimal::from(i)),
        (Value::Float(f), _) if !f.is_finite() => Value::Null,
        (v @ Value::Bool(_), Type::Bool)
        | (v @ Value::Int(_), Type::Int)
        | (v @ Value::Float(_), Type::Float)
        | (v @ Value::Decimal(_), Type::Decimal)
        | (v @ Value::Str(_), Type::Str)
        | (v @ Value::Date(_), Type::Date) => v,
        (v, Type::Null) => v,
        _ => Value::Null,
    }
}

struct Context<'a> {
    pack: &'a Pack,
    person: &'a PersonRecord,
    as_of: NaiveDate,
    /// Per codelist: (event index, matched normalised code) of its events
    /// dated on or before the as-of date.
    matches: Vec<Vec<(usize, String)>>,
}

impl<'a> Context<'a> {
    fn new(pack: &'a Pack, person: &'a PersonRecord, as_of: NaiveDate) -> Context<'a> {
        let codes: Vec<String> = person
            .events
            .iter()
            .map(|e| normalise_code(&e.code))
            .collect();
        let matches = pack
            .codelists
            .iter()
            .map(|cl| {
                person
                    .events
                    .iter()
                    .enumerate()
                    .filter(|(i, e)| {
                        e.table == cl.table
                            && e.date <= as_of
                            && cl.matching_code(&codes[*i]).is_some()
                    })
                    .map(|(i, _)| (i, codes[i].clone()))
                    .collect()
            })
            .collect();
        Context {
            pack,
            person,
            as_of,
            matches,
        }
    }

    fn in_window(&self, codelist: usize, window: Window) -> Vec<(usize, &str)> {
        self.matches
            .get(codelist)
            .map(|m| {
                m.iter()
                    .filter(|(i, _)| window.contains(self.as_of, self.person.events[*i].date))
                    .map(|(i, c)| (*i, c.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn latest(&self, codelist: usize, window: Window) -> Option<NaiveDate> {
        self.in_window(codelist, window)
            .iter()
            .map(|(i, _)| self.person.events[*i].date)
            .max()
    }

    fn evidence(&self, codelist: usize, event: usize, code: &str) -> Evidence {
        let e = &self.person.events[event];
        let cl = self.pack.codelists.get(codelist);
        Evidence {
            codelist: cl.map_or_else(String::new, |c| c.name.clone()),
            table: e.table.clone(),
            code: code.to_string(),
            term: cl.and_then(|c| c.term_for(code)).map(str::to_string),
            date: e.date,
            value: e.value,
        }
    }

    fn column(&self, name: &str, ty: Type) -> Value {
        conform(
            self.person
                .columns
                .get(name)
                .cloned()
                .unwrap_or(Value::Null),
            ty,
        )
    }

    fn date_column(&self, name: &str) -> Option<NaiveDate> {
        match self.person.columns.get(name) {
            Some(Value::Date(d)) => Some(*d),
            _ => None,
        }
    }

    fn eval(
        &self,
        e: &Expr,
        features: &[Value],
        score: Option<Decimal>,
        ev: &mut Vec<Evidence>,
    ) -> Value {
        let mut sub = |x: &Expr| self.eval(x, features, score, ev);
        match e {
            Expr::Literal(v) => v.clone(),
            Expr::Column { name, ty } => self.column(name, *ty),
            Expr::Feature { index, .. } => features.get(*index).cloned().unwrap_or(Value::Null),
            Expr::Age => self
                .date_column(crate::contract::DATE_OF_BIRTH)
                .and_then(|dob| age_on(dob, self.as_of))
                .map_or(Value::Null, Value::Int),
            Expr::AsOf => Value::Date(self.as_of),
            Expr::Registered => Value::Bool(
                self.date_column(crate::contract::REGISTRATION_END)
                    .is_none_or(|d| d > self.as_of),
            ),
            Expr::Alive => Value::Bool(
                self.date_column(crate::contract::DATE_OF_DEATH)
                    .is_none_or(|d| d > self.as_of),
            ),
            Expr::Score => score.map_or(Value::Null, Value::Decimal),
            Expr::Not(x) => match sub(x) {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Expr::Neg(x) => match sub(x) {
                Value::Int(i) => i.checked_neg().map_or(Value::Null, Value::Int),
                Value::Float(f) => Value::Float(-f),
                Value::Decimal(d) => Value::Decimal(-d),
                _ => Value::Null,
            },
            Expr::Binary { op, left, right } => {
                let l = sub(left);
                let r = sub(right);
                binary(*op, l, r)
            }
            Expr::Case {
                operand,
                branches,
                else_result,
                ..
            } => {
                let target = operand.as_ref().map(|o| sub(o));
                let mut chosen = None;
                for (cond, result) in branches {
                    let c = sub(cond);
                    let hit = match &target {
                        Some(t) => compare(t, &c) == Some(Ordering::Equal),
                        None => c.is_true(),
                    };
                    if hit && chosen.is_none() {
                        chosen = Some(result);
                    }
                }
                let v = match (chosen, else_result) {
                    (Some(r), _) => sub(r),
                    (None, Some(r)) => sub(r),
                    (None, None) => Value::Null,
                };
                widen(v, e.ty())
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let target = sub(expr);
                let items: Vec<Value> = list.iter().map(&mut sub).collect();
                if target.is_null() {
                    return Value::Null;
                }
                let mut saw_null = false;
                let mut found = false;
                for item in &items {
                    match compare(&target, item) {
                        Some(Ordering::Equal) => found = true,
                        None => saw_null = true,
                        _ => {}
                    }
                }
                let v = if found {
                    Value::Bool(true)
                } else if saw_null {
                    Value::Null
                } else {
                    Value::Bool(false)
                };
                if *negated {
                    not(v)
                } else {
                    v
                }
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let x = sub(expr);
                let lo = sub(low);
                let hi = sub(high);
                let v = and(
                    cmp_value(BinaryOp::GtEq, &x, &lo),
                    cmp_value(BinaryOp::LtEq, &x, &hi),
                );
                if *negated {
                    not(v)
                } else {
                    v
                }
            }
            Expr::IsNull { expr, negated } => Value::Bool(sub(expr).is_null() != *negated),
            Expr::Coalesce { args, ty } => {
                let values: Vec<Value> = args.iter().map(&mut sub).collect();
                let v = values
                    .into_iter()
                    .find(|v| !v.is_null())
                    .unwrap_or(Value::Null);
                widen(v, *ty)
            }
            Expr::DaysSince(x) => match sub(x) {
                Value::Date(d) => Value::Int((self.as_of - d).num_days()),
                _ => Value::Null,
            },
            Expr::Aggregate {
                func,
                codelists,
                window,
            } => self.aggregate(*func, codelists, *window, ev),
            Expr::LatestOf { a, b } => {
                let la = self.latest_evidence(*a, ev);
                let lb = self.latest_evidence(*b, ev);
                let name = |i: usize| {
                    self.pack
                        .codelists
                        .get(i)
                        .map_or(Value::Null, |c| Value::Str(c.value_name().to_string()))
                };
                match (la, lb) {
                    (None, None) => Value::Null,
                    (Some(_), None) => name(*a),
                    (Some(da), Some(db)) if da > db => name(*a),
                    _ => name(*b),
                }
            }
            Expr::Contacted(window, outcomes) => {
                let hits: Vec<NaiveDate> = self
                    .person
                    .contacts
                    .iter()
                    .enumerate()
                    .filter(|&(i, d)| {
                        let outcome = self
                            .person
                            .contact_outcomes
                            .get(i)
                            .and_then(Option::as_deref)
                            .map(crate::pack::semantics::contact_outcome);
                        window.contains(self.as_of, *d)
                            && crate::pack::semantics::contact_counts(outcome.as_deref(), outcomes)
                    })
                    .map(|(_, d)| *d)
                    .collect();
                ev.extend(hits.iter().map(|d| contact_evidence(*d)));
                Value::Bool(!hits.is_empty())
            }
            Expr::LastContact => {
                let last = self
                    .person
                    .contacts
                    .iter()
                    .copied()
                    .filter(|d| *d <= self.as_of)
                    .max();
                ev.extend(last.map(contact_evidence));
                last.map_or(Value::Null, Value::Date)
            }
        }
    }

    fn latest_evidence(&self, codelist: usize, ev: &mut Vec<Evidence>) -> Option<NaiveDate> {
        let hits = self.in_window(codelist, Window::Ever);
        let best = hits
            .iter()
            .max_by_key(|(i, c)| (self.person.events[*i].date, *c))?;
        ev.push(self.evidence(codelist, best.0, best.1));
        Some(self.person.events[best.0].date)
    }

    fn aggregate(
        &self,
        func: AggregateFunc,
        codelists: &[usize],
        window: Window,
        ev: &mut Vec<Evidence>,
    ) -> Value {
        let hits: Vec<(usize, usize, &str)> = codelists
            .iter()
            .flat_map(|&cl| {
                self.in_window(cl, window)
                    .into_iter()
                    .map(move |(i, c)| (cl, i, c))
            })
            .collect();
        let date = |i: usize| self.person.events[i].date;
        let valued: Vec<(usize, usize, &str, f64)> = hits
            .iter()
            .filter_map(|&(cl, i, c)| {
                self.person.events[i]
                    .value
                    .filter(|v| v.is_finite())
                    .map(|v| (cl, i, c, v))
            })
            .collect();
        let mut cite = |cl: usize, i: usize, c: &str| ev.push(self.evidence(cl, i, c));
        match func {
            AggregateFunc::Has | AggregateFunc::Count | AggregateFunc::CountDistinctCodelists => {
                for &(cl, i, c) in &hits {
                    cite(cl, i, c);
                }
                match func {
                    AggregateFunc::Has => Value::Bool(!hits.is_empty()),
                    AggregateFunc::Count => Value::Int(hits.len() as i64),
                    _ => Value::Int(
                        codelists
                            .iter()
                            .filter(|&&cl| hits.iter().any(|h| h.0 == cl))
                            .count() as i64,
                    ),
                }
            }
            AggregateFunc::CountDays => {
                let mut days: std::collections::BTreeSet<chrono::NaiveDate> = Default::default();
                for &(cl, i, c) in &hits {
                    cite(cl, i, c);
                    days.insert(self.person.events[i].date);
                }
                Value::Int(days.len() as i64)
            }
            AggregateFunc::CountDistinctCodes => {
                let mut codes: std::collections::BTreeSet<&str> = Default::default();
                for &(cl, i, c) in &hits {
                    cite(cl, i, c);
                    codes.insert(c);
                }
                Value::Int(codes.len() as i64)
            }
            AggregateFunc::CountCategories | AggregateFunc::SumWeights => {
                // Each category once, however many of its codes matched.
                let mut categories: std::collections::BTreeSet<&str> = Default::default();
                for &(cl, i, c) in &hits {
                    cite(cl, i, c);
                    let list = &self.pack.codelists[cl];
                    let code = normalise_code(&self.person.events[i].code);
                    categories.extend(list.categories_of(&code));
                }
                if func == AggregateFunc::CountCategories {
                    Value::Int(categories.len() as i64)
                } else {
                    let list = codelists.first().map(|&cl| &self.pack.codelists[cl]);
                    Value::Decimal(
                        categories
                            .iter()
                            .filter_map(|cat| list.and_then(|l| l.weights.get(*cat)))
                            .sum(),
                    )
                }
            }
            AggregateFunc::FirstDate | AggregateFunc::LastDate => {
                let pick = if func == AggregateFunc::FirstDate {
                    hits.iter().min_by_key(|h| (date(h.1), h.2))
                } else {
                    hits.iter().max_by_key(|h| (date(h.1), h.2))
                };
                match pick {
                    Some(&(cl, i, c)) => {
                        cite(cl, i, c);
                        Value::Date(date(i))
                    }
                    None => Value::Null,
                }
            }
            AggregateFunc::LastValue | AggregateFunc::MinValue | AggregateFunc::MaxValue => {
                let key = |h: &(usize, usize, &str, f64)| -> (i64, f64) {
                    match func {
                        // Latest date; on a same-day tie the largest value.
                        AggregateFunc::LastValue => (i64::from(date(h.1).num_days_from_ce()), h.3),
                        AggregateFunc::MaxValue => (0, h.3),
                        _ => (0, -h.3),
                    }
                };
                let best = valued.iter().max_by(|a, b| {
                    let (ka, kb) = (key(a), key(b));
                    ka.0.cmp(&kb.0)
                        .then(ka.1.total_cmp(&kb.1))
                        // Among equal keys prefer the earliest event, so the
                        // cited event does not depend on row order either.
                        .then_with(|| (date(b.1), b.2).cmp(&(date(a.1), a.2)))
                });
                match best {
                    Some(&(cl, i, c, v)) => {
                        cite(cl, i, c);
                        Value::Float(v)
                    }
                    None => Value::Null,
                }
            }
        }
    }
}

fn contact_evidence(date: NaiveDate) -> Evidence {
    Evidence {
        codelist: "contacts".into(),
        table: "contacts".into(),
        code: String::new(),
        term: None,
        date,
        value: None,
    }
}

/// CASE and COALESCE results take their expression's (widened) type.
fn widen(v: Value, ty: Type) -> Value {
    match (v, ty) {
        (Value::Int(i), Type::Float) => Value::Float(i as f64),
        (Value::Int(i), Type::Decimal) => Value::Decimal(Decimal::from(i)),
        (Value::Decimal(d), Type::Float) => d.to_f64().map_or(Value::Null, Value::Float),
        (v, _) => v,
    }
}

fn not(v: Value) -> Value {
    match v {
        Value::Bool(b) => Value::Bool(!b),
        _ => Value::Null,
    }
}

/// SQL three-valued AND: FALSE wins over NULL.
fn and(l: Value, r: Value) -> Value {
    match (l.as_bool(), r.as_bool()) {
        (Some(false), _) | (_, Some(false)) => Value::Bool(false),
        (Some(true), Some(true)) => Value::Bool(true),
        _ => Value::Null,
    }
}

/// SQL three-valued OR: TRUE wins over NULL.
fn or(l: Value, r: Value) -> Value {
    match (l.as_bool(), r.as_bool()) {
        (Some(true), _) | (_, Some(true)) => Value::Bool(true),
        (Some(false), Some(false)) => Value::Bool(false),
        _ => Value::Null,
    }
}

fn binary(op: BinaryOp, l: Value, r: Value) -> Value {
    match op {
        BinaryOp::And => and(l, r),
        BinaryOp::Or => or(l, r),
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => arithmetic(op, &l, &r),
        _ => cmp_value(op, &l, &r),
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Decimal(d) => d.to_f64(),
        _ => None,
    }
}

/// Integer arithmetic stays exact (overflow gives NULL), decimals stay
/// exact, anything with a float is float; `/` is always float and
/// division by zero gives NULL.
fn arithmetic(op: BinaryOp, l: &Value, r: &Value) -> Value {
    if l.is_null() || r.is_null() {
        return Value::Null;
    }
    if op == BinaryOp::Div {
        return match (as_f64(l), as_f64(r)) {
            (Some(_), Some(0.0)) => Value::Null,
            (Some(a), Some(b)) => finite(a / b),
            _ => Value::Null,
        };
    }
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => {
            let v = match op {
                BinaryOp::Add => a.checked_add(*b),
                BinaryOp::Sub => a.checked_sub(*b),
                _ => a.checked_mul(*b),
            };
            v.map_or(Value::Null, Value::Int)
        }
        (Value::Float(_), _) | (_, Value::Float(_)) => match (as_f64(l), as_f64(r)) {
            (Some(a), Some(b)) => finite(match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                _ => a * b,
            }),
            _ => Value::Null,
        },
        _ => match (as_decimal(l), as_decimal(r)) {
            (Some(a), Some(b)) => {
                let v = match op {
                    BinaryOp::Add => a.checked_add(b),
                    BinaryOp::Sub => a.checked_sub(b),
                    _ => a.checked_mul(b),
                };
                v.map_or(Value::Null, Value::Decimal)
            }
            _ => Value::Null,
        },
    }
}

fn finite(f: f64) -> Value {
    if f.is_finite() {
        Value::Float(f)
    } else {
        Value::Null
    }
}

fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    }
}

/// Orders two non-null values of comparable types; `None` for NULL (or a
/// NaN), which makes any comparison NULL.
fn compare(l: &Value, r: &Value) -> Option<Ordering> {
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Decimal(_), Value::Int(_) | Value::Decimal(_))
        | (Value::Int(_), Value::Decimal(_)) => Some(as_decimal(l)?.cmp(&as_decimal(r)?)),
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => as_f64(l)?.partial_cmp(&as_f64(r)?),
    }
}

fn cmp_value(op: BinaryOp, l: &Value, r: &Value) -> Value {
    let Some(ord) = compare(l, r) else {
        return Value::Null;
    };
    Value::Bool(match op {
        BinaryOp::Eq => ord == Ordering::Equal,
        BinaryOp::NotEq => ord != Ordering::Equal,
        BinaryOp::Lt => ord == Ordering::Less,
        BinaryOp::LtEq => ord != Ordering::Greater,
        BinaryOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_valued_logic() {
        let t = Value::Bool(true);
        let f = Value::Bool(false);
        let n = Value::Null;
        assert_eq!(and(n.clone(), f.clone()), f);
        assert_eq!(and(n.clone(), t.clone()), n);
        assert_eq!(or(n.clone(), t.clone()), t);
        assert_eq!(or(n.clone(), f.clone()), n);
        assert_eq!(not(n.clone()), n);
    }

    #[test]
    fn arithmetic_rules() {
        assert_eq!(
            arithmetic(BinaryOp::Div, &Value::Int(1), &Value::Int(0)),
            Value::Null
        );
        assert_eq!(
            arithmetic(BinaryOp::Div, &Value::Int(3), &Value::Int(2)),
            Value::Float(1.5)
        );
        assert_eq!(
            arithmetic(BinaryOp::Add, &Value::Int(i64::MAX), &Value::Int(1)),
            Value::Null
        );
        assert_eq!(
            arithmetic(BinaryOp::Mul, &Value::Int(3), &Value::Float(0.5)),
            Value::Float(1.5)
        );
    }
}
