//! The checker: turns a [`RawPack`] into a checked [`Pack`], resolving every
//! name, parsing every SQL expression and type-checking it, reporting all
//! problems at once with spans pointing into `pack.toml`.
//!
//! [`build`] walks the pack in the order a reader meets it and hands each
//! kind of thing checked to its own file:
//!
//! - `source.rs`: SQL text lives inside TOML strings; parsing it, and
//!   mapping the positions the SQL parser reports back to bytes of
//!   `pack.toml` ([`StringOrigin`]).
//! - `sections.rs`: the TOML sections (pack metadata, columns, rules and
//!   their reasons, tiers, overrides, exclusions, list) turned into the
//!   model, and the names and ids they declare.
//! - `codelists.rs`: `[codelists]` declarations, their CSV files, and the
//!   pack's content hash.
//! - `features.rs`: the order features are checked in (what each one
//!   refers to first) and cycles between them.
//! - `convert.rs`: one expression's SQL syntax tree turned into an `Expr`:
//!   what a name refers to, literals, conditions (population, rules, tiers,
//!   exclusions). Operators and calls are checked in the next two files.
//! - `types.rs`: which types fit together in operators, comparisons, IN,
//!   BETWEEN, CASE and COALESCE, what widens to what, and exact decimals
//!   next to `score`.
//! - `functions.rs`: function calls and their arguments (codelists,
//!   windows).
//!
//! Every part records problems in one `Sink` (an error with a code, a span
//! and a message, optionally help). A part that returns `None` has
//! recorded why, so callers only combine results.

mod codelists;
mod convert;
mod features;
mod functions;
mod sections;
mod source;
mod types;
mod uses;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::diag::{Diagnostic, ErrorCode, SourceFile};
use super::model::Pack;
use super::raw::RawPack;

pub use convert::{patient_columns, BUILTINS};
pub use functions::FUNCTIONS;
pub use source::StringOrigin;

use convert::Scope;

/// Checks everything; returns the pack only when nothing is wrong.
pub fn build(
    dir: &Path,
    file: &SourceFile,
    raw: RawPack,
    toml_bytes: &[u8],
    using: &[std::path::PathBuf],
    diags: &mut Vec<Diagnostic>,
) -> Option<Pack> {
    let mut sink = Sink::new(file, diags);
    let errors_before = sink.count();

    let meta = sections::meta(&mut sink, &raw.meta);

    let mut taken = sections::builtin_names();
    let (mut columns, mut column_types) = sections::columns(&mut sink, &raw.columns, &mut taken);

    let (mut codelists, codelist_files) = codelists::check(&mut sink, dir, &raw.codelists);
    let imported = uses::check(
        &mut sink,
        dir,
        &raw.uses,
        using,
        codelists.len(),
        &mut taken,
        (&mut columns, &mut column_types),
    );
    codelists.extend(imported.codelists);
    let codelist_index: BTreeMap<String, usize> = codelists
        .iter()
        .enumerate()
        .map(|(i, cl)| (cl.name.clone(), i))
        .collect();
    let codelist_kinds: Vec<(bool, bool)> = codelists
        .iter()
        .map(|cl| (cl.is_categorised(), !cl.weights.is_empty()))
        .collect();
    let codelist_prefix: Vec<bool> = codelists
        .iter()
        .map(|cl| cl.match_mode == crate::pack::MatchMode::Prefix)
        .collect();

    let features = features::check(
        &mut sink,
        &raw.features,
        &mut taken,
        (&codelist_index, &codelist_kinds, &codelist_prefix),
        &column_types,
        imported.features,
    );
    let feature_slots = features.slots.iter().cloned().collect();
    let scope = Scope {
        features: &feature_slots,
        codelists: &codelist_index,
        codelist_kinds: &codelist_kinds,
        codelist_prefix: &codelist_prefix,
        columns: &column_types,
        allow_score: false,
    };

    let population = raw
        .population
        .as_ref()
        .and_then(|p| convert::condition(&mut sink, p, &scope));
    let score_add = raw
        .score_add
        .as_ref()
        .map(|s| convert::score_add(&mut sink, s, &scope));
    let rules = sections::rules(&mut sink, &raw.rules, &scope, &features.names);
    let (tiers, tier_index) = sections::tiers(&mut sink, &raw.tiers, &scope);
    let overrides = sections::overrides(&mut sink, &raw.overrides, &codelist_index, &tier_index);
    let exclusions = sections::exclusions(&mut sink, &raw.exclusions, &scope);
    let list = sections::list(
        &mut sink,
        &raw.order_by,
        &raw.display,
        &features.names,
        &column_types,
    );
    let list = crate::pack::ListSpec {
        capacity: raw.capacity,
        pcn_lists: raw.pcn_lists,
        ..list
    };

    if sink.count() > errors_before {
        return None;
    }
    Some(Pack {
        meta: meta?,
        content_hash: uses::content_hash(
            codelists::content_hash(toml_bytes, &codelist_files),
            &imported.uses,
        ),
        uses: imported.uses,
        columns,
        codelists,
        features: features.checked,
        population: population?,
        score_add: score_add.flatten(),
        rules,
        tiers,
        overrides,
        exclusions,
        list,
    })
}

