//! `strata test`: a rule pack's worked examples, run through the engine and
//! the reference evaluator.
//!
//! `rules/<pack>/tests/*.toml` describe people (a patients row, events with
//! codes and dates, contacts) and what the pack must decide about each:
//! listed or not, tier, score, the rules that fire, feature values, reasons.
//! Every example of a file becomes one person of a small dataset written to
//! a temporary folder; the pack runs over it exactly as `strata run` would
//! (the engine), and each person is decided again by the reference
//! evaluator. An example passes when both give what it expects and agree
//! with each other on everything else. The format is in `rules/FORMAT.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::Array;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::explain::person_record;
use super::Job;
use crate::error::Error;
use crate::exec::{execute, Keep, Outcomes};
use crate::pack::{Pack, RuleResult, Type, Value};

/// One example's verdict.
#[derive(Debug, Clone)]
pub struct ExampleResult {
    /// The example file, relative to the pack folder.
    pub file: String,
    pub name: String,
    /// Empty when the example passed.
    pub failures: Vec<String>,
}

/// Every example of a pack.
#[derive(Debug, Clone, Default)]
pub struct ExamplesReport {
    pub results: Vec<ExampleResult>,
}

impl ExamplesReport {
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.failures.is_empty())
            .count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// One example as written.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Example {
    name: String,
    /// Patients-table columns; `patient_id` and `practice_code` are filled in.
    #[serde(default)]
    patient: toml::Table,
    /// `[table, code, date]` or `[table, code, date, value]`.
    #[serde(default)]
    events: Vec<toml::Value>,
    #[serde(default)]
    /// Calls already made: a date, or `[date, outcome]`.
    contacts: Vec<toml::Value>,
    expect: Expect,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    listed: Option<bool>,
    /// The tier id the person is listed in.
    tier: Option<String>,
    score: Option<toml::Value>,
    /// Ids of the rules that fire, all of them.
    rules: Option<Vec<String>>,
    /// Feature values by name; the string `"NULL"` for NULL.
    features: Option<toml::Table>,
    reasons: Option<Vec<String>>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExampleFile {
    as_of: toml::value::Datetime,
    #[serde(rename = "example", default)]
    examples: Vec<Example>,
}

/// Runs every `tests/*.toml` of the pack in `pack_dir`.
pub fn test_pack(pack_dir: &Path) -> Result<ExamplesReport, Error> {
    let dir = pack_dir.join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| Error::usage(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::usage(format!(
            "{}: no worked examples (*.toml)",
            dir.display()
        )));
    }
    let mut report = ExamplesReport::default();
    for file in files {
        let shown = format!(
            "tests/{}",
            file.file_name().unwrap_or_default().to_string_lossy()
        );
        report.results.extend(run_file(pack_dir, &file, &shown)?);
    }
    Ok(report)
}

