//! The checked model of a rule pack: what `load` returns and what the
//! engine and the reference evaluator consume. Every name is resolved and
//! every expression type-checked; nothing here can fail at run time for
//! reasons the checker could have seen.

use rust_decimal::Decimal;

use super::codelist::Codelist;
use super::expr::{Expr, Type, Value};

/// A checked rule pack.
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    pub meta: PackMeta,
    /// SHA-256 (hex) over `pack.toml`, the codelist files in codelist
    /// name order and the hashes of the packs it uses: any edit to the
    /// pack, or to a pack it uses, changes it.
    pub content_hash: String,
    /// Every pack this one reads features from (`[uses]`), directly or
    /// through another, each once, in the order they were reached.
    pub uses: Vec<UsedPack>,
    /// Extra patient columns the pack expects, in file order.
    pub columns: Vec<ColumnDecl>,
    /// This pack's own in name order, then those of the packs it uses
    /// (named `alias.name`).
    pub codelists: Vec<Codelist>,
    /// Topologically ordered: a feature refers only to earlier ones. The
    /// used packs' features (named `alias.name`) come first.
    pub features: Vec<Feature>,
    pub population: Expr,
    /// `[score] add`: an int or decimal expression added to the points of
    /// the fired rules (NULL adds nothing).
    pub score_add: Option<Expr>,
    pub rules: Vec<Rule>,
    /// In priority order: the first whose condition is TRUE wins.
    pub tiers: Vec<Tier>,
    pub overrides: Vec<Override>,
    pub exclusions: Vec<Exclusion>,
    pub list: ListSpec,
}

impl Pack {
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }

    pub fn codelist_index(&self, name: &str) -> Option<usize> {
        self.codelists.iter().position(|c| c.name == name)
    }

    /// Event tables the pack reads, sorted and unique.
    pub fn event_tables(&self) -> Vec<String> {
        let mut tables: Vec<String> = self.codelists.iter().map(|c| c.table.clone()).collect();
        tables.sort();
        tables.dedup();
        tables
    }
}

/// A pack whose features another pack reads. Its features and codelists
/// are part of the using pack, named `alias.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedPack {
    /// How the using pack names it (`efi`, or `efi.sub` for a pack the
    /// used pack uses in turn).
    pub alias: String,
    /// Its folder, as reached from the using pack.
    pub dir: String,
    pub id: String,
    pub version: String,
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackMeta {
    pub id: String,
    pub title: String,
    pub version: String,
    pub description: String,
    pub references: Vec<String>,
    /// The deprivation index the pack's deprivation rules were written
    /// for: a dataset with another one is refused (`[pack] imd`).
    pub imd: Option<crate::reference::deprivation::ImdVersion>,
}

/// An extra patient column declared in `[columns]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDecl {
    pub name: String,
    pub ty: Type,
}

/// One value per person.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: String,
    pub expr: Expr,
    pub ty: Type,
    pub description: Option<String>,
}

/// A scoring rule: when the condition is TRUE the person gains the points.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub condition: Expr,
    /// Exact; may be negative.
    pub points: Decimal,
    pub reason: Template,
}

/// A reason text with `{feature}` placeholders resolved to feature indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Feature(usize),
}

impl Template {
    /// The text with each placeholder replaced by the person's feature value
    /// (NULL shows as `unknown`).
    pub fn render(&self, features: &[Value]) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Feature(i) => match features.get(*i) {
                    Some(v) => out.push_str(&v.to_string()),
                    None => out.push_str("unknown"),
                },
            }
        }
        out
    }
}

/// A priority group of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub id: String,
    pub label: String,
    pub description: String,
    pub condition: Expr,
}

/// Clinician codes that force a person into a tier (include) or off the
/// list (exclude); the latest-dated code wins, the exclude code on a tie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub id: String,
    /// Codelist index.
    pub include: usize,
    /// Codelist index.
    pub exclude: usize,
    /// Tier index.
    pub tier: usize,
    pub reason: String,
}

/// A reason to leave a person off the list even if they qualify.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    pub id: String,
    pub condition: Expr,
    pub reason: String,
}

/// How each practice's list is ordered and what it shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListSpec {
    /// Applied after tier order; patient id is the final tie-break.
    pub order_by: Vec<OrderKey>,
    /// Feature indices shown as list columns, in order.
    pub display: Vec<usize>,
    /// Calls a practice makes in a week: the first this many people of
    /// each practice's list are marked `call_this_week`.
    pub capacity: Option<u32>,
    /// Also write `lists/pcn-<code>.csv`, ranked within each PCN.
    pub pcn_lists: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    pub by: OrderBy,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderBy {
    Score,
    Age,
    Feature(usize),
    /// A patient column (e.g. `imd_decile`).
    Column(String),
}
