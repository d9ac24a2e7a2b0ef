//! Window functions against brute-force references.

use std::time::{Duration, SystemTime};

use super::*;

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// A deterministic pseudo-random sequence of values in [-50, 50).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f64 / 100.0 - 50.0
        })
        .collect()
}

fn run(function: WindowFn, readings: &[(u64, f64)]) -> Vec<Option<f64>> {
    let mut window = function.instantiate();
    let mut latest = at(0);
    readings
        .iter()
        .map(|&(ms, v)| {
            latest = latest.max(at(ms));
            window.update(&function, at(ms), latest, v)
        })
        .collect()
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs())) || (a.is_nan() && b.is_nan()),
        (None, None) => true,
        _ => false,
    }
}

fn assert_all_close(got: &[Option<f64>], expected: &[Option<f64>], what: &str) {
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(close(*g, *e), "{what}: reading {i}: got {g:?}, expected {e:?}");
    }
}

fn reference(aggregate: Aggregate, window: &[f64]) -> Option<f64> {
    let n = window.len() as f64;
    let mean = window.iter().sum::<f64>() / n;
    match aggregate {
        Aggregate::Count => Some(n),
        _ if window.is_empty() => None,
        Aggregate::Avg => Some(mean),
        Aggregate::Sum => Some(window.iter().sum()),
        Aggregate::Min => window.iter().copied().reduce(f64::min),
        Aggregate::Max => window.iter().copied().reduce(f64::max),
        Aggregate::Stddev if window.len() < 2 => None,
        Aggregate::Stddev => Some((window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()),
    }
}

const AGGREGATES: [Aggregate; 6] =
    [Aggregate::Avg, Aggregate::Min, Aggregate::Max, Aggregate::Sum, Aggregate::Count, Aggregate::Stddev];

#[test]
fn count_windows_match_a_brute_force_reference() {
    let xs = values(3_000, 7);
    let readings: Vec<(u64, f64)> = xs.iter().enumerate().map(|(i, v)| (i as u64 * 1000, *v)).collect();
    for n in [1, 2, 10, 100] {
        for aggregate in AGGREGATES {
            let got = run(WindowFn::Aggregate(aggregate, Span::Readings(n)), &readings);
            let expected: Vec<_> =
                (0..xs.len()).map(|i| reference(aggregate, &xs[(i + 1).saturating_sub(n)..=i])).collect();
            assert_all_close(&got, &expected, &format!("{aggregate:?} over {n} readings"));
        }
    }
}

#[test]
fn duration_windows_hold_readings_within_the_span_of_the_latest() {
    let xs = values(2_000, 11);
    // Irregular gaps of 0..=2.9 s.
    let mut t = 0;
    let readings: Vec<(u64, f64)> = xs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            t += (i as u64 * 37) % 3_000;
            (t, *v)
        })
        .collect();
    for aggregate in AGGREGATES {
        let got = run(WindowFn::Aggregate(aggregate, Span::Time(Duration::from_secs(10))), &readings);
        let expected: Vec<_> = (0..readings.len())
            .map(|i| {
                let now = readings[i].0;
                let window: Vec<f64> =
                    readings[..=i].iter().filter(|(t, _)| t + 10_000 > now).map(|(_, v)| *v).collect();
                reference(aggregate, &window)
            })
            .collect();
        assert_all_close(&got, &expected, &format!("{aggregate:?} over 10s"));
    }
}

#[test]
fn out_of_order_readings_leave_the_window_as_in_order() {
    // The same readings in order, and with some swapped neighbours: after all of them, every window agrees.
    let xs = values(500, 3);
    let in_order: Vec<(u64, f64)> = xs.iter().enumerate().map(|(i, v)| (i as u64 * 1000, *v)).collect();
    let mut shuffled = in_order.clone();
    for i in (1..shuffled.len()).step_by(7) {
        shuffled.swap(i - 1, i);
    }
    for function in [
        WindowFn::Aggregate(Aggregate::Min, Span::Readings(20)),
        WindowFn::Aggregate(Aggregate::Max, Span::Time(Duration::from_secs(15))),
        WindowFn::Aggregate(Aggregate::Stddev, Span::Readings(50)),
        WindowFn::Aggregate(Aggregate::Sum, Span::Time(Duration::from_secs(40))),
        WindowFn::Rate(Duration::from_secs(30)),
        WindowFn::RobustZScore(30),
        WindowFn::ZScore(Some(30)),
    ] {
        // One more reading, in order, after both: its value reflects the whole window.
        let (mut a, mut b) = (in_order.clone(), shuffled.clone());
        a.push((500_000, 1.0));
        b.push((500_000, 1.0));
        let (a, b) = (*run(function, &a).last().unwrap(), *run(function, &b).last().unwrap());
        assert!(a.is_some() && close(a, b), "{function:?}: {a:?} in order, {b:?} out of order");
    }
}

