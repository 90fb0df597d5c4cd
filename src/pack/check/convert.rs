//! The SQL syntax tree of one expression turned into a checked [`Expr`]:
//! what each name refers to (builtin, feature, patient column), literals,
//! and conditions. Operators and comparisons are checked in [`types`], and
//! function calls in [`functions`], as further `impl Converter` blocks.
//!
//! [`types`]: super::types
//! [`functions`]: super::functions

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use chrono::NaiveDate;
use sqlparser::ast as sql;

use super::source::{parse_sql, SqlSource};
use super::types::article;
use super::Sink;
use crate::pack::diag::{did_you_mean, ErrorCode};
use crate::pack::expr::{Expr, Type, Value};
use crate::pack::raw::Sp;

/// Patient columns every dataset has (or that read as NULL when absent),
/// with their types, from the input contract. `patient_id` is deliberately
/// not available to rules.
pub fn patient_columns() -> impl Iterator<Item = (&'static str, Type)> {
    crate::contract::readable_patient_columns()
}

/// Names with a built-in meaning in expressions.
pub const BUILTINS: [&str; 5] = ["age", "as_of", "registered", "alive", "score"];

/// What a feature name in an expression refers to.
#[derive(Debug, Clone)]
pub(super) enum FeatureSlot {
    Ready {
        index: usize,
        ty: Type,
    },
    /// The feature had errors; referring to it reports nothing more.
    Failed,
}

/// `efi.deficits` (a feature of a used pack) as one name.
pub(super) fn qualified(parts: &[sql::Ident]) -> sql::Ident {
    let value: Vec<&str> = parts.iter().map(|p| p.value.as_str()).collect();
    sql::Ident {
        value: value.join("."),
        quote_style: None,
        span: sqlparser::tokenizer::Span::union_iter(parts.iter().map(|p| p.span)),
    }
}

/// The names an expression may use.
pub(super) struct Scope<'a> {
    pub(super) features: &'a HashMap<String, FeatureSlot>,
    pub(super) codelists: &'a BTreeMap<String, usize>,
    /// By codelist index: (categorised, weighted).
    pub(super) codelist_kinds: &'a [(bool, bool)],
    /// By codelist index: whether it matches by prefix.
    pub(super) codelist_prefix: &'a [bool],
    pub(super) columns: &'a BTreeMap<String, Type>,
    /// Only tier conditions may use `score`.
    pub(super) allow_score: bool,
}

/// Parses the condition in `s` and checks it is true or false.
pub(super) fn condition(sink: &mut Sink<'_>, s: &Sp<String>, scope: &Scope<'_>) -> Option<Expr> {
    typed(sink, s, scope, |ty| match ty {
        Type::Bool | Type::Null => None,
        other => Some((
            ErrorCode::NotBoolean,
            format!(
                "a condition must be true or false, but this is {}",
                article(other)
            ),
            Some("compare it with something, e.g. `ltc_count >= 2`".to_string()),
        )),
    })
}

/// Parses and checks the expression in `s`; `wrong` says what is wrong
/// with its type, if anything (code, message, help).
fn typed(
    sink: &mut Sink<'_>,
    s: &Sp<String>,
    scope: &Scope<'_>,
    wrong: impl Fn(Type) -> Option<(ErrorCode, String, Option<String>)>,
) -> Option<Expr> {
    let ast = parse_sql(sink, s)?;
    let src = SqlSource::new(sink.text(), s);
    let expr = Converter {
        sink: &mut *sink,
        src: &src,
        scope,
    }
    .convert(&ast)?;
    match wrong(expr.ty()) {
        None => Some(expr),
        Some((code, message, help)) => {
            sink.error(code, src.span_of(&ast), message).help(help);
            None
        }
    }
}

/// Parses and checks `[score] add`: an exact number (int or decimal).
pub(super) fn score_add(sink: &mut Sink<'_>, s: &Sp<String>, scope: &Scope<'_>) -> Option<Expr> {
    typed(sink, s, scope, |ty| match ty {
        Type::Int | Type::Decimal => None,
        other => Some((
            ErrorCode::TypeMismatch,
            format!(
                "[score] add must be an int or a decimal (scores are exact), but this is {}",
                article(other)
            ),
            None,
        )),
    })
}

/// Checks the already parsed expression `ast`, written in `s`.
pub(super) fn expression(
    sink: &mut Sink<'_>,
    s: &Sp<String>,
    ast: &sql::Expr,
    scope: &Scope<'_>,
) -> Option<Expr> {
    let src = SqlSource::new(sink.text(), s);
    Converter {
        sink,
        src: &src,
        scope,
    }
    .convert(ast)
}

/// Converts one sqlparser expression into a checked [`Expr`], recording
/// problems; `None` means a problem has been recorded.
pub(super) struct Converter<'c, 's> {
    pub(super) sink: &'c mut Sink<'s>,
    pub(super) src: &'c SqlSource<'c>,
    pub(super) scope: &'c Scope<'c>,
}

