//! strata: a population risk stratification batch engine for general practice.
//!
//! Data flows one way (see `DESIGN.md` in the repository root):
//!
//! ```text
//! dataset/ (read + validate input -> Arrow)   pack/ (TOML + SQL -> checked model; no Arrow)
//!             \                                /
//!              plan/  (checked pack -> physical plan: columns and aggregates as indices,
//!                      explicit casts, codelist match sets, windows as date bounds)
//!                           |
//!              exec/  (rayon over record batches: evaluates the physical plan only)
//!                           |
//!              list/  (rank per practice, diff vs previous, write CSV/Parquet, manifest)
//!
//!              synth/ (synthetic populations)
//! ```
//!
//! [`contract`] holds the input contract's names and types; [`run::run`] is
//! the run as a library call, returning an [`Error`] that says whose fault
//! it is. The binary (`src/main.rs`) is a thin shell over [`cli`].

pub mod cli;
pub mod contract;
pub mod dataset;
pub mod error;
pub mod exec;
pub mod list;
pub mod pack;
pub mod plan;
pub mod reference;
pub mod report;
pub mod run;
pub mod synth;

/// The version of strata (the crate's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use error::{Blame, Error};
pub use run::{run, score, RunConfig, RunSummary, ScoreResult};
