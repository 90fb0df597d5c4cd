//! The run as a library call (`strata::run`): tier changes against a
//! previous run, flag-style `[columns]` and each way they can fail, exact
//! decimals next to the score, and whose fault each error is.

use std::path::{Path, PathBuf};

use crate::common::{fixture, write_parquet};
use strata::plan::PlanError;
use strata::{Blame, Error, RunConfig};

fn write(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }
    dir.to_path_buf()
}

fn config(pack: &Path, data: &Path, out: &Path, name: &str) -> RunConfig {
    RunConfig {
        pack: pack.to_path_buf(),
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        name: Some(name.into()),
        as_of: chrono::NaiveDate::from_ymd_opt(2020, 3, 23),
        ..RunConfig::default()
    }
}

const FOUR_PEOPLE: &str = "patient_id,practice_code,date_of_birth,sex\n\
    1,L83001,1980-01-01,F\n2,L83001,1980-01-01,F\n3,L83001,1980-01-01,F\n4,L83001,1980-01-01,F\n";
const ALONE: &str = "105529008";
const SHIELD: &str = "1300561000000107";

#[test]
fn tier_changes_up_down_same_and_new() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let events = |rows: &[(u32, &str, &str)]| {
        let mut s = String::from("patient_id,code,date\n");
        for (id, code, date) in rows {
            s.push_str(&format!("{id},{code},{date}\n"));
        }
        s
    };
    // Last night: 1 lives alone (moderate), 2 shielding (high), 3 lives
    // alone, 4 not listed. Tonight 1 is shielding, 2 no longer, 4 lives alone.
    let before = events(&[
        (1, ALONE, "2019-01-01"),
        (2, ALONE, "2019-01-01"),
        (2, SHIELD, "2020-03-01"),
        (3, ALONE, "2019-01-01"),
    ]);
    let after = events(&[
        (1, ALONE, "2019-01-01"),
        (1, SHIELD, "2020-03-01"),
        (2, ALONE, "2019-01-01"),
        (3, ALONE, "2019-01-01"),
        (4, ALONE, "2019-01-01"),
    ]);
    let v1 = write(
        &tmp.path().join("v1"),
        &[("patients.csv", FOUR_PEOPLE), ("events.csv", &before)],
    );
    let v2 = write(
        &tmp.path().join("v2"),
        &[("patients.csv", FOUR_PEOPLE), ("events.csv", &after)],
    );
    let runs = tmp.path().join("runs");
    let pack = fixture("tiny-pack");
    let first = strata::run(&config(&pack, &v1, &runs, "first")).expect("first run");
    let mut second = config(&pack, &v2, &runs, "second");
    second.previous = Some(first.dir.clone());
    let second = strata::run(&second).expect("second run");
    assert_eq!(second.listed, 4);
    assert_eq!(
        std::fs::read_to_string(second.dir.join("lists/L83001.csv")).expect("list"),
        "rank,patient_id,practice_code,pcn_code,tier,tier_label,score,age,sex,imd_decile,diabetes,lives_alone,reasons,new_since_previous,tier_change\n\
         1,1,L83001,,t2,High,0.08,40,F,,no,yes,Shielding; Lives alone (BMI unknown),no,up\n\
         2,2,L83001,,t3,Moderate,0.08,40,F,,no,yes,Lives alone (BMI unknown),no,down\n\
         3,3,L83001,,t3,Moderate,0.08,40,F,,no,yes,Lives alone (BMI unknown),no,same\n\
         4,4,L83001,,t3,Moderate,0.08,40,F,,no,yes,Lives alone (BMI unknown),yes,new\n"
    );
}

/// A flag-style export: one row per person, yes/no and date columns, no
/// event tables; the pack reads them through `[columns]`.
const FLAG_PACK: &str = r#"
[pack]
id = "flags"
title = "Flag-style export"
version = "1"

[population]
when = "registered AND alive"

[columns]
lives_alone = "bool"
carer_visits = "int"
weight_kg = "float"
last_review = "date"
keyworker = "string"

[features]
days_since_review = "days_since(last_review)"

[[rules]]
id = "alone"
when = "lives_alone"
points = 2
reason = "Lives alone"

[[rules]]
id = "visits"
when = "carer_visits >= 3"
points = 1.5
reason = "Carer visits"

[[rules]]
id = "weight"
when = "weight_kg < 50"
points = 1
reason = "Low weight"

[[rules]]
id = "review"
when = "days_since_review > 365 OR last_review IS NULL"
points = 0.5
reason = "No review for a year"

[[rules]]
id = "worker"
when = "keyworker IS NULL"
points = 0.25
reason = "No key worker"

