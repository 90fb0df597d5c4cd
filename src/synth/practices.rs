//! The practices of a synthetic population: ODS codes, PCNs, list sizes,
//! catchments of real south-west LSOAs and each practice's age/sex pyramid.
//!
//! Practices sit in Cornwall (ODS prefix L82), Devon (L83) or Somerset (L85).
//! Each is a "town": a run of neighbouring 2011 LSOAs of one local authority
//! (neighbouring in the MSOA numbering of their names), carrying the real
//! IMD 2019 deciles of those LSOAs. Coastal retirement areas get an older
//! pyramid, cities and growing towns a younger one.

use hashbrown::HashSet;

use super::random::{between, cumulative, pick_cumulative, uniform, SynthRng};
use crate::reference::{imd2019, LsoaImd};

/// Oldest single year of age in the pyramids (the last band is 100+).
pub const MAX_AGE: usize = 100;

/// Most practices one run can lay out (999 ODS codes per county prefix, and
/// more than any PCN cluster needs).
pub const MAX_PRACTICES: u32 = 999;

/// England-like mid-2019 population by five-year band (% of all ages, ONS
/// mid-year estimates, rounded); 0-4, 5-9, ..., 85-89, 90+.
const BASE_PYRAMID: [f64; 19] = [
    5.8, 6.2, 5.9, 5.6, 6.2, 6.8, 6.8, 6.6, 6.1, 6.7, 6.9, 6.4, 5.6, 5.1, 5.0, 3.6, 2.6, 1.6, 0.9,
];

/// A county the practices are drawn from.
struct County {
    ods_prefix: &'static str,
    /// 2019 local authority districts of the county.
    districts: &'static [&'static str],
    /// Share of practices.
    weight: f64,
}

const COUNTIES: [County; 3] = [
    County {
        ods_prefix: "L82",
        districts: &["E06000052"],
        weight: 0.30,
    },
    County {
        ods_prefix: "L83",
        districts: &[
            "E06000026",
            "E06000027",
            "E07000040",
            "E07000041",
            "E07000042",
            "E07000043",
            "E07000044",
            "E07000045",
            "E07000046",
            "E07000047",
        ],
        weight: 0.45,
    },
    County {
        ods_prefix: "L85",
        districts: &["E07000187", "E07000188", "E07000189", "E07000246"],
        weight: 0.25,
    },
];

/// How much older (positive) or younger (negative) a district's practices run
/// than the national pyramid: retirement coasts versus cities.
fn district_age_tilt(lad19_code: &str) -> f64 {
    match lad19_code {
        "E07000041" => -0.9,              // Exeter
        "E06000026" => -0.6,              // Plymouth
        "E06000027" => 0.6,               // Torbay
        "E07000040" => 0.7,               // East Devon
        "E07000044" => 0.6,               // South Hams
        "E07000043" | "E07000046" => 0.5, // North Devon, Torridge
        "E07000246" | "E07000189" => 0.3, // Somerset West and Taunton, South Somerset
        "E07000042" => 0.1,               // Mid Devon (Cullompton)
        _ => 0.35,
    }
}

