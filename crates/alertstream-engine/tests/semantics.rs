//! The engine's change semantics against a small reference model, on random reading sequences: FIRING and
//! RESOLVED in `change` and `every` mode, `for` and `keep_firing_for` (in readings and in time), `resolve`, skipped
//! readings (a missing metric) and sensors kept apart.
//!
//! The model follows docs/RULES.md rather than the engine's code: it keeps every reading a sensor's rule was
//! applied to and, for each new one, looks back over them for the unbroken runs that `for` and `keep_firing_for`
//! count, where the engine keeps two counters.

use std::time::{Duration, SystemTime};

use alertstream_engine::{AlertState, Hold, Notify, Reading, RuleSet, RuleSpec, StreamState, Timing, Values};
use proptest::prelude::*;

/// The rule under test: `x > FIRE_ABOVE`, and maybe a resolve condition `x < B` for a random `B`, below it (a band
/// where neither holds) or above it (readings on which both hold).
const FIRE_ABOVE: f64 = 30.0;

/// One reading of the sequence: its sensor, the time since the previous reading, and its `x` (`None`: the reading
/// lacks `x`, so the rule skips it).
#[derive(Debug, Clone)]
struct Step {
    sensor: usize,
    gap_secs: u64,
    x: Option<f64>,
}

fn step() -> impl Strategy<Value = Step> {
    // Values around both thresholds, so every case (fires, resolves, the band between) comes up often.
    let x = prop_oneof![4 => (25i32..=34).prop_map(|v| Some(f64::from(v))), 1 => Just(None)];
    (0usize..2, 0u64..20, x).prop_map(|(sensor, gap_secs, x)| Step { sensor, gap_secs, x })
}

fn hold() -> impl Strategy<Value = Option<Hold>> {
    prop_oneof![
        Just(None),
        (1u64..5).prop_map(|n| Some(Hold::Readings(n))),
        (1u64..40).prop_map(|s| Some(Hold::Duration(Duration::from_secs(s)))),
    ]
}

fn timing() -> impl Strategy<Value = Timing> {
    (prop_oneof![Just(Notify::Change), Just(Notify::Every)], hold(), hold())
        .prop_map(|(notify, hold, keep_firing_for)| Timing { notify, hold, keep_firing_for })
}

/// What one applied reading told the rule.
#[derive(Debug, Clone, Copy)]
struct Seen {
    time: u64,
    fires: bool,
    would_resolve: bool,
}

/// Whether the unbroken run at the end of `seen` of readings that satisfy `member` has lasted `hold` (no hold: as
/// soon as it has one reading).
fn run_lasted(seen: &[Seen], member: impl Fn(&Seen) -> bool, hold: Option<Hold>) -> bool {
    let run: Vec<&Seen> = seen.iter().rev().take_while(|s| member(s)).collect();
    let (Some(last), Some(first)) = (run.first(), run.last()) else { return false };
    match hold {
        None => true,
        Some(Hold::Readings(n)) => run.len() as u64 >= n,
        Some(Hold::Duration(d)) => last.time - first.time >= d.as_secs(),
    }
}

/// The reference model of one sensor's rule.
#[derive(Debug, Default)]
struct Model {
    seen: Vec<Seen>,
    firing: bool,
}

impl Model {
    fn apply(&mut self, seen: Seen, timing: &Timing) -> Option<AlertState> {
        self.seen.push(seen);
        if !self.firing {
            if seen.fires && run_lasted(&self.seen, |s| s.fires, timing.hold) {
                self.firing = true;
                return Some(AlertState::Firing);
            }
            return None;
        }
        if seen.would_resolve {
            // The run cannot reach back past the reading that fired: that one did not resolve.
            if run_lasted(&self.seen, |s| s.would_resolve, timing.keep_firing_for) {
                self.firing = false;
                return Some(AlertState::Resolved);
            }
            return None;
        }
        let again = timing.notify == Notify::Every && seen.fires && run_lasted(&self.seen, |s| s.fires, timing.hold);
        again.then_some(AlertState::Firing)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_engine_fires_and_resolves_as_the_reference_model(
        steps in prop::collection::vec(step(), 1..80),
        timing in timing(),
        resolve_below in prop::option::of(26i32..=34),
    ) {
        let spec = RuleSpec {
            name: "hot".to_owned(),
            condition: Some(format!("x > {FIRE_ABOVE}")),
            resolve: resolve_below.map(|below| format!("x < {below}")),
            timing,
            ..RuleSpec::default()
        };
        let rules = RuleSet::new(vec![spec]).unwrap();
        let mut stream = StreamState::new(10, Duration::from_secs(3600));
        let mut models = [Model::default(), Model::default()];
        let mut time = 0;
        let mut out = Vec::new();
        for (seq, step) in steps.iter().enumerate() {
            time += step.gap_secs;
            let values = match step.x {
                Some(x) => Values::from_iter([("x".to_owned(), x)]),
                None => Values::from_iter([("y".to_owned(), 1.0)]),
            };
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(time);
            let reading = Reading { sensor_id: format!("s{}", step.sensor), values, seq: seq as u64, time: at };
            out.clear();
            rules.evaluate(&mut stream, reading, at, &mut out);
            let got: Vec<(String, AlertState)> = out.iter().map(|a| (a.sensor_id.to_string(), a.state)).collect();
            let expected: Vec<(String, AlertState)> = step
                .x
                .and_then(|x| {
                    let fires = x > FIRE_ABOVE;
                    let would_resolve = !fires && resolve_below.is_none_or(|below| x < f64::from(below));
                    models[step.sensor].apply(Seen { time, fires, would_resolve }, &timing)
                })
                .map(|state| (format!("s{}", step.sensor), state))
                .into_iter()
                .collect();
            prop_assert_eq!(got, expected, "reading {} ({:?}) of {:?}", seq, step, steps);
            prop_assert!(out.iter().all(|a| a.reading_seq == seq as u64 && &*a.rule == "hot"));
        }
    }
}
