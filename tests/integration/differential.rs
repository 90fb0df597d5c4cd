//! The vectorised engine against the row-at-a-time reference evaluator.
//!
//! proptest builds random populations (events on window edges, leap days,
//! missing values, unknown codes) and random packs from a grammar of
//! feature, rule and tier shapes; both evaluators must agree person by
//! person on population, every feature value, every rule, the exact score,
//! overrides, exclusions and the tier.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{Days, Months, NaiveDate};
use proptest::prelude::*;
use rust_decimal::Decimal;

use strata::dataset::Dataset;
use strata::exec::{execute, Forced};
use strata::pack::{self, EventRecord, PersonRecord, RuleResult, Value};
use strata::plan::Plan;

const CODELISTS: [(&str, &[&str]); 5] = [
    ("dm", &["44054006", "73211009"]),
    ("alone", &["105529008"]),
    ("bmi", &["60621009"]),
    ("shield", &["1300561000000107"]),
    ("nonshield", &["1300591000000101"]),
];
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
    contacts: Vec<NaiveDate>,
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
    let event = (
        code,
        near(as_of),
        prop::option::weighted(0.6, (0i32..60).prop_map(|v| f64::from(v) / 2.0)),
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
        prop::collection::vec(near(as_of), 0..3),
    )
        .prop_map(|(dob, sex, imd, left, died, events, contacts)| Person {
            dob,
            sex,
            imd,
            left,
            died,
            events,
            contacts,
        })
}

/// Feature shapes; `{a}`/`{b}` are codelists, `{w}` a window.
const FEATURES: [&str; 16] = [
    "has({a}, '{w}')",
    "count({a}, '{w}')",
    "count_distinct_codelists([{a}, {b}], '{w}')",
    "last_date({a}, '{w}')",
    "first_date({a})",
    "last_value({a}, '{w}')",
    "min_value({a})",
    "max_value({a}, '{w}')",
    "latest_of({a}, {b})",
    "days_since(last_date({a}))",
    "CASE WHEN count({a}) > 2 THEN 'many' WHEN has({a}, '{w}') THEN 'some' ELSE 'none' END",
    "coalesce(last_value({a}), 0) + age / 10",
    "imd_decile BETWEEN 1 AND 3",
    "sex IN ('F', 'U') AND NOT has({a}, '{w}')",
    "last_value({a}) IS NULL OR contacted('{w}')",
    "age * 2 - count({a}) >= imd_decile",
];

