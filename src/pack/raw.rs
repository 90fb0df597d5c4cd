//! The raw mirror of `pack.toml`: what the author wrote, with the byte span
//! of every value, before any name is resolved.
//!
//! The TOML is walked by hand over `toml::de::DeTable` rather than through
//! serde derive so that every unknown key, missing key and wrongly typed
//! value is reported in one pass, each pointing at its own text.

use std::ops::Range;

use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

use super::diag::{did_you_mean, Diagnostic, ErrorCode, SourceFile};

/// A value with the byte span of its text in `pack.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sp<T> {
    pub value: T,
    pub span: Range<usize>,
}

#[derive(Debug, Default)]
pub struct RawPack {
    pub meta: RawMeta,
    /// The `[pack]` header (or file start), for "missing key" messages.
    pub meta_span: Range<usize>,
    pub population: Option<Sp<String>>,
    /// `[score] add`: an expression added to the fired rules' points.
    pub score_add: Option<Sp<String>>,
    pub columns: Vec<(Sp<String>, Sp<String>)>,
    /// `[uses]`: other packs whose features this one reads, as
    /// (alias, folder relative to this pack's folder).
    pub uses: Vec<(Sp<String>, Sp<String>)>,
    pub codelists: Vec<RawCodelist>,
    pub features: Vec<RawFeature>,
    pub rules: Vec<RawRule>,
    pub tiers: Vec<RawTier>,
    pub overrides: Vec<RawOverride>,
    pub exclusions: Vec<RawExclusion>,
    pub order_by: Vec<Sp<String>>,
    pub display: Vec<Sp<String>>,
    /// `[list] capacity`: calls a practice makes in a week.
    pub capacity: Option<u32>,
    /// `[list] pcn_lists`: also write a ranked list per PCN.
    pub pcn_lists: bool,
}

#[derive(Debug, Default)]
pub struct RawMeta {
    pub id: Option<Sp<String>>,
    pub title: Option<Sp<String>>,
    pub version: Option<Sp<String>>,
    pub description: Option<Sp<String>>,
    pub references: Vec<Sp<String>>,
    /// `imd = "2019" | "2025"`: the deprivation index the pack needs.
    pub imd: Option<Sp<String>>,
}

#[derive(Debug)]
pub struct RawCodelist {
    pub name: Sp<String>,
    pub file: Option<Sp<String>>,
    pub table: Option<Sp<String>>,
    pub match_mode: Option<Sp<String>>,
    pub category_column: Option<Sp<String>>,
    pub weight_column: Option<Sp<String>>,
}

#[derive(Debug)]
pub struct RawFeature {
    pub name: Sp<String>,
    pub expr: Option<Sp<String>>,
    pub description: Option<String>,
}

/// Points as the author wrote them: the exact text of a TOML number or
/// string, so `1.34` never passes through a binary float.
#[derive(Debug)]
pub struct RawRule {
    pub span: Range<usize>,
    pub id: Option<Sp<String>>,
    pub when: Option<Sp<String>>,
    pub points: Option<Sp<String>>,
    pub reason: Option<Sp<String>>,
}

#[derive(Debug)]
pub struct RawTier {
    pub span: Range<usize>,
    pub id: Option<Sp<String>>,
    pub label: Option<Sp<String>>,
    pub description: Option<Sp<String>>,
    pub when: Option<Sp<String>>,
}

#[derive(Debug)]
pub struct RawOverride {
    pub span: Range<usize>,
    pub id: Option<Sp<String>>,
    pub include: Option<Sp<String>>,
    pub exclude: Option<Sp<String>>,
    pub tier: Option<Sp<String>>,
    pub reason: Option<Sp<String>>,
}

#[derive(Debug)]
pub struct RawExclusion {
    pub span: Range<usize>,
    pub id: Option<Sp<String>>,
    pub when: Option<Sp<String>>,
    pub reason: Option<Sp<String>>,
}

