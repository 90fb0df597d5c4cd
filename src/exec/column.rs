//! The engine's values for a chunk of people: a typed column, or one
//! scalar standing for every row (so constants are never expanded; the
//! shape of DataFusion's `ColumnarValue`).
//!
//! Primitive columns are plain `Vec<Option<T>>`, strings stay Arrow
//! string arrays (zero-copy slices of the patients table). Decimals are
//! exact `rust_decimal` values, so the score and literals next to it are
//! compared exactly as written.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array,
    Float64Array, Int64Array, StringArray,
};
use arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type};
use rust_decimal::Decimal;

use crate::dataset::columns::{date_to_days, days_to_date};
use crate::pack::{Type, Value};
use crate::plan::types::{arrow_type, decimal_to_scaled, DECIMAL_PRECISION, DECIMAL_SCALE};

use super::eval::EvalError;

/// A column of one pack type for a chunk of people.
#[derive(Debug, Clone)]
pub enum Column {
    Bool(Vec<Option<bool>>),
    Int(Vec<Option<i64>>),
    /// Never NaN or infinite: such values are NULL.
    Float(Vec<Option<f64>>),
    Decimal(Vec<Option<Decimal>>),
    Str(StringArray),
    /// Date32 days.
    Date(Vec<Option<i32>>),
    /// All NULL, of no particular type.
    Null(usize),
}

/// An evaluated expression: one value per person (owned, or borrowed from
/// the chunk's columns and features), or one value for everybody.
#[derive(Debug, Clone)]
pub enum Datum<'a> {
    Column(Cow<'a, Column>),
    Scalar(Value),
}

/// Reads row `i` of a primitive datum.
#[derive(Debug, Clone, Copy)]
pub enum Acc<'a, T: Copy> {
    Col(&'a [Option<T>]),
    Const(Option<T>),
}

impl<T: Copy> Acc<'_, T> {
    #[inline]
    pub fn at(&self, i: usize) -> Option<T> {
        match self {
            Acc::Col(v) => v[i],
            Acc::Const(c) => *c,
        }
    }
}

/// Reads row `i` of a string datum.
#[derive(Debug, Clone, Copy)]
pub enum StrAcc<'a> {
    Col(&'a StringArray),
    Const(Option<&'a str>),
}

impl<'a> StrAcc<'a> {
    #[inline]
    pub fn at(&self, i: usize) -> Option<&'a str> {
        match self {
            StrAcc::Col(a) => a.is_valid(i).then(|| a.value(i)),
            StrAcc::Const(c) => *c,
        }
    }
}

fn mismatch(what: &str) -> EvalError {
    EvalError::Internal(format!(
        "expected {what} values (the plan's types disagree)"
    ))
}

macro_rules! accessor {
    ($name:ident, $t:ty, $variant:ident, $value:ident, $what:expr, $convert:expr) => {
        pub fn $name(&self) -> Result<Acc<'_, $t>, EvalError> {
            match self {
                Datum::Column(c) => match c.as_ref() {
                    Column::$variant(v) => Ok(Acc::Col(v)),
                    Column::Null(_) => Ok(Acc::Const(None)),
                    _ => Err(mismatch($what)),
                },
                Datum::Scalar(Value::Null) => Ok(Acc::Const(None)),
                Datum::Scalar(Value::$value(x)) => Ok(Acc::Const(Some($convert(x)))),
                _ => Err(mismatch($what)),
            }
        }
    };
}

