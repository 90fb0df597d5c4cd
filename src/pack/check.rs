//! The checker: turns a [`RawPack`] into a checked [`Pack`], resolving every
//! name, parsing every SQL expression and type-checking it, reporting all
//! problems at once with spans pointing into `pack.toml`.
//!
//! SQL text lives inside TOML strings, so a position the SQL parser reports
//! (line and column within the expression) is mapped back to a byte offset
//! in the file; see [`StringOrigin`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Component, Path};
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlparser::ast::{
    self as sql, FunctionArg, FunctionArgExpr, FunctionArguments, Spanned, UnaryOperator,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::codelist::{parse_codelist_csv, Codelist, MatchMode};
use super::diag::{did_you_mean, Diagnostic, ErrorCode, SourceFile};
use super::expr::{arithmetic_type, unify, AggregateFunc, BinaryOp, Expr, Type, Value, Window};
use super::model::{
    ColumnDecl, Exclusion, Feature, ListSpec, OrderBy, OrderKey, Override, Pack, PackMeta, Rule,
    Segment, Template, Tier,
};
use super::raw::{RawPack, Sp};

/// Patient columns every dataset has (or that read as NULL when absent),
/// with their types. `patient_id` is deliberately not available to rules.
pub const PATIENT_COLUMNS: [(&str, Type); 8] = [
    ("practice_code", Type::Str),
    ("pcn_code", Type::Str),
    ("date_of_birth", Type::Date),
    ("sex", Type::Str),
    ("lsoa_code", Type::Str),
    ("imd_decile", Type::Int),
    ("registration_end", Type::Date),
    ("date_of_death", Type::Date),
];

/// Names with a built-in meaning in expressions.
pub const BUILTINS: [&str; 5] = ["age", "as_of", "registered", "alive", "score"];

/// Every function a pack expression may call.
pub const FUNCTIONS: [&str; 14] = [
    "has",
    "count",
    "count_distinct_codelists",
    "first_date",
    "last_date",
    "last_value",
    "min_value",
    "max_value",
    "latest_of",
    "days_since",
    "contacted",
    "last_contact",
    "coalesce",
    "date",
];

/// Where a TOML string's text sits in the file. When the string has no
/// escapes its characters map one to one onto the file; otherwise a
/// position inside it can only be shown as the whole string.
#[derive(Debug, Clone)]
pub struct StringOrigin {
    whole: Range<usize>,
    content_start: Option<usize>,
}

impl StringOrigin {
    pub fn of(source: &str, s: &Sp<String>) -> StringOrigin {
        let whole = s.span.clone();
        let raw = source.get(whole.clone()).unwrap_or("");
        let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else if raw.starts_with('"') || raw.starts_with('\'') {
            1
        } else {
            0
        };
        let mut start = whole.start + quote;
        if quote == 3 {
            let rest = source.get(start..).unwrap_or("");
            if rest.starts_with("\r\n") {
                start += 2;
            } else if rest.starts_with('\n') {
                start += 1;
            }
        }
        let content_start = (quote > 0)
            .then(|| source.get(start..start + s.value.len()))
            .flatten()
            .filter(|text| *text == s.value)
            .map(|_| start);
        StringOrigin {
            whole,
            content_start,
        }
    }

    /// The file span of bytes `range` of the string's value.
    pub fn map(&self, range: Range<usize>) -> Range<usize> {
        match self.content_start {
            Some(s) => s + range.start..s + range.end,
            None => self.whole.clone(),
        }
    }

    pub fn whole(&self) -> Range<usize> {
        self.whole.clone()
    }
}

/// Byte offset in `text` of a 1-based (line, column-in-characters) position.
fn offset_of(text: &str, line: u64, column: u64) -> Option<usize> {
    if line == 0 || column == 0 {
        return None;
    }
    let mut offset = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i as u64 + 1 == line {
            let col = usize::try_from(column - 1).ok()?;
            let within = l.char_indices().nth(col).map_or(l.len(), |(b, _)| b);
            return Some(offset + within);
        }
        offset += l.len() + 1;
    }
    None
}

/// An SQL expression string from the pack, with its origin in the file.
struct SqlSource<'a> {
    text: &'a str,
    origin: StringOrigin,
}

impl SqlSource<'_> {
    fn span(&self, span: sqlparser::tokenizer::Span) -> Range<usize> {
        let start = offset_of(self.text, span.start.line, span.start.column);
        let end = offset_of(self.text, span.end.line, span.end.column);
        match (start, end) {
            (Some(s), Some(e)) if e >= s => self.origin.map(s..e),
            (Some(s), _) => self.origin.map(s..s + 1),
            _ => self.origin.whole(),
        }
    }
}

/// What a name in an expression can refer to.
#[derive(Debug, Clone)]
enum FeatureSlot {
    Ready {
        index: usize,
        ty: Type,
    },
    /// The feature had errors; referring to it reports nothing more.
    Failed,
}

struct Scope<'a> {
    features: &'a HashMap<String, FeatureSlot>,
    codelists: &'a BTreeMap<String, usize>,
    columns: &'a BTreeMap<String, Type>,
    allow_score: bool,
}

