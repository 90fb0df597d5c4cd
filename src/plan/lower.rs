//! Lowering a checked pack expression to a [`PhysicalExpr`]: names become
//! indices, aggregates become accumulators, windows become date bounds,
//! and type coercion happens here, once, as explicit `Cast` nodes (the
//! shape of DataFusion's `type_coercion` analyzer followed by its physical
//! planner).
//!
//! Coercion follows the type lattice in [`crate::pack::semantics`]: the
//! operands of a comparison are cast to their common type, arithmetic
//! operands to the result type, CASE and COALESCE values to the
//! expression's type. Casts of literals are folded at plan time.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::physical::{Aggregate, LiteralSet, PhysicalExpr};
use super::scan::{AccKind, AccSpec};
use crate::contract;
use crate::dataset::columns::date_to_days;
use crate::pack::semantics::{arithmetic_type, common_type};
use crate::pack::{AggregateFunc, BinaryOp, Expr, Pack, Type, Value, Window};

/// A patient column the plan reads, in the pack's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedColumn {
    pub name: String,
    pub ty: Type,
}

/// The state of lowering one pack: the columns and accumulators handed
/// out so far (each once, whatever the number of expressions using it).
#[derive(Debug)]
pub struct Lowering<'a> {
    pack: &'a Pack,
    as_of: NaiveDate,
    pub columns: Vec<PlannedColumn>,
    pub accs: Vec<AccSpec>,
    acc_index: HashMap<AccSpec, usize>,
    pub needs_contacts: bool,
    /// Outcome sets `contacted` reads; the first (empty) is any contact.
    pub contact_sets: Vec<Vec<String>>,
    /// Codelists made of one category of a categorised codelist: (its
    /// codelist, the category). Numbered after the pack's codelists.
    pub derived: Vec<(usize, String)>,
}

/// The lower date bound of a window (inclusive), as Date32 days;
/// `i32::MIN` when there is none.
pub fn window_start(window: &Window, as_of: NaiveDate) -> i32 {
    window
        .lower_bound(as_of)
        .map(date_to_days)
        .unwrap_or(i32::MIN)
}

fn kind_of(func: AggregateFunc) -> AccKind {
    match func {
        AggregateFunc::Has
        | AggregateFunc::CountDistinctCodelists
        | AggregateFunc::CountCategories
        | AggregateFunc::SumWeights => AccKind::Any,
        AggregateFunc::Count => AccKind::Count,
        AggregateFunc::CountDistinctCodes => AccKind::DistinctCodes,
        AggregateFunc::CountDays => AccKind::DistinctDays,
        AggregateFunc::FirstDate => AccKind::MinDate,
        AggregateFunc::LastDate => AccKind::MaxDate,
        AggregateFunc::LastValue => AccKind::LastValue,
        AggregateFunc::MinValue => AccKind::MinValue,
        AggregateFunc::MaxValue => AccKind::MaxValue,
    }
}

/// A value converted along the type lattice (int -> float, int ->
/// decimal, decimal -> float); NULL stays NULL; anything else is not a
/// widening and gives `None`.
pub fn widen_value(v: &Value, to: Type) -> Option<Value> {
    Some(match (v, to) {
        (Value::Null, _) => Value::Null,
        (Value::Int(i), Type::Float) => Value::Float(*i as f64),
        (Value::Int(i), Type::Decimal) => Value::Decimal(Decimal::from(*i)),
        (Value::Decimal(d), Type::Float) => Value::Float(d.to_f64()?),
        (v, t) if v.ty() == t => v.clone(),
        _ => return None,
    })
}

fn null(ty: Type) -> PhysicalExpr {
    PhysicalExpr::Literal {
        value: Value::Null,
        ty,
    }
}

/// A decimal literal written with fewer places than the score keeps, held
/// at the score's scale (the same number: `8` as `8.0000000000`), so that
/// comparing it with the score per person needs no rescaling.
fn at_score_scale(e: PhysicalExpr) -> PhysicalExpr {
    match e {
        PhysicalExpr::Literal {
            value: Value::Decimal(d),
            ty,
        } if d.scale() < super::types::DECIMAL_SCALE as u32 => {
            let mut scaled = d;
            scaled.rescale(super::types::DECIMAL_SCALE as u32);
            let value = if scaled == d { scaled } else { d };
            PhysicalExpr::Literal {
                value: Value::Decimal(value),
                ty,
            }
        }
        other => other,
    }
}

