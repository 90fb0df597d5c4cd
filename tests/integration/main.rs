//! Integration tests, in one test binary so the suite links against Arrow
//! and Parquet once: the CLI as a user sees it, the engine against the
//! reference evaluator, the pack language, whole runs, the physical plan
//! and `strata synth`.

mod cli;
mod common;
mod differential;
mod examples;
mod extracts;
mod fuzz;
mod library;
mod pack_language;
mod plan;
mod report;
mod run;
mod security;
mod synth;
