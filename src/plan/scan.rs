//! The scan plan: which accumulators the event scan keeps per person, and
//! how each event table's codes map to codelist bitsets.

use hashbrown::HashMap;

/// What an accumulator keeps per person over the events of one codelist
/// within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccKind {
    /// Whether any event matched (has, count_distinct_codelists): one byte.
    Any,
    Count,
    MinDate,
    MaxDate,
    LastValue,
    MinValue,
    MaxValue,
}

/// One per-person accumulator: a kind over one codelist, counting events
/// dated from `lower` (inclusive; `i32::MIN` for ever) to the as-of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccSpec {
    pub kind: AccKind,
    pub codelist: usize,
    pub lower: i32,
}

/// How codes of a codelist are matched against event codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMatch {
    Exact,
    /// The event code starts with a listed code (ICD-10: `I21` matches `I219`).
    Prefix,
}

/// A codelist as the scan needs it: normalised codes bound to a table.
#[derive(Debug, Clone)]
pub struct CodelistDef {
    pub name: String,
    pub table: String,
    pub matching: CodeMatch,
    pub codes: Vec<String>,
}

pub use crate::pack::normalise_code;

/// How one event table is scanned.
#[derive(Debug, Clone)]
pub struct TableScan {
    pub table: String,
    /// Pack codelist index of each bit.
    pub bits: Vec<usize>,
    exact: HashMap<String, u64>,
    prefix: HashMap<String, u64>,
    longest_prefix: usize,
    /// For each bit: (accumulator index, lower date bound).
    pub accs_by_bit: Vec<Vec<(usize, i32)>>,
    uses: Vec<bool>,
}

impl TableScan {
    /// The bitset of this table's codelists that `code` belongs to.
    pub fn mask_of(&self, code: &str) -> u64 {
        let code = normalise_code(code);
        let mut mask = self.exact.get(code.as_str()).copied().unwrap_or(0);
        if !self.prefix.is_empty() {
            for (end, _) in code
                .char_indices()
                .skip(1)
                .chain(std::iter::once((code.len(), ' ')))
            {
                if end > self.longest_prefix {
                    break;
                }
                mask |= self.prefix.get(&code[..end]).copied().unwrap_or(0);
            }
        }
        mask
    }

    /// Whether accumulator `a` is fed by this table.
    pub fn uses_acc(&self, a: usize) -> bool {
        self.uses.get(a).copied().unwrap_or(false)
    }
}

/// All accumulators of a plan and the scans of the tables that feed them.
#[derive(Debug, Clone)]
pub struct ScanPlan {
    pub accs: Vec<AccSpec>,
    pub tables: Vec<TableScan>,
}

/// At most this many codelists may be bound to one event table (one bit each).
pub const MAX_CODELISTS_PER_TABLE: usize = 64;

impl ScanPlan {
    /// Builds the scan for `accs` over `codelists`. Fails (with the table
    /// name) if a table has more codelists in use than fit in a bitset.
    pub fn build(codelists: &[CodelistDef], accs: Vec<AccSpec>) -> Result<ScanPlan, String> {
        let mut tables: Vec<TableScan> = Vec::new();
        for (a, acc) in accs.iter().enumerate() {
            let cl = &codelists[acc.codelist];
            let t = match tables.iter().position(|t| t.table == cl.table) {
                Some(t) => t,
                None => {
                    tables.push(TableScan {
                        table: cl.table.clone(),
                        bits: Vec::new(),
                        exact: HashMap::new(),
                        prefix: HashMap::new(),
                        longest_prefix: 0,
                        accs_by_bit: Vec::new(),
                        uses: vec![false; accs.len()],
                    });
                    tables.len() - 1
                }
            };
            let scan = &mut tables[t];
            let bit = match scan.bits.iter().position(|&c| c == acc.codelist) {
                Some(b) => b,
                None => {
                    if scan.bits.len() == MAX_CODELISTS_PER_TABLE {
                        return Err(format!(
                            "table `{}` has more than {MAX_CODELISTS_PER_TABLE} codelists in use",
                            cl.table
                        ));
                    }
                    scan.bits.push(acc.codelist);
                    scan.accs_by_bit.push(Vec::new());
                    let b = scan.bits.len() - 1;
                    for code in &cl.codes {
                        let code = normalise_code(code);
                        match cl.matching {
                            CodeMatch::Exact => *scan.exact.entry(code).or_insert(0) |= 1 << b,
                            CodeMatch::Prefix => {
                                scan.longest_prefix = scan.longest_prefix.max(code.len());
                                *scan.prefix.entry(code).or_insert(0) |= 1 << b;
                            }
                        }
                    }
                    b
                }
            };
            scan.accs_by_bit[bit].push((a, acc.lower));
            scan.uses[a] = true;
        }
        Ok(ScanPlan { accs, tables })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Vec<CodelistDef> {
        vec![
            CodelistDef {
                name: "ami".into(),
                table: "admissions".into(),
                matching: CodeMatch::Prefix,
                codes: vec!["I21".into(), "i22.1".into()],
            },
            CodelistDef {
                name: "dm".into(),
                table: "events".into(),
                matching: CodeMatch::Exact,
                codes: vec!["44054006".into()],
            },
        ]
    }

    #[test]
    fn codes_are_normalised() {
        assert_eq!(normalise_code(" i21.0 "), "I210");
        assert_eq!(normalise_code("44054006"), "44054006");
    }

    #[test]
    fn prefix_and_exact_matching() {
        let accs = vec![
            AccSpec {
                kind: AccKind::Count,
                codelist: 0,
                lower: i32::MIN,
            },
            AccSpec {
                kind: AccKind::MaxDate,
                codelist: 1,
                lower: 100,
            },
        ];
        let plan = ScanPlan::build(&defs(), accs).unwrap();
        let adm = &plan.tables[0];
        assert_eq!(adm.mask_of("I21.9"), 1);
        assert_eq!(adm.mask_of("I219"), 1);
        assert_eq!(adm.mask_of("I2"), 0);
        assert_eq!(adm.mask_of("I221"), 1);
        assert_eq!(adm.mask_of("I220"), 0);
        assert_eq!(adm.mask_of("J44"), 0);
        let ev = &plan.tables[1];
        assert_eq!(ev.mask_of("44054006"), 1);
        assert_eq!(ev.mask_of("440540060"), 0);
        assert!(adm.uses_acc(0) && !adm.uses_acc(1));
        assert_eq!(ev.accs_by_bit[0], vec![(1, 100)]);
    }
}