impl<'a> Datum<'a> {
    pub fn owned(c: Column) -> Datum<'a> {
        Datum::Column(Cow::Owned(c))
    }

    pub fn borrowed(c: &'a Column) -> Datum<'a> {
        Datum::Column(Cow::Borrowed(c))
    }

    accessor!(bools, bool, Bool, Bool, "true/false", |x: &bool| *x);
    accessor!(ints, i64, Int, Int, "int", |x: &i64| *x);
    accessor!(floats, f64, Float, Float, "float", |x: &f64| *x);
    accessor!(
        decimals,
        Decimal,
        Decimal,
        Decimal,
        "decimal",
        |x: &Decimal| *x
    );
    accessor!(dates, i32, Date, Date, "date", |d: &chrono::NaiveDate| {
        date_to_days(*d)
    });

    pub fn strs(&self) -> Result<StrAcc<'_>, EvalError> {
        match self {
            Datum::Column(c) => match c.as_ref() {
                Column::Str(a) => Ok(StrAcc::Col(a)),
                Column::Null(_) => Ok(StrAcc::Const(None)),
                _ => Err(mismatch("string")),
            },
            Datum::Scalar(Value::Null) => Ok(StrAcc::Const(None)),
            Datum::Scalar(Value::Str(s)) => Ok(StrAcc::Const(Some(s.as_str()))),
            _ => Err(mismatch("string")),
        }
    }

    pub fn is_scalar(&self) -> bool {
        matches!(self, Datum::Scalar(_))
    }

    /// Whether each of rows `0 .. len` holds a value (not NULL).
    pub fn valid(&self, len: usize) -> Vec<bool> {
        match self {
            Datum::Scalar(v) => vec![!v.is_null(); len],
            Datum::Column(c) => c.valid(len),
        }
    }

    /// The datum as a column of `len` rows.
    pub fn into_column(self, ty: Type, len: usize) -> Column {
        match self {
            Datum::Column(c) => c.into_owned(),
            Datum::Scalar(v) => Column::repeat(&v, ty, len),
        }
    }
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Bool(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Decimal(v) => v.len(),
            Column::Str(a) => a.len(),
            Column::Date(v) => v.len(),
            Column::Null(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether each of the first `len` rows holds a value (not NULL), a
    /// loop per type.
    pub fn valid(&self, len: usize) -> Vec<bool> {
        fn some<T>(v: &[Option<T>]) -> Vec<bool> {
            v.iter().map(Option::is_some).collect()
        }
        match self {
            Column::Bool(v) => some(&v[..len]),
            Column::Int(v) => some(&v[..len]),
            Column::Float(v) => some(&v[..len]),
            Column::Decimal(v) => some(&v[..len]),
            Column::Date(v) => some(&v[..len]),
            Column::Str(a) => match a.nulls() {
                Some(n) => n.iter().take(len).collect(),
                None => vec![true; len],
            },
            Column::Null(_) => vec![false; len],
        }
    }

    /// `len` copies of a scalar, as a column of type `ty`.
    pub fn repeat(v: &Value, ty: Type, len: usize) -> Column {
        match (v, ty) {
            (Value::Bool(b), _) => Column::Bool(vec![Some(*b); len]),
            (Value::Int(i), _) => Column::Int(vec![Some(*i); len]),
            (Value::Float(x), _) => Column::Float(vec![Some(*x).filter(|x| x.is_finite()); len]),
            (Value::Decimal(d), _) => Column::Decimal(vec![Some(*d); len]),
            (Value::Str(s), _) => Column::Str(StringArray::from(vec![s.as_str(); len])),
            (Value::Date(d), _) => Column::Date(vec![Some(date_to_days(*d)); len]),
            (Value::Null, ty) => Column::nulls(ty, len),
        }
    }

    /// A column of `len` NULLs of type `ty`.
    pub fn nulls(ty: Type, len: usize) -> Column {
        match ty {
            Type::Bool => Column::Bool(vec![None; len]),
            Type::Int => Column::Int(vec![None; len]),
            Type::Float => Column::Float(vec![None; len]),
            Type::Decimal => Column::Decimal(vec![None; len]),
            Type::Str => Column::Str(StringArray::new_null(len)),
            Type::Date => Column::Date(vec![None; len]),
            Type::Null => Column::Null(len),
        }
    }

    /// The value of row `i`.
    pub fn value(&self, i: usize) -> Value {
        let v = match self {
            Column::Bool(v) => v[i].map(Value::Bool),
            Column::Int(v) => v[i].map(Value::Int),
            Column::Float(v) => v[i].map(Value::Float),
            Column::Decimal(v) => v[i].map(Value::Decimal),
            Column::Str(a) => a.is_valid(i).then(|| Value::Str(a.value(i).to_string())),
            Column::Date(v) => v[i].and_then(days_to_date).map(Value::Date),
            Column::Null(_) => None,
        };
        v.unwrap_or(Value::Null)
    }

    /// A full-length Arrow array of a planned patient column, sliced to
    /// rows `start .. start + len`, as an engine column of type `ty`.
    pub fn from_arrow_slice(
        a: &ArrayRef,
        ty: Type,
        start: usize,
        len: usize,
    ) -> Result<Column, EvalError> {
        let s = a.slice(start, len);
        let wrong = || mismatch(ty.name());
        Ok(match ty {
            Type::Bool => Column::Bool(s.as_boolean_opt().ok_or_else(wrong)?.iter().collect()),
            // Planned int columns are 64-bit, or 32-bit kept as stored.
            Type::Int => Column::Int(match s.as_primitive_opt::<Int32Type>() {
                Some(narrow) => options_as(narrow, i64::from),
                None => options(s.as_primitive_opt::<Int64Type>().ok_or_else(wrong)?),
            }),
            // Planned float columns are finite already (see plan::bind).
            Type::Float => Column::Float(options(
                s.as_primitive_opt::<Float64Type>().ok_or_else(wrong)?,
            )),
            Type::Date => Column::Date(options(
                s.as_primitive_opt::<Date32Type>().ok_or_else(wrong)?,
            )),
            Type::Str => Column::Str(s.as_string_opt::<i32>().ok_or_else(wrong)?.clone()),
            Type::Decimal | Type::Null => Column::Null(len),
        })
    }

    /// The column as an Arrow array of the engine's type for `ty`
    /// (for list files and `list.parquet`).
    pub fn to_arrow(&self, ty: Type) -> ArrayRef {
        self.to_arrow_rows(ty, None)
    }

    /// Rows `rows` of the column (all rows when `None`), in that order, as
    /// an Arrow array of the engine's type for `ty`.
    pub fn to_arrow_rows(&self, ty: Type, rows: Option<&[u32]>) -> ArrayRef {
        fn pick<T: Copy>(v: &[Option<T>], rows: Option<&[u32]>) -> Vec<Option<T>> {
            match rows {
                Some(r) => r.iter().map(|&i| v[i as usize]).collect(),
                None => v.to_vec(),
            }
        }
        match self {
            Column::Bool(v) => Arc::new(bool_array(&pick(v, rows))),
            Column::Int(v) => Arc::new(Int64Array::from(pick(v, rows))),
            Column::Float(v) => Arc::new(Float64Array::from(pick(v, rows))),
            Column::Decimal(v) => {
                let picked = pick(v, rows);
                let n = picked.len();
                let scaled: Decimal128Array = picked
                    .into_iter()
                    .map(|d| d.and_then(decimal_to_scaled))
                    .collect();
                match scaled.with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE) {
                    Ok(a) => Arc::new(a),
                    Err(_) => new_null_array(&arrow_type(Type::Decimal), n),
                }
            }
            Column::Str(a) => match rows {
                Some(r) => {
                    arrow::compute::take(a, &arrow::array::UInt32Array::from(r.to_vec()), None)
                        .unwrap_or_else(|_| new_null_array(&arrow_type(ty), r.len()))
                }
                None => Arc::new(a.clone()),
            },
            Column::Date(v) => Arc::new(Date32Array::from(pick(v, rows))),
            Column::Null(n) => new_null_array(&arrow_type(ty), rows.map_or(*n, <[u32]>::len)),
        }
    }
}

