//! SQL inside TOML: parsing an expression string from `pack.toml`, and
//! mapping the positions the SQL parser reports (line and column within the
//! expression) back to byte offsets in the file, so diagnostics underline
//! the offending text where the author wrote it.

use std::ops::Range;

use sqlparser::ast::{self as sql, Spanned};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Span, Token};

use super::Sink;
use crate::pack::diag::ErrorCode;
use crate::pack::raw::Sp;

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
            // TOML drops a newline right after the opening quotes.
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

/// Byte offset in `text` of a 1-based (line, column-in-characters)
/// position; a column past the end of its line gives the line's end.
pub(super) fn offset_of(text: &str, line: u64, column: u64) -> Option<usize> {
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
pub(super) struct SqlSource<'a> {
    pub(super) text: &'a str,
    pub(super) origin: StringOrigin,
}

impl<'a> SqlSource<'a> {
    /// The expression in `s`, a string of the file whose text is `file_text`.
    pub(super) fn new(file_text: &str, s: &'a Sp<String>) -> SqlSource<'a> {
        SqlSource {
            text: &s.value,
            origin: StringOrigin::of(file_text, s),
        }
    }

    /// The file span of a span the SQL parser reports.
    pub(super) fn span(&self, span: Span) -> Range<usize> {
        let start = offset_of(self.text, span.start.line, span.start.column);
        let end = offset_of(self.text, span.end.line, span.end.column);
        match (start, end) {
            (Some(s), Some(e)) if e >= s => self.origin.map(s..e),
            (Some(s), _) => self.origin.map(s..s + 1),
            _ => self.origin.whole(),
        }
    }

    /// The file span of a parsed expression; the whole string when the
    /// parser kept no position for it.
    pub(super) fn span_of(&self, e: &sql::Expr) -> Range<usize> {
        let s = e.span();
        if s.start.line == 0 {
            self.origin.whole()
        } else {
            self.span(s)
        }
    }
}

/// Parses the expression in `s`: exactly one SQL expression, nothing after.
pub(super) fn parse_sql(sink: &mut Sink<'_>, s: &Sp<String>) -> Option<sql::Expr> {
    let src = SqlSource::new(sink.text(), s);
    if s.value.trim().is_empty() {
        sink.error(
            ErrorCode::SqlSyntax,
            s.span.clone(),
            "the expression is empty",
        );
        return None;
    }
    let dialect = GenericDialect {};
    let parsed = Parser::new(&dialect)
        .try_with_sql(&s.value)
        .and_then(|mut parser| Ok((parser.parse_expr()?, parser.peek_token())));
    let (expr, next) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let (message, span) = split_parser_location(&error_text(&e), &src);
            sink.error(
                ErrorCode::SqlSyntax,
                span,
                format!("cannot parse the expression: {message}"),
            );
            return None;
        }
    };
    if next.token != Token::EOF {
        sink.error(
            ErrorCode::SqlSyntax,
            src.span(next.span),
            format!(
                "cannot parse the expression: unexpected `{}` after a complete expression",
                next.token
            ),
        );
        return None;
    }
    if nests_deeper_than(&expr, MAX_DEPTH) {
        sink.error(
            ErrorCode::Unsupported,
            s.span.clone(),
            format!(
                "the expression is nested more than {MAX_DEPTH} operators deep (a long chain of \
                 AND / OR / + counts one level per operator)"
            ),
        )
        .help(Some(
            "split it into features, e.g. one feature per group of conditions".to_string(),
        ));
        return None;
    }
    Some(expr)
}

/// The deepest expression the checker, planner and evaluators accept: they
/// walk the tree recursively, and sqlparser builds `a OR b OR ...` as a
/// chain one level deeper per operator.
const MAX_DEPTH: usize = 256;

/// Whether `e` is more than `limit` levels deep. Recurses at most `limit`
/// levels itself, so it is safe on any tree.
fn nests_deeper_than(e: &sql::Expr, limit: usize) -> bool {
    use sql::Expr as S;
    let Some(next) = limit.checked_sub(1) else {
        return true;
    };
    let deep = |x: &sql::Expr| nests_deeper_than(x, next);
    match e {
        S::BinaryOp { left, right, .. } => deep(left) || deep(right),
        S::UnaryOp { expr, .. }
        | S::Nested(expr)
        | S::IsNull(expr)
        | S::IsNotNull(expr)
        | S::IsTrue(expr)
        | S::IsFalse(expr)
        | S::Cast { expr, .. } => deep(expr),
        S::Between {
            expr, low, high, ..
        } => deep(expr) || deep(low) || deep(high),
        S::In {
            expr,
            target: sql::InTarget::List(list),
            ..
        } => deep(expr) || list.iter().any(deep),
        S::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(deep)
                || conditions
                    .iter()
                    .any(|w| deep(&w.condition) || deep(&w.result))
                || else_result.as_deref().is_some_and(deep)
        }
        S::Function(f) => match &f.args {
            sql::FunctionArguments::List(l) => l.args.iter().any(|a| match a {
                sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(x))
                | sql::FunctionArg::Named {
                    arg: sql::FunctionArgExpr::Expr(x),
                    ..
                } => deep(x),
                _ => false,
            }),
            _ => false,
        },
        S::Array(a) => a.elem.iter().any(deep),
        _ => false,
    }
}

fn error_text(e: &ParserError) -> String {
    match e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.clone(),
        ParserError::RecursionLimitExceeded => "the expression is nested too deeply".into(),
    }
}

