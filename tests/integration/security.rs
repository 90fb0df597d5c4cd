//! Lists opened in spreadsheets: hostile practice codes, PCN codes,
//! patient ids and reason texts never become formulas, and practice codes
//! never name a file outside the run folder.

#[test]
fn hostile_cells_are_written_inert_and_files_stay_in_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // A pack whose reason text and tier label start like formulas.
    let pack = dir.path().join("pack");
    std::fs::create_dir_all(pack.join("codelists")).unwrap();
    std::fs::write(
        pack.join("codelists/alone.csv"),
        "code,term\n105529008,Lives alone\n",
    )
    .unwrap();
    std::fs::write(
        pack.join("pack.toml"),
        r#"[pack]
id = "hostile"
title = "t"
version = "1"

[population]
when = "age >= 18"

[codelists.alone]
file = "codelists/alone.csv"

[features]
alone = "has(alone)"
place = "practice_code"
minus = "0 - age"

[[rules]]
id = "alone"
when = "alone"
points = 1
reason = "=HYPERLINK(\"http://example.invalid\",\"x\") {place}"

[[tiers]]
id = "t"
label = "@SUM(1+1)"
when = "score >= 1"

[list]
display = ["place", "minus"]
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("patients.csv"),
        "patient_id,practice_code,pcn_code,date_of_birth\n\
         =1+1,../../evil,+PCN,1950-01-01\n\
         -7,@A81001,\tX,1950-01-01\n",
    )
    .unwrap();
    std::fs::write(
        data.join("events.csv"),
        "patient_id,code,date\n=1+1,105529008,2019-01-01\n-7,105529008,2019-01-01\n",
    )
    .unwrap();
    std::fs::write(data.join("dataset.toml"), "extract_date = 2020-03-23\n").unwrap();
    let out = dir.path().join("runs");
    let summary = strata::run(&strata::RunConfig {
        pack: pack.clone(),
        data,
        out: out.clone(),
        ..strata::RunConfig::default()
    })
    .unwrap();
    // Nothing outside the run folder; both lists inside `lists/`.
    let mut outside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside.sort();
    assert_eq!(outside, ["data", "pack", "runs"]);
    let mut files: Vec<String> = std::fs::read_dir(summary.dir.join("lists"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["_A81001.csv", "______evil.csv"]);
    let mut cells = Vec::new();
    for f in &files {
        let mut reader = csv::Reader::from_path(summary.dir.join("lists").join(f)).unwrap();
        for r in reader.records() {
            cells.extend(r.unwrap().iter().map(str::to_string).collect::<Vec<_>>());
        }
    }
    // Text cells that began with = + - @ or a tab start with ' now; the
    // numbers (-69, a negative feature) are left as numbers.
    for c in &cells {
        let c = c.as_str();
        assert!(
            !c.starts_with(['=', '+', '@', '\t', '\r'])
                && (!c.starts_with('-') || c.parse::<f64>().is_ok()),
            "{c:?} could run as a formula"
        );
    }
    for expected in [
        "'=1+1",
        "'-7",
        "../../evil",
        "'@A81001",
        "'+PCN",
        // Codes are read trimmed, so a leading tab never reaches a list.
        "X",
        "'@SUM(1+1)",
        "-70",
    ] {
        assert!(
            cells.iter().any(|c| c == expected),
            "{expected:?} not in {cells:?}"
        );
    }
    assert!(cells
        .iter()
        .any(|c| c.starts_with("'=HYPERLINK(") && c.ends_with("../../evil")));
}

/// One run writes to an output root at a time: a lock held by a live
/// process stops a second run at once with a message naming the holder
/// (exit 2 from the CLI); a lock left by a process that no longer exists
/// is taken over, and the temporary folders it left are removed.
#[test]
fn a_second_run_on_the_same_output_root_fails_naming_the_holder() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    std::fs::create_dir_all(&out).unwrap();
    let lock = out.join(".strata.lock");
    // Held by this (live) test process.
    std::fs::write(
        &lock,
        format!(
            "pid {}, run other-night, started 2020-03-23 02:00:00\n",
            std::process::id()
        ),
    )
    .unwrap();
    let config = strata::RunConfig {
        pack: root.join("tests/fixtures/tiny-pack"),
        data: root.join("tests/fixtures/tiny-data"),
        out: out.clone(),
        ..strata::RunConfig::default()
    };
    let err = strata::run(&config).unwrap_err();
    assert_eq!(err.blame(), strata::error::Blame::Input);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: another strata run is writing here (pid {}, run other-night, started \
             2020-03-23 02:00:00); wait for it to finish, or remove {}/.strata.lock if that \
             run is no longer going",
            out.display(),
            std::process::id(),
            out.display()
        )
    );
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [".strata.lock"]);

    // A killed run's lock and temporary folder: taken over and cleaned.
    std::fs::write(
        &lock,
        "pid 4000000000, run killed, started 2020-03-22 02:00:00\n",
    )
    .unwrap();
    std::fs::create_dir_all(out.join(".2020-03-23-tiny.partial-4000000000/lists")).unwrap();
    let summary = strata::run(&config).unwrap();
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [summary
            .dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()]
    );
}
