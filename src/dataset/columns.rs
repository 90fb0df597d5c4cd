//! Typed columns: turns a raw column (CSV text, or whatever Parquet stored)
//! into the type the input contract fixes, or an error naming the file,
//! line or row, column and what was expected.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Date32Builder, DictionaryArray, Float64Array,
    Float64Builder, Int32Array, Int32Builder, Int64Array, StringArray, StringBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int32Type, TimeUnit};
use chrono::{Datelike, NaiveDate};

use super::error::DatasetError;
use super::raw::Locator;

mod text;
pub use text::{FieldTexts, TextColumn, TextColumnBuilder};

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01, Arrow's day 0.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Arrow's Date32 value (days since 1970-01-01) for a calendar date.
pub fn date_to_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// The calendar date of an Arrow Date32 value.
pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

/// Parses an ISO `YYYY-MM-DD` date; anything else is `None`.
pub fn parse_iso_date(text: &str) -> Option<NaiveDate> {
    iso_date_days(text).and_then(days_to_date)
}

/// Arrow's Date32 value of an ISO `YYYY-MM-DD` date (years 0 to 9999),
/// without building a calendar date: the hot loop of typing text dates.
/// Day numbers are [`date_to_days`]'s.
#[inline]
pub fn iso_date_days(text: &str) -> Option<i32> {
    iso_bytes_days(text.as_bytes())
}

