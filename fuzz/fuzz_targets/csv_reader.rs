//! The CSV reader: any bytes as the patients table or an event table, read
//! as a run reads them (patients, then every event batch, serially and in
//! parallel chunks). An error is fine; a panic, a hang or an abort is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PATIENTS: &[u8] = b"patient_id,practice_code,date_of_birth,sex,lsoa_code\n1,L1,1950-01-01,F,E01000001\n2,L1,1960-02-29,M,\n";
const EVENTS: &[u8] = b"patient_id,code,date,value\n1,44054006,2019-01-01,1.5\n2,X,2020-01-01,\n";

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let d = scratch::dir(|_| {});
    let (patients, events) = if which & 1 == 0 {
        (bytes, EVENTS)
    } else {
        (PATIENTS, bytes)
    };
    std::fs::write(d.join("patients.csv"), patients).unwrap();
    std::fs::write(d.join("events.csv"), events).unwrap();
    let Ok(ds) = strata::dataset::Dataset::open(d) else {
        return;
    };
    let Ok(patients) = ds.read_patients() else {
        return;
    };
    for table in &ds.event_tables {
        if let Ok(reader) = strata::dataset::EventReader::open(table) {
            for batch in reader {
                if batch.is_err() {
                    break;
                }
            }
        }
    }
    // Findings and the summary walk every row again.
    let _ = strata::dataset::quality::summarise(&ds);
    let _ = patients.len();
});