/// One synthetic practice.
#[derive(Debug, Clone)]
pub struct Practice {
    pub code: String,
    pub pcn_code: String,
    pub district_name: String,
    /// Patients in the output (registered, deregistered and dead).
    pub patients: u64,
    /// Index of the practice's first patient in the run.
    pub first_patient: u64,
    /// LSOAs the practice's patients live in.
    pub catchment: Vec<CatchmentArea>,
    /// Cumulative weights over single years of age 0..=100 for people
    /// registered now.
    pub registered_ages: Vec<f64>,
    /// The same for people who died in the last five years (age at death).
    pub death_ages: Vec<f64>,
    /// The same for people who left the list (age when they left).
    pub leaver_ages: Vec<f64>,
    /// The practice's share of people per age (for calibration), registered.
    pub age_shares: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct CatchmentArea {
    pub lsoa11_code: &'static str,
    pub imd_decile: u8,
}

/// Share of women at a given age: about even until middle age, then rising
/// as men die younger.
pub fn female_share(age: usize) -> f64 {
    let age = age as f64;
    if age < 45.0 {
        0.49
    } else if age < 75.0 {
        0.49 + (age - 45.0) * 0.002
    } else {
        (0.55 + (age - 75.0) * 0.0065).min(0.72)
    }
}

fn base_weight(age: usize) -> f64 {
    BASE_PYRAMID[(age / 5).min(BASE_PYRAMID.len() - 1)] / if age >= 90 { 11.0 } else { 5.0 }
}

/// Lays out `count` practices sharing `patients` people.
pub fn plan_practices(rng: &mut SynthRng, count: u32, patients: u64) -> Vec<Practice> {
    let lsoas = imd2019();
    let county_weights = cumulative(COUNTIES.iter().map(|c| c.weight));
    let mut used_codes: HashSet<String> = HashSet::new();
    struct Draft {
        code: String,
        pcn_code: String,
        district_name: String,
        nominal_list_size: f64,
        age_tilt: f64,
        catchment: Vec<CatchmentArea>,
    }
    let mut drafts: Vec<Draft> = Vec::new();
    // A PCN is a few practices of one town and its villages: its practices
    // share a district and draw on overlapping LSOAs.
    for (pcn_code, members) in group_into_pcns(rng, count as usize) {
        let county = &COUNTIES[pick_cumulative(rng, &county_weights)];
        let district_areas: Vec<&'static LsoaImd> = {
            let sizes = cumulative(
                county
                    .districts
                    .iter()
                    .map(|d| lsoas.iter().filter(|r| r.lad19_code == *d).count() as f64),
            );
            let district = county.districts[pick_cumulative(rng, &sizes)];
            let mut areas: Vec<&'static LsoaImd> =
                lsoas.iter().filter(|r| r.lad19_code == district).collect();
            areas.sort_by(|a, b| a.lsoa11_name.cmp(&b.lsoa11_name));
            areas
        };
        let district = district_areas
            .first()
            .map(|r| r.lad19_code.as_str())
            .unwrap_or("");
        let district_name = district_areas
            .first()
            .map(|r| r.lad19_name.clone())
            .unwrap_or_default();
        let town_tilt = district_age_tilt(district) + 0.5 * (uniform(rng) - 0.5);
        for _ in 0..members {
            // List sizes like the seed towns: 6,000 to 34,000, most at the small end.
            let nominal = 6_000.0 + 28_000.0 * uniform(rng).powf(1.7);
            let code = loop {
                let candidate = format!("{}{:03}", county.ods_prefix, between(rng, 1, 999));
                if used_codes.insert(candidate.clone()) {
                    break candidate;
                }
            };
            // About 1,200 registered people per LSOA.
            let width =
                ((nominal / 1_200.0).round() as usize).clamp(4, district_areas.len().max(1));
            let start = between(rng, 0, district_areas.len().saturating_sub(width) as i32) as usize;
            let catchment: Vec<CatchmentArea> = district_areas
                .iter()
                .skip(start)
                .take(width)
                .map(|r| CatchmentArea {
                    lsoa11_code: r.lsoa11_code.as_str(),
                    imd_decile: r.imd_decile,
                })
                .collect();
            let tilt = (town_tilt + 0.5 * (uniform(rng) - 0.5)).clamp(-1.0, 1.0);
            drafts.push(Draft {
                code,
                pcn_code: pcn_code.clone(),
                district_name: district_name.clone(),
                nominal_list_size: nominal,
                age_tilt: tilt,
                catchment,
            });
        }
    }
    let nominal: Vec<f64> = drafts.iter().map(|d| d.nominal_list_size).collect();
    let sizes = apportion(patients, &nominal);
    let mut first_patient = 0u64;
    let mut practices = Vec::with_capacity(drafts.len());
    for (draft, size) in drafts.into_iter().zip(sizes) {
        let Draft {
            code,
            pcn_code,
            district_name,
            age_tilt: tilt,
            catchment,
            ..
        } = draft;
        let registered: Vec<f64> = (0..=MAX_AGE)
            .map(|age| base_weight(age) * (tilt * 0.55 * (age as f64 - 42.0) / 30.0).exp())
            .collect();
        let total: f64 = registered.iter().sum();
        let age_shares: Vec<f64> = registered.iter().map(|w| w / total).collect();
        // Deaths concentrate in old age (mortality roughly doubles every 8 years).
        let death = registered
            .iter()
            .enumerate()
            .map(|(age, w)| w * ((age as f64 - 85.0) * 0.09).exp().max(0.002));
        // Leavers are mostly young adults moving away for study and work.
        let leaver = registered
            .iter()
            .enumerate()
            .map(|(age, w)| w * if (18..=35).contains(&age) { 2.5 } else { 1.0 });
        practices.push(Practice {
            code,
            pcn_code,
            district_name,
            patients: size,
            first_patient,
            catchment,
            registered_ages: cumulative(registered.iter().copied()),
            death_ages: cumulative(death),
            leaver_ages: cumulative(leaver),
            age_shares,
        });
        first_patient += size;
    }
    practices
}

