//! The sections of `pack.toml` turned into the model: `[pack]` metadata,
//! `[columns]`, `[[rules]]` (points and reason templates), `[[tiers]]`,
//! `[[overrides]]`, `[[exclusions]]` and `[list]`, plus the names they
//! declare: features and columns share one namespace with the builtins;
//! rule, tier, override and exclusion ids are each unique in their section.
//! Conditions are checked by [`convert::condition`](super::convert::condition).

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::convert::{condition, patient_columns, Scope, BUILTINS};
use super::Sink;
use crate::pack::diag::{did_you_mean, ErrorCode};
use crate::pack::expr::{Expr, Type, Value};
use crate::pack::model::{
    ColumnDecl, Exclusion, ListSpec, OrderBy, OrderKey, Override, PackMeta, Rule, Segment,
    Template, Tier,
};
use crate::pack::raw::{RawExclusion, RawMeta, RawOverride, RawRule, RawTier, Sp};

/// Names taken before the pack declares any, with what they are: names
/// share one namespace inside expressions, so clashes are errors.
pub(super) fn builtin_names() -> BTreeMap<String, &'static str> {
    let mut taken = BTreeMap::new();
    for b in BUILTINS {
        taken.insert(b.to_string(), "a builtin");
    }
    for (name, _) in patient_columns() {
        taken.insert(name.to_string(), "a patient column");
    }
    taken.insert(crate::contract::PATIENT_ID.into(), "the patient identifier");
    taken
}

/// Names used inside SQL must be plain identifiers.
pub(super) fn identifier(sink: &mut Sink<'_>, name: &Sp<String>, what: &str) -> bool {
    let mut chars = name.value.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        sink.error(
            ErrorCode::InvalidValue,
            name.span.clone(),
            format!(
                "{what} name `{}` must start with a letter and use only letters, digits and `_`",
                name.value
            ),
        );
    }
    ok
}

/// Takes `name` for `what` unless something else already has it.
pub(super) fn unique(
    sink: &mut Sink<'_>,
    taken: &mut BTreeMap<String, &'static str>,
    name: &Sp<String>,
    what: &'static str,
) -> bool {
    if let Some(existing) = taken.get(name.value.as_str()) {
        sink.error(
            ErrorCode::DuplicateName,
            name.span.clone(),
            format!(
                "`{}` is already {existing}; names of features and columns must differ from \
                 each other and from builtins",
                name.value
            ),
        );
        return false;
    }
    taken.insert(name.value.clone(), what);
    true
}

fn unique_id(
    sink: &mut Sink<'_>,
    seen: &mut BTreeSet<String>,
    id: &Sp<String>,
    what: &str,
) -> bool {
    if id.value.trim().is_empty() {
        sink.error(
            ErrorCode::InvalidValue,
            id.span.clone(),
            format!("a {what} id cannot be empty"),
        );
        return false;
    }
    if !seen.insert(id.value.clone()) {
        sink.error(
            ErrorCode::DuplicateName,
            id.span.clone(),
            format!("{what} id `{}` is used twice", id.value),
        );
        return false;
    }
    true
}