/// Checks everything; returns the pack only when nothing is wrong.
pub fn build(
    dir: &Path,
    file: &SourceFile,
    raw: RawPack,
    toml_bytes: &[u8],
    diags: &mut Vec<Diagnostic>,
) -> Option<Pack> {
    let mut c = Checker { file, diags };
    let errors_before = c.diags.len();

    let meta = c.meta(&raw);

    // Names share one namespace inside expressions, so clashes are errors.
    let mut taken: BTreeMap<String, &'static str> = BTreeMap::new();
    for b in BUILTINS {
        taken.insert(b.to_string(), "a builtin");
    }
    for (name, _) in PATIENT_COLUMNS {
        taken.insert(name.to_string(), "a patient column");
    }
    taken.insert("patient_id".into(), "the patient identifier");

    let mut columns = Vec::new();
    let mut column_types: BTreeMap<String, Type> = PATIENT_COLUMNS
        .iter()
        .map(|(n, t)| (n.to_string(), *t))
        .collect();
    for (name, ty) in &raw.columns {
        if !c.identifier(name, "column") || !c.unique(&mut taken, name, "a declared column") {
            continue;
        }
        let Some(t) = c.column_type(ty) else { continue };
        column_types.insert(name.value.clone(), t);
        columns.push(ColumnDecl {
            name: name.value.clone(),
            ty: t,
        });
    }

    let (codelists, codelist_files) = c.codelists(dir, &raw);
    let mut codelist_index = BTreeMap::new();
    for (i, cl) in codelists.iter().enumerate() {
        codelist_index.insert(cl.name.clone(), i);
    }

    let features = c.features(&raw, &mut taken, &codelist_index, &column_types);
    let feature_slots: HashMap<String, FeatureSlot> = features
        .slots
        .iter()
        .map(|(n, s)| (n.clone(), s.clone()))
        .collect();
    let scope = Scope {
        features: &feature_slots,
        codelists: &codelist_index,
        columns: &column_types,
        allow_score: false,
    };

    let population = raw.population.as_ref().and_then(|p| c.condition(p, &scope));

    let mut rules = Vec::new();
    let mut rule_ids = BTreeSet::new();
    for r in &raw.rules {
        let id =
            r.id.as_ref()
                .filter(|id| c.unique_id(&mut rule_ids, id, "rule"));
        let condition = r.when.as_ref().and_then(|w| c.condition(w, &scope));
        let points = r.points.as_ref().and_then(|p| c.points(p));
        let reason = r
            .reason
            .as_ref()
            .and_then(|t| c.template(t, &features.names));
        if let (Some(id), Some(condition), Some(points), Some(reason)) =
            (id, condition, points, reason)
        {
            rules.push(Rule {
                id: id.value.clone(),
                condition,
                points,
                reason,
            });
        }
    }

    let tier_scope = Scope {
        allow_score: true,
        ..scope
    };
    let mut tiers = Vec::new();
    let mut tier_ids = BTreeSet::new();
    let mut catch_all: Option<String> = None;
    let mut tier_index: BTreeMap<String, usize> = BTreeMap::new();
    for t in &raw.tiers {
        let id =
            t.id.as_ref()
                .filter(|id| c.unique_id(&mut tier_ids, id, "tier"));
        if let Some(id) = id {
            tier_index.insert(id.value.clone(), tier_index.len());
        }
        let condition = t.when.as_ref().and_then(|w| c.condition(w, &tier_scope));
        if let (Some(earlier), Some(id)) = (&catch_all, id) {
            let span = t.when.as_ref().map_or(id.span.clone(), |w| w.span.clone());
            let d = c
                .file
                .error(
                    ErrorCode::UnreachableTier,
                    Some(span),
                    format!(
                        "tier `{}` can never match: tier `{earlier}` above it matches everyone",
                        id.value
                    ),
                )
                .with_help(Some(
                    "tiers are tried in order and the first match wins; move the catch-all last"
                        .into(),
                ));
            c.diags.push(d);
        }
        if catch_all.is_none() && condition == Some(Expr::Literal(Value::Bool(true))) {
            catch_all = id.map(|i| i.value.clone());
        }
        if let (Some(id), Some(condition), Some(label)) = (id, condition, &t.label) {
            tiers.push(Tier {
                id: id.value.clone(),
                label: label.value.clone(),
                description: t
                    .description
                    .as_ref()
                    .map(|d| d.value.clone())
                    .unwrap_or_default(),
                condition,
            });
        }
    }

    let mut overrides = Vec::new();
    let mut override_ids = BTreeSet::new();
    for o in &raw.overrides {
        let id =
            o.id.as_ref()
                .filter(|id| c.unique_id(&mut override_ids, id, "override"));
        let include = o
            .include
            .as_ref()
            .and_then(|n| c.codelist_ref(n, &codelist_index));
        let exclude = o
            .exclude
            .as_ref()
            .and_then(|n| c.codelist_ref(n, &codelist_index));
        let tier = o.tier.as_ref().and_then(|n| c.tier_ref(n, &tier_index));
        if let (Some(inc), Some(exc), Some(sp)) = (include, exclude, &o.exclude) {
            if inc == exc {
                c.push(
                    ErrorCode::InvalidValue,
                    sp.span.clone(),
                    "an override needs two different codelists (one to include, one to exclude)"
                        .into(),
                );
            }
        }
        if let (Some(id), Some(include), Some(exclude), Some(tier), Some(reason)) =
            (id, include, exclude, tier, &o.reason)
        {
            overrides.push(Override {
                id: id.value.clone(),
                include,
                exclude,
                tier,
                reason: reason.value.clone(),
            });
        }
    }

    let mut exclusions = Vec::new();
    let mut exclusion_ids = BTreeSet::new();
    for e in &raw.exclusions {
        let id =
            e.id.as_ref()
                .filter(|id| c.unique_id(&mut exclusion_ids, id, "exclusion"));
        let condition = e.when.as_ref().and_then(|w| c.condition(w, &scope));
        if let (Some(id), Some(condition), Some(reason)) = (id, condition, &e.reason) {
            exclusions.push(Exclusion {
                id: id.value.clone(),
                condition,
                reason: reason.value.clone(),
            });
        }
    }

    let list = c.list(&raw, &features.names, &column_types);

    if c.diags.len() > errors_before {
        return None;
    }
    let content_hash = content_hash(toml_bytes, &codelist_files);
    Some(Pack {
        meta: meta?,
        content_hash,
        columns,
        codelists,
        features: features.checked,
        population: population?,
        rules,
        tiers,
        overrides,
        exclusions,
        list,
    })
}

/// SHA-256 over `pack.toml` then each codelist file (name, NUL, bytes) in
/// codelist name order.
fn content_hash(toml_bytes: &[u8], codelist_files: &[(String, Vec<u8>)]) -> String {
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

/// The checked features plus what later sections need to refer to them.
struct CheckedFeatures {
    checked: Vec<Feature>,
    slots: Vec<(String, FeatureSlot)>,
    /// Name -> index, only for features that checked cleanly.
    names: BTreeMap<String, usize>,
}

struct Checker<'a> {
    file: &'a SourceFile,
    diags: &'a mut Vec<Diagnostic>,
}

