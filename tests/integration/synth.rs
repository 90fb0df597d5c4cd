//! `strata synth`: determinism, realism and the input contract of the
//! generated datasets.
//!
//! One 100,000-person population is generated once and shared by the
//! statistical tests; the byte-level tests use small populations.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type};
use chrono::{Datelike, NaiveDate};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use strata::synth::conditions::CONDITIONS;
use strata::synth::person::{date_to_days, days_to_date, lives_alone_rate};
use strata::synth::{generate, OutputFormat, SynthConfig, SynthError};

const EXTRACT: &str = "2020-03-23";

fn extract_days() -> i32 {
    date_to_days(NaiveDate::from_ymd_opt(2020, 3, 23).unwrap())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_batches(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .with_batch_size(65_536)
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

struct Patient {
    practice: String,
    pcn: String,
    birth: i32,
    sex: String,
    lsoa: String,
    decile: i32,
    end: Option<i32>,
    death: Option<i32>,
}

struct Event {
    patient: i64,
    code: String,
    date: i32,
    value: Option<f64>,
}

struct Population {
    patients: Vec<(i64, Patient)>,
    events: Vec<Event>,
    admissions: Vec<Event>,
    medications: Vec<Event>,
    contacts: Vec<(i64, i32, String)>,
}

fn read_events(path: &Path) -> Vec<Event> {
    let mut out = Vec::new();
    for b in read_batches(path) {
        let id = b.column(0).as_primitive::<Int64Type>();
        let code = b.column(1).as_string::<i32>();
        let date = b.column(2).as_primitive::<Date32Type>();
        let value = b.column(3).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push(Event {
                patient: id.value(i),
                code: code.value(i).to_string(),
                date: date.value(i),
                value: value.is_valid(i).then(|| value.value(i)),
            });
        }
    }
    out
}

fn read_population(dir: &Path) -> Population {
    let mut patients = Vec::new();
    for b in read_batches(&dir.join("patients.parquet")) {
        let id = b.column(0).as_primitive::<Int64Type>();
        let s = |c: usize| b.column(c).as_string::<i32>().clone();
        let (practice, pcn, sex, lsoa) = (s(1), s(2), s(4), s(5));
        let birth = b.column(3).as_primitive::<Date32Type>();
        let decile = b.column(6).as_primitive::<Int32Type>();
        let end = b.column(7).as_primitive::<Date32Type>();
        let death = b.column(8).as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            patients.push((
                id.value(i),
                Patient {
                    practice: practice.value(i).to_string(),
                    pcn: pcn.value(i).to_string(),
                    birth: birth.value(i),
                    sex: sex.value(i).to_string(),
                    lsoa: lsoa.value(i).to_string(),
                    decile: decile.value(i),
                    end: end.is_valid(i).then(|| end.value(i)),
                    death: death.is_valid(i).then(|| death.value(i)),
                },
            ));
        }
    }
    let mut contacts = Vec::new();
    for b in read_batches(&dir.join("contacts.parquet")) {
        let id = b.column(0).as_primitive::<Int64Type>();
        let date = b.column(1).as_primitive::<Date32Type>();
        let outcome = b.column(2).as_string::<i32>();
        for i in 0..b.num_rows() {
            contacts.push((id.value(i), date.value(i), outcome.value(i).to_string()));
        }
    }
    Population {
        patients,
        events: read_events(&dir.join("events.parquet")),
        admissions: read_events(&dir.join("admissions.parquet")),
        medications: read_events(&dir.join("medications.parquet")),
        contacts,
    }
}

/// The shared 100,000-person population (10 practices, seed 42).
fn population() -> &'static Population {
    static POPULATION: OnceLock<Population> = OnceLock::new();
    POPULATION.get_or_init(|| {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path().join("pop");
        let summary = generate(&SynthConfig::new(100_000, 10, 42, &out)).unwrap();
        assert_eq!(summary.patients, 100_000);
        let population = read_population(&out);
        assert_eq!(population.events.len() as u64, summary.events);
        assert_eq!(population.admissions.len() as u64, summary.admissions);
        assert_eq!(population.contacts.len() as u64, summary.contacts);
        assert_eq!(population.medications.len() as u64, summary.medications);
        population
    })
}

