//! Type rules: which types fit together in operators, comparisons, IN,
//! BETWEEN, CASE and COALESCE, and what widens to what.
//!
//! - Arithmetic takes numbers (int, float, decimal) or NULL; dates take
//!   `days_since` instead.
//! - Comparisons need the same type on both sides, any two numbers, or a
//!   NULL; true/false values only compare with `=` and `<>`.
//! - CASE results and COALESCE arguments must unify ([`unify`]): ints and
//!   floats widen to float, ints next to decimals to decimal.
//! - A numeric literal next to the decimal `score` becomes an exact decimal,
//!   so `score >= 7.5` means exactly 7.5.
//! - A string compared with `latest_of(a, b)` must name `a` or `b`.

use std::ops::Range;
use std::str::FromStr;

use rust_decimal::Decimal;
use sqlparser::ast::{self as sql, UnaryOperator};

use super::convert::Converter;
use crate::pack::diag::{did_you_mean, ErrorCode};
use crate::pack::expr::{unify, BinaryOp, Expr, Type, Value};

/// The type with its article, as messages say it: "an int", "a date".
pub(super) fn article(t: Type) -> String {
    match t {
        Type::Int => "an int".into(),
        other => format!("a {other}"),
    }
}

/// Whether values of types `a` and `b` can be compared.
fn comparable_types(a: Type, b: Type) -> bool {
    crate::pack::semantics::common_type(a, b).is_some()
}

