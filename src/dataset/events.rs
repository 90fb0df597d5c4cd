//! Event tables (`events`, `admissions`, ...) and the `contacts` table,
//! streamed as typed record batches.
//!
//! An event batch holds patient ids as stored, codes dictionary-encoded (so
//! codelist membership is decided once per distinct code), dates as Date32
//! and optional numeric values.

use arrow::array::{AsArray, Date32Array, DictionaryArray, Float64Array};
use arrow::datatypes::Int32Type;

use super::columns::{self, PatientIds, Site};
use super::error::DatasetError;
use super::raw::{CsvChunk, Locator, RawBatch, RawTable};
use super::TableFile;

pub use crate::contract::{CODE, DATE, OUTCOME, PATIENT_ID, VALUE};

/// One typed batch of an event table.
#[derive(Debug, Clone)]
pub struct EventBatch {
    pub ids: PatientIds,
    pub codes: DictionaryArray<Int32Type>,
    pub dates: Date32Array,
    pub values: Option<Float64Array>,
    pub locator: Locator,
}

impl EventBatch {
    pub fn len(&self) -> usize {
        self.dates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }
}

/// Streams an event table (or some of its Parquet row groups) batch by batch.
pub struct EventReader {
    raw: RawTable,
    typer: EventTyper,
}

impl EventReader {
    pub fn open(table: &TableFile) -> Result<EventReader, DatasetError> {
        Self::open_part(table, None, true)
    }

    /// The columns read: `value` only when it is needed.
    pub fn columns(with_value: bool) -> &'static [&'static str] {
        const ALL: [&str; 4] = [PATIENT_ID, CODE, DATE, VALUE];
        if with_value {
            &ALL[..]
        } else {
            &ALL[..3]
        }
    }

    /// Opens the whole table, or only the given Parquet row groups; without
    /// `with_value` the `value` column is neither decoded nor checked.
    pub fn open_part(
        table: &TableFile,
        row_groups: Option<Vec<usize>>,
        with_value: bool,
    ) -> Result<EventReader, DatasetError> {
        let wanted = Self::columns(with_value);
        let raw = match row_groups {
            None => RawTable::open(table, wanted, &[CODE])?,
            Some(groups) => RawTable::open_row_groups(table, wanted, &[CODE], groups)?,
        };
        let file = table.display_name();
        for required in crate::contract::EVENT_REQUIRED {
            if !raw.file_columns().iter().any(|c| c == required) {
                return Err(DatasetError::MissingColumn {
                    file,
                    column: required,
                    found: raw.file_columns().join(", "),
                });
            }
        }
        let has_value = with_value && raw.file_columns().iter().any(|c| c == VALUE);
        Ok(EventReader {
            raw,
            typer: EventTyper {
                file,
                has_value,
                spec: table.spec.clone(),
            },
        })
    }

    pub fn next_batch(&mut self) -> Result<Option<EventBatch>, DatasetError> {
        match self.raw.next_batch()? {
            Some(raw) => self.typer.typed(raw).map(Some),
            None => Ok(None),
        }
    }

    /// What types this table's raw batches (shareable between threads:
    /// CSV chunks are typed in parallel).
    pub fn typer(&self) -> EventTyper {
        self.typer.clone()
    }
}

/// Types raw batches of one event table: text to ids, codes, dates and values.
#[derive(Debug, Clone)]
pub struct EventTyper {
    file: String,
    has_value: bool,
    spec: std::sync::Arc<super::TableSpec>,
}

impl EventTyper {
    /// Types one raw batch.
    pub fn typed(&self, raw: RawBatch) -> Result<EventBatch, DatasetError> {
        let site = Site {
            file: &self.file,
            locator: &raw.locator,
            spec: &self.spec,
        };
        let col = |name: &str| raw.batch.column_by_name(name);
        let (Some(ids), Some(codes), Some(dates)) = (col(PATIENT_ID), col(CODE), col(DATE)) else {
            return Err(DatasetError::Malformed {
                file: self.file.clone(),
                at: raw.locator.at(0),
                message: "a required column vanished while reading".into(),
            });
        };
        let values = match (self.has_value, col(VALUE)) {
            (true, Some(v)) => Some(columns::floats(v, VALUE, &site)?),
            _ => None,
        };
        Ok(EventBatch {
            ids: columns::patient_ids(ids, PATIENT_ID, &site)?,
            codes: columns::codes(codes, CODE, &site)?,
            dates: columns::dates(dates, DATE, &site, true)?,
            values,
            locator: raw.locator,
        })
    }
}

impl EventTyper {
    /// A chunk of a CSV table, typed: straight from its text to typed
    /// columns when every record is plain ([`CsvChunk::plain_records`]) and
    /// every value reads cleanly, otherwise split into text columns and
    /// typed as any batch ([`EventTyper::typed`]), which names the line
    /// and column of the first bad value. Either way the same rows and
    /// values.
    pub fn typed_chunk(&self, chunk: &CsvChunk) -> Result<Vec<EventBatch>, DatasetError> {
        if let Some(batch) = self.plain_chunk(chunk) {
            return Ok(vec![batch]);
        }
        chunk
            .parse()?
            .into_iter()
            .map(|raw| self.typed(raw))
            .collect()
    }

