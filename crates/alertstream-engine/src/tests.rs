//! Tests of the engine facade: whole rule sets over sequences of readings.

use std::time::{Duration, SystemTime};

use super::*;

fn spec(name: &str, condition: &str) -> RuleSpec {
    RuleSpec { name: name.to_owned(), condition: Some(condition.to_owned()), ..RuleSpec::default() }
}

const LATENESS: Duration = Duration::from_secs(60);

/// An absence rule named `silent` that fires after `after` of silence.
fn silent(after: Duration) -> RuleSpec {
    RuleSpec { name: "silent".into(), absent_for: Some(after), ..RuleSpec::default() }
}

fn classic() -> RuleSet {
    let mut low = spec("temp_too_low", "temperature < 10");
    low.message = Some("temp too low".to_owned());
    let mut high = spec("ph_too_high", "pH > 5.5");
    high.message = Some("pH too high".to_owned());
    RuleSet::new(vec![low, high]).unwrap()
}

fn reading(sensor: &str, seq: u64, values: &[(&str, f64)]) -> Reading {
    Reading {
        sensor_id: sensor.to_owned(),
        values: values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        seq,
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(seq),
    }
}

/// Feeds the readings through one stream and renders each alert as `sensor seq rule STATE`.
fn run(rules: &RuleSet, max_sensors: usize, readings: &[Reading]) -> Vec<String> {
    let mut stream = StreamState::new(max_sensors, LATENESS);
    let mut out = Vec::new();
    for reading in readings {
        rules.evaluate(&mut stream, reading.clone(), reading.time, &mut out);
    }
    out.iter()
        .map(|a| format!("{} {} {} {}", a.sensor_id, a.reading_seq, a.rule, a.state.as_str().to_uppercase()))
        .collect()
}

#[test]
fn interleaved_sensors_keep_their_own_state() {
    let readings = [
        reading("a", 1, &[("temperature", 8.0), ("pH", 4.0)]),
        reading("b", 2, &[("temperature", 12.0), ("pH", 6.0)]),
        reading("a", 3, &[("temperature", 7.0), ("pH", 6.0)]),
        reading("b", 4, &[("temperature", 12.0), ("pH", 5.0)]),
        reading("a", 5, &[("temperature", 11.0), ("pH", 4.0)]),
        reading("b", 6, &[("temperature", 12.0), ("pH", 5.0)]),
    ];
    assert_eq!(
        run(&classic(), 10, &readings),
        [
            "a 1 temp_too_low FIRING",
            "b 2 ph_too_high FIRING",
            "a 3 ph_too_high FIRING",
            "b 4 ph_too_high RESOLVED",
            "a 5 temp_too_low RESOLVED",
            "a 5 ph_too_high RESOLVED",
        ]
    );
}

#[test]
fn a_missing_metric_leaves_the_rule_state_as_it_was() {
    let readings = [
        reading("a", 1, &[("temperature", 8.0)]),
        reading("a", 2, &[("pH", 4.0)]),
        reading("a", 3, &[("temperature", 8.0)]),
        reading("a", 4, &[("temperature", 20.0)]),
    ];
    assert_eq!(run(&classic(), 10, &readings), ["a 1 temp_too_low FIRING", "a 4 temp_too_low RESOLVED"]);
}

#[test]
fn a_stream_lists_its_sensors_and_what_fires_for_each() {
    let rules = classic();
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    for reading in [
        reading("a", 1, &[("temperature", 8.0), ("pH", 6.0)]),
        reading("b", 2, &[("temperature", 20.0), ("pH", 6.0)]),
        reading("a", 3, &[("temperature", 20.0), ("pH", 6.0)]),
    ] {
        rules.evaluate(&mut stream, reading.clone(), reading.time, &mut out);
    }
    let sensors: Vec<(&str, u64)> = stream.sensors().map(|(id, _, seq)| (id, seq)).collect();
    assert_eq!(sensors, [("a", 3), ("b", 2)]);
    // a: temp resolved at 3, pH still high; b: pH high.
    assert_eq!(stream.firing().collect::<Vec<_>>(), [("a", 1), ("b", 1)]);
    assert_eq!(rules.rules()[1].name(), "ph_too_high");
}

