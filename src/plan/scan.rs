//! The scan plan: which accumulators the event scan keeps per person, and
//! how each event table's codes map to match sets (the sets of codelists a code belongs to).

use hashbrown::HashMap;

/// What an accumulator keeps per person over the events of one codelist
/// within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccKind {
    /// Whether any event matched (has, count_distinct_codelists): one bit.
    Any,
    Count,
    /// How many distinct (exactly listed) codes matched: (person, code)
    /// pairs while scanning, a count per person when the scan ends.
    DistinctCodes,
    /// On how many distinct days any event matched: (person, day) pairs
    /// while scanning, a count per person when the scan ends.
    DistinctDays,
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
///
/// Every code maps to a *match set*: the set of this table's codelists it
/// belongs to, numbered once at plan time (0 is the empty set). Match sets
/// are precomputed for every code a codelist lists and for every chain of
/// prefixes, so there is no limit on the number of codelists per table and
/// an event carries one small number, not a bitset.
#[derive(Debug, Clone)]
pub struct TableScan {
    pub table: String,
    /// Pack codelist index of each of this table's codelists in use.
    pub codelists: Vec<usize>,
    /// Match set of each exactly listed code (its prefix matches included).
    exact: HashMap<String, u32>,
    /// Match set of the prefix chain ending at each listed prefix.
    prefix: HashMap<String, u32>,
    longest_prefix: usize,
    /// For each match set: (accumulator index, lower date bound) to feed.
    pub accs_by_set: Vec<Vec<(usize, i32)>>,
    uses: Vec<bool>,
    /// Whether an accumulator of this table keeps event values (else the
    /// scan does not decode the `value` column).
    pub reads_values: bool,
    /// Id of each exactly listed code of this table's codelists, for
    /// counting distinct codes (empty when no accumulator does).
    code_ids: HashMap<String, u32>,
}

impl TableScan {
    /// The match set of `code` (0: no codelist of this table).
    pub fn match_set(&self, code: &str) -> u32 {
        let code = normalise_code(code);
        if let Some(&m) = self.exact.get(code.as_str()) {
            return m;
        }
        if self.prefix.is_empty() {
            return 0;
        }
        // The longest listed prefix decides: its set holds every shorter one.
        let ends: Vec<usize> = code
            .char_indices()
            .skip(1)
            .map(|(i, _)| i)
            .chain(std::iter::once(code.len()))
            .filter(|&end| end <= self.longest_prefix)
            .collect();
        ends.iter()
            .rev()
            .find_map(|&end| self.prefix.get(&code[..end]).copied())
            .unwrap_or(0)
    }

    /// The id of an exactly listed code (`u32::MAX`: not one).
    pub fn code_id(&self, code: &str) -> u32 {
        if self.code_ids.is_empty() {
            return u32::MAX;
        }
        self.code_ids
            .get(normalise_code(code).as_str())
            .copied()
            .unwrap_or(u32::MAX)
    }

    /// Whether an accumulator of this table counts distinct codes.
    pub fn reads_codes(&self) -> bool {
        !self.code_ids.is_empty()
    }

    /// Number of distinct match sets (including the empty set).
    pub fn match_sets(&self) -> usize {
        self.accs_by_set.len()
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
    /// Every codelist of the pack (for names in messages and plans).
    pub codelists: Vec<CodelistDef>,
    pub tables: Vec<TableScan>,
}

/// Interns sets of codelists (sorted, deduplicated) as match-set numbers.
struct SetInterner {
    ids: HashMap<Vec<usize>, u32>,
    sets: Vec<Vec<usize>>,
}

impl SetInterner {
    fn new() -> SetInterner {
        SetInterner {
            ids: HashMap::from([(Vec::new(), 0)]),
            sets: vec![Vec::new()],
        }
    }

    fn id(&mut self, mut set: Vec<usize>) -> u32 {
        set.sort_unstable();
        set.dedup();
        if let Some(&id) = self.ids.get(&set) {
            return id;
        }
        let id = self.sets.len() as u32;
        self.sets.push(set.clone());
        self.ids.insert(set, id);
        id
    }
}

impl ScanPlan {
    /// Builds the scan for `accs` over `codelists`.
    pub fn build(codelists: &[CodelistDef], accs: Vec<AccSpec>) -> ScanPlan {
        let mut table_names: Vec<&str> = Vec::new();
        for acc in &accs {
            let t = codelists[acc.codelist].table.as_str();
            if !table_names.contains(&t) {
                table_names.push(t);
            }
        }
        let tables = table_names
            .into_iter()
            .map(|table| Self::table_scan(codelists, &accs, table))
            .collect();
        ScanPlan {
            accs,
            codelists: codelists.to_vec(),
            tables,
        }
    }

