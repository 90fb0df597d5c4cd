//! The plan of a pack: [`PhysicalPlan::compile`] turns a checked pack and
//! an as-of date into physical expressions and accumulators (no data
//! needed, printable); [`Plan::bind`] then attaches a dataset: which event
//! tables to scan, and the patient columns in the engine's storage for
//! their pack types.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Float64Array, Float64Builder,
    Int64Builder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use chrono::NaiveDate;

use super::lower::{coerce, Lowering, PlannedColumn};
use super::physical::PhysicalExpr;
use super::scan::{normalise_code, CodeMatch, CodelistDef, ScanPlan};
use super::types::{arrow_type, decimal_to_scaled};
use crate::contract;
use crate::dataset::columns::date_to_days;
use crate::dataset::{Dataset, Patients, TableFile};
use crate::pack::{MatchMode, OrderBy, Pack, Segment, Type};

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
        expected: String,
    },
    #[error("{file}: column {column}: cannot read a {found} column as {expected}")]
    ColumnType {
        file: String,
        column: String,
        found: String,
        expected: String,
    },
    #[error("rule `{rule}`: points {points} have more than 10 decimal places")]
    Points { rule: String, points: String },
    #[error("the pack `{pack}` is written for {wanted} deprivation deciles ([pack] imd = \"{wanted_key}\"), but the dataset's are {found} ({stated}); state imd (and lsoa_vintage) in the dataset's dataset.toml, or use a pack for {found}")]
    ImdVersion {
        pack: String,
        wanted: crate::reference::deprivation::ImdVersion,
        wanted_key: &'static str,
        found: crate::reference::deprivation::ImdVersion,
        stated: &'static str,
    },
}

/// A feature as planned.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFeature {
    pub name: String,
    pub ty: Type,
    pub expr: PhysicalExpr,
    /// Read after evaluation (shown in lists, named in reasons or used for
    /// ordering); the others are dropped chunk by chunk to save memory.
    pub keep: bool,
}

/// A scoring rule as planned.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRule {
    pub id: String,
    pub condition: PhysicalExpr,
    /// Points as a scaled integer (scale [`super::types::DECIMAL_SCALE`]).
    pub points: i128,
}

/// An override as planned: the accumulators of the latest include and
/// exclude codes, and the tier it forces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedOverride {
    pub include: usize,
    pub exclude: usize,
    pub tier: usize,
}

/// A list ordering key as planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKeyPlan {
    Score,
    /// Age from the date-of-birth column (index).
    Age(usize),
    Feature(usize),
    /// A patient column (index).
    Column(usize),
}

/// A checked pack compiled for one as-of date: everything the engine
/// evaluates, resolved and typed.
#[derive(Debug, Clone)]
pub struct PhysicalPlan {
    pub as_of: NaiveDate,
    pub as_of_days: i32,
    /// Ages on `as_of` by date of birth (worked out once for the run).
    pub ages: crate::pack::semantics::Ages,
    /// Patient columns read, in the pack's types.
    pub columns: Vec<PlannedColumn>,
    /// Accumulators and the code -> codelist maps of each event table.
    pub scan: ScanPlan,
    pub population: PhysicalExpr,
    pub features: Vec<PlannedFeature>,
    pub rules: Vec<PlannedRule>,
    /// `[score] add`, as a decimal: added to the fired rules' points.
    pub score_add: Option<PhysicalExpr>,
    /// In priority order.
    pub tiers: Vec<PhysicalExpr>,
    pub exclusions: Vec<PhysicalExpr>,
    /// By exclusion: whether it reads the call log (`contacted(...)`), so
    /// the people it leaves off were listed but for a recent call.
    pub contact_exclusions: Vec<bool>,
    pub overrides: Vec<PlannedOverride>,
    /// After tier; the patient id is the final tie-break.
    pub order: Vec<(OrderKeyPlan, bool)>,
    /// Whether an expression reads the contacts table.
    pub needs_contacts: bool,
    /// The contact outcome sets `contacted` reads (the first, empty, is
    /// any contact).
    pub contact_sets: Vec<Vec<String>>,
    /// Index of the date-of-birth column (always planned).
    pub date_of_birth: usize,
    /// Whether an expression reads `age` (computed once per chunk).
    pub reads_age: bool,
    /// Whether a tier or exclusion reads `score`.
    pub reads_score: bool,
    /// Rule indexes in the order their reasons are shown: highest points
    /// first, ties in pack order ([`crate::pack::semantics::reason_order`]).
    pub reason_order: Vec<usize>,
}