fn run_file(pack_dir: &Path, path: &Path, shown: &str) -> Result<Vec<ExampleResult>, Error> {
    let bad = |m: String| Error::usage(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let file: ExampleFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let as_of = toml_date(&file.as_of).ok_or_else(|| bad("as_of is not a date".into()))?;
    if file.examples.is_empty() {
        return Err(bad("no [[example]]".into()));
    }
    for x in &file.examples {
        if !x.patient.contains_key(crate::contract::DATE_OF_BIRTH) {
            return Err(bad(format!(
                "example {:?}: patient.date_of_birth is required",
                x.name
            )));
        }
    }
    let pack = crate::pack::load(pack_dir)?;
    let data = tempfile::tempdir()
        .map_err(|e| Error::Internal(format!("a temporary folder for the examples: {e}")))?;
    write_dataset(data.path(), &pack, &file.examples, as_of).map_err(bad)?;

    let mut job = Job::load(pack_dir, data.path(), Some(as_of))?;
    // Every feature is kept so each one can be compared.
    for f in &mut job.plan.physical.features {
        f.keep = true;
    }
    let engine = execute(&job.plan, &job.dataset, &job.patients, Keep::Everyone)?;
    let mut results = Vec::new();
    for (i, x) in file.examples.iter().enumerate() {
        let id = example_id(i);
        let row = job
            .patients
            .row_of_text(&id)
            .ok_or_else(|| Error::Internal(format!("example {id} not in its dataset")))?
            as usize;
        let person = person_record(&job, row, &id)?;
        let reference = crate::pack::evaluate(&job.pack, &person, as_of);
        let failures = compare(&job, &engine, row, &reference, &x.expect).map_err(bad)?;
        results.push(ExampleResult {
            file: shown.to_string(),
            name: x.name.clone(),
            failures,
        });
    }
    Ok(results)
}

fn example_id(i: usize) -> String {
    format!("E{}", i + 1)
}

/// What both evaluators decided about one person, in comparable form.
#[derive(Debug, Clone, PartialEq)]
struct Decided {
    listed: bool,
    tier: Option<String>,
    score: Decimal,
    rules: BTreeSet<String>,
    features: Vec<Value>,
    reasons: Vec<String>,
}

fn compare(
    job: &Job,
    engine: &Outcomes,
    row: usize,
    reference: &crate::pack::Outcome,
    expect: &Expect,
) -> Result<Vec<String>, String> {
    let pack = &job.pack;
    let tier_id = |listed: bool, t: Option<usize>| {
        listed
            .then(|| t.map(|t| pack.tiers[t].id.clone()))
            .flatten()
    };
    let in_pop = reference.in_population;
    let fast = Decided {
        listed: engine.listed(row),
        tier: tier_id(engine.listed(row), engine.tier[row].map(usize::from)),
        score: engine.score_decimal(row).normalize(),
        rules: (0..pack.rules.len())
            .filter(|&r| engine.rules[r].is_valid(row) && engine.rules[r].value(row))
            .map(|r| pack.rules[r].id.clone())
            .collect(),
        features: (0..pack.features.len())
            .map(|f| {
                if engine.in_population[row] {
                    engine.feature_value(f, row)
                } else {
                    Value::Null
                }
            })
            .collect(),
        reasons: if engine.in_population[row] {
            engine.reasons(pack, &job.plan, row)
        } else {
            Vec::new()
        },
    };
    let slow = Decided {
        listed: reference.listed(),
        tier: tier_id(reference.listed(), reference.tier),
        score: reference.score.normalize(),
        rules: (0..reference.rules.len())
            .filter(|&r| reference.rules[r] == RuleResult::Fired)
            .map(|r| pack.rules[r].id.clone())
            .collect(),
        features: if in_pop {
            reference.features.clone()
        } else {
            vec![Value::Null; pack.features.len()]
        },
        reasons: if in_pop {
            reference.reasons.clone()
        } else {
            Vec::new()
        },
    };
    let mut failures = Vec::new();
    // Each expectation against both evaluators.
    let mut check = |what: &str, expected: String, fast: String, slow: String| {
        if fast != expected || slow != expected {
            failures.push(format!(
                "{what}: expected {expected}, engine {fast}, reference {slow}"
            ));
        }
    };
    if let Some(l) = expect.listed {
        check(
            "listed",
            l.to_string(),
            fast.listed.to_string(),
            slow.listed.to_string(),
        );
    }
    let show_tier = |t: &Option<String>| t.clone().unwrap_or_else(|| "not listed".into());
    if let Some(t) = &expect.tier {
        if !pack.tiers.iter().any(|x| &x.id == t) {
            return Err(format!("expect.tier: the pack has no tier {t:?}"));
        }
        check(
            "tier",
            t.clone(),
            show_tier(&fast.tier),
            show_tier(&slow.tier),
        );
    }
    if let Some(s) = &expect.score {
        let want = decimal(s).ok_or_else(|| format!("expect.score: {s} is not a number"))?;
        check(
            "score",
            want.normalize().to_string(),
            fast.score.to_string(),
            slow.score.to_string(),
        );
    }
    if let Some(rules) = &expect.rules {
        for r in rules {
            if !pack.rules.iter().any(|x| &x.id == r) {
                return Err(format!("expect.rules: the pack has no rule {r:?}"));
            }
        }
        let want: BTreeSet<String> = rules.iter().cloned().collect();
        let show = |s: &BTreeSet<String>| format!("{:?}", s.iter().collect::<Vec<_>>());
        check("rules", show(&want), show(&fast.rules), show(&slow.rules));
    }
    if let Some(features) = &expect.features {
        for (name, v) in features {
            let f = pack
                .feature_index(name)
                .ok_or_else(|| format!("expect.features: the pack has no feature {name:?}"))?;
            let want = feature_value(v, pack.features[f].ty).ok_or_else(|| {
                format!(
                    "expect.features.{name}: {v} is not a {}",
                    pack.features[f].ty
                )
            })?;
            check(
                &format!("feature {name}"),
                show_value(&want),
                show_value(&fast.features[f]),
                show_value(&slow.features[f]),
            );
        }
    }
    if let Some(reasons) = &expect.reasons {
        check(
            "reasons",
            format!("{reasons:?}"),
            format!("{:?}", fast.reasons),
            format!("{:?}", slow.reasons),
        );
    }
    // Whatever the example does not state, the two evaluators must agree on.
    if fast != slow {
        failures.push(format!(
            "the engine and the reference evaluator disagree: engine {fast:?}, reference {slow:?}"
        ));
    }
    Ok(failures)
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Str(s) => format!("{s:?}"),
        Value::Float(x) => format!("{x:?}"),
        other => other.to_string(),
    }
}

/// A TOML date (`2020-03-23`, no time), read as dataset.toml's are.
fn toml_date(d: &toml::value::Datetime) -> Option<NaiveDate> {
    crate::dataset::columns::parse_iso_date(&d.to_string())
}