/// [`iso_date_days`] of text as bytes (inlined into the CSV readers'
/// loops, where a call a date was a tenth of their time).
#[inline(always)]
pub fn iso_bytes_days(text: &[u8]) -> Option<i32> {
    let b: &[u8; 10] = text.try_into().ok()?;
    // `YYYY-MM-` as one word and `DD` as another, each byte XORed with
    // its byte of `0000-00-`: a digit becomes its value, a dash zero, and
    // anything else 10 or more. A byte is at most 9 when neither it nor
    // it plus 0x76 has its top bit set (a byte that carries into the next
    // has its own top bit set, so the word is refused either way).
    let word = u64::from_le_bytes(*b.first_chunk::<8>()?) ^ 0x2D30_302D_3030_3030;
    let dd = u16::from_le_bytes([b[8], b[9]]) ^ 0x3030;
    const DASHES: u64 = 0xFF00_00FF_0000_0000;
    let tops = (word | word.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080;
    let day_tops = (dd | dd.wrapping_add(0x7676)) & 0x8080;
    if tops | (word & DASHES) != 0 || day_tops != 0 {
        return None;
    }
    let digit = |i: u32| ((word >> (8 * i)) & 0xFF) as u32;
    let y = digit(0) * 1000 + digit(1) * 100 + digit(2) * 10 + digit(3);
    let m = (digit(5) * 10 + digit(6)) as usize;
    let day = u32::from(dd & 0xFF) * 10 + u32::from(dd >> 8);
    if !(1..=12).contains(&m) {
        return None;
    }
    // Days before each month (index 1 = January) and each month's length,
    // in a common year and in a leap year.
    const BEFORE: [[u32; 13]; 2] = [
        [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334],
        [0, 0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335],
    ];
    const LENGTH: [[u32; 13]; 2] = [
        [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
        [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
    ];
    let year = YEARS[y as usize];
    let leap = (year & 1) as usize;
    if day == 0 || day > LENGTH[leap][m] {
        return None;
    }
    Some((year >> 1) + (BEFORE[leap][m] + day - 1) as i32)
}

/// For each year 0 to 9999: twice the day number of its January 1st (days
/// from 1970-01-01, proleptic Gregorian), plus one in a leap year. Looking
/// the year up costs less than working it out (measured: 10 ns a date
/// worked out, 6.5 ns looked up).
static YEARS: [i32; 10_000] = {
    let mut years = [0i32; 10_000];
    let mut y = 0u32;
    while y < 10_000 {
        // Leap years before `y` (year 0 is one): ⌈y/4⌉ - ⌈y/100⌉ + ⌈y/400⌉;
        // 1970-01-01 is day 719,528 from 0000-01-01.
        let leaps_before = y.div_ceil(4) - y.div_ceil(100) + y.div_ceil(400);
        let leap = y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
        years[y as usize] = ((365 * y + leaps_before) as i32 - 719_528) * 2 + leap as i32;
        y += 1;
    }
    years
};

/// A text of at most 15 bytes as one number, its bytes then its length
/// in the top byte, or `None` for a longer text: distinct texts are
/// distinct numbers, hashed and compared without a call to `memcmp` (which
/// took a tenth of a CSV scan's code lookups and id comparisons).
#[inline]
pub fn short_key(b: &[u8]) -> Option<u128> {
    let n = b.len();
    let word = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
    let (lo, hi) = match n {
        0..=7 => (
            b.iter()
                .enumerate()
                .fold(0u64, |w, (i, &c)| w | u64::from(c) << (8 * i)),
            0,
        ),
        8 => (word(b), 0),
        // Bytes 8.. are the top bytes of the last eight.
        9..=15 => (word(&b[..8]), word(&b[n - 8..]) >> (8 * (16 - n))),
        _ => return None,
    };
    Some(u128::from(lo) | u128::from(hi | (n as u64) << 56) << 64)
}

/// The context needed to report a bad value.
pub struct Site<'a> {
    pub file: &'a str,
    pub locator: &'a Locator,
    /// The table's column names and date formats (dataset.toml).
    pub spec: &'a super::TableSpec,
}

impl Site<'_> {
    fn bad(&self, row: usize, column: &str, problem: String) -> DatasetError {
        DatasetError::BadValue {
            file: self.file.to_string(),
            at: self.locator.at(row),
            column: self.spec.label(column),
            problem,
        }
    }

    fn wrong_type(&self, column: &str, expected: &'static str, found: &DataType) -> DatasetError {
        DatasetError::WrongType {
            file: self.file.to_string(),
            column: self.spec.label(column),
            expected,
            found: found.to_string(),
        }
    }

    fn missing(&self, row: usize, column: &str) -> DatasetError {
        self.bad(row, column, "is empty, but a value is required".into())
    }
}

/// Any string-like Arrow column as plain `Utf8`, or `None` for other types.
fn as_utf8(col: &ArrayRef) -> Option<StringArray> {
    match col.data_type() {
        DataType::Utf8 => Some(col.as_string::<i32>().clone()),
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let c = cast(col, &DataType::Utf8).ok()?;
            Some(c.as_string::<i32>().clone())
        }
        _ => None,
    }
}

fn present(s: &StringArray, i: usize) -> Option<&str> {
    if s.is_null(i) {
        return None;
    }
    let v = trimmed(s.value(i));
    (!v.is_empty()).then_some(v)
}

