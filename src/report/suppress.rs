//! Small-number rules for the counts in `report.html`.
//!
//! By default a report follows the NHS small-number convention for
//! aggregate counts: a count from 1 to 7 is shown as `1–7` (never as 0,
//! never blank), any other count is rounded to the nearest 5, and zero is
//! shown as 0. A table with totals also gets **secondary suppression**: in
//! every row and column whose total is shown, a hidden cell never stands
//! alone, because the total minus the visible cells would give it back.
//! The next smallest cell of that line is hidden too (shown as `*`), and
//! this repeats until no line has exactly one hidden cell.
//!
//! `--exact-counts` turns all of this off for an internal report; the
//! report always says which rule is in force. Patient-level lists are not
//! aggregates and are never suppressed.

use std::fmt;

/// How a report shows counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Counts {
    /// 1–7 hidden, others rounded to 5, secondary suppression.
    #[default]
    SmallNumbersSuppressed,
    /// Exact numbers (`--exact-counts`), for an internal report.
    Exact,
}

impl Counts {
    /// The sentence the report prints about it.
    pub fn rule(self) -> &'static str {
        match self {
            Counts::SmallNumbersSuppressed => {
                "Counts follow the NHS small-number rules: 1 to 7 is shown as 1–7, other \
                 counts are rounded to the nearest 5, and where a total would reveal a hidden \
                 count another count is hidden too (*). Rates are worked out from the exact \
                 counts and rounded to whole percent; a rate is not shown when its count is 1 \
                 to 7. Run with --exact-counts for exact numbers (internal use only)."
            }
            Counts::Exact => {
                "Exact counts (--exact-counts): for internal use only; small numbers are \
                 not suppressed, so do not share this report outside the practice or PCN."
            }
        }
    }
}

/// One shown count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Exact(u64),
    /// Rounded to the nearest 5 (0 stays 0).
    Rounded(u64),
    /// 1 to 7.
    Small,
    /// Hidden so that a small count cannot be worked out from a total.
    Secondary,
}

impl Shown {
    /// Whether the real count cannot be read from it.
    pub fn is_hidden(self) -> bool {
        matches!(self, Shown::Small | Shown::Secondary)
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shown::Exact(n) | Shown::Rounded(n) => write!(f, "{}", thousands(*n)),
            Shown::Small => f.write_str("1–7"),
            Shown::Secondary => f.write_str("*"),
        }
    }
}

/// `12345` as `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One count on its own (no table around it).
pub fn one(n: u64, rule: Counts) -> Shown {
    match rule {
        Counts::Exact => Shown::Exact(n),
        Counts::SmallNumbersSuppressed => primary(n),
    }
}

fn primary(n: u64) -> Shown {
    match n {
        1..=7 => Shown::Small,
        _ => Shown::Rounded((n + 2) / 5 * 5),
    }
}

/// A table of counts with a total for every row and column (and a grand
/// total), all shown under `rule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub cells: Vec<Vec<Shown>>,
    pub row_totals: Vec<Shown>,
    pub column_totals: Vec<Shown>,
    pub total: Shown,
}

/// Shows `cells` (rows of equal length) with row, column and grand totals.
/// Under suppression, hidden cells never stand alone in a row or column
/// (totals count as visible: they are shown, rounded).
pub fn table(cells: &[Vec<u64>], rule: Counts) -> Table {
    let columns = cells.first().map_or(0, Vec::len);
    let row_sums: Vec<u64> = cells.iter().map(|r| r.iter().sum()).collect();
    let column_sums: Vec<u64> = (0..columns)
        .map(|c| cells.iter().map(|r| r[c]).sum())
        .collect();
    let grand: u64 = row_sums.iter().sum();
    let mut shown: Vec<Vec<Shown>> = cells
        .iter()
        .map(|r| r.iter().map(|&n| one(n, rule)).collect())
        .collect();
    let mut row_totals: Vec<Shown> = row_sums.iter().map(|&n| one(n, rule)).collect();
    let mut column_totals: Vec<Shown> = column_sums.iter().map(|&n| one(n, rule)).collect();
    if rule == Counts::SmallNumbersSuppressed {
        secondary(cells, &mut shown);
        // The totals' own line: hidden totals never stand alone either.
        secondary_line(&row_sums, &mut row_totals);
        secondary_line(&column_sums, &mut column_totals);
    }
    Table {
        cells: shown,
        row_totals,
        column_totals,
        total: one(grand, rule),
    }
}

/// Hides a second cell in any row or column with exactly one hidden cell
/// (the non-zero visible cell with the smallest count), until none is left.
fn secondary(cells: &[Vec<u64>], shown: &mut [Vec<Shown>]) {
    let rows = cells.len();
    let columns = cells.first().map_or(0, Vec::len);
    loop {
        let mut changed = false;
        for r in 0..rows {
            let line: Vec<(usize, usize)> = (0..columns).map(|c| (r, c)).collect();
            changed |= fix_line(cells, shown, &line);
        }
        for c in 0..columns {
            let line: Vec<(usize, usize)> = (0..rows).map(|r| (r, c)).collect();
            changed |= fix_line(cells, shown, &line);
        }
        if !changed {
            break;
        }
    }
}

