//! Vectorised expression evaluation over a chunk of people.
//!
//! Every expression of a checked pack is evaluated once per chunk with Arrow
//! compute kernels, returning an array or a scalar ([`Col`]) so that
//! constants are never expanded needlessly (the shape of DataFusion's
//! `ColumnarValue`). Types were fixed by the checker; the only coercions here
//! are the numeric widenings the checker allowed (int to float or decimal).
//! NULL follows SQL's three-valued logic throughout (Kleene AND/OR).

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Date32Array, Datum, Decimal128Array,
    Float64Array, Int64Array, Int64Builder, Scalar, StringArray, StringBuilder, UInt32Array,
};
use arrow::compute::kernels::{boolean, cmp, numeric, zip::zip};
use arrow::compute::{cast, is_not_null, is_null, nullif, take};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Float64Type, Int64Type};
use arrow::error::ArrowError;
use chrono::NaiveDate;

use crate::dataset::columns::{date_to_days, days_to_date};
use crate::exec::scan::{AccColumn, NO_MAX_DATE, NO_MIN_DATE};
use crate::pack::{AggregateFunc, BinaryOp, Expr, Type, Value};
use crate::plan::types::{
    age_on, arrow_type, decimal_to_scaled, scaled_to_decimal, DECIMAL_PRECISION, DECIMAL_SCALE,
};
use crate::plan::AggIndex;

/// An evaluated expression: one value per person, or one for everybody.
#[derive(Debug, Clone)]
pub enum Col {
    Array(ArrayRef),
    /// A one-element array standing for every row.
    Scalar(ArrayRef),
}

impl Col {
    fn array(&self) -> &ArrayRef {
        match self {
            Col::Array(a) | Col::Scalar(a) => a,
        }
    }

    /// The column as a full-length array.
    pub fn into_array(self, len: usize) -> Result<ArrayRef, ArrowError> {
        match self {
            Col::Array(a) => Ok(a),
            Col::Scalar(a) => expand(&a, len),
        }
    }

    fn map(
        &self,
        f: impl FnOnce(&ArrayRef) -> Result<ArrayRef, ArrowError>,
    ) -> Result<Col, ArrowError> {
        Ok(match self {
            Col::Array(a) => Col::Array(f(a)?),
            Col::Scalar(a) => Col::Scalar(f(a)?),
        })
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Col::Scalar(_))
    }
}

fn expand(a: &ArrayRef, len: usize) -> Result<ArrayRef, ArrowError> {
    take(a.as_ref(), &UInt32Array::from(vec![0u32; len]), None)
}

fn with_datum<R>(c: &Col, f: impl FnOnce(&dyn Datum) -> R) -> R {
    match c {
        Col::Array(a) => f(a),
        Col::Scalar(a) => f(&Scalar::new(a.clone())),
    }
}

fn binary_kernel(
    l: &Col,
    r: &Col,
    f: impl FnOnce(&dyn Datum, &dyn Datum) -> Result<ArrayRef, ArrowError>,
) -> Result<Col, ArrowError> {
    let out = with_datum(l, |ld| with_datum(r, |rd| f(ld, rd)))?;
    Ok(if l.is_scalar() && r.is_scalar() {
        Col::Scalar(out)
    } else {
        Col::Array(out)
    })
}

fn cmp_kernel(
    l: &Col,
    r: &Col,
    f: impl FnOnce(&dyn Datum, &dyn Datum) -> Result<BooleanArray, ArrowError>,
) -> Result<Col, ArrowError> {
    binary_kernel(l, r, |a, b| f(a, b).map(|x| Arc::new(x) as ArrayRef))
}

fn literal(v: &Value) -> ArrayRef {
    match v {
        Value::Null => new_null_array(&DataType::Null, 1),
        Value::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Value::Int(i) => Arc::new(Int64Array::from(vec![*i])),
        Value::Float(x) => Arc::new(Float64Array::from(vec![*x])),
        Value::Decimal(d) => match decimal_to_scaled(*d) {
            Some(m) => Arc::new(
                Decimal128Array::from(vec![m])
                    .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
                    .unwrap_or_else(|_| Decimal128Array::from(vec![m])),
            ),
            None => Arc::new(Float64Array::from(vec![d
                .to_string()
                .parse::<f64>()
                .unwrap_or(f64::NAN)])),
        },
        Value::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Value::Date(d) => Arc::new(Date32Array::from(vec![date_to_days(*d)])),
    }
}