#[test]
fn a_reading_that_lacks_a_metric_of_a_rule_with_windows_feeds_none_of_its_windows() {
    let set = RuleSet::new(vec![spec("hot", "avg(temperature, 2) > 30 and pH > 0")]).unwrap();
    let readings = [
        reading("a", 1, &[("temperature", 40.0), ("pH", 1.0)]), // avg 40: FIRING
        reading("a", 2, &[("temperature", 0.0)]),               // no pH: the rule, and its window, skip it
        reading("a", 3, &[("temperature", 40.0), ("pH", 1.0)]), // avg (40, 40), not (0, 40): still firing
    ];
    assert_eq!(run(&set, 10, &readings), ["a 1 hot FIRING"]);
}

#[test]
fn an_invalid_reading_is_an_event_and_changes_no_state() {
    let readings = [
        reading("a", 1, &[("temperature", 8.0)]),
        reading("a", 2, &[("temperature", f64::NAN)]),
        reading("", 3, &[("temperature", 20.0)]),
        reading("a", 4, &[("temperature", 7.0)]),
        reading("a", 5, &[("temperature", 20.0)]),
    ];
    assert_eq!(
        run(&classic(), 10, &readings),
        [
            "a 1 temp_too_low FIRING",
            "a 2 invalid_reading FIRING",
            " 3 invalid_reading FIRING",
            "a 5 temp_too_low RESOLVED",
        ]
    );
}

#[test]
fn sensors_beyond_the_limit_yield_an_event_and_known_ones_go_on() {
    let readings = [
        reading("a", 1, &[("temperature", 8.0)]),
        reading("b", 2, &[("temperature", 8.0)]),
        reading("c", 3, &[("temperature", 8.0)]),
        reading("a", 4, &[("temperature", 20.0)]),
    ];
    let alerts = run(&classic(), 2, &readings);
    assert_eq!(
        alerts,
        ["a 1 temp_too_low FIRING", "b 2 temp_too_low FIRING", "c 3 sensor_limit FIRING", "a 4 temp_too_low RESOLVED",]
    );
}

#[test]
fn alerts_carry_the_rule_and_the_reading() {
    let mut out = Vec::new();
    let r = reading("line-1", 42, &[("temperature", 8.0), ("pH", 4.0)]);
    classic().evaluate(&mut StreamState::new(10, LATENESS), r.clone(), r.time, &mut out);
    assert_eq!(
        out,
        [Alert {
            sensor_id: "line-1".into(),
            rule: "temp_too_low".into(),
            state: AlertState::Firing,
            severity: Severity::Warning,
            message: "temp too low".into(),
            reading_seq: 42,
            time: r.time,
            values: r.values.clone(),
            explanation: Box::new([Term {
                expression: "temperature".into(),
                value: 8.0,
                operator: "<",
                threshold: 10.0
            }]),
        }]
    );
}