pub(super) fn meta(sink: &mut Sink<'_>, m: &RawMeta) -> Option<PackMeta> {
    if let Some(id) = &m.id {
        let ok = !id.value.is_empty()
            && id
                .value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            sink.error(
                ErrorCode::InvalidValue,
                id.span.clone(),
                "a pack id may only use lower-case letters, digits and `-`",
            );
        }
    }
    let imd = match &m.imd {
        None => None,
        Some(v) => match crate::reference::deprivation::ImdVersion::parse(&v.value) {
            Some(i) => Some(i),
            None => {
                sink.error(
                    ErrorCode::InvalidValue,
                    v.span.clone(),
                    "imd must be \"2019\" (IMD 2019) or \"2025\" (IoD2025)",
                );
                None
            }
        },
    };
    Some(PackMeta {
        imd,
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

/// `[columns]`: extra patient columns and their types. Returns the
/// declarations and the type of every column expressions may use.
pub(super) fn columns(
    sink: &mut Sink<'_>,
    declared: &[(Sp<String>, Sp<String>)],
    taken: &mut BTreeMap<String, &'static str>,
) -> (Vec<ColumnDecl>, BTreeMap<String, Type>) {
    let mut columns = Vec::new();
    let mut types: BTreeMap<String, Type> =
        patient_columns().map(|(n, t)| (n.to_string(), t)).collect();
    for (name, ty) in declared {
        if !identifier(sink, name, "column") || !unique(sink, taken, name, "a declared column") {
            continue;
        }
        let Some(t) = column_type(sink, ty) else {
            continue;
        };
        types.insert(name.value.clone(), t);
        columns.push(ColumnDecl {
            name: name.value.clone(),
            ty: t,
        });
    }
    (columns, types)
}

fn column_type(sink: &mut Sink<'_>, ty: &Sp<String>) -> Option<Type> {
    const NAMES: [&str; 5] = ["bool", "int", "float", "string", "date"];
    Some(match ty.value.as_str() {
        "bool" => Type::Bool,
        "int" => Type::Int,
        "float" => Type::Float,
        "string" => Type::Str,
        "date" => Type::Date,
        other => {
            sink.error(
                ErrorCode::InvalidValue,
                ty.span.clone(),
                format!(
                    "unknown column type `{other}`; expected one of bool, int, float, string, date"
                ),
            )
            .help(did_you_mean(other, NAMES));
            return None;
        }
    })
}

pub(super) fn rules(
    sink: &mut Sink<'_>,
    raw: &[RawRule],
    scope: &Scope<'_>,
    features: &BTreeMap<String, usize>,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut ids = BTreeSet::new();
    for r in raw {
        let id =
            r.id.as_ref()
                .filter(|id| unique_id(sink, &mut ids, id, "rule"));
        let condition = r.when.as_ref().and_then(|w| condition(sink, w, scope));
        let points = r.points.as_ref().and_then(|p| points(sink, p));
        let reason = r.reason.as_ref().and_then(|t| template(sink, t, features));
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
    rules
}

/// Points as written, exactly: `1.34` or `2e1`.
fn points(sink: &mut Sink<'_>, p: &Sp<String>) -> Option<Decimal> {
    let parsed = Decimal::from_str_exact(&p.value).or_else(|_| Decimal::from_scientific(&p.value));
    let bad = |sink: &mut Sink<'_>, message: String| {
        sink.error(ErrorCode::InvalidValue, p.span.clone(), message);
        None
    };
    match parsed {
        // The engine keeps scores as exact decimals with 10 places; more
        // would be rounded, so it is refused here rather than at run time.
        Ok(d) if d.normalize().scale() > MAX_POINTS_DECIMALS => bad(
            sink,
            format!(
                "points `{}` have more than {MAX_POINTS_DECIMALS} decimal places",
                p.value
            ),
        ),
        Ok(d) if d.abs() > Decimal::from(MAX_POINTS) => bad(
            sink,
            format!(
                "points `{}` are beyond ±{MAX_POINTS} (scores must stay exact)",
                p.value
            ),
        ),
        Ok(d) => Some(d),
        Err(_) => bad(
            sink,
            format!("points `{}` is not a decimal number", p.value),
        ),
    }
}

/// The most decimal places points may have (the engine's score scale).
pub const MAX_POINTS_DECIMALS: u32 = 10;
/// The largest magnitude of one rule's points.
pub const MAX_POINTS: i64 = 1_000_000_000_000;

/// Parses `text {feature} text`; `{{` and `}}` stand for braces.
fn template(
    sink: &mut Sink<'_>,
    t: &Sp<String>,
    features: &BTreeMap<String, usize>,
) -> Option<Template> {
    let origin = super::source::StringOrigin::of(sink.text(), t);
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
                sink.error(
                    ErrorCode::UnknownPlaceholder,
                    origin.map(i..s.len()),
                    "unclosed `{` in the reason; write `{{` for a literal brace",
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
                    sink.error(
                        ErrorCode::UnknownPlaceholder,
                        origin.map(i..i + close + 1),
                        format!("reason placeholder `{{{name}}}` names no feature"),
                    )
                    .help(did_you_mean(name, features.keys().map(String::as_str)));
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

/// `[[tiers]]`, tried in order (first match wins), with the index of each
/// well-formed tier id for overrides to refer to. A tier after one whose
/// condition is literally `true` can never match.
pub(super) fn tiers(
    sink: &mut Sink<'_>,
    raw: &[RawTier],
    scope: &Scope<'_>,
) -> (Vec<Tier>, BTreeMap<String, usize>) {
    let tier_scope = Scope {
        allow_score: true,
        ..*scope
    };
    let mut tiers = Vec::new();
    let mut ids = BTreeSet::new();
    let mut catch_all: Option<String> = None;
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for t in raw {
        let id =
            t.id.as_ref()
                .filter(|id| unique_id(sink, &mut ids, id, "tier"));
        if let Some(id) = id {
            index.insert(id.value.clone(), index.len());
        }
        let condition = t
            .when
            .as_ref()
            .and_then(|w| condition(sink, w, &tier_scope));
        if let (Some(earlier), Some(id)) = (&catch_all, id) {
            let span = t.when.as_ref().map_or(id.span.clone(), |w| w.span.clone());
            sink.error(
                ErrorCode::UnreachableTier,
                span,
                format!(
                    "tier `{}` can never match: tier `{earlier}` above it matches everyone",
                    id.value
                ),
            )
            .help(
                "tiers are tried in order and the first match wins; move the catch-all last"
                    .to_string(),
            );
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
    (tiers, index)
}

/// `[[overrides]]`: clinician codes that force a person in (to a tier) or
/// out of the list.
pub(super) fn overrides(
    sink: &mut Sink<'_>,
    raw: &[RawOverride],
    codelists: &BTreeMap<String, usize>,
    tiers: &BTreeMap<String, usize>,
) -> Vec<Override> {
    let mut overrides = Vec::new();
    let mut ids = BTreeSet::new();
    for o in raw {
        let id =
            o.id.as_ref()
                .filter(|id| unique_id(sink, &mut ids, id, "override"));
        let include = o
            .include
            .as_ref()
            .and_then(|n| codelist_ref(sink, n, codelists));
        let exclude = o
            .exclude
            .as_ref()
            .and_then(|n| codelist_ref(sink, n, codelists));
        let tier = o.tier.as_ref().and_then(|n| tier_ref(sink, n, tiers));
        if let (Some(inc), Some(exc), Some(sp)) = (include, exclude, &o.exclude) {
            if inc == exc {
                sink.error(
                    ErrorCode::InvalidValue,
                    sp.span.clone(),
                    "an override needs two different codelists (one to include, one to exclude)",
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
    overrides
}

fn codelist_ref(
    sink: &mut Sink<'_>,
    name: &Sp<String>,
    codelists: &BTreeMap<String, usize>,
) -> Option<usize> {
    if let Some(&i) = codelists.get(&name.value) {
        return Some(i);
    }
    sink.error(
        ErrorCode::UnknownCodelist,
        name.span.clone(),
        format!("unknown codelist `{}`", name.value),
    )
    .help(did_you_mean(
        &name.value,
        codelists.keys().map(String::as_str),
    ));
    None
}

fn tier_ref(
    sink: &mut Sink<'_>,
    name: &Sp<String>,
    tiers: &BTreeMap<String, usize>,
) -> Option<usize> {
    if let Some(&i) = tiers.get(&name.value) {
        return Some(i);
    }
    sink.error(
        ErrorCode::UnknownTier,
        name.span.clone(),
        format!("unknown tier `{}`", name.value),
    )
    .help(did_you_mean(&name.value, tiers.keys().map(String::as_str)));
    None
}

pub(super) fn exclusions(
    sink: &mut Sink<'_>,
    raw: &[RawExclusion],
    scope: &Scope<'_>,
) -> Vec<Exclusion> {
    let mut exclusions = Vec::new();
    let mut ids = BTreeSet::new();
    for e in raw {
        let id =
            e.id.as_ref()
                .filter(|id| unique_id(sink, &mut ids, id, "exclusion"));
        let condition = e.when.as_ref().and_then(|w| condition(sink, w, scope));
        if let (Some(id), Some(condition), Some(reason)) = (id, condition, &e.reason) {
            exclusions.push(Exclusion {
                id: id.value.clone(),
                condition,
                reason: reason.value.clone(),
            });
        }
    }
    exclusions
}

/// `[list]`: `order_by` keys (`name [asc|desc]`) and `display` features.
pub(super) fn list(
    sink: &mut Sink<'_>,
    order_by: &[Sp<String>],
    display: &[Sp<String>],
    features: &BTreeMap<String, usize>,
    columns: &BTreeMap<String, Type>,
) -> ListSpec {
    let mut list = ListSpec::default();
    for key in order_by {
        let mut parts = key.value.split_whitespace();
        let name = parts.next().unwrap_or("");
        let descending = match parts.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => {
                sink.error(
                    ErrorCode::InvalidValue,
                    key.span.clone(),
                    format!("`{}`: write a name then `asc` or `desc`", key.value),
                );
                continue;
            }
        };
        if parts.next().is_some() {
            sink.error(
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
                    sink.error(
                        ErrorCode::UnknownName,
                        key.span.clone(),
                        format!(
                            "cannot order by `{n}`: not score, age, a feature or a patient column"
                        ),
                    )
                    .help(did_you_mean(n, candidates));
                    continue;
                }
            },
        };
        list.order_by.push(OrderKey { by, descending });
    }
    for d in display {
        match features.get(&d.value) {
            Some(&i) => list.display.push(i),
            None => sink
                .error(
                    ErrorCode::UnknownName,
                    d.span.clone(),
                    format!("unknown feature `{}` in `display`", d.value),
                )
                .help(did_you_mean(&d.value, features.keys().map(String::as_str))),
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::check::testing::{briefs, file_with, pack, MINIMAL};

    fn reason(text: &str) -> (Option<Template>, Vec<String>) {
        let (file, s) = file_with(&format!("reason = {text}\n"), "reason");
        let features: BTreeMap<String, usize> =
            [("ltc_count".to_string(), 0), ("age_band".to_string(), 1)].into();
        let mut diags = Vec::new();
        let t = template(&mut Sink::new(&file, &mut diags), &s, &features);
        (t, briefs(&diags))
    }

    #[test]
    fn reason_templates_mix_text_and_features() {
        let (t, errors) = reason("\"{ltc_count} conditions, {{not}} {age_band}}}\"");
        assert!(errors.is_empty());
        assert_eq!(
            t.expect("checks").segments,
            [
                Segment::Feature(0),
                Segment::Text(" conditions, {not} ".into()),
                Segment::Feature(1),
                Segment::Text("}".into())
            ]
        );
        let (t, errors) = reason("\"{ltc_cuont} and {nothing}\"");
        assert_eq!(t, None);
        assert_eq!(
            errors,
            [
                "E301 `{ltc_cuont}`: reason placeholder `{ltc_cuont}` names no feature \
                 (help: did you mean `ltc_count`?)",
                "E301 `{nothing}`: reason placeholder `{nothing}` names no feature"
            ]
        );
        let (t, errors) = reason("'''Aged {age_band'''");
        assert_eq!(t, None);
        assert_eq!(
            errors,
            ["E301 `{age_band`: unclosed `{` in the reason; write `{{` for a literal brace"]
        );
    }

    #[test]
    fn points_are_exact_decimals() {
        let read = |text: &str| {
            let (file, s) = file_with(&format!("points = \"{text}\"\n"), "points");
            let mut diags = Vec::new();
            let p = points(&mut Sink::new(&file, &mut diags), &s);
            (p.map(|d| d.to_string()), briefs(&diags))
        };
        assert_eq!(read("1.34"), (Some("1.34".into()), vec![]));
        assert_eq!(read("2e1"), (Some("20".into()), vec![]));
        assert_eq!(read("-0.5"), (Some("-0.5".into()), vec![]));
        assert_eq!(read("0.0000000001"), (Some("0.0000000001".into()), vec![]));
        // Trailing zeros do not count as places.
        assert_eq!(
            read("1.500000000000"),
            (Some("1.500000000000".into()), vec![])
        );
        assert_eq!(
            read("0.12345678901"),
            (
                None,
                vec!["E005 `\"0.12345678901\"`: points `0.12345678901` have more than 10 decimal places".to_string()]
            )
        );
        assert_eq!(
            read("2e12"),
            (
                None,
                vec!["E005 `\"2e12\"`: points `2e12` are beyond ±1000000000000 (scores must stay exact)".to_string()]
            )
        );
        assert_eq!(
            read("lots"),
            (
                None,
                vec!["E005 `\"lots\"`: points `lots` is not a decimal number".to_string()]
            )
        );
    }

    #[test]
    fn names_and_ids_must_be_well_formed_and_unique() {
        let err = pack(
            "[pack]\nid = \"My Pack\"\ntitle = \"T\"\nversion = \"1\"\n\n\
             [population]\nwhen = \"true\"\n\n\
             [columns]\ncarer = \"boolean\"\nsex = \"string\"\n\"2x\" = \"int\"\n\n\
             [features]\nage = \"1\"\n\n\
             [[rules]]\nid = \"r\"\nwhen = \"true\"\npoints = 1\nreason = \"a\"\n\n\
             [[rules]]\nid = \"r\"\nwhen = \"true\"\npoints = 1\nreason = \"b\"\n\n\
             [[exclusions]]\nid = \" \"\nwhen = \"true\"\nreason = \"c\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err,
            [
                "E005 `\"My Pack\"`: a pack id may only use lower-case letters, digits and `-`",
                "E005 `\"boolean\"`: unknown column type `boolean`; expected one of bool, int, \
                 float, string, date (help: did you mean `bool`?)",
                "E006 `sex`: `sex` is already a patient column; names of features and columns \
                 must differ from each other and from builtins",
                "E005 `\"2x\"`: column name `2x` must start with a letter and use only letters, \
                 digits and `_`",
                "E006 `age`: `age` is already a builtin; names of features and columns must \
                 differ from each other and from builtins",
                "E006 `\"r\"`: rule id `r` is used twice",
                "E005 `\" \"`: a exclusion id cannot be empty"
            ]
        );
    }

    #[test]
    fn tiers_overrides_and_the_list() {
        let text = format!(
            "{MINIMAL}[codelists.shield]\nfile = \"codelists/shield.csv\"\n\n\
             [features]\nltc = \"1\"\n\n\
             [[tiers]]\nid = \"everyone\"\nlabel = \"E\"\nwhen = \"true\"\n\n\
             [[tiers]]\nid = \"high\"\nlabel = \"H\"\nwhen = \"score >= 8\"\n\n\
             [[overrides]]\nid = \"o\"\ninclude = \"shield\"\nexclude = \"shield\"\n\
             tier = \"hihg\"\nreason = \"R\"\n\n\
             [list]\norder_by = [\"score desc\", \"ltc\", \"sex asc\", \"scor\", \"age up\"]\n\
             display = [\"ltc\", \"ltcc\"]\n"
        );
        let err = pack(&text, &[("shield.csv", "code\n1\n")]).unwrap_err();
        assert_eq!(
            err,
            [
                "E302 `\"score >= 8\"`: tier `high` can never match: tier `everyone` above it \
                 matches everyone (help: tiers are tried in order and the first match wins; \
                 move the catch-all last)",
                "E303 `\"hihg\"`: unknown tier `hihg` (help: did you mean `high`?)",
                "E005 `\"shield\"`: an override needs two different codelists (one to include, \
                 one to exclude)",
                "E203 `\"scor\"`: cannot order by `scor`: not score, age, a feature or a patient \
                 column (help: did you mean `score`?)",
                "E005 `\"age up\"`: `age up`: write a name then `asc` or `desc`",
                "E203 `\"ltcc\"`: unknown feature `ltcc` in `display` (help: did you mean `ltc`?)"
            ]
        );
    }

    #[test]
    fn list_keys_resolve_to_the_model() {
        let (file, _) = file_with("k = \"x\"\n", "k");
        let keys: Vec<Sp<String>> = ["score desc", "ltc", "sex ASC"]
            .iter()
            .map(|k| Sp {
                value: k.to_string(),
                span: 4..7,
            })
            .collect();
        let features: BTreeMap<String, usize> = [("ltc".to_string(), 3)].into();
        let columns: BTreeMap<String, Type> = [("sex".to_string(), Type::Str)].into();
        let mut diags = Vec::new();
        let spec = list(
            &mut Sink::new(&file, &mut diags),
            &keys,
            &keys[1..2],
            &features,
            &columns,
        );
        assert!(diags.is_empty());
        assert_eq!(
            spec.order_by,
            [
                OrderKey {
                    by: OrderBy::Score,
                    descending: true
                },
                OrderKey {
                    by: OrderBy::Feature(3),
                    descending: false
                },
                OrderKey {
                    by: OrderBy::Column("sex".into()),
                    descending: false
                }
            ]
        );
        assert_eq!(spec.display, [3]);
    }
}