[[tiers]]
id = "high"
label = "High"
when = "score >= 3"

[[tiers]]
id = "some"
label = "Some"
when = "score > 0"
"#;

fn flag_run(patients: &str) -> (tempfile::TempDir, Result<strata::RunSummary, Error>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pack = write(&tmp.path().join("pack"), &[("pack.toml", FLAG_PACK)]);
    let data = write(&tmp.path().join("data"), &[("patients.csv", patients)]);
    let out = tmp.path().join("runs");
    let result = strata::run(&config(&pack, &data, &out, "run"));
    (tmp, result)
}

const FLAG_HEADER: &str = "patient_id,practice_code,date_of_birth,lives_alone,carer_visits,weight_kg,last_review,keyworker\n";

#[test]
fn flag_style_columns_of_every_type() {
    let patients = format!(
        "{FLAG_HEADER}\
         1,L83001,1940-01-01, Yes ,3,48.5,2018-01-01,\n\
         2,L83001,1950-01-01,n,0,NaN,2020-01-01,Ann\n\
         3,L83001,1960-01-01,,,,,Bo\n\
         4,L83001,1970-01-01,FALSE,1,80,2020-03-01,Cy\n"
    );
    let (tmp, result) = flag_run(&patients);
    let summary = result.expect("run");
    let _ = tmp;
    // 1: 2 + 1.5 + 1 + 0.5 + 0.25; 2: NaN weight is unknown, nothing fires;
    // 3: only the missing review; 4: nothing.
    assert_eq!(
        std::fs::read_to_string(summary.dir.join("lists/L83001.csv")).expect("list"),
        "rank,patient_id,practice_code,pcn_code,tier,tier_label,score,age,sex,imd_decile,reasons\n\
         1,1,L83001,,high,High,5.25,80,U,,Lives alone; Carer visits; Low weight; No review for a year; No key worker\n\
         2,3,L83001,,some,Some,0.5,60,U,,No review for a year\n"
    );
}

fn plan_error(patients: &str) -> (String, PlanError) {
    let (_tmp, result) = flag_run(patients);
    match result {
        Err(e @ Error::Plan(_)) => {
            assert_eq!(e.blame(), Blame::Input);
            let message = e.to_string();
            match e {
                Error::Plan(p) => (message, p),
                _ => unreachable!(),
            }
        }
        Err(other) => panic!("expected a plan error, got {other}"),
        Ok(_) => panic!("expected a plan error, the run succeeded"),
    }
}

#[test]
fn a_declared_column_missing_from_the_patients_table() {
    let (message, e) = plan_error(
        "patient_id,practice_code,date_of_birth,lives_alone,carer_visits,weight_kg,last_review\n1,L83001,1940-01-01,yes,1,50,2020-01-01\n",
    );
    assert!(matches!(e, PlanError::MissingColumn { .. }));
    assert_eq!(
        message,
        "patients.csv: column `keyworker` is declared in the pack's [columns] but is not in the patients table"
    );
}

#[test]
fn a_declared_column_with_a_value_of_the_wrong_kind() {
    let (message, e) = plan_error(&format!(
        "{FLAG_HEADER}1,L83001,1940-01-01,yes,1,50,2020-01-01,\n2,L83001,1940-01-01,perhaps,1,50,2020-01-01,\n"
    ));
    assert!(matches!(e, PlanError::BadColumnValue { .. }));
    assert_eq!(
        message,
        r#"patients.csv: row 2: column lives_alone: "perhaps" is not yes/no (true, false, yes, no, y, n, 1 or 0)"#
    );
    let (message, _) = plan_error(&format!(
        "{FLAG_HEADER}1,L83001,1940-01-01,yes,three,50,2020-01-01,\n"
    ));
    assert_eq!(
        message,
        r#"patients.csv: row 1: column carer_visits: "three" is not a whole number"#
    );
    let (message, _) = plan_error(&format!(
        "{FLAG_HEADER}1,L83001,1940-01-01,yes,3,50,23/03/2020,\n"
    ));
    assert_eq!(
        message,
        r#"patients.csv: row 1: column last_review: "23/03/2020" is not a date (expected YYYY-MM-DD)"#
    );
}

