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

/// SIGTERM and Ctrl-C (SIGINT) half way through writing a run: the process
/// stops within a second with 143 / 130, its temporary folder and the lock
/// are gone, and the earlier run of the same name is untouched.
#[test]
fn a_signal_stops_a_run_cleanly_and_keeps_the_earlier_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let args = |name: &str| {
        vec![
            "run".to_string(),
            "--pack".into(),
            root.join("tests/fixtures/tiny-pack").display().to_string(),
            "--data".into(),
            root.join("tests/fixtures/tiny-data").display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--name".into(),
            name.into(),
        ]
    };
    let first = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args("night"))
        .output()
        .unwrap();
    assert!(first.status.success());
    let earlier = std::fs::read(out.join("night/manifest.json")).unwrap();
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(args("night"))
            .env("STRATA_TEST_PAUSE_AFTER_LISTS_MS", "20000")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the half-written run's lists exist.
        let started = std::time::Instant::now();
        loop {
            let partial = std::fs::read_dir(&out).unwrap().flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.contains(".partial-") && e.path().join("lists").is_dir()
            });
            if partial {
                break;
            }
            assert!(
                started.elapsed().as_secs() < 20,
                "the run never started writing"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let sent = std::time::Instant::now();
        let killed = std::process::Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert!(
            sent.elapsed().as_millis() < 1000,
            "took {:?}",
            sent.elapsed()
        );
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        let mut left: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["night"], "after SIG{signal}");
        assert_eq!(
            std::fs::read(out.join("night/manifest.json")).unwrap(),
            earlier
        );
    }
}

/// SIGKILL at 20 points spread over a run (no chance to clean up): the
/// destination is always a complete run (the earlier one, or the new one
/// when the kill came after the rename), never a partial one; the next run
/// takes over the dead run's lock, removes its temporary folder and
/// succeeds.
#[test]
fn sigkill_anywhere_never_leaves_a_partial_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    strata::synth::generate(&strata::synth::SynthConfig::new(40_000, 4, 3, &data)).unwrap();
    let out = dir.path().join("runs");
    let run = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
        c.args(["run", "--pack"])
            .arg(root.join("rules/proactive-care"))
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .args(["--name", "night"])
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        c
    };
    let started = std::time::Instant::now();
    assert!(run().status().unwrap().success());
    let took = started.elapsed();
    let complete = |what: &str| {
        let m = std::fs::read(out.join("night/manifest.json")).expect(what);
        let m: serde_json::Value = serde_json::from_slice(&m).expect(what);
        assert_eq!(m["pack"]["id"], "proactive-care", "{what}");
        assert!(out.join("night/report.html").is_file(), "{what}");
        assert!(out.join("night/list.parquet").is_file(), "{what}");
    };
    for k in 0..20u32 {
        let mut child = run().spawn().unwrap();
        std::thread::sleep(took * k / 20);
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        let _ = child.wait();
        complete(&format!("after a kill at {k}/20 of the run"));
    }
    assert!(run().status().unwrap().success());
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["night"]);
    complete("the run after the kills");
}

