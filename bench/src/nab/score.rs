//! The Numenta Anomaly Benchmark's scoring, written from its published description (Lavin and Ahmad, "Evaluating
//! Real-time Anomaly Detection Algorithms: the Numenta Anomaly Benchmark", 2015, and NAB's whitepaper):
//!
//! - Each labelled anomaly has a window around it. The first detection inside a window earns that window a reward
//!   on a scaled sigmoid of where it falls: `A_TP` at the window's left edge, about 0 at its right edge. Later
//!   detections in the same window earn nothing more. A window without a detection costs `A_FN`.
//! - A detection outside every window costs `A_FP` times the scaled sigmoid of how far past the preceding window
//!   it falls (in that window's widths): close behind a window it costs little, far behind (or before the first
//!   window) the full `A_FP`.
//! - The first 15 % of each file (at most 750 rows) is probationary: detections there are not counted.
//! - A detector's raw score is summed over every file, then normalised so that the null detector (never detects)
//!   scores 0 and the perfect one (detects every window at its left edge) 100.
//! - The three application profiles weigh false positives and false negatives differently.
//!
//! A detector with a continuous score is scored at the one threshold, over the whole corpus, that maximises its
//! normalised score for the profile ([`Corpus::best_threshold`]), every score tried: NAB's own optimiser searches
//! locally (a hill-climb from 0.5), so this finds its threshold or a better one.

/// An application profile: the weights of a true positive, a false positive and a false negative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// The profile's name as NAB writes it.
    pub name: &'static str,
    /// `A_TP`: the reward for a window detected at its left edge.
    pub true_positive: f64,
    /// `A_FP`: the cost of a detection far from any window.
    pub false_positive: f64,
    /// `A_FN`: the cost of a window never detected.
    pub false_negative: f64,
}

/// NAB's three profiles: standard, reward low false positives, reward low false negatives.
pub const PROFILES: [Profile; 3] = [
    Profile { name: "standard", true_positive: 1.0, false_positive: 0.11, false_negative: 1.0 },
    Profile { name: "reward_low_FP_rate", true_positive: 1.0, false_positive: 0.22, false_negative: 1.0 },
    Profile { name: "reward_low_FN_rate", true_positive: 1.0, false_positive: 0.11, false_negative: 2.0 },
];

/// NAB's scaled sigmoid of a position relative to a window: `2 / (1 + e^(5y)) - 1`, and -1 beyond 3.
///
/// Inside a window `y` runs from -1 (left edge) to about 0 (right edge); past a window it counts window widths.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 { -1.0 } else { 2.0 / (1.0 + (5.0 * y).exp()) - 1.0 }
}

/// The probationary rows at the start of a file of `rows`: 15 % of it, at most 750 (15 % of 5,000).
pub fn probation(rows: usize) -> usize {
    (rows * 15 / 100).min(750)
}

/// One file's rows and labelled windows, and what a detection on each row is worth.
#[derive(Debug, Clone)]
pub struct File {
    rows: usize,
    /// The windows as inclusive row ranges, in order.
    windows: Vec<(usize, usize)>,
}

impl File {
    /// A file of `rows` rows with `windows`, each an inclusive range of row indices, in order and apart.
    ///
    /// # Panics
    /// A window is empty, past the end, or out of order.
    pub fn new(rows: usize, windows: Vec<(usize, usize)>) -> Self {
        let mut after = 0;
        for &(start, end) in &windows {
            assert!(start >= after && start <= end && end < rows, "windows must be in order within the file");
            after = end + 1;
        }
        Self { rows, windows }
    }

    /// Its number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Its number of labelled windows.
    pub fn windows(&self) -> usize {
        self.windows.len()
    }

    /// The window `row` lies in, if any.
    fn window_of(&self, row: usize) -> Option<usize> {
        self.windows.iter().position(|&(start, end)| (start..=end).contains(&row))
    }

    /// What a detection on `row` is worth under `profile`: a positive reward inside a window, a negative cost
    /// outside; `None` on a probationary row.
    pub fn weight(&self, profile: &Profile, row: usize) -> Option<f64> {
        if row < probation(self.rows) || row >= self.rows {
            return None;
        }
        if let Some(window) = self.window_of(row) {
            let (start, end) = self.windows[window];
            let width = (end - start + 1) as f64;
            let position = -((end - row + 1) as f64) / width;
            return Some(scaled_sigmoid(position) * profile.true_positive / scaled_sigmoid(-1.0));
        }
        let preceding = self.windows.iter().rev().find(|&&(_, end)| end < row);
        let unweighted = match preceding {
            None => -1.0,
            Some(&(start, end)) => {
                let width = (end - start + 1) as f64;
                scaled_sigmoid((row - end) as f64 / (width - 1.0))
            }
        };
        Some(unweighted * profile.false_positive)
    }

