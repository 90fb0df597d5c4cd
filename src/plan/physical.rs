//! The physical expression: what the engine evaluates.
//!
//! Everything is resolved: patient columns and features are indices,
//! event aggregates are accumulator indices, windows are date bounds, every
//! type conversion is an explicit [`PhysicalExpr::Cast`] (inserted once by
//! the planner in [`super::lower`]), `BETWEEN` is two comparisons and an
//! all-literal `IN` list is a set built once. Operands of a comparison or
//! of arithmetic always have the same type. The `Display` form is what
//! `strata check --plan` prints and what the plan tests compare.

use std::collections::BTreeSet;
use std::fmt;

use rust_decimal::Decimal;

use crate::dataset::columns::days_to_date;
use crate::pack::{BinaryOp, Type, Value};

/// A typed expression over one person, evaluated column-wise.
#[derive(Debug, Clone, PartialEq)]
pub enum PhysicalExpr {
    /// A constant; `Value::Null` carries the type it stands in for.
    Literal {
        value: Value,
        ty: Type,
    },
    /// A patient column, by index into the plan's columns.
    Column {
        index: usize,
        name: String,
        ty: Type,
    },
    /// An earlier feature, by index.
    Feature {
        index: usize,
        name: String,
        ty: Type,
    },
    /// Whole years at the as-of date from the date-of-birth column.
    Age {
        date_of_birth: usize,
    },
    /// The exact decimal score (tier conditions only).
    Score,
    /// An event aggregate read from the scan's accumulators.
    Aggregate(Aggregate),
    /// Any `contacts` row dated from `since` (Date32 days) to the as-of date.
    Contacted {
        since: i32,
        /// Index into the plan's contact outcome sets (0: any outcome).
        set: usize,
        /// The outcomes that count (empty: any), for display.
        outcomes: Vec<String>,
    },
    LastContact,
    /// The name of whichever codelist has the later event (latest code wins).
    LatestOf {
        first: (usize, String),
        second: (usize, String),
    },
    Not(Box<PhysicalExpr>),
    Neg(Box<PhysicalExpr>),
    And(Box<PhysicalExpr>, Box<PhysicalExpr>),
    Or(Box<PhysicalExpr>, Box<PhysicalExpr>),
    /// `+ - * /` on operands of type `ty` (the result type).
    Arithmetic {
        op: BinaryOp,
        left: Box<PhysicalExpr>,
        right: Box<PhysicalExpr>,
        ty: Type,
    },
    /// A comparison of two operands of the same type.
    Compare {
        op: BinaryOp,
        left: Box<PhysicalExpr>,
        right: Box<PhysicalExpr>,
    },
    /// Searched CASE: the first TRUE condition picks its value.
    Case {
        branches: Vec<(PhysicalExpr, PhysicalExpr)>,
        otherwise: Option<Box<PhysicalExpr>>,
        ty: Type,
    },
    /// `expr [NOT] IN (literals)`: SQL semantics, so a NULL in the list
    /// makes a non-match NULL.
    InSet {
        expr: Box<PhysicalExpr>,
        set: LiteralSet,
        list_has_null: bool,
        negated: bool,
    },
    IsNull {
        expr: Box<PhysicalExpr>,
        negated: bool,
    },
    Coalesce {
        args: Vec<PhysicalExpr>,
        ty: Type,
    },
    /// Days from the date to the as-of date (negative for a later date).
    DaysSince(Box<PhysicalExpr>),
    /// A widening conversion allowed by the type lattice
    /// ([`crate::pack::semantics::widens_to`]).
    Cast {
        expr: Box<PhysicalExpr>,
        to: Type,
    },
}

/// What an aggregate reads from the accumulators.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// bool: the accumulator saw an event.
    Has { acc: usize },
    /// int: events counted.
    Count { acc: usize },
    /// int: how many of the accumulators saw an event.
    CountDistinct { accs: Vec<usize> },
    /// date or NULL: earliest (`MinDate`) or latest (`MaxDate`) event.
    Date { acc: usize },
    /// float or NULL: last / min / max finite value.
    Value { acc: usize },
    /// decimal, never NULL: the sum of the weights (scaled by 10^10) of the
    /// accumulators that saw an event.
    WeightedSum { accs: Vec<(usize, i128)> },
}

