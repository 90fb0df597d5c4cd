//! Vectorised evaluation of the physical plan over a chunk of people.
//!
//! The planner fixed every type and inserted every conversion, so each
//! node here is one typed kernel: no name lookups and no implicit casts.
//! NULL follows SQL's three-valued logic (Kleene AND/OR); arithmetic that
//! overflows, divides by zero or leaves the finite floats gives NULL, as
//! `rules/FORMAT.md` specifies.

use std::cmp::Ordering;

use arrow::array::{Array, ArrayRef, Date32Array, StringBuilder};
use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::column::{Acc, Column, Datum};
use super::scan::{AccColumn, LastContacts, NO_MAX_DATE};
use crate::pack::semantics::{first_is_latest, Ages};
use crate::pack::{BinaryOp, Type, Value};
use crate::plan::{Aggregate, LiteralSet, PhysicalExpr};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A plan the engine cannot evaluate: a bug in strata, never the input.
    #[error("internal: {0}")]
    Internal(String),
}

fn internal(msg: impl Into<String>) -> EvalError {
    EvalError::Internal(msg.into())
}

/// Everything an expression may read, for people `start .. start + len`.
#[derive(Clone, Copy)]
pub struct Chunk<'a> {
    pub start: usize,
    pub len: usize,
    pub as_of: NaiveDate,
    /// The plan's patient columns for this chunk, each converted once.
    pub columns: &'a [Column],
    /// Age at the as-of date for this chunk (an int column), when the plan reads it.
    pub ages: Option<&'a Column>,
    pub accs: &'a [AccColumn],
    /// Latest contact on or before the as-of date by outcome set (0: any
    /// outcome), for everyone.
    pub last_contact: &'a [LastContacts],
    /// Chunk-local columns of the features evaluated so far.
    pub features: &'a [Column],
    /// The chunk's scores, a decimal column (tier conditions only).
    pub score: Option<&'a Column>,
}

/// Whole years (by `ages`) for rows `start .. start + len` of a date-of-birth column.
pub fn ages(dob: &ArrayRef, ages: &Ages, start: usize, len: usize) -> Result<Column, EvalError> {
    let dob = dob
        .as_any()
        .downcast_ref::<Date32Array>()
        .ok_or_else(|| internal("date of birth is not a date column"))?
        .slice(start, len);
    Ok(Column::Int(dob.iter().map(|d| ages.of_days(d?)).collect()))
}

/// Applies `f` row by row where both sides are present (NULL otherwise).
/// Each shape of operands (column or constant on either side) gets its own
/// loop, so the inner loops do not branch on the shape.
fn zip2<A: Copy, B: Copy, O>(
    len: usize,
    a: Acc<'_, A>,
    b: Acc<'_, B>,
    f: impl Fn(A, B) -> Option<O>,
) -> Vec<Option<O>> {
    let both = |x: Option<A>, y: Option<B>| match (x, y) {
        (Some(x), Some(y)) => f(x, y),
        _ => None,
    };
    match (a, b) {
        (Acc::Col(x), Acc::Col(y)) => x[..len]
            .iter()
            .zip(&y[..len])
            .map(|(&x, &y)| both(x, y))
            .collect(),
        (Acc::Col(x), Acc::Const(None)) => vec_of_none(x[..len].len()),
        (Acc::Col(x), Acc::Const(Some(y))) => {
            x[..len].iter().map(|&x| x.and_then(|x| f(x, y))).collect()
        }
        (Acc::Const(None), Acc::Col(_)) => vec_of_none(len),
        (Acc::Const(Some(x)), Acc::Col(y)) => {
            y[..len].iter().map(|&y| y.and_then(|y| f(x, y))).collect()
        }
        (Acc::Const(x), Acc::Const(y)) => (0..len).map(|_| both(x, y)).collect(),
    }
}

fn vec_of_none<O>(len: usize) -> Vec<Option<O>> {
    (0..len).map(|_| None).collect()
}

