//! Rule packs: TOML + SQL expressions + codelists -> a checked model (no Arrow here).
//!
//! A pack is a folder: `pack.toml` plus `codelists/*.csv`. [`load`] reads
//! and checks everything before any data is seen, in two stages (as
//! ripgrep does for its flags): [`raw`] mirrors what the author wrote with
//! spans, [`check`] resolves names and types into the [`Pack`] model that
//! the engine compiles. [`eval`] is the row-at-a-time reference evaluator
//! (the oracle for the fast engine) and [`explain`] its audit trail.
//! The language is documented for pack authors in `rules/FORMAT.md`.

pub mod check;
pub mod codelist;
pub mod diag;
pub mod eval;
pub mod explain;
pub mod expr;
pub mod model;
pub mod raw;
pub mod semantics;

use std::path::Path;

pub use codelist::{normalise_code, Codelist, MatchMode};
pub use diag::{Diagnostic, ErrorCode, PackErrors};
pub use eval::{evaluate, EventRecord, Evidence, Forced, Outcome, PersonRecord, RuleResult};
pub use explain::{explain, explain_with};
pub use expr::{AggregateFunc, BinaryOp, Expr, Type, Value, Window};
pub use model::{
    ColumnDecl, Exclusion, Feature, ListSpec, OrderBy, OrderKey, Override, Pack, PackMeta, Rule,
    Segment, Template, Tier, UsedPack,
};

use diag::SourceFile;

/// Reads and checks the pack in `dir` (which holds `pack.toml`). Paths in
/// diagnostics are shown as `dir` was given.
pub fn load(dir: &Path) -> Result<Pack, PackErrors> {
    load_used(dir, &[])
}

/// [`load`] for a pack reached through `[uses]` from the packs in
/// `using` (outermost first), which it must not use in turn.
pub(crate) fn load_used(dir: &Path, using: &[std::path::PathBuf]) -> Result<Pack, PackErrors> {
    let toml_path = dir.join("pack.toml");
    let display = toml_path.display().to_string();
    let bytes = match std::fs::read(&toml_path) {
        Ok(b) => b,
        Err(e) => {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                format!("no pack.toml in `{}`", dir.display())
            } else {
                format!("cannot read the pack: {e}")
            };
            return Err(single(SourceFile::new(display, String::new()), message));
        }
    };
    let text = match String::from_utf8(bytes.clone()) {
        Ok(t) => t,
        Err(_) => {
            return Err(single(
                SourceFile::new(display, String::new()),
                "pack.toml is not UTF-8 text".into(),
            ))
        }
    };
    let file = SourceFile::new(display, text);
    let mut diags = Vec::new();

    let (doc, toml_errors) = toml::de::DeTable::parse_recoverable(&file.text);
    if !toml_errors.is_empty() {
        for e in toml_errors {
            diags.push(file.error(
                ErrorCode::TomlSyntax,
                e.span(),
                format!("invalid TOML: {}", e.message().trim()),
            ));
        }
        return Err(PackErrors { diagnostics: diags });
    }
    let raw = raw::read(&file, &doc, &mut diags);
    let pack = check::build(dir, &file, raw, &bytes, using, &mut diags);
    match pack {
        Some(p) if diags.is_empty() => Ok(p),
        _ => {
            sort_diagnostics(&file.display, &mut diags);
            Err(PackErrors { diagnostics: diags })
        }
    }
}

fn single(file: SourceFile, message: String) -> PackErrors {
    PackErrors {
        diagnostics: vec![file.error(ErrorCode::UnreadablePack, None, message)],
    }
}

/// `pack.toml` first, then codelist files by name; each in file order.
fn sort_diagnostics(pack_toml: &str, diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            (
                d.file != pack_toml,
                d.file.clone(),
                d.location.as_ref().map_or((0, 0), |l| (l.line, l.column)),
            )
        };
        key(a).cmp(&key(b))
    });
}