/// The value of row `i` of an engine array of pack type `ty`.
pub fn value_at(a: &dyn Array, ty: Type, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match ty {
        Type::Bool => Value::Bool(a.as_boolean().value(i)),
        Type::Int => Value::Int(a.as_primitive::<Int64Type>().value(i)),
        Type::Float => Value::Float(a.as_primitive::<Float64Type>().value(i)),
        Type::Decimal => Value::Decimal(scaled_to_decimal(
            a.as_primitive::<Decimal128Type>().value(i),
        )),
        Type::Str => Value::Str(a.as_string::<i32>().value(i).to_string()),
        Type::Date => days_to_date(a.as_primitive::<Date32Type>().value(i))
            .map(Value::Date)
            .unwrap_or(Value::Null),
        Type::Null => Value::Null,
    }
}

/// Everything an expression may read, for people `start .. start + len`.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub start: usize,
    pub len: usize,
    pub as_of: NaiveDate,
    pub as_of_days: i32,
    /// Patient columns by name, full length, already in the pack's types.
    pub columns: &'a dyn Fn(&str) -> Option<ArrayRef>,
    pub date_of_birth: &'a Date32Array,
    pub registration_end: &'a Date32Array,
    pub date_of_death: &'a Date32Array,
    pub accs: &'a [AccColumn],
    pub source: &'a AggIndex,
    pub last_contact: &'a [i32],
    /// Chunk-local arrays of the features evaluated so far.
    pub features: &'a [ArrayRef],
    pub score: Option<&'a ArrayRef>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("evaluating an expression: {0}")]
    Arrow(#[from] ArrowError),
    #[error("internal: {0}")]
    Internal(String),
}

fn internal(msg: impl Into<String>) -> EvalError {
    EvalError::Internal(msg.into())
}