/// No patient identifier, date of birth or LSOA code in anything strata
/// prints or writes outside the patient-level lists: every command's
/// stdout and stderr (info logs, text and JSON), the manifest, the report,
/// and the error for a malformed date of birth. (`explain` prints one
/// person's record on request, to stdout: only its logs are scanned.)
#[test]
fn no_identifier_leaves_the_patient_level_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let ids = ["QZXPID0001", "QZXPID0002", "QZXPID0003"];
    let dobs = ["1931-07-19", "1933-11-05", "1941-02-27"];
    let lsoas = ["E01099001", "E01099002", "E01099003"];
    let mut patients =
        String::from("patient_id,practice_code,pcn_code,date_of_birth,sex,lsoa_code\n");
    for k in 0..3 {
        patients.push_str(&format!(
            "{},L83001,U83001,{},F,{}\n",
            ids[k], dobs[k], lsoas[k]
        ));
    }
    std::fs::write(data.join("patients.csv"), &patients).unwrap();
    std::fs::write(
        data.join("events.csv"),
        "patient_id,code,date\nQZXPID0001,105529008,2019-01-01\nQZXPID0001,44054006,2018-01-01\n\
         QZXPID0009,105529008,2019-01-01\n",
    )
    .unwrap();
    std::fs::write(
        data.join("contacts.csv"),
        "patient_id,date,outcome\nQZXPID0002,2020-03-20,spoke\n",
    )
    .unwrap();
    std::fs::write(data.join("dataset.toml"), "extract_date = 2020-03-23\n").unwrap();
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("patients.csv"),
        patients.replace("1941-02-27", "27/02/1941"),
    )
    .unwrap();
    let out = dir.path().join("runs");
    let pack = root.join("tests/fixtures/tiny-pack");
    let strata = |args: &[&str], log: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["--log-level", "debug", "--log-format", log])
            .args(args)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (p, d, b, o) = (
        pack.to_str().unwrap(),
        data.to_str().unwrap(),
        bad.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let mut printed = Vec::new();
    for log in ["human", "json"] {
        for args in [
            vec!["check", p],
            vec!["inspect", d],
            vec!["run", "--pack", p, "--data", d, "--out", o, "--name", log],
            vec![
                "run",
                "--pack",
                p,
                "--data",
                d,
                "--out",
                o,
                "--name",
                "again",
                "--previous",
                "auto",
            ],
            vec!["run", "--pack", p, "--data", b, "--out", o, "--name", "bad"],
            vec!["inspect", b],
        ] {
            let (stdout, stderr) = strata(&args, log);
            printed.push((args.join(" "), stdout));
            printed.push((args.join(" ") + " (stderr)", stderr));
        }
        let (_, stderr) = strata(
            &["explain", "--pack", p, "--data", d, "--patient", ids[0]],
            log,
        );
        printed.push(("explain (stderr)".into(), stderr));
    }
    for run in ["human", "again"] {
        for file in ["manifest.json", "report.html"] {
            printed.push((
                format!("{run}/{file}"),
                std::fs::read_to_string(out.join(run).join(file)).unwrap(),
            ));
        }
    }
    assert!(
        printed.iter().any(|(_, t)| t.contains("date_of_birth")),
        "the bad date was reported"
    );
    for (what, text) in &printed {
        for secret in ids
            .iter()
            .chain(&dobs)
            .chain(&lsoas)
            .chain(&["27/02/1941", "QZXPID0009"])
        {
            assert!(!text.contains(secret), "{secret} in {what}:\n{text}");
        }
    }
    // The lists do name the people (they are for the practice).
    let list = std::fs::read_to_string(out.join("human/lists/L83001.csv")).unwrap();
    assert!(list.contains(ids[0]));
}

