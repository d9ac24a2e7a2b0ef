//! Snapshots: a restored sensor goes on exactly as it would have, rules keep their state only under the same
//! identity, and damaged bytes are refused whole.

use std::time::{Duration, SystemTime};

use crate::{Alert, Reading, RuleSet, RuleSpec, SnapshotError, StreamState};

const LATENESS: Duration = Duration::from_secs(60);

fn spec(name: &str, condition: &str) -> RuleSpec {
    RuleSpec { name: name.to_owned(), condition: Some(condition.to_owned()), ..RuleSpec::default() }
}

/// A rule per kind of window state, each over `t`, with thresholds no reading reaches (the comparison values are in
/// the explanations, which `notify = every` rules carry on every reading).
fn every_kind() -> RuleSet {
    let conditions = [
        "avg(t, 20) > -1e300",
        "min(t, 30s) + max(t, 30s) > -1e300",
        "delta(t) > -1e300",
        "rate(t, 10s) > -1e300",
        "ewma(t, 0.2) > -1e300",
        "zscore(t) > -1e300",
        "zscore(t, 50) > -1e300",
        "robust_zscore(t, 40) > -1e300",
        "lag(t, 5) + lag(t, 7s) > -1e300",
        "anomaly(t, 200) > -1e300",
        "novelty(t) + likelihood(t, 160) > -1e300",
    ];
    let specs = conditions
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut s = spec(&format!("r{i}"), c);
            s.timing.notify = crate::Notify::Every;
            s
        })
        .collect();
    RuleSet::new(specs).unwrap()
}

fn reading(seq: u64, t: f64) -> Reading {
    Reading {
        sensor_id: "s".to_owned(),
        values: [("t".to_owned(), t)].into_iter().collect(),
        seq,
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(seq),
    }
}

/// A wandering series with a repeating shape.
fn value(i: u64) -> f64 {
    ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin() * 10.0 + (i * 7 % 11) as f64 * 0.3
}

fn feed(rules: &RuleSet, stream: &mut StreamState, seqs: std::ops::Range<u64>) -> Vec<Alert> {
    let mut out = Vec::new();
    for seq in seqs {
        let r = reading(seq, value(seq));
        let time = r.time;
        rules.evaluate(stream, r, time, &mut out);
    }
    out
}

fn render(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| {
            let terms: Vec<String> = a.explanation.iter().map(|t| format!("{}={:?}", t.expression, t.value)).collect();
            format!("{} {} {:?} {}", a.reading_seq, a.rule, a.state, terms.join(","))
        })
        .collect()
}

