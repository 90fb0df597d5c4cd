//! Function calls and their arguments: how many each function takes and of
//! what kind. Event aggregates (`has`, `count`, `last_value`, …) and
//! `latest_of` take codelist names, not values; `has`, `count` and the like
//! and `contacted` take a window such as `'12 months'`;
//! `count_distinct_codelists` takes several codelists, as a list in
//! brackets or one by one. `days_since` takes a date and `coalesce` values
//! of one type (see [`types`](super::types)).

use std::ops::Range;

use sqlparser::ast::{self as sql, FunctionArg, FunctionArgExpr, FunctionArguments};

use super::convert::Converter;
use super::types::article;
use crate::pack::diag::{did_you_mean, ErrorCode};
use crate::pack::expr::{AggregateFunc, Expr, Type, Window};

/// Every function a pack expression may call.
pub const FUNCTIONS: [&str; 18] = [
    "has",
    "count",
    "count_distinct_codelists",
    "first_date",
    "last_date",
    "last_value",
    "min_value",
    "max_value",
    "count_distinct_codes",
    "count_days",
    "count_categories",
    "sum_weights",
    "latest_of",
    "days_since",
    "contacted",
    "last_contact",
    "coalesce",
    "date",
];

const WINDOW_HELP: &str =
    "write a window as '12 months', '5 years', '28 days', '2 weeks' or 'ever'";

fn is_string_literal(e: &sql::Expr) -> bool {
    matches!(e, sql::Expr::Value(v) if matches!(v.value, sql::Value::SingleQuotedString(_)))
}