#[test]
fn delta_rate_and_ewma() {
    let readings = [(0, 10.0), (1_000, 13.0), (3_000, 9.0), (4_000, 9.0)];
    assert_eq!(run(WindowFn::Delta, &readings), [None, Some(3.0), Some(-4.0), Some(0.0)]);
    // rate over 2.5 s: from the oldest reading within the window to the newest, per second; one reading has none.
    assert_eq!(run(WindowFn::Rate(Duration::from_millis(2_500)), &readings), [None, Some(3.0), Some(-2.0), Some(0.0)]);
    assert_eq!(run(WindowFn::Rate(Duration::from_millis(500)), &readings), [None, None, None, None]);
    let got = run(WindowFn::Ewma(0.5), &readings);
    assert_eq!(got, [Some(10.0), Some(11.5), Some(10.25), Some(9.625)]);
    // A reading older than the previous one has no delta and does not move it.
    assert_eq!(run(WindowFn::Delta, &[(5_000, 1.0), (4_000, 7.0), (6_000, 4.0)]), [None, None, Some(3.0)]);
}

#[test]
fn zscore_scores_against_the_history_before_the_reading_after_its_warm_up() {
    let mut readings: Vec<(u64, f64)> = (0..10).map(|i| (i * 1000, if i % 2 == 0 { 9.0 } else { 11.0 })).collect();
    readings.push((10_000, 13.0));
    for function in [WindowFn::ZScore(None), WindowFn::ZScore(Some(10))] {
        let got = run(function, &readings);
        assert!(got[..10].iter().all(Option::is_none), "{function:?} warms up on 10 readings: {got:?}");
        // History: mean 10, population stddev 1.
        assert!(close(got[10], Some(3.0)), "{function:?}: {:?}", got[10]);
    }
}

#[test]
fn zscore_over_n_forgets_older_history() {
    let mut readings: Vec<(u64, f64)> = (0..100).map(|i| (i * 1000, 1000.0 + (i % 2) as f64)).collect();
    readings.extend((100..120).map(|i| (i * 1000, if i % 2 == 0 { 9.0 } else { 11.0 })));
    readings.push((120_000, 13.0));
    let windowed = run(WindowFn::ZScore(Some(20)), &readings);
    assert!(close(*windowed.last().unwrap(), Some(3.0)));
    let whole = run(WindowFn::ZScore(None), &readings);
    assert!(whole.last().unwrap().unwrap() < 0.0, "the whole history's mean is near 850");
}

#[test]
fn robust_zscore_uses_median_and_mad_of_the_last_n() {
    let xs = values(400, 5);
    let readings: Vec<(u64, f64)> = xs.iter().enumerate().map(|(i, v)| (i as u64 * 1000, *v)).collect();
    let n = 25;
    let got = run(WindowFn::RobustZScore(n), &readings);
    for i in 0..xs.len() {
        let history = &xs[i.saturating_sub(n)..i];
        let expected = (history.len() >= ANOMALY_WARM_UP).then(|| {
            let median = median_of(history.to_vec());
            let mad = median_of(history.iter().map(|v| (v - median).abs()).collect());
            assert!(mad > 0.0);
            (xs[i] - median) / (MAD_TO_SIGMA * mad)
        });
        assert!(close(got[i], expected), "reading {i}: got {:?}, expected {expected:?}", got[i]);
    }
    // A spike that a mean-based score dilutes stands out.
    let mut spiky: Vec<(u64, f64)> = (0..30).map(|i| (i * 1000, 10.0 + (i % 3) as f64)).collect();
    spiky.push((30_000, 100.0));
    assert!(run(WindowFn::RobustZScore(30), &spiky).last().unwrap().unwrap() > 50.0);
}