    /// The raw score of detections on `rows` (any order; probationary ones do not count) under `profile`.
    pub fn score(&self, profile: &Profile, rows: &[usize]) -> Tally {
        let mut best: Vec<Option<f64>> = vec![None; self.windows.len()];
        let mut tally = Tally::default();
        for &row in rows {
            let Some(weight) = self.weight(profile, row) else { continue };
            match self.window_of(row) {
                Some(window) => best[window] = Some(best[window].map_or(weight, |b: f64| b.max(weight))),
                None => {
                    tally.false_positives += 1;
                    tally.score += weight;
                }
            }
        }
        for window in best {
            match window {
                Some(reward) => {
                    tally.true_positives += 1;
                    tally.score += reward;
                    tally.rewards += reward;
                }
                None => {
                    tally.false_negatives += 1;
                    tally.score -= profile.false_negative;
                }
            }
        }
        tally
    }
}

/// A raw score and its counts: windows detected and missed, detections outside every window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// The sum of rewards and costs.
    pub score: f64,
    /// Windows detected.
    pub true_positives: usize,
    /// Counted detections outside every window.
    pub false_positives: usize,
    /// Windows missed.
    pub false_negatives: usize,
    /// The rewards of the windows detected (each at most `A_TP`: how early they were detected).
    pub rewards: f64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.score += other.score;
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.false_negatives += other.false_negatives;
        self.rewards += other.rewards;
    }
}

/// Every file of a benchmark run, for normalising and for the threshold sweep.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// The files, in a fixed order.
    pub files: Vec<File>,
}

impl Corpus {
    /// The windows in all.
    pub fn windows(&self) -> usize {
        self.files.iter().map(File::windows).sum()
    }

    /// A raw corpus score normalised: the null detector (every window missed) 0, the perfect detector (every
    /// window detected at its left edge, nothing else) 100.
    pub fn normalise(&self, profile: &Profile, raw: f64) -> f64 {
        let windows = self.windows() as f64;
        let null = -profile.false_negative * windows;
        let perfect = profile.true_positive * windows;
        100.0 * (raw - null) / (perfect - null)
    }

    /// The normalised score and counts of the detections `rows[f]` on each file `f`.
    pub fn score(&self, profile: &Profile, rows: &[Vec<usize>]) -> (f64, Tally) {
        let mut total = Tally::default();
        for (file, detected) in self.files.iter().zip(rows) {
            total += file.score(profile, detected);
        }
        (self.normalise(profile, total.score), total)
    }

