//! `strata run` end to end on small fixtures: exact lists, thread
//! invariance, atomic runs, private files, and logs free of patient ids.

use std::path::Path;
use std::process::Command;

use crate::common::fixture;

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn strata(args: &[&str], envs: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(args).env("NO_COLOR", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the strata binary runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run_tiny(out: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Outcome {
    let pack = fixture("tiny-pack");
    let data = fixture("tiny-data");
    let mut args = vec![
        "run",
        "--pack",
        pack.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    strata(&args, envs)
}

const L83001: &str = "rank,patient_id,practice_code,pcn_code,tier,tier_label,score,age,sex,imd_decile,diabetes,lives_alone,reasons\n\
1,1,L83001,,t2,High,3.42,80,F,2,yes,yes,Aged 70 or over; Diabetes; Lives alone (BMI 31.5)\n\
2,3,L83001,,t3,Moderate,0.08,40,F,,no,yes,Lives alone (BMI unknown)\n";

const L83002: &str = "rank,patient_id,practice_code,pcn_code,tier,tier_label,score,age,sex,imd_decile,diabetes,lives_alone,reasons\n\
1,4,L83002,,t2,High,2,90,M,1,no,no,Shielding; Aged 70 or over\n";

#[test]
fn tiny_run_gives_the_expected_lists() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_tiny(dir.path(), &[], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run = dir.path().join("2020-03-23-tiny");
    assert_eq!(out.stdout.trim(), run.display().to_string());
    // Person 2 (contacted 8 days ago) is excluded; person 5 is a child.
    assert_eq!(
        std::fs::read_to_string(run.join("lists/L83001.csv")).unwrap(),
        L83001
    );
    assert_eq!(
        std::fs::read_to_string(run.join("lists/L83002.csv")).unwrap(),
        L83002
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["people"]["in_population"], 4);
    assert_eq!(manifest["people"]["listed"], 3);
    assert_eq!(manifest["people"]["excluded"]["recent_contact"], 1);
    assert_eq!(manifest["people"]["forced_in"], 1);
    assert_eq!(manifest["tiers_by_practice"]["L83001"]["t2"], 1);
    assert_eq!(manifest["inputs"].as_array().unwrap().len(), 4);
}

/// The manifest's size and BLAKE3 hash of every input are those of the
/// file's bytes, whether the file was hashed on its own or as it was read
/// (the CSV tables here are read whole).
#[test]
fn the_manifest_hashes_every_input_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_tiny(dir.path(), &[], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("2020-03-23-tiny/manifest.json")).unwrap(),
    )
    .unwrap();
    let mut names = Vec::new();
    for input in manifest["inputs"].as_array().unwrap() {
        let path = Path::new(input["file"].as_str().unwrap());
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(input["bytes"], bytes.len() as u64, "{}", path.display());
        assert_eq!(
            input["blake3"],
            blake3::hash(&bytes).to_hex().as_str(),
            "{}",
            path.display()
        );
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort_unstable();
    assert_eq!(
        names,
        ["contacts.csv", "dataset.toml", "events.csv", "patients.csv"]
    );
}

/// Every stage's time is in the manifest whatever the log level: a stage
/// timed inside a disabled log line was once missing at `warn`.
#[test]
fn the_manifest_times_every_stage_at_every_log_level() {
    let stages = [
        "pack",
        "read_patients",
        "execute",
        "rank",
        "leavers",
        "write_lists",
        "write_other_lists",
        "hash_inputs",
        "report",
        "total",
    ];
    for level in ["error", "warn", "info", "debug"] {
        let dir = tempfile::tempdir().unwrap();
        let out = run_tiny(dir.path(), &["--log-level", level], &[]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("2020-03-23-tiny/manifest.json")).unwrap(),
        )
        .unwrap();
        let timed: Vec<&str> = manifest["timings_ms"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = stages.to_vec();
        expected.sort_unstable();
        assert_eq!(timed, expected, "at --log-level {level}");
    }
}

#[test]
fn previous_run_marks_new_people_and_tier_changes() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run_tiny(
            dir.path(),
            &["--name", "first", "--as-of", "2018-01-01"],
            &[]
        )
        .code,
        0
    );
    let first = dir.path().join("first");
    let out = run_tiny(
        dir.path(),
        &["--name", "second", "--previous", first.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // In 2018 person 3 had no "lives alone" code yet, so was not listed.
    let csv = std::fs::read_to_string(dir.path().join("second/lists/L83001.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].ends_with(",reasons,new_since_previous,tier_change"),
        "{csv}"
    );
    assert!(
        lines[1].starts_with("1,1,") && lines[1].ends_with(",no,same"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("2,3,") && lines[2].ends_with(",yes,new"),
        "{csv}"
    );
}

fn tree_bytes(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for name in ["list.parquet", "lists/L83001.csv", "lists/L83002.csv"] {
        out.push((name.to_string(), std::fs::read(root.join(name)).unwrap()));
    }
    out
}

#[test]
fn thread_count_does_not_change_a_byte() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run_tiny(dir.path(), &["--name", "one", "--threads", "1"], &[]).code,
        0
    );
    assert_eq!(
        run_tiny(dir.path(), &["--name", "four", "--threads", "4"], &[]).code,
        0
    );
    assert_eq!(
        tree_bytes(&dir.path().join("one")),
        tree_bytes(&dir.path().join("four"))
    );
}

#[test]
fn a_failed_run_leaves_no_folder_and_keeps_the_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let fail = [("STRATA_TEST_FAIL_AFTER_LISTS", "1")];
    let out = run_tiny(dir.path(), &["--name", "nightly"], &fail);
    assert_eq!(out.code, 1);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left behind"
    );

    assert_eq!(run_tiny(dir.path(), &["--name", "nightly"], &[]).code, 0);
    let before = tree_bytes(&dir.path().join("nightly"));
    let manifest_before = std::fs::read(dir.path().join("nightly/manifest.json")).unwrap();
    let out = run_tiny(
        dir.path(),
        &["--name", "nightly", "--as-of", "2020-03-01"],
        &fail,
    );
    assert_eq!(out.code, 1);
    assert_eq!(tree_bytes(&dir.path().join("nightly")), before);
    assert_eq!(
        std::fs::read(dir.path().join("nightly/manifest.json")).unwrap(),
        manifest_before
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["nightly".to_string()]);
}

#[cfg(unix)]
#[test]
fn run_files_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run_tiny(dir.path(), &["--name", "r"], &[]).code, 0);
    let run = dir.path().join("r");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&run), 0o700);
    assert_eq!(mode(&run.join("lists")), 0o700);
    for f in [
        "list.parquet",
        "manifest.json",
        "lists/L83001.csv",
        "lists/L83002.csv",
    ] {
        assert_eq!(mode(&run.join(f)), 0o600, "{f}");
    }
}

