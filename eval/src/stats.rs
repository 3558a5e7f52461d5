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
//! - [`wilson`]: a rate's confidence interval, the Wilson score interval;
//! - [`fisher_exact`]: two independent rates (two cohorts of runs), Fisher's exact test,
//!   `scipy.stats.fisher_exact` (two-sided: every table with the same margins that is at most as
//!   likely as the one observed, with SciPy's relative tolerance of 1e-14);
//! - [`mann_whitney_u`]: two independent samples (the cohorts' latencies, costs), the
//!   Mann–Whitney U test, `scipy.stats.mannwhitneyu(x, y)` with its defaults: two-sided, the
//!   exact distribution of U when one sample has at most 8 values and there are no ties, else
//!   the normal approximation with the tie and continuity corrections.

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
/// `n` = 0. An `alpha` so small that its quantile is infinite (`1 - alpha / 2` rounds to 1)
/// gives the interval's limit, [0, 1].
pub fn wilson(successes: u64, n: u64, alpha: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let z = normal_ppf(1.0 - alpha / 2.0);
    if !z.is_finite() {
        return Some((0.0, 1.0));
    }
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

/// SciPy's tolerance when it compares a table's probability with the observed one's.
const FISHER_TOLERANCE: f64 = 1e-14;

/// The two-sided p-value of Fisher's exact test on the table [[a, b], [c, d]] (rows: the two
/// cohorts; columns: yes, no). 1 when a row or a column is empty.
///
/// With the margins fixed, `a` follows a hypergeometric distribution. Each table's probability
/// is taken relative to the most likely one through the ratio of neighbours, P(x+1)/P(x) =
/// (r1−x)(k−x) / ((x+1)(r2−k+x+1)), so no factorial is evaluated and 500,000 runs a side cost
/// one pass; the p-value is the share of the total held by the tables at most as likely as the
/// observed one.
pub fn fisher_exact(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let (r1, r2, k) = (a + b, c + d, a + c);
    if r1 == 0 || r2 == 0 || k == 0 || b + d == 0 {
        return 1.0;
    }
    let low = k.saturating_sub(r2);
    let high = k.min(r1);
    let total = r1 + r2;
    // The mode of the hypergeometric distribution, as SciPy computes it.
    let mode = (((k + 1) as f64 * (r1 + 1) as f64) / (total + 2) as f64) as u64;
    let mode = mode.clamp(low, high);
    let (r1, r2, k) = (r1 as f64, r2 as f64, k as f64);
    let up = |x: f64| (r1 - x) * (k - x) / ((x + 1.0) * (r2 - k + x + 1.0));
    // relative[x - low] = P(x) / P(mode).
    let mut relative = vec![0.0; (high - low + 1) as usize];
    relative[(mode - low) as usize] = 1.0;
    let mut p = 1.0;
    for x in mode..high {
        p *= up(x as f64);
        relative[(x + 1 - low) as usize] = p;
        if p == 0.0 {
            break;
        }
    }
    p = 1.0;
    for x in (low..mode).rev() {
        p /= up(x as f64);
        relative[(x - low) as usize] = p;
        if p == 0.0 {
            break;
        }
    }
    let observed = relative[(a - low) as usize];
    if (observed - 1.0).abs() <= FISHER_TOLERANCE {
        return 1.0;
    }
    let limit = observed * (1.0 + FISHER_TOLERANCE);
    let all: f64 = relative.iter().sum();
    let as_unlikely: f64 = relative.iter().filter(|r| **r <= limit).sum();
    (as_unlikely / all).min(1.0)
}

/// How a Mann–Whitney p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MannWhitneyMethod {
    /// The exact null distribution of U (a sample of at most 8 values, no ties).
    Exact,
    NormalApproximation,
}

/// A Mann–Whitney U test's result.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct MannWhitney {
    /// U of the first sample, SciPy's statistic.
    pub statistic: f64,
    pub p_value: f64,
    pub method: MannWhitneyMethod,
}

