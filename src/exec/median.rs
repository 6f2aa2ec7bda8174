//! Medians and means of time-to-convert samples, exact and in parallel.
//!
//! Uses: `result`; rooms `options`, `scan`.

use crate::exec::options::QueryError;
use crate::exec::scan::worker_panic;
use crate::result::Cell;

/// The times to convert of one funnel step: the samples this worker took, and the parts merged
/// in from others — kept apart, so that merging copies nothing (medians are taken over the parts,
/// see [`median_mean_of`]).
#[derive(Clone, Debug, Default)]
pub(super) struct Samples {
    head: Vec<i64>,
    more: Vec<Vec<i64>>,
}

impl Samples {
    pub(in crate::internals::exec) fn push(&mut self, ts: i64) {
        self.head.push(ts);
    }

    /// Adds `other`'s samples (its vectors are moved in, not copied).
    pub(in crate::internals::exec) fn append(&mut self, other: Samples) {
        self.more.extend(
            std::iter::once(other.head)
                .chain(other.more)
                .filter(|v| !v.is_empty()),
        );
    }

    fn parts(&self) -> impl Iterator<Item = &[i64]> {
        std::iter::once(&self.head[..]).chain(self.more.iter().map(|v| &v[..]))
    }
}

/// [`median_mean_of`] each sample set, in order; on up to `threads` threads (0: one per core)
/// when there are many samples.
pub(super) fn medians_means(sets: Vec<&Samples>, threads: usize) -> Result<Vec<(Cell, Cell)>, QueryError> {
    let total: usize = sets
        .iter()
        .map(|v| v.parts().map(<[i64]>::len).sum::<usize>())
        .sum();
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    if total < 100_000 || threads < 2 || sets.len() < 2 {
        return Ok(sets.into_iter().map(median_mean_of).collect());
    }
    // Sets dealt out in turn: thread j takes sets j, j + threads, …
    let count = sets.len();
    let per = count.div_ceil(threads);
    let mut lanes: Vec<Vec<(usize, &Samples)>> = (0..threads.min(sets.len()))
        .map(|_| Vec::with_capacity(per))
        .collect();
    let lanes_n = lanes.len();
    for (i, v) in sets.into_iter().enumerate() {
        lanes[i % lanes_n].push((i, v));
    }
    type Lane = Vec<(usize, (Cell, Cell))>;
    let parts: Vec<Result<Lane, QueryError>> = std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                s.spawn(move || {
                    lane.into_iter()
                        .map(|(i, v)| (i, median_mean_of(v)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|payload| worker_panic(payload.as_ref())))
            .collect()
    });
    let mut out = Vec::with_capacity(count);
    for part in parts {
        out.extend(part?);
    }
    out.sort_by_key(|&(i, _)| i);
    Ok(out.into_iter().map(|(_, x)| x).collect())
}

/// From this many samples on, [`median_mean_bracketed`] brackets the median by a sample first.
pub(super) const BRACKET_FROM: usize = 1 << 13;

/// [`median_mean`] of the samples in all parts of `s`, without gathering them into one vector
/// (see [`median_mean_bracketed`]).
pub(super) fn median_mean_of(samples: &Samples) -> (Cell, Cell) {
    let parts: Vec<&[i64]> = samples.parts().filter(|p| !p.is_empty()).collect();
    median_mean_bracketed(&parts, 4096, 128)
}

/// [`median_mean`] of the union of `parts`: [`bracketed`] when it can answer, else of the parts
/// gathered into one vector. Either way the answer is the one [`median_mean`] gives.
pub(super) fn median_mean_bracketed(parts: &[&[i64]], sample: usize, margin: usize) -> (Cell, Cell) {
    let n: usize = parts.iter().map(|p| p.len()).sum();
    if n >= BRACKET_FROM
        && let Some(answer) = bracketed(parts, n, sample, margin)
    {
        return answer;
    }
    let mut v: Vec<i64> = parts.concat();
    median_mean(&mut v)
}

