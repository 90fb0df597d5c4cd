//! The expression evaluators against each other: any text as an expression,
//! used as a feature (`x = <text>`, shown in every listed person's reason)
//! and, when it is a condition, as a rule. For a pack that checks, the
//! vectorised engine (`strata::score`) and the reference evaluator
//! (`strata::run::reference_run`) must list the same people with the same
//! tier, score and reason text; both may refuse, neither may panic.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;

fn dir() -> &'static std::path::Path {
    scratch::dir(|d| {
        scratch::codelists(
            d,
            &[
                ("dm", "code,term\n44054006,Diabetes type 2\n60621009,BMI\n"),
                ("mi", "code,term\nI21,Acute MI\n"),
            ],
        )
    })
}

/// An Arrow array as the column of a record batch.
fn col(a: impl Array + 'static) -> ArrayRef {
    Arc::new(a)
}

fn days(y: i32, m: u32, d: u32) -> i32 {
    strata::dataset::columns::date_to_days(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

/// Six people on window edges and with missing and extreme values.
fn dataset() -> strata::dataset::Dataset {
    let patients = RecordBatch::try_from_iter([
        ("patient_id", col(Int64Array::from(vec![1, 2, 3, 4, 5, 6]))),
        (
            "practice_code",
            col(StringArray::from(vec!["A", "A", "B", "B", "A", "B"])),
        ),
        (
            "date_of_birth",
            col(Date32Array::from(vec![
                days(1930, 2, 28),
                days(1950, 3, 23),
                days(2002, 3, 24),
                days(1899, 1, 1),
                days(1960, 2, 29),
                days(2020, 3, 23),
            ])),
        ),
        (
            "sex",
            col(StringArray::from(vec![
                Some("F"),
                Some("M"),
                None,
                Some("U"),
                Some("female"),
                Some("M"),
            ])),
        ),
        (
            "imd_decile",
            col(Int64Array::from(vec![
                Some(1),
                None,
                Some(10),
                Some(5),
                Some(2),
                None,
            ])),
        ),
        (
            "date_of_death",
            col(Date32Array::from(vec![
                None,
                None,
                None,
                None,
                Some(days(2020, 3, 23)),
                None,
            ])),
        ),
    ])
    .unwrap();
    let events = RecordBatch::try_from_iter([
        (
            "patient_id",
            col(Int64Array::from(vec![1, 1, 2, 2, 3, 4, 5, 6])),
        ),
        (
            "code",
            col(StringArray::from(vec![
                "44054006", "60621009", "60621009", "44054006", "60621009", "X", "44054006",
                "60621009",
            ])),
        ),
        (
            "date",
            col(Date32Array::from(vec![
                days(2019, 3, 23),
                days(2020, 3, 23),
                days(2019, 3, 24),
                days(1900, 1, 1),
                days(2020, 2, 29),
                days(2020, 1, 1),
                days(2021, 1, 1),
                days(2020, 3, 22),
            ])),
        ),
        (
            "value",
            col(Float64Array::from(vec![
                Some(1e308),
                Some(-0.0),
                Some(f64::NAN),
                None,
                Some(33.3),
                Some(9.223372036854776e18),
                Some(1.5),
                Some(f64::INFINITY),
            ])),
        ),
    ])
    .unwrap();
    let admissions = RecordBatch::try_from_iter([
        ("patient_id", col(Int64Array::from(vec![2, 4]))),
        ("code", col(StringArray::from(vec!["I21.0", "I50"]))),
        (
            "date",
            col(Date32Array::from(vec![
                days(2020, 1, 1),
                days(2019, 12, 31),
            ])),
        ),
    ])
    .unwrap();
    let contacts = RecordBatch::try_from_iter([
        ("patient_id", col(Int64Array::from(vec![1, 3]))),
        (
            "date",
            col(Date32Array::from(vec![days(2020, 3, 20), days(2020, 3, 9)])),
        ),
        ("outcome", col(StringArray::from(vec![Some("spoke"), None]))),
    ])
    .unwrap();
    strata::dataset::Dataset::in_memory(
        vec![patients],
        vec![
            ("events".into(), vec![events]),
            ("admissions".into(), vec![admissions]),
        ],
        Some(vec![contacts]),
        None,
    )
    .unwrap()
}

fn pack(expr: &str, as_rule: bool) -> String {
    let rule = if as_rule {
        format!("\n[[rules]]\nid = \"cond\"\nwhen = '''{expr}'''\npoints = 2.5\nreason = \"cond held\"\n")
    } else {
        String::new()
    };
    format!(
        "[pack]\nid = \"fuzz\"\ntitle = \"Fuzz\"\nversion = \"1\"\n\n\
         [population]\nwhen = \"registered AND alive\"\n\n\
         [codelists.dm]\nfile = \"codelists/dm.csv\"\n\n\
         [codelists.mi]\nfile = \"codelists/mi.csv\"\ntable = \"admissions\"\nmatch = \"prefix\"\n\n\
         [features]\nx = '''{expr}'''\n\n\
         [[rules]]\nid = \"show\"\nwhen = \"true\"\npoints = 1\nreason = \"x is {{x}}\"\n{rule}\n\
         [[tiers]]\nid = \"high\"\nlabel = \"High\"\nwhen = \"score >= 3\"\n\n\
         [[tiers]]\nid = \"all\"\nlabel = \"All\"\nwhen = \"score >= 1\"\n"
    )
}

/// (tier, score, reasons) by patient id from the engine's list rows.
fn engine_rows(r: &strata::ScoreResult) -> BTreeMap<String, (String, String, String)> {
    let mut out = BTreeMap::new();
    for b in &r.batches {
        let ids = arrow::compute::cast(
            b.column_by_name("patient_id").unwrap(),
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let ids = ids.as_string::<i32>();
        let tier = b.column_by_name("tier").unwrap().as_string::<i32>().clone();
        let score = b.column_by_name("score").unwrap();
        let score = score.as_primitive::<arrow::datatypes::Decimal128Type>();
        let reasons = b
            .column_by_name("reasons")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for i in 0..b.num_rows() {
            // Exact: the unscaled integer and its scale, as the reference's Decimal.
            let s = rust_decimal::Decimal::try_from_i128_with_scale(
                score.value(i),
                score.scale() as u32,
            )
            .expect("a score fits a decimal")
            .normalize()
            .to_string();
            out.insert(
                ids.value(i).to_string(),
                (tier.value(i).to_string(), s, reasons.value(i).to_string()),
            );
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    // The expression goes in a TOML literal string.
    if expr.len() > 400 || expr.contains("'''") || expr.contains(['\n', '\r']) {
        return;
    }
    let d = dir();
    let as_of = chrono::NaiveDate::from_ymd_opt(2020, 3, 23).unwrap();
    for as_rule in [true, false] {
        std::fs::write(d.join("pack.toml"), pack(expr, as_rule)).unwrap();
        if strata::pack::load(d).is_err() {
            continue;
        }
        let engine = strata::score(d, dataset(), Some(as_of), Some(1));
        let reference = strata::run::reference_run(d, dataset(), as_of);
        match (engine, reference) {
            (Ok(e), Ok((pack, people))) => {
                let got = engine_rows(&e);
                let want: BTreeMap<String, (String, String, String)> = people
                    .into_iter()
                    .filter(|(_, o)| o.listed())
                    .map(|(id, o)| {
                        let tier = pack.tiers[o.tier.unwrap()].id.clone();
                        (
                            id,
                            (tier, o.score.normalize().to_string(), o.reasons.join("; ")),
                        )
                    })
                    .collect();
                assert_eq!(got, want, "expression {expr:?} (as a rule: {as_rule})");
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{expr:?}"),
            (a, b) => panic!(
                "{expr:?}: engine {:?}, reference {:?}",
                a.map(|_| "ok"),
                b.map(|_| "ok")
            ),
        }
        return;
    }
});
