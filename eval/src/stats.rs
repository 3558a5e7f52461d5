//! The statistics that compare two experiments or two cohorts, each equal to SciPy's on the same
//! data (an end-to-end test computes the references with SciPy itself):
//!
//! - [`mcnemar_exact`]: paired pass/fail (completion, an evaluator's verdict): the exact binomial
//!   test on the discordant pairs, `scipy.stats.binomtest(c, b + c, 0.5)`;
//! - [`wilcoxon`]: paired numbers (scores, cost, latency): the signed-rank test,
//!   `scipy.stats.wilcoxon(x, y)` with its defaults (zero differences dropped, no continuity
//!   correction) and its choice of method: for more than 50 pairs the normal approximation (with
//!   the tie correction); otherwise the exact distribution when no difference is zero or tied,
//!   every sign assignment counted when there are at most 13 pairs, the normal approximation
//!   beyond;
//! - [`wilson`]: a rate's confidence interval, the Wilson score interval.

use std::f64::consts::{LN_2, SQRT_2};

/// P(Z > z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / SQRT_2)
}

/// The standard normal quantile of `p` (0 < p < 1): Acklam's rational approximation, then
/// Newton steps on the exact distribution function (`erfc`) to full precision.
pub fn normal_ppf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let mut x = if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    for _ in 0..3 {
        let cdf = 0.5 * libm::erfc(-x / SQRT_2);
        let density = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        x -= (cdf - p) / density;
    }
    x
}

/// ln(k!) for k = 0..=n.
fn ln_factorials(n: u64) -> Vec<f64> {
    let mut table = Vec::with_capacity(n as usize + 1);
    let mut sum = 0.0;
    table.push(0.0);
    for k in 1..=n {
        sum += (k as f64).ln();
        table.push(sum);
    }
    table
}

/// The two-sided p-value of McNemar's exact test: of the pairs that disagree, `b` went one way
/// (e.g. passed in the baseline, failed in the candidate) and `c` the other. 1 when none
/// disagree.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    let k = b.min(c);
    if n == 0 || 2 * k == n {
        return 1.0;
    }
    let ln_fact = ln_factorials(n);
    let ln_n = ln_fact[n as usize];
    let tail: f64 = (0..=k)
        .map(|i| (ln_n - ln_fact[i as usize] - ln_fact[(n - i) as usize] - n as f64 * LN_2).exp())
        .sum();
    (2.0 * tail).min(1.0)
}

/// The Wilson score interval of `successes` out of `n` at confidence `1 - alpha`; `None` for
/// `n` = 0.
pub fn wilson(successes: u64, n: u64, alpha: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let z = normal_ppf(1.0 - alpha / 2.0);
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Some((center - half, center + half))
}

/// How a signed-rank p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WilcoxonMethod {
    /// The exact null distribution of the rank sum.
    Exact,
    /// Every assignment of signs to the differences, counted (ties or zeros, few pairs).
    Permutation,
    NormalApproximation,
}

/// A signed-rank test's result.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SignedRank {
    /// min(R+, R−), SciPy's two-sided statistic.
    pub statistic: f64,
    pub p_value: f64,
    /// Differences that were not zero.
    pub n: usize,
    pub method: WilcoxonMethod,
}