impl Converter<'_, '_> {
    pub(super) fn function(&mut self, whole: &sql::Expr, f: &sql::Function) -> Option<Expr> {
        let span = self.span_of(whole);
        let name = f.name.to_string().to_ascii_lowercase();
        let args = self.plain_args(span.clone(), &name, &f.args)?;
        if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
            self.sink.error(
                ErrorCode::Unsupported,
                span,
                "FILTER, OVER and WITHIN GROUP are not supported",
            );
            return None;
        }
        if let Some(func) = AggregateFunc::from_name(&name) {
            return self.aggregate(span, func, &args);
        }
        match name.as_str() {
            "latest_of" => {
                if args.len() != 2 {
                    self.sink.error(
                        ErrorCode::BadArguments,
                        span,
                        "latest_of(a, b) takes two codelists",
                    );
                    return None;
                }
                let a = self.codelist_arg(args[0]);
                let b = self.codelist_arg(args[1]);
                Some(Expr::LatestOf { a: a?, b: b? })
            }
            "days_since" => {
                if args.len() != 1 {
                    self.sink.error(
                        ErrorCode::BadArguments,
                        span,
                        "days_since(date) takes one date",
                    );
                    return None;
                }
                let d = self.convert(args[0])?;
                if !matches!(d.ty(), Type::Date | Type::Null) {
                    self.sink.error(
                        ErrorCode::TypeMismatch,
                        self.span_of(args[0]),
                        format!("days_since needs a date, but this is {}", article(d.ty())),
                    );
                    return None;
                }
                Some(Expr::DaysSince(Box::new(d)))
            }
            "contacted" => {
                if args.is_empty() {
                    self.sink.error(
                        ErrorCode::BadArguments,
                        span,
                        "contacted(window[, outcome, ...]) takes a window and optionally the \
                         outcomes that count, e.g. contacted('14 days', 'spoke', 'declined')",
                    );
                    return None;
                }
                let window = self.window_arg(args[0]);
                let mut outcomes = Vec::new();
                let mut ok = true;
                for a in &args[1..] {
                    match a {
                        sql::Expr::Value(v) => match &v.value {
                            sql::Value::SingleQuotedString(o) if !o.trim().is_empty() => {
                                outcomes.push(crate::pack::semantics::contact_outcome(o))
                            }
                            _ => ok = false,
                        },
                        _ => ok = false,
                    }
                    if !ok {
                        self.sink.error(
                            ErrorCode::BadArguments,
                            self.span_of(a),
                            "a contact outcome is quoted text, e.g. 'spoke'",
                        );
                        return None;
                    }
                }
                outcomes.sort();
                outcomes.dedup();
                Some(Expr::Contacted(window?, outcomes))
            }
            "last_contact" => {
                if !args.is_empty() {
                    self.sink.error(
                        ErrorCode::BadArguments,
                        span,
                        "last_contact() takes no arguments",
                    );
                    return None;
                }
                Some(Expr::LastContact)
            }
            "coalesce" => self.coalesce(span, &args),
            _ => {
                let name_span = match f.name.0.first() {
                    Some(sql::ObjectNamePart::Identifier(i)) => self.src.span(i.span),
                    _ => span,
                };
                self.sink
                    .error(
                        ErrorCode::UnknownFunction,
                        name_span,
                        format!("unknown function `{name}`"),
                    )
                    .help(did_you_mean(
                        &name,
                        FUNCTIONS.iter().copied().filter(|n| *n != "date"),
                    ));
                None
            }
        }
    }

    /// The arguments of a call written `f(a, b, …)`; no names, DISTINCT or
    /// ORDER BY inside the brackets.
    fn plain_args<'e>(
        &mut self,
        span: Range<usize>,
        name: &str,
        args: &'e FunctionArguments,
    ) -> Option<Vec<&'e sql::Expr>> {
        match args {
            FunctionArguments::List(list)
                if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
            {
                let mut out = Vec::new();
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => out.push(e),
                        _ => {
                            self.sink.error(
                                ErrorCode::BadArguments,
                                span,
                                format!("{name}(...) takes plain arguments"),
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            FunctionArguments::None => Some(Vec::new()),
            _ => {
                self.sink.error(
                    ErrorCode::Unsupported,
                    span,
                    format!("this form of {name}(...) is not supported"),
                );
                None
            }
        }
    }

    fn coalesce(&mut self, span: Range<usize>, args: &[&sql::Expr]) -> Option<Expr> {
        if args.is_empty() {
            self.sink.error(
                ErrorCode::BadArguments,
                span,
                "COALESCE needs at least one argument",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ty = Type::Null;
        let mut ok = true;
        for a in args {
            let Some(e) = self.convert(a) else {
                ok = false;
                continue;
            };
            ok &= self.widen(&mut ty, e.ty(), a, "COALESCE arguments");
            out.push(e);
        }
        ok.then_some(Expr::Coalesce { args: out, ty })
    }

    fn aggregate(
        &mut self,
        span: Range<usize>,
        func: AggregateFunc,
        args: &[&sql::Expr],
    ) -> Option<Expr> {
        let fname = func.name();
        if func == AggregateFunc::CountDistinctCodelists {
            return self.count_distinct_codelists(span, fname, args);
        }
        if args.is_empty() || args.len() > 2 {
            self.sink.error(
                ErrorCode::BadArguments,
                span,
                format!("{fname}(codelist[, window]) takes a codelist and an optional window"),
            );
            return None;
        }
        let cl = self.codelist_arg(args[0]);
        if let (Some(c), AggregateFunc::CountDistinctCodes) = (cl, func) {
            if self.scope.codelist_prefix.get(c).copied().unwrap_or(false) {
                self.sink
                    .error(
                        ErrorCode::BadArguments,
                        self.span_of(args[0]),
                        "count_distinct_codes needs a codelist with match = \"exact\"",
                    )
                    .help(Some(
                        "for ICD-10 categories, give the codelist a category_column and use count_categories"
                            .into(),
                    ));
                return None;
            }
        }
        if let Some(c) = cl {
            let (categorised, weighted) = self
                .scope
                .codelist_kinds
                .get(c)
                .copied()
                .unwrap_or((false, false));
            let missing = match func {
                AggregateFunc::CountCategories if !categorised => Some("category_column"),
                AggregateFunc::SumWeights if !weighted => Some("weight_column"),
                _ => None,
            };
            if let Some(key) = missing {
                self.sink
                    .error(
                        ErrorCode::BadArguments,
                        self.span_of(args[0]),
                        format!("{fname} needs a codelist with a `{key}`"),
                    )
                    .help(Some(format!(
                        "name the column in the codelist's section: `{key} = \"...\"`"
                    )));
                return None;
            }
        }
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

    /// Either `([a, b, c][, window])` or `(a, b, c[, window])`.
    fn count_distinct_codelists(
        &mut self,
        span: Range<usize>,
        fname: &str,
        args: &[&sql::Expr],
    ) -> Option<Expr> {
        let (lists, window): (Vec<&sql::Expr>, Option<&sql::Expr>) = match args.first() {
            Some(sql::Expr::Array(arr)) => {
                if args.len() > 2 {
                    self.sink.error(
                        ErrorCode::BadArguments,
                        span,
                        format!(
                            "{fname}([a, b, ...][, window]) takes a list and an optional window"
                        ),
                    );
                    return None;
                }
                (arr.elem.iter().collect(), args.get(1).copied())
            }
            _ => match args.split_last() {
                Some((last, rest)) if is_string_literal(last) => (rest.to_vec(), Some(*last)),
                _ => (args.to_vec(), None),
            },
        };
        if lists.is_empty() {
            self.sink.error(
                ErrorCode::BadArguments,
                span,
                format!("{fname} needs at least one codelist"),
            );
            return None;
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
        Some(Expr::Aggregate {
            func: AggregateFunc::CountDistinctCodelists,
            codelists,
            window: window?,
        })
    }

    /// A codelist named by a bare identifier.
    fn codelist_arg(&mut self, e: &sql::Expr) -> Option<usize> {
        let span = self.span_of(e);
        let ident = match e {
            sql::Expr::Identifier(ident) => ident.clone(),
            sql::Expr::CompoundIdentifier(parts) => super::convert::qualified(parts),
            _ => {
                self.sink.error(
                    ErrorCode::BadArguments,
                    span,
                    "expected a codelist name here",
                );
                return None;
            }
        };
        if let Some(&i) = self.scope.codelists.get(&ident.value) {
            return Some(i);
        }
        let help = did_you_mean(
            &ident.value,
            self.scope.codelists.keys().map(String::as_str),
        );
        self.sink
            .error(
                ErrorCode::UnknownCodelist,
                span,
                format!("unknown codelist `{}`", ident.value),
            )
            .help(help);
        None
    }

    /// A window: a quoted string such as `'12 months'`, or `ever`.
    fn window_arg(&mut self, e: &sql::Expr) -> Option<Window> {
        let span = self.span_of(e);
        let message = match e {
            sql::Expr::Value(v) => match &v.value {
                sql::Value::SingleQuotedString(s) => match Window::parse(s) {
                    Some(w) => return Some(w),
                    None => format!("cannot read the window '{s}'"),
                },
                _ => "a window must be a quoted string".to_string(),
            },
            sql::Expr::Identifier(i) if i.value.eq_ignore_ascii_case("ever") => {
                return Some(Window::Ever)
            }
            _ => "a window must be a quoted string".to_string(),
        };
        self.sink
            .error(ErrorCode::BadWindow, span, message)
            .help(WINDOW_HELP.to_string());
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::check::testing::expr;

    fn errors(sql: &str) -> Vec<String> {
        expr(sql, false).expect_err("should not check")
    }

    #[test]
    fn wrong_argument_counts_say_what_the_function_takes() {
        // The parser's span of a call stops before its closing bracket
        // (at the name when there are no arguments).
        assert_eq!(
            errors("latest_of(asthma)"),
            ["E206 `latest_of(asthma`: latest_of(a, b) takes two codelists"]
        );
        assert_eq!(
            errors("has(asthma, '1 year', 2)"),
            [
                "E206 `has(asthma, '1 year', 2`: has(codelist[, window]) takes a codelist and an \
              optional window"
            ]
        );
        assert_eq!(
            errors("days_since()"),
            ["E206 `days_since`: days_since(date) takes one date"]
        );
        assert_eq!(
            errors("last_contact(1)"),
            ["E206 `last_contact(1`: last_contact() takes no arguments"]
        );
        assert_eq!(
            errors("contacted()"),
            ["E206 `contacted`: contacted(window[, outcome, ...]) takes a window and optionally \
              the outcomes that count, e.g. contacted('14 days', 'spoke', 'declined')"]
        );
        assert_eq!(
            errors("contacted('14 days', spoke)"),
            ["E206 `spoke`: a contact outcome is quoted text, e.g. 'spoke'"]
        );
        assert_eq!(
            errors("coalesce()"),
            ["E206 `coalesce`: COALESCE needs at least one argument"]
        );
        assert_eq!(
            errors("count_distinct_codelists('5 years')"),
            [
                "E206 `count_distinct_codelists('5 years'`: count_distinct_codelists needs at \
              least one codelist"
            ]
        );
    }

    #[test]
    fn codelist_arguments_are_names_of_codelists() {
        assert_eq!(
            errors("has(astma)"),
            ["E204 `astma`: unknown codelist `astma` (help: did you mean `asthma`?)"]
        );
        assert_eq!(
            errors("count('asthma')"),
            ["E206 `'asthma'`: expected a codelist name here"]
        );
        // Both arguments are checked before giving up.
        assert_eq!(
            errors("latest_of(astma, cpod)"),
            [
                "E204 `astma`: unknown codelist `astma` (help: did you mean `asthma`?)",
                "E204 `cpod`: unknown codelist `cpod` (help: did you mean `copd`?)"
            ]
        );
        assert_eq!(
            expr("latest_of(copd, asthma)", false),
            Ok(Expr::LatestOf { a: 1, b: 0 })
        );
    }

    #[test]
    fn windows_are_quoted_periods_or_ever() {
        assert_eq!(
            expr("count(copd, '5 years')", false),
            Ok(Expr::Aggregate {
                func: AggregateFunc::Count,
                codelists: vec![1],
                window: Window::Months(60),
            })
        );
        assert_eq!(
            expr("has(asthma, ever)", false),
            Ok(Expr::Aggregate {
                func: AggregateFunc::Has,
                codelists: vec![0],
                window: Window::Ever,
            })
        );
        assert_eq!(
            errors("has(asthma, '3 fortnights')"),
            [format!(
                "E209 `'3 fortnights'`: cannot read the window '3 fortnights' (help: {WINDOW_HELP})"
            )]
        );
        assert_eq!(
            errors("contacted(14)"),
            [format!(
                "E209 `14`: a window must be a quoted string (help: {WINDOW_HELP})"
            )]
        );
    }

    #[test]
    fn distinct_codes_need_an_exact_codelist() {
        assert_eq!(
            expr("count_distinct_codes(asthma, '12 months')", false),
            Ok(Expr::Aggregate {
                func: AggregateFunc::CountDistinctCodes,
                codelists: vec![0],
                window: Window::Months(12),
            })
        );
        assert_eq!(
            errors("count_distinct_codes(copd) >= 5"),
            [
                "E206 `copd`: count_distinct_codes needs a codelist with match = \"exact\" \
                 (help: for ICD-10 categories, give the codelist a category_column and use count_categories)"
            ]
        );
    }

    #[test]
    fn categories_and_weights_need_a_codelist_that_has_them() {
        assert_eq!(
            expr("sum_weights(asthma, '2 years')", false),
            Ok(Expr::Aggregate {
                func: AggregateFunc::SumWeights,
                codelists: vec![0],
                window: Window::Months(24),
            })
        );
        assert_eq!(
            errors("count_categories(copd)"),
            [
                "E206 `copd`: count_categories needs a codelist with a `category_column` \
                 (help: name the column in the codelist's section: `category_column = \"...\"`)"
            ]
        );
        assert_eq!(
            errors("sum_weights(copd) > 5"),
            [
                "E206 `copd`: sum_weights needs a codelist with a `weight_column` \
                 (help: name the column in the codelist's section: `weight_column = \"...\"`)"
            ]
        );
    }

    #[test]
    fn count_distinct_codelists_takes_a_list_or_names() {
        let both = Ok(Expr::Aggregate {
            func: AggregateFunc::CountDistinctCodelists,
            codelists: vec![0, 1],
            window: Window::Months(12),
        });
        assert_eq!(
            expr(
                "count_distinct_codelists([asthma, copd], '12 months')",
                false
            ),
            both
        );
        assert_eq!(
            expr("count_distinct_codelists(asthma, copd, '12 months')", false),
            both
        );
        assert_eq!(
            errors("count_distinct_codelists([asthma], '1 year', 3)"),
            [
                "E206 `count_distinct_codelists([asthma], '1 year', 3`: count_distinct_codelists(\
              [a, b, ...][, window]) takes a list and an optional window"
            ]
        );
    }

    #[test]
    fn unknown_functions_and_other_call_forms() {
        assert_eq!(
            errors("cuont(asthma)"),
            ["E205 `cuont`: unknown function `cuont` (help: did you mean `count`?)"]
        );
        assert_eq!(
            errors("hsa(asthma)"),
            ["E205 `hsa`: unknown function `hsa`"]
        );
        assert_eq!(
            errors("count(DISTINCT asthma)"),
            ["E202 `count(DISTINCT asthma`: this form of count(...) is not supported"]
        );
        assert_eq!(
            errors("days_since(age)"),
            ["E207 `age`: days_since needs a date, but this is an int"]
        );
        assert_eq!(
            errors("coalesce(imd_decile, 'none')"),
            ["E207 `'none'`: COALESCE arguments must have one type: an int and a string"]
        );
        assert_eq!(
            expr("COALESCE(imd_decile, 5.5)", false),
            Ok(Expr::Coalesce {
                args: vec![
                    Expr::Column {
                        name: "imd_decile".into(),
                        ty: Type::Int
                    },
                    Expr::Literal(crate::pack::expr::Value::Float(5.5))
                ],
                ty: Type::Float
            })
        );
    }
}
