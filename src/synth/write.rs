//! Writing chunks of synthetic rows as Parquet or CSV tables.
//!
//! Chunks are encoded (to Arrow record batches, or to CSV bytes) on the
//! worker threads; one writer appends them to the five table files in chunk
//! order, so the bytes never depend on scheduling. Parquet row groups are
//! flushed as they fill, keeping memory flat however many patients there are.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::Datelike;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::person::{days_to_date, Chunk, ContactRows, EventRows, PatientRows};
use super::practices::Practice;
use super::{OutputFormat, SynthError};

/// Table names, in the order chunks carry them.
pub const TABLES: [&str; 5] = [
    crate::contract::PATIENTS,
    crate::contract::EVENTS,
    "admissions",
    crate::contract::CONTACTS,
    "medications",
];

/// Rows per Parquet row group (a million events is ~10 MB encoded).
const ROW_GROUP_ROWS: usize = 1 << 20;

/// One chunk, ready to append to the five tables.
pub enum EncodedChunk {
    Parquet([RecordBatch; 5]),
    Csv([Vec<u8>; 5]),
}

impl EncodedChunk {
    pub fn rows(chunk: &Chunk) -> [u64; 5] {
        [
            chunk.patients.patient_id.len() as u64,
            chunk.events.len() as u64,
            chunk.admissions.len() as u64,
            chunk.contacts.patient_id.len() as u64,
            chunk.medications.len() as u64,
        ]
    }
}

fn patients_schema() -> SchemaRef {
    use crate::contract::*;
    Arc::new(Schema::new(vec![
        Field::new(PATIENT_ID, DataType::Int64, false),
        Field::new(PRACTICE_CODE, DataType::Utf8, false),
        Field::new(PCN_CODE, DataType::Utf8, false),
        Field::new(DATE_OF_BIRTH, DataType::Date32, false),
        Field::new(SEX, DataType::Utf8, false),
        Field::new(LSOA_CODE, DataType::Utf8, false),
        Field::new(IMD_DECILE, DataType::Int32, false),
        Field::new(REGISTRATION_END, DataType::Date32, true),
        Field::new(DATE_OF_DEATH, DataType::Date32, true),
    ]))
}

fn events_schema() -> SchemaRef {
    use crate::contract::{CODE, DATE, PATIENT_ID, VALUE};
    Arc::new(Schema::new(vec![
        Field::new(PATIENT_ID, DataType::Int64, false),
        Field::new(CODE, DataType::Utf8, false),
        Field::new(DATE, DataType::Date32, false),
        Field::new(VALUE, DataType::Float64, true),
    ]))
}

fn contacts_schema() -> SchemaRef {
    use crate::contract::{DATE, OUTCOME, PATIENT_ID};
    Arc::new(Schema::new(vec![
        Field::new(PATIENT_ID, DataType::Int64, false),
        Field::new(DATE, DataType::Date32, false),
        Field::new(OUTCOME, DataType::Utf8, false),
    ]))
}

fn schema_of(table: usize) -> SchemaRef {
    match table {
        0 => patients_schema(),
        3 => contacts_schema(),
        _ => events_schema(),
    }
}

/// Encodes a chunk for the chosen format.
pub fn encode(
    chunk: &Chunk,
    practices: &[Practice],
    format: OutputFormat,
) -> Result<EncodedChunk, SynthError> {
    Ok(match format {
        OutputFormat::Parquet => EncodedChunk::Parquet([
            patients_batch(&chunk.patients, practices)?,
            events_batch(&chunk.events)?,
            events_batch(&chunk.admissions)?,
            contacts_batch(&chunk.contacts)?,
            events_batch(&chunk.medications)?,
        ]),
        OutputFormat::Csv => EncodedChunk::Csv([
            patients_csv(&chunk.patients, practices),
            events_csv(&chunk.events),
            events_csv(&chunk.admissions),
            contacts_csv(&chunk.contacts),
            events_csv(&chunk.medications),
        ]),
    })
}