fn codelist(relative: &str) -> HashSet<String> {
    let text = std::fs::read_to_string(repo().join("reference/codelists").join(relative)).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .records()
        .map(|r| r.unwrap()[0].trim().to_string())
        .collect()
}

fn all_snomed_lists() -> HashMap<String, HashSet<String>> {
    let mut lists = HashMap::new();
    for folder in ["qof", "primis", "frailty", "strata", "efi"] {
        for entry in std::fs::read_dir(repo().join("reference/codelists").join(folder)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".csv") && name != "admissions_icd10.csv" {
                let key = format!("{folder}/{}", name.trim_end_matches(".csv"));
                lists.insert(key, codelist(&format!("{folder}/{name}")));
            }
        }
    }
    lists
}

fn age_at(birth: i32, day: i32) -> i32 {
    let (b, d) = (days_to_date(birth).unwrap(), days_to_date(day).unwrap());
    let mut age = d.year() - b.year();
    if (d.month(), d.day()) < (b.month(), b.day()) {
        age -= 1;
    }
    age
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_different_data() {
    let scratch = tempfile::tempdir().unwrap();
    let run = |seed: u64, name: &str| {
        let out = scratch.path().join(name);
        generate(&SynthConfig::new(20_000, 3, seed, &out)).unwrap();
        files(&out)
    };
    let a = run(7, "a");
    let b = run(7, "b");
    let names: Vec<&str> = a.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "admissions.parquet",
            "contacts.parquet",
            "dataset.toml",
            "events.parquet",
            "medications.parquet",
            "patients.parquet"
        ]
    );
    assert!(a == b, "same seed, different bytes");
    let c = run(8, "c");
    for (x, y) in a.iter().zip(&c) {
        if x.0 != "dataset.toml" {
            assert_ne!(x.1, y.1, "{} did not change with the seed", x.0);
        }
    }
}

#[test]
fn csv_output_is_deterministic_and_matches_the_contract_header() {
    let scratch = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out = scratch.path().join(name);
        let mut cfg = SynthConfig::new(3_000, 2, 11, &out);
        cfg.format = OutputFormat::Csv;
        generate(&cfg).unwrap();
        files(&out)
    };
    let a = run("a");
    assert!(a == run("b"));
    let text =
        |name: &str| String::from_utf8(a.iter().find(|f| f.0 == name).unwrap().1.clone()).unwrap();
    let patients = text("patients.csv");
    assert_eq!(
        patients.lines().next(),
        Some("patient_id,practice_code,pcn_code,date_of_birth,sex,lsoa_code,imd_decile,registration_end,date_of_death")
    );
    assert_eq!(patients.lines().count(), 3_001);
    assert_eq!(
        text("events.csv").lines().next(),
        Some("patient_id,code,date,value")
    );
    assert_eq!(
        text("contacts.csv").lines().next(),
        Some("patient_id,date,outcome")
    );
    assert!(text("dataset.toml").contains("--format csv"));
}

#[test]
fn dataset_toml_records_extract_date_and_command() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("d");
    generate(&SynthConfig::new(500, 1, 2020, &out)).unwrap();
    let text = std::fs::read_to_string(out.join("dataset.toml")).unwrap();
    assert_eq!(
        text,
        format!(
            "# Synthetic population: no real person's data.\nextract_date = {EXTRACT}\nsource = \"strata synth --patients 500 --practices 1 --seed 2020 --extract-date {EXTRACT}\"\n\
             # The LSOA codes are 2011 LSOAs; imd_decile is IMD 2019.\nlsoa_vintage = 2011\nimd = \"2019\"\n"
        )
    );
    let dataset = strata::dataset::Dataset::open(&out).unwrap();
    assert_eq!(
        dataset.meta.extract_date,
        NaiveDate::from_ymd_opt(2020, 3, 23)
    );
    let tables: Vec<&str> = dataset
        .event_tables
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(tables, ["admissions", "events", "medications"]);
    assert!(dataset.contacts.is_some());
}

