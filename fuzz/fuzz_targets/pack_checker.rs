//! The pack parser and checker: any text as `pack.toml` (beside two small
//! codelists), then, for a pack that checks, its physical plan. Errors are
//! fine; a panic, a hang or an abort is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;

fn dir() -> &'static std::path::Path {
    scratch::dir(|d| {
        scratch::codelists(
            d,
            &[
                ("dm", "code,term\n44054006,Diabetes type 2\n73211009,Diabetes\n"),
                (
                    "efi",
                    "code,term,deficit,weight\n44054006,Diabetes,diabetes,1\n22298006,MI,heart,0.5\n",
                ),
            ],
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    std::fs::write(d.join("pack.toml"), data).unwrap();
    match strata::pack::load(d) {
        Ok(pack) => {
            let as_of = chrono::NaiveDate::from_ymd_opt(2020, 3, 23).unwrap();
            let _ = strata::plan::PhysicalPlan::compile(&pack, as_of);
        }
        // Rendering the diagnostics (source lines, carets) must not panic either.
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
});
