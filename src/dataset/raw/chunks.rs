//! CSV tables read in large chunks of whole records, so that splitting the
//! text into fields runs in parallel; the chunk tests check the split against
//! the csv reader's.

use std::fs::File;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};

use super::split::Separators;
use super::{CsvStream, Locator, RawBatch, BATCH_ROWS};
use crate::dataset::error::{DatasetError, Location};
use crate::dataset::TableFile;

/// A CSV table read in large chunks of whole records, so that splitting
/// the text into fields can run in parallel ([`CsvChunk::parse`]).
///
/// A chunk ends at the last line end that is outside quotes (an even number
/// of `"` before it, as RFC 4180 escapes a quote by doubling it), so a quoted
/// field holding a line break is never cut. Each chunk knows the physical
/// line it starts on, so errors still name the right line.
pub struct CsvChunks {
    file: File,
    /// Bytes read but not yet handed out (the tail of a record).
    carry: Vec<u8>,
    next_line: u64,
    done: bool,
    layout: Arc<CsvLayout>,
    /// Bytes read at a time ([`CHUNK_BYTES`]; small in tests).
    chunk_bytes: usize,
    /// The hash of every byte read so far, and their count: at the end of
    /// the file it is the table's [`TableFile::read_digest`].
    hasher: blake3::Hasher,
    read_bytes: u64,
    digest: Arc<std::sync::OnceLock<crate::dataset::FileDigest>>,
}

/// What every chunk of one CSV table needs to split its records.
#[derive(Debug)]
struct CsvLayout {
    file: String,
    picks: Vec<Option<usize>>,
    names: Vec<String>,
    width: usize,
    /// For each field of a record, its place among the fields read
    /// (`usize::MAX`: not read).
    targets: Vec<usize>,
}

/// Whole records of a CSV table, from line `first_line`.
pub struct CsvChunk {
    bytes: Vec<u8>,
    /// Whether a `"` is anywhere in `bytes`.
    quoted: bool,
    first_line: u64,
    layout: Arc<CsvLayout>,
}

/// Bytes read at a time.
const CHUNK_BYTES: usize = 1 << 20;