    /// The fast way of [`EventTyper::typed_chunk`], or `None` at the first
    /// record or value it does not read as the general way would (an empty
    /// id, code or date, a bad date or number, a field to trim, quotes).
    fn plain_chunk(&self, chunk: &CsvChunk) -> Option<EventBatch> {
        let at = |name: &str| chunk.names().iter().position(|n| n == name);
        let (id_at, code_at, date_at) = (at(PATIENT_ID)?, at(CODE)?, at(DATE)?);
        let value_at = if self.has_value {
            Some(at(VALUE)?)
        } else {
            None
        };
        let date_format = self.spec.date_format(DATE);

        // Event records are some 40 bytes: room for a little more.
        let rows_guess = chunk.bytes() / 24;
        let mut id_offsets: Vec<i32> = Vec::with_capacity(rows_guess + 1);
        id_offsets.push(0);
        let mut id_bytes: Vec<u8> = Vec::with_capacity(rows_guess * 14);
        let mut codes = columns::FieldTexts::with_capacity(rows_guess);
        let mut dates: Vec<i32> = Vec::with_capacity(rows_guess);
        let mut values = value_at.map(|_| arrow::array::Float64Builder::with_capacity(rows_guess));
        // The fields are UTF-8 (the chunk is checked whole): turning one
        // into text cannot fail.
        fn text(b: &[u8]) -> Option<&str> {
            std::str::from_utf8(b).ok()
        }
        let plain = chunk.plain_records(|fields| {
            let (id, code, date) = (fields[id_at], fields[code_at], fields[date_at]);
            if id.is_empty() || code.is_empty() {
                return false;
            }
            let day = match date_format.is_iso() {
                true => columns::iso_bytes_days(date),
                false => text(date).and_then(|d| date_format.read_days(d)),
            };
            let Some(day) = day else {
                return false;
            };
            if let (Some(values), Some(v)) = (values.as_mut(), value_at) {
                match fields[v] {
                    b"" => values.append_null(),
                    v => match text(v).map(str::parse::<f64>) {
                        Some(Ok(x)) if x.is_finite() => values.append_value(x),
                        Some(Ok(_)) => values.append_null(),
                        _ => return false,
                    },
                }
            }
            if !codes.push(code) {
                return false;
            }
            id_bytes.extend_from_slice(id);
            id_offsets.push(id_bytes.len() as i32);
            dates.push(day);
            // Offsets are i32: a chunk holds far less than 2 GiB of ids.
            id_bytes.len() < i32::MAX as usize / 2
        });
        if !plain || dates.is_empty() {
            return None;
        }
        let ids = arrow::array::StringArray::try_new(
            arrow::buffer::OffsetBuffer::new(id_offsets.into()),
            id_bytes.into(),
            None,
        )
        .ok()?;
        let (keys, texts) = codes.finish()?;
        let codes = DictionaryArray::try_new(keys, std::sync::Arc::new(texts)).ok()?;
        Some(EventBatch {
            ids: PatientIds::Text(ids),
            codes,
            dates: Date32Array::from(dates),
            values: values.map(|mut v| v.finish()),
            locator: Locator::LinesFrom(chunk.first_line()),
        })
    }
}