/// The literals of an `IN` list, in the type of the tested expression.
#[derive(Debug, Clone, PartialEq)]
pub enum LiteralSet {
    Bool(BTreeSet<bool>),
    Int(BTreeSet<i64>),
    /// Bit patterns of finite floats (with -0.0 stored as 0.0).
    Float(BTreeSet<u64>),
    Decimal(BTreeSet<Decimal>),
    Str(BTreeSet<String>),
    Date(BTreeSet<i32>),
}

impl LiteralSet {
    /// The bit pattern under which a float is stored in a set.
    pub fn float_key(x: f64) -> u64 {
        if x == 0.0 {
            0
        } else {
            x.to_bits()
        }
    }

    pub fn len(&self) -> usize {
        match self {
            LiteralSet::Bool(s) => s.len(),
            LiteralSet::Int(s) => s.len(),
            LiteralSet::Float(s) => s.len(),
            LiteralSet::Decimal(s) => s.len(),
            LiteralSet::Str(s) => s.len(),
            LiteralSet::Date(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PhysicalExpr {
    /// The type of the values this expression yields.
    pub fn ty(&self) -> Type {
        use PhysicalExpr::*;
        match self {
            Literal { ty, .. } | Column { ty, .. } | Feature { ty, .. } => *ty,
            Age { .. } | DaysSince(_) => Type::Int,
            Score => Type::Decimal,
            Aggregate(a) => match a {
                self::Aggregate::Has { .. } => Type::Bool,
                self::Aggregate::Count { .. } | self::Aggregate::CountDistinct { .. } => Type::Int,
                self::Aggregate::Date { .. } => Type::Date,
                self::Aggregate::Value { .. } => Type::Float,
                self::Aggregate::WeightedSum { .. } => Type::Decimal,
            },
            Contacted { .. } => Type::Bool,
            LastContact => Type::Date,
            LatestOf { .. } => Type::Str,
            Not(_) | And(..) | Or(..) | Compare { .. } | InSet { .. } | IsNull { .. } => Type::Bool,
            Neg(e) => e.ty(),
            Arithmetic { ty, .. } | Case { ty, .. } | Coalesce { ty, .. } => *ty,
            Cast { to, .. } => *to,
        }
    }

    /// Every accumulator this expression reads.
    pub fn accumulators(&self, out: &mut Vec<usize>) {
        self.walk(&mut |e| match e {
            PhysicalExpr::Aggregate(a) => match a {
                Aggregate::CountDistinct { accs } => out.extend(accs),
                Aggregate::WeightedSum { accs } => out.extend(accs.iter().map(|(a, _)| *a)),
                Aggregate::Has { acc }
                | Aggregate::Count { acc }
                | Aggregate::Date { acc }
                | Aggregate::Value { acc } => out.push(*acc),
            },
            PhysicalExpr::LatestOf { first, second } => out.extend([first.0, second.0]),
            _ => {}
        });
    }

    /// Visits this expression and every sub-expression.
    pub fn walk(&self, f: &mut dyn FnMut(&PhysicalExpr)) {
        use PhysicalExpr::*;
        f(self);
        match self {
            Not(e) | Neg(e) | DaysSince(e) => e.walk(f),
            Cast { expr, .. } | IsNull { expr, .. } | InSet { expr, .. } => expr.walk(f),
            And(l, r) | Or(l, r) => {
                l.walk(f);
                r.walk(f);
            }
            Arithmetic { left, right, .. } | Compare { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            Case {
                branches,
                otherwise,
                ..
            } => {
                for (w, t) in branches {
                    w.walk(f);
                    t.walk(f);
                }
                if let Some(o) = otherwise {
                    o.walk(f);
                }
            }
            Coalesce { args, .. } => args.iter().for_each(|a| a.walk(f)),
            _ => {}
        }
    }
}

/// A literal as SQL text: strings quoted, dates as `DATE '…'`.
pub fn literal_text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(x) => format!("{x:?}"),
        Value::Decimal(d) => d.normalize().to_string(),
        Value::Str(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Date(d) => format!("DATE '{}'", d.format("%Y-%m-%d")),
    }
}

fn date_text(days: i32) -> String {
    days_to_date(days).map_or_else(|| days.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

impl fmt::Display for LiteralSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = match self {
            LiteralSet::Bool(s) => s.iter().map(|b| literal_text(&Value::Bool(*b))).collect(),
            LiteralSet::Int(s) => s.iter().map(i64::to_string).collect(),
            LiteralSet::Float(s) => s
                .iter()
                .map(|b| format!("{:?}", f64::from_bits(*b)))
                .collect(),
            LiteralSet::Decimal(s) => s.iter().map(Decimal::to_string).collect(),
            LiteralSet::Str(s) => s
                .iter()
                .map(|x| literal_text(&Value::Str(x.clone())))
                .collect(),
            LiteralSet::Date(s) => s
                .iter()
                .map(|d| format!("DATE '{}'", date_text(*d)))
                .collect(),
        };
        write!(f, "{{{}}}", items.join(", "))
    }
}

impl fmt::Display for PhysicalExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PhysicalExpr::*;
        match self {
            Literal { value, ty } => match value {
                Value::Null => write!(f, "NULL::{ty}"),
                v => f.write_str(&literal_text(v)),
            },
            Column { index, name, .. } => write!(f, "#{index}:{name}"),
            Feature { index, name, .. } => write!(f, "f{index}:{name}"),
            Age { date_of_birth } => write!(f, "age(#{date_of_birth})"),
            Score => f.write_str("score"),
            Aggregate(a) => match a {
                self::Aggregate::Has { acc } => write!(f, "has(acc{acc})"),
                self::Aggregate::Count { acc } => write!(f, "count(acc{acc})"),
                self::Aggregate::CountDistinct { accs } => {
                    let list: Vec<String> = accs.iter().map(|a| format!("acc{a}")).collect();
                    write!(f, "count_distinct({})", list.join(", "))
                }
                self::Aggregate::Date { acc } => write!(f, "date(acc{acc})"),
                self::Aggregate::Value { acc } => write!(f, "value(acc{acc})"),
                self::Aggregate::WeightedSum { accs } => {
                    let list: Vec<String> = accs
                        .iter()
                        .map(|(a, w)| format!("acc{a} * {}", super::types::scaled_to_decimal(*w)))
                        .collect();
                    write!(f, "weighted_sum({})", list.join(", "))
                }
            },
            Contacted {
                since, outcomes, ..
            } => {
                write!(f, "contacted(since DATE '{}'", date_text(*since))?;
                for o in outcomes {
                    write!(f, ", '{o}'")?;
                }
                f.write_str(")")
            }
            LastContact => f.write_str("last_contact()"),
            LatestOf { first, second } => write!(
                f,
                "latest_of(acc{} '{}', acc{} '{}')",
                first.0, first.1, second.0, second.1
            ),
            Not(e) => write!(f, "NOT {e}"),
            Neg(e) => write!(f, "-({e})"),
            And(l, r) => write!(f, "({l} AND {r})"),
            Or(l, r) => write!(f, "({l} OR {r})"),
            Arithmetic {
                op, left, right, ..
            }
            | Compare { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Case {
                branches,
                otherwise,
                ..
            } => {
                f.write_str("CASE")?;
                for (w, t) in branches {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(o) = otherwise {
                    write!(f, " ELSE {o}")?;
                }
                f.write_str(" END")
            }
            InSet {
                expr,
                set,
                list_has_null,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                let null = if *list_has_null { " +NULL" } else { "" };
                write!(f, "({expr} {not}IN {set}{null})")
            }
            IsNull { expr, negated } => {
                write!(f, "({expr} IS {}NULL)", if *negated { "NOT " } else { "" })
            }
            Coalesce { args, .. } => {
                let list: Vec<String> = args.iter().map(ToString::to_string).collect();
                write!(f, "coalesce({})", list.join(", "))
            }
            DaysSince(e) => write!(f, "days_since({e})"),
            Cast { expr, to } => write!(f, "CAST({expr} AS {to})"),
        }
    }
}
