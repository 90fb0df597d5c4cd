//! Extracts as practices have them: versioned deprivation (IMD 2019 on 2011
//! LSOAs, IoD2025 on 2021 LSOAs, and each read through the other vintage),
//! the extract's own headers and date formats described in dataset.toml,
//! and a flag-style export.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::Array;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `strata --log-level warn ARGS` from the repository root: (exit code,
/// stdout, stderr).
fn strata(args: &[&str]) -> (Option<i32>, String, String) {
    let o = crate::common::strata_in_repo(&[&["--log-level", "warn"], args].concat());
    (Some(o.code).filter(|&c| c >= 0), o.stdout, o.stderr)
}

fn write(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    dir.to_path_buf()
}

/// (code, rank, decile) rows of a bundled index file.
fn index(path: &str, code: &str) -> HashMap<String, (u32, i32)> {
    let mut r = csv::Reader::from_path(root().join(path)).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (c, k, d) = (col(code), col("imd_rank"), col("imd_decile"));
    r.records()
        .map(|x| {
            let x = x.unwrap();
            (
                x[c].to_string(),
                (x[k].parse().unwrap(), x[d].parse().unwrap()),
            )
        })
        .collect()
}

/// The 2011 → 2021 pairs of the bundled lookup.
fn pairs() -> Vec<(String, String)> {
    let mut r = csv::Reader::from_path(root().join("reference/lsoa/lsoa11_lsoa21.csv")).unwrap();
    r.records()
        .map(|x| {
            let x = x.unwrap();
            (x[0].to_string(), x[1].to_string())
        })
        .collect()
}

/// The deciles a patients table gets, read through `Dataset` as a run reads it.
fn deciles(dir: &Path) -> Vec<Option<i32>> {
    let ds = strata::dataset::Dataset::open(dir).unwrap();
    let p = ds.read_patients().unwrap();
    (0..p.len())
        .map(|i| p.imd_decile.is_valid(i).then(|| p.imd_decile.value(i)))
        .collect()
}