/// [`median_mean`] of the `count` values in `parts` without gathering them: a sorted sample of
/// about `sample` values (every k-th of each part) brackets the median ranks — the values
/// `margin` sample positions either side of the median's estimated position are bounds `lo` ≤
/// `hi` — and one pass over the parts counts the values below `lo`, keeps those in `[lo, hi]`
/// and sums all (for the mean). When the median ranks fall among the kept values (a few per
/// cent of them) they are selected there; `None` when the sample misjudged them.
pub(super) fn bracketed(
    parts: &[&[i64]],
    count: usize,
    sample: usize,
    margin: usize,
) -> Option<(Cell, Cell)> {
    if count == 0 {
        return None;
    }
    // Ranks (0-based, ascending) of the median: one value, or the two middle ones.
    let (r_lo, r_hi) = if count % 2 == 1 {
        (count / 2, count / 2)
    } else {
        (count / 2 - 1, count / 2)
    };
    let step = (count / sample.max(1)).max(1);
    let mut picked: Vec<i64> = parts
        .iter()
        .flat_map(|p| p.iter().step_by(step).copied())
        .collect();
    picked.sort_unstable();
    let m = picked.len();
    let at = r_lo * m / count;
    let lo = *picked.get(at.saturating_sub(margin))?;
    let hi = *picked.get((at + margin + 1).min(m.checked_sub(1)?))?;
    // One pass without branches on the values (they fall either side of `lo` at random): each
    // value is written at the end of `kept`, which grows only when it is in range.
    let cap = (count / m.max(1))
        .saturating_add(1)
        .saturating_mul(2 * margin + 2)
        .saturating_mul(2);
    let mut kept = vec![0i64; cap + 1];
    let (mut below, mut len, mut sum) = (0usize, 0usize, 0i128);
    for p in parts {
        for &x in *p {
            sum += i128::from(x);
            below += usize::from(x < lo);
            if let Some(slot) = kept.get_mut(len.min(cap)) {
                *slot = x;
            }
            len += usize::from((x >= lo) & (x <= hi));
        }
    }
    if len > cap || r_lo < below || r_hi >= below + len {
        return None;
    }
    kept.truncate(len);
    // The other middle value (rank r_lo ≥ below, when there are two) is the largest kept one
    // before rank r_hi.
    Some(median_mean_cells(
        &mut kept,
        r_hi - below,
        r_lo == r_hi,
        sum,
        count,
    ))
}

/// The median and mean (in seconds) of `count` samples summing to `sum` (exactly), where the
/// median's upper (or only, when `odd`) middle value has rank `column` among `values`, and the lower one,
/// when there are two, is the largest value of `values` below rank `column`.
pub(super) fn median_mean_cells(
    values: &mut [i64],
    column: usize,
    odd: bool,
    sum: i128,
    count: usize,
) -> (Cell, Cell) {
    let (under, mid, _) = values.select_nth_unstable(column);
    let mid = *mid;
    let med = if odd {
        mid as f64
    } else {
        (under.iter().copied().max().unwrap_or(mid) as f64 + mid as f64) / 2.0
    };
    let mean = sum as f64 / count as f64;
    (Cell::Float(med / 1e6), Cell::Float(mean / 1e6))
}

/// The continuous quantiles `qs` (each in [0, 1]) of the samples, in seconds, as DuckDB's
/// `quantile_cont`: at position h = (n − 1)·q among the sorted values, the value of rank ⌊h⌋
/// plus (h − ⌊h⌋) times the gap to the next one (so q = 0.5 is the median). NULL without
/// samples. Gathers the samples and selects once per quantile.
pub(super) fn quantiles_cont(samples: &Samples, qs: &[f64]) -> Vec<Cell> {
    let mut v: Vec<i64> = samples.parts().flatten().copied().collect();
    let n = v.len();
    if n == 0 {
        return vec![Cell::Null; qs.len()];
    }
    qs.iter()
        .map(|&q| {
            let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
            let rank = (h.floor() as usize).min(n - 1);
            let (_, at, above) = v.select_nth_unstable(rank);
            let low = *at;
            let high = above.iter().copied().min().unwrap_or(low);
            let value = low as f64 + (h - rank as f64) * (high as f64 - low as f64);
            Cell::Float(value / 1e6)
        })
        .collect()
}