#[test]
fn logs_never_contain_patient_ids() {
    // Fixture ids are 1..5: give them a shape that cannot occur by chance.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for name in ["patients.csv", "events.csv", "contacts.csv", "dataset.toml"] {
        let text = std::fs::read_to_string(fixture("tiny-data").join(name)).unwrap();
        let text = text
            .lines()
            .map(|l| match l.split_once(',') {
                Some((id, rest)) if id.chars().all(|c| c.is_ascii_digit()) => {
                    format!("PID-{id}-X,{rest}")
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(data.join(name), text + "\n").unwrap();
    }
    let pack = fixture("tiny-pack");
    for format in ["human", "json"] {
        let out = strata(
            &[
                "run",
                "--pack",
                pack.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--out",
                dir.path().join("runs").to_str().unwrap(),
                "--name",
                format,
                "--log-format",
                format,
                "--log-level",
                "trace",
            ],
            &[],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(!out.stderr.is_empty());
        assert!(!out.stderr.contains("PID-"), "{}", out.stderr);
        assert!(!out.stdout.contains("PID-"));
        let listed = std::fs::read_to_string(
            dir.path()
                .join("runs")
                .join(format)
                .join("lists/L83001.csv"),
        )
        .unwrap();
        assert!(listed.contains("PID-1-X"));
    }
}

#[test]
fn a_pack_table_missing_from_the_dataset_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(fixture("tiny-data/patients.csv"), data.join("patients.csv")).unwrap();
    std::fs::copy(fixture("tiny-data/dataset.toml"), data.join("dataset.toml")).unwrap();
    let pack = fixture("tiny-pack");
    let out = strata(
        &[
            "run",
            "--pack",
            pack.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains(
        "error: the pack's codelist `dm` reads table `events`, but the dataset has no events.parquet or events.csv"
    ), "{}", out.stderr);
}

#[test]
fn sample_data_golden_list() {
    // The README's main command, on the bundled sample with the bundled pack.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = strata(
        &[
            "run",
            "--pack",
            root.join("rules/proactive-care").to_str().unwrap(),
            "--data",
            root.join("sample-data").to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run = dir.path().join("2020-03-23-proactive-care");
    let actual = std::fs::read_to_string(run.join("lists/L82106.csv")).unwrap();
    let golden =
        std::fs::read_to_string(root.join("tests/golden/sample-data-proactive-care-L82106.csv"))
            .unwrap();
    assert_eq!(actual.lines().count(), golden.lines().count());
    for (n, (a, g)) in actual.lines().zip(golden.lines()).enumerate() {
        assert_eq!(a, g, "line {} of lists/L82106.csv", n + 1);
    }
    let mut practices: Vec<String> = std::fs::read_dir(run.join("lists"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    practices.sort();
    assert_eq!(
        practices,
        [
            "L82106-recently-contacted.csv",
            "L82106.csv",
            "L82124-recently-contacted.csv",
            "L82124.csv",
            "L82205-recently-contacted.csv",
            "L82205.csv",
            "pcn-U82904.csv"
        ]
    );
}

/// Rows of the sample list derived by hand from the pack (see
/// tests/golden/README.md for each derivation), so a regenerated golden
/// file cannot silently change them.
const HAND_DERIVED: [(usize, &str); 4] = [
    (7, "7,1730227490427,L82106,U82904,palliative,Palliative care register: through the palliative care team,7,98,M,4,0,yes,no,yes,11,0,no,4,Lives alone; Moderate or severe frailty; Aged 80 or over"),
    (52, "52,1445648446612,L82106,U82904,tier-1,Tier 1: call this week,10,87,M,5,3,yes,no,yes,12,0,no,5,On the shielded patient list (clinically extremely vulnerable); Lives alone; 3 long-term conditions; Moderate or severe frailty; Aged 80 or over"),
    (59, "59,1376188977523,L82106,U82904,tier-1,Tier 1: call this week,10,85,M,4,4,yes,no,yes,9,0,no,4,Lives alone; 4 long-term conditions; Moderate or severe frailty by the eFI (9 of 36 deficits); Aged 80 or over"),
    (1199, "1199,1109088369086,L82106,U82904,tier-3,Tier 3: call when capacity allows,3,18,F,4,0,yes,no,no,1,0,no,4,Lives alone"),
];

#[test]
fn sample_data_hand_derived_rows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let summary = strata::run(&strata::RunConfig {
        pack: root.join("rules/proactive-care"),
        data: root.join("sample-data"),
        out: dir.path().to_path_buf(),
        ..strata::RunConfig::default()
    })
    .unwrap();
    let list = std::fs::read_to_string(summary.dir.join("lists/L82106.csv")).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 1200);
    for (rank, row) in HAND_DERIVED {
        assert_eq!(lines[rank], row, "rank {rank}");
    }
    // The manifest names the pack the list read features from, with its hash.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary.dir.join("manifest.json")).unwrap()).unwrap();
    let efi = strata::pack::load(&root.join("rules/efi")).unwrap();
    assert_eq!(
        manifest["pack"]["uses"],
        serde_json::json!([{
            "alias": "efi",
            "id": "efi",
            "version": "1.0.0",
            "content_hash": efi.content_hash,
        }])
    );
}

#[test]
fn thread_count_does_not_change_a_byte_on_a_larger_population() {
    // 150,000 people: several Parquet row groups decoded in parallel,
    // several person shards and several evaluation chunks.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = strata::synth::SynthConfig::new(150_000, 7, 11, &data);
    let summary = strata::synth::generate(&cfg).unwrap();
    assert!(
        summary.events > 3 * (1 << 20),
        "want several row groups, got {} events",
        summary.events
    );
    for (name, threads) in [("one", "1"), ("four", "4")] {
        let out = strata(
            &[
                "run",
                "--pack",
                root.join("rules/proactive-care").to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--out",
                dir.path().to_str().unwrap(),
                "--name",
                name,
                "--threads",
                threads,
            ],
            &[],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let mut files = vec!["list.parquet".to_string(), "report.html".to_string()];
    for entry in std::fs::read_dir(dir.path().join("one/lists")).unwrap() {
        files.push(format!(
            "lists/{}",
            entry.unwrap().file_name().to_string_lossy()
        ));
    }
    // 7 practice lists in 2 PCNs, 7 recently-contacted files,
    // list.parquet and report.html.
    assert_eq!(files.len(), 18);
    for file in files {
        let a = std::fs::read(dir.path().join("one").join(&file)).unwrap();
        let b = std::fs::read(dir.path().join("four").join(&file)).unwrap();
        assert!(a == b, "{file} differs between 1 and 4 threads");
    }
}