#[test]
fn an_alert_explains_itself_with_each_comparison_of_the_condition_that_decided_it() {
    let hot = RuleSpec { resolve: Some("t < 28".into()), ..spec("hot", "abs(t - avg(t, 3)) > 4 or t >= 50") };
    let set = rules(vec![hot]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    for (seq, t) in [(1, 20.0), (2, 20.0), (3, 35.0), (4, 27.0)] {
        let r = reading("s", seq, &[("t", t)]);
        set.evaluate(&mut stream, r.clone(), r.time, &mut out);
    }
    let shown: Vec<(AlertState, Vec<String>)> = out
        .iter()
        .map(|a| {
            let terms =
                a.explanation.iter().map(|t| format!("{} = {} {} {}", t.expression, t.value, t.operator, t.threshold));
            (a.state, terms.collect())
        })
        .collect();
    assert_eq!(
        shown,
        [
            // |35 - avg(20, 20, 35)| = 10 > 4: both comparisons of the condition, as written.
            (AlertState::Firing, vec!["abs(t - avg(t, 3)) = 10 > 4".to_owned(), "t = 35 >= 50".to_owned()]),
            // The resolve condition decided the RESOLVED.
            (AlertState::Resolved, vec!["t = 27 < 28".to_owned()]),
        ]
    );
}

#[test]
fn stateless_evaluation_is_the_classic_example() {
    let rules = classic();
    for (temperature, ph, expected) in
        [(8.0, 4.0, vec!["temp too low"]), (8.0, 6.0, vec!["temp too low", "pH too high"]), (12.0, 5.0, vec![])]
    {
        let evaluation =
            rules.evaluate_stateless(&reading("s", 0, &[("temperature", temperature), ("pH", ph)])).unwrap();
        let messages: Vec<&str> = evaluation.alerts.iter().map(|a| &*a.message).collect();
        assert_eq!(messages, expected);
        let status = if expected.is_empty() { ALL_GOOD.to_owned() } else { expected.join(" ") };
        assert_eq!(evaluation.status, status);
    }
    let invalid = rules.evaluate_stateless(&reading("", 0, &[("temperature", 1.0)]));
    assert_eq!(invalid.unwrap_err().field, "sensor_id");
}

#[test]
fn stateless_evaluation_ignores_for() {
    let mut held = spec("held", "temperature < 10");
    held.timing.hold = Some(Hold::Readings(5));
    let rules = RuleSet::new(vec![held]).unwrap();
    let evaluation = rules.evaluate_stateless(&reading("s", 0, &[("temperature", 1.0)])).unwrap();
    assert_eq!(evaluation.alerts.len(), 1);
}

#[test]
fn rule_set_errors_are_all_reported() {
    // The second `b` is a duplicate even though the first `b` does not compile.
    let errors = RuleSet::new(vec![
        spec("a", "x > 1"),
        spec("a", "x >"),
        spec("invalid_reading", "x > 1"),
        spec("", "x + 1"),
        spec("b", "x +"),
        spec("b", "x > 2"),
    ])
    .unwrap_err();
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "duplicate rule name `a`",
            "expected a number, a metric or `(`, found end of condition",
            "`invalid_reading` is reserved for an event and cannot name a rule",
            "a rule name cannot be empty",
            "a condition must be true or false: compare this value, as in `temperature > 30`",
            "expected a number, a metric or `(`, found end of condition",
            "duplicate rule name `b`",
        ]
    );
    assert_eq!(RuleSet::new(vec![]).unwrap_err(), [RuleSetError::Empty]);
}

#[test]
fn every_event_name_is_reserved() {
    for name in ["invalid_reading", "sensor_limit", "late_reading", "rate_limited"] {
        let errors = RuleSet::new(vec![spec(name, "x > 1")]).unwrap_err();
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [format!("`{name}` is reserved for an event and cannot name a rule")]
        );
    }
}

fn rules(specs: Vec<RuleSpec>) -> RuleSet {
    RuleSet::new(specs).unwrap()
}

#[test]
fn window_functions_are_per_sensor_and_have_no_value_until_they_do() {
    let set = rules(vec![spec("avg_hot", "avg(temperature, 3) > 30"), spec("rising", "delta(temperature) > 5")]);
    let readings = [
        reading("a", 1, &[("temperature", 40.0)]), // avg 40: FIRING; delta: no value yet
        reading("b", 2, &[("temperature", 20.0)]), // b has its own windows
        reading("a", 3, &[("temperature", 10.0)]), // avg 25: RESOLVED; delta -30
        reading("a", 4, &[("temperature", 40.0)]), // avg 30: not > 30; delta 30: FIRING
        reading("b", 5, &[("temperature", 26.0)]), // b: avg 23; delta 6: FIRING
        reading("a", 6, &[("temperature", 50.0)]), // avg 33.3: FIRING; delta 10: still firing
    ];
    assert_eq!(
        run(&set, 10, &readings),
        ["a 1 avg_hot FIRING", "a 3 avg_hot RESOLVED", "a 4 rising FIRING", "b 5 rising FIRING", "a 6 avg_hot FIRING",]
    );
}

#[test]
fn a_resolve_condition_and_keep_firing_for_through_the_rule_set() {
    let mut hot = spec("hot", "temperature > 30");
    hot.resolve = Some("temperature < 28".to_owned());
    hot.timing.keep_firing_for = Some(Hold::Readings(2));
    let readings: Vec<Reading> = [31.0, 29.0, 27.0, 29.0, 27.0, 26.0]
        .iter()
        .enumerate()
        .map(|(i, t)| reading("s", i as u64 + 1, &[("temperature", *t)]))
        .collect();
    assert_eq!(run(&rules(vec![hot]), 10, &readings), ["s 1 hot FIRING", "s 6 hot RESOLVED"]);
}

