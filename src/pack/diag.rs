//! Diagnostics for rule packs: error codes, source locations, and the
//! rustc/ruff-style rendering `strata check` prints.
//!
//! A [`Diagnostic`] is resolved to line, column and source line when it is
//! made, so [`PackErrors`] can be displayed without the files at hand.

use std::fmt;
use std::ops::Range;

/// Every kind of problem `check` reports. The codes are stable and
/// documented in `rules/FORMAT.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorCode {
    /// E001: the TOML itself does not parse.
    TomlSyntax,
    /// E002: a key the format does not know.
    UnknownKey,
    /// E003: a required key is missing.
    MissingKey,
    /// E004: a value of the wrong TOML type.
    WrongValueType,
    /// E005: a value of the right type that is not allowed.
    InvalidValue,
    /// E006: two things with the same name or id.
    DuplicateName,
    /// E007: the pack folder or `pack.toml` cannot be read.
    UnreadablePack,
    /// E101: a codelist file is missing or unreadable.
    CodelistFile,
    /// E102: a codelist CSV without a `code` column, or malformed CSV.
    CodelistFormat,
    /// E103: a row with an empty code.
    EmptyCode,
    /// E104: the same code twice in one codelist.
    DuplicateCode,
    /// E105: a codelist with no codes at all.
    EmptyCodelist,
    /// E201: an expression that is not valid SQL.
    SqlSyntax,
    /// E202: an unsupported SQL construct.
    Unsupported,
    /// E203: an unknown feature, column or builtin name.
    UnknownName,
    /// E204: an unknown codelist.
    UnknownCodelist,
    /// E205: an unknown function.
    UnknownFunction,
    /// E206: wrong number or kind of function arguments.
    BadArguments,
    /// E207: operands whose types do not fit together.
    TypeMismatch,
    /// E208: a condition that is not boolean.
    NotBoolean,
    /// E209: a window that cannot be parsed.
    BadWindow,
    /// E210: features that depend on each other in a cycle.
    FeatureCycle,
    /// E211: `score` used outside a tier condition.
    ScoreOutsideTier,
    /// E212: `latest_of(a, b)` compared with a string that is neither name.
    LatestOfLiteral,
    /// E301: a reason placeholder that names no feature.
    UnknownPlaceholder,
    /// E302: a tier that can never match.
    UnreachableTier,
    /// E303: an unknown tier id.
    UnknownTier,
    /// E401: a pack named in `[uses]` cannot be read or has errors.
    UsedPack,
    /// E402: packs that use each other in a cycle.
    PackCycle,
}

impl ErrorCode {
    pub fn code(self) -> &'static str {
        use ErrorCode::*;
        match self {
            TomlSyntax => "E001",
            UnknownKey => "E002",
            MissingKey => "E003",
            WrongValueType => "E004",
            InvalidValue => "E005",
            DuplicateName => "E006",
            UnreadablePack => "E007",
            CodelistFile => "E101",
            CodelistFormat => "E102",
            EmptyCode => "E103",
            DuplicateCode => "E104",
            EmptyCodelist => "E105",
            SqlSyntax => "E201",
            Unsupported => "E202",
            UnknownName => "E203",
            UnknownCodelist => "E204",
            UnknownFunction => "E205",
            BadArguments => "E206",
            TypeMismatch => "E207",
            NotBoolean => "E208",
            BadWindow => "E209",
            FeatureCycle => "E210",
            ScoreOutsideTier => "E211",
            LatestOfLiteral => "E212",
            UnknownPlaceholder => "E301",
            UnreachableTier => "E302",
            UnknownTier => "E303",
            UsedPack => "E401",
            PackCycle => "E402",
        }
    }
}

/// Where in a file a diagnostic points, already resolved for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The whole source line, without its line ending.
    pub line_text: String,
    /// How many characters to underline (at least 1).
    pub width: usize,
}

