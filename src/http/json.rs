//! The JSON forms of the HTTP endpoint: a body into an engine [`Reading`], and an engine [`Evaluation`] into the
//! proto3 JSON form of `alertstream.v1.Evaluation` (the proto's own field names, enum values by name, `time` in
//! RFC 3339, the uint64 `reading_seq` as a string, every field present).

use std::time::SystemTime;

use alertstream_engine::{Alert, Evaluation, Reading, Rule, RuleSet, Term, Values};
use serde_json::{Value, json};

use crate::convert::{alert_state_name, severity_name, timestamp_text};

/// The sensor id of a reading whose body names none.
pub const DEFAULT_SENSOR_ID: &str = "http";

/// Reads a body in either of two forms:
///
/// - the classic flat object of metric names to numbers, `{"temperature": 8, "pH": 4}`, where `sensor_id`, `seq`
///   and `time` are the reading's own fields, not metrics;
/// - the proto3 JSON form of `alertstream.v1.Reading`, told apart by a `values` object:
///   `{"sensor_id": "line-1", "values": {"temperature": 8}, "time": "2024-05-01T08:00:00Z", "seq": "3"}`
///   (`sensorId` too, as proto3 JSON allows).
///
/// `seq` is a number or a string of one (proto3 JSON writes a uint64 as a string); `time` is RFC 3339, and without
/// one the reading is given `received_at`.
pub(crate) fn reading_from_json(body: &[u8], received_at: SystemTime) -> Result<Reading, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err(format!(
            "the body must be a JSON object of metric names to numbers, as {{\"temperature\": 8, \"pH\": 4}}, not {}",
            json_type(&value)
        ));
    };
    let proto_form = matches!(object.get("values"), Some(Value::Object(_)));
    let mut reading =
        Reading { sensor_id: DEFAULT_SENSOR_ID.to_owned(), values: Values::default(), seq: 0, time: received_at };
    for (key, value) in object {
        match key.as_str() {
            "sensor_id" => reading.sensor_id = sensor_id(value)?,
            "sensorId" if proto_form => reading.sensor_id = sensor_id(value)?,
            "seq" => reading.seq = seq(value)?,
            "time" => reading.time = time(value)?,
            "values" if proto_form => {
                let Value::Object(values) = value else { unreachable!("told apart by a `values` object") };
                for (name, value) in values {
                    let number = metric(&name, value)?;
                    alertstream_engine::insert_metric(&mut reading.values, name, number);
                }
            }
            _ if proto_form => {
                return Err(format!(
                    "unknown field `{key}` in a Reading: it has sensor_id, values, time and seq (a body without a \
                     `values` object is read as metric names to numbers)"
                ));
            }
            _ => {
                let number = metric(&key, value)?;
                alertstream_engine::insert_metric(&mut reading.values, key, number);
            }
        }
    }
    Ok(reading)
}

fn sensor_id(value: Value) -> Result<String, String> {
    match value {
        Value::String(id) => Ok(id),
        other => Err(format!("`sensor_id` must be a string, not {}", json_type(&other))),
    }
}

fn seq(value: Value) -> Result<u64, String> {
    let parsed = match &value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("`seq` must be a whole number from 0 (or a string of one), not {value}"))
}

fn time(value: Value) -> Result<SystemTime, String> {
    let Value::String(text) = &value else {
        return Err(format!("`time` must be an RFC 3339 string (2024-05-01T08:00:00Z), not {}", json_type(&value)));
    };
    let timestamp: prost_types::Timestamp =
        text.parse().map_err(|_| format!("`time` is not an RFC 3339 time (2024-05-01T08:00:00Z): {text:?}"))?;
    SystemTime::try_from(timestamp).map_err(|_| format!("`time` is out of range: {text:?}"))
}

