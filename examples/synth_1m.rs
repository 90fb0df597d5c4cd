//! Times `strata synth` on a million patients (the speed target is at least
//! a million patients, with their ~30 million events, per minute).
//!
//! `cargo run --release --example synth_1m -- [PATIENTS] [PRACTICES] [SEED] [OUT] [csv]`
//! Without OUT the dataset goes to a temporary folder that is removed
//! afterwards. Run it under `/usr/bin/time -v` for the peak memory.

use std::time::Instant;

use strata::synth::{generate, OutputFormat, SynthConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| -> anyhow::Result<u64> {
        Ok(match args.get(i) {
            Some(text) => text.parse()?,
            None => default,
        })
    };
    let patients = arg(0, 1_000_000)?;
    let practices = u32::try_from(arg(1, 60)?)?;
    let seed = arg(2, 2020)?;
    let scratch = tempfile::tempdir()?;
    let out = match args.get(3) {
        Some(dir) => dir.into(),
        None => scratch.path().join("synth-1m"),
    };
    let started = Instant::now();
    let mut config = SynthConfig::new(patients, practices, seed, &out);
    if args.get(4).map(String::as_str) == Some("csv") {
        config.format = OutputFormat::Csv;
    }
    let summary = generate(&config)?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes: u64 = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{} patients, {} events, {} admissions, {} contacts, {} practices in {:.2} s \
         ({:.2} M patients/min, {:.1} M events/s); {:.1} MiB on disk",
        summary.patients,
        summary.events,
        summary.admissions,
        summary.contacts,
        summary.practices.len(),
        seconds,
        summary.patients as f64 / seconds * 60.0 / 1e6,
        summary.events as f64 / seconds / 1e6,
        bytes as f64 / (1024.0 * 1024.0),
    );
    Ok(())
}
