//! Wire types ([`pb`]) ↔ engine types: the only module that names both.
//!
//! Readings move their strings and maps into the engine without copying; alerts are built field by field.

use std::time::SystemTime;

use crate::{
    engine::{Alert, AlertState, Reading, ReadingError, Rule, Severity},
    pb,
    rules::format_hold,
    units::format_duration,
};

/// Turns a wire reading into an engine reading. A reading without a time takes `received_at`.
///
/// # Errors
/// The reading's time is outside what the system clock can represent: the reading (with the receive time) and
/// an error that names the `time` field, so the caller can report it in-band.
pub fn reading_from_pb(reading: pb::Reading, received_at: SystemTime) -> Result<Reading, Box<(Reading, ReadingError)>> {
    let pb::Reading { sensor_id, values, time, seq } = reading;
    let time = match time.map(SystemTime::try_from).transpose() {
        Ok(time) => time.unwrap_or(received_at),
        Err(e) => {
            let reading = Reading { sensor_id, values, seq, time: received_at };
            let error = ReadingError { field: "time".to_owned(), reason: format!("is out of range: {e}") };
            return Err(Box::new((reading, error)));
        }
    };
    Ok(Reading { sensor_id, values, seq, time })
}

/// Turns an engine alert into a wire alert.
pub fn alert_to_pb(alert: Alert) -> pb::Alert {
    pb::Alert {
        sensor_id: alert.sensor_id,
        rule: alert.rule.to_string(),
        state: alert_state_to_pb(alert.state) as i32,
        severity: severity_to_pb(alert.severity) as i32,
        message: alert.message.to_string(),
        reading_seq: alert.reading_seq,
        time: Some(alert.time.into()),
        values: alert.values,
    }
}

/// Shows a compiled rule whole, every key of the rules file.
pub fn rule_to_pb(rule: &Rule) -> pb::Rule {
    let spec = rule.spec();
    pb::Rule {
        name: spec.name.clone(),
        condition: spec.condition.clone().unwrap_or_default(),
        severity: severity_to_pb(spec.severity) as i32,
        message: spec.message.clone().unwrap_or_else(|| spec.name.clone()),
        notify: spec.timing.notify.as_str().to_owned(),
        r#for: spec.timing.hold.map(format_hold).unwrap_or_default(),
        resolve: spec.resolve.clone().unwrap_or_default(),
        keep_firing_for: spec.timing.keep_firing_for.map(format_hold).unwrap_or_default(),
        absent_for: spec.absent_for.map(format_duration).unwrap_or_default(),
        sensors: spec.sensors.clone(),
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

/// The proto3 JSON form of an evaluation, as the HTTP endpoint answers: the proto's own field names, enum values by
/// name, `time` in RFC 3339 and `reading_seq` (a uint64) as a string. Every field is present, defaults included.
pub fn evaluation_to_json(evaluation: &pb::Evaluation) -> serde_json::Value {
    let alerts: Vec<serde_json::Value> = evaluation.alerts.iter().map(alert_to_json).collect();
    serde_json::json!({ "status": evaluation.status, "alerts": alerts })
}

fn alert_to_json(alert: &pb::Alert) -> serde_json::Value {
    let state = pb::AlertState::try_from(alert.state).unwrap_or_default();
    let severity = pb::Severity::try_from(alert.severity).unwrap_or_default();
    serde_json::json!({
        "sensor_id": alert.sensor_id,
        "rule": alert.rule,
        "state": state.as_str_name(),
        "severity": severity.as_str_name(),
        "message": alert.message,
        "reading_seq": alert.reading_seq.to_string(),
        "time": alert.time.as_ref().map(ToString::to_string),
        "values": alert.values,
    })
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;

    #[test]
    fn a_reading_without_time_takes_the_receive_time() {
        let received_at = SystemTime::UNIX_EPOCH + Duration::from_secs(7);
        let wire = pb::Reading { sensor_id: "s".into(), values: [("t".into(), 1.0)].into(), time: None, seq: 3 };
        let reading = reading_from_pb(wire, received_at).unwrap();
        assert_eq!((reading.time, reading.seq, reading.sensor_id.as_str()), (received_at, 3, "s"));

        let sent = prost_types::Timestamp { seconds: 100, nanos: 5 };
        let wire = pb::Reading { sensor_id: "s".into(), values: [("t".into(), 1.0)].into(), time: Some(sent), seq: 0 };
        let reading = reading_from_pb(wire, received_at).unwrap();
        assert_eq!(reading.time, SystemTime::UNIX_EPOCH + Duration::new(100, 5));
    }

    #[test]
    fn an_alert_keeps_every_field() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1500);
        let alert = Alert {
            sensor_id: "s".into(),
            rule: Arc::from("hot"),
            state: AlertState::Resolved,
            severity: Severity::Critical,
            message: Arc::from("too hot"),
            reading_seq: 9,
            time,
            values: [("t".into(), 31.0)].into(),
        };
        let wire = alert_to_pb(alert);
        let json = evaluation_to_json(&pb::Evaluation { status: "too hot".into(), alerts: vec![wire.clone()] });
        assert_eq!(
            json,
            serde_json::json!({"status": "too hot", "alerts": [{
                "sensor_id": "s", "rule": "hot", "state": "ALERT_STATE_RESOLVED", "severity": "SEVERITY_CRITICAL",
                "message": "too hot", "reading_seq": "9", "time": "1970-01-01T00:00:01.500Z", "values": {"t": 31.0},
            }]})
        );
        assert_eq!(
            wire,
            pb::Alert {
                sensor_id: "s".into(),
                rule: "hot".into(),
                state: pb::AlertState::Resolved as i32,
                severity: pb::Severity::Critical as i32,
                message: "too hot".into(),
                reading_seq: 9,
                time: Some(prost_types::Timestamp { seconds: 1, nanos: 500_000_000 }),
                values: [("t".into(), 31.0)].into(),
            }
        );
    }
}
