//! The resolved expression language of a checked pack: values, types,
//! windows and the expression tree the engine and the reference evaluator
//! both interpret.
//!
//! Everything here is already name-resolved and type-checked by
//! [`super::check`]: a feature is an index into `Pack::features`, a codelist
//! an index into `Pack::codelists`. Nothing carries source spans, so the
//! engine never depends on how the pack was written.

use std::fmt;

use chrono::{Days, Months, NaiveDate};
use rust_decimal::Decimal;

/// The type of an expression, fixed at check time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Int,
    Float,
    /// Only `score` (and numeric literals compared with it) has this type.
    Decimal,
    Str,
    Date,
    /// The type of a bare `NULL` literal: fits anywhere.
    Null,
}

impl Type {
    pub fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Decimal)
    }

    /// The name pack authors see in messages and in `[columns]`.
    pub fn name(self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Float => "float",
            Type::Decimal => "decimal",
            Type::Str => "string",
            Type::Date => "date",
            Type::Null => "null",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One value of an expression. `Null` is SQL's unknown.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    Str(String),
    Date(NaiveDate),
}

impl Value {
    /// The type of this value (`Null` for NULL).
    pub fn ty(&self) -> Type {
        match self {
            Value::Null => Type::Null,
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::Decimal(_) => Type::Decimal,
            Value::Str(_) => Type::Str,
            Value::Date(_) => Type::Date,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// `Some(b)` for a boolean, `None` for NULL (and, defensively, anything else).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Only TRUE counts: a NULL condition does not fire.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }
}

/// How a true/false value reads in lists, reasons and `explain`.
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// How values appear in reason texts and in `explain`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("unknown"),
            Value::Bool(b) => f.write_str(yes_no(*b)),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Decimal(d) => write!(f, "{}", d.normalize()),
            Value::Str(s) => f.write_str(s),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

/// A look-back window relative to the as-of date. Weeks are stored as days
/// and years as months, so there are only two calendar rules to get right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Ever,
    Days(u32),
    Months(u32),
}

impl Window {
    /// The earliest date inside the window (inclusive), or `None` when there
    /// is no lower bound. Months clamp to the end of the month, so 2020-02-29
    /// minus 12 months is 2019-02-28. A bound before the calendar's start
    /// also means "no lower bound".
    pub fn lower_bound(&self, as_of: NaiveDate) -> Option<NaiveDate> {
        match *self {
            Window::Ever => None,
            Window::Days(n) => as_of.checked_sub_days(Days::new(u64::from(n))),
            Window::Months(n) => as_of.checked_sub_months(Months::new(n)),
        }
    }

    /// Whether an event on `date` counts: `lower <= date <= as_of`.
    pub fn contains(&self, as_of: NaiveDate, date: NaiveDate) -> bool {
        date <= as_of && self.lower_bound(as_of).is_none_or(|lower| lower <= date)
    }

    /// Parses `'12 months'`, `'1 year'`, `'28 days'`, `'2 weeks'` or `'ever'`.
    pub fn parse(text: &str) -> Option<Window> {
        let lower = text.trim().to_ascii_lowercase();
        if lower == "ever" {
            return Some(Window::Ever);
        }
        let mut parts = lower.split_whitespace();
        let amount: u32 = parts.next()?.parse().ok()?;
        let unit = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        match unit {
            "day" | "days" => Some(Window::Days(amount)),
            "week" | "weeks" => amount.checked_mul(7).map(Window::Days),
            "month" | "months" => Some(Window::Months(amount)),
            "year" | "years" => amount.checked_mul(12).map(Window::Months),
            _ => None,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Window::Ever => f.write_str("ever"),
            Window::Days(1) => f.write_str("1 day"),
            Window::Days(n) => write!(f, "{n} days"),
            Window::Months(n) if n % 12 == 0 && n > 0 => match n / 12 {
                1 => f.write_str("1 year"),
                y => write!(f, "{y} years"),
            },
            Window::Months(1) => f.write_str("1 month"),
            Window::Months(n) => write!(f, "{n} months"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }

    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
        )
    }

    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        }
    }
}

