//! Long-term conditions: who has them, how they are coded, what follows.
//!
//! Each person draws one latent morbidity factor `z ~ N(0, 1)` (higher in
//! people who died). A condition is present with probability
//! `sigmoid(intercept + age(age) + sex + deprivation(decile) + loading * z)`:
//! prevalence rises with age and deprivation, and the shared factor makes
//! conditions cluster (multimorbidity). The intercept is solved for each run
//! so that the prevalence among people registered at the extract date, over
//! the register's QOF age denominator, equals the national QOF figure.
//!
//! Targets: QOF 2019-20, England, register prevalence as published by NHS
//! Digital ("Quality and Outcomes Framework, 2019-20", prevalence tables):
//! hypertension 13.9% (all ages), diabetes 7.1% (17+), asthma 6.4% (6+),
//! COPD 1.9%, CHD 3.0%, stroke/TIA 1.8%, atrial fibrillation 2.0%, heart
//! failure 0.9%, CKD 3-5 4.0% (18+), depression 11.6% (18+), dementia 0.7%,
//! epilepsy 0.8% (18+), learning disability 0.5%, severe mental illness 0.9%,
//! osteoporosis 0.8% (50+), PAD 0.6%, rheumatoid arthritis 0.8% (16+),
//! cancer 3.2% (split here 2.7% solid / 0.5% haematological), palliative
//! care 0.4%. The age, sex and deprivation shapes are stated per condition
//! below; they are plausible epidemiology, not fitted to a source.

use super::practices::MAX_AGE;

/// Something measured or done at a follow-up, with its yearly rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    BloodPressure,
    BodyMassIndex,
    Hba1c,
    Egfr,
    Cholesterol,
    MedicationReview,
    Review,
    CheckUp,
}

/// One long-term condition and how the generator treats it.
#[derive(Debug)]
pub struct Condition {
    pub name: &'static str,
    /// Code list file under `reference/codelists/` (without `.csv`).
    pub codelist: &'static str,
    /// Diagnosis codes used, with relative weights (all from `codelist`).
    pub codes: &'static [(&'static str, u32)],
    /// National QOF register prevalence, percent of the denominator.
    pub target_percent: f64,
    /// QOF denominator: registered people at least this old.
    pub min_age: usize,
    /// Youngest age at diagnosis.
    pub onset_min_age: u8,
    /// Log-odds by age, interpolated between knots `(age, offset)`.
    pub age_knots: &'static [(u8, f64)],
    pub female_log_odds: f64,
    /// Log odds ratio, most (decile 1) vs least (decile 10) deprived.
    pub deprivation_log_odds: f64,
    /// Weight of the shared morbidity factor.
    pub loading: f64,
    pub follow_ups: &'static [(FollowUp, f64)],
    /// ICD-10 codes when this condition is the reason for an emergency admission.
    pub admission_codes: &'static [&'static str],
    /// ICD-10 code recorded as a co-morbidity on other admissions.
    pub comorbidity_code: Option<&'static str>,
}

pub const HYPERTENSION: usize = 0;
pub const DIABETES: usize = 1;
pub const ASTHMA: usize = 2;
pub const COPD: usize = 3;
pub const CHD: usize = 4;
pub const STROKE: usize = 5;
pub const ATRIAL_FIBRILLATION: usize = 6;
pub const HEART_FAILURE: usize = 7;
pub const CKD: usize = 8;
pub const DEPRESSION: usize = 9;
pub const DEMENTIA: usize = 10;
pub const EPILEPSY: usize = 11;
pub const LEARNING_DISABILITY: usize = 12;
pub const SEVERE_MENTAL_ILLNESS: usize = 13;
pub const OSTEOPOROSIS: usize = 14;
pub const PAD: usize = 15;
pub const RHEUMATOID_ARTHRITIS: usize = 16;
pub const CANCER: usize = 17;
pub const HAEMATOLOGICAL_CANCER: usize = 18;
pub const PALLIATIVE_CARE: usize = 19;
pub const CONDITION_COUNT: usize = 20;

use FollowUp::*;