#[test]
fn refuses_a_non_empty_output_folder_and_leaves_nothing_on_failure() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("taken");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "x").unwrap();
    let err = generate(&SynthConfig::new(100, 1, 1, &out)).unwrap_err();
    assert!(matches!(err, SynthError::OutputExists { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: already exists and is not an empty folder; choose a new --out or remove it first",
            out.display()
        )
    );
    assert_eq!(std::fs::read_to_string(out.join("keep.txt")).unwrap(), "x");

    // An empty folder is filled.
    let empty = scratch.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    generate(&SynthConfig::new(100, 1, 1, &empty)).unwrap();
    assert!(empty.join("patients.parquet").is_file());

    // Bad settings fail before anything is written.
    let nothing = scratch.path().join("nothing");
    let err = generate(&SynthConfig::new(2, 3, 1, &nothing)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid synth settings: --patients must be between the number of practices (3) and 1000000000 (got 2)"
    );
    let err = generate(&SynthConfig::new(10, 0, 1, &nothing)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid synth settings: --practices must be between 1 and 999 (got 0)"
    );
    let leftovers: Vec<String> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "taken" && n != "empty")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn patients_follow_the_input_contract() {
    let pop = population();
    let ids: HashSet<i64> = pop.patients.iter().map(|p| p.0).collect();
    assert_eq!(ids.len(), 100_000, "patient ids must be unique");
    let practices: HashSet<&str> = pop.patients.iter().map(|p| p.1.practice.as_str()).collect();
    assert_eq!(practices.len(), 10);
    let mut pcn_sizes: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (_, p) in &pop.patients {
        let code = p.practice.as_bytes();
        assert!(
            ["L82", "L83", "L85"].contains(&&p.practice[..3]),
            "{}",
            p.practice
        );
        assert!(code.len() == 6 && code[1..].iter().all(u8::is_ascii_digit));
        assert!(p.pcn.len() == 6 && p.pcn.starts_with('U'));
        pcn_sizes.entry(&p.pcn).or_default().insert(&p.practice);
        assert_eq!(
            days_to_date(p.birth).unwrap().day(),
            1,
            "births are first of the month"
        );
        assert!(p.sex == "F" || p.sex == "M");
        assert_eq!(
            strata::reference::imd_decile(&p.lsoa).map(i32::from),
            Some(p.decile)
        );
        assert!(p.end.is_none() || p.death.is_none());
        assert!(p.birth <= p.end.or(p.death).unwrap_or(extract_days()));
    }
    assert!(
        pcn_sizes.values().all(|s| (2..=4).contains(&s.len())),
        "{pcn_sizes:?}"
    );
    let dead = pop.patients.iter().filter(|p| p.1.death.is_some()).count();
    let left = pop.patients.iter().filter(|p| p.1.end.is_some()).count();
    assert!((3_000..=4_000).contains(&dead), "{dead}");
    assert!((4_500..=5_500).contains(&left), "{left}");
    // Catchments are real LSOAs of Cornwall, Devon and Somerset.
    let south_west = [
        "E06000052",
        "E06000026",
        "E06000027",
        "E07000040",
        "E07000041",
        "E07000042",
        "E07000043",
        "E07000044",
        "E07000045",
        "E07000046",
        "E07000047",
        "E07000187",
        "E07000188",
        "E07000189",
        "E07000246",
    ];
    let lad: HashMap<&str, &str> = strata::reference::imd2019()
        .iter()
        .map(|r| (r.lsoa11_code.as_str(), r.lad19_code.as_str()))
        .collect();
    assert!(pop
        .patients
        .iter()
        .all(|p| south_west.contains(&lad[p.1.lsoa.as_str()])));
}