    fn table_scan(codelists: &[CodelistDef], accs: &[AccSpec], table: &str) -> TableScan {
        let mut used: Vec<usize> = accs
            .iter()
            .map(|a| a.codelist)
            .filter(|&c| codelists[c].table == table)
            .collect();
        used.sort_unstable();
        used.dedup();
        // Which codelists list each code exactly, and each prefix.
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut prefix: HashMap<String, Vec<usize>> = HashMap::new();
        for &c in &used {
            let cl = &codelists[c];
            let map = match cl.matching {
                CodeMatch::Exact => &mut exact,
                CodeMatch::Prefix => &mut prefix,
            };
            for code in &cl.codes {
                map.entry(normalise_code(code)).or_default().push(c);
            }
        }
        let longest_prefix = prefix.keys().map(String::len).max().unwrap_or(0);
        // Every listed prefix that is a prefix of `code` (the code itself included).
        let chain = |code: &str| -> Vec<usize> {
            let mut out = Vec::new();
            for (end, _) in code
                .char_indices()
                .skip(1)
                .chain(std::iter::once((code.len(), ' ')))
            {
                if end > longest_prefix {
                    break;
                }
                if let Some(cs) = prefix.get(&code[..end]) {
                    out.extend(cs);
                }
            }
            out
        };
        let mut sets = SetInterner::new();
        let mut exact_ids = HashMap::with_capacity(exact.len());
        let mut keys: Vec<&String> = exact.keys().collect();
        keys.sort();
        for code in keys {
            let mut set = exact[code].clone();
            set.extend(chain(code));
            exact_ids.insert(code.clone(), sets.id(set));
        }
        let mut prefix_ids = HashMap::with_capacity(prefix.len());
        let mut keys: Vec<&String> = prefix.keys().collect();
        keys.sort();
        for code in keys {
            prefix_ids.insert(code.clone(), sets.id(chain(code)));
        }
        let mut uses = vec![false; accs.len()];
        let accs_by_set = sets
            .sets
            .iter()
            .map(|set| {
                accs.iter()
                    .enumerate()
                    .filter(|(_, a)| set.contains(&a.codelist))
                    .map(|(i, a)| {
                        uses[i] = true;
                        (i, a.lower)
                    })
                    .collect()
            })
            .collect();
        let reads_values = accs.iter().any(|a| {
            codelists[a.codelist].table == table
                && matches!(
                    a.kind,
                    AccKind::LastValue | AccKind::MinValue | AccKind::MaxValue
                )
        });
        let reads_codes = accs
            .iter()
            .any(|a| codelists[a.codelist].table == table && a.kind == AccKind::DistinctCodes);
        let code_ids = if reads_codes {
            let mut codes: Vec<&String> = exact_ids.keys().collect();
            codes.sort();
            codes
                .into_iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i as u32))
                .collect()
        } else {
            HashMap::new()
        };
        TableScan {
            code_ids,
            reads_values,
            table: table.to_string(),
            codelists: used,
            exact: exact_ids,
            prefix: prefix_ids,
            longest_prefix,
            accs_by_set,
            uses,
        }
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

    fn acc(codelist: usize, lower: i32) -> AccSpec {
        AccSpec {
            kind: AccKind::Count,
            codelist,
            lower,
        }
    }

    /// The pack codelists a code matches, through its match set.
    fn matched(t: &TableScan, plan: &ScanPlan, code: &str) -> Vec<usize> {
        let set = t.match_set(code) as usize;
        t.accs_by_set[set]
            .iter()
            .map(|&(a, _)| plan.accs[a].codelist)
            .collect()
    }

    #[test]
    fn prefix_and_exact_matching() {
        let plan = ScanPlan::build(&defs(), vec![acc(0, i32::MIN), acc(1, 100)]);
        let adm = &plan.tables[0];
        assert_eq!(matched(adm, &plan, "I21.9"), [0]);
        assert_eq!(matched(adm, &plan, "I219"), [0]);
        assert_eq!(matched(adm, &plan, "I2"), Vec::<usize>::new());
        assert_eq!(matched(adm, &plan, "I221"), [0]);
        assert_eq!(matched(adm, &plan, "I220"), Vec::<usize>::new());
        assert_eq!(adm.match_set("J44"), 0);
        let ev = &plan.tables[1];
        assert_eq!(matched(ev, &plan, "44054006"), [1]);
        assert_eq!(ev.match_set("440540060"), 0);
        assert!(adm.uses_acc(0) && !adm.uses_acc(1));
        assert_eq!(
            ev.accs_by_set[ev.match_set("44054006") as usize],
            vec![(1, 100)]
        );
    }

    #[test]
    fn nested_prefixes_and_exact_codes_combine() {
        let defs = vec![
            CodelistDef {
                name: "circulatory".into(),
                table: "admissions".into(),
                matching: CodeMatch::Prefix,
                codes: vec!["I".into()],
            },
            CodelistDef {
                name: "ami".into(),
                table: "admissions".into(),
                matching: CodeMatch::Prefix,
                codes: vec!["I21".into()],
            },
            CodelistDef {
                name: "stemi".into(),
                table: "admissions".into(),
                matching: CodeMatch::Exact,
                codes: vec!["I210".into()],
            },
        ];
        let plan = ScanPlan::build(&defs, vec![acc(0, 0), acc(1, 0), acc(2, 0)]);
        let t = &plan.tables[0];
        assert_eq!(matched(t, &plan, "I21.0"), [0, 1, 2]);
        assert_eq!(matched(t, &plan, "I219"), [0, 1]);
        assert_eq!(matched(t, &plan, "I50"), [0]);
        assert_eq!(matched(t, &plan, "J44"), Vec::<usize>::new());
    }

    #[test]
    fn more_than_64_codelists_on_one_table() {
        let defs: Vec<CodelistDef> = (0..130)
            .map(|i| CodelistDef {
                name: format!("c{i}"),
                table: "admissions".into(),
                matching: CodeMatch::Prefix,
                codes: vec![format!("A{i:03}")],
            })
            .collect();
        let accs = (0..130).map(|i| acc(i, i32::MIN)).collect();
        let plan = ScanPlan::build(&defs, accs);
        let t = &plan.tables[0];
        assert_eq!(t.codelists.len(), 130);
        assert_eq!(matched(t, &plan, "A1299"), [129]);
        assert_eq!(matched(t, &plan, "A064"), [64]);
        assert_eq!(matched(t, &plan, "A000"), [0]);
    }
}