type Entry<'t, 'i> = (&'t Spanned<DeString<'i>>, &'t Spanned<DeValue<'i>>);

/// Reads the parsed document into a [`RawPack`], reporting every
/// structural problem into `diags`.
pub fn read(file: &SourceFile, doc: &Spanned<DeTable<'_>>, diags: &mut Vec<Diagnostic>) -> RawPack {
    let mut w = Walker { file, diags };
    let mut raw = RawPack::default();
    let root = doc.get_ref();
    w.check_keys(
        root,
        &[
            "pack",
            "population",
            "score",
            "uses",
            "columns",
            "codelists",
            "features",
            "rules",
            "tiers",
            "overrides",
            "exclusions",
            "list",
        ],
        "at the top level",
    );

    raw.meta_span = 0..0;
    match w.table(root, "pack") {
        Some((span, t)) => {
            raw.meta_span = span.clone();
            w.check_keys(
                t,
                &["id", "title", "version", "description", "references", "imd"],
                "in [pack]",
            );
            raw.meta.id = w.required_string(t, "id", &span, "[pack]");
            raw.meta.title = w.required_string(t, "title", &span, "[pack]");
            raw.meta.version = w.required_string(t, "version", &span, "[pack]");
            raw.meta.description = w.string(t, "description");
            raw.meta.references = w.string_array(t, "references");
            raw.meta.imd = w.string(t, "imd");
        }
        None if !root.contains_key("pack") => w.missing(0..0, "[pack]", "the file"),
        None => {}
    }

    match w.table(root, "population") {
        Some((span, t)) => {
            w.check_keys(t, &["when"], "in [population]");
            raw.population = w.required_string(t, "when", &span, "[population]");
        }
        None if !root.contains_key("population") => w.missing(0..0, "[population]", "the file"),
        None => {}
    }

    if let Some((span, t)) = w.table(root, "score") {
        w.check_keys(t, &["add"], "in [score]");
        raw.score_add = w.required_string(t, "add", &span, "[score]");
    }

    if let Some((_, t)) = w.table(root, "uses") {
        for (k, v) in entries(t) {
            if let Some(path) = w.as_string(v) {
                raw.uses.push((key(k), path));
            }
        }
    }

    if let Some((_, t)) = w.table(root, "columns") {
        for (k, v) in entries(t) {
            if let Some(ty) = w.as_string(v) {
                raw.columns.push((key(k), ty));
            }
        }
    }

    if let Some((_, t)) = w.table(root, "codelists") {
        for (k, v) in entries(t) {
            let Some(body) = w.as_table(v) else { continue };
            let section = format!("[codelists.{}]", k.get_ref());
            w.check_keys(
                body,
                &[
                    "file",
                    "table",
                    "match",
                    "description",
                    "category_column",
                    "weight_column",
                ],
                &format!("in {section}"),
            );
            raw.codelists.push(RawCodelist {
                name: key(k),
                file: w.required_string(body, "file", &k.span(), &section),
                table: w.string(body, "table"),
                match_mode: w.string(body, "match"),
                category_column: w.string(body, "category_column"),
                weight_column: w.string(body, "weight_column"),
            });
        }
    }

    if let Some((_, t)) = w.table(root, "features") {
        for (k, v) in entries(t) {
            // `name = "expr"` is shorthand for `[features.name] expr = "expr"`.
            if let DeValue::String(s) = v.get_ref() {
                raw.features.push(RawFeature {
                    name: key(k),
                    expr: Some(Sp {
                        value: s.to_string(),
                        span: v.span(),
                    }),
                    description: None,
                });
                continue;
            }
            let Some(body) = w.as_table(v) else { continue };
            let section = format!("[features.{}]", k.get_ref());
            w.check_keys(body, &["expr", "description"], &format!("in {section}"));
            raw.features.push(RawFeature {
                name: key(k),
                expr: w.required_string(body, "expr", &k.span(), &section),
                description: w.string(body, "description").map(|s| s.value),
            });
        }
    }

    for (span, t) in w.array_of_tables(root, "rules") {
        w.check_keys(t, &["id", "when", "points", "reason"], "in [[rules]]");
        raw.rules.push(RawRule {
            id: w.required_string(t, "id", &span, "[[rules]]"),
            when: w.required_string(t, "when", &span, "[[rules]]"),
            points: w.points(t, &span),
            reason: w.required_string(t, "reason", &span, "[[rules]]"),
            span,
        });
    }

    for (span, t) in w.array_of_tables(root, "tiers") {
        w.check_keys(t, &["id", "label", "description", "when"], "in [[tiers]]");
        raw.tiers.push(RawTier {
            id: w.required_string(t, "id", &span, "[[tiers]]"),
            label: w.required_string(t, "label", &span, "[[tiers]]"),
            description: w.string(t, "description"),
            when: w.required_string(t, "when", &span, "[[tiers]]"),
            span,
        });
    }

    for (span, t) in w.array_of_tables(root, "overrides") {
        w.check_keys(
            t,
            &["id", "include", "exclude", "tier", "reason"],
            "in [[overrides]]",
        );
        raw.overrides.push(RawOverride {
            id: w.required_string(t, "id", &span, "[[overrides]]"),
            include: w.required_string(t, "include", &span, "[[overrides]]"),
            exclude: w.required_string(t, "exclude", &span, "[[overrides]]"),
            tier: w.required_string(t, "tier", &span, "[[overrides]]"),
            reason: w.required_string(t, "reason", &span, "[[overrides]]"),
            span,
        });
    }

    for (span, t) in w.array_of_tables(root, "exclusions") {
        w.check_keys(t, &["id", "when", "reason"], "in [[exclusions]]");
        raw.exclusions.push(RawExclusion {
            id: w.required_string(t, "id", &span, "[[exclusions]]"),
            when: w.required_string(t, "when", &span, "[[exclusions]]"),
            reason: w.required_string(t, "reason", &span, "[[exclusions]]"),
            span,
        });
    }

    if let Some((_, t)) = w.table(root, "list") {
        w.check_keys(
            t,
            &["order_by", "display", "capacity", "pcn_lists"],
            "in [list]",
        );
        if let Some(v) = t.get("pcn_lists") {
            match v.get_ref() {
                DeValue::Boolean(b) => raw.pcn_lists = *b,
                other => w.push(
                    ErrorCode::WrongValueType,
                    v.span(),
                    format!("expected true or false, found {}", type_name(other)),
                ),
            }
        }
        raw.order_by = w.string_array(t, "order_by");
        raw.display = w.string_array(t, "display");
        if let Some(v) = t.get("capacity") {
            match v.get_ref() {
                DeValue::Integer(i) => match i.as_str().replace('_', "").parse::<u32>() {
                    Ok(n) if n >= 1 => raw.capacity = Some(n),
                    _ => w.push(
                        ErrorCode::InvalidValue,
                        v.span(),
                        "capacity is the number of calls a practice makes in a week: a whole number from 1".into(),
                    ),
                },
                other => w.push(
                    ErrorCode::WrongValueType,
                    v.span(),
                    format!("expected a whole number of calls a week, found {}", type_name(other)),
                ),
            }
        }
    }
    raw
}

