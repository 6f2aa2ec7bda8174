//! "Buy till you die" models (FIT, PREDICT): the BG/NBD model of repeat purchases and churn
//! (Fader, Hardie & Lee 2005, "Counting your customers the easy way") and the Gamma-Gamma model
//! of spend per purchase (Fader, Hardie & Lee 2005, "RFM and CLV"), fitted by maximum
//! likelihood with Nelder-Mead on log-parameters; the Gauss hypergeometric function their
//! expectations need. Plain f64 arithmetic in log space where a term can overflow; every
//! formula is in docs/QUERY.md, FIT and PREDICT.
//!
//! Uses: rooms `stats`.

use crate::exec::stats::ln_gamma;

/// A customer's calibration summary: repeat purchases `frequency` (x), the time from the
/// first to the last purchase `recency` (t_x) and from the first purchase to the end of the
/// calibration `age` (T), in the fit's unit.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub(super) struct Summary {
    pub(super) frequency: f64,
    pub(super) recency: f64,
    pub(super) age: f64,
}

/// Why a model could not be fitted.
#[derive(Debug, PartialEq)]
pub(super) enum FitError {
    /// Too few customers, or no repeat purchase: the data cannot identify the model.
    NotIdentified(String),
    /// The optimiser stopped without converging.
    NoConvergence,
}

/// The BG/NBD model's parameters: purchase rates are Gamma(r, α) across customers, the
/// probability of dropping out after each purchase is Beta(a, b).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct BgNbd {
    pub(super) r: f64,
    pub(super) alpha: f64,
    pub(super) a: f64,
    pub(super) b: f64,
}

/// Fewest customers a fit accepts.
pub(super) const MIN_CUSTOMERS: f64 = 10.0;

impl BgNbd {
    /// The log-likelihood of one customer's summary (Hardie's note 027, in log-sum-exp form):
    /// the plain form of what [`Prepared::ln_likelihood`] sums.
    #[cfg(test)]
    fn ln_likelihood(&self, summary: &Summary) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let Summary {
            frequency: x,
            recency: t_x,
            age,
        } = *summary;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + age).ln();
        if x == 0.0 {
            return a1 + a2 + a3;
        }
        let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + t_x).ln();
        a1 + a2 + log_add_exp(a3, a4)
    }

    /// Fits the model to `summaries` (each with its weight: the number of customers sharing
    /// it), by maximum likelihood; the parameters and the log-likelihood.
    pub(super) fn fit(summaries: &[(Summary, f64)]) -> Result<(BgNbd, f64), FitError> {
        let customers: f64 = summaries.iter().map(|(_, weight)| weight).sum();
        if customers < MIN_CUSTOMERS {
            return Err(FitError::NotIdentified(format!(
                "{customers} customers; the model needs at least {MIN_CUSTOMERS}"
            )));
        }
        if summaries.iter().all(|(summary, _)| summary.frequency == 0.0) {
            return Err(FitError::NotIdentified(
                "no customer made a repeat purchase".into(),
            ));
        }
        let prepared = Prepared::new(summaries);
        let negative_ll = |point: &[f64]| {
            let model = BgNbd {
                r: point[0].exp(),
                alpha: point[1].exp(),
                a: point[2].exp(),
                b: point[3].exp(),
            };
            let total = prepared.ln_likelihood(&model);
            if total.is_finite() { -total } else { f64::INFINITY }
        };
        let (point, value) = minimize(negative_ll, &[0.0; 4])?;
        let model = BgNbd {
            r: point[0].exp(),
            alpha: point[1].exp(),
            a: point[2].exp(),
            b: point[3].exp(),
        };
        Ok((model, -value))
    }

    /// ln of the odds that a customer with this history has dropped out (0 purchases: never).
    fn ln_dropout_odds(&self, summary: &Summary) -> Option<f64> {
        let BgNbd { r, alpha, a, b } = *self;
        let x = summary.frequency;
        (x > 0.0).then(|| {
            a.ln() - (b + x - 1.0).ln()
                + (r + x) * ((alpha + summary.age).ln() - (alpha + summary.recency).ln())
        })
    }

    /// P(alive | x, t_x, T).
    pub(super) fn p_alive(&self, summary: &Summary) -> f64 {
        match self.ln_dropout_odds(summary) {
            // 1 / (1 + e^odds), without overflow.
            Some(odds) => (-log_add_exp(0.0, odds)).exp(),
            None => 1.0,
        }
    }

    /// E[Y(t) | x, t_x, T]: the expected purchases in the next `horizon` units.
    pub(super) fn conditional_expected(&self, summary: &Summary, horizon: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let Summary {
            frequency: x, age, ..
        } = *summary;
        if horizon <= 0.0 {
            return 0.0;
        }
        let z = horizon / (alpha + age + horizon);
        let (ln_hyp, sign) = ln_hyp2f1(r + x, b + x, a + b + x - 1.0, z);
        let scaled = sign * (ln_hyp + (r + x) * ((alpha + age).ln() - (alpha + age + horizon).ln())).exp();
        let numerator = (a + b + x - 1.0) / (a - 1.0) * (1.0 - scaled);
        let denominator_ln = match self.ln_dropout_odds(summary) {
            Some(odds) => log_add_exp(0.0, odds),
            None => 0.0,
        };
        numerator * (-denominator_ln).exp()
    }

    /// E[X(t)]: the expected repeat purchases of a new customer in its first `time` units.
    pub(super) fn expected(&self, time: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        if time <= 0.0 {
            return 0.0;
        }
        let (ln_hyp, sign) = ln_hyp2f1(r, b, a + b - 1.0, time / (alpha + time));
        let scaled = sign * (ln_hyp + r * (alpha.ln() - (alpha + time).ln())).exp();
        (a + b - 1.0) / (a - 1.0) * (1.0 - scaled)
    }
}