impl CsvChunks {
    /// Opens `table` (header checked as [`RawTable::open`] does); `columns`
    /// are the file's column names.
    pub fn open(
        table: &TableFile,
        wanted: &[&str],
    ) -> Result<(Vec<String>, CsvChunks), DatasetError> {
        let (columns, stream) = CsvStream::open(table, wanted)?;
        // Where the header ends.
        let header_end = stream.reader.position().byte() as usize;
        let io = |source| DatasetError::Io {
            path: table.path.clone(),
            source,
        };
        let mut file = File::open(&table.path).map_err(io)?;
        // The header's own lines (it may hold quoted line breaks).
        let mut header = vec![0u8; header_end];
        std::io::Read::read_exact(&mut file, &mut header).map_err(io)?;
        let header_lines = header.iter().filter(|&&b| b == b'\n').count() as u64;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&header);
        let mut targets = vec![usize::MAX; stream.width];
        for (read, &field) in stream.picks.iter().flatten().enumerate() {
            targets[field] = read;
        }
        let layout = Arc::new(CsvLayout {
            file: stream.file.clone(),
            picks: stream.picks.clone(),
            names: stream.names.clone(),
            width: stream.width,
            targets,
        });
        Ok((
            columns,
            CsvChunks {
                file,
                carry: Vec::new(),
                next_line: header_lines,
                done: false,
                layout,
                chunk_bytes: CHUNK_BYTES,
                hasher,
                read_bytes: header_end as u64,
                digest: table.read_digest.clone(),
            },
        ))
    }

    /// Every chunk through `each`, in parallel a round of `round` chunks
    /// at a time, the next round read from the file meanwhile; each
    /// round's results go to `take` in file order. The first error in file
    /// order is returned (a chunk's before any later read error, and
    /// `take`'s, which stops the reading).
    pub fn par_rounds<T: Send>(
        &mut self,
        round: usize,
        each: impl Fn(CsvChunk) -> Result<T, DatasetError> + Sync,
        mut take: impl FnMut(Vec<T>) -> Result<(), DatasetError>,
    ) -> Result<(), DatasetError> {
        use rayon::prelude::*;
        let mut current = self.next_round(round)?;
        while !current.is_empty() {
            let (done, next) = rayon::join(
                || current.into_par_iter().map(&each).collect::<Vec<_>>(),
                || self.next_round(round),
            );
            take(done.into_iter().collect::<Result<Vec<T>, _>>()?)?;
            current = next?;
        }
        Ok(())
    }

    /// The next `n` chunks (fewer at the end of the file, none after it).
    fn next_round(&mut self, n: usize) -> Result<Vec<CsvChunk>, DatasetError> {
        let mut round = Vec::with_capacity(n);
        while round.len() < n {
            match self.next_chunk()? {
                Some(c) => round.push(c),
                None => break,
            }
        }
        Ok(round)
    }

    /// The next chunk of whole records, or `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<CsvChunk>, DatasetError> {
        use std::io::Read;
        if self.done {
            return Ok(None);
        }
        let mut bytes = std::mem::take(&mut self.carry);
        // Read into the buffer's spare room (not zeroed first, as a
        // `resize` would: a tenth of the reading's time).
        bytes.reserve(self.chunk_bytes);
        let carried = bytes.len();
        let want = self.chunk_bytes as u64;
        let n = (&mut self.file)
            .take(want)
            .read_to_end(&mut bytes)
            .map_err(|e| DatasetError::Malformed {
                file: self.layout.file.clone(),
                at: Location::Line(self.next_line),
                message: e.to_string(),
            })?;
        self.hasher.update(&bytes[carried..]);
        self.read_bytes += n as u64;
        if (n as u64) < want {
            self.done = true;
            // The whole file has been read: its digest is known (a second
            // reader of the same file finds it already set).
            let _ = self.digest.set(crate::dataset::FileDigest {
                bytes: self.read_bytes,
                blake3: self.hasher.finalize().to_hex().to_string(),
            });
        }
        let mut quoted = memchr::memchr(b'"', &bytes).is_some();
        if !self.done {
            // Cut after the last line end outside quotes (without quotes in
            // the chunk, simply the last line end).
            let cut = if !quoted {
                memchr::memrchr(b'\n', &bytes).map(|i| i + 1)
            } else {
                let mut quotes = 0usize;
                let mut cut = None;
                for i in memchr::memchr2_iter(b'"', b'\n', &bytes) {
                    if bytes[i] == b'"' {
                        quotes += 1;
                    } else if quotes.is_multiple_of(2) {
                        cut = Some(i + 1);
                    }
                }
                cut
            };
            match cut {
                Some(c) => self.carry = bytes.split_off(c),
                // One record longer than a chunk: read on.
                None => {
                    self.carry = bytes;
                    return self.next_chunk();
                }
            }
            // The quotes may all have been in the part carried over.
            quoted = quoted && memchr::memchr(b'"', &bytes).is_some();
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        let first_line = self.next_line + 1;
        self.next_line += memchr::memchr_iter(b'\n', &bytes).count() as u64;
        Ok(Some(CsvChunk {
            bytes,
            quoted,
            first_line,
            layout: self.layout.clone(),
        }))
    }
}

impl CsvChunk {
    /// Splits the chunk's records into raw batches of text columns.
    pub fn parse(&self) -> Result<Vec<RawBatch>, DatasetError> {
        match self.parse_plain() {
            Some(batches) => batches,
            None => self.parse_csv(),
        }
    }