/// A few hundred random LSOAs of each vintage, some not LSOAs at all, in
/// all four pairings of index and vintage: each gets exactly the published
/// decile (directly, or the most deprived area it maps to), and the rest
/// none, and are counted.
#[test]
fn every_lsoa_gets_the_published_decile_in_every_pairing() {
    let imd2019 = index("reference/imd2019/imd2019_lsoa11.csv", "lsoa11_code");
    let iod2025 = index("reference/iod2025/imd2025_lsoa21.csv", "lsoa21_code");
    let pairs = pairs();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2025);
    let mut codes11: Vec<&String> = imd2019.keys().collect();
    let mut codes21: Vec<&String> = iod2025.keys().collect();
    codes11.sort();
    codes21.sort();
    // Every split, merged and redrawn area of the lookup too.
    let mut count11: HashMap<&str, usize> = HashMap::new();
    let mut count21: HashMap<&str, usize> = HashMap::new();
    for (a, b) in &pairs {
        *count11.entry(a).or_default() += 1;
        *count21.entry(b).or_default() += 1;
    }
    let invalid = [
        "W01000001",
        "E01999999",
        "e01000001",
        "E0100000",
        "S01006506",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (imd, vintage) in [
        ("2019", 2011),
        ("2025", 2021),
        ("2025", 2011),
        ("2019", 2021),
    ] {
        let pool = if vintage == 2011 { &codes11 } else { &codes21 };
        let mut sample: Vec<String> = (0..300)
            .map(|_| pool.choose(&mut rng).unwrap().to_string())
            .collect();
        // The areas that map to several: a few of each direction.
        let many: Vec<&str> = if vintage == 2011 {
            let mut v: Vec<&str> = count11
                .iter()
                .filter(|(_, &n)| n > 1)
                .map(|(k, _)| *k)
                .collect();
            v.sort();
            v
        } else {
            let mut v: Vec<&str> = count21
                .iter()
                .filter(|(_, &n)| n > 1)
                .map(|(k, _)| *k)
                .collect();
            v.sort();
            v
        };
        sample.extend(many.iter().take(40).map(|s| s.to_string()));
        let n_invalid = rng.random_range(5..=20);
        for _ in 0..n_invalid {
            sample.push(invalid.choose(&mut rng).unwrap().to_string());
        }
        let mut text = String::from("patient_id,practice_code,date_of_birth,lsoa_code\n");
        for (i, c) in sample.iter().enumerate() {
            text.push_str(&format!("{i},L1,1950-01-01,{c}\n"));
        }
        let d = write(
            &dir.join(format!("{imd}-{vintage}")),
            &[
                ("patients.csv", text.as_bytes()),
                (
                    "dataset.toml",
                    format!("lsoa_vintage = {vintage}\nimd = \"{imd}\"\n").as_bytes(),
                ),
            ],
        );
        let index = if imd == "2019" { &imd2019 } else { &iod2025 };
        let native = (imd == "2019") == (vintage == 2011);
        let expected: Vec<Option<i32>> = sample
            .iter()
            .map(|c| {
                if native {
                    return index.get(c).map(|&(_, d)| d);
                }
                // The areas of the index's vintage this code overlaps: the
                // most deprived (lowest rank) decides.
                pairs
                    .iter()
                    .filter_map(|(a, b)| match vintage {
                        2011 if a == c => Some(b),
                        2021 if b == c => Some(a),
                        _ => None,
                    })
                    .filter_map(|t| index.get(t))
                    .min()
                    .map(|&(_, d)| d)
            })
            .collect();
        assert_eq!(deciles(&d), expected, "imd {imd} on {vintage} LSOAs");
        let nulls = expected.iter().filter(|d| d.is_none()).count();
        assert_eq!(nulls, n_invalid, "only the invalid codes have no decile");
        let (code, stdout, stderr) = strata(&["inspect", d.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stdout.contains(&format!(
                "  lsoa_code: {} people with an LSOA of the vintage, {n_invalid} without one",
                sample.len() - n_invalid
            )),
            "{stdout}"
        );
    }
}

/// A CRLF export with a BOM, the clinical system's own headers and
/// day-first dates, described once in dataset.toml: the run reads it as if
/// it were in the contract's form, with IoD2025 deciles from 2011 LSOAs.
#[test]
fn an_extract_described_once_runs_as_the_contract_s_form() {
    let tmp = tempfile::tempdir().unwrap();
    let patients = "\u{feff}Patient ID,Practice,Date of Birth,Gender,LSOA\r\n\
                    1,L83001,01/04/1940,Female,E01000010\r\n\
                    2,L83001,02/01/1940,Male,E01000001\r\n\
                    3,L83001,23/03/1950,Female,W01000001\r\n";
    let events = "Patient ID,SNOMED Code,Recorded\r\n\
                  1,1300561000000107,23-Mar-2020\r\n\
                  2,105529008,01-Feb-2019\r\n";
    let toml = r#"extract_date = "2020-03-23"
lsoa_vintage = 2011
imd = "2025"
date_format = "%d/%m/%Y"

[tables.patients.columns]
patient_id = "Patient ID"
practice_code = "Practice"
date_of_birth = "Date of Birth"
sex = "Gender"
lsoa_code = "LSOA"

[tables.events]
date_format = "%d-%b-%Y"
[tables.events.columns]
patient_id = "Patient ID"
code = "SNOMED Code"
date = "Recorded"
"#;
    let data = write(
        &tmp.path().join("data"),
        &[
            ("patients.csv", patients.as_bytes()),
            ("events.csv", events.as_bytes()),
            ("dataset.toml", toml.as_bytes()),
        ],
    );
    let out = tmp.path().join("runs");
    let (code, _, stderr) = strata(&[
        "run",
        "--pack",
        "tests/fixtures/tiny-pack",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let run = out.join("2020-03-23-tiny");
    // 01/04/1940 is 1 April: 79 on 2020-03-23 (4 January would be 80).
    // E01000010 was split in 2021; its most deprived part is IoD2025
    // decile 1. E01000001 is decile 8. W01000001 is not an English LSOA.
    assert_eq!(
        std::fs::read_to_string(run.join("lists/L83001.csv")).unwrap(),
        "rank,patient_id,practice_code,pcn_code,tier,tier_label,score,age,sex,imd_decile,diabetes,lives_alone,reasons\n\
         1,2,L83001,,t2,High,2.08,80,M,8,no,yes,Aged 70 or over; Lives alone (BMI unknown)\n\
         2,1,L83001,,t2,High,2,79,F,1,no,no,Shielding; Aged 70 or over\n\
         3,3,L83001,,t2,High,2,70,F,,no,no,Aged 70 or over\n"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["deprivation"],
        serde_json::json!({
            "index": "2025",
            "index_title": "English Indices of Deprivation 2025 (IoD2025)",
            "lsoa_vintage": "2011",
            "stated_in": "dataset.toml",
            "decile_from": "lsoa_code",
            "lsoa_found": 2,
            "lsoa_not_found": 1
        })
    );
    assert_eq!(manifest["patient_findings"]["lsoa_not_in_vintage"], 1);
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(report.contains("By IoD2025 quintile of the area people live in"));
    assert!(report.contains("Deprivation: IoD2025 deciles from lsoa_code (2011 LSOAs, converted"));

    let (_, stdout, _) = strata(&["inspect", data.to_str().unwrap()]);
    for line in [
        "deprivation IoD2025 deciles from lsoa_code (2011 LSOAs, converted to 2021 LSOAs through the ONS lookup; split areas take their most deprived part); stated in dataset.toml",
        "  patients.csv: dates DD/MM/YYYY (dataset.toml)",
        "    date_of_birth <- \"Date of Birth\"",
        "  events.csv: dates DD-Mon-YYYY (dataset.toml, this table)",
        "    code <- \"SNOMED Code\"",
    ] {
        assert!(stdout.contains(line), "{line}\n---\n{stdout}");
    }

    let (_, stdout, _) = strata(&[
        "explain",
        "--pack",
        "tests/fixtures/tiny-pack",
        "--data",
        data.to_str().unwrap(),
        "--patient",
        "1",
    ]);
    assert!(
        stdout.contains(
            "deprivation decile 1, quintile 1 (IoD2025, from lsoa_code, 2011 LSOAs: the most \
             deprived of the 2 2021 LSOAs it maps to)"
        ),
        "{stdout}"
    );
}

/// Mistakes in an extract or its description: each names the file, the
/// line and the extract's own column, exit 2, nothing written.
#[test]
fn extract_mistakes_name_the_extract_s_own_column() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = "extract_date = 2020-03-23\ndate_format = \"%d/%m/%Y\"\n\
                [tables.patients.columns]\ndate_of_birth = \"Date of Birth\"\n";
    let cases: [(&str, &str, &str, String); 7] = [
        (
            "bad-dob",
            toml,
            "patient_id,practice_code,Date of Birth\r\n1,L1,01/02/1940\r\n2,L1,1950-01-01\r\n",
            "error: patients.csv:3: column Date of Birth: is not a date (expected DD/MM/YYYY; the value is not shown: it is personal data)\n".into(),
        ),
        (
            "feb-30",
            toml,
            "patient_id,practice_code,Date of Birth\n1,L1,30/02/1940\n",
            "error: patients.csv:2: column Date of Birth: is not a date (expected DD/MM/YYYY; the value is not shown: it is personal data)\n".into(),
        ),
        (
            "missing-mapped",
            toml,
            "patient_id,practice_code,DOB\n1,L1,01/02/1940\n",
            "error: patients.csv has no column \"Date of Birth\" (dataset.toml maps date_of_birth to it; the file's columns: patient_id, practice_code, DOB)\n".into(),
        ),
        (
            "two-year-digits",
            "date_format = \"%d/%m/%y\"\n",
            "patient_id,practice_code,date_of_birth\n1,L1,01/02/40\n",
            "date_format: \"%d/%m/%y\": two-digit years (%y) are ambiguous for dates of birth; use %Y\n".into(),
        ),
        (
            "imd-alone",
            "imd = \"2025\"\n",
            "patient_id,practice_code,date_of_birth\n1,L1,1940-02-01\n",
            "imd is given without lsoa_vintage: say which LSOA codes the extract carries (lsoa_vintage = 2011 or 2021)\n".into(),
        ),
        (
            "unknown-table",
            "[tables.admisions.columns]\ncode = \"Diagnosis\"\n",
            "patient_id,practice_code,date_of_birth\n1,L1,1940-02-01\n",
            "[tables.admisions]: the folder has no table admisions (its tables: patients, events)\n".into(),
        ),
        (
            "unknown-index",
            "imd = \"2015\"\nlsoa_vintage = 2011\n",
            "patient_id,practice_code,date_of_birth\n1,L1,1940-02-01\n",
            "imd: \"2015\" is not an index strata has (\"2019\" or \"2025\")\n".into(),
        ),
    ];
    for (name, toml, patients, expected) in cases {
        let d = write(
            &tmp.path().join(name),
            &[
                ("dataset.toml", toml.as_bytes()),
                ("patients.csv", patients.as_bytes()),
                ("events.csv", b"patient_id,code,date\n"),
            ],
        );
        let out = tmp.path().join(format!("out-{name}"));
        let (code, _, stderr) = strata(&[
            "run",
            "--pack",
            "tests/fixtures/tiny-pack",
            "--data",
            d.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let expected = if expected.starts_with("error: ") {
            expected
        } else {
            format!("error: {}: {expected}", d.join("dataset.toml").display())
        };
        assert_eq!((code, stderr), (Some(2), expected), "{name}");
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
    }
}

/// A pack written for one index refuses a dataset of the other.
#[test]
fn a_pack_that_needs_another_index_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write(
        &tmp.path().join("data"),
        &[(
            "patients.csv",
            b"patient_id,practice_code,date_of_birth\n1,L1,1940-02-01\n",
        )],
    );
    let (code, _, stderr) = strata(&[
        "run",
        "--pack",
        "examples/flag-export/pack",
        "--data",
        data.to_str().unwrap(),
        "--as-of",
        "2020-03-23",
        "--out",
        tmp.path().join("runs").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "error: the pack `flag-proactive-care` is written for IoD2025 deprivation deciles ([pack] \
         imd = \"2025\"), but the dataset's are IMD 2019 (the default: its dataset.toml states no \
         imd); state imd (and lsoa_vintage) in the dataset's dataset.toml, or use a pack for IMD 2019\n"
    );
}

/// examples/flag-export: a flag-style search export with its own headers,
/// day-first dates and 2021 LSOAs, and a pack that reads only its columns.
#[test]
fn the_flag_export_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    let (code, _, stderr) = strata(&[
        "run",
        "--pack",
        "examples/flag-export/pack",
        "--data",
        "examples/flag-export/data",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let run = out.join("2020-11-30-flag-proactive-care");
    let list = std::fs::read_to_string(run.join("lists/L83001.csv")).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[1],
        "1,P1011,L83001,,call-first,Call first,7,95,F,1,moderate,Lives alone; moderate frailty \
         (eFI 0.25); Is a carer; Lives in England's most deprived fifth (IoD2025); Aged 80 or over"
    );
    assert_eq!(lines.len(), 15);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["patient_findings"]["lsoa_not_in_vintage"], 1);
    assert_eq!(manifest["deprivation"]["index"], "2025");
    assert_eq!(manifest["deprivation"]["lsoa_vintage"], "2021");
}

/// Patients with integer ids in increasing order are found by binary
/// search (no hash index); any other order by the hash index: both find
/// every id and no other, and a repeated id is an error either way.
#[test]
fn sorted_and_unsorted_integer_ids_are_found_alike() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, ids) in [
        ("sorted", vec![-5i64, 1, 2, 40, 41, 1_000_000_000_000]),
        ("unsorted", vec![41, 1, -5, 1_000_000_000_000, 2, 40]),
    ] {
        let mut text = String::from("patient_id,practice_code,date_of_birth\n");
        for id in &ids {
            text.push_str(&format!("{id},L1,1950-01-01\n"));
        }
        let d = write(&tmp.path().join(name), &[("patients.csv", text.as_bytes())]);
        let p = strata::dataset::Dataset::open(&d)
            .unwrap()
            .read_patients()
            .unwrap();
        for (row, id) in ids.iter().enumerate() {
            assert_eq!(p.row_of_int(*id), Some(row as u32), "{name} {id}");
            assert_eq!(
                p.row_of_text(&format!(" {id} ")),
                Some(row as u32),
                "{name} {id}"
            );
        }
        for absent in [0, 3, 39, 42, i64::MIN, i64::MAX] {
            assert_eq!(p.row_of_int(absent), None, "{name} {absent}");
        }
    }
    let d = write(
        &tmp.path().join("repeated"),
        &[(
            "patients.csv",
            b"patient_id,practice_code,date_of_birth\n1,L1,1950-01-01\n2,L1,1950-01-01\n2,L1,1950-01-01\n",
        )],
    );
    let err = strata::dataset::Dataset::open(&d)
        .unwrap()
        .read_patients()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "patients.csv:4: duplicate patient_id (first seen at 3)"
    );
}

