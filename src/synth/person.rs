//! One chunk of synthetic people and their records.
//!
//! A chunk is a run of consecutive patients of one run (possibly spanning
//! practices). Everything a person gets is drawn from the chunk's own random
//! stream in a fixed order, so a chunk's rows depend only on the seed, the
//! chunk index and the run's plan.

use chrono::{Datelike, NaiveDate};

use super::conditions::{
    deprivation_effect, sigmoid, ConditionModel, FollowUp, ASTHMA, CANCER, CHD, CKD, CONDITIONS,
    CONDITION_COUNT, COPD, DEMENTIA, DIABETES, HAEMATOLOGICAL_CANCER, HEART_FAILURE, HYPERTENSION,
    LEARNING_DISABILITY, PAD, STROKE,
};
use super::practices::{female_share, Practice, MAX_AGE};
use super::random::{
    between, chance, normal, pick_cumulative, pick_weighted, poisson, uniform, SynthRng,
};

/// Share of the output who died in the five years before the extract.
pub const DEAD_SHARE: f64 = 0.035;
/// Share who left the practice in the five years before the extract.
pub const LEAVER_SHARE: f64 = 0.05;
/// Years of routine record kept before the extract (diagnoses may be older).
const RECORD_YEARS: i32 = 20;
/// Mixed into the seed for each chunk's second random stream.
const SECOND_STREAM: u64 = 0x6c61_7465_725f_7631;

/// SNOMED CT codes written outside the condition code lists.
pub mod snomed {
    pub const TELEPHONE_ENCOUNTER: &str = "185317003";
    pub const CHECK_UP: &str = "185349003";
    pub const FOLLOW_UP: &str = "390906007";
    pub const MEDICATION_REVIEW: &str = "182836005";
    pub const FLU_VACCINATION: &str = "86198006";
    pub const PNEUMOCOCCAL_VACCINATION: &str = "12866006";
    pub const BMI: &str = "60621009";
    pub const BODY_WEIGHT: &str = "27113001";
    pub const SYSTOLIC_BP: &str = "271649006";
    pub const DIASTOLIC_BP: &str = "271650006";
    pub const EGFR: &str = "1020291000000106";
    pub const HBA1C: &str = "999791000000106";
    pub const CHOLESTEROL: &str = "1005671000000105";
    pub const NEVER_SMOKED: &str = "266919005";
    pub const SMOKER: &str = "77176002";
    pub const EX_SMOKER: &str = "8517006";
    pub const LIVES_ALONE: &str = "105529008";
    pub const WIDOWED: &str = "33553000";
    pub const SHIELD: &str = "1300561000000107";
    pub const NONSHIELD: &[(&str, u32)] = &[("1300571000000100", 3), ("1300591000000101", 1)];
    pub const HOUSEBOUND: &[(&str, u32)] = &[("138079003", 6), ("160689007", 2), ("160685001", 1)];
    pub const NO_LONGER_HOUSEBOUND: &str = "760661000000106";
    pub const CARER: &[(&str, u32)] = &[
        ("133932002", 4),
        ("266946000", 2),
        ("1252665000", 1),
        ("224484003", 1),
    ];
    pub const NOT_CARER: &[(&str, u32)] = &[("199361000000101", 3), ("506401000000109", 1)];
    pub const CARE_HOME: &[(&str, u32)] = &[
        ("248171000000108", 3),
        ("160734000", 2),
        ("394923006", 1),
        ("160737007", 1),
    ];
    pub const SEVERE_OBESITY: &str = "408512008";
    pub const MILD_FRAILTY: &str = "925791000000100";
    pub const MODERATE_FRAILTY: &str = "925831000000107";
    pub const SEVERE_FRAILTY: &str = "925861000000102";
}

