//! Rule-pack language tests: the invalid-pack snapshot folder, the
//! table-driven expression file, exact score sums, the decision procedure,
//! the `explain` golden text and the bundled packs.
//!
//! Set `STRATA_BLESS=1` to rewrite the expected files from current output
//! (then review the diff).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use strata::pack::{
    self, evaluate, explain, EventRecord, Forced, Pack, PersonRecord, RuleResult, Value,
};

fn bless() -> bool {
    std::env::var_os("STRATA_BLESS").is_some_and(|v| v == "1")
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

/// Compares with an expected file, or rewrites it when blessing.
fn assert_matches_file(actual: &str, expected_path: &Path) {
    if bless() {
        std::fs::write(expected_path, actual).expect("write expectation");
        return;
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_else(|_| {
        panic!(
            "missing {} (run with STRATA_BLESS=1)",
            expected_path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "output differs from {}",
        expected_path.display()
    );
}

#[test]
fn invalid_packs_report_exact_diagnostics() {
    let root = Path::new("tests/packs/invalid");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("tests/packs/invalid")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 15,
        "expected at least 15 invalid packs, found {}",
        cases.len()
    );
    for case in cases {
        let err = match pack::load(&case) {
            Ok(_) => panic!("{} should not load", case.display()),
            Err(e) => e,
        };
        assert_matches_file(&format!("{err}\n"), &case.join("expected.txt"));
    }
}

#[test]
fn bundled_proactive_care_pack_checks_clean() {
    let pack = match pack::load(Path::new("rules/proactive-care")) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(pack.meta.id, "proactive-care");
    // 28 of its own and the efi pack's 2 (deficits, medicines).
    assert_eq!(pack.codelists.len(), 30);
    assert!(pack.codelist_index("efi.deficits").is_some());
    assert_eq!(pack.rules.len(), 13);
    assert_eq!(pack.tiers.len(), 4);
    assert_eq!(pack.tiers[0].id, "palliative");
    assert_eq!(pack.content_hash.len(), 64);
    assert_eq!(pack.uses.len(), 1);
    assert_eq!(
        (pack.uses[0].alias.as_str(), pack.uses[0].id.as_str()),
        ("efi", "efi")
    );
    let lives_alone = &pack.codelists[pack.codelist_index("lives_alone").expect("codelist")];
    assert_eq!(
        lives_alone.codes,
        ["105529008", "160726006", "419371000000105"]
    );
}

// ---- the table-driven expression file ---------------------------------------

fn toml_value(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::Str(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::Date(date(&d.to_string())),
        other => panic!("unsupported test value {other:?}"),
    }
}

fn typed(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Int(i) => format!("int {i}"),
        Value::Float(f) => format!("float {f}"),
        Value::Decimal(d) => format!("decimal {d}"),
        Value::Str(s) => format!("string {s}"),
        Value::Date(d) => format!("date {d}"),
    }
}

/// The pack type of a case column's TOML value.
fn toml_type(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "string",
        toml::Value::Integer(_) => "int",
        toml::Value::Float(_) => "float",
        toml::Value::Boolean(_) => "bool",
        toml::Value::Datetime(_) => "date",
        other => panic!("unsupported test value {other:?}"),
    }
}

/// Writes a one-feature pack with the file's codelists into `dir`;
/// `columns` beyond the input contract are declared in `[columns]`.
fn write_pack_with(
    dir: &Path,
    codelists: &toml::Table,
    feature: &str,
    rules: &[String],
    columns: Option<&toml::Table>,
) {
    std::fs::create_dir_all(dir.join("codelists")).expect("mkdir");
    let mut toml = String::from(
        "[pack]\nid = \"expressions\"\ntitle = \"t\"\nversion = \"0\"\n\n[population]\nwhen = \"true\"\n\n",
    );
    let declared: Vec<String> = columns
        .into_iter()
        .flatten()
        .filter(|(k, _)| strata::contract::patient_column(k).is_none())
        .map(|(k, v)| format!("{k} = \"{}\"\n", toml_type(v)))
        .collect();
    if !declared.is_empty() {
        toml.push_str("[columns]\n");
        toml.push_str(&declared.concat());
        toml.push('\n');
    }
    for (name, spec) in codelists {
        let (codes, table, mode) = match spec {
            toml::Value::Array(codes) => (codes.clone(), "events".to_string(), "exact".to_string()),
            toml::Value::Table(t) => (
                t["codes"].as_array().expect("codes").clone(),
                t["table"].as_str().expect("table").to_string(),
                t["match"].as_str().expect("match").to_string(),
            ),
            other => panic!("bad codelist {other:?}"),
        };
        let mut csv = String::from("code,term\n");
        for c in codes {
            csv.push_str(c.as_str().expect("code"));
            csv.push_str(",\n");
        }
        std::fs::write(dir.join(format!("codelists/{name}.csv")), csv).expect("write csv");
        toml.push_str(&format!(
            "[codelists.{name}]\nfile = \"codelists/{name}.csv\"\ntable = \"{table}\"\nmatch = \"{mode}\"\n\n"
        ));
    }
    toml.push_str(&format!("[features.x]\nexpr = '''{feature}'''\n\n"));
    for (i, points) in rules.iter().enumerate() {
        toml.push_str(&format!(
            "[[rules]]\nid = \"r{i}\"\nwhen = \"true\"\npoints = \"{points}\"\nreason = \"r{i}\"\n\n"
        ));
    }
    std::fs::write(dir.join("pack.toml"), toml).expect("write pack");
}

fn write_pack(dir: &Path, codelists: &toml::Table, feature: &str, rules: &[String]) {
    write_pack_with(dir, codelists, feature, rules, None)
}

/// A CSV cell for a case value (CSV spelling of dates, quoted text).
fn csv_cell(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("\"{}\"", s.replace('"', "\"\"")),
        toml::Value::Float(f) if f.is_nan() => "NaN".into(),
        toml::Value::Float(f) if f.is_infinite() => if *f > 0.0 { "inf" } else { "-inf" }.into(),
        toml::Value::Float(f) => format!("{f:?}"),
        other => toml_value(other).to_string(),
    }
}