#[derive(Debug, Clone)]
struct PackShape {
    population: usize,
    features: Vec<(usize, usize, usize, usize)>,
    rules: Vec<(usize, u32, usize)>,
    tiers: Vec<u32>,
    override_shield: bool,
    exclusion: Option<usize>,
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
        prop::collection::vec((0usize..100, 0u32..500, 0usize..4), 1..6),
        prop::collection::vec(0u32..400, 1..4),
        any::<bool>(),
        prop::option::of(0..WINDOWS.len()),
    )
        .prop_map(
            |(population, features, rules, tiers, override_shield, exclusion)| PackShape {
                population,
                features,
                rules,
                tiers,
                override_shield,
                exclusion,
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
    for (name, codes) in CODELISTS {
        writeln!(t, "[codelists.{name}]\nfile = \"codelists/{name}.csv\"\n").unwrap();
        let mut csv = String::from("code,term\n");
        for c in codes {
            writeln!(csv, "{c},term").unwrap();
        }
        std::fs::write(root.join(format!("codelists/{name}.csv")), csv).unwrap();
    }
    t.push_str("[features]\n");
    for (i, &(f, a, b, w)) in shape.features.iter().enumerate() {
        let b = if a == b { (b + 1) % CODELISTS.len() } else { b };
        let expr = FEATURES[f]
            .replace("{a}", CODELISTS[a].0)
            .replace("{b}", CODELISTS[b].0)
            .replace("{w}", WINDOWS[w]);
        writeln!(t, "f{i} = \"{}\"", expr.replace('"', "\\\"")).unwrap();
    }
    t.push('\n');
    let n = shape.features.len();
    for (r, &(pick, points, kind)) in shape.rules.iter().enumerate() {
        let f = pick % n;
        let cond = match (FEATURES[shape.features[f].0], kind) {
            (e, _)
                if e.starts_with("has")
                    || e.starts_with("imd")
                    || e.starts_with("sex")
                    || e.contains(" IS NULL")
                    || e.contains(">= imd") =>
            {
                format!("f{f}")
            }
            (e, _) if e.starts_with("CASE") => format!("f{f} = 'some'"),
            (e, _) if e.starts_with("latest_of") => format!("f{f} IS NOT NULL"),
            (e, k) if e.contains("date(") && !e.starts_with("days") => {
                if k % 2 == 0 {
                    format!("f{f} IS NOT NULL")
                } else {
                    format!("f{f} IS NULL")
                }
            }
            (_, 0) => format!("f{f} > 2"),
            (_, 1) => format!("f{f} >= 1 AND age >= 50"),
            (_, 2) => format!("f{f} < 10 OR imd_decile <= 2"),
            _ => format!("f{f} <> 0"),
        };
        let points = Decimal::new(i64::from(points), 2);
        writeln!(t, "[[rules]]\nid = \"r{r}\"\nwhen = \"{cond}\"\npoints = \"{points}\"\nreason = \"rule {r}: {{f{f}}}\"\n").unwrap();
    }
    let mut thresholds = shape.tiers.clone();
    thresholds.sort_unstable_by(|a, b| b.cmp(a));
    thresholds.dedup();
    for (k, &th) in thresholds.iter().enumerate() {
        let th = Decimal::new(i64::from(th), 2);
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

fn write_data(dir: &Path, people: &[Person], as_of: NaiveDate) -> std::path::PathBuf {
    let root = dir.join("data");
    std::fs::create_dir_all(&root).unwrap();
    let opt = |x: Option<NaiveDate>| x.map(|d| d.to_string()).unwrap_or_default();
    let mut p = String::from(
        "patient_id,practice_code,date_of_birth,sex,imd_decile,registration_end,date_of_death\n",
    );
    let mut e = String::from("patient_id,code,date,value\n");
    let mut c = String::from("patient_id,date,outcome\n");
    for (i, x) in people.iter().enumerate() {
        let imd = x.imd.map(|v| v.to_string()).unwrap_or_default();
        writeln!(
            p,
            "P{i},L8300{},{},{},{imd},{},{}",
            i % 2,
            x.dob,
            x.sex,
            opt(x.left),
            opt(x.died)
        )
        .unwrap();
        for (code, date, value) in &x.events {
            writeln!(
                e,
                "P{i},{code},{date},{}",
                value.map(|v| v.to_string()).unwrap_or_default()
            )
            .unwrap();
        }
        for date in &x.contacts {
            writeln!(c, "P{i},{date},spoke").unwrap();
        }
    }
    std::fs::write(root.join("patients.csv"), p).unwrap();
    std::fs::write(root.join("events.csv"), e).unwrap();
    std::fs::write(root.join("contacts.csv"), c).unwrap();
    std::fs::write(
        root.join("dataset.toml"),
        format!("extract_date = {as_of}\n"),
    )
    .unwrap();
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
    PersonRecord {
        patient_id: format!("P{i}"),
        columns,
        events: x
            .events
            .iter()
            .map(|(code, date, value)| EventRecord {
                table: "events".into(),
                code: code.clone(),
                date: *date,
                value: *value,
            })
            .collect(),
        contacts: x.contacts.clone(),
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
    let data = write_data(dir.path(), &people, as_of);
    let ds = Dataset::open(&data).unwrap();
    let patients = ds.read_patients().unwrap();
    let mut plan = Plan::bind(&pack, &ds, &patients, as_of).unwrap();
    // Keep every feature so each one can be compared.
    for f in &mut plan.physical.features {
        f.keep = true;
    }
    let fast = execute(&plan, &ds, &patients).unwrap();
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
