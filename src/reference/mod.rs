//! Reference data compiled into the binary: the English Indices of
//! Deprivation 2019 by 2011 LSOA.
//!
//! The dataset reader uses [`imd_decile`] to derive `imd_decile` when a
//! patients table carries only `lsoa_code`; `strata synth` draws practice
//! catchments from [`imd2019`]. The table is `reference/imd2019/imd2019_lsoa11.csv`
//! (MHCLG, Open Government Licence v3.0; see the README next to it), parsed
//! once on first use.

pub mod deprivation;

use std::sync::OnceLock;

use hashbrown::HashMap;

/// The published file, compiled in so no run depends on a path outside the repo.
const IMD2019_CSV: &str = include_str!("../../reference/imd2019/imd2019_lsoa11.csv");

/// One 2011 LSOA with its local authority and its IMD 2019 rank and decile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsoaImd {
    pub lsoa11_code: String,
    pub lsoa11_name: String,
    /// Local authority district (2019 boundaries).
    pub lad19_code: String,
    pub lad19_name: String,
    /// 1 = most deprived of England's 32,844 LSOAs (26 ranks are shared ties).
    pub imd_rank: u32,
    /// 1 = most deprived tenth.
    pub imd_decile: u8,
}

/// Every English 2011 LSOA, in the order of the published file (by LSOA code).
pub fn imd2019() -> &'static [LsoaImd] {
    static TABLE: OnceLock<Vec<LsoaImd>> = OnceLock::new();
    TABLE.get_or_init(|| parse_imd2019(IMD2019_CSV))
}

/// The IMD 2019 decile of a 2011 LSOA code (`E01...`), if it is an English LSOA.
pub fn imd_decile(lsoa11: &str) -> Option<u8> {
    static INDEX: OnceLock<HashMap<&'static str, u8>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            imd2019()
                .iter()
                .map(|row| (row.lsoa11_code.as_str(), row.imd_decile))
                .collect()
        })
        .get(lsoa11.trim())
        .copied()
}

fn parse_imd2019(text: &str) -> Vec<LsoaImd> {
    #[derive(serde::Deserialize)]
    struct Row {
        lsoa11_code: String,
        lsoa11_name: String,
        lad19_code: String,
        lad19_name: String,
        imd_rank: u32,
        imd_decile: u8,
    }
    // The file is fixed at compile time and its row count is pinned by a test,
    // so a malformed row can only be a packaging mistake: skip it rather than
    // panic at run time.
    csv::Reader::from_reader(text.as_bytes())
        .deserialize::<Row>()
        .filter_map(Result::ok)
        .map(|r| LsoaImd {
            lsoa11_code: r.lsoa11_code,
            lsoa11_name: r.lsoa11_name,
            lad19_code: r.lad19_code,
            lad19_name: r.lad19_name,
            imd_rank: r.imd_rank,
            imd_decile: r.imd_decile,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_english_lsoa_is_present_with_a_decile() {
        let table = imd2019();
        assert_eq!(table.len(), 32_844);
        let mut per_decile = [0usize; 11];
        for row in table {
            per_decile[row.imd_decile as usize] += 1;
        }
        assert_eq!(per_decile[0], 0);
        // The published deciles hold 3,284 or 3,285 LSOAs each.
        for n in &per_decile[1..] {
            assert!(*n == 3_284 || *n == 3_285, "{per_decile:?}");
        }
    }

    #[test]
    fn known_lsoas_have_their_published_rank_and_decile() {
        let first = &imd2019()[0];
        assert_eq!(first.lsoa11_code, "E01000001");
        assert_eq!(first.lad19_name, "City of London");
        assert_eq!(first.imd_rank, 29_199);
        assert_eq!(first.imd_decile, 9);
        assert_eq!(imd_decile("E01000002"), Some(10));
        // Names with commas are quoted in the file.
        let hull = imd2019()
            .iter()
            .find(|r| r.lsoa11_code == "E01012756")
            .map(|r| (r.lad19_name.as_str(), r.imd_rank, r.imd_decile));
        assert_eq!(hull, Some(("Kingston upon Hull, City of", 11_457, 4)));
        assert_eq!(imd_decile(" E01000002 "), Some(10));
        assert_eq!(imd_decile("W01000001"), None);
        assert_eq!(imd_decile(""), None);
    }

    #[test]
    fn south_west_counties_have_their_2011_lsoa_counts() {
        let count = |lad: &str| imd2019().iter().filter(|r| r.lad19_code == lad).count();
        assert_eq!(count("E06000052"), 326); // Cornwall
        assert_eq!(count("E06000026"), 161); // Plymouth
        assert_eq!(count("E06000027"), 89); // Torbay
    }
}