/// `strata run` of the tiny pack on `data` into `out`, from the repository root.
fn tiny_pack_run(data: &std::path::Path, out: &std::path::Path) -> crate::common::Outcome {
    crate::common::strata_in_repo(&[
        "--log-level",
        "warn",
        "run",
        "--pack",
        "tests/fixtures/tiny-pack",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// `tests/corpus/datasets/*`: every broken dataset exits 2 with its exact
/// message and leaves no run folder; so do the cases made here (too big or
/// binary to keep in the repository).
#[test]
fn the_broken_input_corpus_gives_its_exact_errors() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let run = |data: &std::path::Path, out: &std::path::Path| {
        let o = tiny_pack_run(data, out);
        (Some(o.code).filter(|&c| c >= 0), o.stderr)
    };
    let mut cases: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("tests/corpus/datasets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 14);
    for case in &cases {
        let rel = case.strip_prefix(root).unwrap();
        let out = dir.path().join(rel.file_name().unwrap());
        let (code, stderr) = run(rel, &out);
        let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap();
        assert_eq!(
            (code, stderr.as_str()),
            (Some(2), expected.as_str()),
            "{}",
            rel.display()
        );
        let written = std::fs::read_dir(&out).map_or(0, |d| d.count());
        assert_eq!(written, 0, "{} left something in --out", rel.display());
    }

    // Made here: a 10 MB field (the error is on the next line, and the
    // message does not carry the field), a truncated Parquet file, a
    // dataset path that is a file, an output root that is a file.
    let big = dir.path().join("ten-megabyte-field");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(big.join("dataset.toml"), "extract_date = 2020-03-23\n").unwrap();
    let field = "L".repeat(10_000_000);
    std::fs::write(
        big.join("patients.csv"),
        format!("patient_id,practice_code,date_of_birth\n1,{field},1950-01-01\n2,L1,x\n"),
    )
    .unwrap();
    let (code, stderr) = run(&big, &dir.path().join("o1"));
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "error: patients.csv:3: column date_of_birth: is not a date (expected YYYY-MM-DD; the \
         value is not shown: it is personal data)\n"
    );

    let truncated = dir.path().join("truncated-parquet");
    std::fs::create_dir_all(&truncated).unwrap();
    std::fs::write(
        truncated.join("dataset.toml"),
        "extract_date = 2020-03-23\n",
    )
    .unwrap();
    let bytes = std::fs::read(root.join("sample-data/patients.parquet")).unwrap();
    std::fs::write(
        truncated.join("patients.parquet"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let (code, stderr) = run(&truncated, &dir.path().join("o2"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.starts_with("error: patients.parquet: "), "{stderr}");

    // Parquet of the wrong shape: a zero-byte file, a float patient_id, a
    // date_of_birth stored as text that is not a date, a corrupt page.
    let parquet_case = |name: &str, batch: Option<arrow::record_batch::RecordBatch>| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("dataset.toml"), "extract_date = 2020-03-23\n").unwrap();
        std::fs::write(d.join("events.csv"), "patient_id,code,date\n").unwrap();
        let f = std::fs::File::create(d.join("patients.parquet")).unwrap();
        if let Some(batch) = batch {
            let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        }
        d
    };
    let batch = |id: arrow::array::ArrayRef, dob: arrow::array::ArrayRef| {
        let practice: arrow::array::ArrayRef =
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["L1", "L1"]));
        arrow::record_batch::RecordBatch::try_from_iter([
            ("patient_id", id),
            ("practice_code", practice),
            ("date_of_birth", dob),
        ])
        .unwrap()
    };
    let dates: arrow::array::ArrayRef =
        std::sync::Arc::new(arrow::array::Date32Array::from(vec![-7305, -3653]));
    for (name, batch, expected) in [
        (
            "zero-byte-parquet",
            None,
            "error: patients.parquet: the file is empty (0 bytes); a Parquet file holds at \
             least a header and a footer\n",
        ),
        (
            "float-id-parquet",
            Some(batch(
                std::sync::Arc::new(arrow::array::Float64Array::from(vec![1.0, 2.5])),
                dates.clone(),
            )),
            "error: patients.parquet: column patient_id: expected an integer or text \
             identifier, found Parquet/Arrow type Float64\n",
        ),
        (
            "text-dob-parquet",
            Some(batch(
                std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 2])),
                std::sync::Arc::new(arrow::array::StringArray::from(vec![
                    "1950-01-01",
                    "01/02/1960",
                ])),
            )),
            "error: patients.parquet:row 2: column date_of_birth: is not a date (expected \
             YYYY-MM-DD; the value is not shown: it is personal data)\n",
        ),
    ] {
        let d = parquet_case(name, batch);
        let out = dir.path().join(format!("out-{name}"));
        let (code, stderr) = run(&d, &out);
        assert_eq!((code, stderr.as_str()), (Some(2), expected), "{name}");
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
    }
    // A corrupt page: bytes inside the data pages overwritten, the footer
    // intact. Whatever the damage decodes to, it is an input error naming
    // the file, never a crash or a run.
    let corrupt = dir.path().join("corrupt-page");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("dataset.toml"), "extract_date = 2020-03-23\n").unwrap();
    std::fs::write(corrupt.join("events.csv"), "patient_id,code,date\n").unwrap();
    for (start, end) in [(200, 4000), (20_000, 20_400), (60_000, 61_000)] {
        let mut bytes = std::fs::read(root.join("sample-data/patients.parquet")).unwrap();
        bytes[start..end].fill(0xAB);
        std::fs::write(corrupt.join("patients.parquet"), &bytes).unwrap();
        let out = dir.path().join(format!("out-corrupt-{start}"));
        let (code, stderr) = run(&corrupt, &out);
        assert_eq!(code, Some(2), "bytes {start}..{end}: {stderr}");
        assert!(stderr.starts_with("error: patients.parquet"), "{stderr}");
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
    }

    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let (code, stderr) = run(&file, &dir.path().join("o3"));
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        format!(
            "error: {}: not a dataset folder (it is a file; give the folder that holds the tables)\n",
            file.display()
        )
    );
    let (code, stderr) = run(std::path::Path::new("tests/fixtures/tiny-data"), &file);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        format!(
            "error: {}: --out is a file; give the folder runs are kept in\n",
            file.display()
        )
    );
}