pub(super) fn median_mean(values: &mut [i64]) -> (Cell, Cell) {
    if values.is_empty() {
        return (Cell::Null, Cell::Null);
    }
    // Selection, not a sort: linear in the number of converting customers. Summed exactly, so
    // the mean does not depend on the order workers delivered the times.
    let n = values.len();
    let sum = values.iter().map(|&x| i128::from(x)).sum::<i128>();
    median_mean_cells(values, n / 2, n % 2 == 1, sum, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The median and mean of values in parts, bracketed by a sample, equal those of the
        /// values gathered and selected whole — with a margin too narrow to hold (0: the
        /// bracket is one sample value; the whole selection then answers) and with the one
        /// queries use.
        #[test]
        fn bracketed_median_equals_whole_selection(
            parts in proptest::collection::vec(
                (0usize..12_000, 1i64..1_000_000_000_000, proptest::prelude::any::<u64>()),
                0..4,
            ),
            margin in proptest::sample::select(vec![0usize, 1, 128]),
            sample in proptest::sample::select(vec![64usize, 4096]),
        ) {
            // Values from a small or a wide range (ties or none), from a seeded generator.
            let parts: Vec<Vec<i64>> = parts
                .iter()
                .map(|&(n, range, seed)| {
                    let mut x = seed | 1;
                    (0..n)
                        .map(|_| {
                            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                            ((x >> 20) % range as u64) as i64 - range / 3
                        })
                        .collect()
                })
                .collect();
            let refs: Vec<&[i64]> = parts.iter().map(|p| &p[..]).collect();
            let mut all = parts.concat();
            let want = median_mean(&mut all);
            proptest::prop_assert_eq!(median_mean_bracketed(&refs, sample, margin), want.clone());
            if let Some(got) = bracketed(&refs, all.len(), sample, margin) {
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    /// With the parameters queries use, a bracket answers (the gathering fallback is the rare
    /// case) for values in two workers' parts, odd and even in number, few distinct and many.
    #[test]
    fn bracket_answers_for_typical_samples() {
        let mut x = 11u64;
        for (n, range) in [
            (300_001usize, 600_000_000_000u64),
            (300_000, 600_000_000_000),
            (200_000, 50),
        ] {
            let v: Vec<i64> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    ((x >> 20) % range) as i64
                })
                .collect();
            let (a, b) = v.split_at(n / 3);
            let got = bracketed(&[a, b], n, 4096, 128);
            assert_eq!(got, Some(median_mean(&mut v.clone())), "{n} values below {range}");
        }
    }

    /// A bracket whose top is exactly one rank below the median misses (the median is not
    /// among the kept values), and the whole selection answers.
    #[test]
    fn bracket_ending_one_rank_below_the_median_is_a_miss() {
        // 11 values; a sample of every 2nd ([0, 2, 4, 6, 50, 51]) brackets [4, 6], which holds
        // ranks 3–4 (0, 1 and 2 are below it): the median, rank 5, is the first rank above.
        let v = [0i64, 1, 2, 60, 4, 61, 6, 62, 50, 63, 51];
        assert_eq!(bracketed(&[&v], v.len(), 5, 0), None);
        let want = median_mean(&mut v.to_vec());
        assert_eq!(want.0, Cell::Float(50.0 / 1e6));
        assert_eq!(median_mean_bracketed(&[&v], 5, 0), want);
    }

    /// Brackets that end right at a median rank, below or above (sorted runs of consecutive
    /// values, split at every point of a range, with the narrowest margin): the bracket
    /// answers only when it holds both middle values, and the answer is exact either way.
    #[test]
    fn brackets_ending_at_the_median_ranks() {
        let (mut answered, mut missed) = (0, 0);
        for n in BRACKET_FROM..BRACKET_FROM + 300 {
            let v: Vec<i64> = (0..n as i64).map(|i| i * 3 % (n as i64)).collect();
            let mut sorted = v.clone();
            let want = median_mean(&mut sorted);
            for cut in [0, n / 3, n / 2 + 1] {
                let (a, b) = v.split_at(cut);
                match bracketed(&[a, b], n, 64, 0) {
                    Some(got) => {
                        assert_eq!(got, want, "{n} values cut at {cut}");
                        answered += 1;
                    }
                    None => missed += 1,
                }
                assert_eq!(median_mean_bracketed(&[a, b], 64, 0), want);
            }
        }
        assert!(answered > 0 && missed > 0, "{answered} answered, {missed} missed");
    }

    /// Medians and means taken on several threads equal those taken one set at a time, in
    /// the sets' order.
    #[test]
    fn medians_means_on_threads_equal_serial() -> Result<(), QueryError> {
        let mut x = 7u64;
        let sets: Vec<Vec<i64>> = [60_000usize, 0, 45_001, 1, 70_000]
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|_| {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        (x >> 24) as i64 % 1_000_000_007
                    })
                    .collect()
            })
            .collect();
        let serial: Vec<(Cell, Cell)> = sets.clone().iter_mut().map(|v| median_mean(v)).collect();
        // Each set as a worker's samples with others' parts merged in (uneven, some empty).
        let samples: Vec<Samples> = sets
            .iter()
            .map(|v| {
                let mut s = Samples::default();
                for (i, chunk) in v.chunks(v.len().div_ceil(3).max(1)).enumerate() {
                    let part = Samples {
                        head: chunk.to_vec(),
                        more: vec![Vec::new()],
                    };
                    if i == 0 {
                        s = part;
                    } else {
                        s.append(part);
                    }
                }
                s
            })
            .collect();
        for threads in [1, 2, 3, 8] {
            let got = medians_means(samples.iter().collect(), threads)?;
            assert_eq!(got, serial, "{threads} threads");
        }
        Ok(())
    }
}
