//! End-to-end tests of the `strata` binary: each builds a dataset in a
//! temporary folder, runs a command, and asserts the exact output and exit
//! code a user would see.

use std::path::{Path, PathBuf};

use crate::common::{run_in, strata_in_repo, Outcome};

fn strata(args: &[&str]) -> Outcome {
    run_in(args, None)
}

/// A dataset folder in a temp dir, built from (file name, contents) pairs.
fn dataset(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    for (name, text) in files {
        std::fs::write(data.join(name), text).expect("write table");
    }
    (dir, data)
}

fn inspect(data: &Path) -> Outcome {
    strata(&["inspect", data.to_str().expect("utf-8 path")])
}

/// Asserts a failed inspect with exit code 2 and exactly this error line.
fn assert_input_error(files: &[(&str, &str)], expected: &str) {
    let (_dir, data) = dataset(files);
    let out = inspect(&data);
    assert_eq!(out.code, 2, "stderr: {}", out.stderr);
    assert_eq!(out.stderr.trim_end(), format!("error: {expected}"));
    assert!(out.stdout.is_empty());
}

const PATIENTS_OK: &str =
    "patient_id,practice_code,date_of_birth,sex\n1,L83001,1950-01-01,F\n2,L83001,1960-06-01,M\n";

#[test]
fn bad_date_names_file_line_and_column() {
    assert_input_error(
        &[(
            "patients.csv",
            "patient_id,practice_code,date_of_birth\n1,L83001,1950-01-01\n2,L83001,31/02/1950\n",
        )],
        r#"patients.csv:3: column date_of_birth: is not a date (expected YYYY-MM-DD; the value is not shown: it is personal data)"#,
    );
}

#[test]
fn line_numbers_count_physical_lines_across_quoted_newlines() {
    assert_input_error(
        &[(
            "patients.csv",
            "patient_id,practice_code,date_of_birth,note\n1,L83001,1950-01-01,\"two\nlines\"\n2,L83001,1950-02-30,x\n",
        )],
        r#"patients.csv:4: column date_of_birth: is not a date (expected YYYY-MM-DD; the value is not shown: it is personal data)"#,
    );
}

#[test]
fn line_numbers_are_right_with_windows_line_ends() {
    // Clinical systems write CRLF: a bad date on line 8 is line 8.
    let mut text = String::from("\u{feff}patient_id,practice_code,date_of_birth\r\n");
    for i in 1..=6 {
        text.push_str(&format!("{i},L83001,1950-01-0{i}\r\n"));
    }
    text.push_str("7,L83001,31/02/1950\r\n");
    assert_input_error(
        &[("patients.csv", &text)],
        r#"patients.csv:8: column date_of_birth: is not a date (expected YYYY-MM-DD; the value is not shown: it is personal data)"#,
    );
    // And across a quoted field holding a CRLF.
    assert_input_error(
        &[(
            "patients.csv",
            "patient_id,practice_code,date_of_birth,note\r\n1,L83001,1950-01-01,\"two\r\nlines\"\r\n2,L83001,1950-02-30,x\r\n",
        )],
        r#"patients.csv:4: column date_of_birth: is not a date (expected YYYY-MM-DD; the value is not shown: it is personal data)"#,
    );
}

/// Runs the bundled tiny pack on a dataset; returns the outcome.
fn run_tiny(data: &Path, out: &Path) -> Outcome {
    strata_in_repo(&[
        "run",
        "--pack",
        "tests/fixtures/tiny-pack",
        "--data",
        data.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--as-of",
        "2020-03-23",
    ])
}