#[test]
fn sensors_patterns_scope_a_rule() {
    let mut line1 = spec("line1_hot", "t > 30");
    line1.sensors = vec!["line-1/*".to_owned()];
    let mut anywhere = spec("hot", "t > 30");
    anywhere.sensors = vec!["line-2/*".to_owned(), "*/oven".to_owned()];
    let readings = [
        reading("line-1/oven", 1, &[("t", 40.0)]),
        reading("line-2/a", 2, &[("t", 40.0)]),
        reading("line-3/b", 3, &[("t", 40.0)]),
        reading("line-1/a/b", 4, &[("t", 40.0)]),
    ];
    assert_eq!(
        run(&rules(vec![line1, anywhere]), 10, &readings),
        ["line-1/oven 1 line1_hot FIRING", "line-1/oven 1 hot FIRING", "line-2/a 2 hot FIRING"]
    );
}

#[test]
fn messages_fill_placeholders_from_the_reading() {
    let mut low = spec("low", "temperature < 10");
    low.message = Some("temperature {temperature} below 10 on {sensor_id}".to_owned());
    let mut out = Vec::new();
    let r = reading("line-1", 1, &[("temperature", 8.0)]);
    rules(vec![low]).evaluate(&mut StreamState::new(10, LATENESS), r.clone(), r.time, &mut out);
    assert_eq!(&*out[0].message, "temperature 8 below 10 on line-1");

    // Any metric of the reading may be named, read by the rule or not; one the reading lacks prints `-`.
    let mut other = spec("low", "temperature < 10");
    other.message = Some("temperature {temperature} with pH {pH}, flow {flow}".to_owned());
    let mut out = Vec::new();
    let r = reading("line-1", 1, &[("temperature", 8.0), ("pH", 6.5)]);
    rules(vec![other]).evaluate(&mut StreamState::new(10, LATENESS), r.clone(), r.time, &mut out);
    assert_eq!(&*out[0].message, "temperature 8 with pH 6.5, flow -");

    let mut empty = spec("low", "temperature < 10");
    empty.message = Some("{} is empty".to_owned());
    let errors = RuleSet::new(vec![empty]).unwrap_err();
    assert!(matches!(&errors[0], RuleSetError::Field { field: RuleField::Message, error, .. } if error.span == (0..2)));
}

#[test]
fn late_readings_beyond_the_lateness_are_events_and_within_it_are_applied() {
    let set = rules(vec![spec("hot", "max(t, 30s) > 30")]);
    let at = |seq: u64, secs: u64, t: f64| {
        let mut r = reading("s", seq, &[("t", t)]);
        r.time = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        r
    };
    let readings = [at(1, 100, 20.0), at(2, 30, 50.0), at(3, 80, 40.0), at(4, 101, 20.0), at(5, 111, 20.0)];
    // Reading 2 is 70 s behind (over 60 s): an event. Reading 3 is 20 s behind: applied, and in the window as if in
    // order; the window of 30 s before 101 still holds it, and of 30 s before 111 no longer does.
    assert_eq!(run(&set, 10, &readings), ["s 2 late_reading FIRING", "s 3 hot FIRING", "s 5 hot RESOLVED"]);
}