fn map1<A: Copy, O>(len: usize, a: Acc<'_, A>, f: impl Fn(A) -> Option<O>) -> Vec<Option<O>> {
    match a {
        Acc::Col(x) => x[..len].iter().map(|&x| x.and_then(&f)).collect(),
        Acc::Const(x) => (0..len).map(|_| x.and_then(&f)).collect(),
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn holds(op: BinaryOp, ord: Ordering) -> bool {
    match op {
        BinaryOp::Eq => ord == Ordering::Equal,
        BinaryOp::NotEq => ord != Ordering::Equal,
        BinaryOp::Lt => ord == Ordering::Less,
        BinaryOp::LtEq => ord != Ordering::Greater,
        BinaryOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    }
}

/// A column computed for `n` rows: a scalar when `n` is 1 and both
/// operands were scalars.
fn finish<'a>(c: Column, scalar: bool) -> Datum<'a> {
    if scalar {
        Datum::Scalar(c.value(0))
    } else {
        Datum::owned(c)
    }
}

impl<'a> Chunk<'a> {
    fn rows(&self, scalar: bool) -> usize {
        if scalar {
            1
        } else {
            self.len
        }
    }

    fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len
    }

    fn acc(&self, a: usize) -> Result<&AccColumn, EvalError> {
        self.accs
            .get(a)
            .ok_or_else(|| internal("accumulator out of range"))
    }

    /// Latest dates of a `MaxDate` accumulator for this chunk.
    fn max_dates(&self, a: usize) -> Result<Vec<Option<i32>>, EvalError> {
        match self.acc(a)? {
            AccColumn::MaxDate(v) => Ok(v.options(self.range())),
            _ => Err(internal("expected a latest-date accumulator")),
        }
    }

    /// This chunk's flags of an `Any` accumulator, person by person.
    fn flags(&self, a: usize) -> Result<impl Iterator<Item = bool> + '_, EvalError> {
        match self.acc(a)? {
            AccColumn::Any(v) => Ok(self.range().map(move |i| AccColumn::any(v, i))),
            _ => Err(internal("expected an any accumulator")),
        }
    }

    fn aggregate(&self, agg: &Aggregate) -> Result<Column, EvalError> {
        Ok(match agg {
            Aggregate::Has { acc } => Column::Bool(self.flags(*acc)?.map(Some).collect()),
            Aggregate::Count { acc } => match self.acc(*acc)? {
                AccColumn::Count(v) => Column::Int(
                    v[self.range()]
                        .iter()
                        .map(|&c| Some(i64::from(c)))
                        .collect(),
                ),
                _ => return Err(internal("expected a count accumulator")),
            },
            Aggregate::CountDistinct { accs } => {
                let mut total = vec![0i64; self.len];
                for &a in accs {
                    for (t, has) in total.iter_mut().zip(self.flags(a)?) {
                        *t += i64::from(has);
                    }
                }
                Column::Int(total.into_iter().map(Some).collect())
            }
            Aggregate::WeightedSum { accs } => {
                let mut total = vec![0i128; self.len];
                for &(a, w) in accs {
                    for (t, has) in total.iter_mut().zip(self.flags(a)?) {
                        if has {
                            *t += w;
                        }
                    }
                }
                Column::Decimal(
                    total
                        .into_iter()
                        .map(|t| Some(crate::plan::types::scaled_to_decimal(t)))
                        .collect(),
                )
            }
            Aggregate::Date { acc } => match self.acc(*acc)? {
                AccColumn::MinDate(v) | AccColumn::MaxDate(v) => {
                    Column::Date(v.options(self.range()))
                }
                _ => return Err(internal("expected a date accumulator")),
            },
            Aggregate::Value { acc } => {
                let v = match self.acc(*acc)? {
                    AccColumn::LastValue(_, v)
                    | AccColumn::MinValue(v)
                    | AccColumn::MaxValue(v) => v,
                    _ => return Err(internal("expected a value accumulator")),
                };
                Column::Float(v[self.range()].iter().map(|&x| finite(x)).collect())
            }
        })
    }

    /// Evaluates `e` for this chunk.
    pub fn eval(&self, e: &PhysicalExpr) -> Result<Datum<'a>, EvalError> {
        use PhysicalExpr as P;
        Ok(match e {
            P::Literal { value, .. } => Datum::Scalar(match value {
                Value::Float(x) if !x.is_finite() => Value::Null,
                v => v.clone(),
            }),
            P::Column { index, .. } => Datum::borrowed(
                self.columns
                    .get(*index)
                    .ok_or_else(|| internal("column out of range"))?,
            ),
            P::Feature { index, .. } => Datum::borrowed(
                self.features
                    .get(*index)
                    .ok_or_else(|| internal("feature evaluated out of order"))?,
            ),
            P::Age { .. } => Datum::borrowed(
                self.ages
                    .ok_or_else(|| internal("ages not computed for this chunk"))?,
            ),
            P::Score => Datum::borrowed(
                self.score
                    .ok_or_else(|| internal("score used outside a tier condition"))?,
            ),
            P::Aggregate(agg) => Datum::owned(self.aggregate(agg)?),
            P::Contacted { since, set, .. } => Datum::owned(Column::Bool(
                self.last_contact
                    .get(*set)
                    .ok_or_else(|| internal("a contact outcome set was not scanned"))?
                    .dates(self.range())
                    .iter()
                    .map(|&d| Some(d != NO_MAX_DATE && d >= *since))
                    .collect(),
            )),
            P::LastContact => Datum::owned(Column::Date(
                self.last_contact
                    .first()
                    .ok_or_else(|| internal("contacts were not scanned"))?
                    .dates(self.range())
                    .iter()
                    .map(|&d| (d != NO_MAX_DATE).then_some(d))
                    .collect(),
            )),
            P::LatestOf { first, second } => {
                let a = self.max_dates(first.0)?;
                let b = self.max_dates(second.0)?;
                let mut out = StringBuilder::with_capacity(self.len, self.len * 8);
                for (x, y) in a.into_iter().zip(b) {
                    match first_is_latest(x, y) {
                        None => out.append_null(),
                        Some(true) => out.append_value(&first.1),
                        Some(false) => out.append_value(&second.1),
                    }
                }
                Datum::owned(Column::Str(out.finish()))
            }
            P::Not(x) => {
                let v = self.eval(x)?;
                let n = self.rows(v.is_scalar());
                finish(
                    Column::Bool(map1(n, v.bools()?, |b| Some(!b))),
                    v.is_scalar(),
                )
            }
            P::Neg(x) => {
                let v = self.eval(x)?;
                let (n, s) = (self.rows(v.is_scalar()), v.is_scalar());
                let c = match x.ty() {
                    Type::Int => Column::Int(map1(n, v.ints()?, i64::checked_neg)),
                    Type::Float => Column::Float(map1(n, v.floats()?, |f| Some(-f))),
                    Type::Decimal => Column::Decimal(map1(n, v.decimals()?, |d| Some(-d))),
                    other => return Err(internal(format!("cannot negate {other}"))),
                };
                finish(c, s)
            }
            P::And(l, r) | P::Or(l, r) => {
                let is_and = matches!(e, P::And(..));
                let (l, r) = (self.eval(l)?, self.eval(r)?);
                let s = l.is_scalar() && r.is_scalar();
                let (a, b) = (l.bools()?, r.bools()?);
                let n = self.rows(s);
                let out = match (a, b) {
                    (Acc::Col(x), Acc::Col(y)) if is_and => x[..n]
                        .iter()
                        .zip(&y[..n])
                        .map(|(&x, &y)| kleene(true, x, y))
                        .collect(),
                    (Acc::Col(x), Acc::Col(y)) => x[..n]
                        .iter()
                        .zip(&y[..n])
                        .map(|(&x, &y)| kleene(false, x, y))
                        .collect(),
                    _ => (0..n).map(|i| kleene(is_and, a.at(i), b.at(i))).collect(),
                };
                finish(Column::Bool(out), s)
            }
            P::Arithmetic {
                op,
                left,
                right,
                ty,
            } => self.arithmetic(*op, left, right, *ty)?,
            P::Compare { op, left, right } => self.compare(*op, left, right)?,
            P::Case {
                branches,
                otherwise,
                ty,
            } => {
                let mut conds = Vec::with_capacity(branches.len());
                let mut values = Vec::with_capacity(branches.len() + 1);
                for (w, t) in branches {
                    conds.push(self.eval(w)?);
                    values.push(self.eval(t)?);
                }
                if let Some(o) = otherwise {
                    values.push(self.eval(o)?);
                }
                let has_else = otherwise.is_some();
                let conds: Vec<Acc<bool>> =
                    conds.iter().map(Datum::bools).collect::<Result<_, _>>()?;
                let picks: Vec<Option<usize>> = (0..self.len)
                    .map(|i| {
                        conds
                            .iter()
                            .position(|c| c.at(i) == Some(true))
                            .or(has_else.then_some(branches.len()))
                    })
                    .collect();
                Datum::owned(gather(*ty, &picks, &values)?)
            }
            P::InSet {
                expr,
                set,
                list_has_null,
                negated,
            } => {
                let x = self.eval(expr)?;
                let s = x.is_scalar();
                let n = self.rows(s);
                let found: Vec<Option<bool>> = match set {
                    LiteralSet::Bool(set) => map1(n, x.bools()?, |v| Some(set.contains(&v))),
                    LiteralSet::Int(set) => map1(n, x.ints()?, |v| Some(set.contains(&v))),
                    LiteralSet::Float(set) => map1(n, x.floats()?, |v| {
                        Some(set.contains(&LiteralSet::float_key(v)))
                    }),
                    LiteralSet::Decimal(set) => map1(n, x.decimals()?, |v| Some(set.contains(&v))),
                    LiteralSet::Date(set) => map1(n, x.dates()?, |v| Some(set.contains(&v))),
                    LiteralSet::Str(set) => {
                        let a = x.strs()?;
                        (0..n).map(|i| a.at(i).map(|v| set.contains(v))).collect()
                    }
                };
                let out = found
                    .into_iter()
                    .map(|f| {
                        let v = match f {
                            Some(false) if *list_has_null => None,
                            other => other,
                        };
                        if *negated {
                            v.map(|b| !b)
                        } else {
                            v
                        }
                    })
                    .collect();
                finish(Column::Bool(out), s)
            }
            P::IsNull { expr, negated } => {
                let x = self.eval(expr)?;
                let s = x.is_scalar();
                let out = x
                    .valid(self.rows(s))
                    .into_iter()
                    .map(|valid| Some(valid == *negated))
                    .collect();
                finish(Column::Bool(out), s)
            }
            P::Coalesce { args, ty } => {
                let values: Vec<Datum<'a>> = args
                    .iter()
                    .map(|a| self.eval(a))
                    .collect::<Result<_, _>>()?;
                // The first argument with a value, row by row: each
                // argument's validity is looked at once, as a whole.
                let mut picks: Vec<Option<usize>> = vec![None; self.len];
                for (k, v) in values.iter().enumerate().rev() {
                    for (p, valid) in picks.iter_mut().zip(v.valid(self.len)) {
                        *p = if valid { Some(k) } else { *p };
                    }
                }
                Datum::owned(gather(*ty, &picks, &values)?)
            }
            P::DaysSince(x) => {
                let v = self.eval(x)?;
                let s = v.is_scalar();
                let as_of = crate::dataset::columns::date_to_days(self.as_of);
                finish(
                    Column::Int(map1(self.rows(s), v.dates()?, |d| {
                        Some(i64::from(as_of) - i64::from(d))
                    })),
                    s,
                )
            }
            P::Cast { expr, to } => {
                let v = self.eval(expr)?;
                let s = v.is_scalar();
                let n = self.rows(s);
                let c = match (expr.ty(), to) {
                    (Type::Null, to) => Column::nulls(*to, n),
                    (Type::Int, Type::Float) => {
                        Column::Float(map1(n, v.ints()?, |i| Some(i as f64)))
                    }
                    (Type::Int, Type::Decimal) => {
                        Column::Decimal(map1(n, v.ints()?, |i| Some(Decimal::from(i))))
                    }
                    (Type::Decimal, Type::Float) => {
                        Column::Float(map1(n, v.decimals()?, |d| d.to_f64().and_then(finite)))
                    }
                    (from, to) => return Err(internal(format!("no cast from {from} to {to}"))),
                };
                finish(c, s)
            }
        })
    }

    fn arithmetic(
        &self,
        op: BinaryOp,
        left: &PhysicalExpr,
        right: &PhysicalExpr,
        ty: Type,
    ) -> Result<Datum<'a>, EvalError> {
        let (l, r) = (self.eval(left)?, self.eval(right)?);
        let s = l.is_scalar() && r.is_scalar();
        let n = self.rows(s);
        let c = match ty {
            Type::Int => Column::Int(zip2(n, l.ints()?, r.ints()?, |a, b| match op {
                BinaryOp::Add => a.checked_add(b),
                BinaryOp::Sub => a.checked_sub(b),
                BinaryOp::Mul => a.checked_mul(b),
                _ => None,
            })),
            Type::Float => Column::Float(zip2(n, l.floats()?, r.floats()?, |a, b| match op {
                BinaryOp::Add => finite(a + b),
                BinaryOp::Sub => finite(a - b),
                BinaryOp::Mul => finite(a * b),
                _ if b == 0.0 => None,
                _ => finite(a / b),
            })),
            Type::Decimal => {
                Column::Decimal(zip2(n, l.decimals()?, r.decimals()?, |a, b| match op {
                    BinaryOp::Add => a.checked_add(b),
                    BinaryOp::Sub => a.checked_sub(b),
                    BinaryOp::Mul => a.checked_mul(b),
                    _ => None,
                }))
            }
            // Both sides NULL literals.
            Type::Null => Column::Null(n),
            other => return Err(internal(format!("arithmetic on {other}"))),
        };
        Ok(finish(c, s))
    }

    fn compare(
        &self,
        op: BinaryOp,
        left: &PhysicalExpr,
        right: &PhysicalExpr,
    ) -> Result<Datum<'a>, EvalError> {
        let (l, r) = (self.eval(left)?, self.eval(right)?);
        let s = l.is_scalar() && r.is_scalar();
        let n = self.rows(s);
        // Whether the comparison holds for Less, Equal and Greater: a table
        // lookup in the loops instead of a match on the operator.
        let table = [
            holds(op, Ordering::Less),
            holds(op, Ordering::Equal),
            holds(op, Ordering::Greater),
        ];
        let cmp = |o: Option<Ordering>| o.map(|o| table[(o as i8 + 1) as usize]);
        let out = match left.ty() {
            Type::Bool => ordered(n, op, l.bools()?, r.bools()?),
            Type::Int => ordered(n, op, l.ints()?, r.ints()?),
            Type::Float => zip2(n, l.floats()?, r.floats()?, |a, b| cmp(a.partial_cmp(&b))),
            Type::Decimal => zip2(n, l.decimals()?, r.decimals()?, |a, b| {
                cmp(Some(decimal_order(a, b)))
            }),
            Type::Date => ordered(n, op, l.dates()?, r.dates()?),
            Type::Str => {
                let (a, b) = (l.strs()?, r.strs()?);
                (0..n)
                    .map(|i| match (a.at(i), b.at(i)) {
                        (Some(x), Some(y)) => cmp(Some(x.cmp(y))),
                        _ => None,
                    })
                    .collect()
            }
            Type::Null => vec![None; n],
        };
        Ok(finish(Column::Bool(out), s))
    }
}

