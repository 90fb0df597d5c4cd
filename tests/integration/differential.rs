//! The vectorised engine against the row-at-a-time reference evaluator.
//!
//! proptest builds random populations (events on window edges, leap days,
//! missing values, unknown codes, ICD-10 admissions, declared columns of
//! every type, extreme values: i64 limits, NaN, ±infinity, 1e308) written
//! as CSV or Parquet, and random packs from a grammar of feature, rule and
//! tier shapes (features using other features, simple CASE, `/`, prefix
//! codelists on a second event table, points and thresholds with long
//! decimals); both evaluators must agree person by person on population,
//! every feature value, every rule, the exact score, overrides, exclusions,
//! the tier and the reasons.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{Days, Months, NaiveDate};
use proptest::prelude::*;
use rust_decimal::Decimal;

use crate::common::write_parquet;
use strata::dataset::Dataset;
use strata::exec::{execute, Forced, Keep};
use strata::pack::{self, EventRecord, PersonRecord, RuleResult, Value};
use strata::plan::Plan;

const CODELISTS: [(&str, &[&str]); 5] = [
    ("dm", &["44054006", "73211009"]),
    ("alone", &["105529008"]),
    ("bmi", &["60621009"]),
    ("shield", &["1300561000000107"]),
    ("nonshield", &["1300591000000101"]),
];
/// ICD-10 codelists on `admissions`, matched by prefix.
const ADMISSION_CODELISTS: [(&str, &[&str]); 2] = [("mi", &["I21", "I22"]), ("circ", &["I"])];
const ADMISSION_CODES: [&str; 5] = ["I21.0", "I219", "I22", "I50", "J44"];
const OTHER_CODES: [&str; 2] = ["999999", "38341003"];
const WINDOWS: [&str; 6] = [
    "ever",
    "12 months",
    "5 years",
    "28 days",
    "2 weeks",
    "1 month",
];