/// Emergency admission reasons not tied to one condition (ICD-10).
const ACUTE_REASONS: &[(&str, u32)] = &[
    ("J189", 6),
    ("N390", 5),
    ("R55", 3),
    ("A419", 2),
    ("K590", 1),
    ("E86", 1),
    ("W199", 3),
];
/// Frailty-related diagnoses recorded on admissions of older people (ICD-10).
const FRAILTY_DIAGNOSES: &[(&str, u32)] = &[
    ("R296", 3),
    ("W199", 3),
    ("R268", 2),
    ("Z740", 2),
    ("L899", 1),
    ("R410", 2),
    ("N390", 2),
    ("E86", 1),
    ("S720", 1),
];
const CONTACT_OUTCOMES: &[(&str, u32)] = &[("spoke", 6), ("no answer", 3), ("declined", 1)];

/// Everything the generator needs that does not change between people.
pub struct RunModel {
    pub seed: u64,
    pub extract: i32,
    pub practices: Vec<Practice>,
    pub conditions: ConditionModel,
}

/// Rows of an event table (events or admissions) for one chunk.
#[derive(Default)]
pub struct EventRows {
    pub patient_id: Vec<i64>,
    pub code: Vec<&'static str>,
    pub date: Vec<i32>,
    pub value: Vec<Option<f64>>,
}

impl EventRows {
    fn with_capacity(n: usize) -> EventRows {
        EventRows {
            patient_id: Vec::with_capacity(n),
            code: Vec::with_capacity(n),
            date: Vec::with_capacity(n),
            value: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.patient_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patient_id.is_empty()
    }

    /// Appends one person's events in date order.
    fn append_person(&mut self, patient_id: i64, events: &mut [Event]) {
        events.sort_by(|a, b| a.date.cmp(&b.date).then(a.code.cmp(b.code)));
        for e in events.iter() {
            self.patient_id.push(patient_id);
            self.code.push(e.code);
            self.date.push(e.date);
            self.value.push(e.value);
        }
    }
}

#[derive(Default)]
pub struct PatientRows {
    pub patient_id: Vec<i64>,
    pub practice: Vec<u32>,
    pub date_of_birth: Vec<i32>,
    pub female: Vec<bool>,
    pub lsoa_code: Vec<&'static str>,
    pub imd_decile: Vec<u8>,
    pub registration_end: Vec<Option<i32>>,
    pub date_of_death: Vec<Option<i32>>,
}

#[derive(Default)]
pub struct ContactRows {
    pub patient_id: Vec<i64>,
    pub date: Vec<i32>,
    pub outcome: Vec<&'static str>,
}

/// The five tables of one chunk.
pub struct Chunk {
    pub patients: PatientRows,
    pub events: EventRows,
    pub admissions: EventRows,
    pub contacts: ContactRows,
    /// Prescription issues (dm+d), drawn from their own random stream.
    pub medications: EventRows,
}

#[derive(Clone, Copy)]
struct Event {
    date: i32,
    code: &'static str,
    value: Option<f64>,
}

/// A stable, non-sequential pseudonymous id for the patient at `index`
/// (a bijection on 40-bit numbers, so ids never collide within a run).
pub fn patient_id(seed: u64, index: u64) -> i64 {
    const MASK: u64 = (1 << 40) - 1;
    let key = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) & MASK;
    let scrambled = ((index ^ key).wrapping_mul(0x5DEE_CE66D) ^ 0x2F_1B3C_4D5E) & MASK;
    (1_000_000_000_000 + scrambled) as i64
}

/// Days since 1970-01-01 of the first of a month given as `year * 12 + month0`.
fn month_start(month_index: i32) -> i32 {
    let (year, month0) = (month_index.div_euclid(12), month_index.rem_euclid(12));
    NaiveDate::from_ymd_opt(year, month0 as u32 + 1, 1)
        .map(date_to_days)
        .unwrap_or(0)
}

pub fn date_to_days(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN)).num_days() as i32
}

pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days.into()))
}

fn month_index_of(days: i32) -> i32 {
    days_to_date(days)
        .map(|d| d.year() * 12 + d.month0() as i32)
        .unwrap_or(0)
}

fn ymd(year: i32, month: u32, day: u32) -> i32 {
    NaiveDate::from_ymd_opt(year, month, day)
        .map(date_to_days)
        .unwrap_or(0)
}

