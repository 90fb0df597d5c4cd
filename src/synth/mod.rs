//! Synthetic populations in the input contract (`strata synth`).
//!
//! [`generate`] writes a dataset folder that looks like a real south-west
//! England PCN extract: `patients`, `events` (SNOMED CT), `admissions`
//! (ICD-10), `medications` (dm+d), `contacts` and `dataset.toml`. Nobody in it is real.
//!
//! - [`practices`] lays out practices, PCNs, catchments of real 2011 LSOAs
//!   with their IMD 2019 deciles, and each practice's age pyramid;
//! - [`conditions`] holds the long-term conditions, their codes and their
//!   calibration to national QOF prevalence;
//! - [`person`] writes one chunk of people and their records;
//! - [`write`] turns chunks into Parquet or CSV.
//!
//! Patients are generated in chunks, each from its own ChaCha stream keyed
//! by (seed, chunk index), in parallel with rayon, and written in chunk
//! order: the same arguments give byte-identical files on any machine and
//! any number of threads. The folder is written under a temporary sibling
//! name and renamed into place only when complete.

pub mod conditions;
pub mod frailty;
pub mod medicines;
pub mod person;
pub mod practices;
pub mod random;
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use chrono::NaiveDate;
use rayon::prelude::*;

use conditions::{ConditionModel, RegisteredMix};
use person::{date_to_days, generate_chunk, RunModel};
use practices::{female_share, plan_practices, MAX_AGE, MAX_PRACTICES};
use write::{encode, EncodedChunk, TableWriters};

/// Patients per chunk: small enough that a wave of chunks stays in cache-
/// friendly, bounded memory, large enough to amortise per-chunk work.
const CHUNK_PATIENTS: u64 = 8_192;

/// Most patients one run will generate.
pub const MAX_PATIENTS: u64 = 1_000_000_000;

/// Table file format of a generated dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Parquet,
    Csv,
}

/// What to generate and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    /// People in the output, including those who died or left in the last five years.
    pub patients: u64,
    pub practices: u32,
    pub seed: u64,
    /// Dataset folder to create (must not exist, or be empty).
    pub out: PathBuf,
    pub format: OutputFormat,
    /// The day the data was "taken from the clinical system".
    pub extract_date: NaiveDate,
}

/// 23 March 2020: the first lockdown was announced, and the seed practices
/// began phoning their most vulnerable patients.
pub fn default_extract_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 3, 23).unwrap_or(NaiveDate::MIN)
}

impl SynthConfig {
    /// A Parquet dataset with the default extract date.
    pub fn new(patients: u64, practices: u32, seed: u64, out: impl Into<PathBuf>) -> SynthConfig {
        SynthConfig {
            patients,
            practices,
            seed,
            out: out.into(),
            format: OutputFormat::Parquet,
            extract_date: default_extract_date(),
        }
    }

    /// The command line that reproduces this dataset (recorded in dataset.toml).
    pub fn command_line(&self) -> String {
        let format = match self.format {
            OutputFormat::Parquet => "",
            OutputFormat::Csv => " --format csv",
        };
        format!(
            "strata synth --patients {} --practices {} --seed {} --extract-date {}{format}",
            self.patients, self.practices, self.seed, self.extract_date
        )
    }
}