    /// The chunk split at `\n` and `,` directly, when that is all the csv
    /// reader would do: no quote anywhere in the chunk, and all of it valid
    /// UTF-8 (otherwise `None`, and the csv reader reads it, with its
    /// messages). Same rows, lines and messages as [`CsvChunk::parse_csv`]:
    /// empty and whitespace-only lines are no rows, fields are trimmed.
    fn parse_plain(&self) -> Option<Result<Vec<RawBatch>, DatasetError>> {
        if self.quoted {
            return None;
        }
        let text = simdutf8::basic::from_utf8(&self.bytes).ok()?;
        let layout = &self.layout;
        // For each field of a record, the builder it goes to (if read).
        let target = &layout.targets;
        let fields: Vec<Field> = layout
            .names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, false))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let new_builders = || -> Vec<StringBuilder> {
            (0..layout.names.len())
                .map(|_| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8))
                .collect()
        };
        let mut out = Vec::new();
        let mut builders = new_builders();
        let mut lines: Vec<u64> = Vec::with_capacity(BATCH_ROWS);
        let mut flush = |builders: &mut Vec<StringBuilder>, lines: &mut Vec<u64>| {
            let arrays: Vec<ArrayRef> = builders
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef)
                .collect();
            let first = lines.first().copied().unwrap_or(0);
            let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| {
                DatasetError::Malformed {
                    file: layout.file.clone(),
                    at: Location::Line(first),
                    message: e.to_string(),
                }
            })?;
            out.push(RawBatch {
                batch,
                locator: Locator::Lines(std::mem::take(lines)),
            });
            Ok::<(), DatasetError>(())
        };
        let text = text.strip_suffix('\n').unwrap_or(text);
        let bytes = text.as_bytes();
        // A field as the csv reader's rows hold it: trimmed.
        use crate::dataset::columns::trimmed as trim;
        let (mut line, mut start, mut n) = (self.first_line, 0usize, 0usize);
        let ends = Separators::new(bytes).chain(std::iter::once(bytes.len()));
        for end in ends {
            let last = end == bytes.len() || bytes[end] == b'\n';
            // `,` and `\n` are ASCII: the cuts are character boundaries.
            let field = &text[start..end];
            start = end + 1;
            // An empty line, or one holding only whitespace, is no row.
            if last && n == 0 && field.bytes().all(|b| b.is_ascii_whitespace()) {
                line += 1;
                continue;
            }
            if let Some(&b) = target.get(n) {
                if b != usize::MAX {
                    builders[b].append_value(trim(field));
                }
            }
            n += 1;
            if !last {
                continue;
            }
            if n != layout.width {
                return Some(Err(DatasetError::Malformed {
                    file: layout.file.clone(),
                    at: Location::Line(line),
                    message: format!(
                        "expected {} fields (as in the header), found {n}",
                        layout.width
                    ),
                }));
            }
            lines.push(line);
            line += 1;
            n = 0;
            if lines.len() == BATCH_ROWS {
                if let Err(e) = flush(&mut builders, &mut lines) {
                    return Some(Err(e));
                }
                builders = new_builders();
                lines = Vec::with_capacity(BATCH_ROWS);
            }
        }
        if !lines.is_empty() {
            if let Err(e) = flush(&mut builders, &mut lines) {
                return Some(Err(e));
            }
        }
        Some(Ok(out))
    }

    /// The chunk's records handed to `each` as their read fields (in the
    /// order of [`CsvChunk::names`]; UTF-8 text, cut at ASCII bytes), when
    /// every record is plain: no quote in the chunk, valid UTF-8, as many fields as the header, and each
    /// read field either empty or with nothing to trim (a `\r` ending a
    /// record is dropped, as trimming does). Rows are then on consecutive
    /// lines from [`CsvChunk::first_line`]. `false` when a record is not
    /// plain or `each` returns `false` (the records before it have been
    /// handed over): the caller then reads the chunk the general way
    /// ([`CsvChunk::parse`]), with its messages.
    pub fn plain_records<'a>(&'a self, mut each: impl FnMut(&[&'a [u8]]) -> bool) -> bool {
        if self.quoted || simdutf8::basic::from_utf8(&self.bytes).is_err() {
            return false;
        }
        let layout = &self.layout;
        let target = &layout.targets;
        let mut fields: Vec<&[u8]> = vec![&[]; layout.names.len()];
        let bytes = self.bytes.strip_suffix(b"\n").unwrap_or(&self.bytes);
        let (mut start, mut n) = (0usize, 0usize);
        let ends = Separators::new(bytes).chain(std::iter::once(bytes.len()));
        for end in ends {
            let last = bytes.get(end).is_none_or(|&b| b == b'\n');
            let mut field = &bytes[start..end];
            start = end + 1;
            if last {
                field = field.strip_suffix(b"\r").unwrap_or(field);
            }
            let Some(&t) = target.get(n) else {
                return false;
            };
            if t != usize::MAX {
                let nothing_to_trim = match (field.first(), field.last()) {
                    (Some(a), Some(z)) => a.is_ascii_graphic() && z.is_ascii_graphic(),
                    _ => true,
                };
                if !nothing_to_trim {
                    return false;
                }
                fields[t] = field;
            }
            n += 1;
            if last {
                if n != layout.width || !each(&fields) {
                    return false;
                }
                n = 0;
            }
        }
        true
    }

    /// Names of the fields [`CsvChunk::plain_records`] hands over, in order.
    pub fn names(&self) -> &[String] {
        &self.layout.names
    }

    /// The chunk's size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The physical line of the chunk's first record.
    pub fn first_line(&self) -> u64 {
        self.first_line
    }

    /// The chunk through the csv reader (quoted fields, any bytes).
    fn parse_csv(&self) -> Result<Vec<RawBatch>, DatasetError> {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(self.bytes.as_slice());
        let mut stream = CsvStream {
            file: self.layout.file.clone(),
            reader,
            picks: self.layout.picks.clone(),
            names: self.layout.names.clone(),
            record: csv::ByteRecord::new(),
            width: self.layout.width,
            line_offset: self.first_line - 1,
        };
        let mut out = Vec::new();
        while let Some(b) = stream.next_batch_generic()? {
            out.push(b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;
    use arrow::array::AsArray;

    /// `events.csv` at `path`, with the contract's column names.
    fn events_csv(path: std::path::PathBuf) -> TableFile {
        TableFile {
            name: "events".into(),
            path,
            format: crate::dataset::Format::Csv,
            batches: None,
            spec: Default::default(),
            parquet_footer: Default::default(),
            read_digest: Default::default(),
        }
    }

    /// Every row of `text` through chunks of `size` bytes: (line, fields).
    fn rows(text: &str, size: usize) -> Result<Vec<(u64, Vec<String>)>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.csv");
        std::fs::write(&path, text).unwrap();
        let table = events_csv(path);
        let (_, mut chunks) = CsvChunks::open(&table, &["patient_id", "code", "date"]).unwrap();
        chunks.chunk_bytes = size;
        let mut out = Vec::new();
        while let Some(chunk) = chunks.next_chunk().map_err(|e| e.to_string())? {
            out.extend(flat(chunk.parse())?);
        }
        Ok(out)
    }

    #[test]
    fn chunks_keep_quoted_line_breaks_whole_and_count_lines() {
        let text = "patient_id,code,date\r\n1,A,2020-01-01\r\n2,\"B\nstill B, \"\"quoted\"\"\",2020-01-02\r\n\r\n3,C,2020-01-03\n4,D,2020-01-04";
        let want: Vec<(u64, Vec<String>)> = vec![
            (2, vec!["1".into(), "A".into(), "2020-01-01".into()]),
            (
                3,
                vec![
                    "2".into(),
                    "B\nstill B, \"quoted\"".into(),
                    "2020-01-02".into(),
                ],
            ),
            (6, vec!["3".into(), "C".into(), "2020-01-03".into()]),
            (7, vec!["4".into(), "D".into(), "2020-01-04".into()]),
        ];
        // Whatever the chunk size, the same rows on the same lines.
        for size in [1, 5, 16, 17, 40, 1 << 20] {
            assert_eq!(rows(text, size).unwrap(), want, "chunks of {size} bytes");
        }
    }

    /// A chunk's batches as (line, fields) rows, or the error's text.
    fn flat(
        batches: Result<Vec<RawBatch>, DatasetError>,
    ) -> Result<Vec<(u64, Vec<String>)>, String> {
        let mut out = Vec::new();
        for b in batches.map_err(|e| e.to_string())? {
            let Locator::Lines(lines) = &b.locator else {
                panic!("csv lines")
            };
            for (r, line) in lines.iter().enumerate() {
                let fields = (0..b.batch.num_columns())
                    .map(|c| b.batch.column(c).as_string::<i32>().value(r).to_string())
                    .collect();
                out.push((*line, fields));
            }
        }
        Ok(out)
    }

    #[test]
    fn the_plain_split_reads_what_the_csv_reader_reads() {
        let header = "patient_id,extra,code,date\n";
        let bodies = [
            "1,x,A,2020-01-01\n2,y,B,2020-01-02\n",
            "1,x,A,2020-01-01\r\n2,y,B,2020-01-02\r\n",
            "1,x,A,2020-01-01\n\n   \n\r\n2 , y , B ,2020-01-02 \r",
            " 1,\t,A\t,2020-01-01\n2,,B,\n,,,\n",
            "1,x,A,2020-01-01\n2,y,B\n",
            "1,x,A,2020-01-01\n2,y,B,2020-01-02,more\n",
            "1,ünï,Ā,2020-01-01\n",
        ];
        let dir = tempfile::tempdir().unwrap();
        for body in bodies {
            let path = dir.path().join("events.csv");
            std::fs::write(&path, format!("{header}{body}")).unwrap();
            let table = events_csv(path);
            let (_, mut chunks) = CsvChunks::open(&table, &["patient_id", "code", "date"]).unwrap();
            let chunk = chunks.next_chunk().unwrap().unwrap();
            let plain = chunk
                .parse_plain()
                .expect("no quotes: the plain split applies");
            assert_eq!(flat(plain), flat(chunk.parse_csv()), "{body:?}");
        }
        // After several empty lines the csv reader's line count runs short
        // (it names line 3 here); the plain split names the line itself.
        let path = dir.path().join("events.csv");
        std::fs::write(&path, format!("{header}1,x,A,2020-01-01\n\n\n4,y\n")).unwrap();
        let table = events_csv(path);
        let (_, mut chunks) = CsvChunks::open(&table, &["patient_id", "code", "date"]).unwrap();
        let chunk = chunks.next_chunk().unwrap().unwrap();
        assert_eq!(
            flat(chunk.parse_plain().unwrap()).unwrap_err(),
            "events.csv:5: expected 4 fields (as in the header), found 2"
        );
    }

    /// Read whole in chunks of any size (a record longer than a chunk, a
    /// quoted header), the file's digest is that of its bytes; read in
    /// part, it has none.
    #[test]
    fn a_file_read_whole_has_the_digest_of_its_bytes() {
        let text = "\"patient_id\",code,date\n1,A,2020-01-01\n2,\"B\nB\",2020-01-02\n3,CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC,2020-01-03\n4,D,2020-01-04";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.csv");
        std::fs::write(&path, text).unwrap();
        let want = crate::dataset::FileDigest {
            bytes: text.len() as u64,
            blake3: blake3::hash(text.as_bytes()).to_hex().to_string(),
        };
        for size in [1, 7, 16, 40, 1 << 20] {
            let table = events_csv(path.clone());
            let (_, mut chunks) = CsvChunks::open(&table, &["patient_id", "code", "date"]).unwrap();
            chunks.chunk_bytes = size;
            let first = chunks.next_chunk().unwrap().unwrap();
            let header = text.find('\n').unwrap() + 1;
            if header + first.bytes() < text.len() {
                assert_eq!(
                    table.read_digest.get(),
                    None,
                    "chunks of {size}: read in part"
                );
            }
            while chunks.next_chunk().unwrap().is_some() {}
            assert_eq!(table.read_digest.get(), Some(&want), "chunks of {size}");
        }
    }

    #[test]
    fn a_bad_record_in_a_later_chunk_names_its_own_line() {
        let text = "patient_id,code,date\n1,A,2020-01-01\n2,B,2020-01-02\n3,C\n";
        for size in [8, 1 << 20] {
            let err = rows(text, size).unwrap_err();
            assert!(err.starts_with("events.csv:4:"), "chunks of {size}: {err}");
        }
    }
}
