//! Wire types ([`pb`]) ↔ engine types: the only module that names both, and it imports nothing else of this
//! crate. gRPC ([`crate::service`]) and HTTP ([`crate::http`]) each build their answers from the engine's, through it.
//!
//! Readings move their strings and maps into the engine without copying; alerts are built field by field.

use std::time::SystemTime;

use alertstream_engine::{Alert, AlertState, Evaluation, Reading, ReadingError, Rule, Severity, Term, values_from};

use crate::pb;
use crate::stream_codec::InboundReading;

/// Turns a wire reading into an engine reading. A reading without a time takes the receive time, which
/// `received_at` is asked for only then.
///
/// # Errors
/// The reading's time is outside what the system clock can represent, or (streamed) its values had more than
/// `MAX_METRICS` entries on the wire: the reading (with the receive time) and an error that names the field, so the
/// caller can report it in-band.
pub fn reading_from_pb(
    reading: pb::Reading,
    received_at: impl FnOnce() -> SystemTime,
) -> Result<Reading, Box<(Reading, ReadingError)>> {
    let pb::Reading { sensor_id, values, time, seq } = reading;
    let inbound = InboundReading { sensor_id, values: values_from(values), time, seq, over_limit: false };
    reading_from_inbound(inbound, received_at)
}

/// Turns a streamed reading (its values already the engine's map) into an engine reading, as [`reading_from_pb`].
///
/// # Errors
/// As [`reading_from_pb`].
pub fn reading_from_inbound(
    reading: InboundReading,
    received_at: impl FnOnce() -> SystemTime,
) -> Result<Reading, Box<(Reading, ReadingError)>> {
    let InboundReading { sensor_id, values, time, seq, over_limit } = reading;
    if over_limit {
        let reading = Reading { sensor_id, values, seq, time: received_at() };
        // The sensor id's problems first, in `validate`'s order; then the count.
        let error = alertstream_engine::validate(&reading)
            .err()
            .filter(|error| error.field == "sensor_id")
            .unwrap_or_else(alertstream_engine::too_many_metrics);
        return Err(Box::new((reading, error)));
    }
    let time = match time.map(SystemTime::try_from).transpose() {
        Ok(Some(time)) => time,
        Ok(None) => received_at(),
        Err(e) => {
            let reading = Reading { sensor_id, values, seq, time: received_at() };
            let error = ReadingError { field: "time".to_owned(), reason: format!("is out of range: {e}") };
            return Err(Box::new((reading, error)));
        }
    };
    Ok(Reading { sensor_id, values, seq, time })
}

/// Turns an engine alert into a wire alert.
pub fn alert_to_pb(alert: Alert) -> pb::Alert {
    pb::Alert {
        sensor_id: alert.sensor_id.into(),
        rule: alert.rule.to_string(),
        state: alert_state_to_pb(alert.state) as i32,
        severity: severity_to_pb(alert.severity) as i32,
        message: alert.message.to_string(),
        reading_seq: alert.reading_seq,
        time: Some(alert.time.into()),
        values: alert.values.into_iter().collect(),
        explanation: alert.explanation.iter().map(term_to_pb).collect(),
    }
}

/// The wire form of an explanation's term.
pub fn term_to_pb(term: &Term) -> pb::Term {
    pb::Term {
        expression: term.expression.to_string(),
        value: term.value,
        operator: term.operator.to_owned(),
        threshold: term.threshold,
    }
}

/// Shows a compiled rule whole, every key of the rules file.
pub fn rule_to_pb(rule: &Rule) -> pb::Rule {
    let spec = rule.spec();
    pb::Rule {
        name: spec.name.clone(),
        condition: spec.condition.clone().unwrap_or_default(),
        severity: severity_to_pb(spec.severity) as i32,
        message: rule.message_as_written(),
        notify: spec.timing.notify.to_string(),
        r#for: rule.hold_as_written(),
        resolve: spec.resolve.clone().unwrap_or_default(),
        keep_firing_for: rule.keep_firing_for_as_written(),
        absent_for: rule.absent_for_as_written(),
        sensors: spec.sensors.clone(),
        labels: spec.labels.clone().into_iter().collect(),
        resolve_message: rule.resolve_message_as_written(),
        sinks: spec.sinks.clone(),
    }
}

/// The wire form of a severity.
pub fn severity_to_pb(severity: Severity) -> pb::Severity {
    match severity {
        Severity::Info => pb::Severity::Info,
        Severity::Warning => pb::Severity::Warning,
        Severity::Critical => pb::Severity::Critical,
    }
}