#[test]
fn robust_zscore_falls_back_to_the_mean_absolute_deviation_when_the_mad_is_zero() {
    // Eight readings of 10 and two of 12: the MAD is 0; the mean absolute deviation from the median 10 is 0.4.
    let mut readings: Vec<(u64, f64)> = (0..10).map(|i| (i * 1000, if i < 8 { 10.0 } else { 12.0 })).collect();
    readings.push((10_000, 13.0));
    let got = run(WindowFn::RobustZScore(10), &readings).last().copied().flatten();
    assert!(close(got, Some(3.0 / (MEAN_AD_TO_SIGMA * 0.4))), "{got:?}");
}

#[test]
fn robust_zscore_stays_finite_and_meaningful_on_flat_and_quantised_series() {
    // All equal: no spread at all. The scale is floored at 1 % of the level: 6 after a run of 5s is 20 such steps,
    // and 5 itself scores 0 (not NaN).
    let flat: Vec<(u64, f64)> = (0..12).map(|i| (i * 1000, if i == 10 { 6.0 } else { 5.0 })).collect();
    let scores = run(WindowFn::RobustZScore(10), &flat);
    assert!(close(scores[10], Some(1.0 / (ROBUST_SCALE_FLOOR * 5.0))), "{:?}", scores[10]);
    assert_eq!(scores[11], Some(0.0));
    // Quantised: CPU readings of 0.1 with now and then 0.102. The next 0.102 is an ordinary reading, not a
    // hundred-sigma event; a jump to 0.3 still stands out.
    let cpu: Vec<(u64, f64)> = (0..200).map(|i| (i * 1000, if i % 7 == 0 { 0.102 } else { 0.1 })).collect();
    let with = |last: f64| {
        let mut readings = cpu.clone();
        readings.push((200_000, last));
        run(WindowFn::RobustZScore(100), &readings).last().copied().flatten().unwrap()
    };
    let (ordinary, jump) = (with(0.102), with(0.3));
    assert!(ordinary.abs() < 3.0, "{ordinary}");
    assert!(jump > 100.0 && jump.is_finite(), "{jump}");
    // A series that sits at 0: any other value scores high, and finite.
    let zeros: Vec<(u64, f64)> = (0..11).map(|i| (i * 1000, if i < 10 { 0.0 } else { 1.0 })).collect();
    let score = run(WindowFn::RobustZScore(10), &zeros).last().copied().flatten().unwrap();
    assert!(score.is_finite() && score > 1e6, "{score}");
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

#[test]
fn duration_windows_are_bounded() {
    let mut window = WindowFn::Aggregate(Aggregate::Count, Span::Time(Duration::from_secs(3600))).instantiate();
    let function = WindowFn::Aggregate(Aggregate::Count, Span::Time(Duration::from_secs(3600)));
    let mut last = None;
    for i in 0..(MAX_WINDOW_READINGS as u64 + 10) {
        last = window.update(&function, at(i), at(i), 1.0);
    }
    assert_eq!(last, Some(MAX_WINDOW_READINGS as f64));
}

/// Property tests: every window function against a naive recomputation over everything seen so far, on random
/// readings whose times are distinct and sometimes out of order.
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Readings one to three seconds apart, each maybe swapped with the one before it, so some arrive late.
    fn readings(values: impl Strategy<Value = f64>) -> impl Strategy<Value = Vec<(u64, f64)>> {
        prop::collection::vec((1u64..3_000, values, any::<bool>()), 1..120).prop_map(|steps| {
            let mut t = 0;
            let mut readings: Vec<(u64, f64)> = steps
                .iter()
                .map(|&(gap, value, _)| {
                    t += gap;
                    (t, value)
                })
                .collect();
            for (i, &(_, _, swap)) in steps.iter().enumerate().skip(1) {
                if swap {
                    readings.swap(i - 1, i);
                }
            }
            readings
        })
    }

    /// Values with ties: quarters between -5 and 5.
    fn tied() -> impl Strategy<Value = f64> {
        (-20i32..=20).prop_map(|q| f64::from(q) / 4.0)
    }

    /// The readings seen before `i` and `i` itself, in time order (a stable sort: ties keep their arrival order).
    fn by_time(readings: &[(u64, f64)], upto: usize) -> Vec<(u64, f64)> {
        let mut seen = readings[..=upto].to_vec();
        seen.sort_by_key(|&(t, _)| t);
        seen
    }

    fn near(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) if a == b || (a.is_nan() && b.is_nan()) => true,
            (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs())),
            (None, None) => true,
            _ => false,
        }
    }

    fn check(
        function: WindowFn,
        readings: &[(u64, f64)],
        naive: impl Fn(usize) -> Option<f64>,
    ) -> Result<(), TestCaseError> {
        for (i, got) in run(function, readings).into_iter().enumerate() {
            let expected = naive(i);
            prop_assert!(near(got, expected), "{:?}, reading {}: got {:?}, expected {:?}", function, i, got, expected);
        }
        Ok(())
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
    }

    proptest! {
        #[test]
        fn aggregates_over_readings_hold_the_latest_n_by_time(readings in readings(tied()), n in 1usize..40) {
            for aggregate in AGGREGATES {
                check(WindowFn::Aggregate(aggregate, Span::Readings(n)), &readings, |i| {
                    let seen = by_time(&readings, i);
                    let window: Vec<f64> = seen[seen.len().saturating_sub(n)..].iter().map(|&(_, v)| v).collect();
                    reference(aggregate, &window)
                })?;
            }
        }

        #[test]
        fn aggregates_over_a_duration_hold_what_is_within_it_of_the_latest(
            readings in readings(tied()),
            span_ms in 1u64..20_000,
        ) {
            for aggregate in AGGREGATES {
                check(WindowFn::Aggregate(aggregate, Span::Time(Duration::from_millis(span_ms))), &readings, |i| {
                    let seen = by_time(&readings, i);
                    let latest = seen.last().map_or(0, |&(t, _)| t);
                    let window: Vec<f64> =
                        seen.iter().filter(|&&(t, _)| t + span_ms > latest).map(|&(_, v)| v).collect();
                    reference(aggregate, &window)
                })?;
            }
        }

        #[test]
        fn rate_is_the_change_from_the_oldest_to_the_newest_within_the_duration(
            readings in readings(tied()),
            span_ms in 1u64..20_000,
        ) {
            check(WindowFn::Rate(Duration::from_millis(span_ms)), &readings, |i| {
                let seen = by_time(&readings, i);
                let latest = seen.last().map_or(0, |&(t, _)| t);
                let window: Vec<&(u64, f64)> = seen.iter().filter(|&&(t, _)| t + span_ms > latest).collect();
                let (&&(t0, v0), &&(t1, v1)) = (window.first()?, window.last()?);
                (t1 > t0).then(|| (v1 - v0) / ((t1 - t0) as f64 / 1000.0))
            })?;
        }

        #[test]
        fn zscore_scores_each_reading_against_the_history_before_it(
            readings in readings(-50.0..50.0f64),
            n in prop::option::of(1usize..40),
        ) {
            check(WindowFn::ZScore(n), &readings, |i| {
                let before = if i == 0 { Vec::new() } else { by_time(&readings, i - 1) };
                let history: Vec<f64> =
                    before[n.map_or(0, |n| before.len().saturating_sub(n))..].iter().map(|&(_, v)| v).collect();
                (history.len() >= ANOMALY_WARM_UP).then(|| {
                    let count = history.len() as f64;
                    let mean = history.iter().sum::<f64>() / count;
                    let stddev = (history.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt();
                    (readings[i].1 - mean) / stddev
                })
            })?;
        }

        #[test]
        fn robust_zscore_scores_against_the_median_and_mad_of_the_n_before(
            readings in readings(tied()),
            n in 1usize..40,
        ) {
            check(WindowFn::RobustZScore(n), &readings, |i| {
                let before = if i == 0 { Vec::new() } else { by_time(&readings, i - 1) };
                let history: Vec<f64> = before[before.len().saturating_sub(n)..].iter().map(|&(_, v)| v).collect();
                (history.len() >= ANOMALY_WARM_UP).then(|| {
                    let m = median(history.clone());
                    let mad = median(history.iter().map(|v| (v - m).abs()).collect());
                    let sigma = if mad > 0.0 {
                        MAD_TO_SIGMA * mad
                    } else {
                        MEAN_AD_TO_SIGMA * history.iter().map(|v| (v - m).abs()).sum::<f64>() / history.len() as f64
                    };
                    (readings[i].1 - m) / sigma
                })
            })?;
        }

        #[test]
        fn delta_and_ewma_follow_the_readings_in_order(
            values in prop::collection::vec(-50.0..50.0f64, 1..100),
            alpha in 0.01..1.0f64,
        ) {
            let readings: Vec<(u64, f64)> = values.iter().enumerate().map(|(i, &v)| (i as u64 * 1000, v)).collect();
            check(WindowFn::Delta, &readings, |i| (i > 0).then(|| values[i] - values[i - 1]))?;
            check(WindowFn::Ewma(alpha), &readings, |i| {
                Some(values[1..=i].iter().fold(values[0], |state, &v| alpha * v + (1.0 - alpha) * state))
            })?;
        }
    }
}