/// The case's person as a one-person dataset folder (CSV), for the engine.
fn write_dataset(dir: &Path, case: &toml::Table) {
    std::fs::create_dir_all(dir).expect("mkdir data");
    let mut header = vec!["patient_id".to_string(), "practice_code".into()];
    let mut row = vec!["1".to_string(), "A81001".into()];
    let cols = case.get("columns").and_then(|c| c.as_table());
    if !cols.is_some_and(|c| c.contains_key("date_of_birth")) {
        header.push("date_of_birth".into());
        row.push("1950-01-01".into());
    }
    for (k, v) in cols.into_iter().flatten() {
        header.push(k.clone());
        row.push(csv_cell(v));
    }
    std::fs::write(
        dir.join("patients.csv"),
        format!("{}\n{}\n", header.join(","), row.join(",")),
    )
    .expect("patients.csv");
    let mut tables: BTreeMap<String, String> = BTreeMap::new();
    for t in ["events", "admissions"] {
        tables.insert(t.into(), "patient_id,code,date,value\n".into());
    }
    for e in case
        .get("events")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
    {
        let e = e.as_array().expect("event row");
        let value = e.get(3).map(csv_cell).unwrap_or_default();
        tables
            .entry(e[0].as_str().expect("table").to_string())
            .or_insert_with(|| "patient_id,code,date,value\n".into())
            .push_str(&format!(
                "1,{},{},{value}\n",
                e[1].as_str().expect("code"),
                e[2].as_datetime().expect("date")
            ));
    }
    for (t, text) in tables {
        std::fs::write(dir.join(format!("{t}.csv")), text).expect("event table");
    }
    // A contact is a date, or [date, outcome].
    let contacts: Vec<String> = case
        .get("contacts")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .map(|c| {
            let (d, o) = contact(c);
            format!("1,{d},{}\n", o.unwrap_or_default())
        })
        .collect();
    std::fs::write(
        dir.join("contacts.csv"),
        format!("patient_id,date,outcome\n{}", contacts.concat()),
    )
    .expect("contacts.csv");
}