#[derive(Debug, Clone)]
struct Person {
    dob: NaiveDate,
    sex: &'static str,
    imd: Option<u8>,
    left: Option<NaiveDate>,
    died: Option<NaiveDate>,
    events: Vec<(String, NaiveDate, Option<f64>)>,
    admissions: Vec<(String, NaiveDate)>,
    contacts: Vec<NaiveDate>,
    /// Declared columns: bool, int, float, date, string.
    flag: Option<bool>,
    visits: Option<i64>,
    weight: Option<f64>,
    review: Option<NaiveDate>,
    worker: Option<&'static str>,
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A date near the as-of date, biased toward window edges.
fn near(as_of: NaiveDate) -> impl Strategy<Value = NaiveDate> {
    prop_oneof![
        (0u64..4000).prop_map(move |k| as_of - Days::new(k)),
        (1u64..5).prop_map(move |k| as_of + Days::new(k)),
        (0usize..6, 0u64..2).prop_map(move |(w, extra)| {
            let edge = match w {
                0 => as_of.checked_sub_months(Months::new(12)),
                1 => as_of.checked_sub_months(Months::new(60)),
                2 => as_of.checked_sub_days(Days::new(28)),
                3 => as_of.checked_sub_days(Days::new(14)),
                4 => as_of.checked_sub_months(Months::new(1)),
                _ => Some(as_of),
            }
            .unwrap_or(as_of);
            edge - Days::new(extra)
        }),
    ]
}

fn person(as_of: NaiveDate) -> impl Strategy<Value = Person> {
    let code = prop_oneof![
        (0usize..CODELISTS.len(), 0usize..2).prop_map(|(c, k)| {
            let codes = CODELISTS[c].1;
            codes[k % codes.len()].to_string()
        }),
        (0usize..OTHER_CODES.len()).prop_map(|k| OTHER_CODES[k].to_string()),
    ];
    let value = prop_oneof![
        20 => (0i32..60).prop_map(|v| f64::from(v) / 2.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ];
    let event = (code, near(as_of), prop::option::weighted(0.6, value));
    let admission = (
        (0usize..ADMISSION_CODES.len()).prop_map(|k| ADMISSION_CODES[k].to_string()),
        near(as_of),
    );
    let declared = (
        prop::option::weighted(0.8, any::<bool>()),
        prop::option::weighted(
            0.8,
            prop_oneof![
                10 => 0i64..8,
                1 => Just(i64::MAX),
                1 => Just(i64::MIN),
                1 => Just(i64::MAX / 2 + 1),
            ],
        ),
        prop::option::weighted(
            0.8,
            prop_oneof![
                10 => (300i32..1200).prop_map(|v| f64::from(v) / 10.0),
                1 => Just(f64::NAN),
                1 => Just(f64::INFINITY),
                1 => Just(-1e308),
                1 => Just(1e308),
            ],
        ),
        prop::option::weighted(0.7, near(as_of)),
        prop::option::weighted(0.7, prop_oneof![Just("Ann"), Just("Bo"), Just("Cy")]),
    );
    (
        prop_oneof![
            20 => (0u64..36_000).prop_map(move |k| as_of - Days::new(k)),
            1 => near(as_of),
        ],
        prop_oneof![Just("F"), Just("M"), Just("U")],
        prop::option::weighted(0.8, 1u8..=10),
        prop::option::weighted(0.1, near(as_of)),
        prop::option::weighted(0.1, near(as_of)),
        prop::collection::vec(event, 0..12),
        prop::collection::vec(admission, 0..3),
        prop::collection::vec(near(as_of), 0..3),
        declared,
    )
        .prop_map(
            |(dob, sex, imd, left, died, events, admissions, contacts, declared)| Person {
                dob,
                sex,
                imd,
                left,
                died,
                events,
                admissions,
                contacts,
                flag: declared.0,
                visits: declared.1,
                weight: declared.2,
                review: declared.3,
                worker: declared.4,
            },
        )
}

/// What a feature shape yields, which decides the rule conditions over it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Num,
    Date,
    /// A CASE with 'some' among its results.
    Case,
    /// latest_of: a codelist name or NULL.
    Name,
}

/// Feature shapes; `{a}`/`{b}` are codelists, `{w}` a window. Every pack
/// also has the base features `adm` (admissions with an MI in a window),
/// `anyadm` (any circulatory admission) and `load` (`visits` + `adm`), so
/// shapes can use other features.
const FEATURES: [(&str, Kind); 32] = [
    ("has({a}, '{w}')", Kind::Bool),
    ("count({a}, '{w}')", Kind::Num),
    ("count_distinct_codelists([{a}, {b}], '{w}')", Kind::Num),
    ("last_date({a}, '{w}')", Kind::Date),
    ("first_date({a})", Kind::Date),
    ("last_value({a}, '{w}')", Kind::Num),
    ("min_value({a})", Kind::Num),
    ("max_value({a}, '{w}')", Kind::Num),
    ("latest_of({a}, {b})", Kind::Name),
    ("days_since(last_date({a}))", Kind::Num),
    (
        "CASE WHEN count({a}) > 2 THEN 'many' WHEN has({a}, '{w}') THEN 'some' ELSE 'none' END",
        Kind::Case,
    ),
    ("coalesce(last_value({a}), 0) + age / 10", Kind::Num),
    ("imd_decile BETWEEN 1 AND 3", Kind::Bool),
    ("sex IN ('F', 'U') AND NOT has({a}, '{w}')", Kind::Bool),
    ("last_value({a}) IS NULL OR contacted('{w}')", Kind::Bool),
    ("age * 2 - count({a}) >= imd_decile", Kind::Bool),
    ("adm / 2", Kind::Num),
    (
        "CASE adm WHEN 0 THEN 'none' WHEN 1 THEN 'some' ELSE 'many' END",
        Kind::Case,
    ),
    (
        "CASE visits WHEN 1 THEN 'some' WHEN 2.0 THEN 'many' END",
        Kind::Case,
    ),
    ("visits + 1", Kind::Num),
    ("visits * 3 - adm", Kind::Num),
    ("-visits", Kind::Num),
    ("load / (visits - 2)", Kind::Num),
    ("weight * 10 > 700", Kind::Bool),
    ("weight / 2 + visits", Kind::Num),
    ("coalesce(weight, visits, -1)", Kind::Num),
    ("flag AND (anyadm OR has({a}, '{w}'))", Kind::Bool),
    ("flag IS NULL OR days_since(review) > 365", Kind::Bool),
    (
        "worker IN ('Ann', 'Bo') OR worker = 'Cy' AND adm > 0",
        Kind::Bool,
    ),
    ("review BETWEEN DATE '2019-01-01' AND as_of", Kind::Bool),
    ("count(mi, '{w}') + count(circ)", Kind::Num),
    ("first_date(circ) < last_date({a})", Kind::Bool),
];

#[derive(Debug, Clone)]
struct PackShape {
    population: usize,
    features: Vec<(usize, usize, usize, usize)>,
    /// (feature pick, points mantissa, condition kind, points scale)
    rules: Vec<(usize, i64, usize, u32)>,
    /// (threshold mantissa, scale)
    tiers: Vec<(i64, u32)>,
    override_shield: bool,
    exclusion: Option<usize>,
    /// The MI window of the base feature `adm`.
    adm_window: usize,
    parquet: bool,
}

fn pack_shape() -> impl Strategy<Value = PackShape> {
    (
        0usize..3,
        prop::collection::vec(
            (
                0..FEATURES.len(),
                0..CODELISTS.len(),
                0..CODELISTS.len(),
                0..WINDOWS.len(),
            ),
            1..7,
        ),
        prop::collection::vec(
            (
                0usize..100,
                prop_oneof![5 => -50i64..500, 1 => -50_000_000_000i64..5_000_000_000_000],
                0usize..4,
                prop_oneof![Just(2u32), Just(10u32)],
            ),
            1..6,
        ),
        prop::collection::vec(
            prop_oneof![
                4 => (0i64..400).prop_map(|t| (t, 2u32)),
                1 => (0i64..400_000_000_000).prop_map(|t| (t, 12u32)),
            ],
            1..4,
        ),
        any::<bool>(),
        prop::option::of(0..WINDOWS.len()),
        0..WINDOWS.len(),
        any::<bool>(),
    )
        .prop_map(
            |(
                population,
                features,
                rules,
                tiers,
                override_shield,
                exclusion,
                adm_window,
                parquet,
            )| {
                PackShape {
                    population,
                    features,
                    rules,
                    tiers,
                    override_shield,
                    exclusion,
                    adm_window,
                    parquet,
                }
            },
        )
}

/// Writes the pack; returns its folder.
fn write_pack(dir: &Path, shape: &PackShape) -> std::path::PathBuf {
    let root = dir.join("pack");
    std::fs::create_dir_all(root.join("codelists")).unwrap();
    let mut t = String::from("[pack]\nid = \"random\"\ntitle = \"Random\"\nversion = \"1\"\n\n");
    let population = ["registered AND alive AND age >= 18", "age >= 40", "alive"][shape.population];
    writeln!(t, "[population]\nwhen = \"{population}\"\n").unwrap();
    t.push_str("[columns]\nflag = \"bool\"\nvisits = \"int\"\nweight = \"float\"\nreview = \"date\"\nworker = \"string\"\n\n");
    for (name, codes) in CODELISTS {
        writeln!(t, "[codelists.{name}]\nfile = \"codelists/{name}.csv\"\n").unwrap();
        let mut csv = String::from("code,term\n");
        for c in codes {
            writeln!(csv, "{c},term").unwrap();
        }
        std::fs::write(root.join(format!("codelists/{name}.csv")), csv).unwrap();
    }
    for (name, codes) in ADMISSION_CODELISTS {
        writeln!(
            t,
            "[codelists.{name}]\nfile = \"codelists/{name}.csv\"\ntable = \"admissions\"\nmatch = \"prefix\"\n"
        )
        .unwrap();
        let mut csv = String::from("code\n");
        for c in codes {
            writeln!(csv, "{c}").unwrap();
        }
        std::fs::write(root.join(format!("codelists/{name}.csv")), csv).unwrap();
    }
    t.push_str("[features]\n");
    writeln!(t, "adm = \"count(mi, '{}')\"", WINDOWS[shape.adm_window]).unwrap();
    t.push_str("anyadm = \"has(circ)\"\nload = \"visits + adm\"\n");
    for (i, &(f, a, b, w)) in shape.features.iter().enumerate() {
        let b = if a == b { (b + 1) % CODELISTS.len() } else { b };
        let expr = FEATURES[f]
            .0
            .replace("{a}", CODELISTS[a].0)
            .replace("{b}", CODELISTS[b].0)
            .replace("{w}", WINDOWS[w]);
        writeln!(t, "f{i} = '''{expr}'''").unwrap();
    }
    t.push('\n');
    let n = shape.features.len();
    for (r, &(pick, points, kind, scale)) in shape.rules.iter().enumerate() {
        let f = pick % n;
        let cond = match (FEATURES[shape.features[f].0].1, kind) {
            (Kind::Bool, _) => format!("f{f}"),
            (Kind::Case, _) => format!("f{f} = 'some'"),
            (Kind::Name, _) => format!("f{f} IS NOT NULL"),
            (Kind::Date, k) if k % 2 == 0 => format!("f{f} IS NOT NULL"),
            (Kind::Date, _) => format!("f{f} IS NULL"),
            (Kind::Num, 0) => format!("f{f} > 2"),
            (Kind::Num, 1) => format!("f{f} >= 1 AND age >= 50"),
            (Kind::Num, 2) => format!("f{f} < 10 OR imd_decile <= 2"),
            (Kind::Num, _) => format!("f{f} <> 0"),
        };
        let points = Decimal::new(points, scale);
        writeln!(t, "[[rules]]\nid = \"r{r}\"\nwhen = \"{cond}\"\npoints = \"{points}\"\nreason = \"rule {r}: {{f{f}}}\"\n").unwrap();
    }
    let mut thresholds: Vec<Decimal> = shape
        .tiers
        .iter()
        .map(|&(m, scale)| Decimal::new(m, scale))
        .collect();
    thresholds.sort_unstable_by(|a, b| b.cmp(a));
    thresholds.dedup();
    for (k, th) in thresholds.iter().enumerate() {
        writeln!(
            t,
            "[[tiers]]\nid = \"t{k}\"\nlabel = \"Tier {k}\"\nwhen = \"score >= {th}\"\n"
        )
        .unwrap();
    }
    if shape.override_shield {
        t.push_str("[[overrides]]\nid = \"shielding\"\ninclude = \"shield\"\nexclude = \"nonshield\"\ntier = \"t0\"\nreason = \"Shielding\"\n\n");
    }
    if let Some(w) = shape.exclusion {
        writeln!(t, "[[exclusions]]\nid = \"recent\"\nwhen = \"contacted('{}')\"\nreason = \"Recently contacted\"\n", WINDOWS[w]).unwrap();
    }
    std::fs::write(root.join("pack.toml"), t).unwrap();
    root
}

fn days(d: NaiveDate) -> i32 {
    (d - d_epoch()).num_days() as i32
}

fn d_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
}

