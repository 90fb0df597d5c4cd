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
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;

use super::error::{DatasetError, Location};
use super::{Format, TableFile};

/// Rows per record batch when streaming a table.
pub const BATCH_ROWS: usize = 64 * 1024;

/// Where each row of a raw batch came from.
#[derive(Debug, Clone)]
pub enum Locator {
    /// CSV: the physical line of each row.
    Lines(Vec<u64>),
    /// Parquet: the 1-based number of the batch's first data row.
    Rows(u64),
}

impl Locator {
    pub fn at(&self, row: usize) -> Location {
        match self {
            Locator::Lines(lines) => Location::Line(lines.get(row).copied().unwrap_or(0)),
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
    Parquet {
        reader: ParquetRecordBatchReader,
        next_row: u64,
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
            Format::Parquet => open_parquet(table, wanted, dictionary, None),
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
            Format::Parquet => open_parquet(table, wanted, dictionary, Some(row_groups)),
        }
    }

    /// Names of the columns the file holds (all of them, not only those read).
    pub fn file_columns(&self) -> &[String] {
        &self.columns
    }

    pub fn next_batch(&mut self) -> Result<Option<RawBatch>, DatasetError> {
        match &mut self.reader {
            RawReader::Csv(stream) => stream.next_batch(),
            RawReader::Parquet {
                reader,
                next_row,
                file,
            } => match reader.next() {
                None => Ok(None),
                Some(Err(e)) => Err(DatasetError::Parquet {
                    file: file.clone(),
                    message: e.to_string(),
                }),
                Some(Ok(batch)) => {
                    let locator = Locator::Rows(*next_row);
                    *next_row += batch.num_rows() as u64;
                    Ok(Some(RawBatch { batch, locator }))
                }
            },
        }
    }
}

/// Number of rows in each row group of a Parquet table (CSV: one part of unknown size).
pub fn row_group_sizes(table: &TableFile) -> Result<Vec<u64>, DatasetError> {
    if table.format == Format::Csv {
        return Ok(vec![0]);
    }
    let file = File::open(&table.path).map_err(|source| DatasetError::Io {
        path: table.path.clone(),
        source,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| DatasetError::Parquet {
            file: table.display_name(),
            message: e.to_string(),
        })?;
    Ok(builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows().max(0) as u64)
        .collect())
}

fn open_parquet(
    table: &TableFile,
    wanted: &[&str],
    dictionary: &[&str],
    row_groups: Option<Vec<usize>>,
) -> Result<RawTable, DatasetError> {
    let file_name = table.display_name();
    let perr = |e: parquet::errors::ParquetError| DatasetError::Parquet {
        file: file_name.clone(),
        message: e.to_string(),
    };
    let file = File::open(&table.path).map_err(|source| DatasetError::Io {
        path: table.path.clone(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    let schema = builder.schema().clone();
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();

    // Ask for plain string columns that are best dictionary-encoded (codes)
    // as dictionaries: the reader then hands over Parquet's own dictionary
    // pages instead of materialising every string.
    let hinted = dictionary_hint(&schema, dictionary);
    let builder = match hinted {
        Some(hint) => {
            let file = File::open(&table.path).map_err(|source| DatasetError::Io {
                path: table.path.clone(),
                source,
            })?;
            ParquetRecordBatchReaderBuilder::try_new_with_options(
                file,
                ArrowReaderOptions::new().with_schema(hint),
            )
            .map_err(perr)?
        }
        None => builder,
    };

    // Project the wanted columns, by their index among the root fields.
    let indices: Vec<usize> = wanted
        .iter()
        .filter_map(|w| columns.iter().position(|c| c == w))
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
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
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(perr)?;
    Ok(RawTable {
        columns,
        reader: RawReader::Parquet {
            reader,
            next_row: first_row,
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

/// A CSV file read in batches of UTF-8 string columns.
struct CsvStream {
    file: String,
    reader: csv::Reader<File>,
    /// For each requested column, its field index in the file (None: absent).
    picks: Vec<Option<usize>>,
    names: Vec<String>,
    record: csv::ByteRecord,
    width: usize,
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
            },
        ))
    }

    fn next_batch(&mut self) -> Result<Option<RawBatch>, DatasetError> {
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
                .map_err(|e| csv_error(&self.file, &e))?;
            if !more {
                break;
            }
            let line = self.record.position().map(|p| p.line()).unwrap_or(0);
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
                builder.append_value(text.trim());
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
