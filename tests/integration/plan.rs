//! The physical plan, printed and compared as text: the bundled and test
//! packs as planned for 2020-03-23 (files under `tests/plans/`, rewritten
//! with `STRATA_BLESS=1`), and the coercion rules one expression at a time.

use std::path::Path;

use chrono::NaiveDate;
use strata::pack;
use strata::plan::PhysicalPlan;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 3, 23).expect("date")
}

fn planned(dir: &Path) -> String {
    let pack = match pack::load(dir) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    match PhysicalPlan::compile(&pack, as_of()) {
        Ok(p) => p.to_string(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn planned_packs_match_their_text() {
    for (pack, expected) in [
        ("rules/proactive-care", "tests/plans/proactive-care.txt"),
        (
            "rules/covid-shielding-2020",
            "tests/plans/covid-shielding-2020.txt",
        ),
        ("tests/fixtures/tiny-pack", "tests/plans/tiny.txt"),
        ("tests/packs/decision", "tests/plans/decision.txt"),
        ("tests/packs/weighted", "tests/plans/weighted.txt"),
        ("rules/hfrs", "tests/plans/hfrs.txt"),
        ("rules/charlson", "tests/plans/charlson.txt"),
        ("tests/packs/uses/top", "tests/plans/uses.txt"),
        ("rules/efi", "tests/plans/efi.txt"),
        (
            "rules/cambridge-multimorbidity",
            "tests/plans/cambridge-multimorbidity.txt",
        ),
    ] {
        let actual = planned(Path::new(pack));
        let path = Path::new(expected);
        if std::env::var_os("STRATA_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(path, &actual).expect("write plan");
            continue;
        }
        let want = std::fs::read_to_string(path)
            .unwrap_or_else(|_| panic!("missing {expected} (run with STRATA_BLESS=1)"));
        assert_eq!(actual, want, "the plan of {pack} differs from {expected}");
    }
}

/// The planned form of feature `x` in a pack with a float column `weight`,
/// an int column `visits` and a codelist `dm`. Column #0 is the date of
/// birth and #1 `registration_end` (read by the population); the feature's
/// columns follow in order of first use.
fn lowered(feature: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("codelists")).expect("mkdir");
    std::fs::write(dir.path().join("codelists/dm.csv"), "code\n44054006\n").expect("csv");
    let toml = format!(
        "[pack]\nid = \"p\"\ntitle = \"t\"\nversion = \"1\"\n\n\
         [population]\nwhen = \"registered\"\n\n\
         [columns]\nweight = \"float\"\nvisits = \"int\"\n\n\
         [codelists.dm]\nfile = \"codelists/dm.csv\"\n\n\
         [features]\nx = '''{feature}'''\n"
    );
    std::fs::write(dir.path().join("pack.toml"), toml).expect("pack");
    let plan = planned(dir.path());
    plan.lines()
        .find_map(|l| l.strip_prefix("f0 x "))
        .map(|l| l.split_once(":= ").map_or(l, |(_, e)| e).to_string())
        .unwrap_or_else(|| panic!("no feature line in\n{plan}"))
}

#[test]
fn comparisons_cast_to_the_common_type() {
    assert_eq!(lowered("visits > 7.5"), "(CAST(#2:visits AS float) > 7.5)");
    // Literals are converted at plan time, not per row.
    assert_eq!(lowered("weight > 70"), "(#2:weight > 70.0)");
    assert_eq!(
        lowered("weight = visits"),
        "(#2:weight = CAST(#3:visits AS float))"
    );
    assert_eq!(lowered("visits = 3"), "(#2:visits = 3)");
}

#[test]
fn arithmetic_casts_to_its_result_type() {
    assert_eq!(lowered("visits + 1"), "(#2:visits + 1)");
    assert_eq!(lowered("visits / 2"), "(CAST(#2:visits AS float) / 2.0)");
    assert_eq!(
        lowered("weight * visits"),
        "(#2:weight * CAST(#3:visits AS float))"
    );
}

#[test]
fn between_becomes_two_comparisons() {
    assert_eq!(
        lowered("age BETWEEN 65 AND 74"),
        "((age(#0) >= 65) AND (age(#0) <= 74))"
    );
    assert_eq!(
        lowered("weight NOT BETWEEN 50 AND 60.5"),
        "NOT ((#2:weight >= 50.0) AND (#2:weight <= 60.5))"
    );
}

#[test]
fn literal_in_lists_become_sets_built_once() {
    assert_eq!(lowered("sex IN ('M', 'F', 'M')"), "(#2:sex IN {'F', 'M'})");
    assert_eq!(
        lowered("visits NOT IN (1, 2.5, NULL)"),
        "(CAST(#2:visits AS float) NOT IN {1.0, 2.5} +NULL)"
    );
    // A column in the list: a chain of comparisons instead.
    assert_eq!(
        lowered("visits IN (age, 2)"),
        "((#2:visits = age(#0)) OR (#2:visits = 2))"
    );
}

#[test]
fn builtins_and_aggregates_are_resolved() {
    assert_eq!(lowered("has(dm, '12 months')"), "has(acc0)");
    assert_eq!(
        lowered("alive"),
        "((#2:date_of_death IS NULL) OR (#2:date_of_death > DATE '2020-03-23'))"
    );
    assert_eq!(
        lowered("CASE visits WHEN 1 THEN 'one' ELSE 'more' END"),
        "CASE WHEN (#2:visits = 1) THEN 'one' ELSE 'more' END"
    );
    assert_eq!(
        lowered("coalesce(weight, visits)"),
        "coalesce(#2:weight, CAST(#3:visits AS float))"
    );
}