#[test]
fn a_bad_date_in_an_event_table_is_the_input_s_fault() {
    let (dir, data) = dataset(&[
        ("patients.csv", PATIENTS_OK),
        (
            "events.csv",
            "patient_id,code,date\n1,60621009,2019-01-01\n1,60621009,2019-01-02\n1,60621009,2019-01-03\n2,60621009,2019-01-04\n2,60621009,2019-02-30\n",
        ),
    ]);
    let out = run_tiny(&data, &dir.path().join("runs"));
    assert_eq!(out.code, 2, "stderr: {}", out.stderr);
    assert!(
        out.stderr
            .contains(r#"error: events.csv:6: column date: "2019-02-30" is not a date"#),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("runs").join("2020-03-23-tiny").exists());
}

#[test]
fn a_zero_byte_parquet_file_is_the_input_s_fault() {
    let (dir, data) = dataset(&[("patients.csv", PATIENTS_OK), ("events.parquet", "")]);
    let out = run_tiny(&data, &dir.path().join("runs"));
    assert_eq!(out.code, 2, "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("error: events.parquet"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_required_column() {
    assert_input_error(
        &[("patients.csv", "patient_id,date_of_birth\n1,1950-01-01\n")],
        "patients.csv: missing required column `practice_code` (found: patient_id, date_of_birth)",
    );
}

#[test]
fn missing_event_column() {
    assert_input_error(
        &[
            ("patients.csv", PATIENTS_OK),
            ("events.csv", "patient_id,date\n1,2019-01-01\n"),
        ],
        "events.csv: missing required column `code` (found: patient_id, date)",
    );
}

#[test]
fn duplicate_patient_ids_are_reported_by_line_not_by_id() {
    assert_input_error(
        &[(
            "patients.csv",
            "patient_id,practice_code,date_of_birth\nA7,L83001,1950-01-01\nB8,L83001,1950-01-01\nA7,L83002,1951-01-01\n",
        )],
        "patients.csv:4: duplicate patient_id (first seen at 2)",
    );
}

#[test]
fn empty_patients_table() {
    assert_input_error(
        &[("patients.csv", "patient_id,practice_code,date_of_birth\n")],
        "patients.csv: the patients table has no rows",
    );
}

#[test]
fn no_patients_table() {
    let (_dir, data) = dataset(&[("events.csv", "patient_id,code,date\n")]);
    let out = inspect(&data);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "error: {}: no patients table (expected patients.parquet or patients.csv)",
            data.display()
        )
    );
}

#[test]
fn bad_sex_decile_and_value() {
    assert_input_error(
        &[(
            "patients.csv",
            "patient_id,practice_code,date_of_birth,sex\n1,L83001,1950-01-01,X\n",
        )],
        r#"patients.csv:2: column sex: "X" is not a sex (expected F, M, U, female, male or unknown)"#,
    );
    assert_input_error(
        &[(
            "patients.csv",
            "patient_id,practice_code,date_of_birth,imd_decile\n1,L83001,1950-01-01,3\n2,L83001,1950-01-01,11\n",
        )],
        "patients.csv:3: column imd_decile: 11 is not an integer from 1 to 10",
    );
    assert_input_error(
        &[
            ("patients.csv", PATIENTS_OK),
            ("events.csv", "patient_id,code,date,value\n1,60621009,2019-01-01,27.5\n1,60621009,2019-02-01,twelve\n"),
        ],
        r#"events.csv:3: column value: "twelve" is not a number"#,
    );
}

#[test]
fn required_value_missing() {
    assert_input_error(
        &[(
            "patients.csv",
            "patient_id,practice_code,date_of_birth\n1,,1950-01-01\n",
        )],
        "patients.csv:2: column practice_code: is empty, but a value is required",
    );
}

#[test]
fn wrong_field_count() {
    assert_input_error(
        &[(
            "patients.csv",
            "patient_id,practice_code,date_of_birth\n1,L83001\n",
        )],
        "patients.csv:2: expected 3 fields (as in the header), found 2",
    );
}

#[test]
fn both_csv_and_parquet_for_one_table() {
    let (_dir, data) = dataset(&[("patients.csv", PATIENTS_OK), ("patients.parquet", "")]);
    let out = inspect(&data);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "error: {}: table `patients` is given twice (patients.csv and patients.parquet); keep one",
            data.display()
        )
    );
}

