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
    /// Normalised code -> its categories (every code has at least one when
    /// the codelist names a category column; empty otherwise). A code may
    /// be in several categories, one row each.
    pub categories: BTreeMap<String, Vec<String>>,
    /// Category -> its weight, when the codelist names a weight column.
    pub weights: BTreeMap<String, rust_decimal::Decimal>,
}

impl Codelist {
    /// The name `latest_of` yields: the codelist's name in the pack that
    /// declares it (`carer` for the used pack's `efi.carer`), so a used
    /// pack's features keep their values.
    pub fn value_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

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

    /// Whether the codelist sorts its codes into categories.
    pub fn is_categorised(&self) -> bool {
        !self.categories.is_empty()
    }

    /// The distinct categories, sorted.
    pub fn category_names(&self) -> Vec<&str> {
        let set: std::collections::BTreeSet<&str> = self
            .categories
            .values()
            .flatten()
            .map(String::as_str)
            .collect();
        set.into_iter().collect()
    }

    /// The categories of an already-normalised event code: those of every
    /// listed code it matches (exact: the code itself; prefix: every listed
    /// prefix of it).
    pub fn categories_of(&self, normalised_event_code: &str) -> Vec<&str> {
        let mut out: Vec<&str> = match self.match_mode {
            MatchMode::Exact => self
                .categories
                .get(normalised_event_code)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect(),
            MatchMode::Prefix => self
                .categories
                .iter()
                .filter(|(c, _)| normalised_event_code.starts_with(c.as_str()))
                .flat_map(|(_, cats)| cats.iter().map(String::as_str))
                .collect(),
        };
        out.sort_unstable();
        out.dedup();
        out
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

/// Extra columns a codelist file is read with (names from pack.toml).
#[derive(Debug, Clone, Copy, Default)]
pub struct CodelistColumns<'a> {
    pub category: Option<&'a str>,
    pub weight: Option<&'a str>,
}

/// A parsed codelist file: codes (sorted, unique), terms, categories by
/// code and weights by category.
#[derive(Debug, Clone, Default)]
pub struct ParsedCodelist {
    pub codes: Vec<String>,
    pub terms: BTreeMap<String, String>,
    pub categories: BTreeMap<String, Vec<String>>,
    pub weights: BTreeMap<String, rust_decimal::Decimal>,
}

/// Parses a codelist file's text. Problems are appended to `diags`; the
/// result holds every usable row.
pub fn parse_codelist_csv(
    file: &SourceFile,
    columns: CodelistColumns<'_>,
    diags: &mut Vec<Diagnostic>,
) -> ParsedCodelist {
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
            return ParsedCodelist::default();
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
        return ParsedCodelist::default();
    };
    let term_col = find("term");
    let header_span = bom..bom + text.find(['\r', '\n']).unwrap_or(text.len());
    let mut named = |name: Option<&str>, what: &str| -> Result<Option<usize>, ()> {
        let Some(name) = name else { return Ok(None) };
        match find(name) {
            Some(i) => Ok(Some(i)),
            None => {
                diags.push(file.error(
                    ErrorCode::CodelistFormat,
                    Some(header_span.clone()),
                    format!("the codelist has no `{name}` column (its {what} column in pack.toml)"),
                ));
                Err(())
            }
        }
    };
    let (Ok(category_col), Ok(weight_col)) = (
        named(columns.category, "category"),
        named(columns.weight, "weight"),
    ) else {
        return ParsedCodelist::default();
    };
    let mut categories: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Category -> (weight, line it was first given on).
    let mut weights: BTreeMap<String, (rust_decimal::Decimal, usize)> = BTreeMap::new();

    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    let (mut newlines, mut counted_to) = (0usize, 0usize);
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
        // A categorised codelist may give a code several categories (one
        // row each): "Dementia in Parkinson's disease" is both a memory
        // and a parkinsonism deficit of the eFI.
        let again = first_seen.get(&code).copied();
        let listed_in_another_category = again.is_some()
            && category_col.is_some_and(|c| {
                let category = record.get(c).unwrap_or("").trim();
                !category.is_empty()
                    && categories
                        .get(&code)
                        .is_some_and(|cats: &Vec<String>| !cats.iter().any(|x| x == category))
            });
        if let (Some(line), false) = (again, listed_in_another_category) {
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
        // The code's line, counted on from the previous row's (locating
        // each span from the start of the file would make this quadratic).
        let upto = span.start.min(file.text.len());
        if upto > counted_to {
            newlines += memchr::memchr_iter(b'\n', &file.text.as_bytes()[counted_to..upto]).count();
            counted_to = upto;
        }
        let line = newlines + 1;
        if let Some(c) = category_col {
            let raw_cat = record.get(c).unwrap_or("");
            let cat_span = field_span(&file.text, offset, c, raw_cat);
            let category = raw_cat.trim();
            if category.is_empty() {
                diags.push(file.error(
                    ErrorCode::CodelistFormat,
                    Some(cat_span),
                    format!("code `{code}` has an empty category"),
                ));
                continue;
            }
            if let Some(w) = weight_col {
                let raw_w = record.get(w).unwrap_or("");
                let w_span = field_span(&file.text, offset, w, raw_w);
                let weight = match raw_w.trim().parse::<rust_decimal::Decimal>() {
                    Ok(d)
                        if d.scale() <= 10
                            && d.abs() <= rust_decimal::Decimal::from(1_000_000_000_000i64) =>
                    {
                        d
                    }
                    _ => {
                        diags.push(file.error(
                            ErrorCode::CodelistFormat,
                            Some(w_span),
                            format!(
                                "weight `{}` is not a number of at most 10 decimal places up to 1e12",
                                raw_w.trim()
                            ),
                        ));
                        continue;
                    }
                };
                match weights.get(category) {
                    Some(&(first, first_line)) if first != weight => {
                        diags.push(
                            file.error(
                                ErrorCode::CodelistFormat,
                                Some(w_span),
                                format!(
                                    "category `{category}` has weight {weight} here but {first} on line {first_line}"
                                ),
                            )
                            .with_help(Some("a category has one weight: give every code of it the same".into())),
                        );
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        weights.insert(category.to_string(), (weight, line));
                    }
                }
            }
            categories
                .entry(code.clone())
                .or_default()
                .push(category.to_string());
            if listed_in_another_category {
                continue;
            }
        }
        first_seen.insert(code.clone(), line);
        if let Some(term) = term_col.and_then(|i| record.get(i)) {
            let term = term.trim();
            if !term.is_empty() {
                terms.insert(code, term.to_string());
            }
        }
    }
    ParsedCodelist {
        codes: first_seen.into_keys().collect(),
        terms,
        categories,
        weights: weights.into_iter().map(|(c, (w, _))| (c, w)).collect(),
    }
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
        let p = parse_codelist_csv(&file, CodelistColumns::default(), &mut diags);
        (p.codes, p.terms, diags)
    }

    fn parse_weighted(text: &str) -> (ParsedCodelist, Vec<String>) {
        let file = SourceFile::new("hfrs.csv".into(), text.into());
        let mut diags = Vec::new();
        let columns = CodelistColumns {
            category: Some("category"),
            weight: Some("points"),
        };
        let p = parse_codelist_csv(&file, columns, &mut diags);
        let shown = diags
            .iter()
            .map(|d| {
                let at = d.location.as_ref().map_or((0, 0), |l| (l.line, l.column));
                format!("{}:{}: {}", at.0, at.1, d.message)
            })
            .collect();
        (p, shown)
    }

    #[test]
    fn categories_and_weights_are_read_by_the_named_columns() {
        let (p, diags) = parse_weighted(
            "code,term,category,points\nF00,Dementia in Alzheimer,F00,7.1\nF000,early onset,F00,7.1\nW19,Fall,W19,3.2\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(p.codes, ["F00", "F000", "W19"]);
        assert_eq!(p.categories["F000"], ["F00"]);
        assert_eq!(p.weights["F00"].to_string(), "7.1");
        assert_eq!(p.weights["W19"].to_string(), "3.2");
    }

    #[test]
    fn a_category_with_two_weights_or_a_bad_weight_is_an_error_on_its_cell() {
        let (_, diags) = parse_weighted(
            "code,category,points\nF00,F00,7.1\nF000,F00,7.2\nW19,W19,three\nX1,,1\n",
        );
        assert_eq!(
            diags,
            [
                "3:10: category `F00` has weight 7.2 here but 7.1 on line 2",
                "4:9: weight `three` is not a number of at most 10 decimal places up to 1e12",
                "5:4: code `X1` has an empty category",
            ]
        );
        let (_, diags) = parse_weighted("code,category\nF00,F00\n");
        assert_eq!(
            diags,
            ["1:1: the codelist has no `points` column (its weight column in pack.toml)"]
        );
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
    fn a_code_may_be_in_several_categories_but_not_twice_in_one() {
        let file = SourceFile::new(
            "c.csv".into(),
            "code,term,deficit\n425390006,Dementia in Parkinson's,memory\n\
             425390006,Dementia in Parkinson's,parkinsonism\n\
             425390006,again,memory\n111,x,falls\n"
                .into(),
        );
        let mut diags = Vec::new();
        let p = parse_codelist_csv(
            &file,
            CodelistColumns {
                category: Some("deficit"),
                weight: None,
            },
            &mut diags,
        );
        assert_eq!(p.codes, ["111", "425390006"]);
        assert_eq!(p.categories["425390006"], ["memory", "parkinsonism"]);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].code, ErrorCode::DuplicateCode);
        assert_eq!(diags[0].location.as_ref().map(|l| l.line), Some(4));
    }

    #[test]
    fn prefix_matching_prefers_the_longest_prefix() {
        let cl = Codelist {
            name: "mi".into(),
            table: "admissions".into(),
            match_mode: MatchMode::Prefix,
            codes: vec!["I21".into(), "I210".into()],
            terms: [("I21".to_string(), "Acute MI".to_string())].into(),
            categories: [
                ("I21".to_string(), vec!["mi".to_string()]),
                ("I210".to_string(), vec!["anterior".to_string()]),
            ]
            .into(),
            weights: BTreeMap::new(),
        };
        assert_eq!(cl.categories_of("I2101"), ["anterior", "mi"]);
        assert_eq!(cl.categories_of("I219"), ["mi"]);
        assert!(cl.categories_of("I22").is_empty());
        assert_eq!(cl.matching_code("I2101"), Some("I210"));
        assert_eq!(cl.matching_code("I22"), None);
        assert_eq!(cl.term_for("I219"), Some("Acute MI"));
    }
}
