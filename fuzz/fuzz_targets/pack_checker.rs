//! The pack parser and checker: any text as `pack.toml` (beside two small
//! codelists), then, for a pack that checks, its physical plan. Errors are
//! fine; a panic, a hang or an abort is a bug.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        std::fs::create_dir_all(d.path().join("codelists")).unwrap();
        std::fs::write(
            d.path().join("codelists/dm.csv"),
            "code,term\n44054006,Diabetes type 2\n73211009,Diabetes\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("codelists/efi.csv"),
            "code,term,deficit,weight\n44054006,Diabetes,diabetes,1\n22298006,MI,heart,0.5\n",
        )
        .unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir().path();
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
