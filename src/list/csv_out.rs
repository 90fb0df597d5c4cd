//! CSV lines written straight into a byte buffer, cell by cell, exactly as
//! the `csv` crate's default writer writes them (`QuoteStyle::Necessary`,
//! `\n` after each record): a cell holding `,`, `"`, `\r` or `\n` is quoted
//! and its quotes doubled; any other cell is copied as it is.
//!
//! The lists write about 15 cells for each listed person, so this is the
//! hot loop of writing a run: numbers go through `itoa` and no cell is
//! allocated. `tests::matches_the_csv_crate` checks the bytes against the
//! `csv` crate's.

/// One list file's bytes, built a cell at a time.
#[derive(Debug, Default)]
pub struct CsvBuf {
    pub bytes: Vec<u8>,
    /// Whether the current record has a cell yet (the next one needs a comma).
    open: bool,
}

/// Whether the csv crate would quote this cell: whether it holds `,`,
/// `"`, `\r` or `\n`. Looked for 8 bytes at a time (a byte of a word
/// equals `b` exactly when that byte of `word ^ b…b` is zero, which the
/// usual zero-byte test finds with no false hits): a reasons cell is some
/// 45 bytes, and a byte at a time was a tenth of writing a list.
#[inline]
fn needs_quotes(cell: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn holds(word: u64, b: u8) -> u64 {
        let v = word ^ (LO * u64::from(b));
        v.wrapping_sub(LO) & !v & HI
    }
    let mut words = cell.chunks_exact(8);
    let mut found = 0u64;
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        found |= holds(w, b',') | holds(w, b'"') | holds(w, b'\r') | holds(w, b'\n');
    }
    found != 0
        || words
            .remainder()
            .iter()
            .any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
}

impl CsvBuf {
    pub fn with_capacity(bytes: usize) -> CsvBuf {
        CsvBuf {
            bytes: Vec::with_capacity(bytes),
            open: false,
        }
    }

    #[inline]
    fn separate(&mut self) {
        if self.open {
            self.bytes.push(b',');
        }
        self.open = true;
    }

    /// A cell of any text, quoted when it must be.
    #[inline]
    pub fn text(&mut self, cell: &str) {
        self.separate();
        let cell = cell.as_bytes();
        if needs_quotes(cell) {
            self.bytes.push(b'"');
            for &b in cell {
                if b == b'"' {
                    self.bytes.push(b'"');
                }
                self.bytes.push(b);
            }
            self.bytes.push(b'"');
        } else {
            self.bytes.extend_from_slice(cell);
        }
    }

    /// A cell already in its written form (see [`CsvBuf::rendered`]).
    #[inline]
    pub fn cell(&mut self, written: &[u8]) {
        self.separate();
        self.bytes.extend_from_slice(written);
    }

    /// An integer cell.
    #[inline]
    pub fn int(&mut self, v: impl itoa::Integer) {
        self.separate();
        self.bytes
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    /// An empty cell (NULL).
    #[inline]
    pub fn empty(&mut self) {
        self.separate();
    }

    /// Ends the record.
    #[inline]
    pub fn end(&mut self) {
        self.bytes.push(b'\n');
        self.open = false;
    }

    /// The written form of a text cell, for cells repeated on many rows.
    pub fn rendered(cell: &str) -> Vec<u8> {
        let mut one = CsvBuf::default();
        one.text(cell);
        one.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::{needs_quotes, CsvBuf};

    /// Every byte value at every place of cells of 0 to 24 bytes: quoted
    /// exactly when a byte is one of the four.
    #[test]
    fn needs_quotes_finds_each_special_byte_anywhere() {
        for len in 0..=24usize {
            assert!(!needs_quotes(&vec![b'a'; len]));
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut cell = vec![b'a'; len];
                    cell[at] = b;
                    let want = matches!(b, b',' | b'"' | b'\r' | b'\n');
                    assert_eq!(needs_quotes(&cell), want, "{len} bytes, {b} at {at}");
                }
            }
        }
        // Bytes next to the special ones, and high bytes, in whole words.
        assert!(!needs_quotes("+-./!#\t\x0bé€ab".as_bytes()));
        assert!(needs_quotes("ü€😀,".as_bytes()));
    }

    #[test]
    fn matches_the_csv_crate() {
        let cells = [
            "",
            "plain",
            "a,b",
            "say \"hi\"",
            "\"",
            "line\nbreak",
            "cr\rhere",
            " spaced ",
            "'=1+2",
            "; ",
            "ünïcode, too",
            "12345678,",
            "tab\there",
        ];
        let mut ours = CsvBuf::default();
        let mut theirs = csv::Writer::from_writer(Vec::new());
        for row in cells.windows(3) {
            for c in row {
                ours.text(c);
            }
            ours.int(-42i64);
            ours.empty();
            ours.cell(&CsvBuf::rendered(row[0]));
            ours.end();
            let mut record: Vec<String> = row.iter().map(|s| s.to_string()).collect();
            record.extend(["-42".into(), String::new(), row[0].to_string()]);
            theirs.write_record(&record).unwrap();
        }
        let theirs = theirs.into_inner().unwrap();
        assert_eq!(
            String::from_utf8(ours.bytes).unwrap(),
            String::from_utf8(theirs).unwrap()
        );
    }
}
