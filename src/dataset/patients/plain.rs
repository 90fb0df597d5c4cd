//! CSV patients tables typed straight from their text, when every record
//! is plain: the fast way of [`super::Patients::read`] for CSV chunks, which
//! gives what the general way gives (the tests compare the two).

use arrow::array::{Date32Array, Int32Array, StringArray};

use super::{
    derived_deciles, Part, DATE_OF_BIRTH, DATE_OF_DEATH, IMD_DECILE, LSOA_CODE, PATIENT_ID,
    PCN_CODE, PRACTICE_CODE, REGISTRATION_END, SEX,
};
use crate::dataset::columns::{self, PatientIds};
use crate::dataset::raw::{CsvChunk, Locator};

/// A chunk of a CSV patients table typed straight from its text, when
/// every record is plain ([`CsvChunk::plain_records`]: no quotes, nothing
/// to trim) and every value reads cleanly: the same columns
/// [`super::to_part`] gives the chunk's text columns. `None` at the first record
/// or value the general way would read otherwise or refuse (an empty id,
/// practice or date of birth; a bad date, sex or decile), or when the
/// table has columns beyond the contract: the caller then reads the chunk
/// the general way, which names the line and column of a bad value.
pub(super) fn plain_part(
    chunk: &CsvChunk,
    spec: &crate::dataset::TableSpec,
    deprivation: &crate::dataset::DeprivationSpec,
) -> Option<Part> {
    let names = chunk.names();
    if names
        .iter()
        .any(|n| crate::contract::patient_column(n).is_none())
    {
        return None;
    }
    let at = |name: &str| names.iter().position(|n| n == name);
    let (id_at, practice_at, birth_at) = (at(PATIENT_ID)?, at(PRACTICE_CODE)?, at(DATE_OF_BIRTH)?);
    let (pcn_at, sex_at, lsoa_at, imd_at) = (at(PCN_CODE), at(SEX), at(LSOA_CODE), at(IMD_DECILE));
    let (end_at, death_at) = (at(REGISTRATION_END), at(DATE_OF_DEATH));
    let formats = [DATE_OF_BIRTH, REGISTRATION_END, DATE_OF_DEATH].map(|c| spec.date_format(c));
    // Patient records are some 60 bytes.
    let rows_guess = chunk.bytes() / 48;
    let mut id_offsets: Vec<i32> = Vec::with_capacity(rows_guess + 1);
    id_offsets.push(0);
    let mut id_bytes: Vec<u8> = Vec::with_capacity(rows_guess * 14);
    let [mut practice, mut pcn, mut sex, mut lsoa] =
        std::array::from_fn(|_| columns::FieldTexts::with_capacity(rows_guess));
    let [mut birth, mut end, mut death] =
        std::array::from_fn(|_| FieldValues::with_capacity(rows_guess));
    let mut imd = FieldValues::with_capacity(if imd_at.is_some() { rows_guess } else { 0 });
    let mut rows = 0usize;
    let plain = chunk.plain_records(|fields| {
        let field = |at: Option<usize>| at.map_or(&b""[..], |i| fields[i]);
        let (id, code) = (fields[id_at], fields[practice_at]);
        if id.is_empty() || code.is_empty() || fields[birth_at].is_empty() {
            return false;
        }
        let Some(sex_text) = sex_of(field(sex_at)) else {
            return false;
        };
        let read = [
            birth.push(fields[birth_at], formats[0]),
            end.push(field(end_at), formats[1]),
            death.push(field(death_at), formats[2]),
            practice.push(code),
            pcn.push(field(pcn_at)),
            sex.push(sex_text.as_bytes()),
            lsoa.push(field(lsoa_at)),
        ];
        if read.contains(&false) {
            return false;
        }
        if imd_at.is_some() {
            let decile = match field(imd_at) {
                b"" => None,
                d => match std::str::from_utf8(d).ok().map(str::parse::<i32>) {
                    Some(Ok(x)) if (1..=10).contains(&x) => Some(x),
                    _ => return false,
                },
            };
            imd.push_value(decile);
        }
        id_bytes.extend_from_slice(id);
        id_offsets.push(id_bytes.len() as i32);
        rows += 1;
        // Offsets are i32: a chunk holds far less than 2 GiB of ids.
        id_bytes.len() < i32::MAX as usize / 2
    });
    if !plain || rows == 0 {
        return None;
    }
    let ids = StringArray::try_new(
        arrow::buffer::OffsetBuffer::new(id_offsets.into()),
        id_bytes.into(),
        None,
    )
    .ok()?;
    let lsoa_code = lsoa.finish_column()?;
    let imd_decile = match imd_at {
        Some(_) => imd.finish_ints(),
        None => derived_deciles(&lsoa_code, deprivation),
    };
    Some(Part {
        ids: PatientIds::Text(ids),
        practice_code: practice.finish_column()?,
        pcn_code: pcn.finish_column()?,
        date_of_birth: birth.finish(),
        sex: sex.finish_column()?,
        lsoa_code,
        imd_decile,
        registration_end: end.finish(),
        date_of_death: death.finish(),
        extras: Vec::new(),
        locator: Locator::LinesFrom(chunk.first_line()),
        rows,
    })
}