/// One practice of a generated dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticeSummary {
    pub code: String,
    pub pcn_code: String,
    /// Local authority district its catchment lies in.
    pub district: String,
    /// Rows in `patients` (registered, deregistered and dead).
    pub patients: u64,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    pub out: PathBuf,
    pub patients: u64,
    pub events: u64,
    pub admissions: u64,
    pub contacts: u64,
    pub medications: u64,
    pub practices: Vec<PracticeSummary>,
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid synth settings: {0}")]
    InvalidConfig(String),
    #[error(
        "{path}: already exists and is not an empty folder; choose a new --out or remove it first"
    )]
    OutputExists { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("building Arrow batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("internal error: {0}")]
    Internal(String),
}

fn validate(cfg: &SynthConfig) -> Result<(), SynthError> {
    let bad = |m: String| Err(SynthError::InvalidConfig(m));
    if cfg.practices == 0 || cfg.practices > MAX_PRACTICES {
        return bad(format!(
            "--practices must be between 1 and {MAX_PRACTICES} (got {})",
            cfg.practices
        ));
    }
    if cfg.patients < u64::from(cfg.practices) || cfg.patients > MAX_PATIENTS {
        return bad(format!(
            "--patients must be between the number of practices ({}) and {MAX_PATIENTS} (got {})",
            cfg.practices, cfg.patients
        ));
    }
    let year = chrono::Datelike::year(&cfg.extract_date);
    if !(1990..=2100).contains(&year) {
        return bad(format!(
            "--extract-date must be between 1990 and 2100 (got {})",
            cfg.extract_date
        ));
    }
    Ok(())
}

/// Refuses to replace anything but a missing or empty folder.
fn check_output(out: &Path) -> Result<(), SynthError> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(SynthError::OutputExists {
                    path: out.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => Err(SynthError::OutputExists {
            path: out.to_path_buf(),
        }),
    }
}

/// The registered population's mix of age, sex and IMD decile, summed over
/// practices, for calibrating condition prevalence.
fn registered_mix(practices: &[practices::Practice]) -> RegisteredMix {
    let mut weights = vec![[[0.0; 10]; 2]; MAX_AGE + 1];
    for p in practices {
        let mut deciles = [0.0; 10];
        for area in &p.catchment {
            deciles[usize::from(area.imd_decile.clamp(1, 10)) - 1] += 1.0;
        }
        let areas = p.catchment.len().max(1) as f64;
        for (age, share) in p.age_shares.iter().enumerate() {
            let female = female_share(age);
            for (d, n) in deciles.iter().enumerate() {
                let w = p.patients as f64 * share * n / areas;
                weights[age][1][d] += w * female;
                weights[age][0][d] += w * (1.0 - female);
            }
        }
    }
    RegisteredMix { weights }
}

/// Generates the dataset described by `cfg`.
pub fn generate(cfg: &SynthConfig) -> Result<SynthSummary, SynthError> {
    validate(cfg)?;
    check_output(&cfg.out)?;
    let parent = match cfg.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = cfg
        .out
        .file_name()
        .ok_or_else(|| {
            SynthError::InvalidConfig(format!("{}: not a folder name", cfg.out.display()))
        })?
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(&parent).map_err(|source| SynthError::Io {
        path: parent.clone(),
        source,
    })?;
    let staging = parent.join(format!(".{name}.synth-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|source| SynthError::Io {
            path: staging.clone(),
            source,
        })?;
    }
    std::fs::create_dir(&staging).map_err(|source| SynthError::Io {
        path: staging.clone(),
        source,
    })?;
    let result = write_dataset(cfg, &staging).and_then(|summary| {
        // An empty folder at `out` is replaced; anything else was refused above.
        if cfg.out.exists() {
            std::fs::remove_dir(&cfg.out).map_err(|source| SynthError::Io {
                path: cfg.out.clone(),
                source,
            })?;
        }
        std::fs::rename(&staging, &cfg.out).map_err(|source| SynthError::Io {
            path: cfg.out.clone(),
            source,
        })?;
        Ok(summary)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn write_dataset(cfg: &SynthConfig, dir: &Path) -> Result<SynthSummary, SynthError> {
    let practices = plan_practices(&mut random::plan_rng(cfg.seed), cfg.practices, cfg.patients);
    let conditions = ConditionModel::calibrate(&registered_mix(&practices));
    let model = RunModel {
        seed: cfg.seed,
        extract: date_to_days(cfg.extract_date),
        practices,
        conditions,
    };
    let chunks = cfg.patients.div_ceil(CHUNK_PATIENTS);
    // Chunks in flight: enough to keep every worker busy while the writer
    // drains the previous wave, few enough to bound memory.
    let wave = (rayon::current_num_threads() as u64 * 2).max(2);
    let mut totals = [0u64; 5];
    let (sender, receiver) = mpsc::sync_channel::<EncodedChunk>(wave as usize);
    let writer_result = std::thread::scope(|scope| -> Result<(), SynthError> {
        let writer = scope.spawn(move || -> Result<(), SynthError> {
            let mut tables = TableWriters::create(dir, cfg.format)?;
            for chunk in receiver {
                tables.append(dir, chunk)?;
            }
            tables.finish(dir)
        });
        let mut produce = || -> Result<(), SynthError> {
            let mut start = 0u64;
            while start < chunks {
                let end = (start + wave).min(chunks);
                let encoded: Vec<Result<(EncodedChunk, [u64; 5]), SynthError>> = (start..end)
                    .into_par_iter()
                    .map(|c| {
                        let first = c * CHUNK_PATIENTS;
                        let count = CHUNK_PATIENTS.min(cfg.patients - first);
                        let chunk = generate_chunk(&model, c, first, count);
                        let rows = EncodedChunk::rows(&chunk);
                        Ok((encode(&chunk, &model.practices, cfg.format)?, rows))
                    })
                    .collect();
                for item in encoded {
                    let (chunk, rows) = item?;
                    for (t, n) in totals.iter_mut().zip(rows) {
                        *t += n;
                    }
                    if sender.send(chunk).is_err() {
                        // The writer stopped: its own error says why.
                        return Ok(());
                    }
                }
                start = end;
            }
            Ok(())
        };
        let produced = produce();
        drop(sender);
        let written = writer
            .join()
            .map_err(|_| SynthError::Internal("the table writer thread panicked".into()))?;
        written.and(produced)
    });
    writer_result?;
    let meta = format!(
        "# Synthetic population: no real person's data.\nextract_date = {}\nsource = \"{}\"\n\
         # The LSOA codes are 2011 LSOAs; imd_decile is IMD 2019.\nlsoa_vintage = 2011\nimd = \"2019\"\n",
        cfg.extract_date,
        cfg.command_line()
    );
    let meta_path = dir.join("dataset.toml");
    std::fs::write(&meta_path, meta).map_err(|source| SynthError::Io {
        path: meta_path,
        source,
    })?;
    Ok(SynthSummary {
        out: cfg.out.clone(),
        patients: totals[0],
        events: totals[1],
        admissions: totals[2],
        contacts: totals[3],
        medications: totals[4],
        practices: model
            .practices
            .iter()
            .map(|p| PracticeSummary {
                code: p.code.clone(),
                pcn_code: p.pcn_code.clone(),
                district: p.district_name.clone(),
                patients: p.patients,
            })
            .collect(),
    })
}