/// Summaries grouped for the likelihood: the terms that depend on x alone, on T alone or on t_x
/// alone are computed once per distinct value and evaluation, not once per summary.
struct Prepared {
    frequencies: Vec<f64>,
    recencies: Vec<f64>,
    ages: Vec<f64>,
    /// Per summary: the indices of its x, t_x and T, and its weight.
    summaries: Vec<(usize, usize, usize, f64)>,
}

impl Prepared {
    fn new(summaries: &[(Summary, f64)]) -> Prepared {
        fn distinct(values: impl Iterator<Item = f64>) -> Vec<f64> {
            let mut values: Vec<f64> = values.collect();
            values.sort_by(f64::total_cmp);
            values.dedup();
            values
        }
        let frequencies = distinct(summaries.iter().map(|(s, _)| s.frequency));
        let recencies = distinct(summaries.iter().map(|(s, _)| s.recency));
        let ages = distinct(summaries.iter().map(|(s, _)| s.age));
        let index = |values: &[f64], value: f64| values.partition_point(|&v| v < value);
        let summaries = summaries
            .iter()
            .map(|(s, weight)| {
                (
                    index(&frequencies, s.frequency),
                    index(&recencies, s.recency),
                    index(&ages, s.age),
                    *weight,
                )
            })
            .collect();
        Prepared {
            frequencies,
            recencies,
            ages,
            summaries,
        }
    }

    /// Σ weight · [`BgNbd::ln_likelihood`], in the summaries' order.
    fn ln_likelihood(&self, model: &BgNbd) -> f64 {
        let BgNbd { r, alpha, a, b } = *model;
        let common = r * alpha.ln() + ln_gamma(a + b) - ln_gamma(r) - ln_gamma(b);
        // Per x: the Gamma terms, and ln a − ln(b + x − 1).
        let by_frequency: Vec<(f64, f64)> = (self.frequencies.iter())
            .map(|&x| {
                let gammas = ln_gamma(r + x) + ln_gamma(b + x) - ln_gamma(a + b + x) + common;
                let dropout = if x > 0.0 { a.ln() - (b + x - 1.0).ln() } else { 0.0 };
                (gammas, dropout)
            })
            .collect();
        let ln_ages: Vec<f64> = self.ages.iter().map(|&t| (alpha + t).ln()).collect();
        let ln_recencies: Vec<f64> = self.recencies.iter().map(|&t| (alpha + t).ln()).collect();
        let mut total = 0.0;
        for &(x, recency, age, weight) in &self.summaries {
            let frequency = self.frequencies[x];
            let (gammas, dropout) = by_frequency[x];
            let still = -(r + frequency) * ln_ages[age];
            let term = if frequency > 0.0 {
                log_add_exp(still, dropout - (r + frequency) * ln_recencies[recency])
            } else {
                still
            };
            total += weight * (gammas + term);
        }
        total
    }
}