fn key(k: &Spanned<DeString<'_>>) -> Sp<String> {
    Sp {
        value: k.get_ref().to_string(),
        span: k.span(),
    }
}

/// A table's entries in the order they appear in the file.
fn entries<'t, 'i>(table: &'t DeTable<'i>) -> Vec<Entry<'t, 'i>> {
    let mut v: Vec<Entry<'t, 'i>> = table.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

struct Walker<'a> {
    file: &'a SourceFile,
    diags: &'a mut Vec<Diagnostic>,
}

impl Walker<'_> {
    fn push(&mut self, code: ErrorCode, span: Range<usize>, message: String) {
        self.diags.push(self.file.error(code, Some(span), message));
    }

    fn missing(&mut self, span: Range<usize>, what: &str, place: &str) {
        self.push(
            ErrorCode::MissingKey,
            span,
            format!("{what} is missing from {place}"),
        );
    }

    fn check_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], place: &str) {
        for (k, _) in entries(table) {
            let name = k.get_ref();
            if !allowed.contains(&name.as_ref()) {
                let d = self
                    .file
                    .error(
                        ErrorCode::UnknownKey,
                        Some(k.span()),
                        format!("unknown key `{name}` {place}"),
                    )
                    .with_help(did_you_mean(name, allowed.iter().copied()));
                self.diags.push(d);
            }
        }
    }

    fn as_string(&mut self, v: &Spanned<DeValue<'_>>) -> Option<Sp<String>> {
        match v.get_ref() {
            DeValue::String(s) => Some(Sp {
                value: s.to_string(),
                span: v.span(),
            }),
            other => {
                self.push(
                    ErrorCode::WrongValueType,
                    v.span(),
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn as_table<'t, 'i>(&mut self, v: &'t Spanned<DeValue<'i>>) -> Option<&'t DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.push(
                    ErrorCode::WrongValueType,
                    v.span(),
                    format!("expected a table, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn string(&mut self, table: &DeTable<'_>, name: &str) -> Option<Sp<String>> {
        let v = table.get(name)?;
        self.as_string(v)
    }

    fn required_string(
        &mut self,
        table: &DeTable<'_>,
        name: &str,
        owner: &Range<usize>,
        section: &str,
    ) -> Option<Sp<String>> {
        if !table.contains_key(name) {
            self.missing(owner.clone(), &format!("`{name}`"), section);
            return None;
        }
        self.string(table, name)
    }

    fn string_array(&mut self, table: &DeTable<'_>, name: &str) -> Vec<Sp<String>> {
        let Some(v) = table.get(name) else {
            return Vec::new();
        };
        match v.get_ref() {
            DeValue::Array(items) => items.iter().filter_map(|i| self.as_string(i)).collect(),
            other => {
                self.push(
                    ErrorCode::WrongValueType,
                    v.span(),
                    format!("expected an array of strings, found {}", type_name(other)),
                );
                Vec::new()
            }
        }
    }

    fn table<'t, 'i>(
        &mut self,
        root: &'t DeTable<'i>,
        name: &str,
    ) -> Option<(Range<usize>, &'t DeTable<'i>)> {
        let (k, v) = root.get_key_value(name)?;
        let t = self.as_table(v)?;
        Some((k.span(), t))
    }

    /// The elements of `[[name]]`, each with the span of its header.
    fn array_of_tables<'t, 'i>(
        &mut self,
        root: &'t DeTable<'i>,
        name: &str,
    ) -> Vec<(Range<usize>, &'t DeTable<'i>)> {
        let Some(v) = root.get(name) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.push(
                ErrorCode::WrongValueType,
                v.span(),
                format!(
                    "expected [[{name}]] entries, found {}",
                    type_name(v.get_ref())
                ),
            );
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let t = self.as_table(item)?;
                Some((item.span(), t))
            })
            .collect()
    }

    /// `points` as exact text: a TOML integer, float, or string.
    fn points(&mut self, table: &DeTable<'_>, owner: &Range<usize>) -> Option<Sp<String>> {
        let Some(v) = table.get("points") else {
            self.missing(owner.clone(), "`points`", "[[rules]]");
            return None;
        };
        let text = match v.get_ref() {
            DeValue::Integer(i) if i.radix() == 10 => i.as_str().replace('_', ""),
            DeValue::Float(f) => f.as_str().replace('_', ""),
            DeValue::String(s) => s.trim().to_string(),
            other => {
                self.push(
                    ErrorCode::WrongValueType,
                    v.span(),
                    format!("expected points as a number, found {}", type_name(other)),
                );
                return None;
            }
        };
        Some(Sp {
            value: text,
            span: v.span(),
        })
    }
}