/// `lag` by brute force: every reading kept; N readings before the current one in time order, or the latest at or
/// before its time minus D.
fn lag_reference(span: Span, readings: &[(u64, f64)]) -> Vec<Option<f64>> {
    let mut seen: Vec<(u64, f64)> = Vec::new();
    readings
        .iter()
        .map(|&(ms, v)| {
            let at = seen.partition_point(|&(t, _)| t <= ms);
            seen.insert(at, (ms, v));
            match span {
                Span::Readings(n) => at.checked_sub(n).map(|i| seen[i].1),
                Span::Time(d) => {
                    let cutoff = ms.checked_sub(d.as_millis() as u64)?;
                    seen.iter().rfind(|&&(t, _)| t <= cutoff).map(|&(_, v)| v)
                }
            }
        })
        .collect()
}

#[test]
fn lag_reaches_back_n_readings_or_a_duration_like_a_brute_force_reference() {
    // Irregular times, some readings out of order (as lateness allows).
    let values = values(400, 11);
    let mut readings: Vec<(u64, f64)> = values.iter().enumerate().map(|(i, &v)| (1_000 + i as u64 * 700, v)).collect();
    for i in (5..readings.len()).step_by(17) {
        readings.swap(i, i - 1);
    }
    for span in
        [Span::Readings(1), Span::Readings(5), Span::Time(Duration::from_secs(3)), Span::Time(Duration::from_secs(60))]
    {
        let got = run(WindowFn::Lag(span), &readings);
        let expected = lag_reference(span, &readings);
        let mut latest = 0;
        for (i, (&(ms, _), (got, expected))) in readings.iter().zip(got.iter().zip(&expected)).enumerate() {
            if ms >= latest {
                assert_eq!(got, expected, "{span:?}, reading {i}");
            } else {
                // A late reading reaches back only as far as the window still holds, measured from the latest.
                assert!(got.is_none() || got == expected, "{span:?}, late reading {i}: {got:?} vs {expected:?}");
            }
            latest = latest.max(ms);
        }
    }
    // No value until there is one: the first reading has nothing before it.
    assert_eq!(run(WindowFn::Lag(Span::Readings(1)), &[(0, 1.0), (10, 2.0)]), [None, Some(1.0)]);
    assert_eq!(
        run(WindowFn::Lag(Span::Time(Duration::from_secs(1))), &[(0, 1.0), (500, 2.0), (1_000, 3.0), (1_700, 4.0)]),
        [None, None, Some(1.0), Some(2.0)]
    );
}

#[test]
fn lag_keeps_only_what_a_later_reading_can_reach() {
    let mut window = WindowFn::Lag(Span::Readings(3)).instantiate();
    for i in 0..100u64 {
        window.update(&WindowFn::Lag(Span::Readings(3)), at(i), at(i), i as f64);
    }
    let Window::Lag(entries) = &window else { panic!() };
    assert_eq!(entries.len(), 4);
    let function = WindowFn::Lag(Span::Time(Duration::from_secs(10)));
    let mut window = function.instantiate();
    for i in 0..1_000u64 {
        window.update(&function, at(i * 100), at(i * 100), i as f64);
    }
    let Window::Lag(entries) = &window else { panic!() };
    // 10 s of readings every 100 ms, and the one at the edge.
    assert_eq!(entries.len(), 101);
}
