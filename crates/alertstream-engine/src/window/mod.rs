//! Window functions: per-sensor state over a sensor's recent readings, O(1) amortised per reading (running
//! Welford sums, monotonic deques), `robust_zscore` O(log N) with an order-statistic tree.
//!
//! Windows run on reading time. Every window keeps its entries sorted by time: a reading that arrives out of order
//! (within the allowed lateness) is inserted where it belongs, so the window holds what it would hold had the
//! readings arrived in order. `ewma` and the detectors (`detector.rs`) are the exceptions: they fold values in as
//! they arrive.

use std::{
    collections::VecDeque,
    time::{Duration, SystemTime},
};

use detector::{Anomaly, Likelihood, Novelty};
use order_stats::OrderStats;

mod detector;
mod order_stats;
mod persist;

pub use detector::{LIKELIHOOD_HISTORY, LIKELIHOOD_WARM_UP, NOVELTY_WARM_UP};

/// The most readings one window may hold: a count window may not be larger, and a duration window drops its oldest
/// readings beyond this many (at one reading a millisecond, 100 s of history). Bounds memory per sensor and rule.
pub const MAX_WINDOW_READINGS: usize = 100_000;
/// How many readings an anomaly detector (`zscore`, `robust_zscore`) must have seen before it scores one.
pub const ANOMALY_WARM_UP: usize = 10;
/// Scales the median absolute deviation to estimate a standard deviation for normally distributed data.
const MAD_TO_SIGMA: f64 = 1.4826;
/// Scales the mean absolute deviation likewise (√(π/2)); used when the MAD is 0, as in Iglewicz and Hoaglin's
/// modified z-score, because a window more than half of whose readings are equal has a MAD of 0.
const MEAN_AD_TO_SIGMA: f64 = 1.253_314;
/// `robust_zscore`'s scale is never below this fraction of the median's magnitude. A quantised or flat series (CPU
/// readings of 0.1 and 0.102, a window of equal values) has a MAD, and even a mean absolute deviation, of almost or
/// exactly nothing, and every wobble would score in the hundreds or be infinite; as robust scalers floor a zero scale,
/// the score is measured against at least 1 % of the level.
pub const ROBUST_SCALE_FLOOR: f64 = 0.01;
/// And never below this, for a series that sits at 0: a score stays finite.
pub const ROBUST_SCALE_MIN: f64 = 1e-9;

/// How far back a window reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// The last N readings.
    Readings(usize),
    /// Readings whose time is within this much of the sensor's latest reading.
    Time(Duration),
}

/// The aggregates over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregate {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Stddev,
}

/// A compiled window function: what it computes and over what.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum WindowFn {
    Aggregate(Aggregate, Span),
    Delta,
    Rate(Duration),
    Ewma(f64),
    /// Over the last N readings, or over all of the sensor's history.
    ZScore(Option<usize>),
    RobustZScore(usize),
    /// The value N readings before the current one, or the latest at or before a duration before it.
    Lag(Span),
    /// How new the recent pattern of values is, in [0, 1].
    Novelty,
    /// The anomaly likelihood of a raw score, fitted to the last N short-term means.
    Likelihood(usize),
    /// The default detector: the likelihood of the novelty, with the likelihood's N.
    Anomaly(usize),
}

impl WindowFn {
    /// A fresh state for one sensor.
    pub(crate) fn instantiate(&self) -> Window {
        match *self {
            WindowFn::Aggregate(aggregate, _) => {
                Window::Buffered(Buffer::new(matches!(aggregate, Aggregate::Min), matches!(aggregate, Aggregate::Max)))
            }
            WindowFn::Rate(_) | WindowFn::ZScore(Some(_)) => Window::Buffered(Buffer::new(false, false)),
            WindowFn::Delta => Window::Delta(None),
            WindowFn::Ewma(_) => Window::Ewma(None),
            WindowFn::ZScore(None) => Window::History(Welford::default()),
            WindowFn::RobustZScore(_) => Window::Robust(Robust::default()),
            WindowFn::Lag(_) => Window::Lag(VecDeque::new()),
            WindowFn::Novelty => Window::Novelty(Box::default()),
            WindowFn::Likelihood(_) => Window::Likelihood(Box::default()),
            WindowFn::Anomaly(_) => Window::Anomaly(Box::default()),
        }
    }
}

