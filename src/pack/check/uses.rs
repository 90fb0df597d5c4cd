//! `[uses]`: packs whose features this pack reads. Each used pack is loaded
//! and checked on its own (so its errors point into its own files), then
//! its features and codelists become part of this pack, named
//! `alias.name`: `efi.deficits`, `has(efi.falls)`. Its population, rules,
//! tiers and list are not used. Packs that use each other in a cycle are
//! an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::sections::{identifier, unique};
use super::Sink;
use crate::pack::codelist::Codelist;
use crate::pack::diag::ErrorCode;
use crate::pack::expr::Type;
use crate::pack::model::{ColumnDecl, Feature, UsedPack};
use crate::pack::raw::Sp;

/// What the used packs add to this one.
#[derive(Default)]
pub(super) struct Imported {
    /// To follow this pack's own codelists (indices already moved there).
    pub(super) codelists: Vec<Codelist>,
    /// To come before this pack's own features, in this order.
    pub(super) features: Vec<Feature>,
    pub(super) uses: Vec<UsedPack>,
}

/// Loads every used pack. `own_codelists` is how many codelists this pack
/// declares itself; declared columns of the used packs are added to
/// `columns` and `column_types` (a column declared twice must have one type).
pub(super) fn check(
    sink: &mut Sink<'_>,
    dir: &Path,
    declared: &[(Sp<String>, Sp<String>)],
    using: &[PathBuf],
    own_codelists: usize,
    taken: &mut BTreeMap<String, &'static str>,
    (columns, column_types): (&mut Vec<ColumnDecl>, &mut BTreeMap<String, Type>),
) -> Imported {
    let mut out = Imported::default();
    if declared.is_empty() {
        return out;
    }
    let here = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut chain: Vec<PathBuf> = using.to_vec();
    chain.push(here);
    for (alias, path) in declared {
        if !identifier(sink, alias, "used pack") || !unique(sink, taken, alias, "a used pack") {
            continue;
        }
        let target = tidy(&dir.join(&path.value));
        let Ok(canonical) = target.canonicalize() else {
            sink.error(
                ErrorCode::UsedPack,
                path.span.clone(),
                format!("no pack folder at `{}`", target.display()),
            )
            .help("the path is relative to this pack's folder, e.g. \"../efi\"".to_string());
            continue;
        };
        if let Some(start) = chain.iter().position(|p| *p == canonical) {
            let mut names: Vec<String> = chain[start..].iter().map(|p| folder_name(p)).collect();
            names.push(folder_name(&canonical));
            sink.error(
                ErrorCode::PackCycle,
                path.span.clone(),
                format!("packs use each other in a cycle: {}", names.join(" -> ")),
            );
            continue;
        }
        let used = match crate::pack::load_used(&target, &chain) {
            Ok(p) => p,
            Err(errors) => {
                let n = errors.diagnostics.len();
                sink.error(
                    ErrorCode::UsedPack,
                    path.span.clone(),
                    format!(
                        "the pack at `{}` has {n} error{} (below)",
                        target.display(),
                        if n == 1 { "" } else { "s" }
                    ),
                );
                sink.extend(errors.diagnostics);
                continue;
            }
        };
        let name = &alias.value;
        for c in &used.columns {
            match column_types.get(&c.name) {
                Some(&ty) if ty == c.ty => {}
                Some(&ty) => {
                    sink.error(
                        ErrorCode::TypeMismatch,
                        alias.span.clone(),
                        format!(
                            "pack `{name}` declares the column `{}` as {}, but here it is {ty}",
                            c.name, c.ty
                        ),
                    );
                }
                None => {
                    column_types.insert(c.name.clone(), c.ty);
                    columns.push(c.clone());
                }
            }
        }
        let codelist_offset = own_codelists + out.codelists.len();
        let feature_offset = out.features.len();
        out.codelists
            .extend(used.codelists.into_iter().map(|mut c| {
                c.name = format!("{name}.{}", c.name);
                c
            }));
        out.features.extend(used.features.into_iter().map(|mut f| {
            f.name = format!("{name}.{}", f.name);
            f.expr.offset_indices(codelist_offset, feature_offset);
            f
        }));
        out.uses.push(UsedPack {
            alias: name.clone(),
            dir: path.value.clone(),
            id: used.meta.id,
            version: used.meta.version,
            content_hash: used.content_hash,
        });
        out.uses.extend(used.uses.into_iter().map(|mut u| {
            u.alias = format!("{name}.{}", u.alias);
            u
        }));
    }
    out
}

/// The pack's own content hash, followed by each directly used pack's
/// (alias and hash; a used pack's hash covers the packs it uses). A pack
/// that uses none keeps its own hash.
pub(super) fn content_hash(own: String, uses: &[UsedPack]) -> String {
    use sha2::{Digest, Sha256};
    let direct: Vec<&UsedPack> = uses.iter().filter(|u| !u.alias.contains('.')).collect();
    if direct.is_empty() {
        return own;
    }
    let mut h = Sha256::new();
    h.update(own.as_bytes());
    for u in direct {
        h.update(b"\0uses\0");
        h.update(u.alias.as_bytes());
        h.update(b"\0");
        h.update(u.content_hash.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `a/b/../c` as `a/c`, for messages (the folder is found through the
/// file system all the same).
fn tidy(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

fn folder_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}