fn patients_batch(rows: &PatientRows, practices: &[Practice]) -> Result<RecordBatch, SynthError> {
    let practice = |i: &u32| practices.get(*i as usize);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(rows.patient_id.clone())),
        Arc::new(StringArray::from_iter_values(
            rows.practice
                .iter()
                .map(|i| practice(i).map(|p| p.code.as_str()).unwrap_or("")),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.practice
                .iter()
                .map(|i| practice(i).map(|p| p.pcn_code.as_str()).unwrap_or("")),
        )),
        Arc::new(Date32Array::from(rows.date_of_birth.clone())),
        Arc::new(StringArray::from_iter_values(
            rows.female.iter().map(|&f| if f { "F" } else { "M" }),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.lsoa_code.iter().copied(),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.imd_decile.iter().map(|&d| i32::from(d)),
        )),
        Arc::new(Date32Array::from(rows.registration_end.clone())),
        Arc::new(Date32Array::from(rows.date_of_death.clone())),
    ];
    Ok(RecordBatch::try_new(patients_schema(), columns)?)
}

fn events_batch(rows: &EventRows) -> Result<RecordBatch, SynthError> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(rows.patient_id.clone())),
        Arc::new(StringArray::from_iter_values(rows.code.iter().copied())),
        Arc::new(Date32Array::from(rows.date.clone())),
        Arc::new(Float64Array::from(rows.value.clone())),
    ];
    Ok(RecordBatch::try_new(events_schema(), columns)?)
}

fn contacts_batch(rows: &ContactRows) -> Result<RecordBatch, SynthError> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(rows.patient_id.clone())),
        Arc::new(Date32Array::from(rows.date.clone())),
        Arc::new(StringArray::from_iter_values(rows.outcome.iter().copied())),
    ];
    Ok(RecordBatch::try_new(contacts_schema(), columns)?)
}

/// `YYYY-MM-DD`, written by hand: chrono's formatter dominated CSV output time.
fn iso(out: &mut Vec<u8>, days: i32) {
    if let Some(d) = days_to_date(days) {
        let (y, m, day) = (d.year().clamp(0, 9999) as u32, d.month(), d.day());
        let digit = |n: u32| b'0' + (n % 10) as u8;
        out.extend_from_slice(&[
            digit(y / 1000),
            digit(y / 100),
            digit(y / 10),
            digit(y),
            b'-',
            digit(m / 10),
            digit(m),
            b'-',
            digit(day / 10),
            digit(day),
        ]);
    }
}

fn patients_csv(rows: &PatientRows, practices: &[Practice]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.patient_id.len() * 80);
    for i in 0..rows.patient_id.len() {
        let p = practices.get(rows.practice[i] as usize);
        let _ = write!(
            out,
            "{},{},{},",
            rows.patient_id[i],
            p.map(|p| p.code.as_str()).unwrap_or(""),
            p.map(|p| p.pcn_code.as_str()).unwrap_or("")
        );
        iso(&mut out, rows.date_of_birth[i]);
        let _ = write!(
            out,
            ",{},{},{},",
            if rows.female[i] { "F" } else { "M" },
            rows.lsoa_code[i],
            rows.imd_decile[i]
        );
        if let Some(d) = rows.registration_end[i] {
            iso(&mut out, d);
        }
        out.push(b',');
        if let Some(d) = rows.date_of_death[i] {
            iso(&mut out, d);
        }
        out.push(b'\n');
    }
    out
}

fn events_csv(rows: &EventRows) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.len() * 40);
    for i in 0..rows.len() {
        let _ = write!(out, "{},{},", rows.patient_id[i], rows.code[i]);
        iso(&mut out, rows.date[i]);
        out.push(b',');
        if let Some(v) = rows.value[i] {
            let _ = write!(out, "{v}");
        }
        out.push(b'\n');
    }
    out
}

