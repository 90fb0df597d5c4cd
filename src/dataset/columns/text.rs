//! Dictionary-encoded text columns: [`TextColumn`], a key a row into the
//! column's distinct texts, [`TextColumnBuilder`], which puts one
//! together from the parts of a table read in order, and [`FieldTexts`],
//! which encodes one part from CSV fields.

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{Array, Int32Array, StringArray, StringBuilder};
use arrow::buffer::{NullBuffer, ScalarBuffer};

/// A text column held dictionary-encoded: one key a row into the column's
/// distinct texts (a patients table repeats a few hundred practice codes
/// over millions of rows). A whole table's keys are as narrow as its
/// distinct texts allow: one byte up to 256 texts (sex, a few hundred
/// practices), two up to 65,536 (LSOAs). Texts are trimmed; empty text is
/// null.
#[derive(Debug, Clone)]
pub struct TextColumn {
    pub(super) keys: Keys,
    /// Null rows (none: every row has a text).
    nulls: Option<NullBuffer>,
    values: StringArray,
}

/// Dictionary keys, one a row.
#[derive(Debug, Clone)]
pub(super) enum Keys {
    U8(ScalarBuffer<u8>),
    U16(ScalarBuffer<u16>),
    I32(ScalarBuffer<i32>),
}

impl Keys {
    #[inline]
    fn at(&self, i: usize) -> usize {
        match self {
            Keys::U8(k) => usize::from(k[i]),
            Keys::U16(k) => usize::from(k[i]),
            Keys::I32(k) => k[i] as usize,
        }
    }