/// A date in `[lo, hi]`, more likely late than early: recording rose over the years.
#[inline]
fn recent_date(rng: &mut SynthRng, lo: i32, hi: i32) -> i32 {
    let u = uniform(rng);
    let x = if chance(rng, 0.5) { u } else { u.sqrt() };
    (lo + (f64::from(hi - lo) * x) as i32).clamp(lo, hi.max(lo))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// What is known about a person while their record is written.
struct Person {
    birth: i32,
    died: bool,
    end: i32,
    age: usize,
    female: bool,
    decile: u8,
    morbidity: f64,
    conditions: [bool; CONDITION_COUNT],
    bmi: f64,
    systolic: f64,
    egfr: f64,
}

impl Person {
    fn age_at(&self, day: i32) -> i32 {
        (day - self.birth) / 365
    }
    fn has(&self, condition: usize) -> bool {
        self.conditions[condition]
    }
}

/// Generates patients `first..first + count` of the run as chunk `chunk`.
pub fn generate_chunk(model: &RunModel, chunk: u64, first: u64, count: u64) -> Chunk {
    let mut rng = super::random::chunk_rng(model.seed, chunk);
    let capacity = count as usize;
    let mut out = Chunk {
        patients: PatientRows::default(),
        events: EventRows::with_capacity(capacity * 34),
        admissions: EventRows::with_capacity(capacity / 2),
        contacts: ContactRows::default(),
        medications: EventRows::with_capacity(capacity * 4),
    };
    // The second stream: what was added to the generator later (frailty
    // signs, prescriptions) is drawn from it, so adding it left the rows
    // drawn from the first stream unchanged.
    let mut later = super::random::chunk_rng(model.seed ^ SECOND_STREAM, chunk);
    let mut medications: Vec<Event> = Vec::with_capacity(64);
    let mut events: Vec<Event> = Vec::with_capacity(256);
    let mut admissions: Vec<Event> = Vec::with_capacity(32);
    let record_start = model.extract - RECORD_YEARS * 365 - RECORD_YEARS / 4;
    let mut practice_index = model
        .practices
        .partition_point(|p| p.first_patient + p.patients <= first);
    for index in first..first + count {
        while practice_index + 1 < model.practices.len()
            && index
                >= model.practices[practice_index].first_patient
                    + model.practices[practice_index].patients
        {
            practice_index += 1;
        }
        let Some(practice) = model.practices.get(practice_index) else {
            break;
        };
        let id = patient_id(model.seed, index);
        events.clear();
        admissions.clear();
        let person = person(
            &mut rng,
            model,
            practice,
            practice_index as u32,
            id,
            &mut out.patients,
        );
        let window = (person.birth.max(record_start), person.end);
        clinical_record(&mut rng, &person, window, &mut events);
        emergency_admissions(&mut rng, &person, window, &mut admissions);
        contacts(&mut rng, model, &person, id, &mut out.contacts);
        super::frailty::signs(
            &mut later,
            person.age,
            person.morbidity,
            window,
            |date, code| {
                events.push(Event {
                    date,
                    code,
                    value: None,
                })
            },
        );
        medications.clear();
        super::medicines::issues(
            &mut later,
            &super::medicines::Patient {
                age: person.age,
                conditions: &person.conditions,
                start: window.0,
                end: person.end,
            },
            |date, code| {
                medications.push(Event {
                    date,
                    code,
                    value: None,
                })
            },
        );
        out.medications.append_person(id, &mut medications);
        out.events.append_person(id, &mut events);
        out.admissions.append_person(id, &mut admissions);
    }
    out
}

/// Draws who the person is and writes their patients row.
fn person(
    rng: &mut SynthRng,
    model: &RunModel,
    practice: &Practice,
    practice_index: u32,
    id: i64,
    rows: &mut PatientRows,
) -> Person {
    let extract = model.extract;
    let status = uniform(rng);
    let (ages, end, died, left) = if status < DEAD_SHARE {
        let day = extract - between(rng, 0, 5 * 365);
        (&practice.death_ages, day, true, false)
    } else if status < DEAD_SHARE + LEAVER_SHARE {
        let day = extract - between(rng, 0, 5 * 365);
        (&practice.leaver_ages, day, false, true)
    } else {
        (&practice.registered_ages, extract, false, false)
    };
    let age = pick_cumulative(rng, ages).min(MAX_AGE);
    let birth_month = month_index_of(end) - age as i32 * 12 - between(rng, 0, 11);
    let birth = month_start(birth_month).min(end);
    let female = chance(rng, female_share(age));
    let area =
        &practice.catchment[between(rng, 0, practice.catchment.len() as i32 - 1).max(0) as usize];
    let morbidity = normal(rng) + if died { 0.7 } else { 0.0 };

    let mut conditions = [false; CONDITION_COUNT];
    for (c, condition) in CONDITIONS.iter().enumerate() {
        let logit = model.conditions.age_logit[c][age]
            + if female {
                condition.female_log_odds
            } else {
                0.0
            }
            + deprivation_effect(condition, area.imd_decile)
            + condition.loading * morbidity;
        conditions[c] = chance(rng, sigmoid(logit));
    }
    let mut bmi = 26.0 + 0.05 * (age.min(70) as f64 - 40.0) + 4.3 * normal(rng) + 0.7 * morbidity;
    if conditions[DIABETES] {
        bmi += 3.0;
    }
    let systolic = 116.0
        + 0.42 * (age as f64 - 30.0).max(0.0)
        + if conditions[HYPERTENSION] { 12.0 } else { 0.0 }
        + 8.0 * normal(rng);
    let egfr = if conditions[CKD] {
        25.0 + 34.0 * uniform(rng)
    } else {
        (108.0 - 0.7 * (age as f64 - 20.0).max(0.0) + 8.0 * normal(rng)).clamp(62.0, 130.0)
    };

    rows.patient_id.push(id);
    rows.practice.push(practice_index);
    rows.date_of_birth.push(birth);
    rows.female.push(female);
    rows.lsoa_code.push(area.lsoa11_code);
    rows.imd_decile.push(area.imd_decile);
    rows.registration_end.push(left.then_some(end));
    rows.date_of_death.push(died.then_some(end));
    Person {
        birth,
        died,
        end,
        age,
        female,
        decile: area.imd_decile,
        morbidity,
        conditions,
        bmi: bmi.clamp(15.0, 65.0),
        systolic,
        egfr,
    }
}

/// Diagnoses, follow-ups, routine care, social facts and flags.
fn clinical_record(rng: &mut SynthRng, p: &Person, window: (i32, i32), out: &mut Vec<Event>) {
    let (lo, hi) = window;
    let push = |out: &mut Vec<Event>, date: i32, code: &'static str, value: Option<f64>| {
        if date >= p.birth && date <= p.end {
            out.push(Event { date, code, value });
        }
    };

    // Long-term conditions: the diagnosis (possibly before the routine
    // record starts) and the reviews and measurements that follow it.
    for (c, condition) in CONDITIONS.iter().enumerate() {
        if !p.conditions[c] {
            continue;
        }
        let onset_min = i32::from(condition.onset_min_age).min(p.age as i32);
        let years_span = (p.age as i32 - onset_min).max(0) as f64;
        // Age-related conditions are mostly diagnosed late; childhood ones uniformly.
        let skew = if condition.onset_min_age >= 25 {
            0.55
        } else {
            1.0
        };
        let onset_age = onset_min as f64 + years_span * uniform(rng).powf(skew);
        let diagnosed = (p.birth + (onset_age * 365.25) as i32).clamp(p.birth, p.end);
        if let Some(code) = pick_weighted(rng, condition.codes) {
            push(out, diagnosed, code, None);
        }
        let from = diagnosed.max(lo);
        let years = f64::from(hi - from) / 365.25;
        if years <= 0.0 {
            continue;
        }
        for &(follow_up, rate) in condition.follow_ups {
            for _ in 0..poisson(rng, rate * years) {
                let date = between(rng, from, hi);
                measure(rng, p, follow_up, date, out);
            }
        }
    }

    // Routine consultations: more in older and sicker people, and more
    // recorded in recent years.
    let years = f64::from(hi - lo) / 365.25;
    let consult_rate = (0.09 + 0.006 * p.age as f64) * (0.3 * p.morbidity - 0.045).exp();
    for _ in 0..poisson(rng, consult_rate * years) {
        let date = recent_date(rng, lo, hi);
        let phone_share = 0.1 + 0.35 * f64::from((date - lo).max(0)) / f64::from((hi - lo).max(1));
        let code = if chance(rng, phone_share) {
            snomed::TELEPHONE_ENCOUNTER
        } else if chance(rng, 0.6) {
            snomed::FOLLOW_UP
        } else {
            snomed::CHECK_UP
        };
        push(out, date, code, None);
    }
    // Adult measurements outside any disease review.
    let adult_from = (p.birth + 18 * 365 + 5).max(lo);
    if adult_from <= hi {
        let adult_years = f64::from(hi - adult_from) / 365.25;
        let over_40 = (p.birth + 40 * 365 + 10).max(lo);
        for _ in 0..poisson(rng, 0.07 * adult_years) {
            let date = recent_date(rng, adult_from, hi);
            measure(rng, p, FollowUp::BodyMassIndex, date, out);
        }
        if over_40 <= hi {
            let years_40 = f64::from(hi - over_40) / 365.25;
            for _ in 0..poisson(rng, 0.12 * years_40) {
                let date = recent_date(rng, over_40, hi);
                measure(rng, p, FollowUp::BloodPressure, date, out);
            }
            for _ in 0..poisson(rng, 0.04 * years_40) {
                let date = recent_date(rng, over_40, hi);
                measure(rng, p, FollowUp::Cholesterol, date, out);
            }
        }
        smoking(rng, p, adult_from, hi, out);
    }
    vaccinations(rng, p, lo, hi, out);
    social_facts(rng, p, lo, hi, out);
    flags(rng, p, lo, hi, out);
}