fn contacts_csv(rows: &ContactRows) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.patient_id.len() * 32);
    for i in 0..rows.patient_id.len() {
        let _ = write!(out, "{},", rows.patient_id[i]);
        iso(&mut out, rows.date[i]);
        let _ = writeln!(out, ",{}", rows.outcome[i]);
    }
    out
}

fn csv_header(table: usize) -> &'static str {
    match table {
        0 => "patient_id,practice_code,pcn_code,date_of_birth,sex,lsoa_code,imd_decile,registration_end,date_of_death\n",
        3 => "patient_id,date,outcome\n",
        _ => "patient_id,code,date,value\n",
    }
}

fn properties(table: usize) -> WriterProperties {
    let dictionary_columns: &[&str] = match table {
        0 => &[
            crate::contract::PRACTICE_CODE,
            crate::contract::PCN_CODE,
            crate::contract::SEX,
            crate::contract::LSOA_CODE,
            crate::contract::IMD_DECILE,
        ],
        3 => &[crate::contract::OUTCOME],
        _ => &[crate::contract::CODE],
    };
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk);
    for column in dictionary_columns {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), true);
    }
    builder.build()
}

/// The five open table files of a dataset being written.
pub enum TableWriters {
    Parquet(Vec<ArrowWriter<File>>),
    Csv(Vec<BufWriter<File>>),
}

impl TableWriters {
    pub fn create(dir: &Path, format: OutputFormat) -> Result<TableWriters, SynthError> {
        let create = |name: &str, ext: &str| {
            let path = dir.join(format!("{name}.{ext}"));
            File::create(&path).map_err(|source| SynthError::Io { path, source })
        };
        Ok(match format {
            OutputFormat::Parquet => {
                let mut writers = Vec::with_capacity(TABLES.len());
                for (i, name) in TABLES.iter().enumerate() {
                    let file = create(name, "parquet")?;
                    writers.push(ArrowWriter::try_new(
                        file,
                        schema_of(i),
                        Some(properties(i)),
                    )?);
                }
                TableWriters::Parquet(writers)
            }
            OutputFormat::Csv => {
                let mut writers = Vec::with_capacity(TABLES.len());
                for (i, name) in TABLES.iter().enumerate() {
                    let mut file = BufWriter::with_capacity(1 << 20, create(name, "csv")?);
                    file.write_all(csv_header(i).as_bytes())
                        .map_err(|source| SynthError::Io {
                            path: dir.join(name),
                            source,
                        })?;
                    writers.push(file);
                }
                TableWriters::Csv(writers)
            }
        })
    }

    pub fn append(&mut self, dir: &Path, chunk: EncodedChunk) -> Result<(), SynthError> {
        match (self, chunk) {
            (TableWriters::Parquet(writers), EncodedChunk::Parquet(batches)) => {
                for (writer, batch) in writers.iter_mut().zip(batches.iter()) {
                    if batch.num_rows() > 0 {
                        writer.write(batch)?;
                    }
                }
            }
            (TableWriters::Csv(writers), EncodedChunk::Csv(parts)) => {
                for ((writer, bytes), name) in writers.iter_mut().zip(parts.iter()).zip(TABLES) {
                    writer.write_all(bytes).map_err(|source| SynthError::Io {
                        path: dir.join(name),
                        source,
                    })?;
                }
            }
            _ => {
                return Err(SynthError::Internal(
                    "chunk encoded for the other format".into(),
                ))
            }
        }
        Ok(())
    }

    pub fn finish(self, dir: &Path) -> Result<(), SynthError> {
        match self {
            TableWriters::Parquet(writers) => {
                for writer in writers {
                    writer.close()?;
                }
            }
            TableWriters::Csv(writers) => {
                for (mut writer, name) in writers.into_iter().zip(TABLES) {
                    let io = |source| SynthError::Io {
                        path: dir.join(name),
                        source,
                    };
                    writer.flush().map_err(io)?;
                    writer.get_ref().sync_all().map_err(io)?;
                }
            }
        }
        Ok(())
    }
}