fn metric(name: &str, value: Value) -> Result<f64, String> {
    match value {
        Value::Number(number) => number.as_f64().ok_or_else(|| format!("metric `{name}` is not a finite number")),
        other => Err(format!("metric `{name}` must be a JSON number, not {}", json_type(&other))),
    }
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
    let skipped: Vec<Value> =
        evaluation.skipped.iter().map(|s| json!({ "rule": s.rule, "reason": s.reason })).collect();
    json!({ "status": evaluation.status, "alerts": alerts, "skipped": skipped })
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
        "message": rule.message_as_written(),
        "notify": spec.timing.notify.to_string(),
        "for": rule.hold_as_written(),
        "resolve": spec.resolve.as_deref().unwrap_or_default(),
        "keep_firing_for": rule.keep_firing_for_as_written(),
        "absent_for": rule.absent_for_as_written(),
        "sensors": spec.sensors,
        "labels": spec.labels,
        "resolve_message": rule.resolve_message_as_written(),
        "sinks": spec.sinks,
    })
}

/// An alert as proto3 JSON (the proto's field names, enum values by name, `reading_seq` as a string), as the HTTP
/// answers write it.
fn alert_to_json(alert: &Alert) -> Value {
    serde_json::to_value(AlertJson { alert, stale: false }).unwrap_or_default()
}

/// An alert's explanation as proto3 JSON: its terms, a `double` that is not finite written as proto3 JSON writes it
/// (`"NaN"`, `"Infinity"`, `"-Infinity"`).
struct Explanation<'a>(&'a [Term]);

impl serde::Serialize for Explanation<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap as _, SerializeSeq as _};
        struct Double(f64);
        impl serde::Serialize for Double {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self.0 {
                    v if v.is_nan() => serializer.serialize_str("NaN"),
                    v if v == f64::INFINITY => serializer.serialize_str("Infinity"),
                    v if v == f64::NEG_INFINITY => serializer.serialize_str("-Infinity"),
                    v => serializer.serialize_f64(v),
                }
            }
        }
        let mut terms = serializer.serialize_seq(Some(self.0.len()))?;
        for term in self.0 {
            struct TermJson<'a>(&'a Term);
            impl serde::Serialize for TermJson<'_> {
                fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    let mut map = serializer.serialize_map(Some(4))?;
                    map.serialize_entry("expression", &*self.0.expression)?;
                    map.serialize_entry("value", &Double(self.0.value))?;
                    map.serialize_entry("operator", self.0.operator)?;
                    map.serialize_entry("threshold", &Double(self.0.threshold))?;
                    map.end()
                }
            }
            terms.serialize_element(&TermJson(term))?;
        }
        terms.end()
    }
}

/// An alert serialised as proto3 JSON straight from the engine's form, with no intermediate [`Value`]: what the
/// sinks write, once per alert. A stale RESOLVED (its stream ended while it fired) adds `"stale": true`.
pub(crate) struct AlertJson<'a> {
    pub(crate) alert: &'a Alert,
    pub(crate) stale: bool,
}