/// Writes the population as a dataset folder, in CSV or Parquet.
fn write_data(
    dir: &Path,
    people: &[Person],
    as_of: NaiveDate,
    parquet: bool,
) -> std::path::PathBuf {
    use arrow::array::{BooleanArray, Date32Array, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let root = dir.join("data");
    std::fs::create_dir_all(&root).unwrap();
    let mut c = String::from("patient_id,date,outcome\n");
    for (i, x) in people.iter().enumerate() {
        for date in &x.contacts {
            writeln!(c, "P{i},{date},spoke").unwrap();
        }
    }
    std::fs::write(root.join("contacts.csv"), c).unwrap();
    std::fs::write(
        root.join("dataset.toml"),
        format!("extract_date = {as_of}\n"),
    )
    .unwrap();
    let events: Vec<(usize, &String, NaiveDate, Option<f64>)> = people
        .iter()
        .enumerate()
        .flat_map(|(i, x)| x.events.iter().map(move |(c, d, v)| (i, c, *d, *v)))
        .collect();
    let admissions: Vec<(usize, &String, NaiveDate)> = people
        .iter()
        .enumerate()
        .flat_map(|(i, x)| x.admissions.iter().map(move |(c, d)| (i, c, *d)))
        .collect();
    if parquet {
        let ids = |n: &mut dyn Iterator<Item = usize>| -> arrow::array::ArrayRef {
            Arc::new(StringArray::from_iter_values(n.map(|i| format!("P{i}"))))
        };
        write_parquet(
            &root.join("patients.parquet"),
            vec![
                ("patient_id", ids(&mut (0..people.len()))),
                (
                    "practice_code",
                    Arc::new(StringArray::from_iter_values(
                        (0..people.len()).map(|i| format!("L8300{}", i % 2)),
                    )),
                ),
                (
                    "date_of_birth",
                    Arc::new(Date32Array::from_iter_values(
                        people.iter().map(|x| days(x.dob)),
                    )),
                ),
                (
                    "sex",
                    Arc::new(StringArray::from_iter_values(people.iter().map(|x| x.sex))),
                ),
                (
                    "imd_decile",
                    Arc::new(Int64Array::from_iter(
                        people.iter().map(|x| x.imd.map(i64::from)),
                    )),
                ),
                (
                    "registration_end",
                    Arc::new(Date32Array::from_iter(
                        people.iter().map(|x| x.left.map(days)),
                    )),
                ),
                (
                    "date_of_death",
                    Arc::new(Date32Array::from_iter(
                        people.iter().map(|x| x.died.map(days)),
                    )),
                ),
                (
                    "flag",
                    Arc::new(BooleanArray::from_iter(people.iter().map(|x| x.flag))),
                ),
                (
                    "visits",
                    Arc::new(Int64Array::from_iter(people.iter().map(|x| x.visits))),
                ),
                (
                    "weight",
                    Arc::new(Float64Array::from_iter(people.iter().map(|x| x.weight))),
                ),
                (
                    "review",
                    Arc::new(Date32Array::from_iter(
                        people.iter().map(|x| x.review.map(days)),
                    )),
                ),
                (
                    "worker",
                    Arc::new(StringArray::from_iter(people.iter().map(|x| x.worker))),
                ),
            ],
        );
        write_parquet(
            &root.join("events.parquet"),
            vec![
                ("patient_id", ids(&mut events.iter().map(|e| e.0))),
                (
                    "code",
                    Arc::new(StringArray::from_iter_values(
                        events.iter().map(|e| e.1.as_str()),
                    )),
                ),
                (
                    "date",
                    Arc::new(Date32Array::from_iter_values(
                        events.iter().map(|e| days(e.2)),
                    )),
                ),
                (
                    "value",
                    Arc::new(Float64Array::from_iter(events.iter().map(|e| e.3))),
                ),
            ],
        );
        write_parquet(
            &root.join("admissions.parquet"),
            vec![
                ("patient_id", ids(&mut admissions.iter().map(|e| e.0))),
                (
                    "code",
                    Arc::new(StringArray::from_iter_values(
                        admissions.iter().map(|e| e.1.as_str()),
                    )),
                ),
                (
                    "date",
                    Arc::new(Date32Array::from_iter_values(
                        admissions.iter().map(|e| days(e.2)),
                    )),
                ),
            ],
        );
        return root;
    }
    let opt = |x: Option<NaiveDate>| x.map(|d| d.to_string()).unwrap_or_default();
    let mut p = String::from(
        "patient_id,practice_code,date_of_birth,sex,imd_decile,registration_end,date_of_death,flag,visits,weight,review,worker\n",
    );
    for (i, x) in people.iter().enumerate() {
        let imd = x.imd.map(|v| v.to_string()).unwrap_or_default();
        writeln!(
            p,
            "P{i},L8300{},{},{},{imd},{},{},{},{},{},{},{}",
            i % 2,
            x.dob,
            x.sex,
            opt(x.left),
            opt(x.died),
            x.flag.map(|b| if b { "yes" } else { "N" }).unwrap_or(""),
            x.visits.map(|v| v.to_string()).unwrap_or_default(),
            x.weight.map(|v| format!("{v:?}")).unwrap_or_default(),
            opt(x.review),
            x.worker.unwrap_or(""),
        )
        .unwrap();
    }
    // CSV events come last person first (Parquet ones in patients order), so
    // both ways of finding a person's row are compared with the reference.
    let mut e = String::from("patient_id,code,date,value\n");
    for (i, code, date, value) in events.iter().rev() {
        let value = value.map(|v| v.to_string()).unwrap_or_default();
        writeln!(e, "P{i},{code},{date},{value}").unwrap();
    }
    let mut a = String::from("patient_id,code,date\n");
    for (i, code, date) in &admissions {
        writeln!(a, "P{i},{code},{date}").unwrap();
    }
    std::fs::write(root.join("patients.csv"), p).unwrap();
    std::fs::write(root.join("events.csv"), e).unwrap();
    std::fs::write(root.join("admissions.csv"), a).unwrap();
    root
}

fn record(i: usize, x: &Person) -> PersonRecord {
    let mut columns = BTreeMap::new();
    let date = |d: Option<NaiveDate>| d.map(Value::Date).unwrap_or(Value::Null);
    columns.insert(
        "practice_code".into(),
        Value::Str(format!("L8300{}", i % 2)),
    );
    columns.insert("pcn_code".into(), Value::Null);
    columns.insert("lsoa_code".into(), Value::Null);
    columns.insert("date_of_birth".into(), Value::Date(x.dob));
    columns.insert("sex".into(), Value::Str(x.sex.into()));
    columns.insert(
        "imd_decile".into(),
        x.imd
            .map(|v| Value::Int(i64::from(v)))
            .unwrap_or(Value::Null),
    );
    columns.insert("registration_end".into(), date(x.left));
    columns.insert("date_of_death".into(), date(x.died));
    columns.insert("flag".into(), x.flag.map_or(Value::Null, Value::Bool));
    columns.insert("visits".into(), x.visits.map_or(Value::Null, Value::Int));
    columns.insert("weight".into(), x.weight.map_or(Value::Null, Value::Float));
    columns.insert("review".into(), date(x.review));
    columns.insert(
        "worker".into(),
        x.worker.map_or(Value::Null, |w| Value::Str(w.into())),
    );
    let mut events: Vec<EventRecord> = x
        .events
        .iter()
        .map(|(code, date, value)| EventRecord {
            table: "events".into(),
            code: code.clone(),
            date: *date,
            value: *value,
        })
        .collect();
    events.extend(x.admissions.iter().map(|(code, date)| EventRecord {
        table: "admissions".into(),
        code: code.clone(),
        date: *date,
        value: None,
    }));
    PersonRecord {
        patient_id: format!("P{i}"),
        columns,
        events,
        contacts: x.contacts.clone(),
        contact_outcomes: Vec::new(),
    }
}

fn check(as_of: NaiveDate, people: Vec<Person>, shape: PackShape) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let pack_dir = write_pack(dir.path(), &shape);
    let pack = match pack::load(&pack_dir) {
        Ok(p) => p,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "generated pack does not check:\n{e}\n{}",
                std::fs::read_to_string(pack_dir.join("pack.toml")).unwrap()
            )))
        }
    };
    let data = write_data(dir.path(), &people, as_of, shape.parquet);
    let ds = Dataset::open(&data).unwrap();
    let patients = ds.read_patients().unwrap();
    let mut plan = Plan::bind(&pack, &ds, &patients, as_of).unwrap();
    // Keep every feature so each one can be compared.
    for f in &mut plan.physical.features {
        f.keep = true;
    }
    let fast = execute(&plan, &ds, &patients, Keep::Everyone).unwrap();
    for (i, x) in people.iter().enumerate() {
        let slow = pack::evaluate(&pack, &record(i, x), as_of);
        prop_assert_eq!(
            fast.in_population[i],
            slow.in_population,
            "population of P{}",
            i
        );
        if !slow.in_population {
            continue;
        }
        for f in 0..pack.features.len() {
            prop_assert_eq!(
                fast.feature_value(f, i),
                slow.features[f].clone(),
                "feature {} of P{}",
                pack.features[f].name,
                i
            );
        }
        for r in 0..pack.rules.len() {
            let state = &fast.rules[r];
            let fast_r = if arrow::array::Array::is_null(state, i) {
                RuleResult::Unknown
            } else if state.value(i) {
                RuleResult::Fired
            } else {
                RuleResult::NotFired
            };
            prop_assert_eq!(fast_r, slow.rules[r], "rule {} of P{}", pack.rules[r].id, i);
        }
        prop_assert_eq!(
            fast.score_decimal(i),
            slow.score.normalize(),
            "score of P{}",
            i
        );
        let forced = fast.forced[i].map(|(o, f)| (o as usize, f));
        prop_assert_eq!(forced, slow.forced, "override of P{}", i);
        prop_assert_eq!(
            fast.excluded_by[i].map(usize::from),
            slow.excluded_by,
            "exclusion of P{}",
            i
        );
        let fast_tier = if matches!(fast.forced[i], Some((_, Forced::Out))) {
            None
        } else {
            fast.tier[i].map(usize::from)
        };
        let slow_tier = if matches!(slow.forced, Some((_, pack::Forced::Out))) {
            None
        } else {
            slow.tier
        };
        prop_assert_eq!(fast_tier, slow_tier, "tier of P{}", i);
        prop_assert_eq!(
            fast.reasons(&pack, &plan, i),
            slow.reasons.clone(),
            "reasons of P{}",
            i
        );
    }
    // A run keeps only the listed people (and those listed but for a
    // recent call): the same outcomes in fewer slots, and the same counts
    // over everyone.
    let kept = execute(&plan, &ds, &patients, Keep::Listed).unwrap();
    prop_assert_eq!(&kept.tally, &fast.tally, "counts");
    prop_assert_eq!(kept.in_table, people.len());
    for i in 0..people.len() {
        let slot = kept.slot_of(i);
        // Kept: the listed, and those listed but for a recent call.
        prop_assert_eq!(
            slot.is_some(),
            fast.listed(i) || fast.recently_contacted(&plan, i),
            "kept P{}",
            i
        );
        let Some(s) = slot else { continue };
        prop_assert_eq!(kept.person(s), i);
        prop_assert_eq!(kept.score[s], fast.score[i], "kept score of P{}", i);
        prop_assert_eq!(kept.tier[s], fast.tier[i], "kept tier of P{}", i);
        prop_assert_eq!(kept.forced[s], fast.forced[i], "kept override of P{}", i);
        for f in 0..pack.features.len() {
            prop_assert_eq!(kept.feature_value(f, s), fast.feature_value(f, i));
        }
        prop_assert_eq!(kept.reasons(&pack, &plan, s), fast.reasons(&pack, &plan, i));
    }
    let listed = (0..people.len()).filter(|&i| fast.listed(i)).count() as u64;
    prop_assert_eq!(kept.tally.listed, listed, "listed count");
    Ok(())
}

fn as_of_dates() -> impl Strategy<Value = NaiveDate> {
    prop_oneof![
        Just(d("2020-03-23")),
        Just(d("2020-02-29")),
        Just(d("2021-03-31")),
        Just(d("2019-12-31"))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_reference(
        (as_of, people) in as_of_dates().prop_flat_map(|a| (Just(a), prop::collection::vec(person(a), 1..30))),
        shape in pack_shape(),
    ) {
        check(as_of, people, shape)?;
    }
}
