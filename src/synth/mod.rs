//! Synthetic populations in the input contract (`strata synth`).