/// One problem found in a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: ErrorCode,
    pub message: String,
    /// The file as the caller named it (`rules/x/pack.toml`).
    pub file: String,
    pub location: Option<Location>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn with_help(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => writeln!(
                f,
                "{}:{}:{}: error[{}]: {}",
                self.file,
                loc.line,
                loc.column,
                self.code.code(),
                self.message
            )?,
            None => writeln!(
                f,
                "{}: error[{}]: {}",
                self.file,
                self.code.code(),
                self.message
            )?,
        }
        if let Some(loc) = &self.location {
            let gutter = loc.line.to_string();
            let pad = " ".repeat(gutter.len());
            // A very long line (a generated expression) is cut to the part
            // the caret points at.
            const SHOWN: usize = 200;
            let chars: Vec<char> = loc.line_text.chars().collect();
            let start = loc.column.saturating_sub(1).min(chars.len());
            let (from, cut_before) = if chars.len() > SHOWN && start > SHOWN / 2 {
                (start - SHOWN / 2, true)
            } else {
                (0, false)
            };
            let to = chars.len().min(from + SHOWN);
            let shown: String = chars[from..to].iter().collect();
            let (before, after) = (
                if cut_before { "…" } else { "" },
                if to < chars.len() { "…" } else { "" },
            );
            writeln!(f, "{gutter} | {before}{shown}{after}")?;
            // Tabs keep their width so the caret lines up under them.
            let lead: String = std::iter::repeat_n(' ', before.chars().count())
                .chain(
                    chars[from..start]
                        .iter()
                        .map(|&c| if c == '\t' { '\t' } else { ' ' }),
                )
                .collect();
            let width = loc.width.max(1).min(to.saturating_sub(start).max(1));
            writeln!(f, "{pad} | {lead}{}", "^".repeat(width))?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

/// Everything wrong with a pack, all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PackErrors {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for PackErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        let n = self.diagnostics.len();
        write!(
            f,
            "\n{n} error{} found in the rule pack",
            if n == 1 { "" } else { "s" }
        )
    }
}

/// A file's text with a display name, for turning byte spans into
/// diagnostics.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub display: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(display: String, text: String) -> SourceFile {
        SourceFile { display, text }
    }

    /// A diagnostic pointing at `span` (byte offsets into the text).
    pub fn error(
        &self,
        code: ErrorCode,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            code,
            message: message.into(),
            file: self.display.clone(),
            location: span.map(|s| self.locate(s)),
            help: None,
        }
    }

    /// Resolves a byte span to line, column and underline width; a span
    /// crossing lines is underlined to the end of its first line.
    pub fn locate(&self, span: Range<usize>) -> Location {
        let text = &self.text;
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line_text = text[line_start..line_end].trim_end_matches('\r');
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let width = text[start..end.min(line_end)]
            .trim_end_matches('\r')
            .chars()
            .count()
            .max(1);
        Location {
            line,
            column,
            line_text: line_text.to_string(),
            width,
        }
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The closest candidate to a misspelt name, if any is close enough to be
/// a plausible typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = name.to_lowercase();
    let limit = name.chars().count().div_ceil(3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_and_caret() {
        let file = SourceFile::new(
            "rules/x/pack.toml".into(),
            "[pack]\nid = \"x\"\nwhen = \"has(lonely)\"\n".into(),
        );
        let d = file
            .error(
                ErrorCode::UnknownCodelist,
                Some(28..34),
                "unknown codelist `lonely`",
            )
            .with_help(Some("did you mean `lonely2`?".into()));
        assert_eq!(
            d.to_string(),
            "rules/x/pack.toml:3:13: error[E204]: unknown codelist `lonely`\n\
             3 | when = \"has(lonely)\"\n  \
             |             ^^^^^^\n  \
             = help: did you mean `lonely2`?\n"
        );
    }

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(
            did_you_mean("lives_alon", ["lives_alone", "age"]),
            Some("did you mean `lives_alone`?".into())
        );
        assert_eq!(did_you_mean("zzz", ["lives_alone", "age"]), None);
        assert_eq!(
            did_you_mean("titel", ["title", "id"]),
            Some("did you mean `title`?".into())
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
