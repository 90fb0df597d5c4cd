//! Helpers the integration tests share.

use std::path::{Path, PathBuf};

/// A folder under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Writes named columns as one Parquet file.
pub fn write_parquet(path: &Path, columns: Vec<(&str, arrow::array::ArrayRef)>) {
    let batch = arrow::record_batch::RecordBatch::try_from_iter(columns).expect("batch");
    let file = std::fs::File::create(path).expect("file");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// What a run of the `strata` binary gave.
pub struct Outcome {
    /// The exit code (-1 when ended by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs strata from the repository root, so paths in output are relative.
pub fn strata_in_repo(args: &[&str]) -> Outcome {
    run_in(args, Some(Path::new(env!("CARGO_MANIFEST_DIR"))))
}

/// Runs strata with `args`, in `dir` (else the test's own folder).
pub fn run_in(args: &[&str], dir: Option<&Path>) -> Outcome {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(args).env("NO_COLOR", "1");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd.output().expect("the strata binary runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