/// Sex as [`columns::sex_column`] normalises it (empty is `U`); `None`
/// for anything it refuses.
fn sex_of(text: &[u8]) -> Option<&'static str> {
    let is = |words: &[&str]| {
        words
            .iter()
            .any(|w| text.eq_ignore_ascii_case(w.as_bytes()))
    };
    if text.is_empty() || is(&["u", "unknown", "i", "indeterminate"]) {
        Some("U")
    } else if is(&["f", "female"]) {
        Some("F")
    } else if is(&["m", "male"]) {
        Some("M")
    } else {
        None
    }
}

/// A column of dates or small integers built field by field; an empty
/// field is null.
struct FieldValues {
    values: Vec<i32>,
    nulls: arrow::array::builder::NullBufferBuilder,
}

impl FieldValues {
    fn with_capacity(rows: usize) -> Self {
        FieldValues {
            values: Vec::with_capacity(rows),
            nulls: arrow::array::builder::NullBufferBuilder::new(rows),
        }
    }

    fn push_value(&mut self, value: Option<i32>) {
        self.values.push(value.unwrap_or(0));
        match value {
            Some(_) => self.nulls.append_non_null(),
            None => self.nulls.append_null(),
        }
    }

    /// Appends a date in `format`; `false` if it is not one.
    fn push(&mut self, text: &[u8], format: &crate::dataset::spec::DateFormat) -> bool {
        if text.is_empty() {
            self.push_value(None);
            return true;
        }
        let day = match format.is_iso() {
            true => columns::iso_bytes_days(text),
            false => std::str::from_utf8(text)
                .ok()
                .and_then(|t| format.read_days(t)),
        };
        match day {
            Some(d) => {
                self.push_value(Some(d));
                true
            }
            None => false,
        }
    }

    fn finish(mut self) -> Date32Array {
        Date32Array::new(self.values.into(), self.nulls.finish())
    }

    fn finish_ints(mut self) -> Int32Array {
        Int32Array::new(self.values.into(), self.nulls.finish())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::dataset::raw::{CsvChunks, RawTable};
    use crate::dataset::{Format, TableFile, TableSpec};
    use arrow::array::Array;

    use super::super::Patients;
    use super::*;
    use crate::dataset::columns::TextColumn;

    /// The patients table at `path`, a CSV file described by `spec`.
    fn patients_csv(path: std::path::PathBuf, spec: TableSpec) -> TableFile {
        TableFile {
            name: "patients".into(),
            path,
            format: Format::Csv,
            batches: None,
            spec: Arc::new(spec),
            parquet_footer: Default::default(),
            read_digest: Default::default(),
        }
    }

    /// `text` as patients.csv, read with the plain path and without it:
    /// every column, row by row, or the error message.
    fn both_ways(text: &str, spec: TableSpec) -> [Result<Vec<String>, String>; 2] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patients.csv");
        std::fs::write(&path, text).unwrap();
        let table = patients_csv(path, spec);
        [true, false].map(|plain| {
            let p = Patients::read_with(&table, Default::default(), plain)
                .map_err(|e| e.to_string())?;
            let ids = match &p.ids {
                PatientIds::Text(a) => a.clone(),
                PatientIds::Int(_) => panic!("CSV ids are text"),
            };
            let text = |c: &TextColumn, i: usize| format!("{:?}", c.get(i));
            Ok((0..p.len())
                .map(|i| {
                    [
                        format!("{:?}", ids.value(i)),
                        text(&p.practice_code, i),
                        text(&p.pcn_code, i),
                        text(&p.sex, i),
                        text(&p.lsoa_code, i),
                        format!(
                            "{:?}",
                            p.date_of_birth
                                .is_valid(i)
                                .then(|| p.date_of_birth.value(i))
                        ),
                        format!(
                            "{:?}",
                            p.imd_decile.is_valid(i).then(|| p.imd_decile.value(i))
                        ),
                        format!(
                            "{:?}",
                            p.registration_end
                                .is_valid(i)
                                .then(|| p.registration_end.value(i))
                        ),
                        format!(
                            "{:?}",
                            p.date_of_death
                                .is_valid(i)
                                .then(|| p.date_of_death.value(i))
                        ),
                        format!("{:?}", p.row_of_text(ids.value(i))),
                    ]
                    .join(" ")
                })
                .collect())
        })
    }