pub static CONDITIONS: [Condition; CONDITION_COUNT] = [
    Condition {
        name: "hypertension",
        codelist: "qof/hyp_cod",
        codes: &[("59621000", 8), ("38341003", 3), ("10725009", 1)],
        target_percent: 13.9,
        min_age: 0,
        onset_min_age: 25,
        age_knots: &[
            (0, -9.0),
            (20, -5.5),
            (30, -4.2),
            (40, -3.0),
            (50, -2.0),
            (60, -1.1),
            (70, -0.3),
            (80, 0.3),
            (90, 0.5),
            (100, 0.5),
        ],
        female_log_odds: -0.1,
        deprivation_log_odds: 0.25,
        loading: 0.7,
        follow_ups: &[(BloodPressure, 0.8), (MedicationReview, 0.5)],
        admission_codes: &[],
        comorbidity_code: Some("I10"),
    },
    Condition {
        name: "diabetes",
        codelist: "qof/dm_cod",
        codes: &[("44054006", 10), ("73211009", 2), ("46635009", 1)],
        target_percent: 7.1,
        min_age: 17,
        onset_min_age: 8,
        age_knots: &[
            (0, -6.0),
            (17, -4.5),
            (30, -3.6),
            (40, -2.8),
            (50, -2.0),
            (60, -1.4),
            (70, -1.0),
            (80, -1.0),
            (90, -1.3),
            (100, -1.5),
        ],
        female_log_odds: -0.25,
        deprivation_log_odds: 0.6,
        loading: 0.8,
        follow_ups: &[
            (Hba1c, 1.2),
            (BodyMassIndex, 0.6),
            (Egfr, 0.7),
            (BloodPressure, 0.5),
            (Cholesterol, 0.6),
        ],
        admission_codes: &["E119"],
        comorbidity_code: Some("E119"),
    },
    Condition {
        name: "asthma",
        codelist: "qof/ast_cod",
        codes: &[("195967001", 10), ("312453004", 1)],
        target_percent: 6.4,
        min_age: 6,
        onset_min_age: 2,
        age_knots: &[
            (0, -0.2),
            (10, 0.1),
            (20, 0.0),
            (40, -0.1),
            (60, 0.0),
            (80, 0.0),
            (100, -0.2),
        ],
        female_log_odds: 0.2,
        deprivation_log_odds: 0.2,
        loading: 0.4,
        follow_ups: &[(Review, 0.7)],
        admission_codes: &["J459"],
        comorbidity_code: Some("J459"),
    },
    Condition {
        name: "copd",
        codelist: "qof/copd_cod",
        codes: &[("13645005", 10), ("185086009", 2), ("87433001", 1)],
        target_percent: 1.9,
        min_age: 0,
        onset_min_age: 35,
        age_knots: &[
            (0, -12.0),
            (30, -7.0),
            (40, -5.0),
            (50, -3.5),
            (60, -2.4),
            (70, -1.6),
            (80, -1.2),
            (90, -1.2),
            (100, -1.4),
        ],
        female_log_odds: -0.1,
        deprivation_log_odds: 1.1,
        loading: 1.0,
        follow_ups: &[(Review, 0.9)],
        admission_codes: &["J441", "J440"],
        comorbidity_code: Some("J449"),
    },
    Condition {
        name: "coronary heart disease",
        codelist: "qof/chd_cod",
        codes: &[
            ("414545008", 6),
            ("194828000", 3),
            ("22298006", 2),
            ("53741008", 1),
        ],
        target_percent: 3.0,
        min_age: 0,
        onset_min_age: 35,
        age_knots: &[
            (0, -12.0),
            (30, -7.5),
            (40, -5.5),
            (50, -3.9),
            (60, -2.7),
            (70, -1.8),
            (80, -1.1),
            (90, -0.8),
            (100, -0.8),
        ],
        female_log_odds: -0.6,
        deprivation_log_odds: 0.5,
        loading: 0.9,
        follow_ups: &[
            (Cholesterol, 0.6),
            (BloodPressure, 0.4),
            (MedicationReview, 0.6),
        ],
        admission_codes: &["I219", "I209"],
        comorbidity_code: Some("I209"),
    },
    Condition {
        name: "stroke or TIA",
        codelist: "qof/strk_cod",
        codes: &[("230690007", 5), ("432504007", 3)],
        target_percent: 1.8,
        min_age: 0,
        onset_min_age: 35,
        age_knots: &[
            (0, -10.0),
            (30, -7.5),
            (40, -6.0),
            (50, -4.5),
            (60, -3.4),
            (70, -2.4),
            (80, -1.6),
            (90, -1.2),
            (100, -1.2),
        ],
        female_log_odds: -0.1,
        deprivation_log_odds: 0.4,
        loading: 0.9,
        follow_ups: &[(Cholesterol, 0.6), (BloodPressure, 0.4)],
        admission_codes: &["I639", "I64"],
        comorbidity_code: Some("I64"),
    },
    Condition {
        name: "atrial fibrillation",
        codelist: "qof/afib_cod",
        codes: &[("49436004", 8), ("282825002", 2)],
        target_percent: 2.0,
        min_age: 0,
        onset_min_age: 35,
        age_knots: &[
            (0, -13.0),
            (30, -9.0),
            (40, -7.5),
            (50, -5.6),
            (60, -4.0),
            (70, -2.7),
            (80, -1.7),
            (90, -1.1),
            (100, -1.0),
        ],
        female_log_odds: -0.3,
        deprivation_log_odds: 0.0,
        loading: 0.8,
        follow_ups: &[(MedicationReview, 0.9)],
        admission_codes: &["I489"],
        comorbidity_code: Some("I489"),
    },
    Condition {
        name: "heart failure",
        codelist: "qof/hf_cod",
        codes: &[("84114007", 6), ("42343007", 2), ("703272007", 1)],
        target_percent: 0.9,
        min_age: 0,
        onset_min_age: 40,
        age_knots: &[
            (0, -13.0),
            (30, -10.0),
            (40, -8.5),
            (50, -6.5),
            (60, -5.0),
            (70, -3.7),
            (80, -2.5),
            (90, -1.6),
            (100, -1.4),
        ],
        female_log_odds: -0.3,
        deprivation_log_odds: 0.4,
        loading: 1.2,
        follow_ups: &[(MedicationReview, 0.8), (Egfr, 0.6), (BloodPressure, 0.4)],
        admission_codes: &["I500", "I509"],
        comorbidity_code: Some("I509"),
    },
    Condition {
        name: "chronic kidney disease (stages 3-5)",
        codelist: "qof/ckd_cod",
        codes: &[
            ("433144002", 6),
            ("324281000000104", 3),
            ("324341000000100", 2),
            ("324471000000100", 1),
            ("433146000", 1),
        ],
        target_percent: 4.0,
        min_age: 18,
        onset_min_age: 30,
        age_knots: &[
            (0, -14.0),
            (18, -9.0),
            (30, -8.0),
            (40, -6.5),
            (50, -5.0),
            (60, -3.6),
            (70, -2.3),
            (80, -1.2),
            (90, -0.5),
            (100, -0.3),
        ],
        female_log_odds: 0.3,
        deprivation_log_odds: 0.2,
        loading: 0.9,
        follow_ups: &[(Egfr, 1.0), (BloodPressure, 0.4)],
        admission_codes: &["N179"],
        comorbidity_code: Some("N189"),
    },
    Condition {
        name: "depression",
        codelist: "qof/depr_cod",
        codes: &[
            ("35489007", 6),
            ("370143000", 2),
            ("310495003", 2),
            ("36923009", 1),
        ],
        target_percent: 11.6,
        min_age: 18,
        onset_min_age: 14,
        age_knots: &[
            (0, -8.0),
            (15, -3.0),
            (18, -1.9),
            (25, -1.6),
            (35, -1.5),
            (45, -1.5),
            (55, -1.6),
            (65, -2.0),
            (80, -2.1),
            (100, -2.1),
        ],
        female_log_odds: 0.6,
        deprivation_log_odds: 0.5,
        loading: 0.6,
        follow_ups: &[(Review, 0.3)],
        admission_codes: &[],
        comorbidity_code: Some("F329"),
    },
    Condition {
        name: "dementia",
        codelist: "qof/dem_cod",
        codes: &[
            ("52448006", 6),
            ("26929004", 4),
            ("429998004", 2),
            ("15662003", 1),
        ],
        target_percent: 0.7,
        min_age: 0,
        onset_min_age: 55,
        age_knots: &[
            (0, -16.0),
            (40, -12.0),
            (50, -10.0),
            (60, -8.0),
            (65, -6.8),
            (70, -5.6),
            (75, -4.5),
            (80, -3.4),
            (85, -2.4),
            (90, -1.6),
            (100, -0.9),
        ],
        female_log_odds: 0.3,
        deprivation_log_odds: 0.2,
        loading: 1.0,
        follow_ups: &[(Review, 1.0), (MedicationReview, 0.5)],
        admission_codes: &["F03", "G309", "F019"],
        comorbidity_code: Some("F03"),
    },
    Condition {
        name: "epilepsy",
        codelist: "qof/epil_cod",
        codes: &[("84757009", 10), ("230435005", 1)],
        target_percent: 0.8,
        min_age: 18,
        onset_min_age: 1,
        age_knots: &[(0, -0.3), (18, 0.0), (100, 0.0)],
        female_log_odds: 0.0,
        deprivation_log_odds: 0.4,
        loading: 0.5,
        follow_ups: &[(MedicationReview, 0.8)],
        admission_codes: &["G409"],
        comorbidity_code: Some("G409"),
    },
    Condition {
        name: "learning disability",
        codelist: "qof/ld_cod",
        codes: &[("110359009", 8), ("41040004", 1)],
        target_percent: 0.5,
        min_age: 0,
        onset_min_age: 1,
        age_knots: &[
            (0, 0.0),
            (20, 0.0),
            (50, -0.3),
            (70, -1.0),
            (90, -2.0),
            (100, -2.0),
        ],
        female_log_odds: -0.3,
        deprivation_log_odds: 0.4,
        loading: 0.3,
        follow_ups: &[(CheckUp, 0.8)],
        admission_codes: &[],
        comorbidity_code: None,
    },
    Condition {
        name: "severe mental illness",
        codelist: "qof/mh_cod",
        codes: &[("58214004", 4), ("13746004", 3), ("69322001", 2)],
        target_percent: 0.9,
        min_age: 0,
        onset_min_age: 16,
        age_knots: &[
            (0, -7.0),
            (15, -2.0),
            (25, 0.0),
            (45, 0.0),
            (65, -0.3),
            (85, -0.8),
            (100, -1.0),
        ],
        female_log_odds: 0.0,
        deprivation_log_odds: 0.8,
        loading: 0.5,
        follow_ups: &[
            (BloodPressure, 0.5),
            (BodyMassIndex, 0.5),
            (Cholesterol, 0.4),
            (Review, 0.8),
        ],
        admission_codes: &["F209"],
        comorbidity_code: Some("F209"),
    },
    Condition {
        name: "osteoporosis",
        codelist: "qof/osteo_cod",
        codes: &[("64859006", 10)],
        target_percent: 0.8,
        min_age: 50,
        onset_min_age: 50,
        age_knots: &[
            (0, -14.0),
            (40, -8.0),
            (50, -6.0),
            (60, -4.5),
            (70, -3.3),
            (80, -2.3),
            (90, -1.7),
            (100, -1.5),
        ],
        female_log_odds: 1.8,
        deprivation_log_odds: 0.2,
        loading: 0.8,
        follow_ups: &[(MedicationReview, 0.5)],
        admission_codes: &["S720"],
        comorbidity_code: Some("M819"),
    },
    Condition {
        name: "peripheral arterial disease",
        codelist: "qof/pad_cod",
        codes: &[("400047006", 5), ("840580004", 3), ("399957001", 1)],
        target_percent: 0.6,
        min_age: 0,
        onset_min_age: 40,
        age_knots: &[
            (0, -14.0),
            (40, -8.0),
            (50, -6.0),
            (60, -4.7),
            (70, -3.6),
            (80, -2.9),
            (100, -2.6),
        ],
        female_log_odds: -0.4,
        deprivation_log_odds: 0.5,
        loading: 1.0,
        follow_ups: &[(Cholesterol, 0.7)],
        admission_codes: &["I739"],
        comorbidity_code: Some("I739"),
    },
    Condition {
        name: "rheumatoid arthritis",
        codelist: "qof/rarth_cod",
        codes: &[("69896004", 10)],
        target_percent: 0.8,
        min_age: 16,
        onset_min_age: 20,
        age_knots: &[
            (0, -10.0),
            (16, -7.0),
            (30, -5.5),
            (50, -4.3),
            (70, -3.5),
            (90, -3.4),
            (100, -3.4),
        ],
        female_log_odds: 0.9,
        deprivation_log_odds: 0.2,
        loading: 0.6,
        follow_ups: &[(Review, 0.8), (MedicationReview, 0.5)],
        admission_codes: &[],
        comorbidity_code: Some("M069"),
    },
    Condition {
        name: "cancer (solid)",
        codelist: "qof/c19can_cod",
        codes: &[
            ("254837009", 4),
            ("399068003", 4),
            ("363406005", 2),
            ("93880001", 2),
            ("363358000", 1),
            ("363351006", 1),
        ],
        target_percent: 2.7,
        min_age: 0,
        onset_min_age: 25,
        age_knots: &[
            (0, -8.0),
            (20, -7.0),
            (30, -6.2),
            (40, -5.2),
            (50, -4.2),
            (60, -3.2),
            (70, -2.4),
            (80, -1.9),
            (90, -1.7),
            (100, -1.7),
        ],
        female_log_odds: 0.0,
        deprivation_log_odds: 0.0,
        loading: 0.7,
        follow_ups: &[(Review, 0.6)],
        admission_codes: &["C349", "C509", "C189", "C61", "C679"],
        comorbidity_code: None,
    },
    Condition {
        name: "cancer (haematological)",
        codelist: "qof/c19haemcan_cod",
        codes: &[
            ("92814006", 3),
            ("109989006", 2),
            ("118601006", 3),
            ("91861009", 1),
        ],
        target_percent: 0.5,
        min_age: 0,
        onset_min_age: 20,
        age_knots: &[
            (0, -7.0),
            (20, -6.5),
            (40, -5.5),
            (60, -4.0),
            (70, -3.3),
            (80, -2.9),
            (100, -2.8),
        ],
        female_log_odds: -0.2,
        deprivation_log_odds: 0.0,
        loading: 0.7,
        follow_ups: &[(Review, 0.8)],
        admission_codes: &["C911", "C900"],
        comorbidity_code: None,
    },
    Condition {
        name: "palliative care",
        codelist: "qof/palcare_cod",
        codes: &[("103735009", 10)],
        target_percent: 0.4,
        min_age: 0,
        onset_min_age: 30,
        age_knots: &[
            (0, -12.0),
            (50, -8.0),
            (70, -5.5),
            (80, -4.3),
            (90, -3.2),
            (100, -2.8),
        ],
        female_log_odds: 0.0,
        deprivation_log_odds: 0.1,
        loading: 1.5,
        follow_ups: &[(Review, 2.0)],
        admission_codes: &["Z515"],
        comorbidity_code: Some("Z515"),
    },
];

