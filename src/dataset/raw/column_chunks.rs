//! A Parquet file read a column chunk at a time.
//!
//! The parquet crate's reader for a plain `File` costs, for every page, two
//! duplicated file descriptors, two seeks, two closes and an 8 KiB buffered
//! read for the page header on top of the read of the page itself: the
//! synthetic events files have pages of about 14 KiB, so that was 460 000
//! system calls and 400 MB of extra copying at 10M people. Here each column
//! chunk the projection reads is fetched with one positioned read (`pread`,
//! no shared file position) and its page headers and pages are handed out
//! as slices of it, without copying.
//!
//! Only one row group's chunks are held at a time (the reader finishes a
//! row group before the next), and only chunks up to [`HOLD_CHUNK`] bytes,
//! up to [`HOLD_GROUP`] in all: anything else (a file with very large row
//! groups, or a read outside the chunks) is read as asked, a page at a
//! time, so memory stays bounded whatever the file. A reader is open on
//! each worker thread, so a run holds at most threads × [`HOLD_GROUP`]
//! (32 MiB on 2 cores; the synthetic files' row groups of a million events
//! are 3 MB across the three columns a pack reads).

use std::fs::File;
use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

/// The largest column chunk held whole.
const HOLD_CHUNK: u64 = 8 << 20;
/// The most held at once (one row group's chunks).
const HOLD_GROUP: u64 = 16 << 20;
/// Bytes read ahead for a page header outside a held chunk (headers are
/// tens to hundreds of bytes; a longer one reads on from the file).
const HEADER_READ: u64 = 4 << 10;

/// One projected column chunk: its bytes in the file and its row group.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    start: u64,
    end: u64,
    group: usize,
}

/// A Parquet file whose projected column chunks are read whole.
pub(super) struct ColumnChunks {
    file: Arc<File>,
    len: u64,
    /// The column chunks to be read, by start offset.
    spans: Vec<Span>,
    held: Mutex<Held>,
    /// [`HOLD_CHUNK`] and [`HOLD_GROUP`] (smaller in tests).
    hold_chunk: u64,
    hold_group: u64,
}

#[derive(Default)]
struct Held {
    group: usize,
    chunks: Vec<(u64, Bytes)>,
    bytes: u64,
}

impl ColumnChunks {
    /// `file` of `len` bytes, of which the chunks of `columns` (leaf column
    /// indices) in `groups` (row group indices) will be read.
    pub(super) fn new(
        file: File,
        len: u64,
        metadata: &ParquetMetaData,
        groups: &[usize],
        columns: &[usize],
    ) -> ColumnChunks {
        let mut spans = Vec::new();
        for &group in groups {
            let Some(rg) = metadata.row_groups().get(group) else {
                continue;
            };
            for &c in columns {
                let Some(col) = rg.columns().get(c) else {
                    continue;
                };
                let start = col
                    .dictionary_page_offset()
                    .unwrap_or(col.data_page_offset());
                let size = col.compressed_size();
                // A chunk the footer places outside the file is not held:
                // reading it fails where the parquet crate reads it.
                if let (Ok(start), Ok(size)) = (u64::try_from(start), u64::try_from(size)) {
                    if let Some(end) = start.checked_add(size).filter(|&e| e <= len) {
                        spans.push(Span { start, end, group });
                    }
                }
            }
        }
        spans.sort_by_key(|s| s.start);
        ColumnChunks {
            file: Arc::new(file),
            len,
            spans,
            held: Mutex::new(Held::default()),
            hold_chunk: HOLD_CHUNK,
            hold_group: HOLD_GROUP,
        }
    }

    /// The held bytes of the chunk that contains `start..end`, reading the
    /// chunk when it is not held yet; `None` when no chunk contains the
    /// range or it is too large to hold.
    fn chunk(&self, start: u64, end: u64) -> Result<Option<(Span, Bytes)>> {
        let i = self.spans.partition_point(|s| s.start <= start);
        let Some(&span) = i.checked_sub(1).and_then(|i| self.spans.get(i)) else {
            return Ok(None);
        };
        let size = span.end - span.start;
        if end > span.end || size > self.hold_chunk {
            return Ok(None);
        }
        let mut held = self.held.lock().map_err(|_| general("a reader failed"))?;
        if held.group != span.group {
            *held = Held {
                group: span.group,
                ..Held::default()
            };
        }
        if let Some((_, b)) = held.chunks.iter().find(|(s, _)| *s == span.start) {
            return Ok(Some((span, b.clone())));
        }
        if held.bytes + size > self.hold_group {
            return Ok(None);
        }
        let b = self.read_exact(span.start, size as usize)?;
        held.bytes += size;
        held.chunks.push((span.start, b.clone()));
        Ok(Some((span, b)))
    }

