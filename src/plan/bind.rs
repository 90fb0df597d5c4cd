//! Binding a checked pack to a dataset: which accumulators the scan keeps,
//! which tables feed them, and the patient columns in the pack's types.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder,
};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use chrono::NaiveDate;

use super::scan::{normalise_code, AccKind, AccSpec, CodeMatch, CodelistDef, ScanPlan};
use crate::dataset::columns::{date_to_days, parse_iso_date};
use crate::dataset::{Dataset, Patients, TableFile};
use crate::pack::{AggregateFunc, Expr, MatchMode, Pack, Type, Window};

/// Why a pack cannot run on a dataset (the user's to fix: exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the pack's codelist `{codelist}` reads table `{table}`, but the dataset has no {table}.parquet or {table}.csv")]
    MissingTable { codelist: String, table: String },
    #[error("{file}: column `{column}` is declared in the pack's [columns] but is not in the patients table")]
    MissingColumn { file: String, column: String },
    #[error("{file}: row {row}: column {column}: {value:?} is not {expected}")]
    BadColumnValue {
        file: String,
        row: usize,
        column: String,
        value: String,
        expected: &'static str,
    },
    #[error("{file}: column {column}: cannot read a {found} column as {expected}")]
    ColumnType {
        file: String,
        column: String,
        found: String,
        expected: &'static str,
    },
    #[error("rule `{rule}`: points {points} have more than 10 decimal places")]
    Points { rule: String, points: String },
    #[error("{0}")]
    Scan(String),
}

/// Aggregates resolved to accumulator indices.
#[derive(Debug, Clone)]
pub struct AggIndex {
    as_of: NaiveDate,
    map: HashMap<AccSpec, usize>,
    names: Vec<String>,
}

fn kind_of(func: AggregateFunc) -> AccKind {
    match func {
        AggregateFunc::Has | AggregateFunc::CountDistinctCodelists => AccKind::Any,
        AggregateFunc::Count => AccKind::Count,
        AggregateFunc::FirstDate => AccKind::MinDate,
        AggregateFunc::LastDate => AccKind::MaxDate,
        AggregateFunc::LastValue => AccKind::LastValue,
        AggregateFunc::MinValue => AccKind::MinValue,
        AggregateFunc::MaxValue => AccKind::MaxValue,
    }
}

fn lower(window: &Window, as_of: NaiveDate) -> i32 {
    window
        .lower_bound(as_of)
        .map(date_to_days)
        .unwrap_or(i32::MIN)
}

impl AggIndex {
    pub fn acc(&self, func: AggregateFunc, codelist: usize, window: &Window) -> Option<usize> {
        let spec = AccSpec {
            kind: kind_of(func),
            codelist,
            lower: lower(window, self.as_of),
        };
        self.map.get(&spec).copied()
    }

    /// The accumulator of the latest date ever of `codelist` (latest_of, overrides).
    pub fn latest(&self, codelist: usize) -> Option<usize> {
        self.acc(AggregateFunc::LastDate, codelist, &Window::Ever)
    }

    pub fn codelist_name(&self, codelist: usize) -> &str {
        self.names.get(codelist).map(String::as_str).unwrap_or("")
    }
}

/// A pack bound to a dataset at an as-of date.
#[derive(Debug)]
pub struct Plan {
    pub as_of: NaiveDate,
    pub as_of_days: i32,
    pub scan: ScanPlan,
    pub aggs: AggIndex,
    /// Event tables to scan, with the index of their [`super::TableScan`].
    pub tables: Vec<(TableFile, usize)>,
    /// Patient columns in the pack's types, by name.
    pub columns: HashMap<String, ArrayRef>,
    /// Points of each rule as scaled integers (scale 10).
    pub points: Vec<i128>,
    pub needs_contacts: bool,
    /// Features kept after evaluation (shown in lists, named in reasons or
    /// ordering); the others are dropped chunk by chunk to save memory.
    pub keep_features: Vec<bool>,
}

/// Every expression of a pack, for walks.
fn expressions(pack: &Pack) -> Vec<&Expr> {
    let mut all: Vec<&Expr> = vec![&pack.population];
    all.extend(pack.features.iter().map(|f| &f.expr));
    all.extend(pack.rules.iter().map(|r| &r.condition));
    all.extend(pack.tiers.iter().map(|t| &t.condition));
    all.extend(pack.exclusions.iter().map(|e| &e.condition));
    all
}

