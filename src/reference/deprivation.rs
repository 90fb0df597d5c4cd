//! Versioned deprivation: which index a dataset's `imd_decile` comes from,
//! and which LSOA codes its extract carries.
//!
//! Two indices are compiled in: IMD 2019 (on England's 32,844 2011 LSOAs)
//! and IoD2025 (on its 33,755 2021 LSOAs), with the ONS 2011 → 2021 LSOA
//! lookup. An extract whose LSOAs are of the other vintage than its index
//! is converted through the lookup: an area that maps to one area of the
//! index's vintage takes its decile; an area that maps to several (a 2011
//! LSOA split in 2021 read with IoD2025, a 2021 LSOA merged from several
//! 2011 ones read with IMD 2019, a redrawn area) takes the **most deprived**
//! of their deciles, so conversion never makes anyone look less deprived
//! than any part of their area. A code that is not an LSOA of the stated
//! vintage has no decile and is counted (never guessed at in the other
//! vintage).

use std::fmt;
use std::sync::OnceLock;

use hashbrown::HashMap;
use serde::Serialize;

const IOD2025_CSV: &str = include_str!("../../reference/iod2025/imd2025_lsoa21.csv");
const LSOA11_21_CSV: &str = include_str!("../../reference/lsoa/lsoa11_lsoa21.csv");

/// An index of multiple deprivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ImdVersion {
    /// English Indices of Deprivation 2019, on 2011 LSOAs.
    #[serde(rename = "2019")]
    Imd2019,
    /// English Indices of Deprivation 2025, on 2021 LSOAs.
    #[serde(rename = "2025")]
    Iod2025,
}

impl ImdVersion {
    pub fn parse(text: &str) -> Option<ImdVersion> {
        match text.trim() {
            "2019" => Some(ImdVersion::Imd2019),
            "2025" => Some(ImdVersion::Iod2025),
            _ => None,
        }
    }

    /// `"2019"` or `"2025"`, as in dataset.toml and pack.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            ImdVersion::Imd2019 => "2019",
            ImdVersion::Iod2025 => "2025",
        }
    }

    /// The LSOA vintage the index is published on.
    pub fn vintage(self) -> LsoaVintage {
        match self {
            ImdVersion::Imd2019 => LsoaVintage::Lsoa2011,
            ImdVersion::Iod2025 => LsoaVintage::Lsoa2021,
        }
    }

    /// Its published name.
    pub fn title(self) -> &'static str {
        match self {
            ImdVersion::Imd2019 => "English Indices of Deprivation 2019 (IMD 2019)",
            ImdVersion::Iod2025 => "English Indices of Deprivation 2025 (IoD2025)",
        }
    }
}

impl fmt::Display for ImdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImdVersion::Imd2019 => "IMD 2019",
            ImdVersion::Iod2025 => "IoD2025",
        })
    }
}

/// The census geography an extract's `lsoa_code`s belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum LsoaVintage {
    #[serde(rename = "2011")]
    Lsoa2011,
    #[serde(rename = "2021")]
    Lsoa2021,
}

impl LsoaVintage {
    pub fn parse(text: &str) -> Option<LsoaVintage> {
        match text.trim() {
            "2011" => Some(LsoaVintage::Lsoa2011),
            "2021" => Some(LsoaVintage::Lsoa2021),
            _ => None,
        }
    }

    pub fn year(self) -> u16 {
        match self {
            LsoaVintage::Lsoa2011 => 2011,
            LsoaVintage::Lsoa2021 => 2021,
        }
    }
}

impl fmt::Display for LsoaVintage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} LSOAs", self.year())
    }
}

/// One area of an index: its rank (1 = most deprived) and decile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deprivation {
    pub rank: u32,
    pub decile: u8,
}

impl Deprivation {
    /// Quintile 1 is deciles 1 and 2 (IMD 2019: ranks 1–6,568).
    pub fn quintile(self) -> u8 {
        quintile_of_decile(i32::from(self.decile)).map_or(0, |q| q as u8)
    }
}

/// The quintile of a decile (1–10 → 1–5).
pub fn quintile_of_decile(decile: i32) -> Option<i32> {
    (1..=10).contains(&decile).then(|| (decile + 1) / 2)
}

/// Every area of an index on its own vintage, by code.
fn native(version: ImdVersion) -> &'static HashMap<&'static str, Deprivation> {
    static IMD2019: OnceLock<HashMap<&'static str, Deprivation>> = OnceLock::new();
    static IOD2025: OnceLock<HashMap<&'static str, Deprivation>> = OnceLock::new();
    match version {
        ImdVersion::Imd2019 => IMD2019.get_or_init(|| {
            super::imd2019()
                .iter()
                .map(|r| {
                    (
                        r.lsoa11_code.as_str(),
                        Deprivation {
                            rank: r.imd_rank,
                            decile: r.imd_decile,
                        },
                    )
                })
                .collect()
        }),
        ImdVersion::Iod2025 => IOD2025.get_or_init(|| parse_iod2025(IOD2025_CSV)),
    }
}