#[test]
fn real_extract_quirks_are_read() {
    // UTF-8 byte-order mark, CRLF line ends, quoted fields, long-form sex,
    // columns in another order, blank trailing lines.
    let patients = "\u{feff}sex,patient_id,date_of_birth,practice_code,pcn_code\r\n\
                    female,\"p1\",1950-01-01,L83001,U12345\r\n\
                    Male,\"p,2\",1960-06-01,L83002,U12345\r\n\
                    \r\n\r\n";
    let events = "patient_id,code,date,value\r\np1,\"60621009\",2019-01-01,27.5\r\n\"p,2\",38341003,2018-05-05,\r\n";
    let (_dir, data) = dataset(&[
        ("patients.csv", patients),
        ("events.csv", events),
        ("dataset.toml", "extract_date = 2020-03-23\n"),
    ]);
    let out = inspect(&data);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let expected = format!(
        "dataset   {}\n\
         as-of     2020-03-23 (dataset.toml extract_date)\n\
         patients  2 (2 registered and alive, 0 deceased, 0 deregistered)\n\
         practices 2 in 1 PCNs\n\
         \x20 L83001         1 people\n\
         \x20 L83002         1 people\n\
         deprivation IMD 2019 deciles from lsoa_code (2011 LSOAs); the default: dataset.toml states no imd and lsoa_vintage\n\
         columns and dates: the contract's names, dates YYYY-MM-DD\n\
         tables\n\
         \x20 events                 2 rows  2018-05-05 .. 2019-01-01, 2 distinct codes\n\
         data-quality findings\n\
         \x20 none\n",
        data.display()
    );
    assert_eq!(out.stdout, expected);
}

#[test]
fn data_quality_findings_are_counted_not_fatal() {
    let events = "patient_id,code,date\n\
                  1,60621009,2019-01-01\n\
                  99,60621009,2019-01-01\n\
                  98,60621009,2019-01-01\n\
                  1,60621009,2021-01-01\n\
                  2,60621009,1959-01-01\n";
    let contacts = "patient_id,date,outcome\n1,2020-03-01,spoke\n";
    let (_dir, data) = dataset(&[
        ("patients.csv", PATIENTS_OK),
        ("events.csv", events),
        ("contacts.csv", contacts),
        (
            "dataset.toml",
            "extract_date = 2020-03-23\nsource = \"test\"\n",
        ),
    ]);
    let out = inspect(&data);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let tail = out
        .stdout
        .split("data-quality findings\n")
        .nth(1)
        .unwrap_or("");
    assert_eq!(
        tail,
        "  events.csv: 2 rows for a patient_id not in patients\n\
         \x20 events.csv: 1 rows dated after the as-of date\n\
         \x20 events.csv: 1 rows dated before the person's birth\n"
    );
}

#[test]
fn parquet_wrong_type_is_an_input_error() {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    let (_dir, data) = dataset(&[]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Int64, false),
        Field::new("practice_code", DataType::Utf8, false),
        Field::new("date_of_birth", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["L83001", "L83001"])),
            Arc::new(Int64Array::from(vec![19500101, 19600101])),
        ],
    )
    .expect("batch");
    let file = std::fs::File::create(data.join("patients.parquet")).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    let out = inspect(&data);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr.trim_end(),
        "error: patients.parquet: column date_of_birth: expected a date, found Parquet/Arrow type Int64"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = strata(&["inspect"]);
    assert_eq!(out.code, 2);
    let out = strata(&["no-such-command"]);
    assert_eq!(out.code, 2);
}

#[test]
fn imd_decile_is_derived_from_the_lsoa_when_absent() {
    // Cornwall 017A (E01018767) is in IMD 2019 decile 1 and Cornwall 017D
    // (E01018772) in decile 7; an unknown LSOA gives no decile.
    let (_dir, data) = dataset(&[(
        "patients.csv",
        "patient_id,practice_code,date_of_birth,lsoa_code\n1,L83001,1950-01-01,E01018767\n2,L83001,1950-01-01,E01018772\n3,L83001,1950-01-01,E99999999\n",
    )]);
    let ds = strata::dataset::Dataset::open(&data).unwrap();
    let p = ds.read_patients().unwrap();
    let deciles: Vec<Option<i32>> = p.imd_decile.iter().collect();
    assert_eq!(deciles, vec![Some(1), Some(7), None]);
}