/// A patients CSV longer than one read chunk (8 MiB) is split and typed
/// chunk by chunk in parallel: every row is read in file order, and an
/// error still names the physical line (a quoted line break and a blank
/// line on the way), here a repeated id on either side of a chunk's end.
#[test]
fn a_patients_csv_of_several_chunks_reads_in_file_order() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = 650_000usize;
    let mut text = String::from("patient_id,practice_code,date_of_birth,lsoa_code\n");
    text.push_str("100,\"L\n1\",1950-01-01,E01000001\n\n");
    for i in 1..rows {
        let practice = if i < rows / 2 { "L1" } else { "L2" };
        text.push_str(&format!(
            "{},{practice},19{:02}-03-0{},E0100000{}\n",
            100 + i,
            i % 100,
            1 + i % 9,
            i % 10
        ));
    }
    assert!(text.len() > 2 * (8 << 20), "{} bytes", text.len());
    let d = write(
        &tmp.path().join("big"),
        &[("patients.csv", text.as_bytes())],
    );
    let read = |d: &std::path::Path| strata::dataset::Dataset::open(d).unwrap().read_patients();
    let p = read(&d).unwrap();
    assert_eq!(p.len(), rows);
    assert_eq!(p.practice_code.value(0), "L\n1");
    for i in [1, rows / 2 - 1, rows / 2, rows - 1] {
        assert_eq!(p.row_of_int(100 + i as i64), Some(i as u32));
        assert_eq!(
            p.practice_code.value(i),
            if i < rows / 2 { "L1" } else { "L2" }
        );
        let dob =
            strata::dataset::columns::iso_date_days(&format!("19{:02}-03-0{}", i % 100, 1 + i % 9));
        assert_eq!(Some(p.date_of_birth.value(i)), dob, "row {i}");
    }
    // The header is line 1, the first person lines 2-3, a blank line 4.
    let mut repeated = text.clone();
    repeated.push_str("100,L2,1950-01-01,E01000001\n");
    let d = write(
        &tmp.path().join("repeated"),
        &[("patients.csv", repeated.as_bytes())],
    );
    let err = read(&d).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "patients.csv:{}: duplicate patient_id (first seen at 2)",
            rows + 4
        )
    );
}