impl PhysicalPlan {
    /// Compiles a checked pack. Fails only on limits the checker states
    /// (points beyond 10 decimal places).
    pub fn compile(pack: &Pack, as_of: NaiveDate) -> Result<PhysicalPlan, PlanError> {
        let mut lw = Lowering::new(pack, as_of);
        // The date of birth (age, list columns) is always column 0.
        let date_of_birth = lw.column(contract::DATE_OF_BIRTH, Type::Date);
        let population = lw.condition(&pack.population);
        let keep = features_read_after_evaluation(pack);
        let features: Vec<PlannedFeature> = pack
            .features
            .iter()
            .zip(keep)
            .map(|(f, keep)| PlannedFeature {
                name: f.name.clone(),
                ty: f.ty,
                expr: coerce(lw.lower(&f.expr), f.ty),
                keep,
            })
            .collect();
        let rules = pack
            .rules
            .iter()
            .map(|r| {
                Ok(PlannedRule {
                    id: r.id.clone(),
                    condition: lw.condition(&r.condition),
                    points: decimal_to_scaled(r.points).ok_or_else(|| PlanError::Points {
                        rule: r.id.clone(),
                        points: r.points.to_string(),
                    })?,
                })
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        let score_add = pack
            .score_add
            .as_ref()
            .map(|e| super::lower::coerce(lw.lower(e), Type::Decimal));
        let tiers: Vec<PhysicalExpr> = pack
            .tiers
            .iter()
            .map(|t| lw.condition(&t.condition))
            .collect();
        let exclusions: Vec<PhysicalExpr> = pack
            .exclusions
            .iter()
            .map(|x| lw.condition(&x.condition))
            .collect();
        let overrides = pack
            .overrides
            .iter()
            .map(|o| PlannedOverride {
                include: lw.latest(o.include),
                exclude: lw.latest(o.exclude),
                tier: o.tier,
            })
            .collect();
        let order = if pack.list.order_by.is_empty() {
            vec![(OrderKeyPlan::Score, true)]
        } else {
            pack.list
                .order_by
                .iter()
                .map(|k| {
                    let key = match &k.by {
                        OrderBy::Score => OrderKeyPlan::Score,
                        OrderBy::Age => {
                            OrderKeyPlan::Age(lw.column(contract::DATE_OF_BIRTH, Type::Date))
                        }
                        OrderBy::Feature(f) => OrderKeyPlan::Feature(*f),
                        OrderBy::Column(name) => {
                            let ty = column_type(pack, name);
                            OrderKeyPlan::Column(lw.column(name, ty))
                        }
                    };
                    (key, k.descending)
                })
                .collect()
        };
        let def = |c: &crate::pack::Codelist, name: String, codes: Vec<String>| CodelistDef {
            name,
            table: c.table.clone(),
            matching: match c.match_mode {
                MatchMode::Exact => CodeMatch::Exact,
                MatchMode::Prefix => CodeMatch::Prefix,
            },
            codes: codes.iter().map(|x| normalise_code(x)).collect(),
        };
        let mut defs: Vec<CodelistDef> = pack
            .codelists
            .iter()
            .map(|c| def(c, c.name.clone(), c.codes.clone()))
            .collect();
        // One codelist per category a categorised aggregate reads.
        for (parent, category) in &lw.derived {
            let c = &pack.codelists[*parent];
            let codes = c
                .codes
                .iter()
                .filter(|code| {
                    c.categories
                        .get(*code)
                        .is_some_and(|cats| cats.contains(category))
                })
                .cloned()
                .collect();
            defs.push(def(c, format!("{}[{category}]", c.name), codes));
        }
        let scan = ScanPlan::build(&defs, lw.accs.clone());
        let reads = |exprs: &[&PhysicalExpr], what: fn(&PhysicalExpr) -> bool| {
            let mut found = false;
            for e in exprs {
                e.walk(&mut |x| found |= what(x));
            }
            found
        };
        let mut all: Vec<&PhysicalExpr> = vec![&population];
        all.extend(features.iter().map(|f: &PlannedFeature| &f.expr));
        all.extend(rules.iter().map(|r: &PlannedRule| &r.condition));
        all.extend(score_add.iter());
        all.extend(tiers.iter());
        all.extend(exclusions.iter());
        let reads_age = reads(&all, |x| matches!(x, PhysicalExpr::Age { .. }));
        let reads_score = reads(&all, |x| matches!(x, PhysicalExpr::Score));
        let reason_order =
            crate::pack::semantics::reason_order((0..rules.len()).collect(), |r| rules[r].points);
        Ok(PhysicalPlan {
            as_of,
            as_of_days: date_to_days(as_of),
            ages: crate::pack::semantics::Ages::new(as_of),
            columns: lw.columns,
            scan,
            population,
            features,
            score_add,
            tiers,
            contact_exclusions: exclusions
                .iter()
                .map(|x| {
                    let mut reads = false;
                    x.walk(&mut |e| reads |= matches!(e, PhysicalExpr::Contacted { .. }));
                    reads
                })
                .collect(),
            exclusions,
            overrides,
            order,
            needs_contacts: lw.needs_contacts,
            contact_sets: lw.contact_sets.clone(),
            date_of_birth,
            reads_age,
            reads_score,
            reason_order,
            rules,
        })
    }
}

/// The type of a patient column a pack names: declared in `[columns]`, or
/// fixed by the contract.
fn column_type(pack: &Pack, name: &str) -> Type {
    pack.columns
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.ty)
        .or_else(|| contract::patient_column(name).map(|c| c.ty))
        .unwrap_or(Type::Str)
}

/// Features read after evaluation: display columns, ordering keys and
/// reason placeholders.
fn features_read_after_evaluation(pack: &Pack) -> Vec<bool> {
    let mut keep = vec![false; pack.features.len()];
    for &f in &pack.list.display {
        keep[f] = true;
    }
    for k in &pack.list.order_by {
        if let OrderBy::Feature(f) = k.by {
            keep[f] = true;
        }
    }
    for rule in &pack.rules {
        for seg in &rule.reason.segments {
            if let Segment::Feature(f) = seg {
                keep[*f] = true;
            }
        }
    }
    keep
}

impl fmt::Display for PhysicalPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "as_of {}", self.as_of.format("%Y-%m-%d"))?;
        writeln!(f, "columns")?;
        for (i, c) in self.columns.iter().enumerate() {
            writeln!(f, "  #{i} {} {}", c.name, c.ty)?;
        }
        writeln!(f, "accumulators")?;
        for (i, a) in self.scan.accs.iter().enumerate() {
            let cl = &self.scan.codelists[a.codelist];
            let since = if a.lower == i32::MIN {
                "ever".to_string()
            } else {
                crate::dataset::columns::days_to_date(a.lower)
                    .map_or_else(|| a.lower.to_string(), |d| format!("since {d}"))
            };
            writeln!(f, "  acc{i} {:?} {}.{} {since}", a.kind, cl.table, cl.name)?;
        }
        writeln!(f, "population := {}", self.population)?;
        for (i, x) in self.features.iter().enumerate() {
            let keep = if x.keep { " (kept)" } else { "" };
            writeln!(f, "f{i} {} {}{keep} := {}", x.name, x.ty, x.expr)?;
        }
        for r in &self.rules {
            let points = super::types::scaled_to_decimal(r.points);
            writeln!(f, "rule {} {points:+} := {}", r.id, r.condition)?;
        }
        if let Some(add) = &self.score_add {
            writeln!(f, "score := points of fired rules + {add}")?;
        }
        for o in &self.overrides {
            writeln!(
                f,
                "override tier{} := latest acc{} over acc{}",
                o.tier, o.include, o.exclude
            )?;
        }
        for (i, x) in self.exclusions.iter().enumerate() {
            writeln!(f, "exclusion{i} := {x}")?;
        }
        for (i, t) in self.tiers.iter().enumerate() {
            writeln!(f, "tier{i} := {t}")?;
        }
        let order: Vec<String> = self
            .order
            .iter()
            .map(|(k, desc)| {
                let key = match k {
                    OrderKeyPlan::Score => "score".to_string(),
                    OrderKeyPlan::Age(c) => format!("age(#{c})"),
                    OrderKeyPlan::Feature(x) => format!("f{x}"),
                    OrderKeyPlan::Column(c) => format!("#{c}"),
                };
                format!("{key} {}", if *desc { "desc" } else { "asc" })
            })
            .collect();
        writeln!(f, "order tier, {}, patient_id", order.join(", "))
    }
}

