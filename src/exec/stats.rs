//! Statistics of 2×2 tables (CORRELATE): odds ratios, Fisher's exact test, the G-test and the
//! Benjamini-Hochberg cut; the log-gamma function they rest on. Plain f64 arithmetic, no
//! dependency; every formula is in docs/QUERY.md, CORRELATE.
//!
//! Uses: no other module of the crate.

/// ln Γ(x) for x > 0: Lanczos' approximation (g = 7, 9 terms; relative error below 1e-14 for
/// x ≥ 1), below 1 through ln Γ(x) = ln Γ(x + 1) − ln x.
pub(super) fn ln_gamma(value: f64) -> f64 {
    if value < 1.0 {
        return ln_gamma(value + 1.0) - value.ln();
    }
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let value = value - 1.0;
    let mut sum = C[0];
    for (k, c) in C.iter().enumerate().skip(1) {
        sum += c / (value + k as f64);
    }
    let t = value + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (value + 0.5) * t.ln() - t + sum.ln()
}

/// ln of n choose k.
fn ln_choose(count: u64, chosen: u64) -> f64 {
    ln_gamma(count as f64 + 1.0) - ln_gamma(chosen as f64 + 1.0) - ln_gamma((count - chosen) as f64 + 1.0)
}

/// A 2×2 table of customers: converted with / without a feature, dropped with / without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Table2 {
    pub(super) a: u64,
    pub(super) b: u64,
    pub(super) c: u64,
    pub(super) d: u64,
}

impl Table2 {
    /// (a·d) / (b·c), with 0.5 added to every cell when one is 0 (Haldane–Anscombe).
    pub(super) fn odds_ratio(&self) -> f64 {
        let cells = [self.a, self.b, self.c, self.d].map(|x| x as f64);
        let shift = if cells.contains(&0.0) { 0.5 } else { 0.0 };
        let [a, b, c, d] = cells.map(|x| x + shift);
        (a * d) / (b * c)
    }

    /// The two-sided p-value of independence: Fisher's exact test when a cell is below 5,
    /// else the G-test (likelihood ratio, one degree of freedom).
    pub(super) fn p_value(&self) -> f64 {
        if [self.a, self.b, self.c, self.d].iter().any(|&x| x < 5) {
            self.fisher()
        } else {
            self.g_test()
        }
    }

    /// Fisher's exact test, two-sided: the probability, with the margins fixed, of every table
    /// no more likely than this one (relative tolerance 1e-7 for ties in likelihood, as R's
    /// `fisher.test`).
    pub(super) fn fisher(&self) -> f64 {
        let (row1, col1) = (self.a + self.b, self.a + self.c);
        let n = self.a + self.b + self.c + self.d;
        let (lo, hi) = (col1.saturating_sub(self.c + self.d), row1.min(col1));
        let ln_total = ln_choose(n, col1);
        let ln_p = |x: u64| ln_choose(row1, x) + ln_choose(n - row1, col1 - x) - ln_total;
        let observed = ln_p(self.a);
        let tolerance = (1e-7f64).ln_1p();
        let mut sum = 0.0;
        for x in lo..=hi {
            let p = ln_p(x);
            if p <= observed + tolerance {
                sum += p.exp();
            }
        }
        sum.min(1.0)
    }

    /// The G-test: G = 2 Σ O·ln(O/E) over the four cells (E from the margins), p = the
    /// chi-square (1 df) upper tail of G.
    pub(super) fn g_test(&self) -> f64 {
        let n = (self.a + self.b + self.c + self.d) as f64;
        let (r1, r2) = ((self.a + self.b) as f64, (self.c + self.d) as f64);
        let (c1, c2) = ((self.a + self.c) as f64, (self.b + self.d) as f64);
        let term = |o: u64, e: f64| {
            if o == 0 {
                0.0
            } else {
                o as f64 * (o as f64 / e).ln()
            }
        };
        let g = 2.0
            * (term(self.a, r1 * c1 / n)
                + term(self.b, r1 * c2 / n)
                + term(self.c, r2 * c1 / n)
                + term(self.d, r2 * c2 / n));
        chi2_1_upper(g.max(0.0))
    }
}

