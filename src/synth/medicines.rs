//! Prescriptions: the `medications` table (dm+d codes), one row per issue.
//!
//! People with a long-term condition are often on its usual medicines;
//! older people also get the medicines of later life (a proton pump
//! inhibitor, a statin, pain relief, laxatives). Each medicine a person is
//! on is issued every 28 or 56 days over the last 15 months of their
//! record, so "distinct medicines in the last 12 months" (polypharmacy)
//! and "4 or more prescriptions in the last 12 months" (the Cambridge
//! Multimorbidity Score's prescription rules) both have something to find.
//!
//! Drawn from the chunk's second random stream, like [`super::frailty`].
//! Codes are dm+d products from `reference/codelists/dmd/medicines.csv`
//! (sources in its README). The shares are plausible, not fitted.

use super::conditions::{
    ASTHMA, ATRIAL_FIBRILLATION, CHD, CONDITION_COUNT, COPD, DEMENTIA, DEPRESSION, DIABETES,
    EPILEPSY, HEART_FAILURE, HYPERTENSION, RHEUMATOID_ARTHRITIS, SEVERE_MENTAL_ILLNESS,
};
use super::random::{between, chance, SynthRng};

/// What the prescriber knows about the person.
pub struct Patient<'a> {
    /// Age at the extract.
    pub age: usize,
    pub conditions: &'a [bool; CONDITION_COUNT],
    /// First day of the record (birth, or the start of the kept record).
    pub start: i32,
    /// Last day of the record (the extract, death or leaving).
    pub end: i32,
}

/// Who is on a medicine: people with `condition` (or everyone when
/// `None`) aged at least `min_age`, with probability `share`.
struct Use {
    condition: Option<usize>,
    min_age: usize,
    share: f64,
    /// dm+d code.
    code: &'static str,
}

const fn on(condition: usize, share: f64, code: &'static str) -> Use {
    Use {
        condition: Some(condition),
        min_age: 0,
        share,
        code,
    }
}

const fn older(min_age: usize, share: f64, code: &'static str) -> Use {
    Use {
        condition: None,
        min_age,
        share,
        code,
    }
}

/// dm+d codes of generic products (VMPs), each copied from an openly
/// licensed codelist: `reference/codelists/dmd/medicines.csv` gives the
/// term and source of every one.
pub mod dmd {
    pub const AMLODIPINE_5MG: &str = "319283006";
    pub const RAMIPRIL_5MG: &str = "318902004";
    pub const INDAPAMIDE_2_5MG: &str = "317956008";
    pub const BENDROFLUMETHIAZIDE_2_5MG: &str = "317919004";
    pub const ATORVASTATIN_20MG: &str = "320030001";
    pub const SIMVASTATIN_40MG: &str = "320000009";
    pub const METFORMIN_500MG: &str = "325278007";
    pub const ASPIRIN_75MG: &str = "319773006";
    pub const BISOPROLOL_5MG: &str = "318590006";
    pub const APIXABAN_5MG: &str = "703908001";
    pub const EDOXABAN_60MG: &str = "29903411000001101";
    pub const FUROSEMIDE_40MG: &str = "317972000";
    pub const SALBUTAMOL_INHALER: &str = "320139002";
    pub const BECLOMETASONE_INHALER: &str = "35908111000001105";
    pub const SERTRALINE_50MG: &str = "39704111000001102";
    pub const AMITRIPTYLINE_10MG: &str = "42291111000001104";
    pub const ZOPICLONE_7_5MG: &str = "42139411000001100";
    pub const PREGABALIN_75MG: &str = "42135711000001109";
    pub const METHOTREXATE_2_5MG: &str = "326874007";
    pub const OMEPRAZOLE_20MG: &str = "317291008";
    pub const LANSOPRAZOLE_30MG: &str = "317309001";
    pub const LACTULOSE: &str = "42354411000001105";
    pub const SENNA_7_5MG: &str = "42358311000001108";
    pub const MACROGOL: &str = "3591211000001105";
    pub const MEBEVERINE_135MG: &str = "42355011000001102";
    pub const LITHIUM_CARBONATE_400MG_MR: &str = "39110111000001103";
    pub const LEVETIRACETAM_500MG: &str = "42131311000001108";
    pub const CO_CODAMOL_30_500: &str = "42009811000001101";
}

use dmd::*;