impl Checker<'_> {
    fn push(&mut self, code: ErrorCode, span: Range<usize>, message: String) {
        self.diags.push(self.file.error(code, Some(span), message));
    }

    fn push_help(
        &mut self,
        code: ErrorCode,
        span: Range<usize>,
        message: String,
        help: Option<String>,
    ) {
        self.diags
            .push(self.file.error(code, Some(span), message).with_help(help));
    }

    fn meta(&mut self, raw: &RawPack) -> Option<PackMeta> {
        let m = &raw.meta;
        if let Some(id) = &m.id {
            let ok = !id.value.is_empty()
                && id
                    .value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                self.push(
                    ErrorCode::InvalidValue,
                    id.span.clone(),
                    "a pack id may only use lower-case letters, digits and `-`".into(),
                );
            }
        }
        Some(PackMeta {
            id: m.id.as_ref()?.value.clone(),
            title: m.title.as_ref()?.value.clone(),
            version: m.version.as_ref()?.value.clone(),
            description: m
                .description
                .as_ref()
                .map(|d| d.value.clone())
                .unwrap_or_default(),
            references: m.references.iter().map(|r| r.value.clone()).collect(),
        })
    }

    /// Names used inside SQL must be plain identifiers.
    fn identifier(&mut self, name: &Sp<String>, what: &str) -> bool {
        let mut chars = name.value.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            self.push(
                ErrorCode::InvalidValue,
                name.span.clone(),
                format!("{what} name `{}` must start with a letter and use only letters, digits and `_`", name.value),
            );
        }
        ok
    }

    fn unique(
        &mut self,
        taken: &mut BTreeMap<String, &'static str>,
        name: &Sp<String>,
        what: &'static str,
    ) -> bool {
        if let Some(existing) = taken.get(name.value.as_str()) {
            self.push(
                ErrorCode::DuplicateName,
                name.span.clone(),
                format!("`{}` is already {existing}; names of features and columns must differ from each other and from builtins", name.value),
            );
            return false;
        }
        taken.insert(name.value.clone(), what);
        true
    }

    fn unique_id(&mut self, seen: &mut BTreeSet<String>, id: &Sp<String>, what: &str) -> bool {
        if id.value.trim().is_empty() {
            self.push(
                ErrorCode::InvalidValue,
                id.span.clone(),
                format!("a {what} id cannot be empty"),
            );
            return false;
        }
        if !seen.insert(id.value.clone()) {
            self.push(
                ErrorCode::DuplicateName,
                id.span.clone(),
                format!("{what} id `{}` is used twice", id.value),
            );
            return false;
        }
        true
    }

    fn column_type(&mut self, ty: &Sp<String>) -> Option<Type> {
        const NAMES: [&str; 5] = ["bool", "int", "float", "string", "date"];
        Some(match ty.value.as_str() {
            "bool" => Type::Bool,
            "int" => Type::Int,
            "float" => Type::Float,
            "string" => Type::Str,
            "date" => Type::Date,
            other => {
                self.push_help(
                    ErrorCode::InvalidValue,
                    ty.span.clone(),
                    format!("unknown column type `{other}`; expected one of bool, int, float, string, date"),
                    did_you_mean(other, NAMES),
                );
                return None;
            }
        })
    }

    fn codelists(&mut self, dir: &Path, raw: &RawPack) -> (Vec<Codelist>, Vec<(String, Vec<u8>)>) {
        let mut out = Vec::new();
        let mut files = Vec::new();
        for rc in &raw.codelists {
            // Codelists have their own namespace: they only appear as
            // function arguments, so `has(lives_alone)` can define the
            // feature `lives_alone`.
            let unique = self.identifier(&rc.name, "codelist");
            let table = match &rc.table {
                None => Some("events".to_string()),
                Some(t) => {
                    let valid = !t.value.is_empty()
                        && t.value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if !valid || t.value == "patients" || t.value == "contacts" {
                        self.push(
                            ErrorCode::InvalidValue,
                            t.span.clone(),
                            format!("`{}` is not an event table name (e.g. `events`, `admissions`, `medications`)", t.value),
                        );
                        None
                    } else {
                        Some(t.value.clone())
                    }
                }
            };
            let match_mode = match &rc.match_mode {
                None => Some(MatchMode::Exact),
                Some(m) => match m.value.as_str() {
                    "exact" => Some(MatchMode::Exact),
                    "prefix" => Some(MatchMode::Prefix),
                    other => {
                        self.push_help(
                            ErrorCode::InvalidValue,
                            m.span.clone(),
                            format!("unknown match mode `{other}`; expected `exact` or `prefix`"),
                            did_you_mean(other, ["exact", "prefix"]),
                        );
                        None
                    }
                },
            };
            let Some(file) = &rc.file else { continue };
            let Some((codes, terms, bytes)) = self.read_codelist(dir, file) else {
                continue;
            };
            if let (true, Some(table), Some(match_mode)) = (unique, table, match_mode) {
                files.push((rc.name.value.clone(), bytes));
                out.push(Codelist {
                    name: rc.name.value.clone(),
                    table,
                    match_mode,
                    codes,
                    terms,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        files.sort_by(|a, b| a.0.cmp(&b.0));
        (out, files)
    }

    #[allow(clippy::type_complexity)]
    fn read_codelist(
        &mut self,
        dir: &Path,
        file: &Sp<String>,
    ) -> Option<(Vec<String>, BTreeMap<String, String>, Vec<u8>)> {
        let rel = Path::new(&file.value);
        let inside = !file.value.is_empty()
            && rel
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            self.push(
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
                self.push_help(
                    ErrorCode::CodelistFile,
                    file.span.clone(),
                    format!("codelist file `{}` {reason}", path.display()),
                    did_you_mean(&wanted, siblings.iter().map(String::as_str)),
                );
                return None;
            }
        };
        let Ok(text) = String::from_utf8(bytes.clone()) else {
            self.push(
                ErrorCode::CodelistFormat,
                file.span.clone(),
                format!("codelist file `{}` is not UTF-8 text", path.display()),
            );
            return None;
        };
        let csv = SourceFile::new(path.display().to_string(), text);
        let before = self.diags.len();
        let (codes, terms) = parse_codelist_csv(&csv, self.diags);
        if codes.is_empty() && self.diags.len() == before {
            self.diags
                .push(csv.error(ErrorCode::EmptyCodelist, None, "the codelist has no codes"));
        }
        Some((codes, terms, bytes))
    }

    fn features(
        &mut self,
        raw: &RawPack,
        taken: &mut BTreeMap<String, &'static str>,
        codelists: &BTreeMap<String, usize>,
        columns: &BTreeMap<String, Type>,
    ) -> CheckedFeatures {
        // Parse every feature first: dependencies are found from the tokens,
        // then features are checked in dependency order so each one's type
        // is known before anything refers to it.
        struct Parsed<'r> {
            name: &'r Sp<String>,
            expr_src: &'r Sp<String>,
            description: Option<String>,
            ast: Option<sql::Expr>,
            deps: Vec<usize>,
        }
        let mut parsed: Vec<Parsed> = Vec::new();
        for f in &raw.features {
            if !self.identifier(&f.name, "feature") || !self.unique(taken, &f.name, "a feature") {
                continue;
            }
            let Some(expr_src) = &f.expr else { continue };
            let ast = self.parse_sql(expr_src);
            parsed.push(Parsed {
                name: &f.name,
                expr_src,
                description: f.description.clone(),
                ast,
                deps: Vec::new(),
            });
        }
        let by_name: HashMap<String, usize> = parsed
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.value.clone(), i))
            .collect();
        for p in parsed.iter_mut() {
            let mut names = Vec::new();
            if let Some(ast) = &p.ast {
                value_names(ast, &mut names);
            }
            let mut deps: Vec<usize> = names
                .iter()
                .filter_map(|w| by_name.get(w).copied())
                .collect();
            deps.sort_unstable();
            deps.dedup();
            p.deps = deps;
        }

        // Kahn's algorithm, always taking the earliest-written ready feature
        // so the order is stable.
        let n = parsed.len();
        let mut indegree: Vec<usize> = parsed.iter().map(|p| p.deps.len()).collect();
        let mut order = Vec::new();
        let mut done = vec![false; n];
        while let Some(next) = (0..n).find(|&i| !done[i] && indegree[i] == 0) {
            done[next] = true;
            order.push(next);
            for (j, p) in parsed.iter().enumerate() {
                if !done[j] && p.deps.contains(&next) {
                    indegree[j] -= 1;
                }
            }
        }

        // Whatever is left is in a cycle or depends on one.
        let mut reported = vec![false; n];
        for start in 0..n {
            if done[start] || reported[start] {
                continue;
            }
            if let Some(cycle) = find_cycle(
                start,
                &parsed.iter().map(|p| p.deps.clone()).collect::<Vec<_>>(),
                &done,
            ) {
                if cycle.iter().any(|&i| reported[i]) {
                    continue;
                }
                for &i in &cycle {
                    reported[i] = true;
                }
                let first = cycle[0];
                let mut path: Vec<String> = cycle
                    .iter()
                    .map(|&i| parsed[i].name.value.clone())
                    .collect();
                path.push(parsed[first].name.value.clone());
                let message = if cycle.len() == 1 {
                    format!("feature `{}` refers to itself", parsed[first].name.value)
                } else {
                    format!(
                        "features refer to each other in a cycle: {}",
                        path.join(" -> ")
                    )
                };
                self.push(
                    ErrorCode::FeatureCycle,
                    parsed[first].expr_src.span.clone(),
                    message,
                );
            }
        }

        let mut slots: HashMap<String, FeatureSlot> = HashMap::new();
        for p in &parsed {
            slots.insert(p.name.value.clone(), FeatureSlot::Failed);
        }
        let mut checked = Vec::new();
        let mut names = BTreeMap::new();
        for &i in &order {
            let p = &parsed[i];
            let expr = p.ast.as_ref().and_then(|ast| {
                let scope = Scope {
                    features: &slots,
                    codelists,
                    columns,
                    allow_score: false,
                };
                let src = SqlSource {
                    text: &p.expr_src.value,
                    origin: StringOrigin::of(&self.file.text, p.expr_src),
                };
                Converter {
                    file: self.file,
                    diags: self.diags,
                    src: &src,
                    scope: &scope,
                }
                .convert(ast)
            });
            if let Some(expr) = expr {
                let index = checked.len();
                let ty = expr.ty();
                slots.insert(p.name.value.clone(), FeatureSlot::Ready { index, ty });
                names.insert(p.name.value.clone(), index);
                checked.push(Feature {
                    name: p.name.value.clone(),
                    expr,
                    ty,
                    description: p.description.clone(),
                });
            }
        }
        let slots = parsed
            .iter()
            .map(|p| {
                (
                    p.name.value.clone(),
                    slots
                        .get(&p.name.value)
                        .cloned()
                        .unwrap_or(FeatureSlot::Failed),
                )
            })
            .collect();
        CheckedFeatures {
            checked,
            slots,
            names,
        }
    }

    fn parse_sql(&mut self, s: &Sp<String>) -> Option<sql::Expr> {
        let origin = StringOrigin::of(&self.file.text, s);
        let src = SqlSource {
            text: &s.value,
            origin,
        };
        let dialect = GenericDialect {};
        let fail = |this: &mut Self, message: String| {
            let (msg, span) = split_parser_location(&message, &src);
            this.push(
                ErrorCode::SqlSyntax,
                span,
                format!("cannot parse the expression: {msg}"),
            );
            None
        };
        if s.value.trim().is_empty() {
            self.push(
                ErrorCode::SqlSyntax,
                s.span.clone(),
                "the expression is empty".into(),
            );
            return None;
        }
        let mut parser = match Parser::new(&dialect).try_with_sql(&s.value) {
            Ok(p) => p,
            Err(e) => return fail(self, error_text(&e)),
        };
        let expr = match parser.parse_expr() {
            Ok(e) => e,
            Err(e) => return fail(self, error_text(&e)),
        };
        let next = parser.peek_token();
        if next.token != Token::EOF {
            let span = src.span(next.span);
            self.push(
                ErrorCode::SqlSyntax,
                span,
                format!(
                    "cannot parse the expression: unexpected `{}` after a complete expression",
                    next.token
                ),
            );
            return None;
        }
        Some(expr)
    }

    fn condition(&mut self, s: &Sp<String>, scope: &Scope<'_>) -> Option<Expr> {
        let ast = self.parse_sql(s)?;
        let src = SqlSource {
            text: &s.value,
            origin: StringOrigin::of(&self.file.text, s),
        };
        let mut conv = Converter {
            file: self.file,
            diags: self.diags,
            src: &src,
            scope,
        };
        let expr = conv.convert(&ast)?;
        match expr.ty() {
            Type::Bool | Type::Null => Some(expr),
            other => {
                let span = conv.span_of(&ast);
                self.push_help(
                    ErrorCode::NotBoolean,
                    span,
                    format!(
                        "a condition must be true or false, but this is {}",
                        article(other)
                    ),
                    Some("compare it with something, e.g. `ltc_count >= 2`".into()),
                );
                None
            }
        }
    }

    fn points(&mut self, p: &Sp<String>) -> Option<Decimal> {
        let parsed =
            Decimal::from_str_exact(&p.value).or_else(|_| Decimal::from_scientific(&p.value));
        match parsed {
            Ok(d) => Some(d),
            Err(_) => {
                self.push(
                    ErrorCode::InvalidValue,
                    p.span.clone(),
                    format!("points `{}` is not a decimal number", p.value),
                );
                None
            }
        }
    }

    /// Parses `text {feature} text`; `{{` and `}}` stand for braces.
    fn template(&mut self, t: &Sp<String>, features: &BTreeMap<String, usize>) -> Option<Template> {
        let origin = StringOrigin::of(&self.file.text, t);
        let s = &t.value;
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut ok = true;
        let mut i = 0;
        while i < s.len() {
            let rest = &s[i..];
            if rest.starts_with("{{") || rest.starts_with("}}") {
                text.push_str(&rest[..1]);
                i += 2;
            } else if rest.starts_with('{') {
                let Some(close) = rest.find('}') else {
                    self.push(
                        ErrorCode::UnknownPlaceholder,
                        origin.map(i..s.len()),
                        "unclosed `{` in the reason; write `{{` for a literal brace".into(),
                    );
                    return None;
                };
                let name = rest[1..close].trim();
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text)));
                }
                match features.get(name) {
                    Some(&index) => segments.push(Segment::Feature(index)),
                    None => {
                        ok = false;
                        self.push_help(
                            ErrorCode::UnknownPlaceholder,
                            origin.map(i..i + close + 1),
                            format!("reason placeholder `{{{name}}}` names no feature"),
                            did_you_mean(name, features.keys().map(String::as_str)),
                        );
                    }
                }
                i += close + 1;
            } else {
                let c = rest.chars().next().unwrap_or(' ');
                text.push(c);
                i += c.len_utf8();
            }
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        ok.then_some(Template { segments })
    }

    fn codelist_ref(
        &mut self,
        name: &Sp<String>,
        codelists: &BTreeMap<String, usize>,
    ) -> Option<usize> {
        if let Some(&i) = codelists.get(&name.value) {
            return Some(i);
        }
        self.push_help(
            ErrorCode::UnknownCodelist,
            name.span.clone(),
            format!("unknown codelist `{}`", name.value),
            did_you_mean(&name.value, codelists.keys().map(String::as_str)),
        );
        None
    }

    fn tier_ref(&mut self, name: &Sp<String>, tiers: &BTreeMap<String, usize>) -> Option<usize> {
        if let Some(&i) = tiers.get(&name.value) {
            return Some(i);
        }
        self.push_help(
            ErrorCode::UnknownTier,
            name.span.clone(),
            format!("unknown tier `{}`", name.value),
            did_you_mean(&name.value, tiers.keys().map(String::as_str)),
        );
        None
    }

    fn list(
        &mut self,
        raw: &RawPack,
        features: &BTreeMap<String, usize>,
        columns: &BTreeMap<String, Type>,
    ) -> ListSpec {
        let mut list = ListSpec::default();
        for key in &raw.order_by {
            let mut parts = key.value.split_whitespace();
            let name = parts.next().unwrap_or("");
            let direction = parts.next().map(str::to_ascii_lowercase);
            let descending = match direction.as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(_) => {
                    self.push(
                        ErrorCode::InvalidValue,
                        key.span.clone(),
                        format!("`{}`: write a name then `asc` or `desc`", key.value),
                    );
                    continue;
                }
            };
            if parts.next().is_some() {
                self.push(
                    ErrorCode::InvalidValue,
                    key.span.clone(),
                    format!("`{}`: write a name then `asc` or `desc`", key.value),
                );
                continue;
            }
            let by = match name {
                "score" => OrderBy::Score,
                "age" => OrderBy::Age,
                n => match (features.get(n), columns.get(n)) {
                    (Some(&i), _) => OrderBy::Feature(i),
                    (None, Some(_)) => OrderBy::Column(n.to_string()),
                    (None, None) => {
                        let candidates = ["score", "age"]
                            .into_iter()
                            .chain(features.keys().map(String::as_str))
                            .chain(columns.keys().map(String::as_str));
                        self.push_help(
                            ErrorCode::UnknownName,
                            key.span.clone(),
                            format!("cannot order by `{n}`: not score, age, a feature or a patient column"),
                            did_you_mean(n, candidates),
                        );
                        continue;
                    }
                },
            };
            list.order_by.push(OrderKey { by, descending });
        }
        for d in &raw.display {
            match features.get(&d.value) {
                Some(&i) => list.display.push(i),
                None => self.push_help(
                    ErrorCode::UnknownName,
                    d.span.clone(),
                    format!("unknown feature `{}` in `display`", d.value),
                    did_you_mean(&d.value, features.keys().map(String::as_str)),
                ),
            }
        }
        list
    }
}