/// The extract's headers are mapped in Parquet tables too: the patients
/// and events read under our names, the codes still dictionary-read.
#[test]
fn parquet_headers_are_mapped_too() {
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    std::fs::create_dir_all(&d).unwrap();
    crate::common::write_parquet(
        &d.join("patients.parquet"),
        vec![
            (
                "Patient ID",
                Arc::new(arrow::array::Int64Array::from(vec![7, 3])) as _,
            ),
            (
                "Practice",
                Arc::new(arrow::array::StringArray::from(vec!["L1", "L2"])) as _,
            ),
            (
                "DOB",
                Arc::new(arrow::array::Date32Array::from(vec![-7305, 0])) as _,
            ),
        ],
    );
    crate::common::write_parquet(
        &d.join("events.parquet"),
        vec![
            (
                "Patient ID",
                Arc::new(arrow::array::Int64Array::from(vec![3])) as _,
            ),
            (
                "SNOMED",
                Arc::new(arrow::array::StringArray::from(vec!["44054006"])) as _,
            ),
            (
                "date",
                Arc::new(arrow::array::Date32Array::from(vec![18000])) as _,
            ),
        ],
    );
    std::fs::write(
        d.join("dataset.toml"),
        "[tables.patients.columns]\npatient_id = \"Patient ID\"\npractice_code = \"Practice\"\n\
         date_of_birth = \"DOB\"\n[tables.events.columns]\npatient_id = \"Patient ID\"\ncode = \"SNOMED\"\n",
    )
    .unwrap();
    let ds = strata::dataset::Dataset::open(&d).unwrap();
    let p = ds.read_patients().unwrap();
    assert_eq!((p.row_of_int(7), p.row_of_int(3)), (Some(0), Some(1)));
    assert_eq!(p.practice_code.value(1), "L2");
    let mut rows = 0;
    for b in strata::dataset::EventReader::open(&ds.event_tables[0]).unwrap() {
        let b = b.unwrap();
        rows += b.dates.len();
        assert_eq!(b.dates.value(0), 18000);
    }
    assert_eq!(rows, 1);
}

/// A run lets go of the id index once the last lookup by id is done (the
/// leavers): its memory is given back, and the table itself is untouched.
/// The sample's ids are integers in no order, so they have a hash index.
#[test]
fn the_id_index_is_let_go_after_the_last_lookup() {
    let ds = strata::dataset::Dataset::open(&root().join("sample-data")).unwrap();
    let mut p = ds.read_patients().unwrap();
    assert_eq!(p.len(), 20_000);
    assert_eq!(p.row_of_text("1187994478254"), Some(4));
    assert_eq!(p.row_of_int(1_012_581_004_725), Some(3));
    let before = p.memory_bytes();
    p.release_index();
    let freed = before - p.memory_bytes();
    // A row number (4 bytes) a person at least, in tables kept under 90% full.
    assert!(
        (20_000 * 4..20_000 * 4 * 2).contains(&freed),
        "{freed} bytes"
    );
    assert_eq!(p.len(), 20_000);
    assert_eq!(p.practice_code.value(4), {
        let again = ds.read_patients().unwrap();
        again.practice_code.value(4).to_string()
    });
}