/// One window function's state for one sensor.
#[derive(Debug, Clone)]
pub(crate) enum Window {
    Buffered(Buffer),
    Delta(Option<(SystemTime, f64)>),
    Ewma(Option<f64>),
    History(Welford),
    Robust(Robust),
    /// The readings a `lag` may still reach back to, in time order.
    Lag(VecDeque<(SystemTime, f64)>),
    Novelty(Box<Novelty>),
    Likelihood(Box<Likelihood>),
    Anomaly(Box<Anomaly>),
}

impl Window {
    /// Adds the reading's `value` at `time` (the sensor's latest reading time is `latest`, ≥ `time`) and returns the
    /// function's value, or `None` while it has none (a `delta` on the first reading, a detector in warm-up).
    pub(crate) fn update(
        &mut self,
        function: &WindowFn,
        time: SystemTime,
        latest: SystemTime,
        value: f64,
    ) -> Option<f64> {
        match (self, function) {
            (Window::Buffered(buffer), WindowFn::Aggregate(aggregate, span)) => {
                buffer.insert(time, value);
                buffer.evict(*span, latest);
                buffer.aggregate(*aggregate)
            }
            (Window::Buffered(buffer), WindowFn::Rate(duration)) => {
                buffer.insert(time, value);
                buffer.evict(Span::Time(*duration), latest);
                buffer.rate()
            }
            (Window::Buffered(buffer), WindowFn::ZScore(Some(n))) => {
                let score = (buffer.stats.count() >= ANOMALY_WARM_UP).then(|| buffer.stats.score(value));
                buffer.insert(time, value);
                buffer.evict(Span::Readings(*n), latest);
                score
            }
            (Window::Delta(previous), WindowFn::Delta) => match *previous {
                Some((previous_time, previous_value)) if time >= previous_time => {
                    *previous = Some((time, value));
                    Some(value - previous_value)
                }
                // A reading older than the last one does not move "the previous reading"; it has no delta itself.
                Some(_) => None,
                None => {
                    *previous = Some((time, value));
                    None
                }
            },
            (Window::Ewma(state), WindowFn::Ewma(alpha)) => {
                let next = state.map_or(value, |s| alpha * value + (1.0 - alpha) * s);
                *state = Some(next);
                Some(next)
            }
            (Window::History(stats), WindowFn::ZScore(None)) => {
                let score = (stats.count() >= ANOMALY_WARM_UP).then(|| stats.score(value));
                stats.add(value);
                score
            }
            (Window::Robust(robust), WindowFn::RobustZScore(n)) => robust.update(*n, time, value),
            (Window::Lag(entries), WindowFn::Lag(span)) => lag(entries, *span, time, latest, value),
            (Window::Novelty(novelty), WindowFn::Novelty) => novelty.update(value),
            (Window::Likelihood(likelihood), WindowFn::Likelihood(history)) => likelihood.update(*history, value),
            (Window::Anomaly(anomaly), WindowFn::Anomaly(history)) => anomaly.update(*history, value),
            // A state always comes from its own function's `instantiate`.
            _ => None,
        }
    }
}

/// Running mean and sum of squared deviations (Welford), with removal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Welford {
    n: usize,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn count(&self) -> usize {
        self.n
    }

    fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    fn remove(&mut self, x: f64) {
        if self.n <= 1 {
            *self = Self::default();
            return;
        }
        self.n -= 1;
        let d = x - self.mean;
        self.mean -= d / self.n as f64;
        self.m2 = (self.m2 - d * (x - self.mean)).max(0.0);
    }

    /// Population standard deviation.
    fn stddev(&self) -> f64 {
        (self.m2 / self.n as f64).sqrt()
    }

    /// How many standard deviations `x` lies from the mean (IEEE: infinite or NaN when the deviation is 0).
    fn score(&self, x: f64) -> f64 {
        (x - self.mean) / self.stddev()
    }
}