/// Hostile packs are check errors, never a crash: a 10,000-term OR chain
/// (nested one level per operator), 10,000 nested brackets, and garbage
/// bytes. A codelist of one million codes loads and matches.
#[test]
fn hostile_packs_are_errors_and_a_million_code_codelist_works() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, features: &str, codelists: &str| {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.join("codelists")).unwrap();
        std::fs::write(
            p.join("pack.toml"),
            format!(
                "[pack]\nid = \"{name}\"\ntitle = \"t\"\nversion = \"1\"\n\n[population]\nwhen = \"true\"\n\n{codelists}[features]\n{features}\n"
            ),
        )
        .unwrap();
        p
    };
    let codes = |e: strata::pack::PackErrors| -> Vec<&'static str> {
        e.diagnostics.iter().map(|d| d.code.code()).collect()
    };
    let wide = write(
        "wide",
        &format!("x = \"{}\"", vec!["age > 1"; 10_000].join(" OR ")),
        "",
    );
    assert_eq!(codes(strata::pack::load(&wide).unwrap_err()), ["E202"]);
    let nested = write(
        "nested",
        &format!("x = \"{}age{}\"", "(".repeat(10_000), ")".repeat(10_000)),
        "",
    );
    assert_eq!(codes(strata::pack::load(&nested).unwrap_err()), ["E201"]);
    let garbage = dir.path().join("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(
        garbage.join("pack.toml"),
        [0xff, 0xfe, 0x00, 0x9c, b'\n', b'['],
    )
    .unwrap();
    assert_eq!(codes(strata::pack::load(&garbage).unwrap_err()), ["E007"]);
    let binary_sql = write("binary", "x = \"\\u0001\\u0002 ;;; DROP TABLE x; --\"", "");
    assert!(strata::pack::load(&binary_sql).is_err());

    let big = write(
        "million",
        "x = \"has(big)\"",
        "[codelists.big]\nfile = \"codelists/big.csv\"\n\n",
    );
    let mut csv = String::with_capacity(30_000_000);
    csv.push_str("code,term\n");
    for i in 0..1_000_000u64 {
        csv.push_str(&format!("{},code {i}\n", 2_000_000_000 + i));
    }
    std::fs::write(big.join("codelists/big.csv"), csv).unwrap();
    let pack = strata::pack::load(&big).unwrap();
    assert_eq!(pack.codelists[0].codes.len(), 1_000_000);
    assert!(pack.codelists[0].matching_code("2000999999").is_some());
    assert!(pack.codelists[0].matching_code("3000000000").is_none());
}