impl serde::Serialize for AlertJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let alert = self.alert;
        let mut map = serializer.serialize_map(Some(9 + usize::from(self.stale)))?;
        map.serialize_entry("sensor_id", &alert.sensor_id)?;
        map.serialize_entry("rule", &*alert.rule)?;
        map.serialize_entry("state", alert_state_name(alert.state))?;
        map.serialize_entry("severity", severity_name(alert.severity))?;
        map.serialize_entry("message", &*alert.message)?;
        map.serialize_entry("reading_seq", &alert.reading_seq.to_string())?;
        map.serialize_entry("time", &timestamp_text(alert.time))?;
        map.serialize_entry("values", &alert.values)?;
        map.serialize_entry("explanation", &Explanation(&alert.explanation))?;
        if self.stale {
            map.serialize_entry("stale", &true)?;
        }
        map.end()
    }
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
        let skipped =
            vec![alertstream_engine::Skipped { rule: "cold".into(), reason: "the reading has no `t`".into() }];
        let json = evaluation_to_json(&Evaluation { status: "too hot".into(), alerts: vec![alert], skipped });
        assert_eq!(
            json,
            json!({"status": "too hot", "alerts": [{
                "sensor_id": "s", "rule": "hot", "state": "ALERT_STATE_RESOLVED", "severity": "SEVERITY_CRITICAL",
                "message": "too hot", "reading_seq": "9", "time": "1970-01-01T00:00:01.500Z", "values": {"t": 31.0},
                "explanation": [{"expression": "avg(t, 3)", "value": 27.5, "operator": "<", "threshold": 28.0}],
            }], "skipped": [{"rule": "cold", "reason": "the reading has no `t`"}]})
        );
        // A score that is not finite is written as proto3 JSON writes such a double.
        let mut alert = crate::convert::sample_alert();
        alert.explanation[0].value = f64::INFINITY;
        alert.explanation[0].threshold = f64::NAN;
        let json = serde_json::to_value(AlertJson { alert: &alert, stale: false }).unwrap();
        assert_eq!(json["explanation"][0]["value"], "Infinity");
        assert_eq!(json["explanation"][0]["threshold"], "NaN");
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
            (br#"{"seq": -1, "t": 1}"#, "`seq` must be a whole number from 0 (or a string of one), not -1"),
            (br#"{"seq": 1.5, "t": 1}"#, "`seq` must be a whole number from 0 (or a string of one), not 1.5"),
            (br#"{"time": 5, "t": 1}"#, "`time` must be an RFC 3339 string (2024-05-01T08:00:00Z), not a number"),
            (
                br#"{"time": "yesterday", "t": 1}"#,
                "`time` is not an RFC 3339 time (2024-05-01T08:00:00Z): \"yesterday\"",
            ),
            (
                br#"{"values": {"t": 1}, "unit": "C"}"#,
                "unknown field `unit` in a Reading: it has sensor_id, values, time and seq (a body without a `values` \
                 object is read as metric names to numbers)",
            ),
            (br#"{"values": {"t": "1"}}"#, "metric `t` must be a JSON number, not a string"),
        ] {
            assert_eq!(reading_from_json_now(body).unwrap_err(), expected, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn a_body_of_more_metrics_than_the_limit_fills_its_map_only_one_past_it() {
        let limit = alertstream_engine::MAX_METRICS;
        let names = |count: usize| (0..count).map(|i| format!("\"m{i}\": 1")).collect::<Vec<_>>().join(", ");
        for body in [format!("{{{}}}", names(3 * limit)), format!("{{\"values\": {{{}}}}}", names(3 * limit))] {
            let reading = reading_from_json_now(body.as_bytes()).unwrap();
            assert_eq!(reading.values.len(), limit + 1);
            assert!(alertstream_engine::validate(&reading).is_err());
        }
    }

    #[test]
    fn seq_and_time_are_the_readings_own_and_the_grpc_json_form_is_accepted() {
        let at = |s: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        let flat = reading_from_json_now(br#"{"seq": 3, "time": "2024-05-01T08:00:00Z", "temperature": 8}"#).unwrap();
        assert_eq!((flat.seq, flat.time), (3, at(1_714_550_400)));
        assert_eq!(flat.values, Values::from_iter([("temperature".into(), 8.0)]));
        let proto = br#"{"sensor_id": "x", "values": {"temperature": 8, "seq": 2}, "seq": "7", "time": "2024-05-01T08:00:01.5Z"}"#;
        let proto = reading_from_json_now(proto).unwrap();
        assert_eq!((proto.sensor_id.as_str(), proto.seq), ("x", 7));
        assert_eq!(proto.time, at(1_714_550_401) + std::time::Duration::from_millis(500));
        // Inside `values`, `seq` is a metric like any other.
        assert_eq!(proto.values, Values::from_iter([("temperature".into(), 8.0), ("seq".into(), 2.0)]));
        let camel = reading_from_json_now(br#"{"sensorId": "y", "values": {"t": 1}}"#).unwrap();
        assert_eq!((camel.sensor_id.as_str(), camel.time), ("y", SystemTime::UNIX_EPOCH));
        // Without a `values` object, `values` is a metric.
        let flat_values = reading_from_json_now(br#"{"values": 2}"#).unwrap();
        assert_eq!(flat_values.values, Values::from_iter([("values".into(), 2.0)]));
    }
}