/// A contact of a case: a date, or `[date, outcome]`.
fn contact(c: &toml::Value) -> (String, Option<String>) {
    match c.as_array() {
        Some(pair) => (
            pair[0].as_datetime().expect("contact date").to_string(),
            pair.get(1)
                .map(|o| o.as_str().expect("outcome").to_string()),
        ),
        None => (c.as_datetime().expect("contact").to_string(), None),
    }
}

/// Feature `x` of the one person, computed by the vectorised engine.
fn engine_value(pack: &Pack, data: &Path, as_of: NaiveDate) -> Result<Value, String> {
    let ds = strata::dataset::Dataset::open(data).map_err(|e| e.to_string())?;
    let patients = ds.read_patients().map_err(|e| e.to_string())?;
    let mut plan =
        strata::plan::Plan::bind(pack, &ds, &patients, as_of).map_err(|e| e.to_string())?;
    for f in &mut plan.physical.features {
        f.keep = true;
    }
    let out = strata::exec::execute(&plan, &ds, &patients, strata::exec::Keep::Everyone)
        .map_err(|e| e.to_string())?;
    let x = pack.feature_index("x").ok_or("no feature x")?;
    Ok(out.feature_value(x, 0))
}

fn person_from(case: &toml::Table) -> PersonRecord {
    let mut person = PersonRecord {
        patient_id: "p1".into(),
        ..PersonRecord::default()
    };
    if let Some(cols) = case.get("columns").and_then(|c| c.as_table()) {
        for (k, v) in cols {
            person.columns.insert(k.clone(), toml_value(v));
        }
    }
    for e in case
        .get("events")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
    {
        let e = e.as_array().expect("event row");
        person.events.push(EventRecord {
            table: e[0].as_str().expect("table").into(),
            code: e[1].as_str().expect("code").into(),
            date: date(&e[2].as_datetime().expect("date").to_string()),
            value: e.get(3).map(|v| v.as_float().expect("value")),
        });
    }
    for c in case
        .get("contacts")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
    {
        let (d, o) = contact(c);
        person.contacts.push(date(&d));
        person.contact_outcomes.push(o);
    }
    person
}