#[test]
fn check_prints_every_diagnostic_and_exits_2() {
    let case = "tests/packs/invalid/unknown-names";
    let out = strata_in_repo(&["check", case]);
    assert_eq!(out.code, 2);
    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(case)
            .join("expected.txt"),
    )
    .unwrap();
    assert_eq!(out.stdout, expected);
    assert_eq!(
        out.stderr.trim_end(),
        format!("error: {case}: the rule pack has errors")
    );
}

#[test]
fn check_accepts_the_bundled_pack() {
    let out = strata_in_repo(&["check", "rules/proactive-care"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .starts_with("rules/proactive-care: ok (proactive-care 2.0.0: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\n  uses efi = efi 1.0.0 (../efi)\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_prints_the_physical_plan() {
    let out = strata_in_repo(&[
        "check",
        "--plan",
        "--as-of",
        "2020-03-23",
        "tests/fixtures/tiny-pack",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans/tiny.txt"))
            .expect("tests/plans/tiny.txt");
    assert_eq!(
        out.stdout,
        format!(
            "tests/fixtures/tiny-pack: ok (tiny 1: 4 codelists, 3 features, 3 rules, 2 tiers)\n{plan}"
        )
    );
}

#[test]
fn explain_gives_the_golden_audit_trail() {
    let explain = |id: &str| {
        let out = strata_in_repo(&[
            "explain",
            "--pack",
            "tests/fixtures/tiny-pack",
            "--data",
            "tests/fixtures/tiny-data",
            "--patient",
            id,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
    };
    let text = format!("{}---\n{}", explain("2"), explain("4"));
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-explain.txt"),
    )
    .unwrap();
    assert_eq!(text, golden);
    let out = strata_in_repo(&[
        "explain",
        "--pack",
        "tests/fixtures/tiny-pack",
        "--data",
        "tests/fixtures/tiny-data",
        "--patient",
        "77",
    ]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr.trim_end(),
        "error: patients.csv: no such patient_id"
    );
}

#[test]
fn parquet_written_by_other_tools_is_read() {
    // Polars writes large strings; DuckDB writes 32-bit ids and dictionary codes.
    use std::sync::Arc;

    use arrow::array::{Date32Array, Float64Array, Int32Array, LargeStringArray, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    let (_dir, data) = dataset(&[
        ("patients.csv", PATIENTS_OK),
        ("dataset.toml", "extract_date = 2020-03-23\n"),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Int32, false),
        Field::new("code", DataType::LargeUtf8, false),
        Field::new("date", DataType::Date32, false),
        Field::new("value", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3])),
            Arc::new(LargeStringArray::from(vec![
                "60621009", "38341003", "60621009",
            ])),
            Arc::new(Date32Array::from(vec![18000, 18001, 18002])),
            Arc::new(Float64Array::from(vec![Some(27.5), None, Some(31.0)])),
        ],
    )
    .expect("batch");
    let file = std::fs::File::create(data.join("events.parquet")).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    let out = inspect(&data);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "  events                 3 rows  2019-04-14 .. 2019-04-16, 2 distinct codes\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  events.parquet: 1 rows for a patient_id not in patients\n"),
        "{}",
        out.stdout
    );
}

/// A rule pack's diagnostics are the error's message: said once, not
/// again as its cause.
#[test]
fn a_pack_error_is_said_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (data, out) = (dir.path().join("data"), dir.path().join("runs"));
    std::fs::create_dir(&data).expect("data dir");
    let no_pack = dir.path().join("no-pack");
    std::fs::create_dir(&no_pack).expect("pack dir");
    let out = strata_in_repo(&[
        "run",
        "--pack",
        no_pack.to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.code, 2, "stderr: {}", out.stderr);
    assert_eq!(
        out.stderr.matches("no pack.toml in").count(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("1 error found").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("caused by"), "{}", out.stderr);
}
