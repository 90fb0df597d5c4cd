//! Raw table readers: CSV and Parquet files as streams of Arrow record
//! batches, before any type checking.
//!
//! CSV columns come out as UTF-8 strings with the physical line number of
//! every row kept beside them, so that the typed layer ([`super::columns`])
//! can name the exact line of a bad value. Parquet columns come out with
//! their stored types and are located by row number.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::ProjectionMask;

use super::error::{DatasetError, Location};
use super::{Format, TableFile};

mod chunks;
mod column_chunks;
mod split;
pub use chunks::{CsvChunk, CsvChunks};
use column_chunks::ColumnChunks;

/// Rows per record batch when streaming a table.
pub const BATCH_ROWS: usize = 64 * 1024;

/// Where each row of a raw batch came from.
#[derive(Debug, Clone)]
pub enum Locator {
    /// CSV: the physical line of each row.
    Lines(Vec<u64>),
    /// CSV rows on consecutive lines: the line of the first.
    LinesFrom(u64),
    /// Parquet: the 1-based number of the batch's first data row.
    Rows(u64),
}

impl Locator {
    pub fn at(&self, row: usize) -> Location {
        match self {
            Locator::Lines(lines) => Location::Line(lines.get(row).copied().unwrap_or(0)),
            Locator::LinesFrom(first) => Location::Line(first + row as u64),
            Locator::Rows(first) => Location::Row(first + row as u64),
        }
    }
}

/// One batch of a table as stored, with the means to locate its rows.
pub struct RawBatch {
    pub batch: RecordBatch,
    pub locator: Locator,
}

/// An open table: its column names and a stream of raw batches holding the
/// requested columns (in the order requested).
pub struct RawTable {
    pub columns: Vec<String>,
    reader: RawReader,
}

enum RawReader {
    Csv(CsvStream),
    Memory {
        batches: Arc<[RecordBatch]>,
        /// Indices of the batches still to hand over, in order.
        order: std::vec::IntoIter<usize>,
        /// Of each wanted column the table has, its index.
        projection: Vec<usize>,
        next_row: u64,
        file: String,
    },
    Parquet {
        reader: ParquetRecordBatchReader,
        next_row: u64,
        /// The batches' schema with our column names, when dataset.toml
        /// maps the extract's (worked out once, at open).
        renamed: Option<SchemaRef>,
        file: String,
    },
}

impl RawTable {
    /// Opens `table` and reads only the columns named in `wanted` that the
    /// file has (missing ones are for the caller to report or default).
    /// `dictionary` names string columns best read dictionary-encoded.
    pub fn open(
        table: &TableFile,
        wanted: &[&str],
        dictionary: &[&str],
    ) -> Result<RawTable, DatasetError> {
        match table.format {
            Format::Csv => CsvStream::open(table, wanted).map(|(columns, stream)| RawTable {
                columns,
                reader: RawReader::Csv(stream),
            }),
            Format::Parquet => open_parquet(table, wanted, dictionary, None, None),
            Format::Memory => open_memory(table, wanted, None),
        }
    }

    /// Opens only the given Parquet row groups (a CSV file is one part).
    pub fn open_row_groups(
        table: &TableFile,
        wanted: &[&str],
        dictionary: &[&str],
        row_groups: Vec<usize>,
    ) -> Result<RawTable, DatasetError> {
        match table.format {
            Format::Csv => Self::open(table, wanted, dictionary),
            Format::Parquet => open_parquet(table, wanted, dictionary, Some(row_groups), None),
            Format::Memory => open_memory(table, wanted, Some(row_groups)),
        }
    }

    /// Opens rows `rows` (counted from the group's first) of one Parquet
    /// row group, so that parts of a single large group are read side by
    /// side; batches and the rows errors name are those of the whole file.
    /// Pages wholly outside the rows are skipped without being decoded.
    pub fn open_row_range(
        table: &TableFile,
        wanted: &[&str],
        dictionary: &[&str],
        group: usize,
        rows: std::ops::Range<u64>,
    ) -> Result<RawTable, DatasetError> {
        match table.format {
            Format::Parquet => {
                open_parquet(table, wanted, dictionary, Some(vec![group]), Some(rows))
            }
            _ => Err(DatasetError::Parquet {
                file: table.display_name(),
                message: "a range of rows is read from Parquet files only".into(),
            }),
        }
    }

