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

/// Whether the csv crate would quote this cell.
#[inline]
fn needs_quotes(cell: &[u8]) -> bool {
    cell.iter()
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
    use super::CsvBuf;

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
