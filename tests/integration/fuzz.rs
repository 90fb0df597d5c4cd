//! Fuzzing with proptest (cargo-fuzz needs a nightly toolchain, which
//! these machines do not have): random, CSV-shaped bytes for the dataset
//! reader and random pack text for the pack parser and checker. Either may
//! be refused with an error; neither may panic, hang or write a run.
//!
//! `cargo test` runs a few hundred cases of each. For a long run, set
//! `STRATA_FUZZ_CASES` (the figures in the closing notes come from
//! `STRATA_FUZZ_CASES=200000 cargo test --release --test integration fuzz::`).

use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("STRATA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes that are mostly CSV: digits, dates, separators, quotes, line ends,
/// a BOM, invalid UTF-8 and the odd letter.
fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b",".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\"\"".to_vec()),
        Just(b"1".to_vec()),
        Just(b"-7".to_vec()),
        Just(b"1950-01-01".to_vec()),
        Just(b"2019-02-30".to_vec()),
        Just(b"L83001".to_vec()),
        Just(b"NaN".to_vec()),
        Just(b"\xef\xbb\xbf".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        Just(b" ".to_vec()),
        Just(b"patient_id".to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..80).prop_map(|v| v.concat())
}

fn header_then(header: &'static str) -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), csv_bytes()).prop_map(move |(with_header, body)| {
        let mut out = if with_header {
            header.as_bytes().to_vec()
        } else {
            Vec::new()
        };
        out.extend(body);
        out
    })
}

/// Pack text: a valid skeleton with random pieces in the expressions and
/// keys, or plain random text.
fn pack_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("age"),
        Just(" > "),
        Just(" AND "),
        Just(" OR "),
        Just("NOT "),
        Just("("),
        Just(")"),
        Just("has(alone)"),
        Just("count(alone, '12 months')"),
        Just("latest_of(alone, alone)"),
        Just("'x'"),
        Just("1.5"),
        Just("NULL"),
        Just("score"),
        Just("CASE WHEN "),
        Just(" THEN "),
        Just(" END"),
        Just(", "),
        Just("{"),
        Just("\""),
        Just("\\"),
        Just("é"),
    ];
    let expr = prop::collection::vec(token, 0..30).prop_map(|v| v.concat());
    let skeleton = (expr.clone(), expr.clone(), expr).prop_map(|(a, b, c)| {
        format!(
            "[pack]\nid = \"f\"\ntitle = \"t\"\nversion = \"1\"\n\n[population]\nwhen = \"{}\"\n\n\
             [codelists.alone]\nfile = \"codelists/alone.csv\"\n\n[features]\nx = \"{}\"\n\n\
             [[rules]]\nid = \"r\"\nwhen = \"{}\"\npoints = 1\nreason = \"{{x}}\"\n",
            a.replace('"', "'"),
            b.replace('"', "'"),
            c.replace('"', "'")
        )
    });
    prop_oneof![
        3 => skeleton,
        1 => "\\PC{0,300}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    #[test]
    fn the_dataset_reader_never_panics(
        patients in header_then("patient_id,practice_code,date_of_birth\n"),
        events in header_then("patient_id,code,date,value\n"),
    ) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("patients.csv"), &patients).unwrap();
        std::fs::write(data.join("events.csv"), &events).unwrap();
        std::fs::write(data.join("dataset.toml"), "extract_date = 2020-03-23\n").unwrap();
        let out = dir.path().join("runs");
        let result = strata::run(&strata::RunConfig {
            pack: root.join("tests/fixtures/tiny-pack"),
            data,
            out: out.clone(),
            ..strata::RunConfig::default()
        });
        if result.is_err() {
            // A refused dataset leaves no run behind.
            let left = std::fs::read_dir(&out).map_or(0, |d| d.count());
            prop_assert_eq!(left, 0);
        }
    }

    #[test]
    fn the_pack_checker_never_panics(text in pack_text()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("codelists")).unwrap();
        std::fs::write(dir.path().join("codelists/alone.csv"), "code,term\n105529008,Lives alone\n").unwrap();
        std::fs::write(dir.path().join("pack.toml"), &text).unwrap();
        if let Ok(pack) = strata::pack::load(dir.path()) {
            // A pack that checks also plans.
            let as_of = chrono::NaiveDate::from_ymd_opt(2020, 3, 23).unwrap();
            let _ = strata::plan::PhysicalPlan::compile(&pack, as_of);
        }
    }
}