/// Where every part of the checker records the problems it finds. Spans
/// are byte offsets into `pack.toml` unless another file is named.
struct Sink<'a> {
    file: &'a SourceFile,
    diags: &'a mut Vec<Diagnostic>,
}

/// A problem just recorded, to which help can be added.
struct Recorded<'d>(&'d mut Diagnostic);

impl Recorded<'_> {
    /// Adds a hint (`did you mean …`, how to write it instead), if any.
    fn help(self, help: impl Into<Option<String>>) {
        self.0.help = help.into();
    }
}

impl<'a> Sink<'a> {
    fn new(file: &'a SourceFile, diags: &'a mut Vec<Diagnostic>) -> Sink<'a> {
        Sink { file, diags }
    }

    /// The text of `pack.toml`, which spans point into.
    fn text(&self) -> &'a str {
        &self.file.text
    }

    /// Records a problem at `span` in `pack.toml`.
    fn error(
        &mut self,
        code: ErrorCode,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Recorded<'_> {
        let d = self.file.error(code, Some(span), message);
        self.record(d)
    }

    /// Records a problem in another file of the pack (a codelist CSV),
    /// at `span` or, without one, in the file as a whole.
    fn error_in(
        &mut self,
        file: &SourceFile,
        code: ErrorCode,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Recorded<'_> {
        let d = file.error(code, span, message);
        self.record(d)
    }

    /// Records problems another reader (the codelist CSV parser) found.
    fn extend(&mut self, found: Vec<Diagnostic>) {
        self.diags.extend(found);
    }

    /// How many problems have been recorded so far, before the checker
    /// started included.
    fn count(&self) -> usize {
        self.diags.len()
    }

    fn record(&mut self, d: Diagnostic) -> Recorded<'_> {
        self.diags.push(d);
        let last = self.diags.len() - 1;
        Recorded(&mut self.diags[last])
    }
}

/// Shared by the parts' tests: checking whole packs and single expressions,
/// with problems shown as one line each.
#[cfg(test)]
mod testing {
    use std::collections::{BTreeMap, HashMap};

    use super::convert::{Converter, FeatureSlot, Scope};
    use super::source::{parse_sql, SqlSource};
    use super::{patient_columns, Sink};
    use crate::pack::diag::{Diagnostic, SourceFile};
    use crate::pack::expr::{Expr, Type};
    use crate::pack::model::Pack;
    use crate::pack::raw::Sp;

    /// `E204 `astma`: unknown codelist `astma` (help: …)`: the code, the
    /// underlined text and the message, as a reader sees them.
    pub fn brief(d: &Diagnostic) -> String {
        let at = d.location.as_ref().map_or(String::new(), |l| {
            let text: String = l
                .line_text
                .chars()
                .skip(l.column - 1)
                .take(l.width)
                .collect();
            format!(" `{text}`")
        });
        let help = d
            .help
            .as_ref()
            .map_or(String::new(), |h| format!(" (help: {h})"));
        format!("{}{at}: {}{help}", d.code.code(), d.message)
    }

    pub fn briefs(diags: &[Diagnostic]) -> Vec<String> {
        diags.iter().map(brief).collect()
    }

    /// A `pack.toml` text as a source file with the span of the value of
    /// `key = …` (its first occurrence), quotes included.
    pub fn file_with(text: &str, key: &str) -> (SourceFile, Sp<String>) {
        let file = SourceFile::new("pack.toml".into(), text.into());
        let at = text.find(&format!("{key} = ")).expect("key in text") + key.len() + 3;
        let doc: toml::Table = toml::from_str(text).expect("valid TOML");
        let value = find_string(&doc, key).expect("string value");
        let end = at + value_len(&text[at..]);
        (
            file,
            Sp {
                value,
                span: at..end,
            },
        )
    }