/// A comparison of totally ordered values (booleans, integers, dates),
/// one loop per operator so each is a plain comparison.
fn ordered<T: Ord + Copy>(
    n: usize,
    op: BinaryOp,
    a: Acc<'_, T>,
    b: Acc<'_, T>,
) -> Vec<Option<bool>> {
    match op {
        BinaryOp::Eq => zip2(n, a, b, |x, y| Some(x == y)),
        BinaryOp::NotEq => zip2(n, a, b, |x, y| Some(x != y)),
        BinaryOp::Lt => zip2(n, a, b, |x, y| Some(x < y)),
        BinaryOp::LtEq => zip2(n, a, b, |x, y| Some(x <= y)),
        BinaryOp::Gt => zip2(n, a, b, |x, y| Some(x > y)),
        _ => zip2(n, a, b, |x, y| Some(x >= y)),
    }
}

/// The order of two decimals; at the same scale (the score against a
/// literal held at the score's scale) the mantissas decide, without
/// rescaling.
#[inline(always)]
fn decimal_order(a: Decimal, b: Decimal) -> Ordering {
    if a.scale() == b.scale() {
        a.mantissa().cmp(&b.mantissa())
    } else {
        a.cmp(&b)
    }
}

/// SQL three-valued AND / OR.
#[inline(always)]
fn kleene(and: bool, a: Option<bool>, b: Option<bool>) -> Option<bool> {
    if and {
        match (a, b) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        }
    } else {
        match (a, b) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        }
    }
}