/// Every crate compiled into strata is under a permissive licence, and
/// docs/LICENSES.md lists each one (name, version, licence).
#[test]
fn every_dependency_is_permissively_licensed_and_listed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let metadata = |offline: bool| {
        let mut args = vec!["metadata", "--format-version", "1", "--locked"];
        args.extend(offline.then_some("--offline"));
        std::process::Command::new(env!("CARGO"))
            .current_dir(root)
            .args(args)
            .output()
            .expect("cargo metadata")
    };
    // The metadata covers every platform's crates: on a machine whose
    // cargo cache holds only what this one builds, they are downloaded.
    let mut out = metadata(true);
    if !out.status.success() {
        out = metadata(false);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes: std::collections::HashMap<&str, &serde_json::Value> = m["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    // strata and its Python bindings (python/): the workspace's members.
    let members: Vec<&str> = m["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(members.len(), 2, "strata and strata-py");
    let mut seen = std::collections::HashSet::new();
    let mut stack = members.clone();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for d in nodes[id]["deps"].as_array().unwrap() {
            let normal_or_build = d["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if normal_or_build {
                stack.push(d["pkg"].as_str().unwrap());
            }
        }
    }
    const ALLOWED: [&str; 10] = [
        "MIT",
        "Apache-2.0",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "Zlib",
        "Unlicense",
        "CC0-1.0",
        "BSL-1.0",
        "Unicode-3.0",
        "LLVM-exception",
    ];
    let listed = std::fs::read_to_string(root.join("docs/LICENSES.md")).unwrap();
    let mut n = 0;
    for p in m["packages"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        if members.contains(&id) || !seen.contains(id) {
            continue;
        }
        n += 1;
        let (name, version) = (p["name"].as_str().unwrap(), p["version"].as_str().unwrap());
        let licence = p["license"].as_str().unwrap_or("");
        // One alternative of the expression must be all permissive.
        let ok = licence
            .split([' ', '/'])
            .collect::<Vec<_>>()
            .join(" ")
            .split(" OR ")
            .any(|alt| {
                alt.split(|c: char| c.is_whitespace() || c == '(' || c == ')')
                    .filter(|t| !t.is_empty() && *t != "AND" && *t != "WITH")
                    .all(|t| ALLOWED.contains(&t))
            });
        assert!(ok, "{name} {version}: licence {licence:?}");
        assert!(
            listed.contains(&format!("| {name} | {version} | {licence} |")),
            "{name} {version} is not in docs/LICENSES.md"
        );
    }
    assert!(n > 100, "{n} crates");
}

/// The same people in any row order, on any number of threads, give
/// byte-identical lists, list.parquet and report: a CSV dataset (with
/// medications, admissions and contacts) is run as written, then with the
/// rows of every table shuffled, at 1, 2 and 8 threads.
#[test]
fn row_order_and_thread_count_never_change_the_outputs() {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cfg = strata::synth::SynthConfig::new(6_000, 2, 5, &data);
    cfg.format = strata::synth::OutputFormat::Csv;
    strata::synth::generate(&cfg).unwrap();
    let shuffled = dir.path().join("shuffled");
    std::fs::create_dir_all(&shuffled).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        if path.extension().is_some_and(|e| e == "csv") {
            let mut lines: Vec<&str> = text.lines().collect();
            lines[1..].shuffle(&mut rng);
            std::fs::write(shuffled.join(name), lines.join("\n") + "\n").unwrap();
        } else {
            std::fs::write(shuffled.join(name), text).unwrap();
        }
    }
    let outputs = |data: &std::path::Path, threads: usize, name: &str| {
        let summary = strata::run(&strata::RunConfig {
            pack: root.join("rules/proactive-care"),
            data: data.to_path_buf(),
            out: dir.path().join("runs"),
            name: Some(name.into()),
            threads: Some(threads),
            ..strata::RunConfig::default()
        })
        .unwrap();
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (
                "list.parquet".into(),
                std::fs::read(summary.dir.join("list.parquet")).unwrap(),
            ),
            (
                "report.html".into(),
                std::fs::read(summary.dir.join("report.html")).unwrap(),
            ),
        ];
        for e in std::fs::read_dir(summary.dir.join("lists")).unwrap() {
            let p = e.unwrap().path();
            files.push((
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            ));
        }
        files.sort();
        files
    };
    let reference = outputs(&data, 1, "written-1");
    assert!(reference.len() >= 5);
    for (d, threads, name) in [
        (&data, 2, "written-2"),
        (&data, 8, "written-8"),
        (&shuffled, 1, "shuffled-1"),
        (&shuffled, 2, "shuffled-2"),
        (&shuffled, 8, "shuffled-8"),
    ] {
        let got = outputs(d, threads, name);
        assert_eq!(got.len(), reference.len(), "{name}");
        for ((fa, a), (fb, b)) in reference.iter().zip(&got) {
            assert_eq!(fa, fb, "{name}");
            assert!(a == b, "{name}: {fa} differs");
        }
    }
}