/// A physical plan bound to a dataset.
#[derive(Debug)]
pub struct Plan {
    pub physical: PhysicalPlan,
    /// The planned patient columns, full length, in the engine's storage
    /// for their pack types (see [`super::types::arrow_type`]).
    pub columns: Vec<ArrayRef>,
    /// Event tables to scan, with the index of their scan in `physical.scan.tables`.
    pub tables: Vec<(TableFile, usize)>,
    /// Whether the scan reads the contacts table (for the pack, or to count it).
    pub reads_contacts: bool,
}

impl std::ops::Deref for Plan {
    type Target = PhysicalPlan;

    fn deref(&self) -> &PhysicalPlan {
        &self.physical
    }
}

impl Plan {
    pub fn bind(
        pack: &Pack,
        ds: &Dataset,
        patients: &Patients,
        as_of: NaiveDate,
    ) -> Result<Plan, PlanError> {
        if let Some(wanted) = pack.meta.imd {
            let d = patients.deprivation;
            if d.index != wanted {
                return Err(PlanError::ImdVersion {
                    pack: pack.meta.id.clone(),
                    wanted,
                    wanted_key: wanted.as_str(),
                    found: d.index,
                    stated: if d.stated_in == "default" {
                        "the default: its dataset.toml states no imd"
                    } else {
                        "as its dataset.toml states"
                    },
                });
            }
        }
        let physical = PhysicalPlan::compile(pack, as_of)?;
        for spec in &physical.scan.accs {
            // The scan's codelists: the pack's, then one per category read.
            let c = &physical.scan.codelists[spec.codelist];
            if ds.event_table(&c.table).is_none() {
                return Err(PlanError::MissingTable {
                    codelist: c.name.clone(),
                    table: c.table.clone(),
                });
            }
        }
        // Declared columns must exist even when no expression reads them.
        for decl in &pack.columns {
            if patients.column(&decl.name).is_none() {
                return Err(PlanError::MissingColumn {
                    file: patients.file.clone(),
                    column: decl.name.clone(),
                });
            }
        }
        let tables = physical
            .scan
            .tables
            .iter()
            .enumerate()
            .filter_map(|(i, t)| ds.event_table(&t.table).map(|f| (f.clone(), i)))
            .collect();
        let columns = physical
            .columns
            .iter()
            .map(|c| bind_column(patients, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            reads_contacts: physical.needs_contacts || ds.contacts.is_some(),
            physical,
            columns,
            tables,
        })
    }
}