#[test]
fn every_event_lies_within_the_persons_record_and_is_grouped_by_patient() {
    let pop = population();
    let people: HashMap<i64, &Patient> = pop.patients.iter().map(|(id, p)| (*id, p)).collect();
    let extract = extract_days();
    for table in [&pop.events, &pop.admissions, &pop.medications] {
        let mut seen: HashSet<i64> = HashSet::new();
        let mut previous: Option<(i64, i32)> = None;
        for e in table {
            let p = people[&e.patient];
            let last = p.death.or(p.end).unwrap_or(extract).min(extract);
            assert!(
                e.date >= p.birth && e.date <= last,
                "{} {} outside {}..{}",
                e.patient,
                e.date,
                p.birth,
                last
            );
            match previous {
                Some((id, date)) if id == e.patient => assert!(date <= e.date),
                _ => assert!(seen.insert(e.patient), "patient {} not grouped", e.patient),
            }
            previous = Some((e.patient, e.date));
        }
    }
    for (id, date, outcome) in &pop.contacts {
        let p = people[id];
        let last = p.death.or(p.end).unwrap_or(extract);
        assert!(*date <= last && *date > extract - 121);
        assert!(["spoke", "no answer", "declined"].contains(&outcome.as_str()));
    }
    let recent = pop.contacts.iter().filter(|c| c.1 > extract - 14).count();
    assert!(recent > 0 && recent < pop.contacts.len());
}

#[test]
fn every_code_is_in_a_known_codelist_or_the_background_set() {
    let pop = population();
    let lists = all_snomed_lists();
    let known: HashSet<&str> = lists.values().flatten().map(String::as_str).collect();
    let unknown: HashSet<&str> = pop
        .events
        .iter()
        .map(|e| e.code.as_str())
        .filter(|c| !known.contains(c))
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    let icd10 = codelist("strata/admissions_icd10.csv");
    let unknown: HashSet<&str> = pop
        .admissions
        .iter()
        .map(|e| e.code.as_str())
        .filter(|c| !icd10.contains(*c))
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    let dmd = codelist("dmd/medicines.csv");
    let unknown: HashSet<&str> = pop
        .medications
        .iter()
        .map(|e| e.code.as_str())
        .filter(|c| !dmd.contains(*c))
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    // The background set really is background: in no published list.
    for code in &lists["strata/background"] {
        let owners: Vec<&String> = lists
            .iter()
            .filter(|(name, codes)| !name.starts_with("strata/") && codes.contains(code))
            .map(|(name, _)| name)
            .collect();
        assert!(owners.is_empty(), "{code} is in {owners:?}");
    }
    // Each condition's codes come from its own list.
    for condition in &CONDITIONS {
        for (code, _) in condition.codes {
            assert!(
                lists[condition.codelist].contains(*code),
                "{code} not in {}",
                condition.codelist
            );
        }
    }
    // Values ride on measurements only.
    let valued: HashSet<&str> = pop
        .events
        .iter()
        .filter(|e| e.value.is_some())
        .map(|e| e.code.as_str())
        .collect();
    assert!(
        valued
            .iter()
            .all(|c| lists["strata/background"].contains(*c)),
        "{valued:?}"
    );
    assert!(valued.contains("60621009") && valued.contains("1020291000000106"));
}

#[test]
fn condition_prevalence_matches_qof_targets() {
    let pop = population();
    let extract = extract_days();
    let registered: HashMap<i64, i32> = pop
        .patients
        .iter()
        .filter(|p| p.1.end.is_none() && p.1.death.is_none())
        .map(|(id, p)| (*id, age_at(p.birth, extract)))
        .collect();
    let lists = all_snomed_lists();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for condition in &CONDITIONS {
        let codes = &lists[condition.codelist];
        let on_register: HashSet<i64> = pop
            .events
            .iter()
            .filter(|e| codes.contains(&e.code))
            .map(|e| e.patient)
            .collect();
        let denominator: Vec<i64> = registered
            .iter()
            .filter(|(_, age)| **age >= condition.min_age as i32)
            .map(|(id, _)| *id)
            .collect();
        let n = denominator.len() as f64;
        let cases = denominator
            .iter()
            .filter(|id| on_register.contains(id))
            .count() as f64;
        let observed = cases / n;
        let target = condition.target_percent / 100.0;
        // Tolerance: 12% of the target or 4 binomial standard errors,
        // whichever is wider (practice mixes differ from the calibration
        // grid only by sampling noise).
        let tolerance = (0.12 * target).max(4.0 * (target * (1.0 - target) / n).sqrt());
        report.push(format!(
            "{}: {:.2}% (target {:.2}%)",
            condition.name,
            100.0 * observed,
            100.0 * target
        ));
        if (observed - target).abs() > tolerance {
            failures.push(report.last().cloned().unwrap_or_default());
        }
    }
    eprintln!("{report:#?}");
    assert!(failures.is_empty(), "{failures:?}\n{report:#?}");
}

