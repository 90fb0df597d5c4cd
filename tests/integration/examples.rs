//! Worked examples of rule packs (`rules/<pack>/tests/*.toml`): every
//! shipped pack's examples hold in the engine and the reference evaluator,
//! and `strata test` reports an example that does not, naming what differs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Each failed example as `file / name: failures`.
fn failed(report: &strata::run::ExamplesReport) -> Vec<String> {
    report
        .results
        .iter()
        .filter(|r| !r.failures.is_empty())
        .map(|r| format!("{} / {}: {}", r.file, r.name, r.failures.join("; ")))
        .collect()
}

fn packs() -> Vec<PathBuf> {
    let mut packs: Vec<PathBuf> = std::fs::read_dir(repo().join("rules"))
        .expect("rules/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("pack.toml").is_file())
        .collect();
    packs.sort();
    packs
}

#[test]
fn every_shipped_pack_has_worked_examples_and_they_hold() {
    let packs = packs();
    assert!(!packs.is_empty());
    for pack in packs {
        let report =
            strata::run::test_pack(&pack).unwrap_or_else(|e| panic!("{}: {e}", pack.display()));
        assert!(!report.results.is_empty(), "{}", pack.display());
        let failed: Vec<String> = report
            .results
            .iter()
            .filter(|r| !r.failures.is_empty())
            .map(|r| format!("{} / {}: {}", r.file, r.name, r.failures.join("; ")))
            .collect();
        assert!(
            failed.is_empty(),
            "{}:\n{}",
            pack.display(),
            failed.join("\n")
        );
    }
}

/// The proactive-care pack (and the efi pack it uses, beside it) in a temp
/// dir, with `examples` as its only test file.
fn pack_with_examples(examples: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pack = dir.path().join("proactive-care");
    copy_dir(&repo().join("rules/proactive-care"), &pack);
    copy_dir(&repo().join("rules/efi"), &dir.path().join("efi"));
    std::fs::remove_dir_all(pack.join("tests")).unwrap();
    std::fs::create_dir_all(pack.join("tests")).unwrap();
    std::fs::write(pack.join("tests/examples.toml"), examples).unwrap();
    (dir, pack)
}

/// Copies the folder `from` (recursively) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    for file in walk(from) {
        let target = to.join(file.strip_prefix(from).expect("inside"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&file, &target).expect("copy");
    }
}

fn strata_test(pack: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--log-level", "warn", "test"])
        .arg(pack)
        .env("NO_COLOR", "1")
        .output()
        .expect("the strata binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_wrong_expectation_fails_and_says_what_each_evaluator_gave() {
    let (_dir, pack) = pack_with_examples(
        r#"
as_of = 2020-03-23

[[example]]
name = "lives alone at 86"
patient = { date_of_birth = 1934-01-15, imd_decile = 5 }
events = [["events", "105529008", 2019-06-01]]
expect = { listed = true, tier = "tier-2", score = 5 }

[[example]]
name = "scored as a clinician would"
patient = { date_of_birth = 1934-01-15, imd_decile = 5 }
events = [["events", "105529008", 2019-06-01]]
expect = { score = 6, tier = "tier-3", features = { lives_alone = true, ltc_count = 0 } }
"#,
    );
    let (code, stdout, _) = strata_test(&pack);
    assert_eq!(code, 1, "{stdout}");
    let expected = format!(
        "{}/tests/examples.toml\n\
         \x20 ok      lives alone at 86\n\
         \x20 FAILED  scored as a clinician would\n\
         \x20         tier: expected tier-3, engine tier-2, reference tier-2\n\
         \x20         score: expected 6, engine 5, reference 5\n\
         1 passed, 1 failed\n",
        pack.display()
    );
    assert_eq!(stdout, expected);
}

#[test]
fn a_malformed_example_file_is_an_input_error() {
    let (_dir, pack) = pack_with_examples(
        r#"
as_of = 2020-03-23
[[example]]
name = "no date of birth"
patient = { sex = "F" }
expect = { listed = false }
"#,
    );
    let (code, _, stderr) = strata_test(&pack);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("example \"no date of birth\": patient.date_of_birth is required"),
        "{stderr}"
    );
    let (_dir, pack) = pack_with_examples(
        r#"
as_of = 2020-03-23
[[example]]
name = "unknown feature"
patient = { date_of_birth = 1950-01-01 }
expect = { features = { lives_alon = true } }
"#,
    );
    let (code, _, stderr) = strata_test(&pack);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("expect.features: the pack has no feature \"lives_alon\""),
        "{stderr}"
    );
}

/// Categorised, weighted codelists: the Hospital Frailty Risk Score's
/// worked examples (F00 + W19 = 10.3; F00 + G30 + R29 + N39 = 17.9; F000
/// and F001 count F00 once) in both evaluators.
#[test]
fn weighted_categories_give_the_published_sums() {
    let report = strata::run::test_pack(&repo().join("tests/packs/weighted")).expect("runs");
    assert_eq!(report.results.len(), 6);
    let failed = failed(&report);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// `[uses]`: another pack's features and codelists read as `base.<name>`
/// (latest_of keeps the used pack's codelist names; its declared column is
/// read; its own rules add nothing), in both evaluators.
#[test]
fn a_used_pack_s_features_give_the_same_values_in_both_evaluators() {
    let report = strata::run::test_pack(&repo().join("tests/packs/uses/top")).expect("runs");
    assert_eq!(report.results.len(), 5);
    let failed = failed(&report);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The using pack's hash covers the used pack: editing only the used
/// pack changes it, and the used pack is listed with its own hash.
#[test]
fn editing_a_used_pack_changes_the_using_pack_s_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = |from: &str, to: &Path| copy_dir(&repo().join(from), to);
    copy("tests/packs/uses/base", &dir.path().join("base"));
    copy("tests/packs/uses/top", &dir.path().join("top"));
    let load = || strata::pack::load(&dir.path().join("top")).expect("loads");
    let before = load();
    assert_eq!(before.uses.len(), 1);
    assert_eq!(before.uses[0].alias, "base");
    assert_eq!(before.uses[0].id, "uses-base");
    let base_before = strata::pack::load(&dir.path().join("base")).expect("base");
    assert_eq!(before.uses[0].content_hash, base_before.content_hash);

    let carer = dir.path().join("base/codelists/carer.csv");
    let mut text = std::fs::read_to_string(&carer).expect("read");
    text.push_str("408405000,Carer of a person with a chronic illness\n");
    std::fs::write(&carer, text).expect("write");
    let after = load();
    assert_ne!(after.content_hash, before.content_hash);
    assert_ne!(after.uses[0].content_hash, before.uses[0].content_hash);
}

pub(crate) fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