    fn find_string(t: &toml::Table, key: &str) -> Option<String> {
        t.iter().find_map(|(k, v)| match v {
            toml::Value::String(s) if k == key => Some(s.clone()),
            toml::Value::Table(inner) => find_string(inner, key),
            _ => None,
        })
    }

    /// Bytes of the TOML string literal at the start of `rest`.
    fn value_len(rest: &str) -> usize {
        for quote in ["\"\"\"", "'''", "\"", "'"] {
            if let Some(body) = rest.strip_prefix(quote) {
                let mut i = 0;
                while i < body.len() {
                    if body[i..].starts_with('\\') && quote.starts_with('"') {
                        i += 2;
                    } else if body[i..].starts_with(quote) {
                        return quote.len() * 2 + i;
                    } else {
                        i += body[i..].chars().next().map_or(1, char::len_utf8);
                    }
                }
            }
        }
        rest.len()
    }

    /// Checks one expression against codelists `asthma` (exact, categorised
    /// and weighted, for the tests' sake) and `copd` (prefix, neither), the
    /// features `ltc_count` (int) and `broken` (had errors), the patient
    /// columns and a declared bool column `carer`.
    pub fn expr(sql: &str, allow_score: bool) -> Result<Expr, Vec<String>> {
        let text = format!("expr = {}\n", toml::Value::String(sql.into()));
        let (file, s) = file_with(&text, "expr");
        let codelists: BTreeMap<String, usize> =
            [("asthma".to_string(), 0), ("copd".to_string(), 1)].into();
        let features: HashMap<String, FeatureSlot> = [
            (
                "ltc_count".to_string(),
                FeatureSlot::Ready {
                    index: 0,
                    ty: Type::Int,
                },
            ),
            ("broken".to_string(), FeatureSlot::Failed),
        ]
        .into();
        let mut columns: BTreeMap<String, Type> =
            patient_columns().map(|(n, t)| (n.to_string(), t)).collect();
        columns.insert("carer".into(), Type::Bool);
        let scope = Scope {
            features: &features,
            codelists: &codelists,
            codelist_kinds: &[(true, true), (false, false)],
            codelist_prefix: &[false, true],
            columns: &columns,
            allow_score,
        };
        let mut diags = Vec::new();
        let mut sink = Sink::new(&file, &mut diags);
        let converted = parse_sql(&mut sink, &s).and_then(|ast| {
            let src = SqlSource::new(file.text.as_str(), &s);
            Converter {
                sink: &mut sink,
                src: &src,
                scope: &scope,
            }
            .convert(&ast)
        });
        match converted {
            Some(e) if diags.is_empty() => Ok(e),
            _ => Err(briefs(&diags)),
        }
    }

    /// Checks a whole pack: `pack.toml` text plus codelist files
    /// (`codelists/<name>.csv`, text) in a temporary folder.
    pub fn pack(toml_text: &str, codelist_files: &[(&str, &str)]) -> Result<Pack, Vec<String>> {
        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::create_dir_all(dir.path().join("codelists")).expect("codelists folder");
        for (name, text) in codelist_files {
            std::fs::write(dir.path().join("codelists").join(name), text).expect("codelist");
        }
        let file = SourceFile::new("pack.toml".into(), toml_text.into());
        let (doc, errors) = toml::de::DeTable::parse_recoverable(&file.text);
        assert!(errors.is_empty(), "test pack is not valid TOML");
        let mut diags = Vec::new();
        let raw = crate::pack::raw::read(&file, &doc, &mut diags);
        let built = super::build(
            dir.path(),
            &file,
            raw,
            toml_text.as_bytes(),
            &[],
            &mut diags,
        );
        let shown = |d: &Diagnostic| brief(d).replace(&dir.path().display().to_string(), "DIR");
        match built {
            Some(p) if diags.is_empty() => Ok(p),
            _ => Err(diags.iter().map(shown).collect()),
        }
    }

    /// The smallest pack that checks, for tests to add sections to.
    pub const MINIMAL: &str = "[pack]\nid = \"t\"\ntitle = \"T\"\nversion = \"1\"\n\n\
                               [population]\nwhen = \"age >= 18\"\n\n";
}

