//! `[codelists]`: each codelist's name, event table and match mode, and its
//! CSV file read from inside the pack folder. Problems inside a CSV file
//! point into that file; the files' bytes go into the pack's content hash.

use std::path::{Component, Path};

use super::sections::identifier;
use super::Sink;
use crate::pack::codelist::{
    parse_codelist_csv, Codelist, CodelistColumns, MatchMode, ParsedCodelist,
};
use crate::pack::diag::{did_you_mean, ErrorCode, SourceFile};
use crate::pack::raw::{RawCodelist, Sp};

/// A codelist file's contents, and its bytes.
type CodelistFile = (ParsedCodelist, Vec<u8>);

/// The codelists that check cleanly, by name, with each one's file bytes
/// (name, bytes) for the content hash.
pub(super) fn check(
    sink: &mut Sink<'_>,
    dir: &Path,
    declared: &[RawCodelist],
) -> (Vec<Codelist>, Vec<(String, Vec<u8>)>) {
    let mut out = Vec::new();
    let mut files = Vec::new();
    for rc in declared {
        // Codelists have their own namespace: they only appear as function
        // arguments, so `has(lives_alone)` can define the feature
        // `lives_alone`.
        let named = identifier(sink, &rc.name, "codelist");
        let table = match &rc.table {
            None => Some(crate::contract::EVENTS.to_string()),
            Some(t) => event_table(sink, t),
        };
        let match_mode = match &rc.match_mode {
            None => Some(MatchMode::Exact),
            Some(m) => match_mode(sink, m),
        };
        if let (Some(w), None) = (&rc.weight_column, &rc.category_column) {
            sink.error(
                ErrorCode::InvalidValue,
                w.span.clone(),
                "a weight_column needs a category_column: weights belong to categories",
            );
            continue;
        }
        let Some(file) = &rc.file else { continue };
        let columns = CodelistColumns {
            category: rc.category_column.as_ref().map(|c| c.value.as_str()),
            weight: rc.weight_column.as_ref().map(|c| c.value.as_str()),
        };
        let Some((parsed, bytes)) = read(sink, dir, file, columns) else {
            continue;
        };
        if let (true, Some(table), Some(match_mode)) = (named, table, match_mode) {
            files.push((rc.name.value.clone(), bytes));
            out.push(Codelist {
                name: rc.name.value.clone(),
                table,
                match_mode,
                codes: parsed.codes,
                terms: parsed.terms,
                categories: parsed.categories,
                weights: parsed.weights,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    files.sort_by(|a, b| a.0.cmp(&b.0));
    (out, files)
}

fn event_table(sink: &mut Sink<'_>, t: &Sp<String>) -> Option<String> {
    let valid = !t.value.is_empty()
        && t.value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid || t.value == crate::contract::PATIENTS || t.value == crate::contract::CONTACTS {
        sink.error(
            ErrorCode::InvalidValue,
            t.span.clone(),
            format!(
                "`{}` is not an event table name (e.g. `events`, `admissions`, `medications`)",
                t.value
            ),
        );
        return None;
    }
    Some(t.value.clone())
}

fn match_mode(sink: &mut Sink<'_>, m: &Sp<String>) -> Option<MatchMode> {
    match m.value.as_str() {
        "exact" => Some(MatchMode::Exact),
        "prefix" => Some(MatchMode::Prefix),
        other => {
            sink.error(
                ErrorCode::InvalidValue,
                m.span.clone(),
                format!("unknown match mode `{other}`; expected `exact` or `prefix`"),
            )
            .help(did_you_mean(other, ["exact", "prefix"]));
            None
        }
    }
}

/// Reads and parses the codelist file `file` names, relative to `dir`.
fn read(
    sink: &mut Sink<'_>,
    dir: &Path,
    file: &Sp<String>,
    columns: CodelistColumns<'_>,
) -> Option<CodelistFile> {
    let rel = Path::new(&file.value);
    let inside = !file.value.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        sink.error(
            ErrorCode::InvalidValue,
            file.span.clone(),
            format!(
                "codelist file `{}` must be a relative path inside the pack folder",
                file.value
            ),
        );
        return None;
    }
    let path = dir.join(rel);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            let siblings = path
                .parent()
                .and_then(|p| std::fs::read_dir(p).ok())
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let wanted = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let reason = if e.kind() == std::io::ErrorKind::NotFound {
                "not found".to_string()
            } else {
                format!("cannot be read: {e}")
            };
            sink.error(
                ErrorCode::CodelistFile,
                file.span.clone(),
                format!("codelist file `{}` {reason}", path.display()),
            )
            .help(did_you_mean(&wanted, siblings.iter().map(String::as_str)));
            return None;
        }
    };
    let Ok(text) = String::from_utf8(bytes.clone()) else {
        sink.error(
            ErrorCode::CodelistFormat,
            file.span.clone(),
            format!("codelist file `{}` is not UTF-8 text", path.display()),
        );
        return None;
    };
    let csv = SourceFile::new(path.display().to_string(), text);
    let mut found = Vec::new();
    let parsed = parse_codelist_csv(&csv, columns, &mut found);
    let clean = found.is_empty();
    sink.extend(found);
    if parsed.codes.is_empty() && clean {
        sink.error_in(
            &csv,
            ErrorCode::EmptyCodelist,
            None,
            "the codelist has no codes",
        );
    }
    Some((parsed, bytes))
}

/// SHA-256 over `pack.toml` then each codelist file (name, NUL, bytes) in
/// codelist name order.
pub(super) fn content_hash(toml_bytes: &[u8], codelist_files: &[(String, Vec<u8>)]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"pack.toml\0");
    h.update(toml_bytes);
    for (name, bytes) in codelist_files {
        h.update(b"\0");
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::check::testing::{pack, MINIMAL};

    fn declare(entries: &str) -> String {
        format!("{MINIMAL}[codelists]\n{entries}")
    }

    #[test]
    fn codelists_are_sorted_by_name_with_their_table_and_mode() {
        let p = pack(
            &declare(
                "copd = { file = \"codelists/copd.csv\" }\n\
                 mi = { file = \"codelists/mi.csv\", table = \"admissions\", match = \"prefix\" }\n\
                 asthma = { file = \"./codelists/asthma.csv\" }\n",
            ),
            &[
                ("asthma.csv", "code,term\n195967001,Asthma\n"),
                ("copd.csv", "code\n13645005\n"),
                ("mi.csv", "code\nI21\nI22\n"),
            ],
        )
        .expect("checks");
        let summary: Vec<(&str, &str, MatchMode, usize)> = p
            .codelists
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.table.as_str(),
                    c.match_mode,
                    c.codes.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("asthma", "events", MatchMode::Exact, 1),
                ("copd", "events", MatchMode::Exact, 1),
                ("mi", "admissions", MatchMode::Prefix, 2)
            ]
        );
        assert_eq!(
            p.codelists[0].terms.get("195967001").map(String::as_str),
            Some("Asthma")
        );
    }

    #[test]
    fn declarations_are_checked_before_the_file() {
        let err = pack(
            &declare(
                "a = { file = \"codelists/a.csv\", table = \"patients\", match = \"prefx\" }\n\
                 b = { file = \"../b.csv\" }\n\
                 c = { file = \"codelists/c.svc\" }\n",
            ),
            &[("a.csv", "code\n1\n"), ("c.csv", "code\n1\n")],
        )
        .unwrap_err();
        assert_eq!(
            err,
            [
                "E005 `\"patients\"`: `patients` is not an event table name (e.g. `events`, \
                 `admissions`, `medications`)",
                "E005 `\"prefx\"`: unknown match mode `prefx`; expected `exact` or `prefix` \
                 (help: did you mean `prefix`?)",
                "E005 `\"../b.csv\"`: codelist file `../b.csv` must be a relative path inside \
                 the pack folder",
                "E101 `\"codelists/c.svc\"`: codelist file `DIR/codelists/c.svc` not found \
                 (help: did you mean `c.csv`?)"
            ]
        );
    }

    #[test]
    fn problems_inside_a_file_point_into_it() {
        let err = pack(
            &declare(
                "empty = { file = \"codelists/empty.csv\" }\n\
                 nocode = { file = \"codelists/nocode.csv\" }\n",
            ),
            &[("empty.csv", "code,term\n"), ("nocode.csv", "snomed\n1\n")],
        )
        .unwrap_err();
        assert_eq!(
            err,
            [
                "E105: the codelist has no codes",
                "E102 `snomed`: the codelist has no `code` column (help: the header row must \
                 name a `code` column (and optionally `term`))"
            ]
        );
    }

    #[test]
    fn the_hash_covers_every_file_in_name_order() {
        let one = content_hash(b"x", &[("a".into(), b"1".to_vec())]);
        assert_eq!(one.len(), 64);
        assert_ne!(one, content_hash(b"x", &[("a".into(), b"2".to_vec())]));
        assert_ne!(one, content_hash(b"x", &[("b".into(), b"1".to_vec())]));
        assert_ne!(one, content_hash(b"y", &[("a".into(), b"1".to_vec())]));
        // A NUL keeps each name apart from its bytes.
        assert_ne!(
            content_hash(b"", &[("ab".into(), b"c".to_vec())]),
            content_hash(b"", &[("a".into(), b"bc".to_vec())])
        );
        // SHA-256 of `pack.toml\0` alone.
        assert_eq!(
            content_hash(b"", &[]),
            "5850b6f2fd715f1a1c23b03fb29bce8f323c3675e63a7305a1547c5f2c214b76"
        );
    }
}