/// Row `i` takes row `i` of `values[picks[i]]` (NULL where no pick).
fn gather(ty: Type, picks: &[Option<usize>], values: &[Datum<'_>]) -> Result<Column, EvalError> {
    fn pick<T: Copy>(picks: &[Option<usize>], accs: &[Acc<'_, T>]) -> Vec<Option<T>> {
        picks
            .iter()
            .enumerate()
            .map(|(i, p)| p.and_then(|k| accs[k].at(i)))
            .collect()
    }
    macro_rules! typed {
        ($get:ident, $variant:ident) => {{
            let accs = values
                .iter()
                .map(Datum::$get)
                .collect::<Result<Vec<_>, _>>()?;
            Column::$variant(pick(picks, &accs))
        }};
    }
    Ok(match ty {
        Type::Bool => typed!(bools, Bool),
        Type::Int => typed!(ints, Int),
        Type::Float => typed!(floats, Float),
        Type::Decimal => typed!(decimals, Decimal),
        Type::Date => typed!(dates, Date),
        Type::Str => {
            let accs = values
                .iter()
                .map(Datum::strs)
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = StringBuilder::with_capacity(picks.len(), picks.len() * 8);
            for (i, p) in picks.iter().enumerate() {
                out.append_option(p.and_then(|k| accs[k].at(i)));
            }
            Column::Str(out.finish())
        }
        Type::Null => Column::Null(picks.len()),
    })
}

/// Per row: Some(true) TRUE, Some(false) FALSE, None NULL.
pub fn tri_state(d: Datum<'_>, len: usize) -> Result<Vec<Option<bool>>, EvalError> {
    Ok(match d.into_column(Type::Bool, len) {
        Column::Bool(v) => v,
        Column::Null(n) => vec![None; n],
        _ => return Err(internal("a condition is not true/false")),
    })
}

/// TRUE rows of a condition (NULL and FALSE are not true).
pub fn true_mask(d: Datum<'_>, len: usize) -> Result<Vec<bool>, EvalError> {
    Ok(tri_state(d, len)?
        .into_iter()
        .map(|b| b == Some(true))
        .collect())
}