fn measure(rng: &mut SynthRng, p: &Person, what: FollowUp, date: i32, out: &mut Vec<Event>) {
    let mut push = |code: &'static str, value: Option<f64>| out.push(Event { date, code, value });
    match what {
        FollowUp::BloodPressure => {
            let systolic = (p.systolic + 9.0 * normal(rng)).clamp(80.0, 230.0).round();
            let diastolic = (0.5 * systolic + 14.0 + 6.0 * normal(rng))
                .clamp(40.0, 130.0)
                .round();
            push(snomed::SYSTOLIC_BP, Some(systolic));
            push(snomed::DIASTOLIC_BP, Some(diastolic));
        }
        FollowUp::BodyMassIndex => {
            if p.age_at(date) < 18 {
                return;
            }
            let bmi = round1((p.bmi + 0.8 * normal(rng)).clamp(14.0, 70.0));
            let height: f64 = if p.female { 1.62 } else { 1.76 };
            push(snomed::BMI, Some(bmi));
            push(snomed::BODY_WEIGHT, Some(round1(bmi * height * height)));
            if bmi >= 40.0 && chance(rng, 0.3) {
                push(snomed::SEVERE_OBESITY, None);
            }
        }
        FollowUp::Hba1c => {
            let mean = if p.has(DIABETES) { 58.0 } else { 38.0 };
            let spread = if p.has(DIABETES) { 12.0 } else { 3.0 };
            push(
                snomed::HBA1C,
                Some((mean + spread * normal(rng)).clamp(25.0, 150.0).round()),
            );
        }
        FollowUp::Egfr => {
            push(
                snomed::EGFR,
                Some((p.egfr + 5.0 * normal(rng)).clamp(4.0, 140.0).round()),
            );
        }
        FollowUp::Cholesterol => {
            let mean = if p.has(CHD) || p.has(STROKE) || p.has(PAD) {
                4.2
            } else {
                5.2
            };
            push(
                snomed::CHOLESTEROL,
                Some(round1((mean + 0.9 * normal(rng)).clamp(2.0, 11.0))),
            );
        }
        FollowUp::MedicationReview => push(snomed::MEDICATION_REVIEW, None),
        FollowUp::Review => push(snomed::FOLLOW_UP, None),
        FollowUp::CheckUp => push(snomed::CHECK_UP, None),
    }
}