/// Whether arithmetic takes a value of type `t`.
fn arithmetic_operand(t: Type) -> bool {
    t.is_numeric() || t == Type::Null
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

impl Converter<'_, '_> {
    pub(super) fn unary(
        &mut self,
        whole: &sql::Expr,
        op: &UnaryOperator,
        operand: &sql::Expr,
    ) -> Option<Expr> {
        let span = self.span_of(whole);
        let inner = self.convert(operand)?;
        match op {
            UnaryOperator::Not => {
                self.expect_bool(&inner, self.span_of(operand), "NOT")?;
                Some(Expr::Not(Box::new(inner)))
            }
            UnaryOperator::Minus => match inner {
                Expr::Literal(Value::Int(i)) => Some(Expr::Literal(Value::Int(i.checked_neg()?))),
                Expr::Literal(Value::Float(f)) => Some(Expr::Literal(Value::Float(-f))),
                other if arithmetic_operand(other.ty()) => Some(Expr::Neg(Box::new(other))),
                other => {
                    self.sink.error(
                        ErrorCode::TypeMismatch,
                        span,
                        format!("cannot negate {}", article(other.ty())),
                    );
                    None
                }
            },
            UnaryOperator::Plus if inner.ty().is_numeric() => Some(inner),
            _ => {
                self.sink.error(
                    ErrorCode::Unsupported,
                    span,
                    format!("operator `{op}` is not supported"),
                );
                None
            }
        }
    }

    pub(super) fn binary(
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
                self.sink.error(
                    ErrorCode::Unsupported,
                    self.span_of(whole),
                    format!("operator `{other}` is not supported"),
                );
                return None;
            }
        };
        let l = self.convert(left);
        let r = self.convert(right);
        let (mut l, mut r) = (l?, r?);
        let (lspan, rspan) = (self.span_of(left), self.span_of(right));
        if matches!(op, BinaryOp::And | BinaryOp::Or) {
            let a = self.expect_bool(&l, lspan, op.symbol());
            let b = self.expect_bool(&r, rspan, op.symbol());
            a?;
            b?;
        } else if op.is_arithmetic() {
            if !arithmetic_operand(l.ty()) || !arithmetic_operand(r.ty()) {
                let dates = l.ty() == Type::Date || r.ty() == Type::Date;
                self.sink
                    .error(
                        ErrorCode::TypeMismatch,
                        self.span_of(whole),
                        format!(
                            "cannot apply `{}` to {} and {}",
                            op.symbol(),
                            article(l.ty()),
                            article(r.ty())
                        ),
                    )
                    .help(dates.then(|| "use days_since(date) for intervals".to_string()));
                return None;
            }
            if l.ty() == Type::Decimal {
                r = exact_literal(right).unwrap_or(r);
            } else if r.ty() == Type::Decimal {
                l = exact_literal(left).unwrap_or(l);
            }
        } else {
            // A comparison: the decimal side, if any, anchors the other.
            if l.ty() == Type::Decimal || r.ty() != Type::Decimal {
                self.comparable(&l, lspan, &mut r, right, op.symbol())?;
            } else {
                self.comparable(&r, rspan, &mut l, left, op.symbol())?;
            }
            if l.ty() == Type::Bool && !matches!(op, BinaryOp::Eq | BinaryOp::NotEq) {
                self.sink.error(
                    ErrorCode::TypeMismatch,
                    self.span_of(whole),
                    format!(
                        "true/false values cannot be compared with `{}`",
                        op.symbol()
                    ),
                );
                return None;
            }
        }
        Some(Expr::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
        })
    }

    pub(super) fn expect_bool(&mut self, e: &Expr, span: Range<usize>, what: &str) -> Option<()> {
        match e.ty() {
            Type::Bool | Type::Null => Some(()),
            other => {
                self.sink.error(
                    ErrorCode::NotBoolean,
                    span,
                    format!(
                        "{what} needs true/false operands, but this is {}",
                        article(other)
                    ),
                );
                None
            }
        }
    }

    /// Checks that `other` can be compared with `anchor`, coercing numeric
    /// literals to exact decimals next to the score, and checking strings
    /// compared with `latest_of` name one of its codelists.
    pub(super) fn comparable(
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
        if !comparable_types(a, b) {
            let help = if a == Type::Date && b == Type::Str || a == Type::Str && b == Type::Date {
                Some("write a date as DATE '2020-03-23'".to_string())
            } else {
                None
            };
            let span = union(&anchor_span, &self.span_of(other_ast));
            self.sink
                .error(
                    ErrorCode::TypeMismatch,
                    span,
                    format!(
                        "cannot compare {} with {} (`{what}`)",
                        article(a),
                        article(b)
                    ),
                )
                .help(help);
            return None;
        }
        if let (Expr::LatestOf { a, b }, Expr::Literal(Value::Str(s))) = (anchor, &*other) {
            let names: Vec<&str> = [a, b]
                .iter()
                .filter_map(|i| {
                    self.scope
                        .codelists
                        .iter()
                        .find(|(_, v)| *v == *i)
                        .map(|(k, _)| k.rsplit('.').next().unwrap_or(k))
                })
                .collect();
            if !names.contains(&s.as_str()) {
                self.sink
                    .error(
                        ErrorCode::LatestOfLiteral,
                        self.span_of(other_ast),
                        format!(
                            "latest_of(...) gives `{}` or `{}`, never '{s}'",
                            names.first().unwrap_or(&""),
                            names.get(1).unwrap_or(&"")
                        ),
                    )
                    .help(did_you_mean(s, names.iter().copied()));
                return None;
            }
        }
        Some(())
    }

    pub(super) fn in_list(
        &mut self,
        target_ast: &sql::Expr,
        list: &[sql::Expr],
        negated: bool,
    ) -> Option<Expr> {
        let target = self.convert(target_ast);
        let mut items = Vec::new();
        let mut ok = target.is_some();
        for item in list {
            match (self.convert(item), &target) {
                (Some(mut v), Some(t)) => {
                    let span = self.span_of(target_ast);
                    if self.comparable(t, span, &mut v, item, "IN").is_none() {
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
        Some(Expr::InList {
            expr: Box::new(target?),
            list: items,
            negated,
        })
    }

    pub(super) fn between(
        &mut self,
        target: &sql::Expr,
        low: &sql::Expr,
        high: &sql::Expr,
        negated: bool,
    ) -> Option<Expr> {
        let t = self.convert(target);
        let lo = self.convert(low);
        let hi = self.convert(high);
        let (t, mut lo, mut hi) = (t?, lo?, hi?);
        let tspan = self.span_of(target);
        self.comparable(&t, tspan.clone(), &mut lo, low, "BETWEEN")?;
        self.comparable(&t, tspan, &mut hi, high, "BETWEEN")?;
        Some(Expr::Between {
            expr: Box::new(t),
            low: Box::new(lo),
            high: Box::new(hi),
            negated,
        })
    }

    pub(super) fn case(
        &mut self,
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
            // `CASE x WHEN v` compares; `CASE WHEN c` tests a condition.
            let fits = match (&op, operand) {
                (Some(o), Some(o_ast)) => {
                    let span = self.span_of(o_ast);
                    self.comparable(o, span, &mut cond, &w.condition, "CASE")
                }
                _ => self.expect_bool(&cond, self.span_of(&w.condition), "WHEN"),
            };
            ok &= fits.is_some();
            ok &= self.widen(&mut ty, result.ty(), &w.result, "CASE results");
            branches.push((cond, result));
        }
        let else_expr = match else_result.map(|e_ast| (e_ast, self.convert(e_ast))) {
            Some((e_ast, Some(e))) => {
                ok &= self.widen(&mut ty, e.ty(), e_ast, "CASE results");
                Some(Box::new(e))
            }
            Some((_, None)) => {
                ok = false;
                None
            }
            None => None,
        };
        if !ok {
            return None;
        }
        Some(Expr::Case {
            operand: op.map(Box::new),
            branches,
            else_result: else_expr,
            ty,
        })
    }

    /// Widens `ty` to take a value of type `next` (written at `ast`), or
    /// records that `what` (e.g. "CASE results") must have one type.
    pub(super) fn widen(&mut self, ty: &mut Type, next: Type, ast: &sql::Expr, what: &str) -> bool {
        match unify(*ty, next) {
            Some(t) => {
                *ty = t;
                true
            }
            None => {
                self.sink.error(
                    ErrorCode::TypeMismatch,
                    self.span_of(ast),
                    format!(
                        "{what} must have one type: {} and {}",
                        article(*ty),
                        article(next)
                    ),
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::check::testing::expr;

    const ALL: [Type; 7] = [
        Type::Bool,
        Type::Int,
        Type::Float,
        Type::Decimal,
        Type::Str,
        Type::Date,
        Type::Null,
    ];

    #[test]
    fn which_types_compare_with_which() {
        // Rows and columns in the order of ALL; 1 = comparable.
        let expected = [
            [1, 0, 0, 0, 0, 0, 1],
            [0, 1, 1, 1, 0, 0, 1],
            [0, 1, 1, 1, 0, 0, 1],
            [0, 1, 1, 1, 0, 0, 1],
            [0, 0, 0, 0, 1, 0, 1],
            [0, 0, 0, 0, 0, 1, 1],
            [1, 1, 1, 1, 1, 1, 1],
        ];
        for (i, a) in ALL.iter().enumerate() {
            for (j, b) in ALL.iter().enumerate() {
                assert_eq!(
                    comparable_types(*a, *b),
                    expected[i][j] == 1,
                    "{a} compared with {b}"
                );
            }
        }
        let arithmetic: Vec<Type> = ALL.into_iter().filter(|t| arithmetic_operand(*t)).collect();
        assert_eq!(
            arithmetic,
            [Type::Int, Type::Float, Type::Decimal, Type::Null]
        );
    }

    #[test]
    fn messages_name_types_with_their_article() {
        let named: Vec<String> = ALL.into_iter().map(article).collect();
        assert_eq!(
            named,
            [
                "a bool",
                "an int",
                "a float",
                "a decimal",
                "a string",
                "a date",
                "a null"
            ]
        );
    }

    #[test]
    fn case_results_widen_or_are_refused() {
        let Ok(Expr::Case { ty, .. }) = expr("CASE WHEN carer THEN 1 ELSE 2.5 END", false) else {
            panic!("CASE should check");
        };
        assert_eq!(ty, Type::Float);
        let Ok(Expr::Case { ty, .. }) = expr("CASE WHEN carer THEN NULL ELSE 'x' END", false)
        else {
            panic!("CASE should check");
        };
        assert_eq!(ty, Type::Str);
        assert_eq!(
            expr("CASE WHEN carer THEN 1 WHEN alive THEN 'x' END", false),
            Err(vec![
                "E207 `'x'`: CASE results must have one type: an int and a string".to_string()
            ])
        );
        assert_eq!(
            expr("CASE WHEN age THEN 1 END", false),
            Err(vec![
                "E208 `age`: WHEN needs true/false operands, but this is an int".to_string()
            ])
        );
    }

    #[test]
    fn numbers_next_to_the_score_are_exact_decimals() {
        let d = |s: &str| Box::new(Expr::Literal(Value::Decimal(Decimal::from_str(s).unwrap())));
        assert_eq!(
            expr("score >= 7.5", true),
            Ok(Expr::Binary {
                op: BinaryOp::GtEq,
                left: Box::new(Expr::Score),
                right: d("7.5"),
            })
        );
        assert_eq!(
            expr("-0.1 < score", true),
            Ok(Expr::Binary {
                op: BinaryOp::Lt,
                left: d("-0.1"),
                right: Box::new(Expr::Score),
            })
        );
        assert_eq!(
            expr("score + 1e1", true),
            Ok(Expr::Binary {
                op: BinaryOp::Add,
                left: Box::new(Expr::Score),
                right: d("10"),
            })
        );
        // Away from the score a literal keeps its own type.
        assert_eq!(
            expr("age > 7.5", false),
            Ok(Expr::Binary {
                op: BinaryOp::Gt,
                left: Box::new(Expr::Age),
                right: Box::new(Expr::Literal(Value::Float(7.5))),
            })
        );
    }

    #[test]
    fn mismatched_operands_are_reported_where_they_are() {
        let one = |sql: &str| expr(sql, false).unwrap_err();
        assert_eq!(
            one("age >= '80'"),
            ["E207 `age >= '80'`: cannot compare an int with a string (`>=`)"]
        );
        assert_eq!(
            one("first_date(asthma) + 1"),
            [
                "E207 `first_date(asthma) + 1`: cannot apply `+` to a date and an int \
              (help: use days_since(date) for intervals)"
            ]
        );
        assert_eq!(
            one("date_of_birth < '1950-01-01'"),
            [
                "E207 `date_of_birth < '1950-01-01'`: cannot compare a date with a string (`<`) \
              (help: write a date as DATE '2020-03-23')"
            ]
        );
        assert_eq!(
            one("carer < alive"),
            ["E207 `carer < alive`: true/false values cannot be compared with `<`"]
        );
        assert_eq!(
            one("NOT age"),
            ["E208 `age`: NOT needs true/false operands, but this is an int"]
        );
        assert_eq!(
            one("age AND 1"),
            [
                "E208 `age`: AND needs true/false operands, but this is an int",
                "E208 `1`: AND needs true/false operands, but this is an int"
            ]
        );
        // The parser's span of a unary operation is its operand.
        assert_eq!(one("-sex"), ["E207 `sex`: cannot negate a string"]);
        assert_eq!(
            one("age % 2"),
            ["E202 `age % 2`: operator `%` is not supported"]
        );
        assert_eq!(
            one("sex IN ('F', 1)"),
            ["E207 `sex IN ('F', 1`: cannot compare a string with an int (`IN`)"]
        );
        assert_eq!(
            one("age BETWEEN 18 AND '65'"),
            ["E207 `age BETWEEN 18 AND '65'`: cannot compare an int with a string (`BETWEEN`)"]
        );
    }

    #[test]
    fn latest_of_compares_only_with_its_codelist_names() {
        assert!(expr("latest_of(asthma, copd) = 'copd'", false).is_ok());
        assert_eq!(
            expr("latest_of(asthma, copd) = 'astma'", false),
            Err(vec![
                "E212 `'astma'`: latest_of(...) gives `asthma` or `copd`, never 'astma' \
                 (help: did you mean `asthma`?)"
                    .to_string()
            ])
        );
    }

    #[test]
    fn exact_literals_and_spans() {
        assert_eq!(union(&(4..9), &(2..5)), 2..9);
        assert_eq!(union(&(0..1), &(7..8)), 0..8);
        let number = |text: &str| sql::Expr::value(sql::Value::Number(text.to_string(), false));
        assert_eq!(
            exact_literal(&number("0.1")),
            Some(Expr::Literal(Value::Decimal(Decimal::new(1, 1))))
        );
        assert_eq!(
            exact_literal(&number("2E3")),
            Some(Expr::Literal(Value::Decimal(Decimal::new(2000, 0))))
        );
        assert_eq!(
            exact_literal(&sql::Expr::value(sql::Value::SingleQuotedString(
                "1".into()
            ))),
            None
        );
    }
}
