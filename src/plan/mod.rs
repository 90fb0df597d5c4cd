//! Plans: a checked rule pack compiled into the form the engine evaluates,
//! then bound to a dataset.
//!
//! [`lower`] turns each pack expression into a [`PhysicalExpr`] (columns
//! and aggregates as indices, explicit casts, `BETWEEN` lowered, `IN` sets
//! built once); [`scan`] plans the accumulators the event scan keeps and
//! the code -> codelist match sets of each event table (exact match for
//! SNOMED CT / dm+d, prefix match for ICD-10); [`bind`] assembles the
//! [`PhysicalPlan`] (printable with `strata check --plan`) and binds it to a
//! dataset as a [`Plan`]. The planner does all name resolution and type
//! coercion, so `exec` only evaluates.

pub mod bind;
pub mod lower;
pub mod physical;
pub mod scan;
pub mod types;

pub use bind::{
    OrderKeyPlan, PhysicalPlan, Plan, PlanError, PlannedFeature, PlannedOverride, PlannedRule,
};
pub use physical::{Aggregate, LiteralSet, PhysicalExpr};
pub use scan::{AccKind, AccSpec, CodeMatch, CodelistDef, ScanPlan, TableScan};