    fn len(&self) -> usize {
        match self {
            Keys::U8(k) => k.len(),
            Keys::U16(k) => k.len(),
            Keys::I32(k) => k.len(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Keys::U8(k) => k.inner().capacity(),
            Keys::U16(k) => k.inner().capacity(),
            Keys::I32(k) => k.inner().capacity(),
        }
    }
}

impl TextColumn {
    /// Keys (every valid one a slot of `values`) and their texts.
    pub(crate) fn new(keys: &Int32Array, values: StringArray) -> TextColumn {
        TextColumn {
            keys: Keys::I32(keys.values().clone()),
            nulls: keys.nulls().cloned(),
            values,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn is_valid(&self, i: usize) -> bool {
        self.nulls.as_ref().is_none_or(|n| n.is_valid(i))
    }

    /// The text of row `i` (empty when null).
    #[inline]
    pub fn value(&self, i: usize) -> &str {
        self.get(i).unwrap_or("")
    }

    /// The text of row `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&str> {
        self.key(i).map(|k| self.values.value(k))
    }

    /// The dictionary key of row `i` (rows with equal keys hold equal
    /// texts; equal texts may have several keys).
    #[inline]
    pub fn key(&self, i: usize) -> Option<usize> {
        self.is_valid(i).then(|| self.keys.at(i))
    }

    /// The distinct texts' slots: key `k` holds `dictionary_value(k)`.
    pub fn dictionary_len(&self) -> usize {
        self.values.len()
    }

    pub fn dictionary_value(&self, k: usize) -> &str {
        self.values.value(k)
    }

    /// The column as plain UTF-8.
    pub fn to_strings(&self) -> StringArray {
        self.gather(0..self.len())
    }

    /// The given rows as plain UTF-8.
    pub fn take_strings(&self, rows: &[u32]) -> StringArray {
        self.gather(rows.iter().map(|&r| r as usize))
    }

    /// Rows as plain UTF-8: the bytes are counted first, so the array's
    /// buffers are allocated once and filled with plain copies.
    fn gather(&self, rows: impl ExactSizeIterator<Item = usize> + Clone) -> StringArray {
        let offsets = self.values.value_offsets();
        let bytes: usize = rows
            .clone()
            .filter_map(|r| self.key(r))
            .map(|k| (offsets[k + 1] - offsets[k]) as usize)
            .sum();
        let mut out = StringBuilder::with_capacity(rows.len(), bytes);
        for r in rows {
            match self.key(r) {
                Some(k) => out.append_value(self.values.value(k)),
                None => out.append_null(),
            }
        }
        out.finish()
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Bytes held (buffers' capacity).
    pub fn memory_bytes(&self) -> usize {
        self.keys.bytes()
            + self.nulls.as_ref().map_or(0, |n| n.buffer().capacity())
            + self.values.get_array_memory_size()
    }
}

/// A [`TextColumn`] put together from parts in order: each distinct text
/// is held once, each part's keys mapped onto them (a part whose texts
/// are the previous part's, as the batches of one Parquet row group are,
/// reuses its mapping). The keys are held as narrow as the texts seen so
/// far allow, widened (once, by a copy) when more texts arrive: a column of
/// practice codes takes a byte a row from the start, never 4 bytes first.
#[derive(Debug)]
pub struct TextColumnBuilder {
    keys: KeysBuilder,
    /// Rows the keys are sized for.
    capacity: usize,
    nulls: NullBufferBuilder,
    values: StringBuilder,
    /// Each distinct text's key.
    seen: hashbrown::HashMap<Box<str>, i32>,
    /// The last part's texts, and its keys' keys here (0 for a null text:
    /// only null rows point at one).
    last: Option<(StringArray, Vec<i32>)>,
}

/// Keys being appended, in the narrowest width for the texts seen so far.
#[derive(Debug)]
enum KeysBuilder {
    U8(Vec<u8>),
    U16(Vec<u16>),
    I32(Vec<i32>),
}

impl KeysBuilder {
    fn len(&self) -> usize {
        match self {
            KeysBuilder::U8(k) => k.len(),
            KeysBuilder::U16(k) => k.len(),
            KeysBuilder::I32(k) => k.len(),
        }
    }

    /// Widened, if need be, to hold keys below `texts`.
    fn widen(&mut self, texts: usize, capacity: usize) {
        let capacity = capacity.max(self.len());
        match self {
            KeysBuilder::U8(k) if texts > 1 << 8 => {
                if texts <= 1 << 16 {
                    let mut wide = Vec::with_capacity(capacity);
                    wide.extend(k.iter().map(|&x| u16::from(x)));
                    *self = KeysBuilder::U16(wide);
                } else {
                    let mut wide = Vec::with_capacity(capacity);
                    wide.extend(k.iter().map(|&x| i32::from(x)));
                    *self = KeysBuilder::I32(wide);
                }
            }
            KeysBuilder::U16(k) if texts > 1 << 16 => {
                let mut wide = Vec::with_capacity(capacity);
                wide.extend(k.iter().map(|&x| i32::from(x)));
                *self = KeysBuilder::I32(wide);
            }
            _ => {}
        }
    }

    /// Appends `rows` keys, row `i`'s being `key(i)` (below the width's limit).
    fn extend(&mut self, rows: usize, key: impl Fn(usize) -> i32) {
        match self {
            KeysBuilder::U8(k) => k.extend((0..rows).map(|i| key(i) as u8)),
            KeysBuilder::U16(k) => k.extend((0..rows).map(|i| key(i) as u16)),
            KeysBuilder::I32(k) => k.extend((0..rows).map(key)),
        }
    }

    fn finish(self) -> Keys {
        match self {
            KeysBuilder::U8(k) => Keys::U8(k.into()),
            KeysBuilder::U16(k) => Keys::U16(k.into()),
            KeysBuilder::I32(k) => Keys::I32(k.into()),
        }
    }
}

impl TextColumnBuilder {
    pub fn with_capacity(rows: usize) -> TextColumnBuilder {
        TextColumnBuilder {
            keys: KeysBuilder::U8(Vec::with_capacity(rows)),
            capacity: rows,
            nulls: NullBufferBuilder::new(rows),
            values: StringBuilder::new(),
            seen: hashbrown::HashMap::new(),
            last: None,
        }
    }

    pub fn append(&mut self, part: &TextColumn) {
        if !matches!(&self.last, Some((texts, _)) if *texts == part.values) {
            let mapping = part
                .values
                .iter()
                .map(|t| match t {
                    None => 0,
                    Some(t) => match self.seen.get(t) {
                        Some(&k) => k,
                        None => {
                            let k = self.seen.len() as i32;
                            self.seen.insert(t.into(), k);
                            self.values.append_value(t);
                            k
                        }
                    },
                })
                .collect();
            self.last = Some((part.values.clone(), mapping));
            self.keys.widen(self.seen.len(), self.capacity);
        }
        let mapping = self.last.as_ref().map_or(&[][..], |(_, m)| m.as_slice());
        // A null row's key may be anything: it is read as no key here.
        let key = |k: usize| mapping.get(k).copied().unwrap_or(0);
        match &part.keys {
            Keys::U8(keys) => self.keys.extend(part.len(), |i| key(usize::from(keys[i]))),
            Keys::U16(keys) => self.keys.extend(part.len(), |i| key(usize::from(keys[i]))),
            Keys::I32(keys) => self.keys.extend(part.len(), |i| key(keys[i] as usize)),
        }
        match &part.nulls {
            Some(n) => self.nulls.append_buffer(n),
            None => self.nulls.append_n_non_nulls(part.len()),
        }
    }

    pub fn finish(mut self) -> TextColumn {
        TextColumn {
            keys: self.keys.finish(),
            nulls: self.nulls.finish(),
            values: self.values.finish(),
        }
    }
}

/// A part of a text column encoded field by field from CSV text: each
/// distinct text once, in the order first seen (texts of up to 15 bytes,
/// most, looked up as numbers), and each row's key; an empty field is null.
pub struct FieldTexts<'a> {
    keys: Vec<i32>,
    nulls: NullBufferBuilder,
    texts: StringBuilder,
    short: hashbrown::HashMap<u128, i32>,
    long: hashbrown::HashMap<&'a [u8], i32>,
}

impl<'a> FieldTexts<'a> {
    pub fn with_capacity(rows: usize) -> Self {
        FieldTexts {
            keys: Vec::with_capacity(rows),
            nulls: NullBufferBuilder::new(rows),
            texts: StringBuilder::new(),
            short: hashbrown::HashMap::new(),
            long: hashbrown::HashMap::new(),
        }
    }

    /// Appends a field; `false` if it is not UTF-8.
    #[inline]
    pub fn push(&mut self, text: &'a [u8]) -> bool {
        if text.is_empty() {
            self.keys.push(0);
            self.nulls.append_null();
            return true;
        }
        let next = (self.short.len() + self.long.len()) as i32;
        let short = super::short_key(text);
        let known = match short {
            Some(k) => self.short.get(&k),
            None => self.long.get(text),
        };
        let key = match known {
            Some(&k) => k,
            None => {
                let Ok(t) = std::str::from_utf8(text) else {
                    return false;
                };
                self.texts.append_value(t);
                match short {
                    Some(k) => self.short.insert(k, next),
                    None => self.long.insert(text, next),
                };
                next
            }
        };
        self.keys.push(key);
        self.nulls.append_non_null();
        true
    }

    /// Each row's key (null for an empty field) and the distinct texts.
    pub fn finish(mut self) -> Option<(Int32Array, StringArray)> {
        let keys = Int32Array::try_new(self.keys.into(), self.nulls.finish()).ok()?;
        Some((keys, self.texts.finish()))
    }

    /// [`FieldTexts::finish`] as a [`TextColumn`].
    pub fn finish_column(self) -> Option<TextColumn> {
        let (keys, texts) = self.finish()?;
        Some(TextColumn::new(&keys, texts))
    }
}
