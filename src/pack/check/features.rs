//! Features, checked in dependency order: every feature is parsed first,
//! the names it uses tell which features it depends on, and features are
//! then checked so that each one's type is known before anything refers to
//! it. Features that refer to each other in a cycle are reported once per
//! cycle, starting from the earliest written.

use std::collections::{BTreeMap, HashMap};

use sqlparser::ast::{self as sql, FunctionArg, FunctionArgExpr, FunctionArguments};

use super::convert::{expression, FeatureSlot, Scope};
use super::sections::{identifier, unique};
use super::source::parse_sql;
use super::Sink;
use crate::pack::diag::ErrorCode;
use crate::pack::expr::{AggregateFunc, Type};
use crate::pack::model::Feature;
use crate::pack::raw::{RawFeature, Sp};

/// The checked features plus what later sections need to refer to them.
pub(super) struct CheckedFeatures {
    pub(super) checked: Vec<Feature>,
    /// Every well-named feature, in the order written, ready or failed.
    pub(super) slots: Vec<(String, FeatureSlot)>,
    /// Name -> index, only for features that checked cleanly.
    pub(super) names: BTreeMap<String, usize>,
}

/// A feature as written, parsed, with the features it depends on.
struct Parsed<'r> {
    name: &'r Sp<String>,
    expr_src: &'r Sp<String>,
    description: Option<String>,
    ast: Option<sql::Expr>,
    deps: Vec<usize>,
}

/// The codelists expressions may name: index by name, (categorised,
/// weighted) and prefix matching by index.
pub(super) type Codelists<'a> = (&'a BTreeMap<String, usize>, &'a [(bool, bool)], &'a [bool]);

