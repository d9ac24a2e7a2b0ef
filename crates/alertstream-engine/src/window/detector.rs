//! Online anomaly detectors that see shape and context: one update and one score per reading, bounded memory, no
//! look-ahead. Each folds values in as they arrive (as `ewma` does: a late reading is scored where it arrives).
//!
//! - [`Novelty`]: how new the recent pattern of values is, after the contextual anomaly detector of Smirnov's CAD
//!   OSE (NAB, 2016): values quantised on a grid learnt in warm-up into runs (a level and how long it has lasted,
//!   in doubling classes), and the contexts that end at each reading (the current run, and it after the run
//!   before) looked up among those seen before. The score is the share of those contexts never seen: 0 for a
//!   familiar pattern, 0.5 for a familiar run after an unfamiliar one, 1 for a level never seen or held longer
//!   than ever.
//! - [`Likelihood`]: the anomaly likelihood of Ahmad, Lavin, Purdy and Agha, "Unsupervised real-time anomaly
//!   detection for streaming data" (Neurocomputing, 2017), as Numenta's HTM detector applies it to its raw scores:
//!   the mean of the last 10 scores against a normal distribution fitted to the recent averages, as how unlikely,
//!   on a log scale in [0, 1] (0.5 is a tail probability of 1e-5).
//! - [`Anomaly`]: the default detector, `anomaly(x)`: the likelihood of the novelty.

use std::collections::VecDeque;

use foldhash::HashSet;

use super::{
    MAX_WINDOW_READINGS, Welford,
    persist::{decode_welford, encode_welford},
};
use crate::snapshot::{
    SnapshotError,
    codec::{Reader, Writer},
};

/// Readings a novelty learns its grid from before it scores one.
pub const NOVELTY_WARM_UP: usize = 300;
/// Raw scores a likelihood averages before it scores one.
pub const LIKELIHOOD_WARM_UP: usize = 150;
/// The levels a novelty grid divides the warm-up's range into.
const NOVELTY_LEVELS: f64 = 12.0;
/// The runs a novelty context spans: the current one and the one before it. Longer contexts were measured on NAB
/// (docs/DETECTION.md): on noisy series almost every context of three runs or more is new, and the score drowns.
const NOVELTY_DEPTH: usize = 2;
/// The longest run length class: runs of 64 readings or more are one class, so that a series flat for good is
/// not new again at every doubling of its run.
const NOVELTY_LONGEST_CLASS: u32 = 6;
/// Contexts a novelty remembers per generation; it holds at most two generations (about 200 KiB).
const NOVELTY_CONTEXTS: usize = 4_096;
/// The scores a likelihood's short-term mean averages (Ahmad et al.: 10).
const LIKELIHOOD_AVERAGE: usize = 10;
/// The recent short-term means a likelihood fits its distribution to, by default.
pub const LIKELIHOOD_HISTORY: usize = 1_000;
/// A likelihood's distribution is never narrower than this standard deviation (Numenta's variance floor of
/// 0.0003), so that a detector that has only ever scored 0 does not call the first small rise impossible.
const LIKELIHOOD_SIGMA_MIN: f64 = 0.017_320_508;
/// The tail probability at which the log-scaled likelihood reaches 1.
const LIKELIHOOD_TAIL_MIN: f64 = 1e-10;

/// The novelty of the recent pattern of values: see the module's documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Novelty {
    /// The warm-up's values, until the grid is set.
    learning: Vec<f64>,
    /// The grid: its origin and the width of a level, once set.
    grid: Option<(f64, f64)>,
    /// The current run: its level and how many readings it has lasted.
    run: Option<(i64, u64)>,
    /// The tokens of the runs before it, newest last, at most [`NOVELTY_DEPTH`] - 1.
    previous: VecDeque<u64>,
    /// The contexts seen, in two generations: lookups see both, inserts go to the newer, and when it is full the
    /// older is dropped. Bounded memory that forgets the least recently learnt patterns first.
    seen: [HashSet<u64>; 2],
}