#[test]
fn conditions_cluster_and_rise_with_age_and_deprivation() {
    let pop = population();
    let extract = extract_days();
    let hyp = &all_snomed_lists()["qof/hyp_cod"];
    let chronic: Vec<HashSet<String>> = ["qof/dm_cod", "qof/chd_cod", "qof/copd_cod", "qof/hf_cod"]
        .iter()
        .map(|name| all_snomed_lists()[*name].clone())
        .collect();
    let mut has_hyp: HashSet<i64> = HashSet::new();
    let mut others: HashMap<i64, usize> = HashMap::new();
    for e in &pop.events {
        if hyp.contains(&e.code) {
            has_hyp.insert(e.patient);
        }
        for list in &chronic {
            if list.contains(&e.code) {
                *others.entry(e.patient).or_default() += 1;
            }
        }
    }
    let registered: Vec<(&i64, &Patient)> = pop
        .patients
        .iter()
        .filter(|p| p.1.end.is_none() && p.1.death.is_none())
        .map(|(id, p)| (id, p))
        .collect();
    let rate = |filter: &dyn Fn(&Patient) -> bool| {
        let group: Vec<&(&i64, &Patient)> = registered.iter().filter(|p| filter(p.1)).collect();
        group.iter().filter(|p| has_hyp.contains(p.0)).count() as f64 / group.len() as f64
    };
    let age = |p: &Patient| age_at(p.birth, extract);
    let young = rate(&|p| (40..50).contains(&age(p)));
    let old = rate(&|p| (70..80).contains(&age(p)));
    assert!(
        old > 2.5 * young,
        "hypertension 40s {young:.3} vs 70s {old:.3}"
    );
    let deprived = rate(&|p| (60..80).contains(&age(p)) && p.decile <= 3);
    let affluent = rate(&|p| (60..80).contains(&age(p)) && p.decile >= 8);
    assert!(
        deprived > affluent,
        "deprived {deprived:.3} vs affluent {affluent:.3}"
    );
    // Multimorbidity: people 60-79 with hypertension have more of the other
    // conditions than people of the same ages without it.
    let mean_others = |with: bool| {
        let group: Vec<i64> = registered
            .iter()
            .filter(|p| (60..80).contains(&age(p.1)) && has_hyp.contains(p.0) == with)
            .map(|p| *p.0)
            .collect();
        group
            .iter()
            .map(|id| others.get(id).copied().unwrap_or(0))
            .sum::<usize>() as f64
            / group.len() as f64
    };
    let (with, without) = (mean_others(true), mean_others(false));
    assert!(
        with > 1.4 * without,
        "with hypertension {with:.3}, without {without:.3}"
    );
}