/// Event aggregates over one or more codelists within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFunc {
    /// bool, never null: any matching event.
    Has,
    /// int, never null: number of matching event rows.
    Count,
    /// int, never null: how many of the listed codelists have an event.
    CountDistinctCodelists,
    /// date or null.
    FirstDate,
    /// date or null.
    LastDate,
    /// float or null: value of the latest event with a value; on a same-day
    /// tie the largest value, so row order never matters.
    LastValue,
    /// float or null.
    MinValue,
    /// float or null.
    MaxValue,
    /// int, never null: how many distinct codes of an exact-match codelist
    /// have an event.
    CountDistinctCodes,
    /// int, never null: on how many distinct days the codelist has an event
    /// (admissions: one row per diagnosis, one day per admission).
    CountDays,
    /// int, never null: how many distinct categories of a categorised
    /// codelist have an event.
    CountCategories,
    /// decimal, never null: the sum of the weights of the categories of a
    /// weighted codelist that have an event (each category once).
    SumWeights,
}

impl AggregateFunc {
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunc::Has => "has",
            AggregateFunc::Count => "count",
            AggregateFunc::CountDistinctCodelists => "count_distinct_codelists",
            AggregateFunc::FirstDate => "first_date",
            AggregateFunc::LastDate => "last_date",
            AggregateFunc::LastValue => "last_value",
            AggregateFunc::MinValue => "min_value",
            AggregateFunc::MaxValue => "max_value",
            AggregateFunc::CountDistinctCodes => "count_distinct_codes",
            AggregateFunc::CountDays => "count_days",
            AggregateFunc::CountCategories => "count_categories",
            AggregateFunc::SumWeights => "sum_weights",
        }
    }

    pub fn from_name(name: &str) -> Option<AggregateFunc> {
        Some(match name {
            "has" => AggregateFunc::Has,
            "count" => AggregateFunc::Count,
            "count_distinct_codelists" => AggregateFunc::CountDistinctCodelists,
            "first_date" => AggregateFunc::FirstDate,
            "last_date" => AggregateFunc::LastDate,
            "last_value" => AggregateFunc::LastValue,
            "min_value" => AggregateFunc::MinValue,
            "max_value" => AggregateFunc::MaxValue,
            "count_distinct_codes" => AggregateFunc::CountDistinctCodes,
            "count_days" => AggregateFunc::CountDays,
            "count_categories" => AggregateFunc::CountCategories,
            "sum_weights" => AggregateFunc::SumWeights,
            _ => return None,
        })
    }

    pub fn result_type(self) -> Type {
        match self {
            AggregateFunc::Has => Type::Bool,
            AggregateFunc::Count
            | AggregateFunc::CountDistinctCodelists
            | AggregateFunc::CountDistinctCodes
            | AggregateFunc::CountDays
            | AggregateFunc::CountCategories => Type::Int,
            AggregateFunc::SumWeights => Type::Decimal,
            AggregateFunc::FirstDate | AggregateFunc::LastDate => Type::Date,
            AggregateFunc::LastValue | AggregateFunc::MinValue | AggregateFunc::MaxValue => {
                Type::Float
            }
        }
    }
}

/// A checked expression. Names are resolved to indices; every node has a
/// type ([`Expr::ty`]) that the checker has already verified.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    /// A patient-table column (fixed or declared in `[columns]`).
    Column {
        name: String,
        ty: Type,
    },
    /// An earlier feature, by index into `Pack::features`.
    Feature {
        index: usize,
        ty: Type,
    },
    /// Whole years at the as-of date.
    Age,
    AsOf,
    Registered,
    Alive,
    /// The decimal score; only tier conditions may use it.
    Score,
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// Searched (`operand == None`) or simple CASE.
    Case {
        operand: Option<Box<Expr>>,
        branches: Vec<(Expr, Expr)>,
        else_result: Option<Box<Expr>>,
        ty: Type,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    Coalesce {
        args: Vec<Expr>,
        ty: Type,
    },
    /// Days from the date to the as-of date.
    DaysSince(Box<Expr>),
    Aggregate {
        func: AggregateFunc,
        codelists: Vec<usize>,
        window: Window,
    },
    /// The name of whichever codelist has the more recent event; the second
    /// wins a same-day tie; NULL when neither has one.
    LatestOf {
        a: usize,
        b: usize,
    },
    /// Any `contacts` row within the window.
    /// With outcomes (lower case, trimmed; empty: any outcome, or none).
    Contacted(Window, Vec<String>),
    /// Date of the latest contact on or before the as-of date.
    LastContact,
}