/// The Wilcoxon signed-rank test of the paired `differences` (candidate − baseline), two-sided;
/// `None` when every difference is zero.
pub fn wilcoxon(differences: &[f64]) -> Option<SignedRank> {
    let mut d: Vec<f64> = differences.iter().copied().filter(|x| *x != 0.0).collect();
    let n = d.len();
    if n == 0 {
        return None;
    }
    d.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Average ranks of |d|, ties sharing the mean of their positions.
    let mut ranks = vec![0.0; n];
    let mut ties = 0.0;
    let mut tied = false;
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && d[end].abs() == d[start].abs() {
            end += 1;
        }
        let rank = (start + 1 + end) as f64 / 2.0;
        ranks[start..end].fill(rank);
        let t = (end - start) as f64;
        if t > 1.0 {
            tied = true;
            ties += t * t * t - t;
        }
        start = end;
    }
    let r_plus: f64 = d
        .iter()
        .zip(&ranks)
        .filter(|(x, _)| **x > 0.0)
        .map(|(_, r)| r)
        .sum();
    let total = (n * (n + 1)) as f64 / 2.0;
    let statistic = r_plus.min(total - r_plus);
    let pairs = differences.len();
    let method = if pairs > 50 {
        WilcoxonMethod::NormalApproximation
    } else if !tied && pairs == n {
        WilcoxonMethod::Exact
    } else if pairs <= 13 {
        WilcoxonMethod::Permutation
    } else {
        WilcoxonMethod::NormalApproximation
    };
    let p_value = match method {
        WilcoxonMethod::Exact => exact_signed_rank_p(n, statistic),
        WilcoxonMethod::Permutation => permutation_p(&ranks, r_plus),
        WilcoxonMethod::NormalApproximation => {
            let nf = n as f64;
            let mean = nf * (nf + 1.0) / 4.0;
            let variance = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - ties / 48.0;
            let z = (statistic - mean) / variance.sqrt();
            (2.0 * normal_sf(z.abs())).min(1.0)
        }
    };
    Some(SignedRank {
        statistic,
        p_value,
        n,
        method,
    })
}

/// The two-sided p-value of `r_plus` over every assignment of signs to the ranks: twice the
/// smaller share of sums at most and at least it (within a relative 1e-14, for sums of
/// half-ranks), at most 1.
fn permutation_p(ranks: &[f64], r_plus: f64) -> f64 {
    let n = ranks.len();
    let tolerance = 1e-14 * r_plus.abs();
    let (mut at_most, mut at_least) = (0u64, 0u64);
    for signs in 0u32..(1 << n) {
        let sum: f64 = ranks
            .iter()
            .enumerate()
            .filter(|(i, _)| signs & (1 << i) != 0)
            .map(|(_, r)| r)
            .sum();
        at_most += u64::from(sum <= r_plus + tolerance);
        at_least += u64::from(sum >= r_plus - tolerance);
    }
    let all = f64::from(1u32 << n);
    (2.0 * (at_most.min(at_least) as f64) / all).min(1.0)
}

/// 2·P(W ≤ w) (at most 1) for W the sum of the ranks 1..=n given random signs, counted exactly.
fn exact_signed_rank_p(n: usize, w: f64) -> f64 {
    let max = n * (n + 1) / 2;
    // counts[s]: sign assignments whose positive ranks sum to s (at most 2^50, exact in u64).
    let mut counts = vec![0u64; max + 1];
    counts[0] = 1;
    for rank in 1..=n {
        for s in (rank..=max).rev() {
            counts[s] += counts[s - rank];
        }
    }
    let at_most: u64 = counts.iter().take(w.floor() as usize + 1).sum();
    let all = 2f64.powi(n as i32);
    (2.0 * at_most as f64 / all).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_quantile_inverts_the_distribution() {
        for p in [1e-10, 0.001, 0.025, 0.3, 0.5, 0.9, 0.975, 0.999_999] {
            let x = normal_ppf(p);
            assert!((normal_sf(-x) - p).abs() < 1e-15 * p.max(1e-3), "{p}: {x}");
        }
        assert_eq!(normal_ppf(0.5), 0.0);
    }

    #[test]
    fn mcnemar_is_two_binomial_tails() {
        // b = 0, c = 5: 2 · (1/2)^5.
        assert_eq!(mcnemar_exact(0, 5), 2.0 / 32.0);
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // b = 1, c = 4: 2 · (1 + 5) / 32.
        assert!((mcnemar_exact(1, 4) - 12.0 / 32.0).abs() < 1e-15);
        assert_eq!(mcnemar_exact(4, 1), mcnemar_exact(1, 4));
    }

    #[test]
    fn the_exact_signed_rank_distribution_is_counted() {
        // n = 3, ranks 1, 2, 3 all positive: W− = 0; P(W ≤ 0) = 1/8; p = 1/4.
        let r = wilcoxon(&[1.0, 2.0, 3.0]).expect("test");
        assert_eq!(
            (r.statistic, r.p_value, r.method),
            (0.0, 0.25, WilcoxonMethod::Exact)
        );
        assert_eq!(wilcoxon(&[0.0, 0.0]), None);
    }
}