#[test]
fn a_declared_column_stored_as_another_type_in_parquet() {
    use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().expect("tempdir");
    let pack = write(&tmp.path().join("pack"), &[("pack.toml", FLAG_PACK)]);
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("patient_id", Arc::new(Int64Array::from(vec![1]))),
        ("practice_code", Arc::new(StringArray::from(vec!["L83001"]))),
        ("date_of_birth", Arc::new(Date32Array::from(vec![0]))),
        ("lives_alone", Arc::new(StringArray::from(vec!["yes"]))),
        // A float where the pack declares a whole number: not converted.
        ("carer_visits", Arc::new(Float64Array::from(vec![2.5]))),
        ("weight_kg", Arc::new(Float64Array::from(vec![60.0]))),
        ("last_review", Arc::new(Date32Array::from(vec![18000]))),
        ("keyworker", Arc::new(StringArray::from(vec!["Ann"]))),
    ];
    write_parquet(&data.join("patients.parquet"), columns);
    let result = strata::run(&config(&pack, &data, &tmp.path().join("runs"), "run"));
    match result {
        Err(e @ Error::Plan(PlanError::ColumnType { .. })) => {
            assert_eq!(e.blame(), Blame::Input);
            assert_eq!(
                e.to_string(),
                "patients.parquet: column carer_visits: cannot read a Float64 column as a whole number"
            );
        }
        Err(other) => panic!("expected a column type error, got {other}"),
        Ok(_) => panic!("expected a column type error"),
    }
}

#[test]
fn numbers_next_to_the_score_are_exact_however_many_decimals() {
    // A score of exactly 7 against literals one 10^-11 away on either side.
    let pack = r#"
[pack]
id = "exact"
title = "t"
version = "1"

[population]
when = "true"

[[rules]]
id = "seven"
when = "true"
points = 7
reason = "Seven"

[[tiers]]
id = "above"
label = "Above"
when = "score > 7.00000000001"

[[tiers]]
id = "exactly"
label = "Exactly"
when = "score * 3 = 21.000000000000 AND score >= 6.99999999999 AND score + 0.00000000001 > 7"
"#;
    let tmp = tempfile::tempdir().expect("tempdir");
    let pack = write(&tmp.path().join("pack"), &[("pack.toml", pack)]);
    let data = write(
        &tmp.path().join("data"),
        &[(
            "patients.csv",
            "patient_id,practice_code,date_of_birth\n1,L83001,1950-01-01\n",
        )],
    );
    let summary = strata::run(&config(&pack, &data, &tmp.path().join("runs"), "run")).expect("run");
    let list = std::fs::read_to_string(summary.dir.join("lists/L83001.csv")).expect("list");
    assert_eq!(
        list.lines().nth(1),
        Some("1,1,L83001,,exactly,Exactly,7,70,U,,Seven")
    );
    // The reference evaluator agrees.
    let checked = strata::pack::load(&pack).expect("pack");
    let mut person = strata::pack::PersonRecord::default();
    person.columns.insert(
        "date_of_birth".into(),
        strata::pack::Value::Date(chrono::NaiveDate::from_ymd_opt(1950, 1, 1).expect("date")),
    );
    let outcome = strata::pack::evaluate(
        &checked,
        &person,
        chrono::NaiveDate::from_ymd_opt(2020, 3, 23).expect("date"),
    );
    assert_eq!(outcome.tier, Some(1));
}

#[test]
fn errors_say_whose_fault_they_are() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(
        &fixture("tiny-pack"),
        &fixture("tiny-data"),
        &tmp.path().join("runs"),
        "run",
    );
    cfg.threads = Some(0);
    let e = strata::run(&cfg).expect_err("zero threads");
    assert_eq!(
        (e.blame(), e.to_string().as_str()),
        (Blame::Input, "--threads must be at least 1")
    );
    cfg.threads = None;
    cfg.data = tmp.path().join("no-such-folder");
    let e = strata::run(&cfg).expect_err("no dataset");
    assert_eq!(e.blame(), Blame::Input);
    assert!(matches!(e, Error::Dataset(_)));
    // An output root that is a file.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    cfg.data = fixture("tiny-data");
    cfg.out = file;
    let e = strata::run(&cfg).expect_err("output root is a file");
    assert_eq!(e.blame(), Blame::Input, "{e}");
}