/// The Gamma-Gamma model's parameters: a customer's spend per purchase is Gamma(p, ν) with
/// ν ~ Gamma(q, γ) across customers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct GammaGamma {
    pub(super) p: f64,
    pub(super) q: f64,
    pub(super) gamma: f64,
}

impl GammaGamma {
    /// The log-likelihood of a customer's mean spend `mean` over `repeats` repeat purchases:
    /// the plain form of what [`GammaGamma::fit`] sums.
    #[cfg(test)]
    fn ln_likelihood(&self, repeats: f64, mean: f64) -> f64 {
        let GammaGamma { p, q, gamma } = *self;
        ln_gamma(p * repeats + q) - ln_gamma(p * repeats) - ln_gamma(q)
            + q * gamma.ln()
            + (p * repeats - 1.0) * mean.ln()
            + p * repeats * repeats.ln()
            - (p * repeats + q) * (repeats * mean + gamma).ln()
    }

    /// Fits the model to (repeat purchases, mean spend, weight) of the customers with at least
    /// one repeat purchase and a positive mean spend.
    pub(super) fn fit(spends: &[(f64, f64, f64)]) -> Result<(GammaGamma, f64), FitError> {
        let customers: f64 = spends.iter().map(|s| s.2).sum();
        if customers < MIN_CUSTOMERS {
            return Err(FitError::NotIdentified(format!(
                "{customers} customers with a repeat purchase and a positive value; the spend model needs at least {MIN_CUSTOMERS}"
            )));
        }
        // Per customer: the index of its x among the distinct ones, ln m_x, x·m_x, weight.
        let mut repeats: Vec<f64> = spends.iter().map(|s| s.0).collect();
        repeats.sort_by(f64::total_cmp);
        repeats.dedup();
        let customers: Vec<(usize, f64, f64, f64)> = spends
            .iter()
            .map(|&(x, mean, weight)| (repeats.partition_point(|&v| v < x), mean.ln(), x * mean, weight))
            .collect();
        let negative_ll = |point: &[f64]| {
            let (p, q, gamma) = (point[0].exp(), point[1].exp(), point[2].exp());
            let ln_gamma_q = ln_gamma(q) - q * gamma.ln();
            let by_repeats: Vec<f64> = (repeats.iter())
                .map(|&x| ln_gamma(p * x + q) - ln_gamma(p * x) + p * x * x.ln() - ln_gamma_q)
                .collect();
            let mut total = 0.0;
            for &(x, ln_mean, spent, weight) in &customers {
                let px = p * repeats[x];
                total += weight * (by_repeats[x] + (px - 1.0) * ln_mean - (px + q) * (spent + gamma).ln());
            }
            if total.is_finite() { -total } else { f64::INFINITY }
        };
        let (point, value) = minimize(negative_ll, &[0.0; 3])?;
        let model = GammaGamma {
            p: point[0].exp(),
            q: point[1].exp(),
            gamma: point[2].exp(),
        };
        Ok((model, -value))
    }

    /// E[M | x, m_x]: the expected spend per purchase of a customer with `repeats` repeat purchases
    /// of mean spend `mean` (the population mean when x = 0).
    pub(super) fn conditional_mean(&self, repeats: f64, mean: f64) -> f64 {
        let GammaGamma { p, q, gamma } = *self;
        p * (gamma + repeats * mean) / (p * repeats + q - 1.0)
    }
}

/// ln(e^x + e^y) without overflow.
fn log_add_exp(left: f64, right: f64) -> f64 {
    let top = left.max(right);
    if top == f64::NEG_INFINITY {
        return top;
    }
    top + ((left - top).exp() + (right - top).exp()).ln()
}

/// ln |₂F₁(a, b; c; z)| and its sign (a = `upper_a`, b = `upper_b`, c = `lower`, z = `at`;
/// 0 ≤ z < 1, c not a non-positive integer): the power series, or, when it overflows (heavy
/// buyers), Euler's transformation ₂F₁(a, b; c; z) = (1 − z)^(c − a − b) ₂F₁(c − a, c − b; c; z)
/// in log space (as lifetimes does). The sign matters when c is near −1 (BG/NBD's a + b − 1
/// when a and b run to 0).
pub(super) fn ln_hyp2f1(upper_a: f64, upper_b: f64, lower: f64, at: f64) -> (f64, f64) {
    let direct = hyp2f1_series(upper_a, upper_b, lower, at);
    if direct.is_finite() && direct != 0.0 {
        return (direct.abs().ln(), direct.signum());
    }
    let euler = hyp2f1_series(lower - upper_a, lower - upper_b, lower, at);
    let ln = euler.abs().ln() + (lower - upper_a - upper_b) * (1.0 - at).ln();
    (ln, euler.signum())
}