#[test]
fn absence_fires_on_silence_and_resolves_on_the_next_reading() {
    let silent = silent(Duration::from_secs(10));
    let set = rules(vec![silent, spec("hot", "t > 30")]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    let epoch = SystemTime::UNIX_EPOCH;
    let s = |n| epoch + Duration::from_secs(n);
    assert_eq!(stream.next_deadline(), None, "nothing is watched before a sensor reports");
    set.evaluate(&mut stream, reading("a", 1, &[("t", 1.0)]), s(0), &mut out);
    set.evaluate(&mut stream, reading("b", 2, &[("t", 1.0)]), s(5), &mut out);
    assert_eq!(stream.next_deadline(), Some(s(10)));
    set.check_absence(&mut stream, s(9), &mut out);
    assert!(out.is_empty());
    set.evaluate(&mut stream, reading("a", 3, &[("t", 1.0)]), s(9), &mut out);
    // a's entry comes due at 10, but a spoke at 9: it is rescheduled, and b fires at 15.
    set.check_absence(&mut stream, s(10), &mut out);
    assert!(out.is_empty());
    set.check_absence(&mut stream, s(15), &mut out);
    set.check_absence(&mut stream, s(19), &mut out);
    set.check_absence(&mut stream, s(40), &mut out);
    set.evaluate(&mut stream, reading("b", 4, &[("t", 40.0)]), s(41), &mut out);
    let got: Vec<String> = out
        .iter()
        .map(|a| format!("{} {} {} {:?} {:?}", a.sensor_id, a.reading_seq, a.rule, a.state, a.time))
        .collect();
    assert_eq!(
        got,
        [
            format!("b 2 silent Firing {:?}", s(15)),
            format!("a 3 silent Firing {:?}", s(19)),
            format!("b 4 silent Resolved {:?}", reading("b", 4, &[]).time),
            format!("b 4 hot Firing {:?}", reading("b", 4, &[]).time),
        ]
    );
    assert_eq!(out[0].values, Values::from_iter([("t".to_owned(), 1.0)]), "absence alerts carry the last values");
    assert_eq!(stream.next_deadline(), Some(s(51)), "b is watched again; a is firing");
}

#[test]
fn absence_alerts_carry_exactly_the_last_readings_values_whether_or_not_it_alerted() {
    let silent = silent(Duration::from_secs(10));
    let set = rules(vec![silent, spec("hot", "t > 30")]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    let at = |n| SystemTime::UNIX_EPOCH + Duration::from_secs(n);
    // Each reading alerts (`hot` fires, then resolves) while its metrics change: one added, one gone, one kept.
    for (seq, values) in [(1, &[("t", 40.0), ("p", 1.0)][..]), (2, &[("t", 1.0), ("q", 2.0)]), (3, &[("t", 50.0)])] {
        set.evaluate(&mut stream, reading("a", seq, values), at(seq), &mut out);
    }
    assert_eq!(out.len(), 3, "every reading alerted: {out:?}");
    assert_eq!(out[1].values, Values::from_iter([("t".to_owned(), 1.0), ("q".to_owned(), 2.0)]));
    out.clear();
    set.check_absence(&mut stream, at(13), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].values, Values::from_iter([("t".to_owned(), 50.0)]), "the last reading's values, no others");
}

#[test]
fn adopting_a_new_rule_set_keeps_unchanged_rules_and_resolves_removed_or_changed_ones() {
    let ten_minutes = Duration::from_secs(600);
    let old =
        rules(vec![spec("hot", "t > 30"), spec("cold", "t < 0"), spec("avg", "avg(t, 3) > 100"), silent(ten_minutes)]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    let r = reading("s", 1, &[("t", 200.0)]);
    old.evaluate(&mut stream, r.clone(), r.time, &mut out);
    assert_eq!(out.len(), 2, "hot and avg fire");
    out.clear();
    // hot is unchanged (stays firing, no new alert); avg changes (RESOLVED now); cold is removed (was not firing).
    let new =
        rules(vec![spec("avg", "avg(t, 3) > 150"), spec("hot", "t > 30"), spec("new", "t > 0"), silent(ten_minutes)]);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(99);
    new.adopt(&old, &mut stream, now, &mut out);
    let got: Vec<String> =
        out.iter().map(|a| format!("{} {} {:?} {}", a.rule, a.reading_seq, a.state, a.values["t"])).collect();
    assert_eq!(got, ["avg 1 Resolved 200"]);
    assert_eq!(out[0].time, now);
    out.clear();
    let r = reading("s", 2, &[("t", 200.0)]);
    new.evaluate(&mut stream, r.clone(), r.time, &mut out);
    let got: Vec<String> = out.iter().map(|a| format!("{} {:?}", a.rule, a.state)).collect();
    // The changed avg starts with a fresh window (one reading of 200 > 150) and fires; hot kept its state.
    assert_eq!(got, ["avg Firing", "new Firing"]);
}

#[test]
fn a_reload_that_changes_only_words_keeps_the_rule_firing_and_speaks_the_new_words() {
    let old = rules(vec![spec("hot", "t > 30")]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    let r = reading("s", 1, &[("t", 40.0)]);
    old.evaluate(&mut stream, r.clone(), r.time, &mut out);
    out.clear();
    let reworded = RuleSpec {
        severity: Severity::Critical,
        message: Some("too hot: {t}".into()),
        resolve_message: Some("cool again: {t}".into()),
        labels: [("team".to_owned(), "ovens".to_owned())].into(),
        ..spec("hot", "t > 30")
    };
    let new = rules(vec![reworded]);
    new.adopt(&old, &mut stream, r.time, &mut out);
    assert!(out.is_empty(), "no RESOLVED and FIRING for a change of words: {out:?}");
    let r = reading("s", 2, &[("t", 41.0)]);
    new.evaluate(&mut stream, r.clone(), r.time, &mut out);
    assert!(out.is_empty(), "still firing, not fired again");
    let r = reading("s", 3, &[("t", 20.0)]);
    new.evaluate(&mut stream, r.clone(), r.time, &mut out);
    let got: Vec<_> = out.iter().map(|a| (&*a.rule, a.state, a.severity, &*a.message)).collect();
    assert_eq!(got, [("hot", AlertState::Resolved, Severity::Critical, "cool again: 20")]);
    // A change of identity (here `sensors`) still restarts the rule: RESOLVED in the old words (a reload alert
    // carries no values when no absence is watched).
    let r = reading("s", 4, &[("t", 50.0)]);
    new.evaluate(&mut stream, r.clone(), r.time, &mut out);
    out.clear();
    let narrowed = RuleSpec { sensors: vec!["line-*".into()], ..new.rules()[0].spec().clone() };
    rules(vec![narrowed]).adopt(&new, &mut stream, r.time, &mut out);
    let got: Vec<_> = out.iter().map(|a| (&*a.rule, a.state, &*a.message)).collect();
    assert_eq!(got, [("hot", AlertState::Resolved, "cool again: -")]);
}

#[test]
fn a_resolved_alert_says_so_unless_the_rule_words_it_itself() {
    let plain = RuleSpec { message: Some("too hot".into()), ..spec("hot", "t > 30") };
    let templated = RuleSpec { message: Some("{t} on {sensor_id}".into()), ..spec("warm", "t > 20") };
    let unnamed = spec("mild", "t > 10");
    let worded = RuleSpec { resolve_message: Some("back to {t}".into()), ..spec("tepid", "t > 5") };
    let set = rules(vec![plain, templated, unnamed, worded]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    for (seq, t) in [(1, 40.0), (2, 0.0)] {
        let r = reading("s", seq, &[("t", t)]);
        set.evaluate(&mut stream, r.clone(), r.time, &mut out);
    }
    let got: Vec<_> = out.iter().map(|a| (a.state, &*a.message)).collect();
    assert_eq!(
        got,
        [
            (AlertState::Firing, "too hot"),
            (AlertState::Firing, "40 on s"),
            (AlertState::Firing, "mild"),
            (AlertState::Firing, "tepid"),
            (AlertState::Resolved, "resolved: too hot"),
            (AlertState::Resolved, "resolved: 0 on s"),
            (AlertState::Resolved, "resolved: mild"),
            (AlertState::Resolved, "back to 0"),
        ]
    );
}

#[test]
fn label_names_are_identifiers_and_not_reserved() {
    let labelled = |name: &str| RuleSpec { labels: [(name.to_owned(), "x".to_owned())].into(), ..spec("r", "t > 1") };
    for good in ["team", "_x", "A9_b"] {
        assert!(RuleSet::new(vec![labelled(good)]).is_ok(), "{good}");
    }
    for (bad, reason) in [("9a", "a letter"), ("a-b", "a letter"), ("", "a letter"), ("severity", "carries it")] {
        let errors = RuleSet::new(vec![labelled(bad)]).unwrap_err();
        assert!(
            matches!(&errors[..], [RuleSetError::Label { rule: 0, name, reason: r }] if name == bad && r.contains(reason)),
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn what_still_fires_is_listed_as_the_resolved_alerts_it_would_end_with() {
    let set = rules(vec![
        spec("hot", "t > 30"),
        RuleSpec { resolve_message: Some("ok {t}".into()), ..spec("warm", "t > 20") },
    ]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    for (sensor, seq, t) in [("a", 1, 40.0), ("b", 2, 25.0), ("c", 3, 10.0)] {
        let r = reading(sensor, seq, &[("t", t)]);
        set.evaluate(&mut stream, r.clone(), r.time, &mut out);
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(500);
    let got: Vec<_> = set
        .still_firing(&stream, now)
        .iter()
        .map(|a| {
            format!("{} {} {} {:?} {} {:?}", a.sensor_id, a.rule, a.reading_seq, a.state, a.message, a.time == now)
        })
        .collect();
    assert_eq!(
        got,
        ["a hot 1 Resolved resolved: hot true", "a warm 1 Resolved ok - true", "b warm 2 Resolved ok - true"]
    );
}

#[test]
fn a_reload_that_adds_absence_counts_silence_from_the_reload() {
    let silent = silent(Duration::from_secs(60));
    let old = rules(vec![spec("hot", "t > 30")]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    // Without absence rules the server time passed is not kept: here, one far from the reading's own.
    old.evaluate(&mut stream, reading("s", 1, &[("t", 1.0)]), SystemTime::UNIX_EPOCH, &mut out);
    let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    let new = rules(vec![spec("hot", "t > 30"), silent]);
    new.adopt(&old, &mut stream, at(1_000), &mut out);
    assert_eq!(stream.next_deadline(), Some(at(1_060)), "silence counts from the reload");
    new.check_absence(&mut stream, at(1_059), &mut out);
    assert!(out.is_empty());
    new.check_absence(&mut stream, at(1_060), &mut out);
    assert_eq!(out.iter().map(|a| (&*a.rule, a.reading_seq, a.time)).collect::<Vec<_>>(), [("silent", 1, at(1_060))]);
}

#[test]
fn reload_alerts_never_carry_values_older_than_their_reading() {
    let silent = silent(Duration::from_secs(600));
    let a = rules(vec![silent, spec("hot", "t > 30")]);
    let b = rules(vec![spec("hot", "t > 30"), spec("warm", "t > 20")]);
    let c = rules(vec![spec("other", "t > 1000")]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    let r = reading("s", 1, &[("t", 40.0)]);
    a.evaluate(&mut stream, r.clone(), r.time, &mut out);
    b.adopt(&a, &mut stream, r.time, &mut out);
    let r = reading("s", 2, &[("t", 25.0)]);
    b.evaluate(&mut stream, r.clone(), r.time, &mut out);
    out.clear();
    // `warm` fired on reading 2 under rules that kept no last values: its RESOLVED carries none, not reading 1's.
    c.adopt(&b, &mut stream, r.time, &mut out);
    let got: Vec<(&str, u64, usize)> = out.iter().map(|a| (&*a.rule, a.reading_seq, a.values.len())).collect();
    assert_eq!(got, [("warm", 2, 0)]);
}

#[test]
fn alerts_of_one_reading_each_carry_its_sensor_and_values() {
    let set = rules(vec![spec("a", "t > 1"), spec("b", "t > 2"), spec("c", "t > 3")]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    let r = reading("line-7", 1, &[("t", 5.0), ("u", 1.0)]);
    set.evaluate(&mut stream, r.clone(), r.time, &mut out);
    assert_eq!(out.len(), 3);
    for alert in &out {
        assert_eq!((&*alert.sensor_id, &alert.values), ("line-7", &r.values), "{}", alert.rule);
    }
}

#[test]
fn stateless_evaluation_skips_rules_that_need_history() {
    let silent = silent(Duration::from_secs(10));
    let set = rules(vec![spec("avg", "avg(t, 3) > 1"), silent, spec("plain", "t > 1")]);
    let evaluation = set.evaluate_stateless(&reading("s", 0, &[("t", 5.0)])).unwrap();
    assert_eq!(evaluation.alerts.iter().map(|a| &*a.rule).collect::<Vec<_>>(), ["plain"]);
}

#[test]
fn absence_rules_take_no_condition_keys() {
    let mut bad = spec("silent", "t > 1");
    bad.absent_for = Some(Duration::from_secs(1));
    bad.timing.hold = Some(Hold::Readings(2));
    let errors = RuleSet::new(vec![bad, RuleSpec { name: "none".into(), ..RuleSpec::default() }]).unwrap_err();
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "an `absent_for` rule fires on silence and takes no `condition`",
            "an `absent_for` rule fires on silence and takes no `for`",
            "a rule needs a `condition` (or `absent_for`)",
        ]
    );
}

#[test]
fn times_and_durations_at_the_edge_of_representable_time_do_not_panic() {
    let endless = silent(Duration::from_millis(u64::MAX));
    let set = rules(vec![spec("hot", "avg(t, 1h) > 1"), endless]);
    let mut stream = StreamState::new(10, LATENESS);
    let mut out = Vec::new();
    let far = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(i64::MAX as u64 - 10)).unwrap();
    let mut r = reading("s", 1, &[("t", 5.0)]);
    r.time = far;
    set.evaluate(&mut stream, r, far, &mut out);
    set.check_absence(&mut stream, far, &mut out);
    assert_eq!(out.iter().map(|a| &*a.rule).collect::<Vec<_>>(), ["hot"]);
    assert_eq!(stream.next_deadline(), None, "a silence too long to represent is never due");
}

#[test]
fn a_stateless_evaluation_says_which_rules_it_could_not_check_and_why() {
    let mut line1 = spec("line1_cold", "temperature < 10");
    line1.sensors = vec!["line-1/*".into()];
    let silent = silent(Duration::from_secs(60));
    let set = rules(vec![
        spec("cold", "temperature < 10"),
        spec("acid", "pH < 4 and temperature > 0"),
        spec("hot_on_average", "avg(temperature, 10) > 30"),
        line1,
        silent,
    ]);
    let evaluation = set.evaluate_stateless(&reading("line-2", 1, &[("Temperature", 8.0)])).unwrap();
    assert_eq!(evaluation.status, crate::ALL_GOOD);
    let skipped: Vec<(&str, &str)> = evaluation.skipped.iter().map(|s| (s.rule.as_str(), s.reason.as_str())).collect();
    assert_eq!(
        skipped,
        [
            ("cold", "the reading has no `temperature`"),
            ("acid", "the reading has no `pH`, `temperature`"),
            ("hot_on_average", "its conditions use window functions, which need a stream's history of the sensor"),
            ("line1_cold", "it applies to other sensors than `line-2`"),
            ("silent", "an absence rule fires on a sensor's silence, which only a stream has"),
        ]
    );
    // A rule that looked at the reading is not listed, fired or not.
    let checked = set.evaluate_stateless(&reading("line-2", 1, &[("temperature", 20.0), ("pH", 5.0)])).unwrap();
    assert_eq!(
        checked.skipped.iter().map(|s| s.rule.as_str()).collect::<Vec<_>>(),
        ["hot_on_average", "line1_cold", "silent"]
    );
}

#[test]
fn reading_values_in_one_pass_agrees_with_validating_then_looking_up() {
    let few = RuleSet::new(vec![spec("ab", "a > 0 and b > 0")]).unwrap();
    let many_metrics: Vec<String> = (0..10).map(|i| format!("m{i} > 0")).collect();
    let many = RuleSet::new(vec![spec("ab", "a > 0 and b > 0"), spec("m", &many_metrics.join(" or "))]).unwrap();
    let long = "x".repeat(crate::validate::MAX_METRIC_NAME_BYTES + 1);
    let readings = [
        reading("s", 1, &[("a", 1.0), ("b", 2.0), ("c", 3.0)]),
        reading("s", 2, &[("b", 2.0)]),
        reading("s", 3, &[("m3", 3.0), ("a", -1.0)]),
        reading("s", 4, &[("a", 1.0), ("c", f64::NAN)]),
        reading("s", 5, &[("a", f64::INFINITY)]),
        reading("s", 6, &[("", 1.0), ("a", 1.0)]),
        reading("s", 7, &[(long.as_str(), 1.0)]),
        reading("", 8, &[("a", 1.0)]),
        reading("s", 9, &[]),
    ];
    for set in [&few, &many] {
        for reading in &readings {
            let mut slots = vec![Some(99.0); 3];
            let got = set.read_values(reading, &mut slots);
            assert_eq!(got, crate::validate::validate(reading), "{reading:?}");
            if got.is_ok() {
                let looked_up: Vec<Option<f64>> =
                    set.metrics.names().iter().map(|name| reading.values.get(name).copied()).collect();
                assert_eq!(slots, looked_up, "{reading:?}");
            }
        }
    }
}
