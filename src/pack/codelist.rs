//! Codelists: reading OpenCodelists-style CSV files into normalised,
//! sorted code sets, and matching event codes against them.
//!
//! The layout is a header row with a `code` column and an optional `term`
//! column; other columns are ignored. Files exported on Windows (UTF-8 BOM,
//! CRLF), quoted fields and blank trailing lines are all accepted.

use std::collections::BTreeMap;

use super::diag::{Diagnostic, ErrorCode, SourceFile};

/// How a codelist's codes are compared with event codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchMode {
    /// SNOMED CT, dm+d: the whole code must be equal.
    Exact,
    /// ICD-10: a listed `I21` matches the event code `I210`.
    Prefix,
}

impl MatchMode {
    pub fn name(self) -> &'static str {
        match self {
            MatchMode::Exact => "exact",
            MatchMode::Prefix => "prefix",
        }
    }
}

/// A named set of clinical codes bound to one event table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codelist {
    pub name: String,
    /// The event table its codes are looked up in (`events` by default).
    pub table: String,
    pub match_mode: MatchMode,
    /// Normalised (see [`normalise_code`]), sorted, unique.
    pub codes: Vec<String>,
    /// Normalised code -> term, for codes whose row had one.
    pub terms: BTreeMap<String, String>,
}

impl Codelist {
    /// Whether an already-normalised event code belongs to this codelist,
    /// returning the listed code it matched (for looking up its term).
    pub fn matching_code(&self, normalised_event_code: &str) -> Option<&str> {
        match self.match_mode {
            MatchMode::Exact => self
                .codes
                .binary_search_by(|c| c.as_str().cmp(normalised_event_code))
                .ok()
                .map(|i| self.codes[i].as_str()),
            // The longest listed prefix is the most specific term.
            MatchMode::Prefix => self
                .codes
                .iter()
                .filter(|c| normalised_event_code.starts_with(c.as_str()))
                .max_by_key(|c| c.len())
                .map(String::as_str),
        }
    }

    /// The term for an event code: its own if listed, else the prefix's.
    pub fn term_for(&self, normalised_event_code: &str) -> Option<&str> {
        self.terms
            .get(normalised_event_code)
            .or_else(|| {
                self.matching_code(normalised_event_code)
                    .and_then(|c| self.terms.get(c))
            })
            .map(String::as_str)
    }
}

/// The one normal form for codes, applied to codelists and events alike:
/// surrounding space trimmed, dots removed (`I21.0` is `I210`), upper case.
pub fn normalise_code(code: &str) -> String {
    code.trim()
        .chars()
        .filter(|c| *c != '.')
        .flat_map(char::to_uppercase)
        .collect()
}

/// Parses a codelist file's text. Problems are appended to `diags`; the
/// returned codes and terms hold every usable row.
pub fn parse_codelist_csv(
    file: &SourceFile,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<String>, BTreeMap<String, String>) {
    let text = file.text.strip_prefix('\u{feff}').unwrap_or(&file.text);
    let bom = file.text.len() - text.len();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            diags.push(file.error(
                ErrorCode::CodelistFormat,
                Some(bom..bom),
                format!("cannot read the codelist header: {e}"),
            ));
            return (Vec::new(), BTreeMap::new());
        }
    };
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let Some(code_col) = find("code") else {
        let end = text.find(['\r', '\n']).unwrap_or(text.len());
        diags.push(
            file.error(
                ErrorCode::CodelistFormat,
                Some(bom..bom + end),
                "the codelist has no `code` column",
            )
            .with_help(Some(
                "the header row must name a `code` column (and optionally `term`)".into(),
            )),
        );
        return (Vec::new(), BTreeMap::new());
    };
    let term_col = find("term");

    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut terms = BTreeMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        let offset = bom + reader.position().byte() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                diags.push(file.error(
                    ErrorCode::CodelistFormat,
                    Some(offset..offset),
                    format!("malformed CSV: {e}"),
                ));
                break;
            }
        }
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let raw = record.get(code_col).unwrap_or("");
        let span = field_span(&file.text, offset, code_col, raw);
        let code = normalise_code(raw);
        if code.is_empty() {
            diags.push(file.error(
                ErrorCode::EmptyCode,
                Some(span),
                "empty code in the `code` column",
            ));
            continue;
        }
        if let Some(&line) = first_seen.get(&code) {
            diags.push(
                file.error(
                    ErrorCode::DuplicateCode,
                    Some(span),
                    format!("code `{code}` is listed twice"),
                )
                .with_help(Some(format!("first listed on line {line}"))),
            );
            continue;
        }
        let line = file.locate(span.clone()).line;
        first_seen.insert(code.clone(), line);
        if let Some(term) = term_col.and_then(|i| record.get(i)) {
            let term = term.trim();
            if !term.is_empty() {
                terms.insert(code, term.to_string());
            }
        }
    }
    (first_seen.into_keys().collect(), terms)
}