/// A three-valued column as a `BooleanArray`, built a bitmap at a time.
pub fn bool_array(v: &[Option<bool>]) -> BooleanArray {
    use arrow::buffer::{BooleanBuffer, NullBuffer};
    let values = BooleanBuffer::collect_bool(v.len(), |i| v[i] == Some(true));
    let nulls = v
        .iter()
        .any(Option::is_none)
        .then(|| NullBuffer::new(BooleanBuffer::collect_bool(v.len(), |i| v[i].is_some())));
    BooleanArray::new(values, nulls)
}

/// A primitive Arrow array as `Option`s (the engine's columns).
fn options<T: arrow::datatypes::ArrowPrimitiveType>(
    a: &arrow::array::PrimitiveArray<T>,
) -> Vec<Option<T::Native>> {
    options_as(a, |v| v)
}

/// A primitive Arrow array as `Option`s of each value converted by `f`.
fn options_as<T: arrow::datatypes::ArrowPrimitiveType, O>(
    a: &arrow::array::PrimitiveArray<T>,
    f: impl Fn(T::Native) -> O,
) -> Vec<Option<O>> {
    match a.nulls().filter(|n| n.null_count() > 0) {
        None => a.values().iter().map(|&v| Some(f(v))).collect(),
        Some(n) => a
            .values()
            .iter()
            .zip(n.iter())
            .map(|(&v, ok)| ok.then(|| f(v)))
            .collect(),
    }
}

/// Appends row `i` of an engine array of pack type `ty` as a list cell
/// shows it (see [`Cells::write`]).
pub fn write_value(a: &dyn Array, ty: Type, i: usize, out: &mut String) {
    Cells::of(a, ty).write(i, out)
}

