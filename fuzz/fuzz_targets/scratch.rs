//! A scratch folder for a fuzz target's files, made once per process (on
//! /dev/shm when there is one), with `setup` writing what stays fixed.

use std::path::Path;
use std::sync::OnceLock;

pub fn dir(setup: impl FnOnce(&Path)) -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        setup(d.path());
        d
    })
    .path()
}

/// Writes `codelists/<name>.csv` for each (name, text) (not every target has codelists).
#[allow(dead_code)]
pub fn codelists(dir: &Path, lists: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("codelists")).unwrap();
    for (name, text) in lists {
        std::fs::write(dir.join(format!("codelists/{name}.csv")), text).unwrap();
    }
}