    /// Names of the columns the file holds (all of them, not only those read).
    pub fn file_columns(&self) -> &[String] {
        &self.columns
    }

    pub fn next_batch(&mut self) -> Result<Option<RawBatch>, DatasetError> {
        match &mut self.reader {
            RawReader::Csv(stream) => stream.next_batch(),
            RawReader::Memory {
                batches,
                order,
                projection,
                next_row,
                file,
            } => {
                let Some(b) = order.next() else {
                    return Ok(None);
                };
                let batch = batches[b]
                    .project(projection)
                    .map_err(|e| DatasetError::Parquet {
                        file: file.clone(),
                        message: e.to_string(),
                    })?;
                let locator = Locator::Rows(*next_row);
                *next_row += batch.num_rows() as u64;
                Ok(Some(RawBatch { batch, locator }))
            }
            RawReader::Parquet {
                reader,
                next_row,
                renamed,
                file,
            } => match reader.next() {
                None => Ok(None),
                Some(Err(e)) => Err(DatasetError::Parquet {
                    file: file.clone(),
                    message: e.to_string(),
                }),
                Some(Ok(batch)) => {
                    let batch = match renamed {
                        Some(schema) => {
                            RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(
                                |e| DatasetError::Parquet {
                                    file: file.clone(),
                                    message: e.to_string(),
                                },
                            )?
                        }
                        None => batch,
                    };
                    let locator = Locator::Rows(*next_row);
                    *next_row += batch.num_rows() as u64;
                    Ok(Some(RawBatch { batch, locator }))
                }
            },
        }
    }
}

/// Number of rows in each row group of a Parquet table (CSV: one part of
/// unknown size; an in-memory table: one part per record batch).
pub fn row_group_sizes(table: &TableFile) -> Result<Vec<u64>, DatasetError> {
    match table.format {
        Format::Csv => return Ok(vec![0]),
        Format::Memory => {
            let batches = table.batches.as_deref().unwrap_or(&[]);
            if batches.is_empty() {
                return Ok(vec![0]);
            }
            return Ok(batches.iter().map(|b| b.num_rows() as u64).collect());
        }
        Format::Parquet => {}
    }
    Ok(footer(table)?
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows().max(0) as u64)
        .collect())
}