/// An engine array of one pack type, looked at once for writing many of
/// its cells: the common types straight from their arrays (this runs for
/// every cell of every list), the others through [`Value`].
pub enum Cells<'a> {
    Bool(&'a BooleanArray),
    Int(&'a Int64Array),
    Float(&'a Float64Array),
    Str(&'a StringArray),
    Other(&'a dyn Array, Type),
}

impl<'a> Cells<'a> {
    pub fn of(a: &'a dyn Array, ty: Type) -> Cells<'a> {
        match ty {
            Type::Bool if a.as_boolean_opt().is_some() => Cells::Bool(a.as_boolean()),
            Type::Int if a.as_primitive_opt::<Int64Type>().is_some() => {
                Cells::Int(a.as_primitive())
            }
            Type::Float if a.as_primitive_opt::<Float64Type>().is_some() => {
                Cells::Float(a.as_primitive())
            }
            Type::Str if a.as_string_opt::<i32>().is_some() => Cells::Str(a.as_string()),
            _ => Cells::Other(a, ty),
        }
    }

    /// Appends row `i` as a list cell shows it: as the value's `Display`
    /// writes it, NULL as nothing.
    pub fn write(&self, i: usize, out: &mut String) {
        use std::fmt::Write as _;
        match *self {
            Cells::Bool(a) if a.is_valid(i) => out.push_str(crate::pack::expr::yes_no(a.value(i))),
            Cells::Int(a) if a.is_valid(i) => out.push_str(itoa::Buffer::new().format(a.value(i))),
            Cells::Float(a) if a.is_valid(i) => {
                let _ = write!(out, "{}", a.value(i));
            }
            Cells::Str(a) if a.is_valid(i) => out.push_str(a.value(i)),
            Cells::Other(a, ty) if a.is_valid(i) => {
                let _ = write!(out, "{}", value_at(a, ty, i));
            }
            _ => {}
        }
    }
}

/// The value of row `i` of an engine array of pack type `ty`.
pub fn value_at(a: &dyn Array, ty: Type, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match ty {
        Type::Bool => a
            .as_boolean_opt()
            .map_or(Value::Null, |b| Value::Bool(b.value(i))),
        Type::Int => match a.as_primitive_opt::<Int32Type>() {
            Some(narrow) => Value::Int(i64::from(narrow.value(i))),
            None => a
                .as_primitive_opt::<Int64Type>()
                .map_or(Value::Null, |b| Value::Int(b.value(i))),
        },
        Type::Float => a
            .as_primitive_opt::<Float64Type>()
            .map_or(Value::Null, |b| Value::Float(b.value(i))),
        Type::Decimal => a
            .as_primitive_opt::<arrow::datatypes::Decimal128Type>()
            .map_or(Value::Null, |b| {
                Value::Decimal(crate::plan::types::scaled_to_decimal(b.value(i)))
            }),
        Type::Str => a
            .as_string_opt::<i32>()
            .map_or(Value::Null, |b| Value::Str(b.value(i).to_string())),
        Type::Date => a
            .as_primitive_opt::<Date32Type>()
            .and_then(|b| days_to_date(b.value(i)))
            .map_or(Value::Null, Value::Date),
        Type::Null => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;

    /// A planned int column kept as stored in 32 bits (the patients'
    /// deprivation deciles) reads as the same 64-bit values, NULLs
    /// included: a chunk at a time for the engine, a row at a time for
    /// ranking and `explain`.
    #[test]
    fn a_32_bit_int_column_reads_as_its_64_bit_values() {
        let values = [Some(1), None, Some(-7), Some(i32::MAX), Some(i32::MIN)];
        let narrow: ArrayRef = Arc::new(Int32Array::from(values.to_vec()));
        let wide: ArrayRef = Arc::new(Int64Array::from(
            values.iter().map(|v| v.map(i64::from)).collect::<Vec<_>>(),
        ));
        for a in [&narrow, &wide] {
            let Column::Int(got) = Column::from_arrow_slice(a, Type::Int, 1, 4).unwrap() else {
                panic!("not an int column");
            };
            assert_eq!(
                got,
                [None, Some(-7), Some(2_147_483_647), Some(-2_147_483_648)]
            );
            assert_eq!(value_at(a.as_ref(), Type::Int, 2), Value::Int(-7));
            assert_eq!(value_at(a.as_ref(), Type::Int, 1), Value::Null);
            assert_eq!(
                value_at(a.as_ref(), Type::Int, 4),
                Value::Int(-2_147_483_648)
            );
        }
    }
}