/// The wire form of an alert state.
pub fn alert_state_to_pb(state: AlertState) -> pb::AlertState {
    match state {
        AlertState::Firing => pb::AlertState::Firing,
        AlertState::Resolved => pb::AlertState::Resolved,
    }
}

/// The wire form of a stateless evaluation.
pub fn evaluation_to_pb(evaluation: Evaluation) -> pb::Evaluation {
    pb::Evaluation {
        status: evaluation.status,
        alerts: evaluation.alerts.into_iter().map(alert_to_pb).collect(),
        skipped: evaluation.skipped.into_iter().map(|s| pb::Skipped { rule: s.rule, reason: s.reason }).collect(),
    }
}

/// A time as proto3 JSON writes a `google.protobuf.Timestamp`: RFC 3339 in UTC (`1970-01-01T00:00:01.500Z`).
pub fn timestamp_text(time: SystemTime) -> String {
    prost_types::Timestamp::from(time).to_string()
}

/// The proto's name of an alert state (`ALERT_STATE_FIRING`), as proto3 JSON writes enum values.
pub fn alert_state_name(state: AlertState) -> &'static str {
    alert_state_to_pb(state).as_str_name()
}

/// The proto's name of a severity (`SEVERITY_WARNING`), as proto3 JSON writes enum values.
pub fn severity_name(severity: Severity) -> &'static str {
    severity_to_pb(severity).as_str_name()
}

/// One alert with every field set, for the tests of the wire forms (here and in `http::json`): resolved, critical,
/// seq 9, at 1.5 s after the epoch, one value.
#[cfg(test)]
pub(crate) fn sample_alert() -> Alert {
    Alert {
        sensor_id: "s".into(),
        rule: std::sync::Arc::from("hot"),
        state: AlertState::Resolved,
        severity: Severity::Critical,
        message: std::sync::Arc::from("too hot"),
        reading_seq: 9,
        time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1500),
        values: [("t".into(), 31.0)].into_iter().collect(),
        explanation: Box::new([alertstream_engine::Term {
            expression: std::sync::Arc::from("avg(t, 3)"),
            value: 27.5,
            operator: "<",
            threshold: 28.0,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_reading_without_time_takes_the_receive_time() {
        let received_at = SystemTime::UNIX_EPOCH + Duration::from_secs(7);
        let wire = pb::Reading { sensor_id: "s".into(), values: [("t".into(), 1.0)].into(), time: None, seq: 3 };
        let reading = reading_from_pb(wire, || received_at).unwrap();
        assert_eq!((reading.time, reading.seq, reading.sensor_id.as_str()), (received_at, 3, "s"));

        let sent = prost_types::Timestamp { seconds: 100, nanos: 5 };
        let wire = pb::Reading { sensor_id: "s".into(), values: [("t".into(), 1.0)].into(), time: Some(sent), seq: 0 };
        let reading = reading_from_pb(wire, || unreachable!("the reading has a time")).unwrap();
        assert_eq!(reading.time, SystemTime::UNIX_EPOCH + Duration::new(100, 5));
    }

    #[test]
    fn an_alert_keeps_every_field() {
        let alert = sample_alert();
        let time = alert.time;
        let skipped =
            vec![alertstream_engine::Skipped { rule: "cold".into(), reason: "the reading has no `t`".into() }];
        let wire = evaluation_to_pb(Evaluation { status: "too hot".into(), alerts: vec![alert], skipped });
        assert_eq!(wire.status, "too hot");
        assert_eq!(wire.skipped, [pb::Skipped { rule: "cold".into(), reason: "the reading has no `t`".into() }]);
        assert_eq!(
            wire.alerts[0],
            pb::Alert {
                sensor_id: "s".into(),
                rule: "hot".into(),
                state: pb::AlertState::Resolved as i32,
                severity: pb::Severity::Critical as i32,
                message: "too hot".into(),
                reading_seq: 9,
                time: Some(prost_types::Timestamp { seconds: 1, nanos: 500_000_000 }),
                values: [("t".into(), 31.0)].into_iter().collect(),
                explanation: vec![pb::Term {
                    expression: "avg(t, 3)".into(),
                    value: 27.5,
                    operator: "<".into(),
                    threshold: 28.0
                }],
            }
        );
        assert_eq!(timestamp_text(time), "1970-01-01T00:00:01.500Z");
        assert_eq!(alert_state_name(AlertState::Firing), "ALERT_STATE_FIRING");
        assert_eq!(severity_name(Severity::Info), "SEVERITY_INFO");
    }
}