fn parse_iod2025(text: &'static str) -> HashMap<&'static str, Deprivation> {
    // The file is fixed at compile time and its row count pinned by a test.
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split(',');
            let code = f.next()?;
            let rank = f.next()?.parse().ok()?;
            let decile = f.next()?.parse().ok()?;
            Some((code, Deprivation { rank, decile }))
        })
        .collect()
}

/// The 2011 ↔ 2021 pairs: (2011 code, 2021 code, change code).
fn pairs() -> &'static [(&'static str, &'static str, u8)] {
    static PAIRS: OnceLock<Vec<(&'static str, &'static str, u8)>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        LSOA11_21_CSV
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut f = line.split(',');
                let a = f.next()?;
                let b = f.next()?;
                let c = f.next()?.bytes().next()?;
                Some((a, b, c))
            })
            .collect()
    })
}

/// How an area of the extract's vintage got its decile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The index is on the extract's vintage.
    Direct,
    /// Mapped to exactly one area of the index's vintage.
    OneArea,
    /// Mapped to several areas: the most deprived of them.
    MostDeprivedOf(u8),
}

/// The decile lookup for an extract of `vintage` under `version`.
#[derive(Debug)]
pub struct DeprivationLookup {
    pub version: ImdVersion,
    pub vintage: LsoaVintage,
    areas: HashMap<&'static str, (Deprivation, Resolution)>,
}