/// Data that reads but is implausible is counted, not fatal: a birth after
/// the as-of date (year 9999 too), a registered person aged over 120 (and
/// one over 120 who died long ago, who is not a finding), events for a
/// patient_id not in the patients table. The run completes; the manifest,
/// the report and `strata inspect` give the counts.
#[test]
fn implausible_but_readable_data_is_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("dataset.toml"), "extract_date = 2020-03-23\n").unwrap();
    std::fs::write(
        data.join("patients.csv"),
        "patient_id,practice_code,date_of_birth,date_of_death\n\
         1,L1,2021-01-01,\n\
         2,L1,9999-12-31,\n\
         3,L1,1899-03-23,\n\
         4,L1,1899-03-24,\n\
         5,L1,1850-01-01,1950-01-01\n\
         6,L1,1950-01-01,\n",
    )
    .unwrap();
    std::fs::write(
        data.join("events.csv"),
        "patient_id,code,date\n6,X,2019-01-01\n77,X,2019-01-01\n78,X,2019-02-01\n",
    )
    .unwrap();
    let out = dir.path().join("runs");
    let o = tiny_pack_run(&data, &out);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let run = out.join("2020-03-23-tiny");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    // 1899-03-23 is 121 on 2020-03-23; 1899-03-24 is 120.
    assert_eq!(
        manifest["patient_findings"],
        serde_json::json!({"born_after_as_of": 2, "aged_over_120": 1, "lsoa_not_in_vintage": 0})
    );
    assert_eq!(manifest["tables"][0]["findings"]["unknown_patient"], 2);
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    // Small numbers are shown as a range in the report (NHS suppression).
    assert!(report.contains("patients table: 1–7 people born after the as-of date"));
    assert!(report.contains("patients table: 1–7 registered people aged over 120"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["inspect"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("  patients: 2 people born after the as-of date"),
        "{text}"
    );
    assert!(
        text.contains("  patients: 1 registered people aged over 120"),
        "{text}"
    );
    assert!(
        text.contains("events.csv: 2 rows for a patient_id not in patients"),
        "{text}"
    );
}

/// A full disk fails the run with exit 1 and the cause, leaves no partial
/// run folder or temporary folder, and keeps the earlier run whole; the next
/// run, with space again, succeeds. Needs a small tmpfs (root): without one
/// the test says so and passes, unless STRATA_DISK_FULL_TEST=required.
#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        assert!(
            std::env::var("STRATA_DISK_FULL_TEST").as_deref() != Ok("required"),
            "cannot mount a tmpfs for the disk-full test"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = mnt.join("runs");
    let run = |as_of: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .current_dir(root)
            .args([
                "--log-level",
                "warn",
                "run",
                "--pack",
                "rules/proactive-care",
                "--data",
                "sample-data",
                "--as-of",
                as_of,
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap()
    };
    let first = run("2020-03-23");
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let earlier = out.join("2020-03-23-proactive-care");
    let snapshot = |d: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = crate::examples::walk(d)
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(d).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot(&earlier);
    // Fill the disk, leaving a little room: too little for a second run.
    let free = |p: &std::path::Path| {
        let o = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; (free(&mnt) - 64 * 1024) as usize]).unwrap();
    let second = run("2020-03-24");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: writing "), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["2020-03-23-proactive-care"],
        "only the earlier run is left"
    );
    assert_eq!(snapshot(&earlier), before, "the earlier run is unchanged");
    std::fs::remove_file(&filler).unwrap();
    let third = run("2020-03-24");
    assert_eq!(
        third.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert!(out.join("2020-03-24-proactive-care/manifest.json").exists());
}