fn smoking(rng: &mut SynthRng, p: &Person, from: i32, hi: i32, out: &mut Vec<Event>) {
    let deprived = f64::from(10 - p.decile.clamp(1, 10)) / 9.0;
    let lung = p.has(COPD);
    let current = 0.10 + 0.12 * deprived + if lung { 0.15 } else { 0.0 };
    let ex = 0.25 + if lung { 0.4 } else { 0.0 } + 0.003 * p.age as f64;
    let u = uniform(rng);
    let final_code = if u < current {
        snomed::SMOKER
    } else if u < current + ex {
        snomed::EX_SMOKER
    } else {
        snomed::NEVER_SMOKED
    };
    let years = f64::from(hi - from) / 365.25;
    let n = 1 + poisson(rng, 0.08 * years);
    let mut dates: Vec<i32> = (0..n).map(|_| recent_date(rng, from, hi)).collect();
    dates.sort_unstable();
    let last = dates.len().saturating_sub(1);
    for (i, date) in dates.into_iter().enumerate() {
        // Ex-smokers were smokers in their earlier records.
        let code = if final_code == snomed::EX_SMOKER && i < last && chance(rng, 0.5) {
            snomed::SMOKER
        } else {
            final_code
        };
        out.push(Event {
            date,
            code,
            value: None,
        });
    }
}