fn decimal(v: &toml::Value) -> Option<Decimal> {
    match v {
        toml::Value::Integer(i) => Some(Decimal::from(*i)),
        toml::Value::Float(x) => x.to_string().parse().ok(),
        toml::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An expected feature value in the feature's type.
fn feature_value(v: &toml::Value, ty: Type) -> Option<Value> {
    if v.as_str() == Some("NULL") {
        return Some(Value::Null);
    }
    Some(match (ty, v) {
        (Type::Bool, toml::Value::Boolean(b)) => Value::Bool(*b),
        (Type::Int, toml::Value::Integer(i)) => Value::Int(*i),
        (Type::Float, toml::Value::Float(x)) => Value::Float(*x),
        (Type::Float, toml::Value::Integer(i)) => Value::Float(*i as f64),
        (Type::Decimal, v) => Value::Decimal(decimal(v)?),
        (Type::Str, toml::Value::String(s)) => Value::Str(s.clone()),
        (Type::Date, toml::Value::Datetime(d)) => Value::Date(toml_date(d)?),
        _ => return None,
    })
}

/// A TOML value as a CSV cell.
fn cell(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => other.to_string(),
    }
}

/// Writes the examples as one small CSV dataset, person `i` with id `E{i+1}`.
fn write_dataset(
    dir: &Path,
    pack: &Pack,
    examples: &[Example],
    as_of: NaiveDate,
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut columns: Vec<String> = vec!["patient_id".into(), "practice_code".into()];
    for x in examples {
        for k in x.patient.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let mut w = csv::Writer::from_path(dir.join("patients.csv")).map_err(|e| e.to_string())?;
    w.write_record(&columns).map_err(|e| e.to_string())?;
    for (i, x) in examples.iter().enumerate() {
        let row: Vec<String> = columns
            .iter()
            .map(|c| match (c.as_str(), x.patient.get(c)) {
                ("patient_id", _) => example_id(i),
                (_, Some(v)) => cell(v),
                ("practice_code", None) => "E00001".into(),
                (_, None) => String::new(),
            })
            .collect();
        w.write_record(&row).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(io)?;

    // Every table the pack reads, plus any an example names.
    let mut tables: BTreeMap<String, String> = pack
        .codelists
        .iter()
        .map(|c| {
            (
                c.table.clone(),
                String::from("patient_id,code,date,value\n"),
            )
        })
        .collect();
    tables
        .entry("events".into())
        .or_insert_with(|| "patient_id,code,date,value\n".into());
    for (i, x) in examples.iter().enumerate() {
        for e in &x.events {
            let parts = e.as_array().filter(|a| (3..=4).contains(&a.len())).ok_or_else(|| {
                format!(
                    "example {:?}: an event is [table, code, date] or [table, code, date, value], not {e}",
                    x.name
                )
            })?;
            let (Some(table), Some(code), Some(date)) =
                (parts[0].as_str(), parts[1].as_str(), parts[2].as_datetime())
            else {
                return Err(format!(
                    "example {:?}: an event is [\"table\", \"code\", date(, value)], not {e}",
                    x.name
                ));
            };
            let value = match parts.get(3) {
                None => String::new(),
                Some(v) => match v {
                    toml::Value::Float(x) => x.to_string(),
                    toml::Value::Integer(x) => x.to_string(),
                    _ => {
                        return Err(format!(
                            "example {:?}: event value {v} is not a number",
                            x.name
                        ))
                    }
                },
            };
            let text = tables
                .entry(table.to_string())
                .or_insert_with(|| "patient_id,code,date,value\n".into());
            let mut row = csv::Writer::from_writer(Vec::new());
            row.write_record([example_id(i), code.to_string(), date.to_string(), value])
                .map_err(|e| e.to_string())?;
            text.push_str(&String::from_utf8_lossy(
                &row.into_inner().map_err(|e| e.to_string())?,
            ));
        }
    }
    for (table, text) in &tables {
        std::fs::write(dir.join(format!("{table}.csv")), text).map_err(io)?;
    }
    let mut contacts = csv::Writer::from_writer(Vec::new());
    contacts
        .write_record(["patient_id", "date", "outcome"])
        .map_err(|e| e.to_string())?;
    for (i, x) in examples.iter().enumerate() {
        for c in &x.contacts {
            let contact = match c {
                toml::Value::Datetime(d) => Some((d, "")),
                toml::Value::Array(pair) => match pair.as_slice() {
                    [toml::Value::Datetime(d), toml::Value::String(o)] => Some((d, o.as_str())),
                    _ => None,
                },
                _ => None,
            };
            let Some((d, outcome)) = contact else {
                return Err(format!(
                    "{}: a contact is a date or [date, \"outcome\"]",
                    x.name
                ));
            };
            contacts
                .write_record([example_id(i), d.to_string(), outcome.to_string()])
                .map_err(|e| e.to_string())?;
        }
    }
    let contacts = contacts.into_inner().map_err(|e| e.to_string())?;
    std::fs::write(dir.join("contacts.csv"), contacts).map_err(io)?;
    std::fs::write(
        dir.join("dataset.toml"),
        format!(
            "# Worked examples of a rule pack: no real person's data.\nextract_date = {as_of}\n"
        ),
    )
    .map_err(io)?;
    Ok(())
}