impl Converter<'_, '_> {
    pub(super) fn span_of(&self, e: &sql::Expr) -> Range<usize> {
        self.src.span_of(e)
    }

    pub(super) fn convert(&mut self, e: &sql::Expr) -> Option<Expr> {
        use sql::Expr as S;
        match e {
            S::Nested(inner) => self.convert(inner),
            S::Identifier(ident) => self.name(ident),
            S::CompoundIdentifier(parts) => self.name(&qualified(parts)),
            S::Value(v) => self.literal(&v.value, self.src.span(v.span)),
            S::TypedString(ts) => self.typed_literal(e, ts),
            S::UnaryOp { op, expr } => self.unary(e, op, expr),
            S::BinaryOp { left, op, right } => self.binary(e, left, op, right),
            S::IsNull(inner) | S::IsNotNull(inner) => {
                let expr = self.convert(inner)?;
                Some(Expr::IsNull {
                    expr: Box::new(expr),
                    negated: matches!(e, S::IsNotNull(_)),
                })
            }
            S::In {
                expr,
                target: sql::InTarget::List(list),
                negated,
                ..
            } => self.in_list(expr, list, *negated),
            S::In { .. } => {
                self.sink.error(
                    ErrorCode::Unsupported,
                    self.span_of(e),
                    "IN takes a list of values, e.g. `sex IN ('F', 'M')`",
                );
                None
            }
            S::Between {
                expr,
                negated,
                low,
                high,
            } => self.between(expr, low, high, *negated),
            S::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand.as_deref(), conditions, else_result.as_deref()),
            S::Function(f) => self.function(e, f),
            S::Array(_) => {
                self.sink.error(
                    ErrorCode::Unsupported,
                    self.span_of(e),
                    "a list in brackets is only allowed as the first argument of \
                     count_distinct_codelists",
                );
                None
            }
            _ => {
                self.sink
                    .error(
                        ErrorCode::Unsupported,
                        self.span_of(e),
                        "this SQL construct is not supported in pack expressions",
                    )
                    .help("see rules/FORMAT.md for the supported syntax".to_string());
                None
            }
        }
    }

    /// A name: a builtin, then a feature, then a patient or declared column.
    fn name(&mut self, ident: &sql::Ident) -> Option<Expr> {
        let name = ident.value.as_str();
        let span = self.src.span(ident.span);
        match name {
            "age" => return Some(Expr::Age),
            "as_of" => return Some(Expr::AsOf),
            "registered" => return Some(Expr::Registered),
            "alive" => return Some(Expr::Alive),
            "score" if self.scope.allow_score => return Some(Expr::Score),
            "score" => {
                self.sink
                    .error(
                        ErrorCode::ScoreOutsideTier,
                        span,
                        "`score` can only be used in tier conditions",
                    )
                    .help(
                        "the score is the sum of the rules' points, known only after every rule"
                            .to_string(),
                    );
                return None;
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
            self.sink
                .error(
                    ErrorCode::UnknownName,
                    span,
                    format!("`{name}` is a codelist, not a value"),
                )
                .help(format!(
                    "use has({name}) to test for a code, or count({name}) to count them"
                ));
            return None;
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
        self.sink
            .error(
                ErrorCode::UnknownName,
                span,
                format!("unknown name `{name}`: not a feature, column or builtin"),
            )
            .help(help);
        None
    }

    fn literal(&mut self, v: &sql::Value, span: Range<usize>) -> Option<Expr> {
        let value = match v {
            sql::Value::Number(text, _) => match text.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => match text.parse::<f64>() {
                    Ok(f) if f.is_finite() => Value::Float(f),
                    _ => {
                        self.sink.error(
                            ErrorCode::InvalidValue,
                            span,
                            format!("`{text}` is not a usable number"),
                        );
                        return None;
                    }
                },
            },
            sql::Value::SingleQuotedString(s) => Value::Str(s.clone()),
            sql::Value::Boolean(b) => Value::Bool(*b),
            sql::Value::Null => Value::Null,
            sql::Value::DoubleQuotedString(s) => {
                self.sink.error(
                    ErrorCode::SqlSyntax,
                    span,
                    format!("\"{s}\" is in double quotes; write strings in single quotes"),
                );
                return None;
            }
            _ => {
                self.sink.error(
                    ErrorCode::Unsupported,
                    span,
                    "this kind of literal is not supported",
                );
                return None;
            }
        };
        Some(Expr::Literal(value))
    }

    /// `DATE 'YYYY-MM-DD'`, the only typed literal.
    fn typed_literal(&mut self, whole: &sql::Expr, ts: &sql::TypedString) -> Option<Expr> {
        let span = self.span_of(whole);
        let text = match &ts.value.value {
            sql::Value::SingleQuotedString(s) => Some(s),
            _ => None,
        };
        match (&ts.data_type, text) {
            (sql::DataType::Date, Some(t)) => match NaiveDate::parse_from_str(t, "%Y-%m-%d") {
                Ok(d) => Some(Expr::Literal(Value::Date(d))),
                Err(_) => {
                    self.sink.error(
                        ErrorCode::InvalidValue,
                        span,
                        format!("`{t}` is not a date; write DATE 'YYYY-MM-DD'"),
                    );
                    None
                }
            },
            _ => {
                self.sink.error(
                    ErrorCode::Unsupported,
                    span,
                    "only DATE 'YYYY-MM-DD' typed literals are supported",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::check::testing::expr;

    #[test]
    fn names_resolve_to_builtins_features_then_columns() {
        assert_eq!(expr("age", false), Ok(Expr::Age));
        assert_eq!(expr("(as_of)", false), Ok(Expr::AsOf));
        assert_eq!(
            expr("ltc_count", false),
            Ok(Expr::Feature {
                index: 0,
                ty: Type::Int
            })
        );
        assert_eq!(
            expr("imd_decile", false),
            Ok(Expr::Column {
                name: "imd_decile".into(),
                ty: Type::Int
            })
        );
        assert_eq!(expr("score", true), Ok(Expr::Score));
    }

    #[test]
    fn unknown_names_say_what_was_meant() {
        assert_eq!(
            expr("ltc_cuont", false),
            Err(vec![
                "E203 `ltc_cuont`: unknown name `ltc_cuont`: not a feature, column or builtin \
                 (help: did you mean `ltc_count`?)"
                    .to_string()
            ])
        );
        assert_eq!(
            expr("asthma", false),
            Err(vec![
                "E203 `asthma`: `asthma` is a codelist, not a value \
                 (help: use has(asthma) to test for a code, or count(asthma) to count them)"
                    .to_string()
            ])
        );
        assert_eq!(
            expr("sex = \"F\"", false),
            Err(vec![
                "E203 `\"F\"`: unknown name `F`: not a feature, column or builtin \
                 (help: double quotes name a feature or column; write the text 'F' in single \
                 quotes)"
                    .to_string()
            ])
        );
        assert_eq!(
            expr("score", false),
            Err(vec![
                "E211 `score`: `score` can only be used in tier conditions (help: the score is \
                 the sum of the rules' points, known only after every rule)"
                    .to_string()
            ])
        );
        // A feature that failed its own check reports nothing more.
        assert_eq!(expr("broken", false), Err(vec![]));
    }

    #[test]
    fn literals_and_their_limits() {
        assert_eq!(expr("42", false), Ok(Expr::Literal(Value::Int(42))));
        assert_eq!(expr("2.5", false), Ok(Expr::Literal(Value::Float(2.5))));
        assert_eq!(
            expr("'F'", false),
            Ok(Expr::Literal(Value::Str("F".into())))
        );
        assert_eq!(expr("NULL", false), Ok(Expr::Literal(Value::Null)));
        assert_eq!(
            expr("DATE '2020-02-29'", false),
            Ok(Expr::Literal(Value::Date(
                NaiveDate::from_ymd_opt(2020, 2, 29).expect("a date")
            )))
        );
        // The parser's span of a typed literal is its string.
        assert_eq!(
            expr("DATE '2019-02-29'", false),
            Err(vec![
                "E005 `'2019-02-29'`: `2019-02-29` is not a date; write DATE 'YYYY-MM-DD'"
                    .to_string()
            ])
        );
        assert_eq!(
            expr("1e400", false),
            Err(vec![
                "E005 `1e400`: `1e400` is not a usable number".to_string()
            ])
        );
        assert_eq!(
            expr("[1, 2]", false),
            Err(vec![
                "E202 `1, 2`: a list in brackets is only allowed as the first \
                 argument of count_distinct_codelists"
                    .to_string()
            ])
        );
    }

    #[test]
    fn conditions_must_be_true_or_false() {
        let file = crate::pack::diag::SourceFile::new(
            "pack.toml".into(),
            "when = \"ltc_count + 1\"\n".into(),
        );
        let s = Sp {
            value: "ltc_count + 1".to_string(),
            span: 7..22,
        };
        let features: HashMap<String, FeatureSlot> = [(
            "ltc_count".to_string(),
            FeatureSlot::Ready {
                index: 0,
                ty: Type::Int,
            },
        )]
        .into();
        let (codelists, columns) = (BTreeMap::new(), BTreeMap::new());
        let scope = Scope {
            features: &features,
            codelists: &codelists,
            codelist_kinds: &[],
            codelist_prefix: &[],
            columns: &columns,
            allow_score: false,
        };
        let mut diags = Vec::new();
        assert_eq!(
            condition(&mut Sink::new(&file, &mut diags), &s, &scope),
            None
        );
        assert_eq!(
            crate::pack::check::testing::briefs(&diags),
            [
                "E208 `ltc_count + 1`: a condition must be true or false, but this is an int \
              (help: compare it with something, e.g. `ltc_count >= 2`)"
            ]
        );
    }
}