impl Iterator for EventReader {
    type Item = Result<EventBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

/// One typed batch of the contacts table.
#[derive(Debug, Clone)]
pub struct ContactBatch {
    pub ids: PatientIds,
    pub dates: Date32Array,
    /// The `outcome` column, when the table has one.
    pub outcomes: Option<arrow::array::StringArray>,
}

/// Streams the contacts table (patient_id, date; outcome is not needed to
/// decide who was contacted).
pub struct ContactReader {
    file: String,
    raw: RawTable,
    spec: std::sync::Arc<super::TableSpec>,
}

impl ContactReader {
    pub fn open(table: &TableFile) -> Result<ContactReader, DatasetError> {
        let raw = RawTable::open(table, &[PATIENT_ID, DATE, OUTCOME], &[])?;
        let file = table.display_name();
        for required in [PATIENT_ID, DATE] {
            if !raw.file_columns().iter().any(|c| c == required) {
                return Err(DatasetError::MissingColumn {
                    file,
                    column: required,
                    found: raw.file_columns().join(", "),
                });
            }
        }
        Ok(ContactReader {
            file,
            raw,
            spec: table.spec.clone(),
        })
    }
}

impl Iterator for ContactReader {
    type Item = Result<ContactBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let raw = match self.raw.next_batch() {
            Ok(Some(raw)) => raw,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        let site = Site {
            file: &self.file,
            locator: &raw.locator,
            spec: &self.spec,
        };
        let (Some(ids), Some(dates)) = (
            raw.batch.column_by_name(PATIENT_ID),
            raw.batch.column_by_name(DATE),
        ) else {
            return None;
        };
        Some((|| {
            Ok(ContactBatch {
                ids: columns::patient_ids(ids, PATIENT_ID, &site)?,
                dates: columns::dates(dates, DATE, &site, true)?,
                outcomes: match raw.batch.column_by_name(OUTCOME) {
                    None => None,
                    Some(o) => Some(
                        arrow::compute::cast(o, &arrow::datatypes::DataType::Utf8)
                            .map_err(|_| DatasetError::WrongType {
                                file: self.file.clone(),
                                column: OUTCOME.into(),
                                expected: "text",
                                found: o.data_type().to_string(),
                            })?
                            .as_string::<i32>()
                            .clone(),
                    ),
                },
            })
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::raw::CsvChunks;
    use crate::dataset::{Format, TableFile};
    use arrow::array::Array;

    /// Every row of a typed batch: (location, id, code, date, value).
    type Row = (String, String, String, i32, Option<f64>);
    /// A chunk's rows, or the message of its first bad value.
    type Typed = Result<Vec<Row>, String>;

    fn rows(batches: &[EventBatch]) -> Vec<Row> {
        let mut out = Vec::new();
        for b in batches {
            let texts = b.codes.values().as_string::<i32>();
            for i in 0..b.len() {
                out.push((
                    b.locator.at(i).to_string(),
                    b.ids.text(i),
                    texts.value(b.codes.keys().value(i) as usize).to_string(),
                    b.dates.value(i),
                    b.values
                        .as_ref()
                        .and_then(|v| v.is_valid(i).then(|| v.value(i))),
                ));
            }
        }
        out
    }

    /// `text` as events.csv: the chunk typed both ways (straight from the
    /// text, and split into text columns first), and whether the straight
    /// way took it.
    fn both_ways(text: &str) -> (Typed, Typed, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.csv");
        std::fs::write(&path, text).unwrap();
        let table = TableFile {
            name: "events".into(),
            path,
            format: Format::Csv,
            batches: None,
            spec: Default::default(),
            parquet_footer: Default::default(),
            read_digest: Default::default(),
        };
        let typer = EventReader::open_part(&table, None, true).unwrap().typer();
        let (_, mut chunks) = CsvChunks::open(&table, EventReader::columns(true)).unwrap();
        let chunk = chunks.next_chunk().unwrap().unwrap();
        let straight = typer.plain_chunk(&chunk);
        let took = straight.is_some();
        let general = chunk
            .parse()
            .and_then(|raws| {
                raws.into_iter()
                    .map(|r| typer.typed(r))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map(|b| rows(&b))
            .map_err(|e| e.to_string());
        let chosen = typer
            .typed_chunk(&chunk)
            .map(|b| rows(&b))
            .map_err(|e| e.to_string());
        (chosen, general, took)
    }

    #[test]
    fn a_plain_chunk_is_typed_straight_from_its_text_as_the_general_way_types_it() {
        let header = "patient_id,code,extra,date,value\n";
        let plain = [
            "1,A,x,2020-01-02,\n1,B,y,2020-01-03,2.5\n22,A,,1999-12-31,-1e3\n",
            "1,A,x,2020-01-02,NaN\r\n2,XüY,y,2020-01-03,inf\r\n",
            // Codes longer than 15 bytes are looked up as text.
            "9,12345678901234567,x,2020-02-29,\n9,A,x,2020-02-29,7\n9,12345678901234567,x,2020-03-01,",
        ];
        for body in plain {
            let (chosen, general, took) = both_ways(&format!("{header}{body}"));
            assert!(took, "{body:?} is plain");
            assert_eq!(chosen, general, "{body:?}");
        }
        let (chosen, _, _) = both_ways(&format!("{header}{}", plain[0]));
        assert_eq!(
            chosen.unwrap(),
            vec![
                ("2".into(), "1".into(), "A".into(), 18263, None),
                ("3".into(), "1".into(), "B".into(), 18264, Some(2.5)),
                ("4".into(), "22".into(), "A".into(), 10956, Some(-1000.0)),
            ]
        );
        // Anything the straight way does not read as the general way would
        // goes the general way: same rows, same messages.
        let general_only = [
            "1,A,x,2020-01-02,\n\n2,B,y,2020-01-03,\n",
            "1, A,x,2020-01-02,\n",
            "1,\"A\",x,2020-01-02,\n",
            ",A,x,2020-01-02,\n",
            "1,,x,2020-01-02,\n",
            "1,A,x,,\n",
            "1,A,x,2020-02-30,\n",
            "1,A,x,2020-01-02,many\n",
            "1,A,x,2020-01-02\n",
            "1,A,x,2020-01-02,1,2\n",
            // Text whose ends are not ASCII could be trimmed (no-break spaces).
            "1,\u{a0}A,x,2020-01-02,\n",
            "1,Aü,x,2020-01-02,\n",
        ];
        for body in general_only {
            let (chosen, general, took) = both_ways(&format!("{header}{body}"));
            assert!(!took, "{body:?} is not plain");
            assert_eq!(chosen, general, "{body:?}");
        }
        let (chosen, _, _) = both_ways(&format!("{header}1,A,x,2020-01-02,\n2,A,x,2020-02-30,\n"));
        assert_eq!(
            chosen.unwrap_err(),
            "events.csv:3: column date: \"2020-02-30\" is not a date (expected YYYY-MM-DD)"
        );
    }
}
