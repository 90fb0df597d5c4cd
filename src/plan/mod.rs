//! Plans: a checked rule pack bound to a dataset's tables and an as-of date.
//!
//! The planner resolves everything the executor needs so that the executor
//! only evaluates: each event aggregate in the pack becomes an accumulator
//! ([`AccSpec`]) with its window turned into a date bound, and each event
//! table gets a [`TableScan`] that maps a code to the bitset of codelists it
//! belongs to (built once; exact match for SNOMED CT / dm+d, prefix match
//! for ICD-10).

pub mod scan;

pub use scan::{AccKind, AccSpec, CodeMatch, CodelistDef, ScanPlan, TableScan};

pub mod bind;
pub mod types;

pub use bind::{AggIndex, Plan, PlanError};