    /// Chunks typed straight from their text give what the general reading
    /// gives: the same values, nulls, derived deciles and errors, across
    /// chunks (a file of several), whatever the columns and their order.
    #[test]
    fn plain_patient_chunks_read_as_the_general_way_does() {
        let full = "patient_id,practice_code,pcn_code,date_of_birth,sex,lsoa_code,imd_decile,registration_end,date_of_death\n";
        let mut big = String::from(full);
        for i in 0..40_000 {
            let sex = ["F", "female", "MALE", "u", "", "Indeterminate", "m"][i % 7];
            let pcn = if i % 5 == 0 { "" } else { "U40560" };
            let lsoa = ["E01020296", "", "E01000001", "W01000001", "E01033768"][i % 5];
            let imd = if i % 11 == 0 {
                String::new()
            } else {
                (1 + i % 10).to_string()
            };
            let end = if i % 13 == 0 { "2019-04-30" } else { "" };
            let death = if i % 17 == 0 { "2020-02-29" } else { "" };
            big.push_str(&format!(
                "{},L{:05},{pcn},19{:02}-{:02}-{:02},{sex},{lsoa},{imd},{end},{death}\n",
                1_000_000_000 + i * 7,
                83_000 + i % 300,
                i % 100,
                1 + i % 12,
                1 + i % 28
            ));
        }
        let ok = [
            big.clone(),
            // No sex, PCN or decile columns (deciles from the LSOA), other order.
            "date_of_birth,patient_id,lsoa_code,practice_code\n1950-01-01,7,E01020296,A1\n1960-02-03,8,,A2\n1970-03-04,9,E01000001,A1\n".into(),
            // Quotes, spaces and a blank line: the general way only.
            format!("{full}\"1\",A, U1 ,1950-01-01,F,,3,,\n\n2,A,U1,1950-01-01,M,,4,,\n"),
            // A column beyond the contract.
            "patient_id,practice_code,date_of_birth,ethnicity\n1,A,1950-01-01,x\n2,B,1951-01-01,\n".into(),
            // Windows line ends.
            format!("{full}1,A,U1,1950-01-01,F,E01020296,3,,\r\n2,A,,1950-01-02,,,,,\r\n"),
        ];
        // The first chunk of each is typed straight from its text, or not.
        let dir = tempfile::tempdir().unwrap();
        for (text, plain) in ok.iter().zip([true, true, false, false, true]) {
            let path = dir.path().join("patients.csv");
            std::fs::write(&path, text).unwrap();
            let table = patients_csv(path, Default::default());
            let names = RawTable::open(&table, &[], &[])
                .unwrap()
                .file_columns()
                .to_vec();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let (_, mut chunks) = CsvChunks::open(&table, &names).unwrap();
            let chunk = chunks.next_chunk().unwrap().unwrap();
            let part = plain_part(&chunk, &table.spec, &Default::default());
            assert_eq!(part.is_some(), plain, "{}", &text[..text.len().min(300)]);
        }
        for text in &ok {
            let [plain, general] = both_ways(text, Default::default());
            assert!(general.is_ok(), "{general:?}");
            assert_eq!(plain, general, "{}", &text[..text.len().min(300)]);
        }
        assert_eq!(
            both_ways(&big, Default::default())[0]
                .as_ref()
                .unwrap()
                .len(),
            40_000
        );
        let bad = [
            "1,A,U1,1950-01-01,X,,3,,",
            "1,A,U1,1950-01-01,F,,11,,",
            "1,A,U1,1950-01-01,F,,three,,",
            "1,A,U1,1950-13-01,F,,3,,",
            "1,A,U1,,F,,3,,",
            "1,,U1,1950-01-01,F,,3,,",
            ",A,U1,1950-01-01,F,,3,,",
            "1,A,U1,1950-01-01,F,,3,2019-02-29,",
            "1,A,U1,1950-01-01,F,,3,,1950/01/01",
            // The first row's id again.
            "2,B,U1,1950-01-01,F,,3,,",
        ];
        for row in bad {
            let text = format!("{full}2,A,U1,1950-01-01,F,,3,,\n{row}\n");
            let [plain, general] = both_ways(&text, Default::default());
            assert!(general.is_err(), "{row}: {general:?}");
            assert_eq!(plain, general, "{row}");
        }
        // Dates in another format, as dataset.toml may give them.
        let spec = TableSpec {
            date_format: crate::dataset::spec::DateFormat::parse("%d/%m/%Y").unwrap(),
            ..Default::default()
        };
        let text = format!("{full}1,A,U1,01/02/1950,F,,3,30/04/2019,\n2,A,U1,1950-02-01,F,,3,,\n");
        let [plain, general] = both_ways(&text, spec.clone());
        assert_eq!(plain, general);
        let text = format!("{full}1,A,U1,01/02/1950,F,,3,30/04/2019,\n2,A,U1,28/02/1951,F,,3,,\n");
        let [plain, general] = both_ways(&text, spec);
        assert!(general.is_ok(), "{general:?}");
        assert_eq!(plain, general);
    }
}