/// Splits `total` in proportion to `weights` (largest remainder), giving
/// every practice at least one patient when there are enough to go round.
fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    if weights.is_empty() || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut sizes: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let mut left = total.saturating_sub(sizes.iter().sum());
    for &i in order.iter().cycle().take(weights.len() * 2) {
        if left == 0 {
            break;
        }
        sizes[i] += 1;
        left -= 1;
    }
    // Tiny populations: move people from the largest practice to empty ones.
    for i in 0..sizes.len() {
        if sizes[i] == 0 {
            if let Some(largest) = (0..sizes.len()).max_by_key(|&j| (sizes[j], usize::MAX - j)) {
                if sizes[largest] > 1 {
                    sizes[largest] -= 1;
                    sizes[i] += 1;
                }
            }
        }
    }
    sizes
}

/// PCNs as (code, number of member practices): 2-4 practices each (a
/// single practice only when there is just one).
fn group_into_pcns(rng: &mut SynthRng, practices: usize) -> Vec<(String, usize)> {
    let mut pcns = Vec::new();
    let mut used: HashSet<i32> = HashSet::new();
    let mut remaining = practices;
    while remaining > 0 {
        let mut size = between(rng, 2, 4) as usize;
        // Never leave a single practice on its own at the end.
        if remaining <= 4 {
            size = remaining;
        } else if remaining - size == 1 {
            size -= 1;
        }
        let number = loop {
            let n = between(rng, 10_000, 99_999);
            if used.insert(n) {
                break n;
            }
        };
        pcns.push((format!("U{number:05}"), size));
        remaining -= size;
    }
    pcns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::random::plan_rng;

    #[test]
    fn apportion_preserves_the_total() {
        assert_eq!(apportion(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
        assert_eq!(apportion(2, &[100.0, 1.0]), vec![1, 1]);
        assert_eq!(apportion(0, &[1.0]), vec![0]);
        let sizes = apportion(1_000_003, &[6_000.0, 34_000.0, 12_345.0]);
        assert_eq!(sizes.iter().sum::<u64>(), 1_000_003);
    }

    #[test]
    fn pcns_hold_two_to_four_practices() {
        for n in 1..40 {
            let pcns = group_into_pcns(&mut plan_rng(n as u64), n);
            assert_eq!(pcns.iter().map(|p| p.1).sum::<usize>(), n);
            let codes: HashSet<&String> = pcns.iter().map(|p| &p.0).collect();
            assert_eq!(codes.len(), pcns.len());
            if n >= 2 {
                assert!(pcns.iter().all(|p| (2..=4).contains(&p.1)), "{n}: {pcns:?}");
            }
        }
    }

    #[test]
    fn practices_have_south_west_codes_and_real_catchments() {
        let practices = plan_practices(&mut plan_rng(2020), 12, 120_000);
        assert_eq!(practices.len(), 12);
        assert_eq!(practices.iter().map(|p| p.patients).sum::<u64>(), 120_000);
        let mut codes = HashSet::new();
        for p in &practices {
            assert!(["L82", "L83", "L85"].contains(&&p.code[..3]), "{}", p.code);
            assert_eq!(p.code.len(), 6);
            assert!(p.pcn_code.starts_with('U') && p.pcn_code.len() == 6);
            assert!(codes.insert(p.code.clone()));
            assert!(p.catchment.len() >= 4);
            for area in &p.catchment {
                assert_eq!(
                    crate::reference::imd_decile(area.lsoa11_code),
                    Some(area.imd_decile)
                );
            }
            assert!((p.age_shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        // A PCN's practices are in one district (so one county).
        for p in &practices {
            for q in practices.iter().filter(|q| q.pcn_code == p.pcn_code) {
                assert_eq!(p.district_name, q.district_name);
                assert_eq!(p.code[..3], q.code[..3]);
            }
        }
    }
}