/// A patient column in the engine's storage for its pack type: contract
/// columns as the reader typed them, declared extras converted from what
/// the file stored (CSV extras arrive as text). Non-finite floats (NaN,
/// ±infinity) read as NULL.
pub fn bind_column(patients: &Patients, c: &PlannedColumn) -> Result<ArrayRef, PlanError> {
    use crate::dataset::patients::PatientColumn;
    let raw: ArrayRef = match patients.column(&c.name) {
        Some(PatientColumn::Text(a)) => Arc::new(a.to_strings()),
        Some(PatientColumn::Date(a)) => Arc::new(a.clone()),
        Some(PatientColumn::Int(a)) => Arc::new(a.clone()),
        Some(PatientColumn::Extra(a)) => a.clone(),
        Some(PatientColumn::Derived(a)) => a,
        None => {
            return Err(PlanError::MissingColumn {
                file: patients.file.clone(),
                column: c.name.clone(),
            })
        }
    };
    convert(&patients.file, &patients.spec, &c.name, &raw, c.ty)
}

fn convert(
    file: &str,
    spec: &crate::dataset::TableSpec,
    column: &str,
    raw: &ArrayRef,
    ty: Type,
) -> Result<ArrayRef, PlanError> {
    let target = arrow_type(ty);
    let date_format = spec.date_format(column);
    let expected = match ty {
        Type::Bool => "yes/no (true, false, yes, no, y, n, 1 or 0)".to_string(),
        Type::Int => "a whole number".into(),
        Type::Float => "a number".into(),
        Type::Date => format!("a date (expected {date_format})"),
        _ => "text".into(),
    };
    let label = spec.label(column);
    let column = label.as_str();
    let wrong_type = || PlanError::ColumnType {
        file: file.to_string(),
        column: column.to_string(),
        found: raw.data_type().to_string(),
        expected: expected.clone(),
    };
    let text = match raw.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            cast(raw, &DataType::Utf8).map_err(|_| wrong_type())?
        }
        _ => {
            // 32-bit integers are kept as they are (the engine widens them a
            // chunk at a time): at 62M people a 64-bit copy of the
            // deprivation deciles took 500 MB.
            let typed = if raw.data_type() == &target
                || (ty == Type::Int && raw.data_type() == &DataType::Int32)
            {
                raw.clone()
            } else {
                // Only lossless conversions between stored number types.
                let lossless = matches!(
                    (raw.data_type(), ty),
                    (
                        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64,
                        Type::Int | Type::Float
                    ) | (
                        DataType::UInt8 | DataType::UInt16 | DataType::UInt32,
                        Type::Int | Type::Float
                    ) | (DataType::Float32, Type::Float)
                        | (DataType::Date64, Type::Date)
                );
                if !lossless {
                    return Err(wrong_type());
                }
                cast(raw, &target).map_err(|_| wrong_type())?
            };
            return Ok(if ty == Type::Float {
                finite_only(typed.as_primitive::<Float64Type>())
            } else {
                typed
            });
        }
    };
    let text = text.as_string::<i32>();
    let bad = |row: usize, value: &str| PlanError::BadColumnValue {
        file: file.to_string(),
        row: row + 1,
        column: column.to_string(),
        value: value.to_string(),
        expected: expected.clone(),
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
                let x = v
                    .map(|v| v.parse::<f64>().map_err(|_| bad(i, v)))
                    .transpose()?;
                b.append_option(x.filter(|x| x.is_finite()));
            }
            Arc::new(b.finish())
        }
        Type::Date => {
            let mut b = Date32Builder::with_capacity(text.len());
            for (i, v) in cells {
                b.append_option(
                    v.map(|v| {
                        date_format
                            .read(v)
                            .map(date_to_days)
                            .ok_or_else(|| bad(i, v))
                    })
                    .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        // Text: trimmed, and an empty cell is NULL (as in contract columns).
        _ => Arc::new(cells.map(|(_, v)| v).collect::<arrow::array::StringArray>()),
    })
}

/// The same floats with NaN and ±infinity as NULL.
fn finite_only(a: &Float64Array) -> ArrayRef {
    if a.values().iter().all(|x| x.is_finite()) {
        return Arc::new(a.clone());
    }
    Arc::new(
        a.iter()
            .map(|x| x.filter(|x| x.is_finite()))
            .collect::<Float64Array>(),
    )
}