#[test]
fn lives_alone_rises_with_age() {
    let pop = population();
    let extract = extract_days();
    let alone: HashSet<i64> = pop
        .events
        .iter()
        .filter(|e| e.code == "105529008")
        .map(|e| e.patient)
        .collect();
    let registered: Vec<(i64, i32)> = pop
        .patients
        .iter()
        .filter(|p| p.1.end.is_none() && p.1.death.is_none())
        .map(|(id, p)| (*id, age_at(p.birth, extract)))
        .collect();
    let rate = |lo: i32, hi: i32| {
        let band: Vec<i64> = registered
            .iter()
            .filter(|(_, a)| (lo..=hi).contains(a))
            .map(|(id, _)| *id)
            .collect();
        band.iter().filter(|id| alone.contains(id)).count() as f64 / band.len() as f64
    };
    assert_eq!(rate(0, 17), 0.0);
    let working_age = rate(18, 64);
    assert!(
        (0.05..0.2).contains(&working_age),
        "18-64: {working_age:.3}"
    );
    for (lo, hi) in [(65, 74), (75, 84), (85, 120)] {
        let expected = lives_alone_rate(lo as usize);
        let observed = rate(lo, hi);
        assert!(
            (observed - expected).abs() < 0.03,
            "{lo}-{hi}: {observed:.3} vs {expected}"
        );
    }
    let over_65 = rate(65, 120);
    let over_85 = rate(85, 120);
    assert!(
        (over_65 - 0.30).abs() < 0.03,
        "over-65s living alone: {over_65:.3}"
    );
    assert!(
        (over_85 - 0.50).abs() < 0.04,
        "over-85s living alone: {over_85:.3}"
    );
}

#[test]
fn about_thirty_events_per_person_more_in_older_people_and_recent_years() {
    let pop = population();
    let per_person = pop.events.len() as f64 / pop.patients.len() as f64;
    assert!(
        (25.0..=35.0).contains(&per_person),
        "{per_person:.1} events per person"
    );
    let extract = extract_days();
    let births: HashMap<i64, i32> = pop.patients.iter().map(|(id, p)| (*id, p.birth)).collect();
    let mut by_band = [0usize; 2];
    for e in &pop.events {
        let age = age_at(births[&e.patient], extract);
        if (20..40).contains(&age) {
            by_band[0] += 1;
        } else if (70..90).contains(&age) {
            by_band[1] += 1;
        }
    }
    let count = |lo: i32, hi: i32| {
        pop.patients
            .iter()
            .filter(|p| (lo..hi).contains(&age_at(p.1.birth, extract)))
            .count() as f64
    };
    let young = by_band[0] as f64 / count(20, 40);
    let old = by_band[1] as f64 / count(70, 90);
    assert!(
        old > 3.0 * young,
        "20-39: {young:.1}, 70-89: {old:.1} events per person"
    );
    let recent = pop
        .events
        .iter()
        .filter(|e| e.date > extract - 5 * 365)
        .count() as f64;
    let early = pop
        .events
        .iter()
        .filter(|e| (extract - 20 * 365..extract - 15 * 365).contains(&e.date))
        .count() as f64;
    assert!(recent > 1.5 * early, "recent {recent}, early {early}");
}

/// Prescriptions: issued over the last 15 months of a record, to people
/// with the conditions they treat; polypharmacy (5+ distinct medicines in
/// 12 months) is common in people aged 75+ and rare in the young.
#[test]
fn prescriptions_are_recent_and_polypharmacy_rises_with_age() {
    let pop = population();
    let extract = extract_days();
    let people: HashMap<i64, &Patient> = pop.patients.iter().map(|(id, p)| (*id, p)).collect();
    let mut distinct: HashMap<i64, HashSet<&str>> = HashMap::new();
    for m in &pop.medications {
        let p = people[&m.patient];
        let last = p.death.or(p.end).unwrap_or(extract).min(extract);
        assert!(
            m.date > last - 460 && m.date <= last,
            "{} {}",
            m.patient,
            m.date
        );
        if m.date > extract - 365 {
            distinct
                .entry(m.patient)
                .or_default()
                .insert(m.code.as_str());
        }
    }
    let share = |lo: i32, hi: i32| {
        let group: Vec<i64> = pop
            .patients
            .iter()
            .filter(|(_, p)| p.death.is_none() && p.end.is_none())
            .filter(|(_, p)| (lo..hi).contains(&age_at(p.birth, extract)))
            .map(|(id, _)| *id)
            .collect();
        let poly = group
            .iter()
            .filter(|id| distinct.get(id).is_some_and(|d| d.len() >= 5))
            .count();
        poly as f64 / group.len() as f64
    };
    let (young, old) = (share(18, 50), share(75, 120));
    assert!(young < 0.01, "{young}");
    assert!((0.10..0.60).contains(&old), "{old}");
}