/// Splits sqlparser's " at Line: L, Column: C" suffix off a message and
/// turns it into a file span: one character there, or the end of the
/// expression when the parser ran out of input.
fn split_parser_location(message: &str, src: &SqlSource<'_>) -> (String, Range<usize>) {
    if let Some(pos) = message.rfind(" at Line: ") {
        let tail = &message[pos + " at Line: ".len()..];
        let mut it = tail.split(", Column: ");
        let line = it.next().and_then(|l| l.trim().parse::<u64>().ok());
        let col = it.next().and_then(|c| c.trim().parse::<u64>().ok());
        if let (Some(line), Some(col)) = (line, col) {
            let msg = message[..pos].to_string();
            let span = match offset_of(src.text, line, col) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::check::testing::{briefs, file_with};
    use crate::pack::diag::SourceFile;

    #[test]
    fn a_plain_string_maps_byte_for_byte() {
        let (file, s) = file_with("when = \"age >= 18\"\n", "when");
        assert_eq!(s.span, 7..18);
        let origin = StringOrigin::of(&file.text, &s);
        assert_eq!(origin.map(0..3), 8..11);
        assert_eq!(&file.text[origin.map(7..9)], "18");
        assert_eq!(origin.whole(), 7..18);
    }

    #[test]
    fn a_multi_line_string_skips_the_newline_after_its_quotes() {
        let text =
            "[features.c]\nexpr = \"\"\"\ncount_distinct_codelists([asthma,\n  copd])\"\"\"\n";
        let (file, s) = file_with(text, "expr");
        assert_eq!(s.value, "count_distinct_codelists([asthma,\n  copd])");
        let origin = StringOrigin::of(&file.text, &s);
        let src = SqlSource::new(&file.text, &s);
        // `copd` is line 2, column 3 of the expression.
        let at = offset_of(src.text, 2, 3).expect("inside");
        assert_eq!(at, 36);
        assert_eq!(&file.text[origin.map(at..at + 4)], "copd");
        let location = file.locate(origin.map(at..at + 4));
        assert_eq!((location.line, location.column, location.width), (4, 3, 4));
    }

    #[test]
    fn a_string_with_escapes_is_shown_whole() {
        let (file, s) = file_with("when = \"sex = \\\"F\\\"\"\n", "when");
        assert_eq!(s.value, "sex = \"F\"");
        let origin = StringOrigin::of(&file.text, &s);
        assert_eq!(origin.map(6..9), 7..20);
        assert_eq!(origin.whole(), 7..20);
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        let text = "a\n£5 + x\n";
        assert_eq!(offset_of(text, 1, 1), Some(0));
        assert_eq!(offset_of(text, 2, 1), Some(2));
        // `£` is two bytes, so column 2 of line 2 is byte 4.
        assert_eq!(offset_of(text, 2, 2), Some(4));
        assert_eq!(offset_of(text, 2, 3), Some(5));
        assert_eq!(offset_of(text, 2, 99), Some(9));
        assert_eq!(offset_of(text, 4, 1), None);
        assert_eq!(offset_of(text, 0, 1), None);
        assert_eq!(offset_of(text, 1, 0), None);
    }

    #[test]
    fn parser_locations_become_file_spans() {
        let (file, s) = file_with("when = \"age >= )\"\n", "when");
        let src = SqlSource::new(&file.text, &s);
        let (message, span) = split_parser_location(
            "Expected: an expression, found: ) at Line: 1, Column: 8",
            &src,
        );
        assert_eq!(message, "Expected: an expression, found: )");
        assert_eq!(span, 15..16);
        assert_eq!(&file.text[span], ")");

        let (message, span) = split_parser_location("Expected: ), found: EOF", &src);
        assert_eq!(message, "Expected: ), found: EOF");
        assert_eq!(span, 16..16);

        let (message, span) = split_parser_location("something else", &src);
        assert_eq!(message, "something else");
        assert_eq!(span, 7..17);
    }

    fn parse(text: &str) -> Result<sql::Expr, Vec<String>> {
        let (file, s) = file_with(text, "when");
        let mut diags = Vec::new();
        let parsed = parse_sql(&mut Sink::new(&file, &mut diags), &s);
        parsed.ok_or_else(|| briefs(&diags))
    }

    #[test]
    fn parse_errors_point_at_the_offending_text() {
        assert_eq!(
            parse("when = \"has(x) y\"\n").unwrap_err(),
            ["E201 `y`: cannot parse the expression: unexpected `y` after a complete expression"]
        );
        assert_eq!(
            parse("when = \"  \"\n").unwrap_err(),
            ["E201 `\"  \"`: the expression is empty"]
        );
        assert_eq!(
            parse("when = \"age >= \"\n").unwrap_err(),
            ["E201 `\"`: cannot parse the expression: Expected: an expression, found: EOF"]
        );
        assert!(parse("when = '''age >= 18'''\n").is_ok());
    }

    #[test]
    fn the_file_span_of_a_parsed_expression() {
        let file = SourceFile::new("pack.toml".into(), "x = 'age + 1'\n".into());
        let s = Sp {
            value: "age + 1".to_string(),
            span: 4..13,
        };
        let mut diags = Vec::new();
        let ast = parse_sql(&mut Sink::new(&file, &mut diags), &s).expect("parses");
        let src = SqlSource::new(&file.text, &s);
        assert_eq!(&file.text[src.span_of(&ast)], "age + 1");
        let sql::Expr::BinaryOp { right, .. } = &ast else {
            panic!("not a binary operation: {ast:?}");
        };
        assert_eq!(&file.text[src.span_of(right)], "1");
    }
}