fn vaccinations(rng: &mut SynthRng, p: &Person, lo: i32, hi: i32, out: &mut Vec<Event>) {
    let at_risk = [DIABETES, COPD, ASTHMA, CHD, CKD, HEART_FAILURE, STROKE]
        .iter()
        .any(|&c| p.has(c));
    let (first_year, last_year) = (
        days_to_date(lo).map(|d| d.year()).unwrap_or(2000),
        days_to_date(hi).map(|d| d.year()).unwrap_or(2000),
    );
    for year in first_year..=last_year {
        let start = ymd(year, 9, 20);
        let age = p.age_at(start);
        let uptake = if age >= 65 {
            0.72
        } else if at_risk && age >= 2 {
            0.45
        } else {
            0.0
        };
        if uptake > 0.0 && chance(rng, uptake) {
            let date = start + between(rng, 0, 80);
            if date >= lo && date <= hi {
                out.push(Event {
                    date,
                    code: snomed::FLU_VACCINATION,
                    value: None,
                });
            }
        }
    }
    let at_65 = p.birth + 65 * 365 + 16;
    if at_65 <= hi && at_65 + 365 >= lo && chance(rng, 0.7) {
        let date = (at_65 + between(rng, 0, 365)).clamp(lo, hi);
        out.push(Event {
            date,
            code: snomed::PNEUMOCOCCAL_VACCINATION,
            value: None,
        });
    }
}

/// Lives-alone rate by age band at the end of the record: rising to about
/// 30% of over-65s and half of over-85s (ONS Families and Households).
pub fn lives_alone_rate(age: usize) -> f64 {
    match age {
        0..=17 => 0.0,
        18..=29 => 0.07,
        30..=49 => 0.10,
        50..=64 => 0.15,
        65..=74 => 0.22,
        75..=84 => 0.36,
        _ => 0.50,
    }
}