/// Every medicine use, in the order it is drawn. Only medicines with an
/// open dm+d code are used (no open list gave gliclazide, tiotropium,
/// donepezil, alendronic acid or paracetamol), so those people are on
/// fewer medicines than in life.
const USES: &[Use] = &[
    on(HYPERTENSION, 0.55, AMLODIPINE_5MG),
    on(HYPERTENSION, 0.50, RAMIPRIL_5MG),
    on(HYPERTENSION, 0.20, INDAPAMIDE_2_5MG),
    on(HYPERTENSION, 0.20, BENDROFLUMETHIAZIDE_2_5MG),
    on(HYPERTENSION, 0.35, ATORVASTATIN_20MG),
    on(DIABETES, 0.80, METFORMIN_500MG),
    on(DIABETES, 0.70, ATORVASTATIN_20MG),
    on(DIABETES, 0.40, RAMIPRIL_5MG),
    on(CHD, 0.80, ATORVASTATIN_20MG),
    on(CHD, 0.70, ASPIRIN_75MG),
    on(CHD, 0.60, BISOPROLOL_5MG),
    on(CHD, 0.40, RAMIPRIL_5MG),
    on(CHD, 0.40, LANSOPRAZOLE_30MG),
    on(ATRIAL_FIBRILLATION, 0.60, APIXABAN_5MG),
    on(ATRIAL_FIBRILLATION, 0.25, EDOXABAN_60MG),
    on(ATRIAL_FIBRILLATION, 0.60, BISOPROLOL_5MG),
    on(HEART_FAILURE, 0.80, FUROSEMIDE_40MG),
    on(HEART_FAILURE, 0.70, BISOPROLOL_5MG),
    on(HEART_FAILURE, 0.65, RAMIPRIL_5MG),
    on(ASTHMA, 0.70, SALBUTAMOL_INHALER),
    on(ASTHMA, 0.60, BECLOMETASONE_INHALER),
    on(COPD, 0.80, SALBUTAMOL_INHALER),
    on(COPD, 0.50, BECLOMETASONE_INHALER),
    on(DEPRESSION, 0.45, SERTRALINE_50MG),
    on(DEPRESSION, 0.12, ZOPICLONE_7_5MG),
    on(DEPRESSION, 0.10, AMITRIPTYLINE_10MG),
    on(EPILEPSY, 0.75, LEVETIRACETAM_500MG),
    on(RHEUMATOID_ARTHRITIS, 0.55, METHOTREXATE_2_5MG),
    on(RHEUMATOID_ARTHRITIS, 0.25, CO_CODAMOL_30_500),
    on(RHEUMATOID_ARTHRITIS, 0.25, PREGABALIN_75MG),
    on(RHEUMATOID_ARTHRITIS, 0.40, OMEPRAZOLE_20MG),
    on(SEVERE_MENTAL_ILLNESS, 0.15, LITHIUM_CARBONATE_400MG_MR),
    on(DEMENTIA, 0.30, LACTULOSE),
    on(DEMENTIA, 0.25, SENNA_7_5MG),
    older(60, 0.08, SIMVASTATIN_40MG),
    older(65, 0.25, OMEPRAZOLE_20MG),
    older(65, 0.15, LANSOPRAZOLE_30MG),
    older(65, 0.25, ATORVASTATIN_20MG),
    older(70, 0.10, ASPIRIN_75MG),
    older(60, 0.06, AMITRIPTYLINE_10MG),
    older(70, 0.08, PREGABALIN_75MG),
    older(70, 0.08, CO_CODAMOL_30_500),
    older(75, 0.18, SENNA_7_5MG),
    older(75, 0.08, LACTULOSE),
    older(75, 0.08, MACROGOL),
    older(75, 0.15, FUROSEMIDE_40MG),
    older(30, 0.02, MEBEVERINE_135MG),
    older(70, 0.06, ZOPICLONE_7_5MG),
];

/// Days of prescriptions written before the end of the record.
const HISTORY_DAYS: i32 = 456;

/// Appends the person's prescription issues (a medicine listed twice for
/// two conditions is issued once).
pub fn issues(rng: &mut SynthRng, p: &Patient<'_>, mut push: impl FnMut(i32, &'static str)) {
    let mut taken: Vec<&'static str> = Vec::new();
    for u in USES {
        let eligible = p.age >= u.min_age && u.condition.is_none_or(|c| p.conditions[c]);
        if !eligible || !chance(rng, u.share) || taken.contains(&u.code) {
            continue;
        }
        taken.push(u.code);
        let interval = if chance(rng, 0.7) { 28 } else { 56 };
        let mut day = (p.end - HISTORY_DAYS).max(p.start) + between(rng, 0, interval);
        while day <= p.end {
            push(day, u.code);
            day += interval + between(rng, -3, 3);
        }
    }
}