/// An in-memory table as a raw table: the wanted columns it has, in the
/// order wanted; with `parts`, only those batches.
fn open_memory(
    table: &TableFile,
    wanted: &[&str],
    parts: Option<Vec<usize>>,
) -> Result<RawTable, DatasetError> {
    let batches: Arc<[RecordBatch]> = table.batches.clone().unwrap_or_else(|| Arc::from(vec![]));
    let columns: Vec<String> = match batches.first() {
        Some(b) => b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        None => Vec::new(),
    };
    if let Some(other) = batches.iter().find(|b| {
        b.schema()
            .fields()
            .iter()
            .map(|f| f.name())
            .ne(columns.iter())
    }) {
        return Err(DatasetError::Parquet {
            file: table.display_name(),
            message: format!(
                "its record batches have different columns ({} and {})",
                columns.join(", "),
                other
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let projection: Vec<usize> = wanted
        .iter()
        .filter_map(|w| columns.iter().position(|c| c == w))
        .collect();
    let order: Vec<usize> = parts.unwrap_or_else(|| (0..batches.len()).collect());
    let order: Vec<usize> = order.into_iter().filter(|&b| b < batches.len()).collect();
    let next_row = 1 + order.first().map_or(0, |&f| {
        batches[..f].iter().map(|b| b.num_rows() as u64).sum()
    });
    Ok(RawTable {
        columns,
        reader: RawReader::Memory {
            batches,
            order: order.into_iter(),
            projection,
            next_row,
            file: table.display_name(),
        },
    })
}

/// The file's column names as ours, checked against dataset.toml's mapping.
fn map_columns(table: &TableFile, columns: Vec<String>) -> Result<Vec<String>, DatasetError> {
    if table.spec.renames.is_empty() {
        return Ok(columns);
    }
    let file = table.display_name();
    table
        .spec
        .map_header(&file, &columns)
        .map_err(|message| DatasetError::BadMapping { message })
}

/// A schema with the extract's column names replaced by ours.
fn renamed_schema(schema: &Schema, spec: &super::TableSpec) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_name(spec.our_name(f.name())))
        .collect();
    Arc::new(Schema::new(fields))
}

/// Why a Parquet file could not be opened, in a data lead's words where the
/// cause is plain: an empty file, or one cut short (no footer).
fn parquet_open_error(table: &TableFile, e: parquet::errors::ParquetError) -> DatasetError {
    let bytes = std::fs::metadata(&table.path).map_or(u64::MAX, |m| m.len());
    let message = if bytes == 0 {
        "the file is empty (0 bytes); a Parquet file holds at least a header and a footer".into()
    } else {
        let cut = {
            let mut tail = [0u8; 4];
            use std::io::{Read, Seek, SeekFrom};
            File::open(&table.path)
                .and_then(|mut f| {
                    f.seek(SeekFrom::End(-4))?;
                    f.read_exact(&mut tail)
                })
                .is_ok()
                && &tail != b"PAR1"
        };
        if cut {
            format!(
                "not a complete Parquet file ({bytes} bytes, no Parquet footer at its end: \
                 cut short while copying, or not Parquet); {e}"
            )
        } else {
            format!("cannot read Parquet: {e}")
        }
    };
    DatasetError::ParquetFile {
        file: table.display_name(),
        message,
    }
}

/// The file's footer: parsed on first use, then shared (see
/// [`TableFile::parquet_footer`]). A file that cannot be read is not
/// remembered: every reader reports it.
fn footer(table: &TableFile) -> Result<ArrowReaderMetadata, DatasetError> {
    if let Some(m) = table.parquet_footer.get() {
        return Ok(m.clone());
    }
    let file = File::open(&table.path).map_err(|source| DatasetError::Io {
        path: table.path.clone(),
        source,
    })?;
    let m = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
        .map_err(|e| parquet_open_error(table, e))?;
    Ok(table.parquet_footer.get_or_init(|| m).clone())
}

fn open_parquet(
    table: &TableFile,
    wanted: &[&str],
    dictionary: &[&str],
    row_groups: Option<Vec<usize>>,
    rows: Option<std::ops::Range<u64>>,
) -> Result<RawTable, DatasetError> {
    let file_name = table.display_name();
    let perr = |e: parquet::errors::ParquetError| DatasetError::Parquet {
        file: file_name.clone(),
        message: e.to_string(),
    };
    let open = || {
        File::open(&table.path).map_err(|source| DatasetError::Io {
            path: table.path.clone(),
            source,
        })
    };
    let base = footer(table)?;
    let schema = base.schema().clone();
    let columns: Vec<String> = map_columns(
        table,
        schema.fields().iter().map(|f| f.name().clone()).collect(),
    )?;

    // Ask for plain string columns that are best dictionary-encoded (codes)
    // as dictionaries: the reader then hands over Parquet's own dictionary
    // pages instead of materialising every string.
    let dictionary: Vec<&str> = dictionary.iter().map(|d| table.spec.file_name(d)).collect();
    let hinted = dictionary_hint(&schema, &dictionary);
    let metadata = match hinted {
        Some(hint) => ArrowReaderMetadata::try_new(
            base.metadata().clone(),
            ArrowReaderOptions::new().with_schema(hint),
        )
        .map_err(perr)?,
        None => base,
    };
    // Project the wanted columns, by their index among the root fields.
    let indices: Vec<usize> = wanted
        .iter()
        .filter_map(|w| columns.iter().position(|c| c == w))
        .collect();
    let parquet_meta = metadata.metadata().clone();
    let parquet_schema = parquet_meta.file_metadata().schema_descr();
    let mask = ProjectionMask::roots(parquet_schema, indices);
    let leaves: Vec<usize> = (0..parquet_schema.num_columns())
        .filter(|&i| mask.leaf_included(i))
        .collect();
    let file = open()?;
    let len = file
        .metadata()
        .map_err(|source| DatasetError::Io {
            path: table.path.clone(),
            source,
        })?
        .len();
    let groups: Vec<usize> = match &row_groups {
        Some(groups) => groups.clone(),
        None => (0..parquet_meta.num_row_groups()).collect(),
    };
    let file = ColumnChunks::new(file, len, &parquet_meta, &groups, &leaves);
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata);
    let mut first_row = 1;
    let builder = match row_groups {
        Some(groups) => {
            let sizes = builder.metadata().row_groups();
            first_row += groups
                .first()
                .map(|&g| {
                    sizes
                        .iter()
                        .take(g)
                        .map(|r| r.num_rows().max(0) as u64)
                        .sum()
                })
                .unwrap_or(0);
            builder.with_row_groups(groups)
        }
        None => builder,
    };
    let builder = match rows {
        Some(rows) => {
            let sizes = builder.metadata().row_groups();
            let total: u64 = groups
                .iter()
                .filter_map(|&g| sizes.get(g))
                .map(|r| r.num_rows().max(0) as u64)
                .sum();
            let end = rows.end.min(total);
            let start = rows.start.min(end);
            first_row += start;
            builder.with_row_selection(RowSelection::from(vec![
                RowSelector::skip(start as usize),
                RowSelector::select((end - start) as usize),
                RowSelector::skip((total - end) as usize),
            ]))
        }
        None => builder,
    };
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(perr)?;
    use arrow::record_batch::RecordBatchReader;
    let renamed =
        (!table.spec.renames.is_empty()).then(|| renamed_schema(&reader.schema(), &table.spec));
    Ok(RawTable {
        columns,
        reader: RawReader::Parquet {
            reader,
            next_row: first_row,
            renamed,
            file: file_name,
        },
    })
}

fn dictionary_hint(schema: &SchemaRef, dictionary: &[&str]) -> Option<SchemaRef> {
    let mut changed = false;
    let fields: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .map(|f| {
            if dictionary.contains(&f.name().as_str()) && f.data_type() == &DataType::Utf8 {
                changed = true;
                let dict =
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
                Arc::new(f.as_ref().clone().with_data_type(dict))
            } else {
                f.clone()
            }
        })
        .collect();
    changed.then(|| Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())))
}