#[test]
fn a_restored_sensor_goes_on_exactly_as_if_its_stream_had_never_ended() {
    let rules = every_kind();
    let mut original = StreamState::new(10, LATENESS);
    feed(&rules, &mut original, 1..700);
    let bytes = rules.snapshot(&original, "s").unwrap();
    assert_eq!(rules.snapshot(&original, "nobody"), None);

    let mut restored = StreamState::new(10, LATENESS);
    let back = rules.restore(&mut restored, "s", &bytes, SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!((back.kept, back.fresh), (11, 0));
    assert_eq!(restored.sensors().collect::<Vec<_>>(), original.sensors().collect::<Vec<_>>());
    // Every window, detector and firing state continues where it was: the same alerts with the same values.
    let expected = render(&feed(&rules, &mut original, 700..900));
    let got = render(&feed(&rules, &mut restored, 700..900));
    assert_eq!(got.len(), 11 * 200);
    for (got, expected) in got.iter().zip(&expected) {
        assert_eq!(got, expected);
    }
    // And a fresh stream is different: its windows start empty.
    let fresh = render(&feed(&rules, &mut StreamState::new(10, LATENESS), 700..900));
    assert!(fresh != expected, "a fresh stream differs");
}

#[test]
fn a_firing_rule_stays_firing_across_a_restore_and_does_not_fire_again() {
    let rules = RuleSet::new(vec![spec("hot", "t > 100")]).unwrap();
    let mut first = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    rules.evaluate(&mut first, reading(1, 150.0), SystemTime::UNIX_EPOCH, &mut out);
    assert_eq!(out.len(), 1);
    let bytes = rules.snapshot(&first, "s").unwrap();
    let mut second = StreamState::new(10, LATENESS);
    rules.restore(&mut second, "s", &bytes, SystemTime::UNIX_EPOCH).unwrap();
    out.clear();
    rules.evaluate(&mut second, reading(2, 160.0), SystemTime::UNIX_EPOCH, &mut out);
    assert!(out.is_empty(), "still firing: no second FIRING: {out:?}");
    rules.evaluate(&mut second, reading(3, 50.0), SystemTime::UNIX_EPOCH, &mut out);
    assert_eq!(render(&out), ["3 hot Resolved t=50.0"]);
}

#[test]
fn only_rules_of_the_same_name_and_identity_get_their_state_back() {
    let before =
        RuleSet::new(vec![spec("hot", "t > 100"), spec("spike", "zscore(t) > 3"), spec("old", "t < 0")]).unwrap();
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    for seq in 1..30 {
        before.evaluate(&mut stream, reading(seq, 150.0 + (seq % 3) as f64), SystemTime::UNIX_EPOCH, &mut out);
    }
    let bytes = before.snapshot(&stream, "s").unwrap();
    // `hot` keeps its identity under a new message; `spike` changes its condition; `new` is new; `old` is gone.
    let mut hot = spec("hot", "t > 100");
    hot.message = Some("reworded".to_owned());
    let after = RuleSet::new(vec![hot, spec("spike", "zscore(t) > 4"), spec("new", "t > 100")]).unwrap();
    let mut restored = StreamState::new(10, LATENESS);
    let back = after.restore(&mut restored, "s", &bytes, SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!((back.kept, back.fresh), (1, 2));
    out.clear();
    after.evaluate(&mut restored, reading(30, 150.0), SystemTime::UNIX_EPOCH, &mut out);
    // `hot` was firing and stays so; `new` fires for the first time; `spike` starts a fresh warm-up (no value).
    assert_eq!(render(&out), ["30 new Firing t=150.0"]);
}

#[test]
fn damaged_or_foreign_snapshots_are_refused_whole_and_never_panic() {
    let rules = every_kind();
    let mut stream = StreamState::new(10, LATENESS);
    feed(&rules, &mut stream, 1..400);
    let bytes = rules.snapshot(&stream, "s").unwrap();
    // Every cut in the header and the first rules, then every 7th byte (each restore reads the whole snapshot).
    let cuts = (0..bytes.len()).filter(|&at| at < 400 || at % 7 == 0);
    for cut in cuts.clone() {
        let mut fresh = StreamState::new(10, LATENESS);
        assert!(rules.restore(&mut fresh, "s", &bytes[..cut], SystemTime::UNIX_EPOCH).is_err(), "cut at {cut}");
        assert!(!fresh.tracks("s"), "nothing is applied from a damaged snapshot");
    }
    let mut altered = bytes.clone();
    altered[4] = 99;
    let mut fresh = StreamState::new(10, LATENESS);
    assert_eq!(rules.restore(&mut fresh, "s", &altered, SystemTime::UNIX_EPOCH), Err(SnapshotError::Version(99)));
    // Bytes flipped: an error or a valid state, never a panic.
    // What is restored from one goes on taking readings without a panic.
    for at in cuts {
        for flip in [0xff, 0x01] {
            let mut flipped = bytes.clone();
            flipped[at] ^= flip;
            let mut restored = StreamState::new(10, LATENESS);
            if rules.restore(&mut restored, "s", &flipped, SystemTime::UNIX_EPOCH).is_ok() {
                feed(&rules, &mut restored, 400..430);
            }
        }
    }
    // A sensor the stream already tracks keeps its live state.
    assert_eq!(rules.restore(&mut stream, "s", &bytes, SystemTime::UNIX_EPOCH), Err(SnapshotError::Tracked));
}