pub(super) fn check(
    sink: &mut Sink<'_>,
    features: &[RawFeature],
    taken: &mut BTreeMap<String, &'static str>,
    (codelists, codelist_kinds, codelist_prefix): Codelists<'_>,
    columns: &BTreeMap<String, Type>,
    imported: Vec<Feature>,
) -> CheckedFeatures {
    let mut parsed: Vec<Parsed> = Vec::new();
    for f in features {
        if !identifier(sink, &f.name, "feature") || !unique(sink, taken, &f.name, "a feature") {
            continue;
        }
        let Some(expr_src) = &f.expr else { continue };
        let ast = parse_sql(sink, expr_src);
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

    let deps: Vec<Vec<usize>> = parsed.iter().map(|p| p.deps.clone()).collect();
    let (order, done) = dependency_order(&deps);
    for cycle in cycles(&deps, &done) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| parsed[i].name.value.as_str())
            .collect();
        sink.error(
            ErrorCode::FeatureCycle,
            parsed[cycle[0]].expr_src.span.clone(),
            cycle_message(&names),
        );
    }

    let mut slots: HashMap<String, FeatureSlot> = parsed
        .iter()
        .map(|p| (p.name.value.clone(), FeatureSlot::Failed))
        .collect();
    // Used packs' features come first, already checked (`efi.deficits`).
    let mut names = BTreeMap::new();
    let mut imported_slots = Vec::new();
    for (index, f) in imported.iter().enumerate() {
        let slot = FeatureSlot::Ready { index, ty: f.ty };
        slots.insert(f.name.clone(), slot.clone());
        imported_slots.push((f.name.clone(), slot));
        names.insert(f.name.clone(), index);
    }
    let mut checked = imported;
    for &i in &order {
        let p = &parsed[i];
        let expr = p.ast.as_ref().and_then(|ast| {
            let scope = Scope {
                features: &slots,
                codelists,
                codelist_kinds,
                codelist_prefix,
                columns,
                allow_score: false,
            };
            expression(sink, p.expr_src, ast, &scope)
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
    let slots = imported_slots
        .into_iter()
        .chain(parsed.iter().map(|p| {
            let slot = slots.get(&p.name.value).cloned();
            (p.name.value.clone(), slot.unwrap_or(FeatureSlot::Failed))
        }))
        .collect();
    CheckedFeatures {
        checked,
        slots,
        names,
    }
}

/// The order to check features in (Kahn's algorithm, always taking the
/// earliest-written ready feature so the order is stable), and which
/// features that order reaches; the others are in a cycle or depend on one.
fn dependency_order(deps: &[Vec<usize>]) -> (Vec<usize>, Vec<bool>) {
    let n = deps.len();
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut order = Vec::new();
    let mut done = vec![false; n];
    while let Some(next) = (0..n).find(|&i| !done[i] && indegree[i] == 0) {
        done[next] = true;
        order.push(next);
        for (j, d) in deps.iter().enumerate() {
            if !done[j] && d.contains(&next) {
                indegree[j] -= 1;
            }
        }
    }
    (order, done)
}

/// The cycles among features not `done`, each once, each starting at its
/// earliest-written feature. A feature that only depends on a cycle is not
/// reported itself.
fn cycles(deps: &[Vec<usize>], done: &[bool]) -> Vec<Vec<usize>> {
    let mut reported = vec![false; deps.len()];
    let mut out = Vec::new();
    for start in 0..deps.len() {
        if done[start] || reported[start] {
            continue;
        }
        let Some(cycle) = find_cycle(start, deps, done) else {
            continue;
        };
        if cycle.iter().any(|&i| reported[i]) {
            continue;
        }
        for &i in &cycle {
            reported[i] = true;
        }
        out.push(cycle);
    }
    out
}

fn cycle_message(names: &[&str]) -> String {
    match names {
        [one] => format!("feature `{one}` refers to itself"),
        _ => {
            let mut path = names.to_vec();
            path.extend(names.first());
            format!(
                "features refer to each other in a cycle: {}",
                path.join(" -> ")
            )
        }
    }
}

/// A path through `deps` from `start` back to itself, among unfinished
/// features, starting at the earliest-written feature on it.
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
        S::CompoundIdentifier(parts) => out.push(super::convert::qualified(parts).value),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::check::testing::{pack, MINIMAL};
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    #[test]
    fn features_are_checked_after_what_they_refer_to() {
        // 0 uses 2, 1 uses nothing, 2 uses 1, 3 uses 0 and 1.
        let deps = vec![vec![2], vec![], vec![1], vec![0, 1]];
        assert_eq!(dependency_order(&deps), (vec![1, 2, 0, 3], vec![true; 4]));
        // Independent features keep the order they were written in.
        assert_eq!(dependency_order(&[vec![], vec![], vec![]]).0, [0, 1, 2]);
    }

    #[test]
    fn a_cycle_is_found_exactly_and_reported_once() {
        // 0 -> 1 -> 2 -> 1 is a cycle of 1 and 2; 0 and 3 only depend on it;
        // 4 refers to itself.
        let deps = vec![vec![1], vec![2], vec![1], vec![0], vec![4]];
        let (order, done) = dependency_order(&deps);
        assert!(order.is_empty());
        assert_eq!(find_cycle(3, &deps, &done), Some(vec![1, 2]));
        assert_eq!(find_cycle(2, &deps, &done), Some(vec![1, 2]));
        assert_eq!(cycles(&deps, &done), [vec![1, 2], vec![4]]);
        // A cycle found part way round starts at its earliest feature.
        let ring = vec![vec![], vec![3], vec![1], vec![2]];
        let (_, done) = dependency_order(&ring);
        assert_eq!(find_cycle(3, &ring, &done), Some(vec![1, 3, 2]));
    }

    #[test]
    fn cycle_messages_name_the_path() {
        assert_eq!(cycle_message(&["a"]), "feature `a` refers to itself");
        assert_eq!(
            cycle_message(&["a", "c", "b"]),
            "features refer to each other in a cycle: a -> c -> b -> a"
        );
    }

    #[test]
    fn dependencies_are_values_not_codelist_arguments() {
        let sql = "has(x) AND y > COALESCE(z, 1) AND latest_of(a, b) = 'a' \
                   AND count_distinct_codelists([c, d]) IN (w, 2) \
                   AND CASE v WHEN 1 THEN u END BETWEEN t AND -s";
        let ast = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .expect("parses");
        let mut names = Vec::new();
        value_names(&ast, &mut names);
        assert_eq!(names, ["y", "z", "w", "v", "u", "t", "s"]);
    }

    #[test]
    fn cycles_in_a_pack_are_reported_at_the_first_feature() {
        let err = pack(
            &format!(
                "{MINIMAL}[features]\nlate = \"early + 1\"\nearly = \"later\"\n\
                 later = \"late\"\nself_ref = \"self_ref\"\nok = \"age\"\n"
            ),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err,
            [
                "E210 `\"early + 1\"`: features refer to each other in a cycle: \
                 late -> early -> later -> late",
                "E210 `\"self_ref\"`: feature `self_ref` refers to itself"
            ]
        );
    }
}