/// A CSV file (or a chunk of one) read in batches of UTF-8 string columns.
struct CsvStream<R: std::io::Read = File> {
    file: String,
    reader: csv::Reader<R>,
    /// For each requested column, its field index in the file (None: absent).
    picks: Vec<Option<usize>>,
    names: Vec<String>,
    record: csv::ByteRecord,
    width: usize,
    /// Lines before the first the reader sees (a chunk's place in the file).
    line_offset: u64,
}

impl CsvStream {
    fn open(table: &TableFile, wanted: &[&str]) -> Result<(Vec<String>, CsvStream), DatasetError> {
        let file_name = table.display_name();
        let file = File::open(&table.path).map_err(|source| DatasetError::Io {
            path: table.path.clone(),
            source,
        })?;
        // Records end at `\n` only, so the reader's line count is the
        // physical line even with Windows line ends (with CRLF as the
        // terminator the count runs one line short); the `\r` left at the
        // end of a record's last field is trimmed with the other spaces.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(file);
        let headers = reader
            .byte_headers()
            .map_err(|e| csv_error(&file_name, &e))?
            .clone();
        if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
            return Err(DatasetError::Malformed {
                file: file_name,
                at: Location::Line(1),
                message: "no header row".into(),
            });
        }
        let mut columns = Vec::with_capacity(headers.len());
        for (i, h) in headers.iter().enumerate() {
            let h = if i == 0 {
                h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h)
            } else {
                h
            };
            let name = std::str::from_utf8(h).map_err(|_| DatasetError::Malformed {
                file: file_name.clone(),
                at: Location::Line(1),
                message: format!("header field {} is not valid UTF-8", i + 1),
            })?;
            columns.push(name.trim().to_string());
        }
        // The extract's own names, as ours (dataset.toml [tables.*.columns]).
        let columns = map_columns(table, columns)?;
        let picks: Vec<Option<usize>> = wanted
            .iter()
            .map(|w| columns.iter().position(|c| c == w))
            .collect();
        let names = wanted
            .iter()
            .zip(&picks)
            .filter(|(_, p)| p.is_some())
            .map(|(w, _)| w.to_string())
            .collect();
        let width = columns.len();
        Ok((
            columns,
            CsvStream {
                file: file_name,
                reader,
                picks,
                names,
                record: csv::ByteRecord::new(),
                width,
                line_offset: 0,
            },
        ))
    }

    fn next_batch(&mut self) -> Result<Option<RawBatch>, DatasetError> {
        self.next_batch_generic()
    }
}

