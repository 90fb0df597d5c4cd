//! `list.parquet` encoded a column per thread.
//!
//! One encoder for every column falls behind the practices' CSV lists
//! (dictionary-encoding the reasons and text columns is most of its work),
//! so each row group's columns are encoded side by side and then written in
//! column order, as the parquet crate's `ArrowColumnWriter` describes. Row
//! groups split where `ArrowWriter` would split them, so the file holds the
//! same row groups either way.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowLeafColumn};
use parquet::arrow::ArrowWriter;
use parquet::errors::{ParquetError, Result};

/// Leaves queued for each column's thread.
const QUEUED: usize = 8;

/// Writes every batch from `batches`, in order, through `writer` (its
/// schema is `schema`), in row groups of at most `max_rows` rows, and
/// closes the file.
pub fn encode<W: Write + Send>(
    writer: ArrowWriter<W>,
    schema: &SchemaRef,
    max_rows: usize,
    batches: Receiver<RecordBatch>,
) -> Result<()> {
    let (mut file, factory) = writer.into_serialized_writer()?;
    let max_rows = max_rows.max(1);
    // Empty batches (practices with nobody listed) hold nothing to write.
    let mut batches = batches.into_iter().filter(|b| b.num_rows() > 0);
    // The rows of a batch left over when a row group filled.
    let mut rest: Option<RecordBatch> = None;
    let mut group = 0;
    while let Some(first) = rest.take().or_else(|| batches.next()) {
        let columns = factory.create_column_writers(group)?;
        let chunks = std::thread::scope(|s| -> Result<Vec<ArrowColumnChunk>> {
            let mut workers = Vec::with_capacity(columns.len());
            for mut column in columns {
                let (tx, rx) = sync_channel::<ArrowLeafColumn>(QUEUED);
                let handle = s.spawn(move || -> Result<ArrowColumnChunk> {
                    for leaf in rx {
                        column.write(&leaf)?;
                    }
                    column.close()
                });
                workers.push((handle, tx));
            }
            let mut rows = 0;
            let mut next = Some(first);
            let mut sent = Ok(());
            while let Some(batch) = next.take() {
                let room = max_rows - rows;
                let batch = if batch.num_rows() > room {
                    rest = Some(batch.slice(room, batch.num_rows() - room));
                    batch.slice(0, room)
                } else {
                    batch
                };
                rows += batch.num_rows();
                sent = send_leaves(schema, &batch, &workers);
                if sent.is_err() || rows == max_rows {
                    break;
                }
                next = batches.next();
            }
            let mut chunks = Vec::with_capacity(workers.len());
            let mut failed = None;
            for (handle, tx) in workers {
                drop(tx);
                match handle.join() {
                    Ok(Ok(chunk)) => chunks.push(chunk),
                    Ok(Err(e)) => failed = failed.or(Some(e)),
                    Err(_) => {
                        failed = failed.or(Some(ParquetError::General(
                            "a column encoder thread failed".into(),
                        )))
                    }
                }
            }
            // A worker's own error explains a closed channel better.
            match failed {
                Some(e) => Err(e),
                None => sent.map(|_| chunks),
            }
        })?;
        let mut row_group = file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        group += 1;
    }
    file.close()?;
    Ok(())
}

/// Hands each column of `batch` to its thread (a flat schema: one leaf a
/// column, in column order).
fn send_leaves<T>(
    schema: &SchemaRef,
    batch: &RecordBatch,
    workers: &[(T, std::sync::mpsc::SyncSender<ArrowLeafColumn>)],
) -> Result<()> {
    let mut worker = workers.iter();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        for leaf in compute_leaves(field, array)? {
            let (_, tx) = worker
                .next()
                .ok_or_else(|| ParquetError::General("more leaves than columns".into()))?;
            tx.send(leaf)
                .map_err(|_| ParquetError::General("a column encoder stopped".into()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;

    /// Batches of 2, 0, 4 and 1 rows in row groups of at most 3: split where
    /// `ArrowWriter` splits them (3, 3, 1), every row in order.
    #[test]
    fn row_groups_split_as_the_arrow_writer_splits_them() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("rank", DataType::Int32, true),
            Field::new("reasons", DataType::Utf8, true),
        ]));
        let batch = |ranks: &[i32]| {
            let texts: Vec<Option<String>> = ranks
                .iter()
                .map(|r| (r % 3 != 0).then(|| format!("reason {}", r % 2)))
                .collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int32Array::from(ranks.to_vec())),
                    Arc::new(StringArray::from(texts)),
                ],
            )
            .unwrap()
        };
        let batches = [
            batch(&[1, 2]),
            batch(&[]),
            batch(&[3, 4, 5, 6]),
            batch(&[7]),
        ];
        let props = || {
            parquet::file::properties::WriterProperties::builder()
                .set_max_row_group_row_count(Some(3))
                .build()
        };
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
        let file = |p: &std::path::Path| std::fs::File::create(p).unwrap();
        let writer = ArrowWriter::try_new(file(&ours), schema.clone(), Some(props())).unwrap();
        let (tx, rx) = sync_channel(8);
        for b in &batches {
            tx.send(b.clone()).unwrap();
        }
        drop(tx);
        encode(writer, &schema, 3, rx).unwrap();
        let mut writer =
            ArrowWriter::try_new(file(&theirs), schema.clone(), Some(props())).unwrap();
        for b in &batches {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();

        let read = |path: std::path::PathBuf| {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
                    .unwrap();
            let groups: Vec<i64> = reader
                .metadata()
                .row_groups()
                .iter()
                .map(|g| g.num_rows())
                .collect();
            let rows: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
            let all = arrow::compute::concat_batches(&schema, &rows).unwrap();
            (groups, all)
        };
        let (our_groups, our_rows) = read(ours);
        let (their_groups, their_rows) = read(theirs);
        assert_eq!(our_groups, [3, 3, 1]);
        assert_eq!(our_groups, their_groups);
        assert_eq!(our_rows, their_rows);
        let ranks: Vec<i32> = our_rows
            .column(0)
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .values()
            .to_vec();
        assert_eq!(ranks, [1, 2, 3, 4, 5, 6, 7]);
        let reasons = our_rows
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(reasons.value(0), "reason 1");
        assert!(reasons.is_null(2));
    }
}