    /// The one threshold over the whole corpus at which a continuous score (`scores[f][row]`, a detection where it
    /// is at least the threshold) scores best under `profile`: `(threshold, normalised score)`. NaN scores never
    /// detect. With no score at all, the threshold is infinite and the score the null detector's.
    pub fn best_threshold(&self, profile: &Profile, scores: &[Vec<f64>]) -> (f64, f64) {
        struct Point {
            score: f64,
            weight: f64,
            /// The window (numbered across the corpus) the row lies in.
            window: Option<usize>,
        }
        let mut points = Vec::new();
        let mut first_window = 0;
        for (file, scores) in self.files.iter().zip(scores) {
            for (row, &score) in scores.iter().enumerate() {
                if score.is_nan() {
                    continue;
                }
                let Some(weight) = file.weight(profile, row) else { continue };
                points.push(Point { score, weight, window: file.window_of(row).map(|w| first_window + w) });
            }
            first_window += file.windows();
        }
        points.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut best_in: Vec<Option<f64>> = vec![None; first_window];
        let mut raw = -profile.false_negative * first_window as f64;
        let mut best = (f64::INFINITY, raw);
        for (index, point) in points.iter().enumerate() {
            match point.window {
                Some(window) => match best_in[window] {
                    None => {
                        raw += profile.false_negative + point.weight;
                        best_in[window] = Some(point.weight);
                    }
                    Some(reward) if point.weight > reward => {
                        raw += point.weight - reward;
                        best_in[window] = Some(point.weight);
                    }
                    Some(_) => {}
                },
                None => raw += point.weight,
            }
            // A threshold takes every point of its score: evaluate only after the last of equal scores.
            let last_of_score = points.get(index + 1).is_none_or(|next| next.score < point.score);
            if last_of_score && raw > best.1 {
                best = (point.score, raw);
            }
        }
        (best.0, self.normalise(profile, best.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: Profile = PROFILES[0];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn the_scaled_sigmoid_rewards_early_and_is_minus_one_far_behind() {
        assert!(close(scaled_sigmoid(0.0), 0.0));
        assert!(close(scaled_sigmoid(-1.0), 2.0 / (1.0 + (-5.0f64).exp()) - 1.0));
        assert!(close(scaled_sigmoid(-1.0), 0.986_614_298_151_430_3));
        assert!(close(scaled_sigmoid(1.0), -0.986_614_298_151_430_3));
        assert!(close(scaled_sigmoid(3.0), 2.0 / (1.0 + 15f64.exp()) - 1.0));
        assert_eq!(scaled_sigmoid(3.01), -1.0);
    }

    #[test]
    fn probation_is_fifteen_percent_capped_at_750_rows() {
        assert_eq!(probation(100), 15);
        assert_eq!(probation(4032), 604);
        assert_eq!(probation(5000), 750);
        assert_eq!(probation(22695), 750);
    }

    /// 100 rows, probation 15, one window over rows 40..=49 (width 10).
    fn one_window() -> File {
        File::new(100, vec![(40, 49)])
    }

    #[test]
    fn a_detection_at_a_windows_left_edge_earns_the_full_reward_and_later_ones_less() {
        let file = one_window();
        assert!(close(file.weight(&STANDARD, 40).unwrap(), 1.0));
        // The right edge: position -1/10.
        let right = scaled_sigmoid(-0.1) / scaled_sigmoid(-1.0);
        assert!(close(file.weight(&STANDARD, 49).unwrap(), right));
        // Only the best detection in a window counts, and the window's miss is not charged.
        let tally = file.score(&STANDARD, &[49, 45, 40]);
        assert_eq!((tally.true_positives, tally.false_negatives, tally.false_positives), (1, 0, 0));
        assert!(close(tally.score, 1.0));
        assert!(close(tally.rewards, 1.0));
    }

    #[test]
    fn false_positives_cost_the_full_weight_before_a_window_and_less_just_behind_one() {
        let file = one_window();
        // Before the first window: -A_FP.
        assert!(close(file.weight(&STANDARD, 20).unwrap(), -0.11));
        // One row past the window's right edge: y = 1 / (10 - 1).
        assert!(close(file.weight(&STANDARD, 50).unwrap(), 0.11 * scaled_sigmoid(1.0 / 9.0)));
        // Beyond three widths: -A_FP again.
        assert!(close(file.weight(&STANDARD, 99).unwrap(), -0.11));
        // A missed window costs A_FN; the two false positives add theirs.
        let tally = file.score(&STANDARD, &[20, 99]);
        assert_eq!((tally.true_positives, tally.false_negatives, tally.false_positives), (0, 1, 2));
        assert!(close(tally.score, -1.0 - 0.22));
    }

    #[test]
    fn probationary_rows_never_count() {
        let file = one_window();
        assert_eq!(file.weight(&STANDARD, 14), None);
        let tally = file.score(&STANDARD, &[0, 5, 14]);
        assert_eq!((tally.false_positives, tally.false_negatives), (0, 1));
        assert!(close(tally.score, -1.0));
    }

    #[test]
    fn normalising_puts_the_null_detector_at_0_and_the_perfect_one_at_100() {
        let corpus = Corpus { files: vec![one_window(), File::new(200, vec![(60, 69), (120, 139)])] };
        for profile in &PROFILES {
            assert!(close(corpus.score(profile, &[vec![], vec![]]).0, 0.0));
            assert!(close(corpus.score(profile, &[vec![40], vec![60, 120]]).0, 100.0));
        }
        // Half the windows at their left edge, and nothing else: raw = 1 + 1 - 1 = 1 over null -3, perfect 3.
        let (score, _) = corpus.score(&STANDARD, &[vec![40], vec![60]]);
        assert!(close(score, 100.0 * 4.0 / 6.0));
        // Low FN: the miss costs 2; null -6, perfect 3, raw 0.
        let (score, _) = corpus.score(&PROFILES[2], &[vec![40], vec![60]]);
        assert!(close(score, 100.0 * 6.0 / 9.0));
    }

    #[test]
    fn the_sweep_finds_the_threshold_a_hand_count_finds() {
        let corpus = Corpus { files: vec![one_window()] };
        let mut scores = vec![0.0; 100];
        // The window's left edge scores 0.8; two rows before the window score 0.9 and 0.5.
        scores[40] = 0.8;
        scores[20] = 0.9;
        scores[30] = 0.5;
        // At 0.9: one FP, the window missed: -1.11. At 0.8: -0.11 + 1 = 0.89. At 0.5: 0.78. Best: 0.8.
        let (threshold, score) = corpus.best_threshold(&STANDARD, &[scores.clone()]);
        assert_eq!(threshold, 0.8);
        assert!(close(score, corpus.normalise(&STANDARD, 0.89)));
        // The same detections as rows give the same score.
        assert!(close(corpus.score(&STANDARD, &[vec![20, 40]]).0, score));
        // With the low-FP profile, 0.9's false positive costs 0.22: 0.78 at 0.8, still the best.
        let (threshold, score) = corpus.best_threshold(&PROFILES[1], &[scores]);
        assert_eq!(threshold, 0.8);
        assert!(close(score, corpus.normalise(&PROFILES[1], 0.78)));
    }

    #[test]
    fn the_sweep_takes_every_row_of_a_tied_score_together() {
        let corpus = Corpus { files: vec![one_window()] };
        let mut scores = vec![0.0; 100];
        // The left edge and a far false positive tie at 0.7; a threshold cannot take one without the other.
        scores[40] = 0.7;
        scores[90] = 0.7;
        let (threshold, score) = corpus.best_threshold(&STANDARD, &[scores]);
        assert_eq!(threshold, 0.7);
        assert!(close(score, corpus.normalise(&STANDARD, 1.0 - 0.11)));
    }
}