#[test]
fn csv_and_parquet_ids_break_ties_the_same_way() {
    use arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray};
    use std::sync::Arc;
    // Three people tied on tier and score; ids 9, 10 and 100.
    let tmp = tempfile::tempdir().expect("tempdir");
    let events = "patient_id,code,date\n100,105529008,2019-01-01\n10,105529008,2019-01-01\n9,105529008,2019-01-01\n";
    let csv = write(
        &tmp.path().join("csv"),
        &[
            (
                "patients.csv",
                "patient_id,practice_code,date_of_birth\n100,L83001,1980-01-01\n10,L83001,1980-01-01\n9,L83001,1980-01-01\n",
            ),
            ("events.csv", events),
        ],
    );
    let parquet = write(&tmp.path().join("parquet"), &[("events.csv", events)]);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("patient_id", Arc::new(Int64Array::from(vec![100, 10, 9]))),
        (
            "practice_code",
            Arc::new(StringArray::from(vec!["L83001"; 3])),
        ),
        ("date_of_birth", Arc::new(Date32Array::from(vec![3652; 3]))),
    ];
    write_parquet(&parquet.join("patients.parquet"), columns);
    let runs = tmp.path().join("runs");
    let pack = fixture("tiny-pack");
    let order = |data: &Path, name: &str| -> Vec<String> {
        let s = strata::run(&config(&pack, data, &runs, name)).expect("run");
        std::fs::read_to_string(s.dir.join("lists/L83001.csv"))
            .expect("list")
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(order(&csv, "csv"), ["9", "10", "100"]);
    assert_eq!(order(&parquet, "parquet"), ["9", "10", "100"]);
}

#[test]
fn more_than_64_codelists_on_one_event_table() {
    // 109 three-character ICD-10 categories, as the Hospital Frailty Risk
    // Score needs, each its own prefix codelist on `admissions`.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut pack = String::from(
        "[pack]\nid = \"many\"\ntitle = \"t\"\nversion = \"1\"\n\n[population]\nwhen = \"true\"\n\n",
    );
    let mut files: Vec<(String, String)> = Vec::new();
    let mut names = Vec::new();
    for k in 0..109 {
        let name = format!("c{k:03}");
        pack.push_str(&format!(
            "[codelists.{name}]\nfile = \"codelists/{name}.csv\"\ntable = \"admissions\"\nmatch = \"prefix\"\n\n"
        ));
        files.push((format!("codelists/{name}.csv"), format!("code\nA{k:02}\n")));
        names.push(name);
    }
    pack.push_str(&format!(
        "[features]\ncategories = \"count_distinct_codelists([{}])\"\n\n",
        names.join(", ")
    ));
    pack.push_str("[[rules]]\nid = \"any\"\nwhen = \"categories >= 1\"\npoints = \"1\"\nreason = \"{categories} categories\"\n\n[[tiers]]\nid = \"t\"\nlabel = \"T\"\nwhen = \"score > 0\"\n");
    let mut pack_files: Vec<(&str, &str)> = vec![("pack.toml", &pack)];
    pack_files.extend(files.iter().map(|(a, b)| (a.as_str(), b.as_str())));
    let pack = write(&tmp.path().join("pack"), &pack_files);
    // Person 1 has categories A00, A64, A99 (A640 and A64.1 are one category), person 2 A55 only.
    let data = write(
        &tmp.path().join("data"),
        &[
            (
                "patients.csv",
                "patient_id,practice_code,date_of_birth\n1,L83001,1950-01-01\n2,L83001,1950-01-01\n",
            ),
            (
                "admissions.csv",
                "patient_id,code,date\n1,A00.1,2019-01-01\n1,A640,2019-01-01\n1,A64.1,2019-02-01\n1,A99,2019-03-01\n2,A55,2019-03-01\n",
            ),
        ],
    );
    let summary = strata::run(&config(&pack, &data, &tmp.path().join("runs"), "run")).expect("run");
    assert_eq!(
        std::fs::read_to_string(summary.dir.join("lists/L83001.csv")).expect("list"),
        "rank,patient_id,practice_code,pcn_code,tier,tier_label,score,age,sex,imd_decile,reasons\n\
         1,1,L83001,,t,T,1,70,U,,3 categories\n\
         2,2,L83001,,t,T,1,70,U,,1 categories\n"
    );
}

/// Every record batch of a Parquet file, in `rows`-row batches.
fn read_batches(path: &Path, rows: usize) -> Vec<arrow::array::RecordBatch> {
    let file = std::fs::File::open(path).expect("open");
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .with_batch_size(rows)
        .build()
        .expect("reader")
        .collect::<Result<_, _>>()
        .expect("batches")
}