/// The two-sided Mann–Whitney U test of samples `x` and `y`; `None` when one is empty.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    // The pooled sample, sorted, each value marked with its sample.
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|v| (*v, true))
        .chain(y.iter().map(|v| (*v, false)))
        .collect();
    pooled.sort_unstable_by(|p, q| p.0.total_cmp(&q.0));
    let (mut rank_sum_x, mut ties, mut tied) = (0.0, 0.0, false);
    let mut start = 0;
    while start < pooled.len() {
        let mut end = start + 1;
        while end < pooled.len() && pooled[end].0 == pooled[start].0 {
            end += 1;
        }
        let rank = (start + 1 + end) as f64 / 2.0;
        let in_x = pooled[start..end].iter().filter(|p| p.1).count();
        rank_sum_x += rank * in_x as f64;
        let t = (end - start) as f64;
        if t > 1.0 {
            tied = true;
            ties += t * t * t - t;
        }
        start = end;
    }
    let (m, n) = (n1 as f64, n2 as f64);
    let u1 = rank_sum_x - m * (m + 1.0) / 2.0;
    let u = u1.max(m * n - u1);
    let method = if (n1 > 8 && n2 > 8) || tied {
        MannWhitneyMethod::NormalApproximation
    } else {
        MannWhitneyMethod::Exact
    };
    let p_value = match method {
        MannWhitneyMethod::Exact => 2.0 * exact_u_sf(n1.min(n2), n1.max(n2), u),
        MannWhitneyMethod::NormalApproximation => {
            let total = m + n;
            let sd = (m * n / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)))).sqrt();
            2.0 * normal_sf((u - m * n / 2.0 - 0.5) / sd)
        }
    };
    Some(MannWhitney {
        statistic: u1,
        p_value: p_value.clamp(0.0, 1.0),
        method,
    })
}

/// P(U ≥ u) under the null for samples of `small` and `large` values, u ≥ small·large / 2: by
/// symmetry P(U ≤ small·large − u), the share of the C(small + large, small) orderings whose U is
/// at most that. Their counts are the coefficients of the Gaussian binomial
/// ∏ᵢ (1 − q^(large+i)) / (1 − qⁱ), i = 1..=small, taken as power series cut after the bound.
fn exact_u_sf(small: usize, large: usize, u: f64) -> f64 {
    let bound = (small * large) as f64 - u;
    let bound = bound.round().max(0.0) as usize;
    let mut counts = vec![0.0f64; bound + 1];
    counts[0] = 1.0;
    for i in 1..=small {
        // × 1 / (1 − qⁱ): add the coefficient i places back, in increasing order.
        for k in i..=bound {
            counts[k] += counts[k - i];
        }
        // × (1 − q^(large+i)): subtract the coefficient large+i places back, decreasing order.
        let shift = large + i;
        for k in (shift..=bound).rev() {
            counts[k] -= counts[k - shift];
        }
    }
    let orderings = ln_binomial(small + large, small).exp();
    counts.iter().sum::<f64>() / orderings
}

/// ln C(n, k).
fn ln_binomial(n: usize, k: usize) -> f64 {
    let ln_fact = ln_factorials(n as u64);
    ln_fact[n] - ln_fact[k] - ln_fact[n - k]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanishing_alpha_gives_the_whole_unit_interval_not_nan() {
        // 1 - 5e-324 / 2 rounds to 1: an infinite quantile, whose limit is [0, 1].
        assert_eq!(wilson(3, 10, 5e-324), Some((0.0, 1.0)));
        let (low, high) = wilson(3, 10, 1e-12).unwrap();
        assert!(low.is_finite() && high.is_finite() && low < 0.3 && high > 0.3);
    }

    #[test]
    fn fisher_sums_the_tables_at_most_as_likely() {
        // [[3, 1], [1, 3]]: margins 4, 4, 4. P(a) = C(4,a)·C(4,4−a)/C(8,4) = 1, 16, 36, 16, 1
        // (of 70). Observed a = 3 (16/70): a = 0, 1, 3, 4 are at most as likely: 34/70.
        assert!((fisher_exact(3, 1, 1, 3) - 34.0 / 70.0).abs() < 1e-15);
        assert_eq!(fisher_exact(2, 2, 2, 2), 1.0);
        assert_eq!(fisher_exact(0, 0, 3, 4), 1.0);
        // [[4, 0], [0, 4]]: only a = 0 and a = 4, 2/70.
        assert!((fisher_exact(4, 0, 0, 4) - 2.0 / 70.0).abs() < 1e-15);
    }

    #[test]
    fn the_exact_u_distribution_is_counted() {
        // x = [1, 2], y = [3, 4, 5]: U1 = 0, U = 6; orderings C(5, 2) = 10, one with U ≤ 0:
        // p = 2 · 1/10.
        let r = mann_whitney_u(&[1.0, 2.0], &[3.0, 4.0, 5.0]).expect("test");
        assert_eq!((r.statistic, r.method), (0.0, MannWhitneyMethod::Exact));
        assert!((r.p_value - 0.2).abs() < 1e-15);
        // U at the centre: p clipped to 1.
        let r = mann_whitney_u(&[1.0, 4.0], &[2.0, 3.0]).expect("test");
        assert_eq!(r.p_value, 1.0);
        assert_eq!(mann_whitney_u(&[], &[1.0]), None);
        // A tie: the normal approximation.
        let r = mann_whitney_u(&[1.0, 2.0], &[2.0, 3.0]).expect("test");
        assert_eq!(r.method, MannWhitneyMethod::NormalApproximation);
    }

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
