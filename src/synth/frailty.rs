//! Signs and symptoms of frailty in older people: the electronic Frailty
//! Index deficits that are not long-term condition registers (falls,
//! dizziness, hearing and visual impairment, memory problems …), so that
//! the `efi` pack finds plausibly frail people.
//!
//! Drawn from the chunk's *second* random stream (see [`super::person`]),
//! after everything else, so adding them left every other table's rows
//! as they were. Codes are SNOMED CT concepts from
//! `reference/codelists/efi/efi-deficits.csv` (sources in its README).
//!
//! Each sign is present with probability
//! `sigmoid(intercept + per_decade * (age - 75) / 10 + loading * z)` for
//! people aged 60 and over, `z` being the person's shared morbidity
//! factor (so frailty clusters with multimorbidity). The rates are set so
//! that, with the long-term conditions and prescriptions, the `efi` pack
//! bands people aged 65+ roughly as Clegg et al. (Age Ageing 2016) did:
//! on 100,000 people (seed 7) mild 28%, moderate 10%, severe 3% (Clegg:
//! 35%, 12%, 3%). Plausible, not fitted to a source.

use super::conditions::sigmoid;
use super::random::{chance, pick_weighted, SynthRng};

/// One coded sign: SNOMED CT codes with relative weights, and its model.
pub struct Sign {
    pub codes: &'static [(&'static str, u32)],
    /// Log-odds at age 75 with an average morbidity factor.
    pub intercept: f64,
    pub per_decade: f64,
    pub loading: f64,
}

const fn sign(
    codes: &'static [(&'static str, u32)],
    intercept: f64,
    per_decade: f64,
    loading: f64,
) -> Sign {
    Sign {
        codes,
        intercept,
        per_decade,
        loading,
    }
}

/// The signs, in the order they are drawn.
pub const SIGNS: [Sign; 13] = [
    // falls
    sign(&[("161898004", 1)], -0.9, 0.7, 1.1),
    // dizziness
    sign(&[("404640003", 3), ("249990003", 1)], -1.0, 0.4, 1.0),
    // dyspnoea
    sign(&[("267036007", 1)], -1.3, 0.4, 1.2),
    // fragility fracture
    sign(&[("306171000000106", 1)], -2.0, 0.7, 0.9),
    // hearing impairment
    sign(&[("15188001", 3), ("343087000", 1)], -0.5, 0.8, 0.7),
    // visual impairment
    sign(&[("397540003", 1)], -1.8, 0.8, 0.8),
    // mobility problems
    sign(&[("228158008", 1)], -1.4, 0.8, 1.2),
    // memory problems (beyond dementia)
    sign(&[("386807006", 1)], -1.7, 0.8, 1.0),
    // parkinsonism
    sign(&[("49049000", 1)], -3.4, 0.5, 0.8),
    // peptic ulcer
    sign(&[("13200003", 1)], -2.2, 0.2, 0.8),
    // sleep disturbance
    sign(&[("193462001", 1)], -1.2, 0.2, 0.9),
    // thyroid disease (hyperthyroidism)
    sign(&[("34486009", 1)], -2.8, 0.1, 0.7),
    // weight loss and anorexia
    sign(&[("89362005", 3), ("79890006", 1)], -1.9, 0.6, 1.1),
];

/// Appends the person's frailty signs (codes with a date in `lo..=hi`).
/// `age` is at the extract, `morbidity` the shared factor.
pub fn signs(
    rng: &mut SynthRng,
    age: usize,
    morbidity: f64,
    (lo, hi): (i32, i32),
    mut push: impl FnMut(i32, &'static str),
) {
    if age < 60 || lo > hi {
        return;
    }
    let decades = (age as f64 - 75.0) / 10.0;
    for s in &SIGNS {
        let p = sigmoid(s.intercept + s.per_decade * decades + s.loading * morbidity);
        if chance(rng, p) {
            if let Some(code) = pick_weighted(rng, s.codes) {
                // Signs of later life: mostly coded in the last ten years.
                let from = lo.max(hi - 3_650);
                push(super::random::between(rng, from, hi), code);
            }
        }
    }
}