/// `e` in type `to`: unchanged when it already has it, a folded literal,
/// or an explicit `Cast`.
pub fn coerce(e: PhysicalExpr, to: Type) -> PhysicalExpr {
    let from = e.ty();
    if from == to || to == Type::Null {
        return e;
    }
    match e {
        PhysicalExpr::Literal { value, .. } => match widen_value(&value, to) {
            Some(value) => PhysicalExpr::Literal { value, ty: to },
            None => PhysicalExpr::Cast {
                expr: Box::new(PhysicalExpr::Literal {
                    ty: value.ty(),
                    value,
                }),
                to,
            },
        },
        other => PhysicalExpr::Cast {
            expr: Box::new(other),
            to,
        },
    }
}

impl<'a> Lowering<'a> {
    pub fn new(pack: &'a Pack, as_of: NaiveDate) -> Lowering<'a> {
        Lowering {
            pack,
            as_of,
            columns: Vec::new(),
            accs: Vec::new(),
            acc_index: HashMap::new(),
            needs_contacts: false,
            contact_sets: vec![Vec::new()],
            derived: Vec::new(),
        }
    }

    /// The codelist index of one category of codelist `codelist`, derived
    /// on first use.
    pub fn category_codelist(&mut self, codelist: usize, category: &str) -> usize {
        let base = self.pack.codelists.len();
        if let Some(k) = self
            .derived
            .iter()
            .position(|(c, cat)| *c == codelist && cat == category)
        {
            return base + k;
        }
        self.derived.push((codelist, category.to_string()));
        base + self.derived.len() - 1
    }

    /// The index of a patient column, planning it on first use.
    pub fn column(&mut self, name: &str, ty: Type) -> usize {
        if let Some(i) = self.columns.iter().position(|c| c.name == name) {
            return i;
        }
        self.columns.push(PlannedColumn {
            name: name.to_string(),
            ty,
        });
        self.columns.len() - 1
    }

    fn column_expr(&mut self, name: &str, ty: Type) -> PhysicalExpr {
        PhysicalExpr::Column {
            index: self.column(name, ty),
            name: name.to_string(),
            ty,
        }
    }

    /// The index of an accumulator, planning it on first use.
    pub fn acc(&mut self, kind: AccKind, codelist: usize, lower: i32) -> usize {
        let spec = AccSpec {
            kind,
            codelist,
            lower,
        };
        if let Some(&i) = self.acc_index.get(&spec) {
            return i;
        }
        self.accs.push(spec);
        self.acc_index.insert(spec, self.accs.len() - 1);
        self.accs.len() - 1
    }

    /// The accumulator of the latest date ever of a codelist (latest_of, overrides).
    pub fn latest(&mut self, codelist: usize) -> usize {
        self.acc(AccKind::MaxDate, codelist, i32::MIN)
    }

    fn as_of_literal(&self) -> PhysicalExpr {
        PhysicalExpr::Literal {
            value: Value::Date(self.as_of),
            ty: Type::Date,
        }
    }

    /// `column IS NULL OR column > as_of`: still registered / still alive.
    fn still(&mut self, column: &str) -> PhysicalExpr {
        let c = self.column_expr(column, Type::Date);
        PhysicalExpr::Or(
            Box::new(PhysicalExpr::IsNull {
                expr: Box::new(c.clone()),
                negated: false,
            }),
            Box::new(PhysicalExpr::Compare {
                op: BinaryOp::Gt,
                left: Box::new(c),
                right: Box::new(self.as_of_literal()),
            }),
        )
    }

    /// A condition: the expression lowered and coerced to bool.
    pub fn condition(&mut self, e: &Expr) -> PhysicalExpr {
        let p = self.lower(e);
        coerce(p, Type::Bool)
    }

    fn compare(&mut self, op: BinaryOp, l: PhysicalExpr, r: PhysicalExpr) -> PhysicalExpr {
        match common_type(l.ty(), r.ty()) {
            Some(Type::Null) | None => null(Type::Bool),
            Some(t) => PhysicalExpr::Compare {
                op,
                left: Box::new(at_score_scale(coerce(l, t))),
                right: Box::new(at_score_scale(coerce(r, t))),
            },
        }
    }

    /// Lowers a checked expression.
    pub fn lower(&mut self, e: &Expr) -> PhysicalExpr {
        use PhysicalExpr as P;
        match e {
            Expr::Literal(v) => P::Literal {
                value: v.clone(),
                ty: e.ty(),
            },
            Expr::Column { name, ty } => self.column_expr(name, *ty),
            Expr::Feature { index, ty } => P::Feature {
                index: *index,
                name: self
                    .pack
                    .features
                    .get(*index)
                    .map_or_else(String::new, |f| f.name.clone()),
                ty: *ty,
            },
            Expr::Age => P::Age {
                date_of_birth: self.column(contract::DATE_OF_BIRTH, Type::Date),
            },
            Expr::AsOf => self.as_of_literal(),
            Expr::Registered => self.still(contract::REGISTRATION_END),
            Expr::Alive => self.still(contract::DATE_OF_DEATH),
            Expr::Score => P::Score,
            Expr::Not(x) => P::Not(Box::new(self.condition(x))),
            Expr::Neg(x) => {
                let inner = self.lower(x);
                match inner {
                    P::Literal {
                        value: Value::Null,
                        ty,
                    } => null(ty),
                    other => P::Neg(Box::new(other)),
                }
            }
            Expr::Binary { op, left, right } => {
                let l = self.lower(left);
                let r = self.lower(right);
                match op {
                    BinaryOp::And => P::And(
                        Box::new(coerce(l, Type::Bool)),
                        Box::new(coerce(r, Type::Bool)),
                    ),
                    BinaryOp::Or => P::Or(
                        Box::new(coerce(l, Type::Bool)),
                        Box::new(coerce(r, Type::Bool)),
                    ),
                    op if op.is_arithmetic() => {
                        let ty = arithmetic_type(*op, l.ty(), r.ty());
                        P::Arithmetic {
                            op: *op,
                            left: Box::new(coerce(l, ty)),
                            right: Box::new(coerce(r, ty)),
                            ty,
                        }
                    }
                    op => self.compare(*op, l, r),
                }
            }
            Expr::Case {
                operand,
                branches,
                else_result,
                ty,
            } => {
                let subject = operand.as_ref().map(|o| self.lower(o));
                let mut out = Vec::with_capacity(branches.len());
                for (when, then) in branches {
                    let w = self.lower(when);
                    let cond = match &subject {
                        Some(s) => self.compare(BinaryOp::Eq, s.clone(), w),
                        None => coerce(w, Type::Bool),
                    };
                    let value = self.lower(then);
                    out.push((cond, coerce(value, *ty)));
                }
                let otherwise = else_result
                    .as_ref()
                    .map(|x| Box::new(coerce(self.lower(x), *ty)));
                P::Case {
                    branches: out,
                    otherwise,
                    ty: *ty,
                }
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let x = self.lower(expr);
                let items: Vec<PhysicalExpr> = list.iter().map(|i| self.lower(i)).collect();
                self.in_list(x, items, *negated)
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let x = self.lower(expr);
                let lo = self.lower(low);
                let hi = self.lower(high);
                let both = P::And(
                    Box::new(self.compare(BinaryOp::GtEq, x.clone(), lo)),
                    Box::new(self.compare(BinaryOp::LtEq, x, hi)),
                );
                if *negated {
                    P::Not(Box::new(both))
                } else {
                    both
                }
            }
            Expr::IsNull { expr, negated } => P::IsNull {
                expr: Box::new(self.lower(expr)),
                negated: *negated,
            },
            Expr::Coalesce { args, ty } => P::Coalesce {
                args: args.iter().map(|a| coerce(self.lower(a), *ty)).collect(),
                ty: *ty,
            },
            Expr::DaysSince(x) => {
                let d = self.lower(x);
                P::DaysSince(Box::new(coerce(d, Type::Date)))
            }
            Expr::Aggregate {
                func,
                codelists,
                window,
            } => {
                let lower = window_start(window, self.as_of);
                if matches!(
                    func,
                    AggregateFunc::CountCategories | AggregateFunc::SumWeights
                ) {
                    // One "any event" accumulator per category, each fed by
                    // a codelist of that category's codes.
                    let cl = codelists.first().copied().unwrap_or(0);
                    let list = &self.pack.codelists[cl];
                    let categories: Vec<(String, i128)> = list
                        .category_names()
                        .into_iter()
                        .map(|c| {
                            let w = list.weights.get(c).copied().unwrap_or_default();
                            (
                                c.to_string(),
                                super::types::decimal_to_scaled(w).unwrap_or(0),
                            )
                        })
                        .collect();
                    let accs: Vec<(usize, i128)> = categories
                        .iter()
                        .map(|(c, w)| {
                            let d = self.category_codelist(cl, c);
                            (self.acc(AccKind::Any, d, lower), *w)
                        })
                        .collect();
                    return P::Aggregate(if *func == AggregateFunc::CountCategories {
                        Aggregate::CountDistinct {
                            accs: accs.into_iter().map(|(a, _)| a).collect(),
                        }
                    } else {
                        Aggregate::WeightedSum { accs }
                    });
                }
                let kind = kind_of(*func);
                let mut accs: Vec<usize> = codelists
                    .iter()
                    .map(|&c| self.acc(kind, c, lower))
                    .collect();
                let first = accs.first().copied().unwrap_or(0);
                P::Aggregate(match func {
                    AggregateFunc::Has => Aggregate::Has { acc: first },
                    // Distinct codes are counted per person when the scan ends.
                    AggregateFunc::Count
                    | AggregateFunc::CountDistinctCodes
                    | AggregateFunc::CountDays => Aggregate::Count { acc: first },
                    AggregateFunc::CountDistinctCodelists => {
                        accs.dedup();
                        Aggregate::CountDistinct { accs }
                    }
                    AggregateFunc::FirstDate | AggregateFunc::LastDate => {
                        Aggregate::Date { acc: first }
                    }
                    AggregateFunc::LastValue
                    | AggregateFunc::MinValue
                    | AggregateFunc::MaxValue => Aggregate::Value { acc: first },
                    // Lowered above.
                    AggregateFunc::CountCategories | AggregateFunc::SumWeights => {
                        Aggregate::CountDistinct { accs }
                    }
                })
            }
            Expr::LatestOf { a, b } => {
                let name = |c: usize| {
                    self.pack
                        .codelists
                        .get(c)
                        .map_or_else(String::new, |c| c.value_name().to_string())
                };
                let (na, nb) = (name(*a), name(*b));
                P::LatestOf {
                    first: (self.latest(*a), na),
                    second: (self.latest(*b), nb),
                }
            }
            Expr::Contacted(window, outcomes) => {
                self.needs_contacts = true;
                let set = match self.contact_sets.iter().position(|s| s == outcomes) {
                    Some(k) => k,
                    None => {
                        self.contact_sets.push(outcomes.clone());
                        self.contact_sets.len() - 1
                    }
                };
                P::Contacted {
                    since: window_start(window, self.as_of),
                    set,
                    outcomes: outcomes.clone(),
                }
            }
            Expr::LastContact => {
                self.needs_contacts = true;
                P::LastContact
            }
        }
    }

    /// `x [NOT] IN (items)`: a set built once when every item is a
    /// literal, else a chain of `=` joined by OR (the same three-valued
    /// result either way).
    fn in_list(
        &mut self,
        x: PhysicalExpr,
        items: Vec<PhysicalExpr>,
        negated: bool,
    ) -> PhysicalExpr {
        use PhysicalExpr as P;
        let common = items
            .iter()
            .try_fold(x.ty(), |acc, i| common_type(acc, i.ty()));
        let Some(common) = common.filter(|t| *t != Type::Null) else {
            return null(Type::Bool);
        };
        let literals: Option<Vec<Value>> = items
            .iter()
            .map(|i| match i {
                P::Literal { value, .. } => widen_value(value, common),
                _ => None,
            })
            .collect();
        let found = match literals.and_then(|values| literal_set(common, &values)) {
            Some((set, list_has_null)) => {
                return P::InSet {
                    expr: Box::new(coerce(x, common)),
                    set,
                    list_has_null,
                    negated,
                }
            }
            None => items
                .into_iter()
                .map(|i| self.compare(BinaryOp::Eq, x.clone(), i))
                .reduce(|a, b| P::Or(Box::new(a), Box::new(b)))
                .unwrap_or(P::Literal {
                    value: Value::Bool(false),
                    ty: Type::Bool,
                }),
        };
        if negated {
            P::Not(Box::new(found))
        } else {
            found
        }
    }
}

/// The set of literal values (all already in type `ty`), and whether the
/// list held a NULL.
fn literal_set(ty: Type, values: &[Value]) -> Option<(LiteralSet, bool)> {
    let has_null = values.iter().any(Value::is_null);
    let present = values.iter().filter(|v| !v.is_null());
    let set = match ty {
        Type::Bool => LiteralSet::Bool(present.filter_map(Value::as_bool).collect()),
        Type::Int => LiteralSet::Int(
            present
                .filter_map(|v| match v {
                    Value::Int(i) => Some(*i),
                    _ => None,
                })
                .collect(),
        ),
        Type::Float => LiteralSet::Float(
            present
                .filter_map(|v| match v {
                    Value::Float(x) if x.is_finite() => Some(LiteralSet::float_key(*x)),
                    _ => None,
                })
                .collect(),
        ),
        Type::Decimal => LiteralSet::Decimal(
            present
                .filter_map(|v| match v {
                    Value::Decimal(d) => Some(d.normalize()),
                    _ => None,
                })
                .collect(),
        ),
        Type::Str => LiteralSet::Str(
            present
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<BTreeSet<String>>(),
        ),
        Type::Date => LiteralSet::Date(
            present
                .filter_map(|v| match v {
                    Value::Date(d) => Some(date_to_days(*d)),
                    _ => None,
                })
                .collect(),
        ),
        Type::Null => return None,
    };
    Some((set, has_null))
}