    /// `length` bytes from `start`, with one positioned read.
    fn read_exact(&self, start: u64, length: usize) -> Result<Bytes> {
        let mut buf = vec![0u8; length];
        read_exact_at(&self.file, &mut buf, start).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ParquetError::EOF(format!(
                    "expected to read {length} bytes at offset {start}, the file has {}",
                    self.len
                ))
            } else {
                ParquetError::External(Box::new(e))
            }
        })?;
        Ok(buf.into())
    }
}

fn general(msg: &str) -> ParquetError {
    ParquetError::General(msg.to_string())
}

impl Length for ColumnChunks {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for ColumnChunks {
    type T = std::io::Chain<bytes::buf::Reader<Bytes>, ReadAt>;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        // What the chunk holds from `start`, then the file after it. A
        // read from a chunk's very end reads ahead from the file instead
        // (what follows is read a few bytes at a time).
        let (first, rest) = match self.chunk(start, start.saturating_add(1))? {
            Some((span, b)) => (b.slice((start - span.start) as usize..), span.end),
            None => {
                let n = HEADER_READ.min(self.len.saturating_sub(start));
                let b = if n == 0 {
                    Bytes::new()
                } else {
                    self.read_exact(start, n as usize)?
                };
                (b, start + n)
            }
        };
        Ok(first.reader().chain(ReadAt {
            file: self.file.clone(),
            pos: rest,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        let end = start
            .checked_add(length as u64)
            .ok_or_else(|| general("a read past the largest file offset"))?;
        match self.chunk(start, end)? {
            Some((span, b)) => {
                let from = (start - span.start) as usize;
                Ok(b.slice(from..from + length))
            }
            None => self.read_exact(start, length),
        }
    }
}

/// Reads the file from a position of its own (positioned reads: the file's
/// shared position is never moved).
pub(super) struct ReadAt {
    file: Arc<File>,
    pos: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = read_at(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

fn read_exact_at(file: &File, mut buf: &mut [u8], mut pos: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, pos) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
    use parquet::arrow::{ArrowWriter, ProjectionMask};
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;

    /// 5 row groups of 1000 rows in pages of 100 rows; 3 columns.
    fn file() -> (tempfile::NamedTempFile, Vec<RecordBatch>) {
        let f = tempfile::NamedTempFile::new().unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .set_data_page_row_count_limit(100)
            .set_write_batch_size(50)
            .set_compression(Compression::SNAPPY)
            .build();
        let batch = |from: i32| {
            let ids: Vec<i32> = (from..from + 500).collect();
            let codes: Vec<String> = ids.iter().map(|i| format!("c{}", i % 37)).collect();
            let values: Vec<Option<i32>> =
                ids.iter().map(|i| (i % 5 != 0).then_some(i * 3)).collect();
            RecordBatch::try_from_iter([
                ("id", std::sync::Arc::new(Int32Array::from(ids)) as ArrayRef),
                (
                    "code",
                    std::sync::Arc::new(StringArray::from(codes)) as ArrayRef,
                ),
                (
                    "value",
                    std::sync::Arc::new(Int32Array::from(values)) as ArrayRef,
                ),
            ])
            .unwrap()
        };
        let batches: Vec<RecordBatch> = (0..10).map(|b| batch(b * 500)).collect();
        let mut w =
            ArrowWriter::try_new(f.reopen().unwrap(), batches[0].schema(), Some(props)).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
        (f, batches)
    }

    fn collect<T: ChunkReader + 'static>(
        b: ParquetRecordBatchReaderBuilder<T>,
        groups: &Option<Vec<usize>>,
        roots: &[usize],
    ) -> Vec<RecordBatch> {
        let mask = ProjectionMask::roots(b.parquet_schema(), roots.iter().copied());
        let b = b.with_projection(mask).with_batch_size(128);
        let b = match groups {
            Some(g) => b.with_row_groups(g.clone()),
            None => b,
        };
        b.build()
            .unwrap()
            .collect::<std::result::Result<Vec<_>, _>>()
            .unwrap()
    }

    /// Every batch read through `ColumnChunks` (with the given limits) for
    /// `groups` and `roots`, and the same read through a plain `File`.
    fn both_ways(
        path: &std::path::Path,
        groups: Option<Vec<usize>>,
        roots: &[usize],
        limits: (u64, u64),
    ) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
        let meta =
            ArrowReaderMetadata::load(&File::open(path).unwrap(), Default::default()).unwrap();
        let plain = collect(
            ParquetRecordBatchReaderBuilder::new_with_metadata(
                File::open(path).unwrap(),
                meta.clone(),
            ),
            &groups,
            roots,
        );
        let schema = meta.metadata().file_metadata().schema_descr();
        let mask = ProjectionMask::roots(schema, roots.iter().copied());
        let leaves: Vec<usize> = (0..schema.num_columns())
            .filter(|&i| mask.leaf_included(i))
            .collect();
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len();
        let all = groups
            .clone()
            .unwrap_or_else(|| (0..meta.metadata().num_row_groups()).collect());
        let mut chunks = ColumnChunks::new(file, len, meta.metadata(), &all, &leaves);
        (chunks.hold_chunk, chunks.hold_group) = limits;
        let chunked = collect(
            ParquetRecordBatchReaderBuilder::new_with_metadata(chunks, meta),
            &groups,
            roots,
        );
        (plain, chunked)
    }

    #[test]
    fn batches_read_a_chunk_at_a_time_are_those_read_from_the_file() {
        let (f, written) = file();
        let all: Vec<RecordBatch> = written;
        let whole = arrow::compute::concat_batches(&all[0].schema(), &all).unwrap();
        for limits in [
            (HOLD_CHUNK, HOLD_GROUP),
            (2000, 4000),
            (0, 0),
            (1 << 20, 3000),
        ] {
            for groups in [None, Some(vec![0]), Some(vec![1, 3]), Some(vec![4])] {
                for roots in [&[0, 1, 2][..], &[1][..], &[0, 2][..]] {
                    let (plain, chunked) = both_ways(f.path(), groups.clone(), roots, limits);
                    assert_eq!(plain, chunked, "{limits:?} {groups:?} {roots:?}");
                    let rows: usize = chunked.iter().map(|b| b.num_rows()).sum();
                    assert_eq!(rows, groups.as_ref().map_or(5000, |g| g.len() * 1000));
                }
            }
        }
        // And the values are the ones written.
        let (_, chunked) = both_ways(f.path(), None, &[0, 1, 2], (HOLD_CHUNK, HOLD_GROUP));
        let read = arrow::compute::concat_batches(&chunked[0].schema(), &chunked).unwrap();
        assert_eq!(read, whole);
    }

    #[test]
    fn reads_outside_the_chunks_and_past_the_end() {
        let (f, _) = file();
        let bytes = std::fs::read(f.path()).unwrap();
        let len = bytes.len() as u64;
        let meta =
            ArrowReaderMetadata::load(&File::open(f.path()).unwrap(), Default::default()).unwrap();
        let chunks = ColumnChunks::new(
            File::open(f.path()).unwrap(),
            len,
            meta.metadata(),
            &[0, 1, 2, 3, 4],
            &[1],
        );
        // A reader from inside a held chunk reads on past its end.
        let s = chunks.spans[0];
        let mut r = chunks.get_read(s.end - 3).unwrap();
        let mut got = vec![0u8; 10];
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, &bytes[s.end as usize - 3..s.end as usize + 7]);
        // And one from a chunk's very end reads what follows it.
        let mut r = chunks.get_read(s.end).unwrap();
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, &bytes[s.end as usize..s.end as usize + 10]);
        // Bytes across a chunk's end, outside any chunk, and the footer.
        for (start, n) in [(s.end - 3, 10), (0, 4), (len - 8, 8)] {
            let b = chunks.get_bytes(start, n).unwrap();
            assert_eq!(&b[..], &bytes[start as usize..start as usize + n]);
        }
        let mut tail = Vec::new();
        chunks
            .get_read(len - 4)
            .unwrap()
            .read_to_end(&mut tail)
            .unwrap();
        assert_eq!(tail, b"PAR1");
        // Past the end: an EOF error naming the sizes, not a short read.
        let e = chunks.get_bytes(len - 2, 4).unwrap_err().to_string();
        assert!(
            e.contains(&format!("expected to read 4 bytes at offset {}", len - 2)),
            "{e}"
        );
        assert!(
            chunks
                .get_read(len + 10)
                .unwrap()
                .read_to_end(&mut Vec::new())
                .unwrap()
                == 0
        );
    }
}