impl Env<'_> {
    fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len
    }

    fn age(&self) -> Int64Array {
        let dob = self.date_of_birth.slice(self.start, self.len);
        dob.iter()
            .map(|d| age_on(days_to_date(d?)?, self.as_of))
            .collect()
    }

    fn still(&self, until: &Date32Array) -> BooleanArray {
        let s = until.slice(self.start, self.len);
        s.iter()
            .map(|d| Some(d.is_none_or(|d| d > self.as_of_days)))
            .collect()
    }

    fn acc(&self, a: usize) -> Result<&AccColumn, EvalError> {
        self.accs
            .get(a)
            .ok_or_else(|| internal("accumulator out of range"))
    }

    fn counts(&self, a: usize) -> Result<&[u32], EvalError> {
        match self.acc(a)? {
            AccColumn::Count(v) => Ok(&v[self.range()]),
            _ => Err(internal("expected a count accumulator")),
        }
    }

    fn flags(&self, a: usize) -> Result<&[u8], EvalError> {
        match self.acc(a)? {
            AccColumn::Any(v) => Ok(&v[self.range()]),
            _ => Err(internal("expected an any accumulator")),
        }
    }

    fn dates(&self, a: usize) -> Result<Date32Array, EvalError> {
        let (v, none) = match self.acc(a)? {
            AccColumn::MinDate(v) => (v, NO_MIN_DATE),
            AccColumn::MaxDate(v) => (v, NO_MAX_DATE),
            _ => return Err(internal("expected a date accumulator")),
        };
        Ok(v[self.range()]
            .iter()
            .map(|&d| (d != none).then_some(d))
            .collect())
    }

    fn values(&self, a: usize) -> Result<Float64Array, EvalError> {
        let v = match self.acc(a)? {
            AccColumn::LastValue(_, v) | AccColumn::MinValue(v) | AccColumn::MaxValue(v) => v,
            _ => return Err(internal("expected a value accumulator")),
        };
        Ok(v[self.range()]
            .iter()
            .map(|&x| (!x.is_nan()).then_some(x))
            .collect())
    }

    fn aggregate(
        &self,
        func: AggregateFunc,
        codelists: &[usize],
        window: &crate::pack::Window,
    ) -> Result<ArrayRef, EvalError> {
        let acc = |c: usize| {
            self.source
                .acc(func, c, window)
                .ok_or_else(|| internal("aggregate has no accumulator"))
        };
        let first = *codelists
            .first()
            .ok_or_else(|| internal("aggregate without codelist"))?;
        Ok(match func {
            AggregateFunc::Has => Arc::new(
                self.flags(acc(first)?)?
                    .iter()
                    .map(|&c| Some(c > 0))
                    .collect::<BooleanArray>(),
            ),
            AggregateFunc::Count => Arc::new(Int64Array::from_iter_values(
                self.counts(acc(first)?)?.iter().map(|&c| i64::from(c)),
            )),
            AggregateFunc::CountDistinctCodelists => {
                let mut total = vec![0i64; self.len];
                for &c in codelists {
                    for (t, &n) in total.iter_mut().zip(self.flags(acc(c)?)?) {
                        *t += i64::from(n > 0);
                    }
                }
                Arc::new(Int64Array::from(total))
            }
            AggregateFunc::FirstDate | AggregateFunc::LastDate => {
                Arc::new(self.dates(acc(first)?)?)
            }
            AggregateFunc::LastValue | AggregateFunc::MinValue | AggregateFunc::MaxValue => {
                Arc::new(self.values(acc(first)?)?)
            }
        })
    }

    fn latest_of(&self, a: usize, b: usize) -> Result<ArrayRef, EvalError> {
        let da = self.dates(
            self.source
                .latest(a)
                .ok_or_else(|| internal("latest_of without accumulator"))?,
        )?;
        let db = self.dates(
            self.source
                .latest(b)
                .ok_or_else(|| internal("latest_of without accumulator"))?,
        )?;
        let (na, nb) = (self.source.codelist_name(a), self.source.codelist_name(b));
        let mut out = StringBuilder::with_capacity(self.len, self.len * 8);
        for (x, y) in da.iter().zip(db.iter()) {
            match first_is_latest(x, y) {
                None => out.append_null(),
                Some(true) => out.append_value(na),
                Some(false) => out.append_value(nb),
            }
        }
        Ok(Arc::new(out.finish()))
    }

    fn contacted(&self, window: &crate::pack::Window) -> BooleanArray {
        let lower = window
            .lower_bound(self.as_of)
            .map(date_to_days)
            .unwrap_or(i32::MIN);
        self.last_contact[self.range()]
            .iter()
            .map(|&d| Some(d != NO_MAX_DATE && d >= lower))
            .collect()
    }

    /// Evaluates `expr` for this chunk.
    pub fn eval(&self, expr: &Expr) -> Result<Col, EvalError> {
        Ok(match expr {
            Expr::Literal(v) => Col::Scalar(literal(v)),
            Expr::Column { name, ty } => {
                let full = (self.columns)(name)
                    .ok_or_else(|| internal(format!("column {name} not planned")))?;
                let a = full.slice(self.start, self.len);
                Col::Array(if a.data_type() == &arrow_type(*ty) {
                    a
                } else {
                    cast(&a, &arrow_type(*ty))?
                })
            }
            Expr::Feature { index, .. } => Col::Array(
                self.features
                    .get(*index)
                    .cloned()
                    .ok_or_else(|| internal("feature evaluated out of order"))?,
            ),
            Expr::Age => Col::Array(Arc::new(self.age())),
            Expr::AsOf => Col::Scalar(Arc::new(Date32Array::from(vec![self.as_of_days]))),
            Expr::Registered => Col::Array(Arc::new(self.still(self.registration_end))),
            Expr::Alive => Col::Array(Arc::new(self.still(self.date_of_death))),
            Expr::Score => Col::Array(
                self.score
                    .cloned()
                    .ok_or_else(|| internal("score used outside a tier condition"))?,
            ),
            Expr::Not(e) => self.eval(e)?.map(|a| {
                let b = cast(a, &DataType::Boolean)?;
                Ok(Arc::new(boolean::not(b.as_boolean())?) as ArrayRef)
            })?,
            Expr::Neg(e) => {
                let ty = expr.ty();
                self.eval(e)?
                    .map(|a| numeric::neg_wrapping(&cast(a, &arrow_type(ty))?))?
            }
            Expr::Binary { op, left, right } => self.binary(*op, left, right)?,
            Expr::Case {
                operand,
                branches,
                else_result,
                ty,
            } => self.case(operand.as_deref(), branches, else_result.as_deref(), *ty)?,
            Expr::InList {
                expr: e,
                list,
                negated,
            } => {
                let x = self.eval(e)?;
                let mut acc: Option<ArrayRef> = None;
                for item in list {
                    let y = self.eval(item)?;
                    let eq = self
                        .compare(BinaryOp::Eq, &x, e.ty(), &y, item.ty())?
                        .into_array(self.len)?;
                    acc = Some(match acc {
                        None => eq,
                        Some(prev) => {
                            Arc::new(boolean::or_kleene(prev.as_boolean(), eq.as_boolean())?)
                        }
                    });
                }
                let out =
                    acc.unwrap_or_else(|| Arc::new(BooleanArray::from(vec![false; self.len])));
                Col::Array(if *negated {
                    Arc::new(boolean::not(out.as_boolean())?)
                } else {
                    out
                })
            }
            Expr::Between {
                expr: e,
                low,
                high,
                negated,
            } => {
                let x = self.eval(e)?;
                let lo = self.eval(low)?;
                let hi = self.eval(high)?;
                let a = self
                    .compare(BinaryOp::GtEq, &x, e.ty(), &lo, low.ty())?
                    .into_array(self.len)?;
                let b = self
                    .compare(BinaryOp::LtEq, &x, e.ty(), &hi, high.ty())?
                    .into_array(self.len)?;
                let both = boolean::and_kleene(a.as_boolean(), b.as_boolean())?;
                Col::Array(Arc::new(if *negated { boolean::not(&both)? } else { both }))
            }
            Expr::IsNull { expr: e, negated } => {
                let x = self.eval(e)?.into_array(self.len)?;
                Col::Array(Arc::new(if *negated {
                    is_not_null(&x)?
                } else {
                    is_null(&x)?
                }))
            }
            Expr::Coalesce { args, ty } => {
                let target = arrow_type(*ty);
                let mut out: ArrayRef = new_null_array(&target, self.len);
                for arg in args.iter().rev() {
                    let v = self.eval(arg)?.into_array(self.len)?;
                    let v = if v.data_type() == &target {
                        v
                    } else {
                        cast(&v, &target)?
                    };
                    out = zip(&is_not_null(&v)?, &v, &out)?;
                }
                Col::Array(out)
            }
            Expr::DaysSince(e) => self.eval(e)?.map(|a| {
                let d = cast(a, &DataType::Date32)?;
                let d = d.as_primitive::<Date32Type>();
                let mut b = Int64Builder::with_capacity(d.len());
                for v in d.iter() {
                    b.append_option(v.map(|v| i64::from(self.as_of_days) - i64::from(v)));
                }
                Ok(Arc::new(b.finish()) as ArrayRef)
            })?,
            Expr::Aggregate {
                func,
                codelists,
                window,
            } => Col::Array(self.aggregate(*func, codelists, window)?),
            Expr::LatestOf { a, b } => Col::Array(self.latest_of(*a, *b)?),
            Expr::Contacted(w) => Col::Array(Arc::new(self.contacted(w))),
            Expr::LastContact => Col::Array(Arc::new(
                self.last_contact[self.range()]
                    .iter()
                    .map(|&d| (d != NO_MAX_DATE).then_some(d))
                    .collect::<Date32Array>(),
            )),
        })
    }

    fn binary(&self, op: BinaryOp, left: &Expr, right: &Expr) -> Result<Col, EvalError> {
        let l = self.eval(left)?;
        let r = self.eval(right)?;
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let l = cast(&l.into_array(self.len)?, &DataType::Boolean)?;
                let r = cast(&r.into_array(self.len)?, &DataType::Boolean)?;
                let out = if op == BinaryOp::And {
                    boolean::and_kleene(l.as_boolean(), r.as_boolean())?
                } else {
                    boolean::or_kleene(l.as_boolean(), r.as_boolean())?
                };
                Ok(Col::Array(Arc::new(out)))
            }
            _ if op.is_arithmetic() => {
                let ty = crate::pack::expr::arithmetic_type(op, left.ty(), right.ty());
                let target = arrow_type(ty);
                let l = l.map(|a| cast(a, &target))?;
                let r = r.map(|a| cast(a, &target))?;
                let out = match op {
                    BinaryOp::Add => binary_kernel(&l, &r, numeric::add_wrapping)?,
                    BinaryOp::Sub => binary_kernel(&l, &r, numeric::sub_wrapping)?,
                    BinaryOp::Mul => binary_kernel(&l, &r, numeric::mul_wrapping)?,
                    _ => {
                        // Division by zero is NULL, never infinity.
                        let zero = cmp_kernel(
                            &r,
                            &Col::Scalar(Arc::new(Float64Array::from(vec![0.0]))),
                            cmp::eq,
                        )?;
                        let q = binary_kernel(&l, &r, numeric::div)?;
                        let both_scalar = q.is_scalar() && zero.is_scalar();
                        let n = if both_scalar { 1 } else { self.len };
                        let q = q.into_array(n)?;
                        let zero = zero.into_array(n)?;
                        let out = nullif(&q, zero.as_boolean())?;
                        if both_scalar {
                            Col::Scalar(out)
                        } else {
                            Col::Array(out)
                        }
                    }
                };
                // Decimal products carry a wider scale: bring them back.
                Ok(if out.array().data_type() != &target {
                    out.map(|a| cast(a, &target))?
                } else {
                    out
                })
            }
            _ => self.compare(op, &l, left.ty(), &r, right.ty()),
        }
    }

    /// SQL comparison with the numeric widening the checker allowed.
    fn compare(
        &self,
        op: BinaryOp,
        l: &Col,
        lt: Type,
        r: &Col,
        rt: Type,
    ) -> Result<Col, EvalError> {
        let common = match (lt, rt) {
            (Type::Null, t) | (t, Type::Null) => t,
            (a, b) if a == b => a,
            (Type::Float, _) | (_, Type::Float) => Type::Float,
            (Type::Decimal, _) | (_, Type::Decimal) => Type::Decimal,
            (a, _) => a,
        };
        if common == Type::Null {
            return Ok(Col::Scalar(new_null_array(&DataType::Boolean, 1)));
        }
        let target = arrow_type(common);
        let l = l.map(|a| {
            if a.data_type() == &target {
                Ok(a.clone())
            } else {
                cast(a, &target)
            }
        })?;
        let r = r.map(|a| {
            if a.data_type() == &target {
                Ok(a.clone())
            } else {
                cast(a, &target)
            }
        })?;
        let f = match op {
            BinaryOp::Eq => cmp::eq,
            BinaryOp::NotEq => cmp::neq,
            BinaryOp::Lt => cmp::lt,
            BinaryOp::LtEq => cmp::lt_eq,
            BinaryOp::Gt => cmp::gt,
            BinaryOp::GtEq => cmp::gt_eq,
            _ => return Err(internal("not a comparison")),
        };
        Ok(cmp_kernel(&l, &r, f)?)
    }

    fn case(
        &self,
        operand: Option<&Expr>,
        branches: &[(Expr, Expr)],
        else_result: Option<&Expr>,
        ty: Type,
    ) -> Result<Col, EvalError> {
        let target = arrow_type(ty);
        let fit = |a: ArrayRef| -> Result<ArrayRef, ArrowError> {
            if a.data_type() == &target {
                Ok(a)
            } else {
                cast(&a, &target)
            }
        };
        let mut out = match else_result {
            Some(e) => fit(self.eval(e)?.into_array(self.len)?)?,
            None => new_null_array(&target, self.len),
        };
        let subject = operand
            .map(|o| self.eval(o).map(|c| (c, o.ty())))
            .transpose()?;
        for (when, then) in branches.iter().rev() {
            let cond = match &subject {
                Some((x, xt)) => {
                    self.compare(BinaryOp::Eq, x, *xt, &self.eval(when)?, when.ty())?
                }
                None => self.eval(when)?,
            };
            let cond = cast(&cond.into_array(self.len)?, &DataType::Boolean)?;
            let mask = only_true(cond.as_boolean());
            let value = fit(self.eval(then)?.into_array(self.len)?)?;
            out = zip(&mask, &value, &out)?;
        }
        Ok(Col::Array(out))
    }
}

