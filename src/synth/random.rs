//! Seeded randomness for synthetic populations.
//!
//! Every chunk of patients draws from its own ChaCha stream, keyed by the run
//! seed and the chunk index, so chunks can be generated in any order on any
//! number of threads and still give byte-identical output.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub type SynthRng = ChaCha8Rng;

/// The stream used for the practice list (never a chunk index).
const PLAN_STREAM: u64 = u64::MAX;

/// The random stream of one chunk of patients.
pub fn chunk_rng(seed: u64, chunk: u64) -> SynthRng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(chunk);
    rng
}

/// The random stream that lays out practices and PCNs.
pub fn plan_rng(seed: u64) -> SynthRng {
    chunk_rng(seed, PLAN_STREAM)
}

/// Uniform in [0, 1).
#[inline]
pub fn uniform(rng: &mut SynthRng) -> f64 {
    rng.random::<f64>()
}

/// True with probability `p`.
#[inline]
pub fn chance(rng: &mut SynthRng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// Uniform integer in `lo..=hi` (returns `lo` when the range is empty).
#[inline]
pub fn between(rng: &mut SynthRng, lo: i32, hi: i32) -> i32 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// Standard normal draw (Box-Muller; one value per call keeps streams simple).
#[inline]
pub fn normal(rng: &mut SynthRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Poisson draw with mean `lambda` (Knuth for small means, a rounded normal
/// approximation above 30 where it is accurate enough for event counts).
pub fn poisson(rng: &mut SynthRng, lambda: f64) -> u32 {
    if lambda <= 0.0 || !lambda.is_finite() {
        return 0;
    }
    if lambda > 30.0 {
        let x = lambda + lambda.sqrt() * normal(rng);
        return x.round().max(0.0) as u32;
    }
    let limit = (-lambda).exp();
    let mut k = 0u32;
    let mut product = rng.random::<f64>();
    while product > limit {
        k += 1;
        product *= rng.random::<f64>();
    }
    k
}

/// Index drawn from a cumulative weight table (last entry = total weight).
pub fn pick_cumulative(rng: &mut SynthRng, cumulative: &[f64]) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let target = rng.random::<f64>() * total;
    cumulative
        .partition_point(|&c| c <= target)
        .min(cumulative.len().saturating_sub(1))
}

/// Item drawn from a small weighted table.
pub fn pick_weighted<T: Copy>(rng: &mut SynthRng, items: &[(T, u32)]) -> Option<T> {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    if total == 0 {
        return None;
    }
    let mut target = rng.random_range(0..total);
    for (item, weight) in items {
        if target < *weight {
            return Some(*item);
        }
        target -= weight;
    }
    None
}

/// Running sums of `weights`, for [`pick_cumulative`].
pub fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut total = 0.0;
    weights
        .into_iter()
        .map(|w| {
            total += w.max(0.0);
            total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4).map(|_| chunk_rng(7, 0).random()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let first: u64 = chunk_rng(7, 0).random();
        let second: u64 = chunk_rng(7, 1).random();
        let other_seed: u64 = chunk_rng(8, 0).random();
        assert_ne!(first, second);
        assert_ne!(first, other_seed);
    }

    #[test]
    fn poisson_mean_is_close_to_lambda() {
        let mut rng = chunk_rng(1, 0);
        for lambda in [0.3, 4.0, 45.0] {
            let n = 20_000;
            let total: u64 = (0..n).map(|_| u64::from(poisson(&mut rng, lambda))).sum();
            let mean = total as f64 / n as f64;
            assert!(
                (mean - lambda).abs() < 0.05 * lambda + 0.02,
                "{lambda}: {mean}"
            );
        }
        assert_eq!(poisson(&mut rng, 0.0), 0);
        assert_eq!(poisson(&mut rng, f64::NAN), 0);
    }

    #[test]
    fn cumulative_picks_follow_weights() {
        let table = cumulative([0.0, 1.0, 3.0]);
        let mut rng = chunk_rng(3, 0);
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[pick_cumulative(&mut rng, &table)] += 1;
        }
        assert_eq!(counts[0], 0);
        let share = f64::from(counts[2]) / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "{share}");
    }
}