/// ₂F₁ by its power series: terms until they no longer change the sum (at most 100,000).
fn hyp2f1_series(upper_a: f64, upper_b: f64, lower: f64, at: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 0..100_000 {
        let n = f64::from(n);
        term *= (upper_a + n) * (upper_b + n) / ((lower + n) * (n + 1.0)) * at;
        sum += term;
        if term.abs() <= f64::EPSILON * sum.abs() || !sum.is_finite() {
            return sum;
        }
    }
    f64::NAN
}

/// The minimum of `objective` near `start`: Nelder-Mead (reflection 1, expansion 2, contraction ½,
/// shrink ½), restarted from its best point until a restart no longer improves it, so that a
/// simplex that collapsed early does not stop the search. Deterministic.
pub(super) fn minimize(
    objective: impl Fn(&[f64]) -> f64,
    start: &[f64],
) -> Result<(Vec<f64>, f64), FitError> {
    let mut best = start.to_vec();
    let mut value = objective(&best);
    for _ in 0..50 {
        let (point, found) = nelder_mead(&objective, &best)?;
        let improved = value - found;
        best = point;
        value = found;
        if improved.abs() <= 1e-10 * (1.0 + value.abs()) {
            return Ok((best, value));
        }
    }
    Err(FitError::NoConvergence)
}