fn social_facts(rng: &mut SynthRng, p: &Person, lo: i32, hi: i32, out: &mut Vec<Event>) {
    let adult = (p.birth + 18 * 365 + 5).max(lo);
    if adult > hi {
        return;
    }
    let alone = chance(rng, lives_alone_rate(p.age));
    if alone {
        out.push(Event {
            date: recent_date(rng, adult, hi),
            code: snomed::LIVES_ALONE,
            value: None,
        });
    }
    if p.age >= 55 {
        let widowed = if alone {
            if p.female {
                0.55
            } else {
                0.4
            }
        } else {
            0.04
        };
        if chance(rng, widowed) {
            out.push(Event {
                date: between(rng, adult, hi),
                code: snomed::WIDOWED,
                value: None,
            });
        }
    }
    // Unpaid carers: most often in middle age; some later stop caring.
    if (18..=85).contains(&p.age) {
        let rate = if (45..=70).contains(&p.age) {
            0.09
        } else {
            0.04
        };
        if chance(rng, rate) {
            let date = recent_date(rng, adult, hi);
            if let Some(code) = pick_weighted(rng, snomed::CARER) {
                out.push(Event {
                    date,
                    code,
                    value: None,
                });
            }
            if chance(rng, 0.2) && date < hi {
                if let Some(code) = pick_weighted(rng, snomed::NOT_CARER) {
                    out.push(Event {
                        date: between(rng, date + 1, hi),
                        code,
                        value: None,
                    });
                }
            }
        }
    }
}

/// Housebound, care home, frailty category and COVID-19 shielding flags.
fn flags(rng: &mut SynthRng, p: &Person, lo: i32, hi: i32, out: &mut Vec<Event>) {
    let age = p.age as f64;
    if p.age >= 65 {
        let housebound = sigmoid(-5.0 + 0.08 * (age - 65.0) + 0.9 * p.morbidity);
        if chance(rng, housebound) {
            let from = (p.birth + 65 * 365).max(lo);
            let date = recent_date(rng, from, hi);
            if let Some(code) = pick_weighted(rng, snomed::HOUSEBOUND) {
                out.push(Event {
                    date,
                    code,
                    value: None,
                });
            }
            if chance(rng, 0.15) && date < hi {
                let later = between(rng, date + 1, hi);
                out.push(Event {
                    date: later,
                    code: snomed::NO_LONGER_HOUSEBOUND,
                    value: None,
                });
            }
        }
    }
    if p.age >= 75 {
        let dementia = if p.has(DEMENTIA) { 1.3 } else { 0.0 };
        let care_home = sigmoid(-5.6 + 0.11 * (age - 75.0) + 0.8 * p.morbidity + dementia);
        if chance(rng, care_home) {
            let from = (p.birth + 75 * 365).max(lo);
            if let Some(code) = pick_weighted(rng, snomed::CARE_HOME) {
                out.push(Event {
                    date: recent_date(rng, from, hi),
                    code,
                    value: None,
                });
            }
        }
    }
    // The coded eFI category arrived with the 2017 GMS contract.
    let efi_from = ymd(2017, 7, 1).max(lo).max(p.birth + 65 * 365);
    if p.age >= 65 && efi_from <= hi && chance(rng, 0.6) {
        let n_conditions = p.conditions.iter().filter(|&&c| c).count() as f64;
        let score = 0.04 * (age - 65.0) + 0.8 * p.morbidity + 0.25 * n_conditions;
        let code = if score > 2.4 {
            Some(snomed::SEVERE_FRAILTY)
        } else if score > 1.5 {
            Some(snomed::MODERATE_FRAILTY)
        } else if score > 0.6 {
            Some(snomed::MILD_FRAILTY)
        } else {
            None
        };
        if let Some(code) = code {
            out.push(Event {
                date: between(rng, efi_from, hi),
                code,
                value: None,
            });
        }
    }
    // Shielding: the Shielded Patient List from 16 March 2020, for people
    // with the clinically extremely vulnerable conditions; some later moved
    // to moderate or low risk.
    let z = p.morbidity;
    let extremely_vulnerable = p.has(HAEMATOLOGICAL_CANCER)
        || (p.has(CANCER) && z > 0.5)
        || (p.has(COPD) && z > 0.8)
        || (p.has(ASTHMA) && z > 1.8)
        || (p.has(CKD) && z > 1.5)
        || (p.has(LEARNING_DISABILITY) && z > 1.5)
        || z > 2.6;
    if extremely_vulnerable {
        let date = ymd(2020, 3, 16) + between(rng, 0, 45);
        if date >= lo && date <= hi {
            out.push(Event {
                date,
                code: snomed::SHIELD,
                value: None,
            });
            if chance(rng, 0.15) {
                let removed = ymd(2020, 6, 1) + between(rng, 0, 300);
                if removed <= hi {
                    if let Some(code) = pick_weighted(rng, snomed::NONSHIELD) {
                        out.push(Event {
                            date: removed,
                            code,
                            value: None,
                        });
                    }
                }
            }
        }
    }
}