impl Expr {
    /// Moves every codelist index up by `codelists` and every feature
    /// index by `features`: a used pack's feature placed in the pack that
    /// uses it, after that pack's own codelists and earlier imports.
    pub(crate) fn offset_indices(&mut self, codelists: usize, features: usize) {
        let go = |e: &mut Expr| e.offset_indices(codelists, features);
        match self {
            Expr::Feature { index, .. } => *index += features,
            Expr::Aggregate { codelists: c, .. } => c.iter_mut().for_each(|c| *c += codelists),
            Expr::LatestOf { a, b } => {
                *a += codelists;
                *b += codelists;
            }
            Expr::Literal(_)
            | Expr::Column { .. }
            | Expr::Age
            | Expr::AsOf
            | Expr::Registered
            | Expr::Alive
            | Expr::Score
            | Expr::Contacted(..)
            | Expr::LastContact => {}
            Expr::Not(e) | Expr::Neg(e) | Expr::DaysSince(e) | Expr::IsNull { expr: e, .. } => {
                go(e)
            }
            Expr::Binary { left, right, .. } => {
                go(left);
                go(right);
            }
            Expr::Case {
                operand,
                branches,
                else_result,
                ..
            } => {
                operand.iter_mut().for_each(|e| go(e));
                for (w, t) in branches {
                    go(w);
                    go(t);
                }
                else_result.iter_mut().for_each(|e| go(e));
            }
            Expr::InList { expr, list, .. } => {
                go(expr);
                list.iter_mut().for_each(go);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                go(expr);
                go(low);
                go(high);
            }
            Expr::Coalesce { args, .. } => args.iter_mut().for_each(go),
        }
    }

    /// The type of the value this expression yields.
    pub fn ty(&self) -> Type {
        match self {
            Expr::Literal(v) => v.ty(),
            Expr::Column { ty, .. } | Expr::Feature { ty, .. } => *ty,
            Expr::Age => Type::Int,
            Expr::AsOf => Type::Date,
            Expr::Registered | Expr::Alive => Type::Bool,
            Expr::Score => Type::Decimal,
            Expr::Not(_) => Type::Bool,
            Expr::Neg(e) => e.ty(),
            Expr::Binary { op, left, right } => {
                if op.is_arithmetic() {
                    arithmetic_type(*op, left.ty(), right.ty())
                } else {
                    Type::Bool
                }
            }
            Expr::Case { ty, .. } | Expr::Coalesce { ty, .. } => *ty,
            Expr::InList { .. } | Expr::Between { .. } | Expr::IsNull { .. } => Type::Bool,
            Expr::DaysSince(_) => Type::Int,
            Expr::Aggregate { func, .. } => func.result_type(),
            Expr::LatestOf { .. } => Type::Str,
            Expr::Contacted(..) => Type::Bool,
            Expr::LastContact => Type::Date,
        }
    }
}

pub use super::semantics::arithmetic_type;

/// The common type of CASE branches or COALESCE arguments, if they agree
/// (the type lattice lives in [`super::semantics`]).
pub fn unify(a: Type, b: Type) -> Option<Type> {
    super::semantics::common_type(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn windows_parse_in_every_unit() {
        assert_eq!(Window::parse("12 months"), Some(Window::Months(12)));
        assert_eq!(Window::parse(" 5 Years "), Some(Window::Months(60)));
        assert_eq!(Window::parse("2 weeks"), Some(Window::Days(14)));
        assert_eq!(Window::parse("1 day"), Some(Window::Days(1)));
        assert_eq!(Window::parse("ever"), Some(Window::Ever));
        assert_eq!(Window::parse("12 monthz"), None);
        assert_eq!(Window::parse("months"), None);
        assert_eq!(Window::parse("-3 days"), None);
        assert_eq!(Window::parse("3 days ago"), None);
    }

    #[test]
    fn month_windows_clamp_to_month_end() {
        assert_eq!(
            Window::Months(12).lower_bound(d("2020-02-29")),
            Some(d("2019-02-28"))
        );
        assert_eq!(
            Window::Months(1).lower_bound(d("2020-03-31")),
            Some(d("2020-02-29"))
        );
        assert_eq!(
            Window::Days(14).lower_bound(d("2020-03-01")),
            Some(d("2020-02-16"))
        );
    }

    #[test]
    fn window_edges_are_inclusive_and_future_events_never_count() {
        let as_of = d("2020-03-23");
        assert!(Window::Months(12).contains(as_of, d("2019-03-23")));
        assert!(!Window::Months(12).contains(as_of, d("2019-03-22")));
        assert!(Window::Months(12).contains(as_of, as_of));
        assert!(!Window::Ever.contains(as_of, d("2020-03-24")));
        assert!(Window::Ever.contains(as_of, d("1900-01-01")));
    }
}
