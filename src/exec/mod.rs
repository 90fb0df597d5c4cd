//! Execution: rayon over Arrow record batches, from events to per-person
//! aggregates, features, points, tiers and reasons.

pub mod scan;
