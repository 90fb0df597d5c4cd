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