/// `text.trim()`, with a quick look at the ends first (most cells have
/// nothing to trim, and `trim` decodes characters from both ends).
#[inline]
pub fn trimmed(text: &str) -> &str {
    match (text.as_bytes().first(), text.as_bytes().last()) {
        (Some(&a), Some(&z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

/// A date column: Date32 as is, Date64 / timestamps truncated to the day,
/// text as ISO `YYYY-MM-DD`.
pub fn dates(
    col: &ArrayRef,
    name: &str,
    site: &Site,
    required: bool,
) -> Result<Date32Array, DatasetError> {
    let out = match col.data_type() {
        DataType::Date32 => col.as_primitive::<arrow::datatypes::Date32Type>().clone(),
        DataType::Date64 | DataType::Timestamp(_, _) => {
            let c = if matches!(col.data_type(), DataType::Timestamp(_, _)) {
                cast(
                    &cast(col, &DataType::Timestamp(TimeUnit::Second, None))
                        .map_err(|_| site.wrong_type(name, "a date", col.data_type()))?,
                    &DataType::Date32,
                )
            } else {
                cast(col, &DataType::Date32)
            }
            .map_err(|_| site.wrong_type(name, "a date", col.data_type()))?;
            c.as_primitive::<arrow::datatypes::Date32Type>().clone()
        }
        _ => {
            let text =
                as_utf8(col).ok_or_else(|| site.wrong_type(name, "a date", col.data_type()))?;
            let mut b = Date32Builder::with_capacity(text.len());
            let format = site.spec.date_format(name);
            for i in 0..text.len() {
                match present(&text, i) {
                    None => b.append_null(),
                    Some(v) => match format.read_days(v) {
                        Some(d) => b.append_value(d),
                        None => {
                            // A person's own dates are personal data: the
                            // message names the line, never the value.
                            let problem = if crate::contract::is_personal(name) {
                                format!(
                                    "is not a date (expected {format}; the value is not shown: \
                                     it is personal data)"
                                )
                            } else {
                                format!("{v:?} is not a date (expected {format})")
                            };
                            return Err(site.bad(i, name, problem));
                        }
                    },
                }
            }
            b.finish()
        }
    };
    if required && out.null_count() > 0 {
        let row = (0..out.len()).find(|&i| out.is_null(i)).unwrap_or(0);
        return Err(site.missing(row, name));
    }
    Ok(out)
}

/// A numeric value column (floats; integers widened; text parsed).
pub fn floats(col: &ArrayRef, name: &str, site: &Site) -> Result<Float64Array, DatasetError> {
    match col.data_type() {
        DataType::Float64 => Ok(col.as_primitive::<arrow::datatypes::Float64Type>().clone()),
        t if t.is_numeric() => {
            let c =
                cast(col, &DataType::Float64).map_err(|_| site.wrong_type(name, "a number", t))?;
            Ok(c.as_primitive::<arrow::datatypes::Float64Type>().clone())
        }
        t => {
            let text = as_utf8(col).ok_or_else(|| site.wrong_type(name, "a number", t))?;
            let mut b = Float64Builder::with_capacity(text.len());
            for i in 0..text.len() {
                match present(&text, i) {
                    None => b.append_null(),
                    // NaN and infinities (as Parquet may also store them)
                    // are read as no value, as the pack language treats them.
                    Some(v) => match v.parse::<f64>() {
                        Ok(x) if x.is_finite() => b.append_value(x),
                        Ok(_) => b.append_null(),
                        Err(_) => return Err(site.bad(i, name, format!("{v:?} is not a number"))),
                    },
                }
            }
            Ok(b.finish())
        }
    }
}

/// An IMD decile: an integer from 1 (most deprived) to 10.
pub fn deciles(col: &ArrayRef, name: &str, site: &Site) -> Result<Int32Array, DatasetError> {
    let expect = "an integer from 1 to 10";
    let raw: Int32Array = match col.data_type() {
        t if t.is_integer() => {
            let c = cast(col, &DataType::Int32).map_err(|_| site.wrong_type(name, expect, t))?;
            c.as_primitive::<Int32Type>().clone()
        }
        t => {
            let text = as_utf8(col).ok_or_else(|| site.wrong_type(name, expect, t))?;
            let mut b = Int32Builder::with_capacity(text.len());
            for i in 0..text.len() {
                match present(&text, i) {
                    None => b.append_null(),
                    Some(v) => match v.parse::<i32>() {
                        Ok(x) => b.append_value(x),
                        Err(_) => return Err(site.bad(i, name, format!("{v:?} is not {expect}"))),
                    },
                }
            }
            b.finish()
        }
    };
    for i in 0..raw.len() {
        if raw.is_valid(i) && !(1..=10).contains(&raw.value(i)) {
            return Err(site.bad(i, name, format!("{} is not {expect}", raw.value(i))));
        }
    }
    Ok(raw)
}

/// Any string-like column as a dictionary of `Utf8` with `Int32` keys
/// (kept as read when it already is one; large strings, string views and
/// other key types go through plain UTF-8).
fn as_dictionary(col: &ArrayRef) -> Option<DictionaryArray<Int32Type>> {
    match col.data_type() {
        DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
            Some(col.as_dictionary::<Int32Type>().clone())
        }
        _ => {
            let text = as_utf8(col)?;
            let dict_type =
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
            cast(&text, &dict_type)
                .ok()
                .map(|c| c.as_dictionary::<Int32Type>().clone())
        }
    }
}

/// A text column, dictionary-encoded, each distinct text put through
/// `normalise` once: `Ok(None)` makes the row null, `Err` is a problem with
/// the first row holding that text. Null and empty cells are normalised as
/// `None`. With `required`, a row normalised to null is an error.
fn dictionary_texts<F>(
    col: &ArrayRef,
    name: &str,
    site: &Site,
    required: bool,
    normalise: F,
) -> Result<TextColumn, DatasetError>
where
    F: Fn(Option<&str>) -> Result<Option<&'static str>, String> + Copy,
{
    let dict = as_dictionary(col).ok_or_else(|| site.wrong_type(name, "text", col.data_type()))?;
    let raw = dict.values().as_string::<i32>();
    // Each distinct stored text normalised once; slot `raw.len()` is for
    // null cells.
    let mut problems: Vec<Option<String>> = Vec::with_capacity(raw.len() + 1);
    let mut b = StringBuilder::with_capacity(raw.len() + 1, raw.len() * 8);
    let mut present_values = Vec::with_capacity(raw.len() + 1);
    for k in 0..=raw.len() {
        let text = if k < raw.len() { present(raw, k) } else { None };
        let mapped = match text {
            Some(t) => match normalise(Some(t)) {
                // Kept as stored (trimmed) unless normalising rewrote it.
                Ok(Some("")) => Ok(Some(t)),
                Ok(n) => Ok(n),
                Err(e) => Err(e),
            },
            None => normalise(None),
        };
        match mapped {
            Ok(Some(v)) => {
                b.append_value(v);
                present_values.push(true);
                problems.push(None);
            }
            Ok(None) => {
                b.append_null();
                present_values.push(false);
                problems.push(None);
            }
            Err(e) => {
                b.append_null();
                present_values.push(false);
                problems.push(Some(e));
            }
        }
    }
    let values = b.finish();
    let keys = dict.keys();
    // Every stored text kept and no empty cells (the usual patients
    // table): the keys stand as read, no pass over the rows.
    if keys.null_count() == 0 && present_values[..raw.len()].iter().all(|&p| p) {
        return Ok(TextColumn::new(keys, values));
    }
    let null_slot = raw.len() as i32;
    let mut out_keys = arrow::array::Int32Builder::with_capacity(keys.len());
    for i in 0..keys.len() {
        let k = if keys.is_valid(i) {
            keys.value(i)
        } else {
            null_slot
        };
        let k = if (0..null_slot).contains(&k) {
            k
        } else {
            null_slot
        };
        if let Some(problem) = &problems[k as usize] {
            return Err(site.bad(i, name, problem.clone()));
        }
        if present_values[k as usize] {
            out_keys.append_value(k);
        } else if required {
            return Err(site.missing(i, name));
        } else {
            out_keys.append_null();
        }
    }
    Ok(TextColumn::new(&out_keys.finish(), values))
}

/// A text column, dictionary-encoded and trimmed; empty text is null. With
/// `required`, a null is an error.
pub fn text_column(
    col: &ArrayRef,
    name: &str,
    site: &Site,
    required: bool,
) -> Result<TextColumn, DatasetError> {
    // "" means "the trimmed text as stored".
    dictionary_texts(col, name, site, required, |t| Ok(t.map(|_| "")))
}

/// Sex normalised to `F`, `M` or `U` (empty counts as `U`), dictionary-encoded.
pub fn sex_column(col: &ArrayRef, name: &str, site: &Site) -> Result<TextColumn, DatasetError> {
    dictionary_texts(col, name, site, true, |t| {
        let v = t.unwrap_or("U");
        match v.to_ascii_lowercase().as_str() {
            "f" | "female" => Ok(Some("F")),
            "m" | "male" => Ok(Some("M")),
            "u" | "unknown" | "i" | "indeterminate" => Ok(Some("U")),
            _ => Err(format!(
                "{v:?} is not a sex (expected F, M, U, female, male or unknown)"
            )),
        }
    })
}

/// A text column, trimmed; empty text is null. With `required`, a null is an error.
pub fn texts(
    col: &ArrayRef,
    name: &str,
    site: &Site,
    required: bool,
) -> Result<StringArray, DatasetError> {
    let text = as_utf8(col).ok_or_else(|| site.wrong_type(name, "text", col.data_type()))?;
    let mut b = StringBuilder::with_capacity(text.len(), text.len() * 8);
    for i in 0..text.len() {
        match present(&text, i) {
            Some(v) => b.append_value(v),
            None if required => return Err(site.missing(i, name)),
            None => b.append_null(),
        }
    }
    Ok(b.finish())
}

/// Patient identifiers as stored: integers or text. Never null.
#[derive(Debug, Clone)]
pub enum PatientIds {
    Int(Int64Array),
    Text(StringArray),
}

impl PatientIds {
    pub fn len(&self) -> usize {
        match self {
            PatientIds::Int(a) => a.len(),
            PatientIds::Text(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The identifier of row `i` as text (for output files only, never logs).
    pub fn text(&self, i: usize) -> String {
        match self {
            PatientIds::Int(a) => a.value(i).to_string(),
            PatientIds::Text(a) => a.value(i).to_string(),
        }
    }

    pub fn as_array(&self) -> ArrayRef {
        match self {
            PatientIds::Int(a) => Arc::new(a.clone()),
            PatientIds::Text(a) => Arc::new(a.clone()),
        }
    }
}

pub fn patient_ids(col: &ArrayRef, name: &str, site: &Site) -> Result<PatientIds, DatasetError> {
    match col.data_type() {
        t if t.is_integer() => {
            let c = cast(col, &DataType::Int64)
                .map_err(|_| site.wrong_type(name, "an integer or text identifier", t))?;
            let ids = c.as_primitive::<arrow::datatypes::Int64Type>().clone();
            if ids.null_count() > 0 {
                let i = (0..ids.len()).find(|&i| ids.is_null(i)).unwrap_or(0);
                return Err(site.missing(i, name));
            }
            Ok(PatientIds::Int(ids))
        }
        t @ (DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Boolean) => {
            Err(site.wrong_type(name, "an integer or text identifier", t))
        }
        _ => texts(col, name, site, true).map(PatientIds::Text),
    }
}

/// Event codes, dictionary-encoded so that codelist membership is decided
/// once per distinct code rather than once per row.
pub fn codes(
    col: &ArrayRef,
    name: &str,
    site: &Site,
) -> Result<DictionaryArray<Int32Type>, DatasetError> {
    let dict =
        as_dictionary(col).ok_or_else(|| site.wrong_type(name, "text codes", col.data_type()))?;
    if dict.null_count() > 0 {
        let i = (0..dict.len()).find(|&i| dict.is_null(i)).unwrap_or(0);
        return Err(site.missing(i, name));
    }
    Ok(dict)
}

#[cfg(test)]
mod tests {
    use super::text::Keys;
    use super::*;

    #[test]
    fn short_keys_are_distinct_for_distinct_texts() {
        let mut texts: Vec<Vec<u8>> = vec![vec![]];
        for n in 1..=15usize {
            texts.push(vec![b'7'; n]);
            texts.push((0..n as u8).map(|i| b'a' + i).collect());
            let mut last = vec![0u8; n];
            last[n - 1] = 1;
            texts.push(last);
            texts.push(vec![0u8; n]);
        }
        let keys: std::collections::HashSet<u128> =
            texts.iter().map(|t| short_key(t).unwrap()).collect();
        assert_eq!(keys.len(), texts.len());
        assert_eq!(short_key(b"AB"), Some(0x4241 | 2u128 << 120));
        assert_eq!(short_key(&[b'1'; 16]), None);
    }

    #[test]
    fn iso_dates_parse_strictly() {
        assert_eq!(
            parse_iso_date("2020-02-29"),
            NaiveDate::from_ymd_opt(2020, 2, 29)
        );
        assert_eq!(parse_iso_date("2019-02-29"), None);
        assert_eq!(parse_iso_date("31/02/1950"), None);
        assert_eq!(parse_iso_date("2020-1-01"), None);
        assert_eq!(parse_iso_date("+020-01-01"), None);
    }

    /// The ISO reader gives chrono's day numbers for every day of the years
    /// 0 to 9999, and refuses impossible dates and other layouts.
    #[test]
    fn iso_date_days_are_chronos() {
        use chrono::Datelike as _;
        let mut d = NaiveDate::from_ymd_opt(0, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        let mut text = String::new();
        while d <= last {
            use std::fmt::Write as _;
            text.clear();
            write!(text, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()).unwrap();
            assert_eq!(iso_date_days(&text), Some(date_to_days(d)), "{text}");
            d = d.succ_opt().unwrap();
        }
        for bad in [
            "2019-02-29",
            "1900-02-29",
            "2020-02-30",
            "2020-04-31",
            "2020-13-01",
            "2020-00-10",
            "2020-01-00",
            "2020-01-32",
            "2020-1-01",
            "+020-01-01",
            "-020-01-01",
            "2020/01/01",
            "2020-01-1a",
            " 2020-01-01",
            "",
            "31/02/1950",
            "2020-01-01T",
        ] {
            assert_eq!(iso_date_days(bad), None, "{bad:?}");
            assert_eq!(parse_iso_date(bad), None, "{bad:?}");
        }
        assert_eq!(iso_date_days("2000-02-29"), Some(11_016));
        assert_eq!(iso_date_days("1969-12-31"), Some(-1));
        assert_eq!(iso_date_days("1970-01-01"), Some(0));
    }

    /// Every byte value at every place of a few dates (first and last
    /// days, a leap day, digits that carry): read exactly when the text is
    /// still a real `YYYY-MM-DD` date, as chrono reads it digit by digit.
    #[test]
    fn iso_date_days_refuse_any_other_byte() {
        fn plain(b: &[u8]) -> Option<NaiveDate> {
            let digit = |i: usize| b[i].is_ascii_digit().then(|| u32::from(b[i] - b'0'));
            if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
                return None;
            }
            let n = |at: &[usize]| at.iter().try_fold(0, |n, &i| Some(n * 10 + digit(i)?));
            NaiveDate::from_ymd_opt(n(&[0, 1, 2, 3])? as i32, n(&[5, 6])?, n(&[8, 9])?)
        }
        for date in [
            "2020-02-29",
            "1999-12-31",
            "0000-01-01",
            "9999-12-31",
            "1989-09-09",
        ] {
            for at in 0..10 {
                for byte in 0..=255u8 {
                    let mut text = date.as_bytes().to_vec();
                    text[at] = byte;
                    assert_eq!(
                        iso_bytes_days(&text),
                        plain(&text).map(date_to_days),
                        "{date} with byte {byte:#04x} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn date_days_round_trip() {
        let d = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert_eq!(date_to_days(d), 0);
        let d = NaiveDate::from_ymd_opt(2020, 3, 23).unwrap();
        assert_eq!(date_to_days(d), 18344);
        assert_eq!(days_to_date(18344), Some(d));
    }

    /// patients.csv, whose five rows are on lines 2 to 6.
    struct Rows {
        locator: Locator,
        spec: crate::dataset::TableSpec,
    }

    impl Rows {
        fn site(&self) -> Site<'_> {
            Site {
                file: "patients.csv",
                locator: &self.locator,
                spec: &self.spec,
            }
        }
    }

    fn site_rows() -> Rows {
        Rows {
            locator: Locator::Lines(vec![2, 3, 4, 5, 6]),
            spec: crate::dataset::TableSpec::default(),
        }
    }

    #[test]
    fn text_columns_are_trimmed_and_empty_is_null_whatever_the_encoding() {
        let rows = site_rows();
        let site = rows.site();
        let plain: ArrayRef = Arc::new(StringArray::from(vec![
            Some(" A81001 "),
            Some(""),
            None,
            Some("A81001"),
            Some("B1"),
        ]));
        let dict_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let encoded = cast(&plain, &dict_type).unwrap();
        for col in [&plain, &encoded] {
            let t = text_column(col, "pcn_code", &site, false).unwrap();
            let got: Vec<Option<&str>> = t.iter().collect();
            assert_eq!(
                got,
                [Some("A81001"), None, None, Some("A81001"), Some("B1")]
            );
            assert_eq!(t.value(1), "");
            let strings = t.to_strings();
            assert_eq!(strings.value(0), "A81001");
            assert!(strings.is_null(2));
            let taken = t.take_strings(&[4, 2, 0]);
            let taken: Vec<Option<&str>> = taken.iter().collect();
            assert_eq!(taken, [Some("B1"), None, Some("A81001")]);
            // Required: the first empty cell is the error, on its own line.
            let err = text_column(col, "practice_code", &site, true).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("patients.csv:3: column practice_code"),
                "{err}"
            );
        }
    }

    /// Parts joined in order keep every row's text and null; a part with
    /// the previous part's texts shares them, others add theirs.
    #[test]
    fn text_parts_join_in_order_sharing_repeated_texts() {
        let rows = site_rows();
        let site = rows.site();
        let dict_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let part = |cells: Vec<Option<&str>>| {
            let plain: ArrayRef = Arc::new(StringArray::from(cells));
            text_column(&cast(&plain, &dict_type).unwrap(), "pcn_code", &site, false).unwrap()
        };
        let a = part(vec![Some("P1"), Some("P2"), None]);
        let b = part(vec![Some("P2"), Some("P1")]);
        let c = part(vec![Some("P3"), Some(" P1 "), Some("")]);
        let mut joined = TextColumnBuilder::with_capacity(2);
        for p in [&a, &a, &c, &b] {
            joined.append(p);
        }
        let joined = joined.finish();
        let got: Vec<Option<&str>> = joined.iter().collect();
        assert_eq!(
            got,
            [
                Some("P1"),
                Some("P2"),
                None,
                Some("P1"),
                Some("P2"),
                None,
                Some("P3"),
                Some("P1"),
                None,
                Some("P2"),
                Some("P1"),
            ]
        );
        // Each distinct text is held once, whichever part it came from.
        assert_eq!(joined.dictionary_len(), 3);
        assert_eq!(joined.key(0), joined.key(3));
        assert_eq!(joined.key(0), joined.key(7));
        assert_eq!(joined.key(1), joined.key(9));
        assert_eq!(joined.key(2), None);
    }

    /// Keys widened part by part as new texts arrive (one byte, then two,
    /// then four; and one byte straight to four) keep the rows appended
    /// before the widening.
    #[test]
    fn text_keys_widen_as_parts_bring_new_texts() {
        let rows = site_rows();
        let site = rows.site();
        let part = |from: usize, distinct: usize| {
            let cells: Vec<Option<String>> = (0..distinct + 3)
                .map(|i| (i % 5 != 2).then(|| format!("T{}", from + i % distinct)))
                .collect();
            let plain: ArrayRef = Arc::new(StringArray::from(cells.clone()));
            (
                text_column(&plain, "pcn_code", &site, false).unwrap(),
                cells,
            )
        };
        // A fifth of the cells are null: `(from, n)` brings about 4n/5 texts.
        for (sizes, width) in [
            (vec![(0, 10), (5, 400), (0, 10)], 2),
            (vec![(0, 10), (5, 400), (1_000, 90_000), (0, 4)], 4),
            (vec![(0, 200), (500, 90_000), (0, 200)], 4),
        ] {
            let mut joined = TextColumnBuilder::with_capacity(16);
            let mut want: Vec<Option<String>> = Vec::new();
            for (from, distinct) in sizes {
                let (p, cells) = part(from, distinct);
                joined.append(&p);
                want.extend(cells);
            }
            let joined = joined.finish();
            let got: Vec<Option<&str>> = joined.iter().collect();
            let want: Vec<Option<&str>> = want.iter().map(|c| c.as_deref()).collect();
            assert_eq!(got, want);
            let held = match joined.keys {
                Keys::U8(_) => 1,
                Keys::U16(_) => 2,
                Keys::I32(_) => 4,
            };
            assert_eq!(held, width);
        }
    }

    /// Keys one, two and four bytes wide (up to 256, up to 65,536, and
    /// more distinct texts) give every row its own text back.
    #[test]
    fn text_keys_narrow_to_the_distinct_texts() {
        let rows = site_rows();
        let site = rows.site();
        let mut widths = std::collections::BTreeSet::new();
        for distinct in [1usize, 290, 301, 76_450, 76_470, 90_000] {
            let cells: Vec<Option<String>> = (0..distinct + 10)
                .map(|i| (i % 7 != 3).then(|| format!("T{}", (i * 7919) % distinct)))
                .collect();
            let plain: ArrayRef = Arc::new(StringArray::from(cells.clone()));
            let part = text_column(&plain, "pcn_code", &site, false).unwrap();
            let mut joined = TextColumnBuilder::with_capacity(0);
            joined.append(&part);
            joined.append(&part);
            let joined = joined.finish();
            let width = match joined.keys {
                Keys::U8(_) => 1,
                Keys::U16(_) => 2,
                Keys::I32(_) => 4,
            };
            let held = (0..cells.len())
                .filter(|i| i % 7 != 3)
                .map(|i| (i * 7919) % distinct);
            let held = held.collect::<std::collections::BTreeSet<_>>().len();
            assert_eq!(joined.dictionary_len(), held, "{distinct}");
            assert_eq!(
                width,
                if held <= 256 {
                    1
                } else if held <= 65_536 {
                    2
                } else {
                    4
                }
            );
            let want: Vec<Option<&str>> =
                cells.iter().chain(&cells).map(|c| c.as_deref()).collect();
            let got: Vec<Option<&str>> = joined.iter().collect();
            assert_eq!(got, want, "{distinct}");
            assert_eq!(joined.to_strings().iter().collect::<Vec<_>>(), want);
            widths.insert(width);
        }
        assert_eq!(widths.into_iter().collect::<Vec<_>>(), [1, 2, 4]);
    }

    #[test]
    fn sexes_are_normalised_and_a_bad_one_names_its_line() {
        let rows = site_rows();
        let site = rows.site();
        let col: ArrayRef = Arc::new(StringArray::from(vec![
            Some("female"),
            None,
            Some(" M "),
            Some("Indeterminate"),
            Some(""),
        ]));
        let t = sex_column(&col, "sex", &site).unwrap();
        let got: Vec<Option<&str>> = t.iter().collect();
        assert_eq!(got, [Some("F"), Some("U"), Some("M"), Some("U"), Some("U")]);
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["F", "M", "X", "F", "x"]));
        let err = sex_column(&bad, "sex", &site).unwrap_err().to_string();
        assert!(
            err.starts_with("patients.csv:4: column sex: \"X\""),
            "{err}"
        );
    }
}
