//! `manifest.json`: what a run read, what it decided, and how long it took.
//!
//! Everything a reviewer needs to trust a list: the strata and pack
//! versions, the pack's content hash, the as-of date, the SHA-256 of every
//! input file, row counts, who was listed or excluded and why, counts by
//! tier and practice, data-quality findings, and timings per stage. Timings
//! live only here, never in the lists, so lists are byte-for-byte
//! reproducible.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use super::PracticeList;
use crate::exec::scan::TableCounts;
use crate::exec::Outcomes;
use crate::pack::Pack;

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub strata_version: &'static str,
    pub pack: PackInfo,
    pub as_of: String,
    pub as_of_source: String,
    pub command_line: Vec<String>,
    pub inputs: Vec<InputFile>,
    pub people: People,
    /// Implausible dates of birth in the patients table (kept, counted).
    pub patient_findings: crate::dataset::quality::PatientFindings,
    /// The deprivation index applied, on which LSOAs, from where.
    pub deprivation: crate::dataset::quality::DeprivationSummary,
    pub tiers_by_practice: BTreeMap<String, BTreeMap<String, u64>>,
    pub rules: Vec<RuleCount>,
    pub tables: Vec<TableCounts>,
    pub timings_ms: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct PackInfo {
    pub id: String,
    pub title: String,
    pub version: String,
    pub content_hash: String,
    /// The packs it reads features from (`[uses]`), directly or not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uses: Vec<UsedPackInfo>,
}

#[derive(Debug, Serialize)]
pub struct UsedPackInfo {
    pub alias: String,
    pub id: String,
    pub version: String,
    pub content_hash: String,
}

#[derive(Debug, Serialize)]
pub struct InputFile {
    pub file: String,
    pub bytes: u64,
    /// BLAKE3 of the file's bytes, hex (`b3sum FILE` gives the same).
    pub blake3: String,
}

#[derive(Debug, Default, Serialize)]
pub struct People {
    pub in_patients_table: u64,
    pub in_population: u64,
    pub scored: u64,
    pub listed: u64,
    pub not_in_any_tier: u64,
    pub forced_in: u64,
    pub forced_out: BTreeMap<String, u64>,
    pub excluded: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct RuleCount {
    pub id: String,
    pub fired: u64,
    /// Condition was NULL (missing data): no points, counted here.
    pub unknown: u64,
}

/// BLAKE3 hash (what `b3sum` prints) and size of a file.
impl InputFile {
    /// The entry of `path`, whose digest is `digest`.
    pub fn of(path: &Path, digest: &crate::dataset::FileDigest) -> InputFile {
        InputFile {
            file: path.display().to_string(),
            bytes: digest.bytes,
            blake3: digest.blake3.clone(),
        }
    }
}

pub fn hash_file(path: &Path) -> std::io::Result<InputFile> {
    let mut f = std::fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    Ok(InputFile {
        file: path.display().to_string(),
        bytes,
        blake3: h.finalize().to_hex().to_string(),
    })
}

/// Counts of people by decision, and rule firings among the population.
pub fn count_people(pack: &Pack, outcomes: &Outcomes) -> (People, Vec<RuleCount>) {
    let t = &outcomes.tally;
    // Overrides and exclusions that applied to nobody are left out.
    let named = |ids: Vec<&String>, counts: &[u64]| -> BTreeMap<String, u64> {
        ids.into_iter()
            .zip(counts)
            .filter(|(_, &n)| n > 0)
            .map(|(id, &n)| (id.clone(), n))
            .collect()
    };
    let p = People {
        in_patients_table: outcomes.in_table as u64,
        in_population: t.in_population,
        scored: t.in_population,
        listed: t.listed,
        not_in_any_tier: t.not_in_any_tier,
        forced_in: t.forced_in,
        forced_out: named(
            pack.overrides.iter().map(|o| &o.id).collect(),
            &t.forced_out,
        ),
        excluded: named(pack.exclusions.iter().map(|x| &x.id).collect(), &t.excluded),
    };
    let rules = pack
        .rules
        .iter()
        .enumerate()
        .map(|(r, rule)| RuleCount {
            id: rule.id.clone(),
            fired: t.rule_fired[r],
            unknown: t.rule_unknown[r],
        })
        .collect();
    (p, rules)
}

/// Listed people per practice and tier id.
pub fn tiers_by_practice(
    pack: &Pack,
    lists: &[PracticeList],
) -> BTreeMap<String, BTreeMap<String, u64>> {
    lists
        .iter()
        .map(|l| {
            let m: BTreeMap<String, u64> = pack
                .tiers
                .iter()
                .zip(l.tier_counts(pack.tiers.len()))
                .map(|(t, n)| (t.id.clone(), n))
                .collect();
            (l.practice_code.clone(), m)
        })
        .collect()
}