impl Novelty {
    /// Scores `value` (`None` in warm-up), then learns it.
    ///
    /// A context is a run of one level with its length class (1, 2-3, 4-7, 8-15, … readings), after the runs before
    /// it: so a level held longer than it ever was (a flat stretch where the series used to move) is new too, at
    /// each doubling.
    pub(crate) fn update(&mut self, value: f64) -> Option<f64> {
        // A value that is not a number (an argument with none: a z-score of a flat history) is not learnt.
        if !value.is_finite() {
            return None;
        }
        let Some((origin, width)) = self.grid else {
            self.learning.push(value);
            if self.learning.len() >= NOVELTY_WARM_UP {
                self.set_grid();
            }
            return None;
        };
        let level = ((value - origin) / width).floor().clamp(-1e15, 1e15) as i64;
        let length = match self.run {
            Some((current, length)) if current == level => length.saturating_add(1),
            Some(ended) => {
                if self.previous.len() == NOVELTY_DEPTH - 1 {
                    self.previous.pop_front();
                }
                self.previous.push_back(token(ended));
                1
            }
            None => 1,
        };
        self.run = Some((level, length));
        let mut contexts = [0u64; NOVELTY_DEPTH];
        // FNV-1a over the tokens from the newest back, so each depth's context extends the shorter one's.
        let step = |hash: u64, token: u64| (hash ^ token).wrapping_mul(0x0100_0000_01b3);
        let mut hash = step(0xcbf2_9ce4_8422_2325, token((level, length)));
        contexts[0] = hash;
        for (context, &token) in contexts[1..].iter_mut().zip(self.previous.iter().rev()) {
            hash = step(hash, token);
            *context = hash;
        }
        let depth = 1 + self.previous.len();
        let mut unseen = 0u32;
        for &context in &contexts[..depth] {
            if !self.seen[0].contains(&context) && !self.seen[1].contains(&context) {
                unseen += 1;
            }
            self.learn(context);
        }
        Some(f64::from(unseen) / depth as f64)
    }

    fn learn(&mut self, context: u64) {
        if self.seen[1].len() >= NOVELTY_CONTEXTS {
            self.seen.swap(0, 1);
            self.seen[1].clear();
        }
        self.seen[1].insert(context);
    }

    /// The grid from the warm-up's range: [`NOVELTY_LEVELS`] levels across it, each at least 1 % of its magnitude
    /// (and 1e-9) wide so that a flat or quantised warm-up still has a grid. The warm-up's values then seed the
    /// contexts, so that what was normal in warm-up is not new after it.
    fn set_grid(&mut self) {
        let (low, high) =
            self.learning.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let width = ((high - low) / NOVELTY_LEVELS).max(0.01 * low.abs().max(high.abs())).max(1e-9);
        self.grid = Some((low, width));
        let learning = std::mem::take(&mut self.learning);
        for value in learning {
            let _ = self.update(value);
        }
    }
}

impl Novelty {
    /// Writes the model: the warm-up's values or the grid, the current run and the runs before it, and the
    /// contexts seen, by generation.
    pub(crate) fn encode(&self, out: &mut Writer) {
        write_values(out, self.learning.iter().copied());
        out.bool(self.grid.is_some());
        let (origin, width) = self.grid.unwrap_or_default();
        out.f64(origin);
        out.f64(width);
        out.bool(self.run.is_some());
        let (level, length) = self.run.unwrap_or_default();
        out.i64(level);
        out.u64(length);
        out.len(self.previous.len());
        self.previous.iter().for_each(|&token| out.u64(token));
        for generation in &self.seen {
            out.len(generation.len());
            generation.iter().for_each(|&context| out.u64(context));
        }
    }

    /// Reads a model [`encode`](Self::encode) wrote.
    pub(crate) fn decode(input: &mut Reader<'_>) -> Result<Self, SnapshotError> {
        let learning = read_values(input)?;
        let has_grid = input.bool()?;
        let grid = (input.f64()?, input.f64()?);
        let has_run = input.bool()?;
        let run = (input.i64()?, input.u64()?);
        let previous = (0..input.len(8)?).map(|_| input.u64()).collect::<Result<VecDeque<_>, _>>()?;
        let bad_grid = has_grid && !(grid.0.is_finite() && grid.1.is_finite() && grid.1 > 0.0);
        if learning.len() > NOVELTY_WARM_UP
            || previous.len() >= NOVELTY_DEPTH
            || (has_run && run.1 == 0)
            || bad_grid
            || learning.iter().any(|v| !v.is_finite())
        {
            return Err(SnapshotError::Damaged("a novelty holds what it cannot"));
        }
        let mut seen: [HashSet<u64>; 2] = Default::default();
        for generation in &mut seen {
            let count = input.len(8)?;
            if count > NOVELTY_CONTEXTS {
                return Err(SnapshotError::Damaged("a novelty remembers more contexts than it can"));
            }
            for _ in 0..count {
                generation.insert(input.u64()?);
            }
        }
        Ok(Self { learning, grid: has_grid.then_some(grid), run: has_run.then_some(run), previous, seen })
    }
}