/// `strata::score` on the sample data handed over in memory (as plain
/// strings, in batches of odd sizes) gives exactly the rows of a run's
/// `list.parquet`, in its order.
#[test]
fn score_in_memory_equals_the_run_s_list_parquet() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("sample-data");
    let pack = root.join("rules/proactive-care");
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = strata::run(&RunConfig {
        pack: pack.clone(),
        data: data.clone(),
        out: tmp.path().to_path_buf(),
        ..RunConfig::default()
    })
    .expect("run");
    let expected = read_batches(&summary.dir.join("list.parquet"), 1 << 20);
    let expected =
        arrow::compute::concat_batches(&expected[0].schema(), &expected).expect("concat");

    // Dictionary columns as plain strings, as pyarrow or Polars may give them.
    let plain = |batches: Vec<arrow::array::RecordBatch>| -> Vec<arrow::array::RecordBatch> {
        batches
            .into_iter()
            .map(|b| {
                let columns: Vec<(String, arrow::array::ArrayRef)> = b
                    .schema()
                    .fields()
                    .iter()
                    .zip(b.columns())
                    .map(|(f, c)| {
                        let c = match f.data_type() {
                            arrow::datatypes::DataType::Dictionary(_, _) => {
                                arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8View)
                                    .expect("cast")
                            }
                            _ => c.clone(),
                        };
                        (f.name().clone(), c)
                    })
                    .collect();
                arrow::array::RecordBatch::try_from_iter(columns).expect("batch")
            })
            .collect()
    };
    let table = |name: &str| plain(read_batches(&data.join(format!("{name}.parquet")), 7_777));
    let dataset = strata::dataset::Dataset::in_memory(
        table("patients"),
        ["events", "admissions", "medications"]
            .iter()
            .map(|n| (n.to_string(), table(n)))
            .collect(),
        Some(table("contacts")),
        None,
    )
    .expect("dataset");
    let scored = strata::score(&pack, dataset, Some(summary.as_of), Some(2)).expect("score");
    assert_eq!(scored.schema, expected.schema());
    let got = arrow::compute::concat_batches(&scored.schema, &scored.batches).expect("concat");
    assert_eq!(got.num_rows(), 3442);
    assert_eq!(got, expected);
}

/// A bad value in an in-memory table is the same error a file gives,
/// located by row and named by table.
#[test]
fn score_names_the_table_row_and_column_of_a_bad_value() {
    use std::sync::Arc;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let patients = arrow::array::RecordBatch::try_from_iter([
        (
            "patient_id",
            Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3])) as arrow::array::ArrayRef,
        ),
        (
            "practice_code",
            Arc::new(arrow::array::StringArray::from(vec!["A", "A", "A"])),
        ),
        (
            "date_of_birth",
            Arc::new(arrow::array::StringArray::from(vec![
                "1950-01-01",
                "1950-01-01",
                "x",
            ])),
        ),
    ])
    .expect("batch");
    let dataset =
        strata::dataset::Dataset::in_memory(vec![patients], vec![], None, None).expect("dataset");
    let err = strata::score(
        &root.join("tests/fixtures/tiny-pack"),
        dataset,
        chrono::NaiveDate::from_ymd_opt(2020, 3, 23),
        None,
    )
    .expect_err("bad date");
    assert_eq!(err.blame(), Blame::Input);
    assert_eq!(
        err.to_string(),
        "patients:row 3: column date_of_birth: is not a date (expected YYYY-MM-DD; the value \
         is not shown: it is personal data)"
    );
}

/// A practice list bigger than the CSV writer's 4 MiB buffer is written in
/// pieces: every listed person is in the practice's file once, in rank
/// order, as in `list.parquet`.
#[test]
fn a_list_bigger_than_the_csv_buffer_is_written_whole() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    strata::synth::generate(&strata::synth::SynthConfig::new(200_000, 1, 3, &data)).expect("synth");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let summary = strata::run(&RunConfig {
        pack: root.join("rules/proactive-care"),
        data,
        out: tmp.path().join("runs"),
        ..RunConfig::default()
    })
    .expect("run");
    let batches = read_batches(&summary.dir.join("list.parquet"), 1 << 20);
    let mut want: Vec<(String, String, String)> = Vec::new();
    for b in &batches {
        let col = |name: &str| b.column_by_name(name).expect(name).clone();
        let (practice, rank, id) = (col("practice_code"), col("rank"), col("patient_id"));
        for r in 0..b.num_rows() {
            let cell = |a: &arrow::array::ArrayRef| {
                arrow::util::display::array_value_to_string(a, r).expect("cell")
            };
            want.push((cell(&practice), cell(&rank), cell(&id)));
        }
    }
    let practice = want[0].0.clone();
    assert!(want.iter().all(|w| w.0 == practice), "one practice");
    let file = summary.dir.join(format!("lists/{practice}.csv"));
    let bytes = std::fs::metadata(&file).expect("list file").len();
    assert!(bytes > 4 << 20, "{bytes} bytes: not bigger than the buffer");
    let mut got = Vec::new();
    for record in csv::Reader::from_path(&file).expect("csv").records() {
        let record = record.expect("record");
        got.push((
            practice.clone(),
            record[0].to_string(),
            record[1].to_string(),
        ));
    }
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the CSV's ranks and ids differ from list.parquet's"
    );
}