fn walk<'a>(e: &'a Expr, f: &mut dyn FnMut(&'a Expr)) {
    f(e);
    match e {
        Expr::Not(x) | Expr::Neg(x) | Expr::DaysSince(x) => walk(x, f),
        Expr::Binary { left, right, .. } => {
            walk(left, f);
            walk(right, f);
        }
        Expr::Case {
            operand,
            branches,
            else_result,
            ..
        } => {
            if let Some(o) = operand {
                walk(o, f);
            }
            for (w, t) in branches {
                walk(w, f);
                walk(t, f);
            }
            if let Some(x) = else_result {
                walk(x, f);
            }
        }
        Expr::InList { expr, list, .. } => {
            walk(expr, f);
            for x in list {
                walk(x, f);
            }
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            walk(expr, f);
            walk(low, f);
            walk(high, f);
        }
        Expr::IsNull { expr, .. } => walk(expr, f),
        Expr::Coalesce { args, .. } => {
            for x in args {
                walk(x, f);
            }
        }
        _ => {}
    }
}

impl Plan {
    pub fn bind(
        pack: &Pack,
        ds: &Dataset,
        patients: &Patients,
        as_of: NaiveDate,
    ) -> Result<Plan, PlanError> {
        let mut specs: Vec<AccSpec> = Vec::new();
        let mut map: HashMap<AccSpec, usize> = HashMap::new();
        let mut add = |spec: AccSpec| {
            map.entry(spec).or_insert_with(|| {
                specs.push(spec);
                specs.len() - 1
            });
        };
        let mut needs_contacts = false;
        for e in expressions(pack) {
            walk(e, &mut |x| match x {
                Expr::Aggregate {
                    func,
                    codelists,
                    window,
                } => {
                    for &c in codelists {
                        add(AccSpec {
                            kind: kind_of(*func),
                            codelist: c,
                            lower: lower(window, as_of),
                        });
                    }
                }
                Expr::LatestOf { a, b } => {
                    for &c in [a, b] {
                        add(AccSpec {
                            kind: AccKind::MaxDate,
                            codelist: c,
                            lower: i32::MIN,
                        });
                    }
                }
                Expr::Contacted(_) | Expr::LastContact => needs_contacts = true,
                _ => {}
            });
        }
        for o in &pack.overrides {
            for c in [o.include, o.exclude] {
                add(AccSpec {
                    kind: AccKind::MaxDate,
                    codelist: c,
                    lower: i32::MIN,
                });
            }
        }
        let defs: Vec<CodelistDef> = pack
            .codelists
            .iter()
            .map(|c| CodelistDef {
                name: c.name.clone(),
                table: c.table.clone(),
                matching: match c.match_mode {
                    MatchMode::Exact => CodeMatch::Exact,
                    MatchMode::Prefix => CodeMatch::Prefix,
                },
                codes: c.codes.iter().map(|x| normalise_code(x)).collect(),
            })
            .collect();
        for spec in &specs {
            let c = &pack.codelists[spec.codelist];
            if ds.event_table(&c.table).is_none() {
                return Err(PlanError::MissingTable {
                    codelist: c.name.clone(),
                    table: c.table.clone(),
                });
            }
        }
        let scan = ScanPlan::build(&defs, specs).map_err(PlanError::Scan)?;
        let tables = scan
            .tables
            .iter()
            .enumerate()
            .filter_map(|(i, t)| ds.event_table(&t.table).map(|f| (f.clone(), i)))
            .collect();
        let points = pack
            .rules
            .iter()
            .map(|r| {
                super::types::decimal_to_scaled(r.points).ok_or_else(|| PlanError::Points {
                    rule: r.id.clone(),
                    points: r.points.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let columns = bind_columns(pack, patients)?;
        Ok(Plan {
            as_of,
            as_of_days: date_to_days(as_of),
            scan,
            aggs: AggIndex {
                as_of,
                map,
                names: pack.codelists.iter().map(|c| c.name.clone()).collect(),
            },
            tables,
            columns,
            points,
            needs_contacts: needs_contacts || ds.contacts.is_some(),
            keep_features: features_read_after_evaluation(pack),
        })
    }
}

/// Contract columns as typed by the reader; declared extras coerced to
/// their declared type (CSV extras arrive as text).
fn bind_columns(pack: &Pack, patients: &Patients) -> Result<HashMap<String, ArrayRef>, PlanError> {
    let mut out: HashMap<String, ArrayRef> = HashMap::new();
    out.insert(
        "practice_code".into(),
        Arc::new(patients.practice_code.clone()),
    );
    out.insert("pcn_code".into(), Arc::new(patients.pcn_code.clone()));
    out.insert("sex".into(), Arc::new(patients.sex.clone()));
    out.insert("lsoa_code".into(), Arc::new(patients.lsoa_code.clone()));
    out.insert(
        "date_of_birth".into(),
        Arc::new(patients.date_of_birth.clone()),
    );
    out.insert(
        "registration_end".into(),
        Arc::new(patients.registration_end.clone()),
    );
    out.insert(
        "date_of_death".into(),
        Arc::new(patients.date_of_death.clone()),
    );
    out.insert(
        "imd_decile".into(),
        cast(&patients.imd_decile, &DataType::Int64).map_err(|e| PlanError::Scan(e.to_string()))?,
    );
    for decl in &pack.columns {
        let Some((_, raw)) = patients.extras.iter().find(|(n, _)| *n == decl.name) else {
            if out.contains_key(&decl.name) {
                continue;
            }
            return Err(PlanError::MissingColumn {
                file: patients.file.clone(),
                column: decl.name.clone(),
            });
        };
        out.insert(
            decl.name.clone(),
            coerce(&patients.file, &decl.name, raw, decl.ty)?,
        );
    }
    Ok(out)
}

fn coerce(file: &str, column: &str, raw: &ArrayRef, ty: Type) -> Result<ArrayRef, PlanError> {
    let target = super::types::arrow_type(ty);
    if raw.data_type() == &target {
        return Ok(raw.clone());
    }
    let expected = match ty {
        Type::Bool => "yes/no (true, false, yes, no, y, n, 1 or 0)",
        Type::Int => "a whole number",
        Type::Float => "a number",
        Type::Date => "a date (expected YYYY-MM-DD)",
        _ => "text",
    };
    let text = match raw.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            cast(raw, &DataType::Utf8).map_err(|e| PlanError::Scan(e.to_string()))?
        }
        _ => {
            return cast(raw, &target).map_err(|_| PlanError::ColumnType {
                file: file.to_string(),
                column: column.to_string(),
                found: raw.data_type().to_string(),
                expected,
            })
        }
    };
    let text = text.as_string::<i32>();
    let bad = |row: usize, value: &str| PlanError::BadColumnValue {
        file: file.to_string(),
        row: row + 1,
        column: column.to_string(),
        value: value.to_string(),
        expected,
    };
    let cells = (0..text.len()).map(|i| {
        (
            i,
            (!text.is_null(i))
                .then(|| text.value(i).trim())
                .filter(|v| !v.is_empty()),
        )
    });
    Ok(match ty {
        Type::Bool => {
            let mut b = BooleanBuilder::with_capacity(text.len());
            for (i, v) in cells {
                b.append_option(match v.map(|v| v.to_ascii_lowercase()) {
                    None => None,
                    Some(v) => Some(match v.as_str() {
                        "true" | "t" | "yes" | "y" | "1" => true,
                        "false" | "f" | "no" | "n" | "0" => false,
                        _ => return Err(bad(i, &v)),
                    }),
                });
            }
            Arc::new(b.finish())
        }
        Type::Int => {
            let mut b = Int64Builder::with_capacity(text.len());
            for (i, v) in cells {
                b.append_option(
                    v.map(|v| v.parse::<i64>().map_err(|_| bad(i, v)))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        Type::Float => {
            let mut b = Float64Builder::with_capacity(text.len());
            for (i, v) in cells {
                b.append_option(
                    v.map(|v| v.parse::<f64>().map_err(|_| bad(i, v)))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        Type::Date => {
            let mut b = Date32Builder::with_capacity(text.len());
            for (i, v) in cells {
                b.append_option(
                    v.map(|v| parse_iso_date(v).map(date_to_days).ok_or_else(|| bad(i, v)))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        _ => cast(text, &DataType::Utf8).map_err(|e| PlanError::Scan(e.to_string()))?,
    })
}

/// Features read after evaluation: display columns, ordering keys and
/// reason placeholders.
fn features_read_after_evaluation(pack: &Pack) -> Vec<bool> {
    let mut keep = vec![false; pack.features.len()];
    for &f in &pack.list.display {
        keep[f] = true;
    }
    for k in &pack.list.order_by {
        if let crate::pack::OrderBy::Feature(f) = k.by {
            keep[f] = true;
        }
    }
    for rule in &pack.rules {
        for seg in &rule.reason.segments {
            if let crate::pack::Segment::Feature(f) = seg {
                keep[*f] = true;
            }
        }
    }
    keep
}