/// Which of two latest dates wins "latest code wins": `Some(true)` for the
/// first, `Some(false)` for the second (which also wins a same-day tie, the
/// removal-code convention), `None` when neither has a code.
pub fn first_is_latest(a: Option<i32>, b: Option<i32>) -> Option<bool> {
    match (a, b) {
        (None, None) => None,
        (Some(x), Some(y)) => Some(x > y),
        (Some(_), None) => Some(true),
        (None, Some(_)) => Some(false),
    }
}

/// The same booleans with NULL turned into FALSE.
fn only_true(b: &BooleanArray) -> BooleanArray {
    match b.nulls() {
        None => b.clone(),
        Some(n) => BooleanArray::new(b.values() & n.inner(), None),
    }
}

/// TRUE rows of a boolean column (NULL and FALSE are not true).
pub fn true_mask(c: Col, len: usize) -> Result<BooleanArray, EvalError> {
    let a = cast(&c.into_array(len)?, &DataType::Boolean)?;
    Ok(only_true(a.as_boolean()))
}

/// Per-row: Some(true) fired, Some(false) not, None unknown (NULL).
pub fn tri_state(c: Col, len: usize) -> Result<BooleanArray, EvalError> {
    let a = cast(&c.into_array(len)?, &DataType::Boolean)?;
    Ok(a.as_boolean().clone())
}
