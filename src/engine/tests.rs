//! Tests of the engine facade: whole rule sets over sequences of readings.

use std::time::{Duration, SystemTime};

use super::*;

fn spec(name: &str, condition: &str) -> RuleSpec {
    RuleSpec {
        name: name.to_owned(),
        condition: condition.to_owned(),
        severity: Severity::Warning,
        message: None,
        notify: Notify::Change,
        hold: None,
    }
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
    let mut stream = StreamState::new(max_sensors);
    let mut out = Vec::new();
    for reading in readings {
        rules.evaluate(&mut stream, reading, &mut out);
    }
    out.iter()
        .map(|a| {
            let state = if a.state == AlertState::Firing { "FIRING" } else { "RESOLVED" };
            format!("{} {} {} {state}", a.sensor_id, a.reading_seq, a.rule)
        })
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
    classic().evaluate(&mut StreamState::new(10), &r, &mut out);
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
        }]
    );
}

#[test]
fn stateless_evaluation_is_the_classic_example() {
    let rules = classic();
    for (temperature, ph, expected) in
        [(8.0, 4.0, vec!["temp too low"]), (8.0, 6.0, vec!["temp too low", "pH too high"]), (12.0, 5.0, vec![])]
    {
        let mut out = Vec::new();
        rules.evaluate_stateless(&reading("s", 0, &[("temperature", temperature), ("pH", ph)]), &mut out).unwrap();
        let messages: Vec<&str> = out.iter().map(|a| &*a.message).collect();
        assert_eq!(messages, expected);
    }
    let invalid = rules.evaluate_stateless(&reading("", 0, &[("temperature", 1.0)]), &mut Vec::new());
    assert_eq!(invalid.unwrap_err().field, "sensor_id");
}

#[test]
fn stateless_evaluation_ignores_for() {
    let mut held = spec("held", "temperature < 10");
    held.hold = Some(Hold::Readings(5));
    let rules = RuleSet::new(vec![held]).unwrap();
    let mut out = Vec::new();
    rules.evaluate_stateless(&reading("s", 0, &[("temperature", 1.0)]), &mut out).unwrap();
    assert_eq!(out.len(), 1);
}

#[test]
fn rule_set_errors_are_all_reported() {
    let errors =
        RuleSet::new(vec![spec("a", "x > 1"), spec("a", "x >"), spec("invalid_reading", "x > 1"), spec("", "x + 1")])
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
        ]
    );
    assert_eq!(RuleSet::new(vec![]).unwrap_err(), [RuleSetError::Empty]);
}

#[test]
fn line_col_counts_characters_from_one() {
    assert_eq!(line_col("abc", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("é > x", 3), (1, 3));
}
