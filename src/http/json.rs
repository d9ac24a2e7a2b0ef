//! The JSON forms of the HTTP endpoint: a body into an engine [`Reading`], and an engine [`Evaluation`] into the
//! proto3 JSON form of `alertstream.v1.Evaluation` (the proto's own field names, enum values by name, `time` in
//! RFC 3339, the uint64 `reading_seq` as a string, every field present).

use std::time::SystemTime;

use alertstream_engine::{Alert, Evaluation, Reading, Rule, RuleSet, Values, format_duration};
use serde_json::{Value, json};

use crate::convert::{alert_state_name, severity_name, timestamp_text};

/// The sensor id of a reading whose body names none.
pub const DEFAULT_SENSOR_ID: &str = "http";

/// Reads a JSON object of metric names to numbers, with an optional string `sensor_id`; the reading is given
/// `received_at` as its time.
pub(super) fn reading_from_json(body: &[u8], received_at: SystemTime) -> Result<Reading, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err(format!(
            "the body must be a JSON object of metric names to numbers, as {{\"temperature\": 8, \"pH\": 4}}, not {}",
            json_type(&value)
        ));
    };
    let mut sensor_id = DEFAULT_SENSOR_ID.to_owned();
    let mut values = Values::with_capacity_and_hasher(object.len(), Default::default());
    for (key, value) in object {
        match (key.as_str(), value) {
            ("sensor_id", Value::String(id)) => sensor_id = id,
            ("sensor_id", other) => return Err(format!("`sensor_id` must be a string, not {}", json_type(&other))),
            (_, Value::Number(number)) => {
                let number = number.as_f64().ok_or_else(|| format!("metric `{key}` is not a finite number"))?;
                values.insert(key, number);
            }
            (_, other) => return Err(format!("metric `{key}` must be a JSON number, not {}", json_type(&other))),
        }
    }
    Ok(Reading { sensor_id, values, seq: 0, time: received_at })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The proto3 JSON form of an evaluation.
pub(super) fn evaluation_to_json(evaluation: &Evaluation) -> Value {
    let alerts: Vec<Value> = evaluation.alerts.iter().map(alert_to_json).collect();
    json!({ "status": evaluation.status, "alerts": alerts })
}

/// A rule set as the proto3 JSON of `ListRulesResponse` (every field written, as `Evaluation`'s are), the same
/// fields the gRPC `ListRules` answers with (`tests/http.rs` compares the two).
pub(super) fn rules_to_json(rules: &RuleSet) -> Value {
    let rules: Vec<Value> = rules.rules().iter().map(rule_to_json).collect();
    json!({ "rules": rules })
}

fn rule_to_json(rule: &Rule) -> Value {
    let spec = rule.spec();
    json!({
        "name": spec.name,
        "condition": spec.condition.as_deref().unwrap_or_default(),
        "severity": severity_name(spec.severity),
        "message": spec.message.as_deref().unwrap_or(&spec.name),
        "notify": spec.timing.notify.to_string(),
        "for": spec.timing.hold.map(|hold| hold.to_string()).unwrap_or_default(),
        "resolve": spec.resolve.as_deref().unwrap_or_default(),
        "keep_firing_for": spec.timing.keep_firing_for.map(|hold| hold.to_string()).unwrap_or_default(),
        "absent_for": spec.absent_for.map(format_duration).unwrap_or_default(),
        "sensors": spec.sensors,
    })
}

fn alert_to_json(alert: &Alert) -> Value {
    json!({
        "sensor_id": alert.sensor_id,
        "rule": &*alert.rule,
        "state": alert_state_name(alert.state),
        "severity": severity_name(alert.severity),
        "message": &*alert.message,
        "reading_seq": alert.reading_seq.to_string(),
        "time": timestamp_text(alert.time),
        "values": alert.values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading_from_json_now(body: &[u8]) -> Result<Reading, String> {
        reading_from_json(body, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn an_evaluation_is_proto3_json() {
        let alert = crate::convert::sample_alert();
        let json = evaluation_to_json(&Evaluation { status: "too hot".into(), alerts: vec![alert] });
        assert_eq!(
            json,
            json!({"status": "too hot", "alerts": [{
                "sensor_id": "s", "rule": "hot", "state": "ALERT_STATE_RESOLVED", "severity": "SEVERITY_CRITICAL",
                "message": "too hot", "reading_seq": "9", "time": "1970-01-01T00:00:01.500Z", "values": {"t": 31.0},
            }]})
        );
    }

    #[test]
    fn bodies_become_readings_or_name_the_problem() {
        let reading = reading_from_json_now(br#"{"temperature": 8, "pH": 4.5, "sensor_id": "line-1"}"#).unwrap();
        assert_eq!(reading.sensor_id, "line-1");
        assert_eq!(reading.values, Values::from_iter([("temperature".into(), 8.0), ("pH".into(), 4.5)]));
        assert_eq!(reading_from_json_now(br#"{"t": 1}"#).unwrap().sensor_id, "http");
        for (body, expected) in [
            (&b"{"[..], "malformed JSON: EOF while parsing an object at line 1 column 1"),
            (
                b"[1]",
                "the body must be a JSON object of metric names to numbers, as {\"temperature\": 8, \"pH\": 4}, not an array",
            ),
            (br#"{"t": "8"}"#, "metric `t` must be a JSON number, not a string"),
            (br#"{"t": null}"#, "metric `t` must be a JSON number, not null"),
            (br#"{"sensor_id": 3, "t": 1}"#, "`sensor_id` must be a string, not a number"),
        ] {
            assert_eq!(reading_from_json_now(body).unwrap_err(), expected);
        }
    }
}