/// A window's readings in time order, with running statistics and, when needed, monotonic deques for min and max.
#[derive(Debug, Clone)]
pub(crate) struct Buffer {
    entries: VecDeque<(SystemTime, f64)>,
    stats: Welford,
    sum: f64,
    /// Candidates for the minimum, values ascending; `None` when the function needs no minimum.
    mins: Option<VecDeque<(SystemTime, f64)>>,
    /// Candidates for the maximum, values descending.
    maxs: Option<VecDeque<(SystemTime, f64)>>,
    /// Removals since the statistics were last recomputed from the entries (which cancels rounding drift).
    removals: usize,
}

impl Buffer {
    fn new(min: bool, max: bool) -> Self {
        Self {
            entries: VecDeque::new(),
            stats: Welford::default(),
            sum: 0.0,
            mins: min.then(VecDeque::new),
            maxs: max.then(VecDeque::new),
            removals: 0,
        }
    }

    fn insert(&mut self, time: SystemTime, value: f64) {
        self.stats.add(value);
        self.sum += value;
        if self.entries.back().is_none_or(|&(last, _)| last <= time) {
            self.entries.push_back((time, value));
            if let Some(mins) = &mut self.mins {
                push_monotonic(mins, (time, value), |back, v| back > v);
            }
            if let Some(maxs) = &mut self.maxs {
                push_monotonic(maxs, (time, value), |back, v| back < v);
            }
            return;
        }
        // Out of order: insert in time order, then rebuild the deques (O(window), only for late readings).
        let at = self.entries.partition_point(|&(t, _)| t <= time);
        self.entries.insert(at, (time, value));
        if let Some(mins) = &mut self.mins {
            mins.clear();
            for &entry in &self.entries {
                push_monotonic(mins, entry, |back, v| back > v);
            }
        }
        if let Some(maxs) = &mut self.maxs {
            maxs.clear();
            for &entry in &self.entries {
                push_monotonic(maxs, entry, |back, v| back < v);
            }
        }
    }

    /// Drops what falls outside `span` (and beyond [`MAX_WINDOW_READINGS`]), oldest first.
    fn evict(&mut self, span: Span, latest: SystemTime) {
        let limit = match span {
            Span::Readings(n) => n.min(MAX_WINDOW_READINGS),
            Span::Time(_) => MAX_WINDOW_READINGS,
        };
        while let Some(&(time, value)) = self.entries.front() {
            let outside = match span {
                // Checked: a reading time near the end of representable time must not overflow (and stays in).
                Span::Time(d) => time.checked_add(d).is_some_and(|end| end <= latest),
                Span::Readings(_) => false,
            };
            if !outside && self.entries.len() <= limit {
                break;
            }
            self.entries.pop_front();
            self.stats.remove(value);
            self.sum -= value;
            for deque in [&mut self.mins, &mut self.maxs].into_iter().flatten() {
                if deque.front() == Some(&(time, value)) {
                    deque.pop_front();
                }
            }
            self.removals += 1;
        }
        if self.removals > self.entries.len().max(64) {
            self.stats = Welford::default();
            self.sum = 0.0;
            for &(_, value) in &self.entries {
                self.stats.add(value);
                self.sum += value;
            }
            self.removals = 0;
        }
    }

    fn aggregate(&self, aggregate: Aggregate) -> Option<f64> {
        let n = self.stats.count();
        match aggregate {
            Aggregate::Count => Some(n as f64),
            _ if n == 0 => None,
            Aggregate::Avg => Some(self.stats.mean),
            Aggregate::Sum => Some(self.sum),
            Aggregate::Min => self.mins.as_ref().and_then(|d| d.front()).map(|&(_, v)| v),
            Aggregate::Max => self.maxs.as_ref().and_then(|d| d.front()).map(|&(_, v)| v),
            Aggregate::Stddev => (n >= 2).then(|| self.stats.stddev()),
        }
    }

    /// Change per second between the oldest and the newest reading in the window.
    fn rate(&self) -> Option<f64> {
        let (&(t0, v0), &(t1, v1)) = (self.entries.front()?, self.entries.back()?);
        let seconds = t1.duration_since(t0).ok()?.as_secs_f64();
        (seconds > 0.0).then(|| (v1 - v0) / seconds)
    }
}