fn load_ok(dir: &Path) -> Pack {
    match pack::load(dir) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn expression_table() {
    let text = std::fs::read_to_string("tests/packs/expressions.toml").expect("read");
    let file: toml::Table = toml::from_str(&text).expect("parse expressions.toml");
    let default_as_of = date(&file["as_of"].as_datetime().expect("as_of").to_string());
    let codelists = file["codelists"].as_table().expect("codelists");
    let cases = file["case"].as_array().expect("cases");
    assert!(cases.len() >= 50);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let case = case.as_table().expect("case");
        let name = case["name"].as_str().expect("name");
        let expr = case["expr"].as_str().expect("expr");
        let dir = tmp.path().join(format!("case{i}"));
        let columns = case.get("columns").and_then(|c| c.as_table());
        write_pack_with(&dir, codelists, expr, &[], columns);
        let pack = match pack::load(&dir) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: does not check:\n{e}"));
                continue;
            }
        };
        let as_of = case.get("as_of").map_or(default_as_of, |d| {
            date(&d.as_datetime().expect("as_of").to_string())
        });
        let outcome = evaluate(&pack, &person_from(case), as_of);
        let x = pack.feature_index("x").expect("feature x");
        let expected = case["expect"].as_str().expect("expect");
        let reference = typed(&outcome.features[x]);
        if reference != expected {
            failures.push(format!(
                "{name}: reference evaluator: `{expr}` gave `{reference}`, expected `{expected}`"
            ));
        }
        // The same case through the vectorised engine, from a dataset folder.
        let engines = case.get("engines").and_then(|e| e.as_array());
        if engines.is_some_and(|e| !e.iter().any(|x| x.as_str() == Some("engine"))) {
            continue;
        }
        let data = tmp.path().join(format!("data{i}"));
        write_dataset(&data, case);
        match engine_value(&pack, &data, as_of) {
            Ok(v) if typed(&v) == expected => {}
            Ok(v) => failures.push(format!(
                "{name}: engine: `{expr}` gave `{}`, expected `{expected}`",
                typed(&v)
            )),
            Err(e) => failures.push(format!("{name}: engine failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn points_sum_exactly() {
    let text = std::fs::read_to_string("tests/packs/expressions.toml").expect("read");
    let file: toml::Table = toml::from_str(&text).expect("parse");
    let tmp = tempfile::tempdir().expect("tempdir");
    let scores = file["score"].as_array().expect("scores");
    assert_eq!(scores.len(), 3);
    for (i, s) in scores.iter().enumerate() {
        let points: Vec<String> = s["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| p.as_str().expect("point").to_string())
            .collect();
        let dir = tmp.path().join(format!("score{i}"));
        write_pack(&dir, &toml::Table::new(), "1", &points);
        let pack = load_ok(&dir);
        let outcome = evaluate(&pack, &PersonRecord::default(), date("2020-03-23"));
        let expected = s["expect"].as_str().expect("expect");
        assert_eq!(outcome.score.to_string(), expected);
        assert_eq!(outcome.score, Decimal::from_str(expected).expect("decimal"));
    }
}

// ---- decision procedure and explain golden --------------------------------

const DECISION_PACK: &str = "tests/packs/decision";

/// The hand-built person of the explain golden test.
fn golden_person() -> PersonRecord {
    let ev = |code: &str, d: &str, value: Option<f64>| EventRecord {
        table: "events".into(),
        code: code.into(),
        date: date(d),
        value,
    };
    let mut columns = BTreeMap::new();
    columns.insert("practice_code".into(), Value::Str("A81001".into()));
    columns.insert("date_of_birth".into(), Value::Date(date("1940-02-29")));
    columns.insert("sex".into(), Value::Str("F".into()));
    columns.insert("lsoa_code".into(), Value::Str("E01000001".into()));
    PersonRecord {
        patient_id: "1001".into(),
        columns,
        events: vec![
            ev("105529008", "2018-06-01", None),
            ev("195967001", "2015-01-10", None),
            ev("13645005", "2019-11-02", None),
            ev("60621009", "2020-01-15", Some(31.5)),
            ev("60621009", "2020-01-15", Some(30.0)),
            ev("60621009", "2021-01-15", Some(45.0)),
        ],
        contacts: vec![date("2020-01-02")],
        contact_outcomes: vec![Some("spoke".into())],
    }
}

#[test]
fn explain_golden_text() {
    let pack = load_ok(Path::new(DECISION_PACK));
    let person = golden_person();
    let as_of = date("2020-03-23");
    let outcome = evaluate(&pack, &person, as_of);
    let text = explain(&pack, &person, as_of, &outcome);
    assert!(
        !text.contains("E01000001"),
        "explain must not show the LSOA"
    );
    assert!(
        !text.contains("1940"),
        "explain must not show the date of birth"
    );
    assert_matches_file(&text, &Path::new(DECISION_PACK).join("explain-1001.txt"));
}

#[test]
fn golden_person_outcome() {
    let pack = load_ok(Path::new(DECISION_PACK));
    let outcome = evaluate(&pack, &golden_person(), date("2020-03-23"));
    assert!(outcome.in_population);
    // lives alone 3 + 2 conditions 1.34 + age 80+ 0.08 + obese 0.5; imd unknown.
    assert_eq!(outcome.score, Decimal::from_str("4.92").expect("decimal"));
    let unknown: Vec<&str> = pack
        .rules
        .iter()
        .zip(&outcome.rules)
        .filter(|(_, r)| **r == RuleResult::Unknown)
        .map(|(rule, _)| rule.id.as_str())
        .collect();
    assert_eq!(unknown, ["deprived"]);
    assert_eq!(
        outcome.tier.map(|t| pack.tiers[t].id.as_str()),
        Some("tier-2")
    );
    assert!(outcome.listed());
    assert_eq!(
        outcome.reasons,
        [
            "Lives alone",
            "2 long-term conditions",
            "Latest BMI 31.5",
            "Aged 80 or over"
        ]
    );
}

#[test]
fn override_same_day_tie_goes_to_the_exclude_code() {
    let pack = load_ok(Path::new(DECISION_PACK));
    let mut person = golden_person();
    for code in ["1300561000000107", "1300571000000100"] {
        person.events.push(EventRecord {
            table: "events".into(),
            code: code.into(),
            date: date("2020-03-01"),
            value: None,
        });
    }
    let outcome = evaluate(&pack, &person, date("2020-03-23"));
    assert_eq!(outcome.forced, Some((0, Forced::Out)));
    assert_eq!(outcome.tier, None);
    assert!(!outcome.listed());
}

#[test]
fn forced_in_person_is_still_excluded_after_a_recent_contact() {
    let pack = load_ok(Path::new(DECISION_PACK));
    let mut person = golden_person();
    person.events.push(EventRecord {
        table: "events".into(),
        code: "1300561000000107".into(),
        date: date("2020-03-01"),
        value: None,
    });
    let outcome = evaluate(&pack, &person, date("2020-03-23"));
    assert_eq!(outcome.forced, Some((0, Forced::In)));
    assert_eq!(
        outcome.tier.map(|t| pack.tiers[t].id.as_str()),
        Some("tier-1")
    );
    assert_eq!(outcome.reasons[0], "Shielding");
    assert_eq!(outcome.excluded_by, None);
    assert!(outcome.listed());

    person.contacts.push(date("2020-03-20"));
    let outcome = evaluate(&pack, &person, date("2020-03-23"));
    assert_eq!(outcome.excluded_by, Some(0));
    assert!(!outcome.listed());
}

#[test]
fn people_outside_the_population_are_not_evaluated_further() {
    let pack = load_ok(Path::new(DECISION_PACK));
    let mut person = golden_person();
    person
        .columns
        .insert("date_of_death".into(), Value::Date(date("2020-03-01")));
    let outcome = evaluate(&pack, &person, date("2020-03-23"));
    assert!(!outcome.in_population);
    assert!(outcome.features.is_empty());
    assert_eq!(outcome.score, Decimal::ZERO);
    assert!(!outcome.listed());
}

// ---- robustness: no input makes the checker or evaluator panic ------------

const TOKENS: [&str; 40] = [
    "has(",
    "count(",
    "last_value(",
    "latest_of(",
    "count_distinct_codelists(",
    "days_since(",
    "contacted(",
    "last_contact()",
    "COALESCE(",
    "asthma",
    "copd",
    "age",
    "score",
    "imd_decile",
    "sex",
    "x",
    ")",
    "(",
    "[",
    "]",
    ",",
    "'12 months'",
    "'ever'",
    "'F'",
    "1",
    "2.5",
    "NULL",
    "AND",
    "OR",
    "NOT",
    ">=",
    "=",
    "+",
    "/",
    "-",
    "CASE WHEN",
    "THEN",
    "ELSE",
    "END",
    "DATE '2020-02-29'",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_expressions_never_panic(
        picks in proptest::collection::vec(0..TOKENS.len(), 0..14),
        leftover in "[ -~]{0,6}",
    ) {
        let mut expr: String = picks.iter().map(|&i| TOKENS[i]).collect::<Vec<_>>().join(" ");
        expr.push_str(&leftover);
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut codelists = toml::Table::new();
        codelists.insert("asthma".into(), toml::Value::Array(vec!["195967001".into()]));
        codelists.insert("copd".into(), toml::Value::Array(vec!["13645005".into()]));
        write_pack(tmp.path(), &codelists, &expr, &[]);
        if let Ok(pack) = pack::load(tmp.path()) {
            let person = golden_person();
            for as_of in ["2020-03-23", "2020-02-29", "1900-01-01"] {
                let outcome = evaluate(&pack, &person, date(as_of));
                let _ = explain(&pack, &person, date(as_of), &outcome);
            }
        }
    }
}

#[test]
fn format_md_example_is_a_valid_pack() {
    let doc = std::fs::read_to_string("rules/FORMAT.md").expect("FORMAT.md");
    let start = doc.find("```toml\n[pack]").expect("example block") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("end of block");
    let example = std::fs::read_to_string("tests/packs/format-example/pack.toml").expect("copy");
    assert_eq!(
        &doc[start..end],
        example,
        "the FORMAT.md example and its test copy differ"
    );
    let pack = load_ok(Path::new("tests/packs/format-example"));
    assert_eq!(pack.features.len(), 2);
    let ltc = pack.rules.iter().find(|r| r.id == "ltc").expect("rule ltc");
    assert_eq!(ltc.points, Decimal::from_str("1.34").expect("decimal"));
}