/// One Nelder-Mead run from a simplex of steps of 0.5 around `start`.
fn nelder_mead(objective: &impl Fn(&[f64]) -> f64, start: &[f64]) -> Result<(Vec<f64>, f64), FitError> {
    let dims = start.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = (0..=dims)
        .map(|vertex| {
            let mut point = start.to_vec();
            if vertex > 0 {
                point[vertex - 1] += 0.5;
            }
            let value = objective(&point);
            (point, value)
        })
        .collect();
    for _ in 0..20_000 {
        simplex.sort_by(|x, y| x.1.total_cmp(&y.1));
        let (low, high) = (simplex[0].1, simplex[dims].1);
        let spread = simplex
            .iter()
            .flat_map(|(point, _)| point.iter().zip(&simplex[0].0).map(|(p, q)| (p - q).abs()))
            .fold(0.0, f64::max);
        if (high - low).abs() <= 1e-12 * (1.0 + low.abs()) && spread <= 1e-9 {
            let (point, value) = simplex.swap_remove(0);
            return Ok((point, value));
        }
        let centroid: Vec<f64> = (0..dims)
            .map(|d| simplex[..dims].iter().map(|(point, _)| point[d]).sum::<f64>() / dims as f64)
            .collect();
        let along = |t: f64| -> Vec<f64> {
            centroid
                .iter()
                .zip(&simplex[dims].0)
                .map(|(c, worst)| c + t * (c - worst))
                .collect()
        };
        let reflected = along(1.0);
        let reflected_value = objective(&reflected);
        if reflected_value < low {
            let expanded = along(2.0);
            let expanded_value = objective(&expanded);
            simplex[dims] = if expanded_value < reflected_value {
                (expanded, expanded_value)
            } else {
                (reflected, reflected_value)
            };
        } else if reflected_value < simplex[dims - 1].1 {
            simplex[dims] = (reflected, reflected_value);
        } else {
            let outside = reflected_value < high;
            let contracted = along(if outside { 0.5 } else { -0.5 });
            let contracted_value = objective(&contracted);
            if contracted_value < reflected_value.min(high) {
                simplex[dims] = (contracted, contracted_value);
            } else {
                let best = simplex[0].0.clone();
                for (point, value) in simplex.iter_mut().skip(1) {
                    for (p, b) in point.iter_mut().zip(&best) {
                        *p = b + 0.5 * (*p - b);
                    }
                    *value = objective(point);
                }
            }
        }
    }
    Err(FitError::NoConvergence)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ₂F₁ against closed forms: ₂F₁(1, 1; 2; z) = −ln(1 − z)/z, ₂F₁(a, b; b; z) = (1 − z)^−a.
    #[test]
    fn hypergeometric_function_matches_closed_forms() {
        for z in [0.01, 0.3, 0.5, 0.7, 0.9, 0.97] {
            let exact = -(1.0f64 - z).ln() / z;
            let got = ln_hyp2f1(1.0, 1.0, 2.0, z).0.exp();
            assert!((got / exact - 1.0).abs() < 1e-12, "z {z}: {got} vs {exact}");
            let exact = (1.0f64 - z).powf(-0.7);
            let got = ln_hyp2f1(0.7, 2.5, 2.5, z).0.exp();
            assert!((got / exact - 1.0).abs() < 1e-12, "z {z}: {got} vs {exact}");
        }
    }

    /// Nelder-Mead finds the minimum of Rosenbrock's valley and of a shifted bowl.
    #[test]
    fn nelder_mead_finds_known_minima() {
        let rosenbrock = |p: &[f64]| (1.0 - p[0]).powi(2) + 100.0 * (p[1] - p[0] * p[0]).powi(2);
        let (point, value) = minimize(rosenbrock, &[-1.2, 1.0]).unwrap();
        assert!(
            (point[0] - 1.0).abs() < 1e-5 && (point[1] - 1.0).abs() < 1e-5,
            "{point:?}"
        );
        assert!(value < 1e-10);
        let bowl = |p: &[f64]| (p[0] - 3.0).powi(2) + 2.0 * (p[1] + 1.0).powi(2) + (p[2] - 0.5).powi(2) + 7.0;
        let (point, value) = minimize(bowl, &[0.0; 3]).unwrap();
        assert!((value - 7.0).abs() < 1e-12, "{value}");
        for (got, want) in point.iter().zip([3.0, -1.0, 0.5]) {
            assert!((got - want).abs() < 1e-5, "{point:?}");
        }
    }

    /// The grouped likelihood equals the plain per-customer sum.
    #[test]
    fn grouped_likelihood_equals_the_plain_sum() {
        let summaries: Vec<(Summary, f64)> = (0..200u32)
            .map(|i| {
                let frequency = f64::from(i % 7);
                let age = 10.0 + f64::from(i % 13) * 1.5;
                let recency = if frequency == 0.0 {
                    0.0
                } else {
                    age * f64::from(i % 5) / 5.0
                };
                (
                    Summary {
                        frequency,
                        recency,
                        age,
                    },
                    f64::from(1 + i % 3),
                )
            })
            .collect();
        let prepared = Prepared::new(&summaries);
        for model in [
            BgNbd {
                r: 0.24,
                alpha: 4.4,
                a: 0.79,
                b: 2.4,
            },
            BgNbd {
                r: 3.0,
                alpha: 0.5,
                a: 1.7,
                b: 0.3,
            },
        ] {
            let plain: f64 = summaries.iter().map(|(s, w)| w * model.ln_likelihood(s)).sum();
            let grouped = prepared.ln_likelihood(&model);
            assert!(
                (plain - grouped).abs() <= 1e-9 * plain.abs(),
                "{plain} vs {grouped}"
            );
        }
        let spend = GammaGamma {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        };
        let plain = spend.ln_likelihood(2.0, 22.35);
        assert!(plain.is_finite());
    }

    /// P(alive) and the conditional expectation stay finite for heavy buyers (where the plain
    /// formula overflows), and P(alive) is 1 without a repeat purchase.
    #[test]
    fn heavy_buyers_do_not_overflow() {
        let model = BgNbd {
            r: 0.2426,
            alpha: 4.4136,
            a: 0.7929,
            b: 2.4259,
        };
        let heavy = Summary {
            frequency: 5_000.0,
            recency: 1.0,
            age: 3_000.0,
        };
        let alive = model.p_alive(&heavy);
        assert!(alive.is_finite() && (0.0..1e-100).contains(&alive), "{alive}");
        let expected = model.conditional_expected(&heavy, 39.0);
        assert!(expected.is_finite() && expected >= 0.0, "{expected}");
        let new = Summary {
            frequency: 0.0,
            recency: 0.0,
            age: 10.0,
        };
        assert_eq!(model.p_alive(&new), 1.0);
        // Dropout parameters run to 0 (a + b − 1 near −1: the series' sum may be negative):
        // finite expectations that grow with time.
        let split = BgNbd {
            r: 0.3688,
            alpha: 1.5068,
            a: 4.9e-9,
            b: 2.0e-8,
        };
        let (four, eight) = (split.expected(4.0), split.expected(8.0));
        assert!(four.is_finite() && four > 0.0 && eight > four, "{four} {eight}");
        let expected = split.conditional_expected(&new, 8.0);
        assert!(expected.is_finite() && expected > 0.0, "{expected}");
    }
}