fn article(t: Type) -> String {
    match t {
        Type::Int => "an int".into(),
        other => format!("a {other}"),
    }
}

/// A path through `deps` from `start` back to itself, among unfinished
/// features.
fn find_cycle(start: usize, deps: &[Vec<usize>], done: &[bool]) -> Option<Vec<usize>> {
    fn dfs(
        node: usize,
        deps: &[Vec<usize>],
        done: &[bool],
        stack: &mut Vec<usize>,
        seen: &mut Vec<bool>,
    ) -> Option<Vec<usize>> {
        if let Some(pos) = stack.iter().position(|&n| n == node) {
            return Some(stack[pos..].to_vec());
        }
        if seen[node] {
            return None;
        }
        seen[node] = true;
        stack.push(node);
        for &d in &deps[node] {
            if !done[d] {
                if let Some(c) = dfs(d, deps, done, stack, seen) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        None
    }
    let mut seen = vec![false; deps.len()];
    let cycle = dfs(start, deps, done, &mut Vec::new(), &mut seen)?;
    // Start the report at the earliest-written feature in the cycle.
    let min_pos = cycle
        .iter()
        .enumerate()
        .min_by_key(|(_, &n)| n)
        .map_or(0, |(p, _)| p);
    let mut rotated = cycle[min_pos..].to_vec();
    rotated.extend_from_slice(&cycle[..min_pos]);
    Some(rotated)
}

/// Names used as values in an expression (not codelist arguments), for
/// working out which features depend on which.
fn value_names(e: &sql::Expr, out: &mut Vec<String>) {
    use sql::Expr as S;
    match e {
        S::Identifier(i) => out.push(i.value.clone()),
        S::Nested(x) | S::UnaryOp { expr: x, .. } | S::IsNull(x) | S::IsNotNull(x) => {
            value_names(x, out)
        }
        S::BinaryOp { left, right, .. } => {
            value_names(left, out);
            value_names(right, out);
        }
        S::In {
            expr,
            target: sql::InTarget::List(list),
            ..
        } => {
            value_names(expr, out);
            list.iter().for_each(|x| value_names(x, out));
        }
        S::Between {
            expr, low, high, ..
        } => {
            for x in [expr, low, high] {
                value_names(x, out);
            }
        }
        S::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.iter().for_each(|x| value_names(x, out));
            for w in conditions {
                value_names(&w.condition, out);
                value_names(&w.result, out);
            }
            else_result.iter().for_each(|x| value_names(x, out));
        }
        S::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            let takes_codelists = AggregateFunc::from_name(&name).is_some() || name == "latest_of";
            if let FunctionArguments::List(list) = &f.args {
                for a in &list.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                        if !takes_codelists {
                            value_names(x, out);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn error_text(e: &sqlparser::parser::ParserError) -> String {
    use sqlparser::parser::ParserError as P;
    match e {
        P::TokenizerError(s) | P::ParserError(s) => s.clone(),
        P::RecursionLimitExceeded => "the expression is nested too deeply".into(),
    }
}

/// Splits sqlparser's " at Line: L, Column: C" suffix off a message and
/// turns it into a file span.
fn split_parser_location(message: &str, src: &SqlSource<'_>) -> (String, Range<usize>) {
    if let Some(pos) = message.rfind(" at Line: ") {
        let tail = &message[pos + " at Line: ".len()..];
        let mut it = tail.split(", Column: ");
        let line = it.next().and_then(|l| l.trim().parse::<u64>().ok());
        let col = it.next().and_then(|c| c.trim().parse::<u64>().ok());
        if let (Some(line), Some(col)) = (line, col) {
            let msg = message[..pos].to_string();
            let start = offset_of(src.text, line, col);
            let span = match start {
                Some(s) => {
                    let width = src.text[s..].chars().next().map_or(0, char::len_utf8);
                    src.origin.map(s..s + width)
                }
                None => {
                    let end = src.text.len();
                    src.origin.map(end..end)
                }
            };
            return (msg, span);
        }
    }
    if message.contains("EOF") {
        let end = src.text.len();
        return (message.to_string(), src.origin.map(end..end));
    }
    (message.to_string(), src.origin.whole())
}

/// Converts one sqlparser expression into a checked [`Expr`], reporting
/// problems; `None` means an error has been reported.
struct Converter<'s, 'd> {
    file: &'s SourceFile,
    diags: &'d mut Vec<Diagnostic>,
    src: &'s SqlSource<'s>,
    scope: &'s Scope<'s>,
}

impl Converter<'_, '_> {
    fn span_of(&self, e: &sql::Expr) -> Range<usize> {
        let s = e.span();
        if s.start.line == 0 {
            self.src.origin.whole()
        } else {
            self.src.span(s)
        }
    }

    fn err(
        &mut self,
        code: ErrorCode,
        span: Range<usize>,
        message: String,
        help: Option<String>,
    ) -> Option<Expr> {
        self.diags
            .push(self.file.error(code, Some(span), message).with_help(help));
        None
    }

    fn convert(&mut self, e: &sql::Expr) -> Option<Expr> {
        use sql::Expr as S;
        match e {
            S::Nested(inner) => self.convert(inner),
            S::Identifier(ident) => self.name(ident),
            S::Value(v) => self.literal(&v.value, self.src.span(v.span)),
            S::TypedString(ts) => {
                let span = self.span_of(e);
                let text = match &ts.value.value {
                    sql::Value::SingleQuotedString(s) => Some(s.clone()),
                    _ => None,
                };
                match (&ts.data_type, text) {
                    (sql::DataType::Date, Some(t)) => match NaiveDate::parse_from_str(&t, "%Y-%m-%d") {
                        Ok(d) => Some(Expr::Literal(Value::Date(d))),
                        Err(_) => self.err(ErrorCode::InvalidValue, span, format!("`{t}` is not a date; write DATE 'YYYY-MM-DD'"), None),
                    },
                    _ => self.err(ErrorCode::Unsupported, span, "only DATE 'YYYY-MM-DD' typed literals are supported".into(), None),
                }
            }
            S::UnaryOp { op, expr } => {
                let span = self.span_of(e);
                let inner = self.convert(expr)?;
                match op {
                    UnaryOperator::Not => {
                        self.expect_bool(&inner, self.span_of(expr), "NOT")?;
                        Some(Expr::Not(Box::new(inner)))
                    }
                    UnaryOperator::Minus => match inner {
                        Expr::Literal(Value::Int(i)) => Some(Expr::Literal(Value::Int(i.checked_neg()?))),
                        Expr::Literal(Value::Float(f)) => Some(Expr::Literal(Value::Float(-f))),
                        other if other.ty().is_numeric() || other.ty() == Type::Null => Some(Expr::Neg(Box::new(other))),
                        other => self.err(ErrorCode::TypeMismatch, span, format!("cannot negate {}", article(other.ty())), None),
                    },
                    UnaryOperator::Plus if inner.ty().is_numeric() => Some(inner),
                    _ => self.err(ErrorCode::Unsupported, span, format!("operator `{op}` is not supported"), None),
                }
            }
            S::BinaryOp { left, op, right } => self.binary(e, left, op, right),
            S::IsNull(inner) | S::IsNotNull(inner) => {
                let expr = self.convert(inner)?;
                Some(Expr::IsNull { expr: Box::new(expr), negated: matches!(e, S::IsNotNull(_)) })
            }
            S::In { expr, target: sql::InTarget::List(list), negated, .. } => {
                let target = self.convert(expr);
                let mut items = Vec::new();
                let mut ok = target.is_some();
                for item in list {
                    match (self.convert(item), &target) {
                        (Some(mut v), Some(t)) => {
                            if self.comparable(t, self.span_of(expr), &mut v, item, "IN").is_none() {
                                ok = false;
                            }
                            items.push(v);
                        }
                        _ => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                Some(Expr::InList { expr: Box::new(target?), list: items, negated: *negated })
            }
            S::In { .. } => self.err(ErrorCode::Unsupported, self.span_of(e), "IN takes a list of values, e.g. `sex IN ('F', 'M')`".into(), None),
            S::Between { expr, negated, low, high } => {
                let target = self.convert(expr);
                let lo = self.convert(low);
                let hi = self.convert(high);
                let (target, mut lo, mut hi) = (target?, lo?, hi?);
                let tspan = self.span_of(expr);
                self.comparable(&target, tspan.clone(), &mut lo, low, "BETWEEN")?;
                self.comparable(&target, tspan, &mut hi, high, "BETWEEN")?;
                Some(Expr::Between { expr: Box::new(target), low: Box::new(lo), high: Box::new(hi), negated: *negated })
            }
            S::Case { operand, conditions, else_result, .. } => self.case(e, operand.as_deref(), conditions, else_result.as_deref()),
            S::Function(f) => self.function(e, f),
            S::Array(_) => self.err(
                ErrorCode::Unsupported,
                self.span_of(e),
                "a list in brackets is only allowed as the first argument of count_distinct_codelists".into(),
                None,
            ),
            _ => self.err(ErrorCode::Unsupported, self.span_of(e), "this SQL construct is not supported in pack expressions".into(), Some("see rules/FORMAT.md for the supported syntax".into())),
        }
    }

    fn name(&mut self, ident: &sql::Ident) -> Option<Expr> {
        let name = ident.value.as_str();
        let span = self.src.span(ident.span);
        match name {
            "age" => return Some(Expr::Age),
            "as_of" => return Some(Expr::AsOf),
            "registered" => return Some(Expr::Registered),
            "alive" => return Some(Expr::Alive),
            "score" => {
                if self.scope.allow_score {
                    return Some(Expr::Score);
                }
                return self.err(
                    ErrorCode::ScoreOutsideTier,
                    span,
                    "`score` can only be used in tier conditions".into(),
                    Some(
                        "the score is the sum of the rules' points, known only after every rule"
                            .into(),
                    ),
                );
            }
            _ => {}
        }
        match self.scope.features.get(name) {
            Some(FeatureSlot::Ready { index, ty }) => {
                return Some(Expr::Feature {
                    index: *index,
                    ty: *ty,
                })
            }
            Some(FeatureSlot::Failed) => return None,
            None => {}
        }
        if let Some(ty) = self.scope.columns.get(name) {
            return Some(Expr::Column {
                name: name.to_string(),
                ty: *ty,
            });
        }
        if self.scope.codelists.contains_key(name) {
            return self.err(
                ErrorCode::UnknownName,
                span,
                format!("`{name}` is a codelist, not a value"),
                Some(format!(
                    "use has({name}) to test for a code, or count({name}) to count them"
                )),
            );
        }
        let mut candidates: Vec<&str> = BUILTINS.to_vec();
        candidates.extend(self.scope.features.keys().map(String::as_str));
        candidates.extend(self.scope.columns.keys().map(String::as_str));
        let help = if ident.quote_style == Some('"') {
            Some(format!(
                "double quotes name a feature or column; write the text '{name}' in single quotes"
            ))
        } else {
            did_you_mean(name, candidates)
        };
        self.err(
            ErrorCode::UnknownName,
            span,
            format!("unknown name `{name}`: not a feature, column or builtin"),
            help,
        )
    }

    fn literal(&mut self, v: &sql::Value, span: Range<usize>) -> Option<Expr> {
        Some(Expr::Literal(match v {
            sql::Value::Number(text, _) => match text.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => match text.parse::<f64>() {
                    Ok(f) if f.is_finite() => Value::Float(f),
                    _ => {
                        return self.err(
                            ErrorCode::InvalidValue,
                            span,
                            format!("`{text}` is not a usable number"),
                            None,
                        )
                    }
                },
            },
            sql::Value::SingleQuotedString(s) => Value::Str(s.clone()),
            sql::Value::Boolean(b) => Value::Bool(*b),
            sql::Value::Null => Value::Null,
            sql::Value::DoubleQuotedString(s) => {
                return self.err(
                    ErrorCode::SqlSyntax,
                    span,
                    format!("\"{s}\" is in double quotes; write strings in single quotes"),
                    None,
                )
            }
            _ => {
                return self.err(
                    ErrorCode::Unsupported,
                    span,
                    "this kind of literal is not supported".into(),
                    None,
                )
            }
        }))
    }

    fn expect_bool(&mut self, e: &Expr, span: Range<usize>, what: &str) -> Option<()> {
        match e.ty() {
            Type::Bool | Type::Null => Some(()),
            other => {
                self.err(
                    ErrorCode::NotBoolean,
                    span,
                    format!(
                        "{what} needs true/false operands, but this is {}",
                        article(other)
                    ),
                    None,
                );
                None
            }
        }
    }

    fn binary(
        &mut self,
        whole: &sql::Expr,
        left: &sql::Expr,
        op: &sql::BinaryOperator,
        right: &sql::Expr,
    ) -> Option<Expr> {
        use sql::BinaryOperator as B;
        let op = match op {
            B::Plus => BinaryOp::Add,
            B::Minus => BinaryOp::Sub,
            B::Multiply => BinaryOp::Mul,
            B::Divide => BinaryOp::Div,
            B::Eq => BinaryOp::Eq,
            B::NotEq => BinaryOp::NotEq,
            B::Lt => BinaryOp::Lt,
            B::LtEq => BinaryOp::LtEq,
            B::Gt => BinaryOp::Gt,
            B::GtEq => BinaryOp::GtEq,
            B::And => BinaryOp::And,
            B::Or => BinaryOp::Or,
            other => {
                return self.err(
                    ErrorCode::Unsupported,
                    self.span_of(whole),
                    format!("operator `{other}` is not supported"),
                    None,
                )
            }
        };
        let l = self.convert(left);
        let r = self.convert(right);
        let (l, mut r) = (l?, r?);
        let (lspan, rspan) = (self.span_of(left), self.span_of(right));
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let a = self.expect_bool(&l, lspan, op.symbol());
                let b = self.expect_bool(&r, rspan, op.symbol());
                a?;
                b?;
            }
            _ if op.is_arithmetic() => {
                let ok = |t: Type| t.is_numeric() || t == Type::Null;
                if !ok(l.ty()) || !ok(r.ty()) {
                    return self.err(
                        ErrorCode::TypeMismatch,
                        self.span_of(whole),
                        format!(
                            "cannot apply `{}` to {} and {}",
                            op.symbol(),
                            article(l.ty()),
                            article(r.ty())
                        ),
                        (l.ty() == Type::Date || r.ty() == Type::Date)
                            .then(|| "use days_since(date) for intervals".to_string()),
                    );
                }
                // Literals next to the decimal score stay exact.
                let mut l = l;
                if l.ty() == Type::Decimal {
                    r = exact_literal(right).unwrap_or(r);
                } else if r.ty() == Type::Decimal {
                    l = exact_literal(left).unwrap_or(l);
                }
                let _ = arithmetic_type(op, l.ty(), r.ty());
                return Some(Expr::Binary {
                    op,
                    left: Box::new(l),
                    right: Box::new(r),
                });
            }
            _ => {
                let mut l = l;
                if l.ty() == Type::Decimal || r.ty() != Type::Decimal {
                    self.comparable(&l, lspan, &mut r, right, op.symbol())?;
                } else {
                    self.comparable(&r, rspan, &mut l, left, op.symbol())?;
                }
                if l.ty() == Type::Bool && !matches!(op, BinaryOp::Eq | BinaryOp::NotEq) {
                    return self.err(
                        ErrorCode::TypeMismatch,
                        self.span_of(whole),
                        format!(
                            "true/false values cannot be compared with `{}`",
                            op.symbol()
                        ),
                        None,
                    );
                }
                return Some(Expr::Binary {
                    op,
                    left: Box::new(l),
                    right: Box::new(r),
                });
            }
        }
        Some(Expr::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
        })
    }

    /// Checks that `other` can be compared with `anchor`, coercing numeric
    /// literals to exact decimals next to the score, and checking strings
    /// compared with `latest_of` name one of its codelists.
    fn comparable(
        &mut self,
        anchor: &Expr,
        anchor_span: Range<usize>,
        other: &mut Expr,
        other_ast: &sql::Expr,
        what: &str,
    ) -> Option<()> {
        let (a, b) = (anchor.ty(), other.ty());
        if a == Type::Decimal && b.is_numeric() {
            if let Some(exact) = exact_literal(other_ast) {
                *other = exact;
            }
        }
        let fits =
            a == Type::Null || b == Type::Null || a == b || (a.is_numeric() && b.is_numeric());
        if !fits {
            let help = if a == Type::Date && b == Type::Str || a == Type::Str && b == Type::Date {
                Some("write a date as DATE '2020-03-23'".to_string())
            } else {
                None
            };
            let span = union(&anchor_span, &self.span_of(other_ast));
            self.err(
                ErrorCode::TypeMismatch,
                span,
                format!(
                    "cannot compare {} with {} (`{what}`)",
                    article(a),
                    article(b)
                ),
                help,
            );
            return None;
        }
        let latest = |e: &Expr| match e {
            Expr::LatestOf { a, b } => Some((*a, *b)),
            _ => None,
        };
        if let (Some((ca, cb)), Expr::Literal(Value::Str(s))) = (latest(anchor), &*other) {
            let names: Vec<&str> = [ca, cb]
                .iter()
                .filter_map(|i| {
                    self.scope
                        .codelists
                        .iter()
                        .find(|(_, v)| **v == *i)
                        .map(|(k, _)| k.as_str())
                })
                .collect();
            if !names.contains(&s.as_str()) {
                let span = self.span_of(other_ast);
                self.err(
                    ErrorCode::LatestOfLiteral,
                    span,
                    format!(
                        "latest_of(...) gives `{}` or `{}`, never '{s}'",
                        names.first().unwrap_or(&""),
                        names.get(1).unwrap_or(&"")
                    ),
                    did_you_mean(s, names.iter().copied()),
                );
                return None;
            }
        }
        Some(())
    }

    fn case(
        &mut self,
        whole: &sql::Expr,
        operand: Option<&sql::Expr>,
        conditions: &[sql::CaseWhen],
        else_result: Option<&sql::Expr>,
    ) -> Option<Expr> {
        let op = operand.map(|o| self.convert(o));
        let mut ok = !matches!(op, Some(None));
        let op = op.flatten();
        let mut branches = Vec::new();
        let mut ty = Type::Null;
        for w in conditions {
            let cond = self.convert(&w.condition);
            let result = self.convert(&w.result);
            let (Some(mut cond), Some(result)) = (cond, result) else {
                ok = false;
                continue;
            };
            match (&op, operand) {
                (Some(o), Some(o_ast)) => {
                    if self
                        .comparable(o, self.span_of(o_ast), &mut cond, &w.condition, "CASE")
                        .is_none()
                    {
                        ok = false;
                    }
                }
                _ => {
                    if self
                        .expect_bool(&cond, self.span_of(&w.condition), "WHEN")
                        .is_none()
                    {
                        ok = false;
                    }
                }
            }
            match unify(ty, result.ty()) {
                Some(t) => ty = t,
                None => {
                    ok = false;
                    self.err(
                        ErrorCode::TypeMismatch,
                        self.span_of(&w.result),
                        format!(
                            "CASE results must have one type: {} and {}",
                            article(ty),
                            article(result.ty())
                        ),
                        None,
                    );
                }
            }
            branches.push((cond, result));
        }
        let else_expr = match else_result {
            Some(e_ast) => match self.convert(e_ast) {
                Some(e) => {
                    match unify(ty, e.ty()) {
                        Some(t) => ty = t,
                        None => {
                            ok = false;
                            self.err(
                                ErrorCode::TypeMismatch,
                                self.span_of(e_ast),
                                format!(
                                    "CASE results must have one type: {} and {}",
                                    article(ty),
                                    article(e.ty())
                                ),
                                None,
                            );
                        }
                    }
                    Some(Box::new(e))
                }
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        if !ok {
            return None;
        }
        let _ = whole;
        Some(Expr::Case {
            operand: op.map(Box::new),
            branches,
            else_result: else_expr,
            ty,
        })
    }

    fn function(&mut self, whole: &sql::Expr, f: &sql::Function) -> Option<Expr> {
        let span = self.span_of(whole);
        let name = f.name.to_string().to_ascii_lowercase();
        let args: Vec<&sql::Expr> = match &f.args {
            FunctionArguments::List(list)
                if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
            {
                let mut out = Vec::new();
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => out.push(e),
                        _ => {
                            return self.err(
                                ErrorCode::BadArguments,
                                span,
                                format!("{name}(...) takes plain arguments"),
                                None,
                            )
                        }
                    }
                }
                out
            }
            FunctionArguments::None => Vec::new(),
            _ => {
                return self.err(
                    ErrorCode::Unsupported,
                    span,
                    format!("this form of {name}(...) is not supported"),
                    None,
                )
            }
        };
        if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
            return self.err(
                ErrorCode::Unsupported,
                span,
                "FILTER, OVER and WITHIN GROUP are not supported".into(),
                None,
            );
        }
        if let Some(func) = AggregateFunc::from_name(&name) {
            return self.aggregate(span, func, &args);
        }
        match name.as_str() {
            "latest_of" => {
                if args.len() != 2 {
                    return self.err(
                        ErrorCode::BadArguments,
                        span,
                        "latest_of(a, b) takes two codelists".into(),
                        None,
                    );
                }
                let a = self.codelist_arg(args[0]);
                let b = self.codelist_arg(args[1]);
                Some(Expr::LatestOf { a: a?, b: b? })
            }
            "days_since" => {
                if args.len() != 1 {
                    return self.err(
                        ErrorCode::BadArguments,
                        span,
                        "days_since(date) takes one date".into(),
                        None,
                    );
                }
                let d = self.convert(args[0])?;
                if !matches!(d.ty(), Type::Date | Type::Null) {
                    return self.err(
                        ErrorCode::TypeMismatch,
                        self.span_of(args[0]),
                        format!("days_since needs a date, but this is {}", article(d.ty())),
                        None,
                    );
                }
                Some(Expr::DaysSince(Box::new(d)))
            }
            "contacted" => {
                if args.len() != 1 {
                    return self.err(
                        ErrorCode::BadArguments,
                        span,
                        "contacted(window) takes one window, e.g. contacted('14 days')".into(),
                        None,
                    );
                }
                Some(Expr::Contacted(self.window_arg(args[0])?))
            }
            "last_contact" => {
                if !args.is_empty() {
                    return self.err(
                        ErrorCode::BadArguments,
                        span,
                        "last_contact() takes no arguments".into(),
                        None,
                    );
                }
                Some(Expr::LastContact)
            }
            "coalesce" => {
                if args.is_empty() {
                    return self.err(
                        ErrorCode::BadArguments,
                        span,
                        "COALESCE needs at least one argument".into(),
                        None,
                    );
                }
                let mut out = Vec::new();
                let mut ty = Type::Null;
                let mut ok = true;
                for a in &args {
                    let Some(e) = self.convert(a) else {
                        ok = false;
                        continue;
                    };
                    match unify(ty, e.ty()) {
                        Some(t) => ty = t,
                        None => {
                            ok = false;
                            self.err(
                                ErrorCode::TypeMismatch,
                                self.span_of(a),
                                format!(
                                    "COALESCE arguments must have one type: {} and {}",
                                    article(ty),
                                    article(e.ty())
                                ),
                                None,
                            );
                        }
                    }
                    out.push(e);
                }
                ok.then_some(Expr::Coalesce { args: out, ty })
            }
            _ => {
                let fname_span = f.name.0.first().map_or(span.clone(), |p| match p {
                    sql::ObjectNamePart::Identifier(i) => self.src.span(i.span),
                    _ => span.clone(),
                });
                self.err(
                    ErrorCode::UnknownFunction,
                    fname_span,
                    format!("unknown function `{name}`"),
                    did_you_mean(&name, FUNCTIONS.iter().copied().filter(|n| *n != "date")),
                )
            }
        }
    }

    fn aggregate(
        &mut self,
        span: Range<usize>,
        func: AggregateFunc,
        args: &[&sql::Expr],
    ) -> Option<Expr> {
        let fname = func.name();
        if func == AggregateFunc::CountDistinctCodelists {
            // Either `([a, b, c][, window])` or `(a, b, c[, window])`.
            let (lists, window): (Vec<&sql::Expr>, Option<&sql::Expr>) = match args.first() {
                Some(sql::Expr::Array(arr)) => {
                    if args.len() > 2 {
                        return self.err(ErrorCode::BadArguments, span, format!("{fname}([a, b, ...][, window]) takes a list and an optional window"), None);
                    }
                    (arr.elem.iter().collect(), args.get(1).copied())
                }
                _ => match args.split_last() {
                    Some((last, rest)) if is_string_literal(last) => (rest.to_vec(), Some(*last)),
                    _ => (args.to_vec(), None),
                },
            };
            if lists.is_empty() {
                return self.err(
                    ErrorCode::BadArguments,
                    span,
                    format!("{fname} needs at least one codelist"),
                    None,
                );
            }
            let mut codelists = Vec::new();
            let mut ok = true;
            for l in lists {
                match self.codelist_arg(l) {
                    Some(i) => codelists.push(i),
                    None => ok = false,
                }
            }
            let window = match window {
                Some(w) => self.window_arg(w),
                None => Some(Window::Ever),
            };
            if !ok {
                return None;
            }
            return Some(Expr::Aggregate {
                func,
                codelists,
                window: window?,
            });
        }
        if args.is_empty() || args.len() > 2 {
            return self.err(
                ErrorCode::BadArguments,
                span,
                format!("{fname}(codelist[, window]) takes a codelist and an optional window"),
                None,
            );
        }
        let cl = self.codelist_arg(args[0]);
        let window = match args.get(1) {
            Some(w) => self.window_arg(w),
            None => Some(Window::Ever),
        };
        Some(Expr::Aggregate {
            func,
            codelists: vec![cl?],
            window: window?,
        })
    }

    fn codelist_arg(&mut self, e: &sql::Expr) -> Option<usize> {
        let span = self.span_of(e);
        let sql::Expr::Identifier(ident) = e else {
            return self
                .err(
                    ErrorCode::BadArguments,
                    span,
                    "expected a codelist name here".into(),
                    None,
                )
                .map(|_| 0);
        };
        if let Some(&i) = self.scope.codelists.get(&ident.value) {
            return Some(i);
        }
        let help = did_you_mean(
            &ident.value,
            self.scope.codelists.keys().map(String::as_str),
        );
        self.err(
            ErrorCode::UnknownCodelist,
            span,
            format!("unknown codelist `{}`", ident.value),
            help,
        )
        .map(|_| 0)
    }

    fn window_arg(&mut self, e: &sql::Expr) -> Option<Window> {
        let span = self.span_of(e);
        let help = Some(
            "write a window as '12 months', '5 years', '28 days', '2 weeks' or 'ever'".to_string(),
        );
        match e {
            sql::Expr::Value(v) => match &v.value {
                sql::Value::SingleQuotedString(s) => match Window::parse(s) {
                    Some(w) => Some(w),
                    None => self
                        .err(
                            ErrorCode::BadWindow,
                            span,
                            format!("cannot read the window '{s}'"),
                            help,
                        )
                        .map(|_| Window::Ever),
                },
                _ => self
                    .err(
                        ErrorCode::BadWindow,
                        span,
                        "a window must be a quoted string".into(),
                        help,
                    )
                    .map(|_| Window::Ever),
            },
            sql::Expr::Identifier(i) if i.value.eq_ignore_ascii_case("ever") => Some(Window::Ever),
            _ => self
                .err(
                    ErrorCode::BadWindow,
                    span,
                    "a window must be a quoted string".into(),
                    help,
                )
                .map(|_| Window::Ever),
        }
    }
}

fn is_string_literal(e: &sql::Expr) -> bool {
    matches!(e, sql::Expr::Value(v) if matches!(v.value, sql::Value::SingleQuotedString(_)))
}

/// A numeric literal as an exact decimal (`7.5` is exactly 7.5, not the
/// nearest binary float).
fn exact_literal(e: &sql::Expr) -> Option<Expr> {
    match e {
        sql::Expr::Nested(inner) => exact_literal(inner),
        sql::Expr::Value(v) => match &v.value {
            sql::Value::Number(text, _) => Decimal::from_str(text)
                .or_else(|_| Decimal::from_scientific(text))
                .ok()
                .map(|d| Expr::Literal(Value::Decimal(d))),
            _ => None,
        },
        sql::Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match exact_literal(expr)? {
            Expr::Literal(Value::Decimal(d)) => Some(Expr::Literal(Value::Decimal(-d))),
            _ => None,
        },
        _ => None,
    }
}

fn union(a: &Range<usize>, b: &Range<usize>) -> Range<usize> {
    a.start.min(b.start)..a.end.max(b.end)
}