impl Likelihood {
    /// Writes the last raw scores, the recent short-term means and their running statistics.
    pub(crate) fn encode(&self, out: &mut Writer) {
        write_values(out, self.recent.iter().copied());
        write_values(out, self.means.iter().copied());
        // The running sums as they are (rounding included), so that a restored likelihood scores the very values
        // the original would have.
        out.f64(self.recent_sum);
        encode_welford(&self.stats, out);
        out.u64(self.removals as u64);
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub(crate) fn decode(input: &mut Reader<'_>) -> Result<Self, SnapshotError> {
        let recent = VecDeque::from(read_values(input)?);
        let means = VecDeque::from(read_values(input)?);
        let recent_sum = input.f64()?;
        let stats = decode_welford(input)?;
        let removals = usize::try_from(input.u64()?).map_err(|_| SnapshotError::Damaged("a count"))?;
        let finite = recent.iter().chain(&means).chain([&recent_sum]).all(|v| v.is_finite());
        if recent.len() > LIKELIHOOD_AVERAGE || !finite || stats.n != means.len() || removals > MAX_WINDOW_READINGS {
            return Err(SnapshotError::Damaged("a likelihood holds what it cannot"));
        }
        Ok(Self { recent, recent_sum, means, stats, removals })
    }
}

impl Anomaly {
    /// Writes both parts.
    pub(crate) fn encode(&self, out: &mut Writer) {
        self.novelty.encode(out);
        self.likelihood.encode(out);
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub(crate) fn decode(input: &mut Reader<'_>) -> Result<Self, SnapshotError> {
        Ok(Self { novelty: Novelty::decode(input)?, likelihood: Likelihood::decode(input)? })
    }
}

fn write_values(out: &mut Writer, values: impl ExactSizeIterator<Item = f64>) {
    out.len(values.len());
    values.for_each(|v| out.f64(v));
}

fn read_values(input: &mut Reader<'_>) -> Result<Vec<f64>, SnapshotError> {
    (0..input.len(8)?).map(|_| input.f64()).collect()
}

/// A run as a context's token: its level and its length class (⌊log2 length⌋, at most [`NOVELTY_LONGEST_CLASS`]).
fn token((level, length): (i64, u64)) -> u64 {
    ((level as u64) << 8) | u64::from(length.checked_ilog2().unwrap_or(0).min(NOVELTY_LONGEST_CLASS))
}

/// The anomaly likelihood of a raw score: see the module's documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Likelihood {
    /// The last [`LIKELIHOOD_AVERAGE`] raw scores and their sum.
    recent: VecDeque<f64>,
    recent_sum: f64,
    /// The last `history` short-term means, and their mean and variance.
    means: VecDeque<f64>,
    stats: Welford,
    /// Removals since the statistics were recomputed (cancels rounding drift).
    removals: usize,
}

impl Likelihood {
    /// Scores the raw score `value` against the distribution of the recent short-term means (`None` until it has
    /// [`LIKELIHOOD_WARM_UP`] of them), then learns it; `history` is how many means the distribution is fitted to.
    pub(crate) fn update(&mut self, history: usize, value: f64) -> Option<f64> {
        // Not learnt: one infinite or NaN score would stay in the running sums for good.
        if !value.is_finite() {
            return None;
        }
        if self.recent.len() == LIKELIHOOD_AVERAGE {
            self.recent_sum -= self.recent.pop_front().unwrap_or(0.0);
        }
        self.recent.push_back(value);
        self.recent_sum += value;
        let mean = self.recent_sum / self.recent.len() as f64;
        let score = (self.means.len() >= LIKELIHOOD_WARM_UP).then(|| {
            let sigma = self.stats.stddev().max(LIKELIHOOD_SIGMA_MIN).max(1e-9 * self.stats.mean.abs());
            log_likelihood(upper_tail((mean - self.stats.mean) / sigma))
        });
        self.means.push_back(mean);
        self.stats.add(mean);
        while self.means.len() > history {
            if let Some(old) = self.means.pop_front() {
                self.stats.remove(old);
                self.removals += 1;
            }
        }
        if self.removals > history.max(64) {
            self.stats = Welford::default();
            for &mean in &self.means {
                self.stats.add(mean);
            }
            self.removals = 0;
        }
        score
    }
}

/// The default detector: the likelihood of the novelty.
#[derive(Debug, Clone, Default)]
pub(crate) struct Anomaly {
    novelty: Novelty,
    likelihood: Likelihood,
}

impl Anomaly {
    /// Scores `value` in [0, 1] (`None` while either part warms up); `history` as for [`Likelihood::update`].
    pub(crate) fn update(&mut self, history: usize, value: f64) -> Option<f64> {
        let novelty = self.novelty.update(value)?;
        self.likelihood.update(history, novelty)
    }
}

/// How unlikely a tail probability is, on a log scale: 0 for a probability of 1, 0.5 for 1e-5, 1 for 1e-10 or less
/// (Numenta's log-likelihood).
fn log_likelihood(tail: f64) -> f64 {
    ((tail + LIKELIHOOD_TAIL_MIN).ln() / LIKELIHOOD_TAIL_MIN.ln()).clamp(0.0, 1.0)
}

/// The probability that a standard normal variable exceeds `z`; NaN counts as not unusual.
fn upper_tail(z: f64) -> f64 {
    if z.is_nan() { 0.5 } else { 0.5 * erfc(z / std::f64::consts::SQRT_2) }
}

/// The complementary error function, by the Chebyshev fit in Numerical Recipes (relative error below 1.2e-7
/// everywhere, tails included, which the log scale needs).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values_in_the_body_and_the_tails() {
        for (x, expected) in
            [(0.0, 1.0), (0.5, 0.479_500_122), (1.0, 0.157_299_207), (2.0, 0.004_677_735), (4.0, 1.541_725_790e-8)]
        {
            let got = erfc(x);
            assert!(((got - expected) / expected).abs() < 2e-7, "erfc({x}) = {got}, expected {expected}");
        }
        assert!((erfc(-1.0) - (2.0 - 0.157_299_207)).abs() < 1e-7);
        assert!((upper_tail(0.0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn the_log_likelihood_is_half_at_a_tail_of_one_in_a_hundred_thousand() {
        assert!((log_likelihood(1e-5) - 0.5).abs() < 1e-4);
        assert_eq!(log_likelihood(1.0), 0.0);
        assert_eq!(log_likelihood(0.0), 1.0);
    }

    fn daily(n: usize, period: usize) -> impl Iterator<Item = f64> {
        (0..n).map(move |i| ((i % period) as f64 / period as f64 * std::f64::consts::TAU).sin() * 10.0 + 50.0)
    }

    #[test]
    fn a_familiar_pattern_is_not_new_and_a_broken_one_is() {
        let mut novelty = Novelty::default();
        let mut scores: Vec<Option<f64>> = daily(2_000, 100).map(|v| novelty.update(v)).collect();
        assert!(scores[..NOVELTY_WARM_UP - 1].iter().all(Option::is_none));
        // After two periods every context has been seen.
        assert!(scores[400..].iter().all(|&s| s == Some(0.0)), "a repeating shape stays familiar");
        // The shape breaks: a flat stretch at the middle level, where the cycle never rests.
        scores = (0..20).map(|_| novelty.update(50.0)).collect();
        assert!(scores.iter().any(|s| s.is_some_and(|s| s > 0.5)), "a flat middle is new: {scores:?}");
        // A level never seen scores 1.
        assert_eq!(novelty.update(1_000.0), Some(1.0));
    }

    #[test]
    fn flat_and_quantised_series_never_explode() {
        // Long enough for the flat run to double past 512, 1024, 2048 and 4096 readings: none of it is new.
        for series in [vec![7.0; 5_000], (0..5_000).map(|i| f64::from(i % 2) * 0.001).collect(), vec![0.0; 5_000]] {
            let mut anomaly = Anomaly::default();
            for (i, &v) in series.iter().enumerate() {
                if let Some(score) = anomaly.update(LIKELIHOOD_HISTORY, v) {
                    assert!((0.0..=1.0).contains(&score), "reading {i}: {score}");
                    assert!(score < 0.5, "an unchanging series is not anomalous: reading {i} scored {score}");
                }
            }
        }
    }

    #[test]
    fn a_saved_model_that_no_update_could_make_is_refused() {
        let mut novelty = Novelty::default();
        for v in daily(400, 100) {
            let _ = novelty.update(v);
        }
        let encoded = |n: &Novelty| {
            let mut out = Writer::default();
            n.encode(&mut out);
            out.bytes
        };
        let good = encoded(&novelty);
        assert!(Novelty::decode(&mut Reader::new(&good)).is_ok());
        // A run of no readings (its length class would be the logarithm of 0), and a grid of no width.
        let mut empty_run = novelty.clone();
        empty_run.run = Some((3, 0));
        assert!(Novelty::decode(&mut Reader::new(&encoded(&empty_run))).is_err());
        let mut flat_grid = novelty.clone();
        flat_grid.grid = Some((0.0, 0.0));
        assert!(Novelty::decode(&mut Reader::new(&encoded(&flat_grid))).is_err());
        // And a token of a run of no readings is that of one reading, never a panic.
        assert_eq!(token((3, 0)), token((3, 1)));
    }

    #[test]
    fn values_that_are_not_numbers_are_not_learnt() {
        let mut anomaly = Anomaly::default();
        let mut likelihood = Likelihood::default();
        for (i, v) in daily(1_000, 100).enumerate() {
            // Every tenth value is infinite or NaN, as `zscore` of a flat history gives.
            let v = match i % 10 {
                3 => f64::INFINITY,
                7 => f64::NAN,
                _ => v,
            };
            let scored = anomaly.update(LIKELIHOOD_HISTORY, v);
            assert!(v.is_finite() || scored.is_none(), "reading {i}: {scored:?}");
            let _ = likelihood.update(LIKELIHOOD_HISTORY, if v.is_finite() { 0.1 } else { v });
        }
        assert!(likelihood.recent_sum.is_finite() && likelihood.stats.mean.is_finite());
        // Still alive: a sustained rise of the score is unlikely.
        let rise: Vec<f64> = (0..10).filter_map(|_| likelihood.update(LIKELIHOOD_HISTORY, 1.0)).collect();
        assert!(rise.iter().any(|&s| s >= 0.5), "{rise:?}");
        assert!(anomaly.novelty.grid.is_some_and(|(origin, width)| origin.is_finite() && width.is_finite()));
    }

    #[test]
    fn the_likelihood_of_a_steady_score_is_low_and_of_a_sustained_rise_high() {
        let mut likelihood = Likelihood::default();
        let mut last = None;
        for i in 0..1_000 {
            // Noise between 0.1 and 0.3.
            last = likelihood.update(LIKELIHOOD_HISTORY, 0.1 + f64::from(i * 7 % 5) * 0.05);
        }
        assert!(last.is_some_and(|s| s < 0.5), "{last:?}");
        let rise: Vec<f64> = (0..10).filter_map(|_| likelihood.update(LIKELIHOOD_HISTORY, 1.0)).collect();
        assert!(rise.iter().any(|&s| s >= 0.5), "{rise:?}");
    }

    #[test]
    fn a_new_level_after_a_familiar_cycle_is_anomalous() {
        let mut anomaly = Anomaly::default();
        for v in daily(3_000, 100) {
            let _ = anomaly.update(LIKELIHOOD_HISTORY, v);
        }
        let scores: Vec<f64> = (0..5).filter_map(|_| anomaly.update(LIKELIHOOD_HISTORY, 90.0)).collect();
        assert!(scores.iter().any(|&s| s >= 0.5), "{scores:?}");
    }
}