impl DeprivationLookup {
    /// The lookup for an index and an extract vintage (each built once,
    /// when first asked for: a run needs one of the four).
    pub fn get(version: ImdVersion, vintage: LsoaVintage) -> &'static DeprivationLookup {
        static TABLES: [OnceLock<DeprivationLookup>; 4] = [const { OnceLock::new() }; 4];
        let k = match (version, vintage) {
            (ImdVersion::Imd2019, LsoaVintage::Lsoa2011) => 0,
            (ImdVersion::Imd2019, LsoaVintage::Lsoa2021) => 1,
            (ImdVersion::Iod2025, LsoaVintage::Lsoa2011) => 2,
            (ImdVersion::Iod2025, LsoaVintage::Lsoa2021) => 3,
        };
        TABLES[k].get_or_init(|| Self::build(version, vintage))
    }

    fn build(version: ImdVersion, vintage: LsoaVintage) -> DeprivationLookup {
        let index = native(version);
        let mut areas: HashMap<&'static str, (Deprivation, Resolution)> = HashMap::new();
        if version.vintage() == vintage {
            areas.extend(index.iter().map(|(&c, &d)| (c, (d, Resolution::Direct))));
        } else {
            // Each extract area: every index area it overlaps.
            let mut targets: HashMap<&'static str, Vec<Deprivation>> = HashMap::new();
            for &(a, b, _) in pairs() {
                let (from, to) = match vintage {
                    LsoaVintage::Lsoa2011 => (a, b),
                    LsoaVintage::Lsoa2021 => (b, a),
                };
                if let Some(&d) = index.get(to) {
                    targets.entry(from).or_default().push(d);
                }
            }
            for (code, mut ds) in targets {
                ds.sort_by_key(|d| (d.rank, d.decile));
                ds.dedup();
                let most = ds[0];
                let how = if ds.len() == 1 {
                    Resolution::OneArea
                } else {
                    Resolution::MostDeprivedOf(ds.len().min(255) as u8)
                };
                areas.insert(code, (most, how));
            }
        }
        DeprivationLookup {
            version,
            vintage,
            areas,
        }
    }

    /// The index's rank and decile for an extract LSOA code (trimmed);
    /// `None` when the code is not an English LSOA of the extract's vintage.
    pub fn lookup(&self, lsoa: &str) -> Option<Deprivation> {
        self.areas.get(lsoa.trim()).map(|(d, _)| *d)
    }

    /// How the code's decile was resolved.
    pub fn resolution(&self, lsoa: &str) -> Option<Resolution> {
        self.areas.get(lsoa.trim()).map(|(_, r)| *r)
    }

    /// How many extract-vintage areas have a decile.
    pub fn len(&self) -> usize {
        self.areas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ImdVersion::*;
    use LsoaVintage::*;

    #[test]
    fn each_index_on_its_own_vintage_has_every_area() {
        assert_eq!(DeprivationLookup::get(Imd2019, Lsoa2011).len(), 32_844);
        assert_eq!(DeprivationLookup::get(Iod2025, Lsoa2021).len(), 33_755);
        let mut per_decile = [0usize; 11];
        for d in native(Iod2025).values() {
            per_decile[d.decile as usize] += 1;
        }
        // Published deciles: 3,375 or 3,376 areas each.
        assert!(per_decile[1..].iter().all(|&n| n == 3_375 || n == 3_376));
        // Converted: every area of the other vintage that overlaps England's.
        assert_eq!(DeprivationLookup::get(Iod2025, Lsoa2011).len(), 32_844);
        assert_eq!(DeprivationLookup::get(Imd2019, Lsoa2021).len(), 33_755);
    }

    #[test]
    fn deciles_and_quintiles_follow_the_published_ranks() {
        // IMD 2019: decile 1 is ranks 1–3,284, quintile 1 ranks 1–6,568.
        for d in native(Imd2019).values() {
            assert_eq!(d.quintile() == 1, d.rank <= 6_568, "{d:?}");
            assert_eq!(d.decile == 1, d.rank <= 3_284, "{d:?}");
        }
        // IoD2025: decile 1 is ranks 1–3,375, quintile 1 ranks 1–6,751.
        for d in native(Iod2025).values() {
            assert_eq!(d.quintile() == 1, d.rank <= 6_751, "{d:?}");
            assert_eq!(d.decile == 10, d.rank >= 30_380, "{d:?}");
        }
        assert_eq!(quintile_of_decile(2), Some(1));
        assert_eq!(quintile_of_decile(3), Some(2));
        assert_eq!(quintile_of_decile(10), Some(5));
        assert_eq!(quintile_of_decile(11), None);
    }

    #[test]
    fn split_merged_and_redrawn_areas_take_the_most_deprived_part() {
        let iod_on_2011 = DeprivationLookup::get(Iod2025, Lsoa2011);
        // E01000010 was split into E01034473 (rank 2,665, decile 1) and
        // E01034474 (rank 9,400, decile 3).
        assert_eq!(
            iod_on_2011.lookup("E01000010"),
            Some(Deprivation {
                rank: 2_665,
                decile: 1
            })
        );
        assert_eq!(
            iod_on_2011.resolution("E01000010"),
            Some(Resolution::MostDeprivedOf(2))
        );
        // E01000092: four parts, deciles 3, 4, 3, 7; the most deprived is rank 7,252.
        assert_eq!(
            iod_on_2011.lookup("E01000092"),
            Some(Deprivation {
                rank: 7_252,
                decile: 3
            })
        );
        // E01003968 and E01003974 were merged into E01033879 (decile 3).
        assert_eq!(iod_on_2011.lookup("E01003968").map(|d| d.decile), Some(3));
        assert_eq!(
            iod_on_2011.resolution("E01003968"),
            Some(Resolution::OneArea)
        );
        // Unchanged: City of London 001A.
        assert_eq!(
            iod_on_2011.lookup("E01000001"),
            Some(Deprivation {
                rank: 26_525,
                decile: 8
            })
        );

        let imd_on_2021 = DeprivationLookup::get(Imd2019, Lsoa2021);
        // E01033879 is the merge of E01003968 (decile 1) and E01003974 (decile 2).
        assert_eq!(
            imd_on_2021.lookup("E01033879"),
            Some(Deprivation {
                rank: 2_741,
                decile: 1
            })
        );
        // A part of a split area takes its 2011 parent's decile.
        assert_eq!(
            imd_on_2021.lookup("E01034474"),
            DeprivationLookup::get(Imd2019, Lsoa2011).lookup("E01000010")
        );
        assert_eq!(imd_on_2021.lookup(" E01000001 ").map(|d| d.decile), Some(9));
        // Redrawn (X): E01008187 overlaps E01035624 and E01035637.
        let x = iod_on_2011.lookup("E01008187").expect("redrawn area");
        let parts = [native(Iod2025)["E01035624"], native(Iod2025)["E01035637"]];
        assert_eq!(x.rank, parts.iter().map(|d| d.rank).min().unwrap());

        // Not an English LSOA of the stated vintage: no decile, no guessing.
        for lookup in [iod_on_2011, imd_on_2021] {
            for code in ["W01000001", "E01999999", "", "e01000001"] {
                assert_eq!(lookup.lookup(code), None, "{code}");
            }
        }
        // A 2021-only code read as 2011, and a 2011-only code read as 2021.
        assert_eq!(iod_on_2011.lookup("E01034473"), None);
        assert_eq!(
            DeprivationLookup::get(Iod2025, Lsoa2021).lookup("E01000010"),
            None
        );
    }
}
