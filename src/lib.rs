//! strata: a population risk stratification batch engine for general practice.
//!
//! Data flows one way (see `DESIGN.md` in the repository root):
//!
//! ```text
//! dataset/ (read + validate input -> Arrow)   pack/ (TOML + SQL -> checked model; no Arrow)
//!             \                                /
//!              plan/  (model + schema -> typed plan: column indices, codelist bitsets, windows)
//!                           |
//!              exec/  (rayon over record batches: features -> score -> tier -> reasons)
//!                           |
//!              list/  (rank per practice, diff vs previous, write CSV/Parquet, manifest)
//!                           |
//!              report/ (HTML)                    synth/ (synthetic populations)
//! ```
//!
//! The binary (`src/main.rs`) is a thin shell over [`cli`].

pub mod cli;
pub mod dataset;
pub mod exec;
pub mod list;
pub mod pack;
pub mod plan;
pub mod reference;
pub mod report;
pub mod synth;