/// Log-odds offset of `condition` at each single year of age.
fn age_offsets(condition: &Condition) -> [f64; MAX_AGE + 1] {
    let mut out = [0.0; MAX_AGE + 1];
    let knots = condition.age_knots;
    for (age, slot) in out.iter_mut().enumerate() {
        let a = age as f64;
        *slot = match knots.iter().position(|(k, _)| f64::from(*k) >= a) {
            None => knots.last().map(|k| k.1).unwrap_or(0.0),
            Some(0) => knots.first().map(|k| k.1).unwrap_or(0.0),
            Some(i) => {
                let (a0, y0) = (f64::from(knots[i - 1].0), knots[i - 1].1);
                let (a1, y1) = (f64::from(knots[i].0), knots[i].1);
                y0 + (y1 - y0) * (a - a0) / (a1 - a0)
            }
        };
    }
    out
}

#[inline]
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Log-odds contribution of living in an LSOA of the given IMD decile.
#[inline]
pub fn deprivation_effect(condition: &Condition, decile: u8) -> f64 {
    condition.deprivation_log_odds * f64::from(10u8.saturating_sub(decile.clamp(1, 10))) / 9.0
}

/// People registered at the extract date by age, sex and IMD decile
/// (`weights[age][female as usize][decile - 1]`), for calibration.
pub struct RegisteredMix {
    pub weights: Vec<[[f64; 10]; 2]>,
}