/// P(X > x) for X chi-square with one degree of freedom: Q(1/2, x/2), the regularized upper
/// incomplete gamma function (series below 1.5, continued fraction above; Numerical Recipes'
/// `gammq`, to 1e-15).
pub(super) fn chi2_1_upper(value: f64) -> f64 {
    let (s, z) = (0.5, value / 2.0);
    if z <= 0.0 {
        return 1.0;
    }
    let ln_pre = -z + s * z.ln() - ln_gamma(s);
    if z < s + 1.0 {
        // Series for P(s, z); Q = 1 − P.
        let (mut term, mut sum, mut k) = (1.0 / s, 1.0 / s, s);
        for _ in 0..500 {
            k += 1.0;
            term *= z / k;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        return (1.0 - sum * ln_pre.exp()).clamp(0.0, 1.0);
    }
    // Lentz's continued fraction for Q(s, z).
    let tiny = 1e-300;
    let mut b = z + 1.0 - s;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..500 {
        let an = -(i as f64) * (i as f64 - s);
        b += 2.0;
        d = an * d + b;
        if d.abs() < tiny {
            d = tiny;
        }
        c = b + an / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (ln_pre.exp() * h).clamp(0.0, 1.0)
}

/// The Benjamini–Hochberg cut at false discovery rate `alpha` over p-values `p_values`: how many of
/// them, smallest first, are kept (the largest k with p₍k₎ ≤ α·k/m).
pub(super) fn benjamini_hochberg(p_values: &[f64], alpha: f64) -> usize {
    let mut sorted: Vec<f64> = p_values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len() as f64;
    (1..=sorted.len())
        .rev()
        .find(|&k| sorted[k - 1] <= alpha * k as f64 / m)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(left: f64, right: f64, rel: f64) -> bool {
        (left - right).abs() <= rel * right.abs().max(1e-300)
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut fact = 1.0f64;
        for n in 1..=30u32 {
            fact *= f64::from(n);
            assert!(close(ln_gamma(f64::from(n) + 1.0), fact.ln(), 1e-13), "{n}");
        }
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-13));
    }

    /// Fisher's tea-tasting table [[3, 1], [1, 3]]: p = 34/70 (R: 0.4857); [[1, 9], [11, 3]]
    /// (R's `fisher.test`: 0.002759).
    #[test]
    fn fisher_p_values_of_known_tables() {
        let tea = Table2 {
            a: 3,
            b: 1,
            c: 1,
            d: 3,
        };
        assert!(close(tea.fisher(), 34.0 / 70.0, 1e-12), "{}", tea.fisher());
        let t = Table2 {
            a: 1,
            b: 9,
            c: 11,
            d: 3,
        };
        assert!(
            close(t.fisher(), 0.002_759_456_185_220_083, 1e-9),
            "{}",
            t.fisher()
        );
        assert_eq!(t.p_value(), t.fisher());
        // Independent margins: p = 1.
        assert!(close(
            Table2 {
                a: 2,
                b: 2,
                c: 2,
                d: 2
            }
            .fisher(),
            1.0,
            1e-12
        ));
    }

    /// The G-test of [[20, 30], [40, 10]]: G = 17.2609…, p = 3.2582e-5 (by hand: Σ 2·O·ln(O/E)
    /// with E = 30, 20, 30, 20; p = erfc(√(G/2))); and the chi-square tail at known points.
    #[test]
    fn g_test_and_chi_square_tail() {
        let t = Table2 {
            a: 20,
            b: 30,
            c: 40,
            d: 10,
        };
        let g = 2.0
            * (20.0 * (20.0f64 / 30.0).ln()
                + 30.0 * (30.0f64 / 20.0).ln()
                + 40.0 * (40.0f64 / 30.0).ln()
                + 10.0 * (10.0f64 / 20.0).ln());
        assert!(close(g, 17.260_924_347_106_844, 1e-12), "{g}");
        assert!(close(t.g_test(), chi2_1_upper(g), 1e-15));
        assert_eq!(t.p_value(), t.g_test());
        // Chi-square (1 df) upper tail: 3.841459 → 0.05, 6.634897 → 0.01, 1 → 0.3173105.
        assert!(close(chi2_1_upper(3.841_458_820_694_124), 0.05, 1e-9));
        assert!(close(chi2_1_upper(6.634_896_601_021_214), 0.01, 1e-9));
        assert!(close(chi2_1_upper(1.0), 0.317_310_507_862_914_1, 1e-12));
        assert!(close(chi2_1_upper(g), 3.258_188_094_698_209_6e-5, 1e-9));
    }

    #[test]
    fn odds_ratio_with_and_without_the_correction() {
        assert!(close(
            Table2 {
                a: 20,
                b: 30,
                c: 40,
                d: 10
            }
            .odds_ratio(),
            200.0 / 1200.0,
            1e-15
        ));
        // A zero cell: 0.5 added to all four.
        assert!(close(
            Table2 {
                a: 0,
                b: 10,
                c: 5,
                d: 5
            }
            .odds_ratio(),
            (0.5 * 5.5) / (10.5 * 5.5),
            1e-15
        ));
    }

    /// BH at 0.05 over [0.01, 0.02, 0.03, 0.04, 0.5]: k/m·α = 0.01, 0.02, 0.03, 0.04 → the
    /// first four kept; one more noise value [0.01, 0.5, 0.6] keeps one.
    #[test]
    fn benjamini_hochberg_cut() {
        assert_eq!(benjamini_hochberg(&[0.04, 0.01, 0.5, 0.03, 0.02], 0.05), 4);
        assert_eq!(benjamini_hochberg(&[0.5, 0.01, 0.6], 0.05), 1);
        assert_eq!(benjamini_hochberg(&[0.2, 0.3], 0.05), 0);
        assert_eq!(benjamini_hochberg(&[0.2, 0.3], 1.0), 2);
        assert_eq!(benjamini_hochberg(&[], 0.05), 0);
    }
}
