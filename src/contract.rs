//! The input contract, written once: table and column names, which are
//! required, and the pack type each column has in expressions.
//!
//! The dataset reader, the pack checker, the planner, `synth`, `explain` and
//! the list writer all take names and types from here (DESIGN.md, "Input
//! contract"). Arrow-free: how a pack type is stored is the planner's
//! business.

use crate::pack::Type;

/// Table names with a fixed meaning; any other table is an event table.
pub const PATIENTS: &str = "patients";
pub const CONTACTS: &str = "contacts";
/// The usual event table (SNOMED CT coded).
pub const EVENTS: &str = "events";

// ---- patients ------------------------------------------------------------------

pub const PATIENT_ID: &str = "patient_id";
pub const PRACTICE_CODE: &str = "practice_code";
pub const PCN_CODE: &str = "pcn_code";
pub const DATE_OF_BIRTH: &str = "date_of_birth";
pub const SEX: &str = "sex";
pub const LSOA_CODE: &str = "lsoa_code";
pub const IMD_DECILE: &str = "imd_decile";
/// Derived from `imd_decile` (deciles 1 and 2 are quintile 1), never read
/// from a file.
pub const IMD_QUINTILE: &str = "imd_quintile";
pub const REGISTRATION_END: &str = "registration_end";
pub const DATE_OF_DEATH: &str = "date_of_death";

/// A column of the patients table fixed by the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatientColumn {
    pub name: &'static str,
    /// Its type in pack expressions.
    pub ty: Type,
    pub required: bool,
    /// Whether pack expressions may read it (`patient_id` never: a rule
    /// must not depend on a pseudonym).
    pub readable: bool,
}

const fn col(name: &'static str, ty: Type, required: bool, readable: bool) -> PatientColumn {
    PatientColumn {
        name,
        ty,
        required,
        readable,
    }
}

/// Every contract column of the patients table, in contract order.
pub const PATIENT_COLUMNS: [PatientColumn; 10] = [
    col(PATIENT_ID, Type::Str, true, false),
    col(PRACTICE_CODE, Type::Str, true, true),
    col(PCN_CODE, Type::Str, false, true),
    col(DATE_OF_BIRTH, Type::Date, true, true),
    col(SEX, Type::Str, false, true),
    col(LSOA_CODE, Type::Str, false, true),
    col(IMD_DECILE, Type::Int, false, true),
    col(IMD_QUINTILE, Type::Int, false, true),
    col(REGISTRATION_END, Type::Date, false, true),
    col(DATE_OF_DEATH, Type::Date, false, true),
];

/// Columns whose values identify a person or are their own dates: never
/// shown in a message, a log line, the manifest or the report.
pub fn is_personal(name: &str) -> bool {
    matches!(
        name,
        PATIENT_ID | DATE_OF_BIRTH | DATE_OF_DEATH | REGISTRATION_END | LSOA_CODE
    )
}

/// The contract column called `name`, if it is one.
pub fn patient_column(name: &str) -> Option<&'static PatientColumn> {
    PATIENT_COLUMNS.iter().find(|c| c.name == name)
}

/// The columns pack expressions may read, with their types.
pub fn readable_patient_columns() -> impl Iterator<Item = (&'static str, Type)> {
    PATIENT_COLUMNS
        .iter()
        .filter(|c| c.readable)
        .map(|c| (c.name, c.ty))
}

// ---- event tables and contacts ------------------------------------------------

pub const CODE: &str = "code";
pub const DATE: &str = "date";
pub const VALUE: &str = "value";
pub const OUTCOME: &str = "outcome";

/// Columns of an event table: `patient_id`, `code`, `date` required, `value` optional.
pub const EVENT_COLUMNS: [&str; 4] = [PATIENT_ID, CODE, DATE, VALUE];
pub const EVENT_REQUIRED: [&str; 3] = [PATIENT_ID, CODE, DATE];
/// Columns of the contacts table: `outcome` is optional.
pub const CONTACT_COLUMNS: [&str; 3] = [PATIENT_ID, DATE, OUTCOME];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract() {
        let required: Vec<&str> = PATIENT_COLUMNS
            .iter()
            .filter(|c| c.required)
            .map(|c| c.name)
            .collect();
        assert_eq!(required, [PATIENT_ID, PRACTICE_CODE, DATE_OF_BIRTH]);
        assert_eq!(readable_patient_columns().count(), 9);
        assert_eq!(patient_column("imd_decile").map(|c| c.ty), Some(Type::Int));
        assert!(patient_column("weight").is_none());
    }
}