#[cfg(test)]
mod tests {
    use super::testing::{brief, pack, MINIMAL};
    use super::*;
    use crate::pack::expr::{Expr, Type, Value};

    #[test]
    fn score_add_must_be_an_exact_number() {
        let csv = [("bmi.csv", "code\n60621009\n")];
        let base = format!("{MINIMAL}[codelists]\nbmi = {{ file = \"codelists/bmi.csv\" }}\n\n");
        let ok = pack(&format!("{base}[score]\nadd = \"count(bmi) * 2\"\n"), &csv).expect("checks");
        assert_eq!(ok.score_add.as_ref().map(|e| e.ty()), Some(Type::Int));
        let errors = pack(&format!("{base}[score]\nadd = \"last_value(bmi)\"\n"), &csv)
            .expect_err("a float score is an error");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("E207")
                && errors[0].contains("[score] add must be an int or a decimal (scores are exact), but this is a float"),
            "{errors:?}"
        );
    }

    #[test]
    fn sink_records_code_span_message_and_help() {
        let file = SourceFile::new("pack.toml".into(), "a = \"has(x)\"\n".into());
        let mut diags = Vec::new();
        let mut sink = Sink::new(&file, &mut diags);
        sink.error(ErrorCode::UnknownCodelist, 9..10, "unknown codelist `x`")
            .help("did you mean `y`?".to_string());
        sink.error(ErrorCode::SqlSyntax, 4..12, "plain");
        assert_eq!(sink.count(), 2);
        assert_eq!(
            brief(&diags[0]),
            "E204 `x`: unknown codelist `x` (help: did you mean `y`?)"
        );
        assert_eq!(brief(&diags[1]), "E201 `\"has(x)\"`: plain");
        assert_eq!(diags[0].file, "pack.toml");
    }

    #[test]
    fn sink_records_problems_in_other_files_after_earlier_ones() {
        let toml = SourceFile::new("pack.toml".into(), String::new());
        let csv = SourceFile::new("codelists/a.csv".into(), "code\n\n".into());
        let mut diags = vec![toml.error(ErrorCode::MissingKey, None, "from the raw stage")];
        let mut sink = Sink::new(&toml, &mut diags);
        assert_eq!(sink.count(), 1);
        sink.error_in(
            &csv,
            ErrorCode::EmptyCodelist,
            None,
            "the codelist has no codes",
        );
        sink.extend(vec![csv.error(ErrorCode::EmptyCode, Some(5..5), "empty")]);
        assert_eq!(sink.count(), 3);
        assert_eq!(diags[1].file, "codelists/a.csv");
        assert_eq!(diags[1].location, None);
        assert_eq!(brief(&diags[1]), "E105: the codelist has no codes");
        assert_eq!(diags[2].location.as_ref().map(|l| l.line), Some(2));
    }

    #[test]
    fn build_gives_the_model_only_when_nothing_is_wrong() {
        let ok = pack(
            &format!(
                "{MINIMAL}[codelists.asthma]\nfile = \"codelists/asthma.csv\"\n\n\
                 [features]\nasthmatic = \"has(asthma)\"\n"
            ),
            &[("asthma.csv", "code\n195967001\n")],
        )
        .expect("checks");
        assert_eq!(ok.meta.id, "t");
        assert_eq!(ok.codelists.len(), 1);
        assert_eq!(ok.features[0].name, "asthmatic");
        assert_eq!(ok.features[0].ty, Type::Bool);
        assert!(matches!(ok.population, Expr::Binary { .. }));
        assert_eq!(ok.content_hash.len(), 64);

        let err = pack(&format!("{MINIMAL}[features]\nx = \"1 +\"\n"), &[]).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].starts_with("E201"), "{err:?}");
    }

    #[test]
    fn the_same_pack_always_hashes_the_same() {
        let text = format!("{MINIMAL}[codelists.a]\nfile = \"codelists/a.csv\"\n");
        let first = pack(&text, &[("a.csv", "code\n1\n")]).expect("checks");
        let again = pack(&text, &[("a.csv", "code\n1\n")]).expect("checks");
        let other = pack(&text, &[("a.csv", "code\n2\n")]).expect("checks");
        assert_eq!(first.content_hash, again.content_hash);
        assert_ne!(first.content_hash, other.content_hash);
        assert_eq!(first.population, again.population);
        assert_ne!(
            first.population,
            Expr::Literal(Value::Bool(true)),
            "the population is the checked condition"
        );
    }
}