impl<R: std::io::Read> CsvStream<R> {
    fn next_batch_generic(&mut self) -> Result<Option<RawBatch>, DatasetError> {
        let present: Vec<usize> = self.picks.iter().flatten().copied().collect();
        let mut builders: Vec<StringBuilder> = present
            .iter()
            .map(|_| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8))
            .collect();
        let mut lines = Vec::with_capacity(BATCH_ROWS);
        while lines.len() < BATCH_ROWS {
            let more = self
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| {
                    let mut err = csv_error(&self.file, &e);
                    if let DatasetError::Malformed {
                        at: Location::Line(l),
                        ..
                    } = &mut err
                    {
                        *l += self.line_offset;
                    }
                    err
                })?;
            if !more {
                break;
            }
            let line = self.record.position().map(|p| p.line()).unwrap_or(0) + self.line_offset;
            // A line holding only whitespace (as some exports end) is no row.
            if self.record.len() == 1 && self.record[0].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if self.record.len() != self.width {
                return Err(DatasetError::Malformed {
                    file: self.file.clone(),
                    at: Location::Line(line),
                    message: format!(
                        "expected {} fields (as in the header), found {}",
                        self.width,
                        self.record.len()
                    ),
                });
            }
            for (i, (builder, &field)) in builders.iter_mut().zip(&present).enumerate() {
                let raw = &self.record[field];
                let text = std::str::from_utf8(raw).map_err(|_| DatasetError::BadValue {
                    file: self.file.clone(),
                    at: Location::Line(line),
                    column: self.names[i].clone(),
                    problem: "is not valid UTF-8 text".into(),
                })?;
                builder.append_value(super::columns::trimmed(text));
            }
            lines.push(line);
        }
        if lines.is_empty() {
            return Ok(None);
        }
        let fields: Vec<Field> = self
            .names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, false))
            .collect();
        let arrays: Vec<ArrayRef> = builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| {
            DatasetError::Malformed {
                file: self.file.clone(),
                at: Location::Line(lines[0]),
                message: e.to_string(),
            }
        })?;
        Ok(Some(RawBatch {
            batch,
            locator: Locator::Lines(lines),
        }))
    }
}

fn csv_error(file: &str, e: &csv::Error) -> DatasetError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    DatasetError::Malformed {
        file: file.to_string(),
        at: Location::Line(line),
        message: match e.kind() {
            csv::ErrorKind::Io(io) => io.to_string(),
            csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8 text".into(),
            _ => e.to_string(),
        },
    }
}

/// Whether a path names a table file, and in which format.
pub fn table_format(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "parquet" => Some(Format::Parquet),
        "csv" => Some(Format::Csv),
        _ => None,
    }
}