/// Per-run condition model: everything but the person.
pub struct ConditionModel {
    /// `[condition][age]`: intercept plus age offset.
    pub age_logit: Vec<[f64; MAX_AGE + 1]>,
}

impl ConditionModel {
    /// Solves each condition's intercept so the expected prevalence among
    /// registered people over its QOF denominator equals its target.
    pub fn calibrate(mix: &RegisteredMix) -> ConditionModel {
        // Quadrature for the latent factor: a fine grid over N(0, 1).
        const POINTS: usize = 24;
        let grid: Vec<(f64, f64)> = {
            let raw: Vec<(f64, f64)> = (0..POINTS)
                .map(|i| {
                    let z = -4.0 + 8.0 * (i as f64 + 0.5) / POINTS as f64;
                    (z, (-0.5 * z * z).exp())
                })
                .collect();
            let total: f64 = raw.iter().map(|p| p.1).sum();
            raw.into_iter().map(|(z, w)| (z, w / total)).collect()
        };
        let age_logit = CONDITIONS
            .iter()
            .map(|condition| {
                let offsets = age_offsets(condition);
                // Cells of the denominator: (weight, log-odds without intercept).
                let mut cells: Vec<(f64, f64)> = Vec::new();
                for (age, by_sex) in mix.weights.iter().enumerate().skip(condition.min_age) {
                    for (female, by_decile) in by_sex.iter().enumerate() {
                        for (d, &w) in by_decile.iter().enumerate() {
                            if w > 0.0 {
                                let lp = offsets[age.min(MAX_AGE)]
                                    + if female == 1 {
                                        condition.female_log_odds
                                    } else {
                                        0.0
                                    }
                                    + deprivation_effect(condition, d as u8 + 1);
                                cells.push((w, lp));
                            }
                        }
                    }
                }
                let total: f64 = cells.iter().map(|c| c.0).sum();
                let target = condition.target_percent / 100.0;
                let prevalence = |intercept: f64| -> f64 {
                    let mut sum = 0.0;
                    for &(w, lp) in &cells {
                        let mut p = 0.0;
                        for &(z, q) in &grid {
                            p += q * sigmoid(intercept + lp + condition.loading * z);
                        }
                        sum += w * p;
                    }
                    if total > 0.0 {
                        sum / total
                    } else {
                        0.0
                    }
                };
                let (mut lo, mut hi) = (-30.0f64, 15.0f64);
                for _ in 0..48 {
                    let mid = 0.5 * (lo + hi);
                    if prevalence(mid) < target {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                let intercept = 0.5 * (lo + hi);
                let mut row = offsets;
                for v in row.iter_mut() {
                    *v += intercept;
                }
                row
            })
            .collect();
        ConditionModel { age_logit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_offsets_interpolate_between_knots() {
        let hyp = &CONDITIONS[HYPERTENSION];
        let offsets = age_offsets(hyp);
        assert_eq!(offsets[0], -9.0);
        assert!((offsets[25] - (-4.85)).abs() < 1e-12);
        assert_eq!(offsets[100], 0.5);
    }

    #[test]
    fn calibration_hits_each_target_on_a_one_cell_population() {
        // Everyone is a 70-year-old man in decile 5: the expected prevalence
        // over the latent factor must then equal each condition's target.
        let mut weights = vec![[[0.0; 10]; 2]; MAX_AGE + 1];
        weights[70][0][4] = 1.0;
        let model = ConditionModel::calibrate(&RegisteredMix { weights });
        for (c, condition) in CONDITIONS.iter().enumerate() {
            let lp = model.age_logit[c][70] + deprivation_effect(condition, 5);
            // A finer quadrature than calibration uses; within 1% of the target.
            let (mut p, mut total) = (0.0, 0.0);
            for i in 0..2_000 {
                let z = -6.0 + 12.0 * (f64::from(i) + 0.5) / 2_000.0;
                let w = (-0.5 * z * z).exp();
                p += w * sigmoid(lp + condition.loading * z);
                total += w;
            }
            let prevalence = 100.0 * p / total;
            assert!(
                (prevalence - condition.target_percent).abs() < 0.01 * condition.target_percent,
                "{}: {prevalence} vs {}",
                condition.name,
                condition.target_percent
            );
        }
        let hyp = &model.age_logit[HYPERTENSION];
        assert!(hyp[80] > hyp[40] && hyp[40] > hyp[20]);
    }

    #[test]
    fn conditions_are_listed_in_index_order() {
        assert_eq!(CONDITIONS[CKD].codelist, "qof/ckd_cod");
        assert_eq!(CONDITIONS[PALLIATIVE_CARE].codelist, "qof/palcare_cod");
        assert_eq!(
            CONDITIONS[HAEMATOLOGICAL_CANCER].codelist,
            "qof/c19haemcan_cod"
        );
        assert_eq!(CONDITIONS[DEMENTIA].name, "dementia");
    }
}