/// Byte span of field `index` in the record starting at `offset`, found by
/// scanning the raw line with quote awareness; falls back to the line start.
fn field_span(text: &str, offset: usize, index: usize, value: &str) -> std::ops::Range<usize> {
    // The reader's position can sit on the previous record's line end.
    let skipped = text
        .get(offset..)
        .map_or(0, |r| r.len() - r.trim_start_matches(['\r', '\n']).len());
    let offset = offset + skipped;
    let rest = text.get(offset..).unwrap_or("");
    let mut field = 0;
    let mut in_quotes = false;
    let mut field_start = 0;
    for (i, c) in rest.char_indices() {
        if field == index {
            field_start = i;
            break;
        }
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => field += 1,
            '\n' if !in_quotes => break,
            _ => {}
        }
        field_start = i + c.len_utf8();
    }
    if field != index {
        return offset..offset;
    }
    let start = offset + field_start;
    let tail = &text[start..];
    let within = tail.find(value.trim()).filter(|_| !value.trim().is_empty());
    match within {
        Some(i) if !tail[..i].contains('\n') => start + i..start + i + value.trim().len(),
        _ => start..start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<String>, BTreeMap<String, String>, Vec<Diagnostic>) {
        let file = SourceFile::new("c.csv".into(), text.into());
        let mut diags = Vec::new();
        let (codes, terms) = parse_codelist_csv(&file, &mut diags);
        (codes, terms, diags)
    }

    #[test]
    fn normalises_codes() {
        assert_eq!(normalise_code(" i21.0 "), "I210");
        assert_eq!(normalise_code("105529008"), "105529008");
    }

    #[test]
    fn tolerates_bom_crlf_quotes_and_blank_lines() {
        let (codes, terms, diags) =
            parse("\u{feff}code,term\r\n\"222\",\"Two, two\"\r\n111,One\r\n\r\n\r\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(codes, vec!["111".to_string(), "222".to_string()]);
        assert_eq!(terms.get("222").map(String::as_str), Some("Two, two"));
    }

    #[test]
    fn reports_empty_and_duplicate_codes_with_lines() {
        for text in [
            "term,code\nA,111\nB,\nC,111\n",
            "term,code\r\nA,111\r\nB,\r\nC,111\r\n",
        ] {
            check_empty_and_duplicate(text);
        }
    }

    fn check_empty_and_duplicate(text: &str) {
        let (codes, _, diags) = parse(text);
        assert_eq!(codes, vec!["111".to_string()]);
        assert_eq!(diags.len(), 2);
        assert_eq!(diags[0].code, ErrorCode::EmptyCode);
        assert_eq!(
            diags[0].location.as_ref().map(|l| (l.line, l.column)),
            Some((3, 3))
        );
        assert_eq!(diags[1].code, ErrorCode::DuplicateCode);
        assert_eq!(
            diags[1].location.as_ref().map(|l| (l.line, l.column)),
            Some((4, 3))
        );
        assert_eq!(diags[1].help.as_deref(), Some("first listed on line 2"));
    }

    #[test]
    fn prefix_matching_prefers_the_longest_prefix() {
        let cl = Codelist {
            name: "mi".into(),
            table: "admissions".into(),
            match_mode: MatchMode::Prefix,
            codes: vec!["I21".into(), "I210".into()],
            terms: [("I21".to_string(), "Acute MI".to_string())].into(),
        };
        assert_eq!(cl.matching_code("I2101"), Some("I210"));
        assert_eq!(cl.matching_code("I22"), None);
        assert_eq!(cl.term_for("I219"), Some("Acute MI"));
    }
}