fn fix_line(cells: &[Vec<u64>], shown: &mut [Vec<Shown>], line: &[(usize, usize)]) -> bool {
    let hidden = line
        .iter()
        .filter(|&&(r, c)| shown[r][c].is_hidden())
        .count();
    if hidden != 1 {
        return false;
    }
    // A zero is known to be zero: hiding it protects nothing.
    let candidate = line
        .iter()
        .filter(|&&(r, c)| !shown[r][c].is_hidden() && cells[r][c] > 0)
        .min_by_key(|&&(r, c)| (cells[r][c], r, c));
    match candidate {
        Some(&(r, c)) => {
            shown[r][c] = Shown::Secondary;
            true
        }
        None => false,
    }
}

/// [`secondary`] for one line of totals (against the grand total).
fn secondary_line(counts: &[u64], shown: &mut [Shown]) {
    let as_table: Vec<Vec<u64>> = vec![counts.to_vec()];
    let mut rows = vec![shown.to_vec()];
    let line: Vec<(usize, usize)> = (0..counts.len()).map(|c| (0, c)).collect();
    fix_line(&as_table, &mut rows, &line);
    shown.copy_from_slice(&rows[0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(t: &Table) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = t
            .cells
            .iter()
            .zip(&t.row_totals)
            .map(|(r, total)| {
                r.iter()
                    .map(ToString::to_string)
                    .chain([total.to_string()])
                    .collect()
            })
            .collect();
        out.push(
            t.column_totals
                .iter()
                .map(ToString::to_string)
                .chain([t.total.to_string()])
                .collect(),
        );
        out
    }

    #[test]
    fn one_count_at_a_time() {
        for (n, shown) in [
            (0, "0"),
            (1, "1–7"),
            (7, "1–7"),
            (8, "10"),
            (12, "10"),
            (13, "15"),
            (102, "100"),
            (103, "105"),
            (12_345, "12,345"),
            (12_346, "12,345"),
            (1_234_568, "1,234,570"),
        ] {
            assert_eq!(
                one(n, Counts::SmallNumbersSuppressed).to_string(),
                shown,
                "{n}"
            );
        }
        assert_eq!(one(3, Counts::Exact).to_string(), "3");
        assert_eq!(one(0, Counts::Exact).to_string(), "0");
    }

    #[test]
    fn a_hidden_cell_never_stands_alone_in_a_row_or_column() {
        // Row 0 has one small cell (3): without a second hidden cell,
        // row total 103 - 100 would give it back. The smallest other
        // non-zero cell of the row (40) is hidden; then column 2 has one
        // hidden cell (40), so its smallest other cell (20) goes too, and
        // row 1 then has one hidden cell, so its smallest other (50) too.
        let t = table(
            &[vec![3, 100, 40], vec![60, 50, 20]],
            Counts::SmallNumbersSuppressed,
        );
        assert_eq!(
            texts(&t),
            [
                ["1–7", "100", "*", "145"],
                ["*", "50", "*", "130"],
                ["65", "150", "60", "275"],
            ]
        );
    }

    #[test]
    fn the_subtraction_attack_fails_on_every_line() {
        let cases: Vec<Vec<Vec<u64>>> = vec![
            vec![vec![3, 100, 40], vec![60, 50, 20]],
            vec![vec![0, 5, 0], vec![9, 0, 120], vec![1, 1, 1]],
            vec![vec![2], vec![200], vec![7]],
            vec![vec![6, 6, 6, 6]],
            vec![vec![1000, 8, 4, 900], vec![30, 30, 30, 30]],
        ];
        for cells in cases {
            let t = table(&cells, Counts::SmallNumbersSuppressed);
            let rows = cells.len();
            let columns = cells[0].len();
            for r in 0..rows {
                let hidden = (0..columns).filter(|&c| t.cells[r][c].is_hidden()).count();
                // As for columns below: a lone hidden cell among zeros is
                // protected by hiding the row total.
                let others_zero =
                    (0..columns).all(|c| t.cells[r][c].is_hidden() || cells[r][c] == 0);
                assert!(
                    hidden != 1 || others_zero && t.row_totals[r].is_hidden(),
                    "row {r} of {cells:?}: {:?}",
                    texts(&t)
                );
            }
            for c in 0..columns {
                let hidden = (0..rows).filter(|&r| t.cells[r][c].is_hidden()).count();
                // A column whose other cells are all zero cannot be
                // protected by hiding a zero; its total is hidden instead.
                let others_zero = (0..rows).all(|r| t.cells[r][c].is_hidden() || cells[r][c] == 0);
                assert!(
                    hidden != 1 || others_zero && t.column_totals[c].is_hidden(),
                    "column {c} of {cells:?}: {:?}",
                    texts(&t)
                );
            }
            // Every count from 1 to 7 is hidden, and nothing shows as 0
            // unless it is 0.
            for (counts, shown) in cells.iter().zip(&t.cells) {
                for (&n, s) in counts.iter().zip(shown) {
                    if (1..=7).contains(&n) {
                        assert_eq!(*s, Shown::Small);
                    }
                    if s.to_string() == "0" {
                        assert_eq!(n, 0);
                    }
                }
            }
        }
    }

    #[test]
    fn exact_counts_show_everything() {
        let t = table(&[vec![3, 100], vec![0, 2]], Counts::Exact);
        assert_eq!(
            texts(&t),
            [["3", "100", "103"], ["0", "2", "2"], ["3", "102", "105"]]
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_000_000), "10,000,000");
    }
}
