//! The HTTP/JSON endpoint: `POST /v1/evaluate` with `{"temperature": 8, "pH": 4}`, so the classic per-datapoint
//! client runs unchanged but for its URL.
//!
//! The body is taken as bytes and parsed with serde_json, whatever its content type: axum's `Json` extractor would
//! answer 415 without a JSON content type (the classic client sends none), 422 on a type error and plain-text 413.

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

use crate::{
    convert::evaluation_to_json,
    engine::Reading,
    service::{LiveRules, evaluation},
};

/// The sensor id of a reading whose body names none.
pub const DEFAULT_SENSOR_ID: &str = "http";

/// The router of the HTTP endpoint over the live `rules`; bodies over `max_body_size` bytes get 413.
pub fn router(rules: LiveRules, max_body_size: usize) -> Router {
    Router::new().route("/v1/evaluate", post(evaluate)).layer(DefaultBodyLimit::max(max_body_size)).with_state(rules)
}

async fn evaluate(State(rules): State<LiveRules>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "body is over the message size limit".to_owned());
        }
        Err(rejection) => return error(StatusCode::BAD_REQUEST, format!("cannot read the body: {rejection}")),
    };
    let reading = match reading_from_json(&body) {
        Ok(reading) => reading,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let mut alerts = Vec::new();
    let rules = Arc::clone(&rules.borrow());
    if let Err(invalid) = rules.evaluate_stateless(&reading, &mut alerts) {
        return error(StatusCode::BAD_REQUEST, invalid.to_string());
    }
    (StatusCode::OK, axum::Json(evaluation_to_json(&evaluation(alerts)))).into_response()
}

/// Reads a JSON object of metric names to numbers, with an optional string `sensor_id`.
fn reading_from_json(body: &[u8]) -> Result<Reading, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err(format!(
            "the body must be a JSON object of metric names to numbers, as {{\"temperature\": 8, \"pH\": 4}}, not {}",
            json_type(&value)
        ));
    };
    let mut sensor_id = DEFAULT_SENSOR_ID.to_owned();
    let mut values = HashMap::with_capacity(object.len());
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
    Ok(Reading { sensor_id, values, seq: 0, time: SystemTime::now() })
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

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_readings_or_name_the_problem() {
        let reading = reading_from_json(br#"{"temperature": 8, "pH": 4.5, "sensor_id": "line-1"}"#).unwrap();
        assert_eq!(reading.sensor_id, "line-1");
        assert_eq!(reading.values, HashMap::from([("temperature".into(), 8.0), ("pH".into(), 4.5)]));
        assert_eq!(reading_from_json(br#"{"t": 1}"#).unwrap().sensor_id, "http");
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
            assert_eq!(reading_from_json(body).unwrap_err(), expected);
        }
    }
}