/// Emergency admissions (ICD-10): more with age, morbidity and conditions;
/// many deaths follow a final admission.
fn emergency_admissions(rng: &mut SynthRng, p: &Person, window: (i32, i32), out: &mut Vec<Event>) {
    let (lo, hi) = window;
    let held: Vec<usize> = (0..CONDITION_COUNT).filter(|&c| p.conditions[c]).collect();
    let years = f64::from(hi - lo) / 365.25;
    let rate = 0.012
        * (0.04 * (p.age as f64 - 40.0)).exp()
        * (0.5 * p.morbidity).exp()
        * (1.0 + 0.25 * held.len() as f64);
    let mut dates: Vec<i32> = (0..poisson(rng, rate.min(3.0) * years))
        .map(|_| recent_date(rng, lo, hi))
        .collect();
    if p.died && chance(rng, 0.6) {
        dates.push((p.end - between(rng, 0, 30)).max(lo));
    }
    dates.sort_unstable();
    for date in dates {
        admission(rng, p, &held, date, out);
    }
}

fn admission(rng: &mut SynthRng, p: &Person, held: &[usize], date: i32, out: &mut Vec<Event>) {
    let start = out.len();
    let add = |out: &mut Vec<Event>, code: &'static str| {
        if !out[start..].iter().any(|e| e.code == code) {
            out.push(Event {
                date,
                code,
                value: None,
            });
        }
    };
    let linked: Vec<usize> = held
        .iter()
        .copied()
        .filter(|&c| !CONDITIONS[c].admission_codes.is_empty())
        .collect();
    let primary = if !linked.is_empty() && chance(rng, 0.5) {
        let c = linked[between(rng, 0, linked.len() as i32 - 1) as usize];
        let codes = CONDITIONS[c].admission_codes;
        Some(codes[between(rng, 0, codes.len() as i32 - 1) as usize])
    } else {
        pick_weighted(rng, ACUTE_REASONS)
    };
    if let Some(code) = primary {
        add(out, code);
        if code == "W199" && p.age >= 70 && chance(rng, 0.25) {
            add(out, "S720");
        }
    }
    for &c in held {
        if let Some(code) = CONDITIONS[c].comorbidity_code {
            if chance(rng, 0.5) {
                add(out, code);
            }
        }
    }
    if p.age >= 75 {
        for _ in 0..poisson(rng, 0.6 + 0.4 * p.morbidity.max(0.0)) {
            if let Some(code) = pick_weighted(rng, FRAILTY_DIAGNOSES) {
                add(out, code);
            }
        }
        if p.has(DEMENTIA) && chance(rng, 0.3) {
            add(out, "F051");
        }
    }
}

/// Earlier proactive calls in the four months before the extract, to older,
/// multimorbid or shielding people.
fn contacts(rng: &mut SynthRng, model: &RunModel, p: &Person, id: i64, rows: &mut ContactRows) {
    let n_conditions = p.conditions.iter().filter(|&&c| c).count();
    let eligible = p.age >= 70 || n_conditions >= 3 || p.morbidity > 2.0;
    if !eligible || !chance(rng, 0.18) {
        return;
    }
    let from = model.extract - 120;
    if from > p.end {
        return;
    }
    let mut dates: Vec<i32> = (0..between(rng, 1, 3))
        .map(|_| between(rng, from, p.end))
        .collect();
    dates.sort_unstable();
    for date in dates {
        rows.patient_id.push(id);
        rows.date.push(date);
        rows.outcome
            .push(pick_weighted(rng, CONTACT_OUTCOMES).unwrap_or("spoke"));
    }
}