/// Adds `value` at `time` to a `lag` window and returns the value `span` before it: N readings before it in time
/// order, or the latest at or before `time - D`. Keeps only what a later reading can still reach: N + 1 readings,
/// or the readings after the latest one at or before `latest - D` (that one included), at most
/// [`MAX_WINDOW_READINGS`].
fn lag(
    entries: &mut VecDeque<(SystemTime, f64)>,
    span: Span,
    time: SystemTime,
    latest: SystemTime,
    value: f64,
) -> Option<f64> {
    let at = entries.partition_point(|&(t, _)| t <= time);
    entries.insert(at, (time, value));
    let found = match span {
        Span::Readings(n) => at.checked_sub(n).map(|i| entries[i].1),
        Span::Time(d) => time.checked_sub(d).and_then(|cutoff| {
            let before = entries.partition_point(|&(t, _)| t <= cutoff);
            before.checked_sub(1).map(|i| entries[i].1)
        }),
    };
    match span {
        Span::Readings(n) => {
            while entries.len() > n.min(MAX_WINDOW_READINGS) + 1 {
                entries.pop_front();
            }
        }
        Span::Time(d) => {
            if let Some(cutoff) = latest.checked_sub(d) {
                while entries.len() > 1 && entries[1].0 <= cutoff {
                    entries.pop_front();
                }
            }
            while entries.len() > MAX_WINDOW_READINGS {
                entries.pop_front();
            }
        }
    }
    found
}

/// Pushes `entry` after dropping the candidates it makes useless (`dominated(back, new)`).
fn push_monotonic(
    deque: &mut VecDeque<(SystemTime, f64)>,
    entry: (SystemTime, f64),
    dominated: impl Fn(f64, f64) -> bool,
) {
    while deque.back().is_some_and(|&(_, back)| dominated(back, entry.1)) {
        deque.pop_back();
    }
    deque.push_back(entry);
}

/// The last N readings in time order and as an ordered multiset, for median and MAD.
#[derive(Debug, Clone, Default)]
pub(crate) struct Robust {
    entries: VecDeque<(SystemTime, f64)>,
    sorted: OrderStats,
}

impl Robust {
    fn update(&mut self, n: usize, time: SystemTime, value: f64) -> Option<f64> {
        let score = (self.sorted.len() >= ANOMALY_WARM_UP).then(|| {
            let median = self.median();
            let mad = self.mad(median);
            let spread =
                if mad > 0.0 { MAD_TO_SIGMA * mad } else { MEAN_AD_TO_SIGMA * self.mean_absolute_deviation(median) };
            let sigma = spread.max(ROBUST_SCALE_FLOOR * median.abs()).max(ROBUST_SCALE_MIN);
            (value - median) / sigma
        });
        let at = self.entries.partition_point(|&(t, _)| t <= time);
        self.entries.insert(at, (time, value));
        self.sorted.insert(value);
        while self.entries.len() > n.min(MAX_WINDOW_READINGS) {
            if let Some((_, old)) = self.entries.pop_front() {
                self.sorted.remove(old);
            }
        }
        score
    }

    fn median(&self) -> f64 {
        let n = self.sorted.len();
        let at = |k| self.sorted.kth(k).unwrap_or(f64::NAN);
        if n % 2 == 1 { at(n / 2) } else { (at(n / 2 - 1) + at(n / 2)) / 2.0 }
    }

    /// Mean absolute deviation from `median`, from the count and sum of the readings below it.
    fn mean_absolute_deviation(&self, median: f64) -> f64 {
        let n = self.sorted.len();
        let (below, sum_below) = self.sorted.below(median);
        let sum_above = self.sorted.total() - sum_below;
        ((median * below as f64 - sum_below) + (sum_above - median * (n - below) as f64)) / n as f64
    }

    /// Median absolute deviation from `median`, from the k-th smallest distances to it (O(log N) each).
    fn mad(&mut self, median: f64) -> f64 {
        let n = self.sorted.len();
        let mut distance = |k| self.sorted.kth_distance(median, k).unwrap_or(f64::NAN);
        if n % 2 == 1 { distance(n / 2) } else { (distance(n / 2 - 1) + distance(n / 2)) / 2.0 }
    }
}

#[cfg(test)]
mod tests;
