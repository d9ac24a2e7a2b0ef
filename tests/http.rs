//! The HTTP/JSON endpoint through a real server, over a plain HTTP/1.1 connection.

mod common;

use std::net::SocketAddr;

use alertstream::config::{ServeConfig, default_rules};
use common::TestServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Sends one HTTP/1.1 request with the given content type (or none) and returns the status and JSON body.
async fn post(addr: SocketAddr, path: &str, content_type: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let content_type = content_type.map(|t| format!("Content-Type: {t}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The server may answer (413) before it reads the whole body: a failed write is not the test's concern.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete HTTP response");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON body ({e}): {body}")))
}

#[tokio::test]
async fn the_classic_client_body_without_a_content_type() {
    let server = TestServer::start().await;
    for (body, status) in [
        (json!({"temperature": 8, "pH": 4}), "temp too low"),
        (json!({"temperature": 8, "pH": 6}), "temp too low pH too high"),
        (json!({"temperature": 12, "pH": 5}), "all good"),
    ] {
        let (code, answer) = post(server.http_addr, "/v1/evaluate", None, body.to_string().as_bytes()).await;
        assert_eq!((code, answer["status"].as_str().unwrap()), (200, status), "{answer}");
    }
}

#[tokio::test]
async fn alerts_are_proto3_json() {
    let server = TestServer::start().await;
    let body = br#"{"temperature": 8.5, "pH": 6, "sensor_id": "line-1"}"#;
    let (code, answer) = post(server.http_addr, "/v1/evaluate", Some("text/plain"), body).await;
    assert_eq!(code, 200);
    let alerts = answer["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    let first = &alerts[0];
    assert_eq!(first["sensor_id"], "line-1");
    assert_eq!(first["rule"], "temp_too_low");
    assert_eq!(first["state"], "ALERT_STATE_FIRING");
    assert_eq!(first["severity"], "SEVERITY_WARNING");
    assert_eq!(first["message"], "temp too low");
    assert_eq!(first["reading_seq"], "0");
    assert_eq!(first["values"], json!({"temperature": 8.5, "pH": 6.0}));
    let time = first["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.contains('T'), "RFC 3339: {time}");
    assert_eq!(alerts[1]["rule"], "ph_too_high");

    // A reading no rule could look at is "all good", and says which rules it skipped and why.
    let (_, answer) = post(server.http_addr, "/v1/evaluate", Some("application/json"), br#"{"Temperature": 8}"#).await;
    assert_eq!(
        answer,
        json!({"status": "all good", "alerts": [], "skipped": [
            {"rule": "temp_too_low", "reason": "the reading has no `temperature`"},
            {"rule": "ph_too_high", "reason": "the reading has no `pH`"},
        ]})
    );
    let (_, answer) = post(server.http_addr, "/v1/evaluate", None, br#"{"temperature": 1}"#).await;
    assert_eq!(answer["alerts"][0]["sensor_id"], "http");
}

#[tokio::test]
async fn bad_bodies_are_400_with_a_json_error() {
    let server = TestServer::start().await;
    for (body, needle) in [
        (&b"{\"temperature\": 8,"[..], "malformed JSON"),
        (b"not json", "malformed JSON"),
        (b"[8, 4]", "must be a JSON object"),
        (br#"{"temperature": "8"}"#, "metric `temperature` must be a JSON number, not a string"),
        (br#"{"temperature": true}"#, "metric `temperature` must be a JSON number, not a boolean"),
        (br#"{"sensor_id": "s"}"#, "values is empty"),
        (br#"{"sensor_id": "", "t": 1}"#, "sensor_id is empty"),
    ] {
        let (code, answer) = post(server.http_addr, "/v1/evaluate", None, body).await;
        assert_eq!(code, 400, "{answer}");
        let error = answer["error"].as_str().unwrap_or_else(|| panic!("an error field: {answer}"));
        assert!(error.contains(needle), "{error:?} should contain {needle:?}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_with_a_json_error() {
    let config = ServeConfig { max_message_size: 1024, ..ServeConfig::default() };
    let server = TestServer::with(default_rules(), config).await;
    let body = format!("{{\"temperature\": 8, \"pad\": \"{}\"}}", "x".repeat(2048));
    let (code, answer) = post(server.http_addr, "/v1/evaluate", None, body.as_bytes()).await;
    assert_eq!(code, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("size limit"), "{answer}");
}

/// Sends one HTTP/1.1 GET and returns the status and JSON body.
async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, _, body) = common::http_get(addr, path).await;
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("JSON body ({e}): {body}")))
}

#[tokio::test]
async fn healthz_says_serving_then_not_serving_while_the_server_drains() {
    let server = TestServer::start().await;
    assert_eq!(get(server.http_addr, "/healthz").await, (200, json!({"status": "SERVING"})));
    // A stream keeps the grace period going, so the server is still draining when the probe comes.
    let (readings, mut alerts) = common::open_stream(server.channel().await).await;
    readings.send(common::reading("s", 1, &[("temperature", 8.0)])).await.unwrap();
    common::next_alert(&mut alerts).await;
    server.drain.cancel();
    // The listener still accepts while the server drains: the probe gets 503, not a refused connection.
    assert_eq!(get(server.http_addr, "/healthz").await, (503, json!({"status": "NOT_SERVING"})));
    drop(readings);
    let (_, status) = common::collect(alerts).await;
    assert!(status.is_ok(), "{status:?}");
}

#[tokio::test]
async fn v1_rules_is_the_proto3_json_of_what_grpc_list_rules_answers() {
    let rules = r#"
[[rule]]
name = "hot"
condition = "temperature > 30"
resolve = "temperature < 28"
severity = "critical"
message = "hot: {temperature}"
labels = { team = "ovens" }
for = "3 readings"
keep_firing_for = "30s"
notify = "every"
sensors = ["line-1/*", "line-2"]

[[rule]]
name = "silent"
absent_for = "1m"
"#;
    let server = TestServer::with_rules(rules).await;
    let (code, answer) = get(server.http_addr, "/v1/rules").await;
    assert_eq!(code, 200, "{answer}");
    let listed = server.client().await.list_rules(alertstream::pb::ListRulesRequest {}).await.unwrap().into_inner();
    let severity = |s: i32| alertstream::pb::Severity::try_from(s).unwrap().as_str_name().to_owned();
    let expected: Vec<Value> = listed
        .rules
        .iter()
        .map(|r| {
            json!({
                "name": r.name, "condition": r.condition, "severity": severity(r.severity), "message": r.message,
                "notify": r.notify, "for": r.r#for, "resolve": r.resolve, "keep_firing_for": r.keep_firing_for,
                "absent_for": r.absent_for, "sensors": r.sensors, "labels": r.labels,
                "resolve_message": r.resolve_message, "sinks": r.sinks,
            })
        })
        .collect();
    assert_eq!(answer, json!({ "rules": expected }));
    assert_eq!(answer["rules"][0]["severity"], "SEVERITY_CRITICAL");
    assert_eq!(answer["rules"][0]["for"], "3 readings");
    assert_eq!(answer["rules"][1]["absent_for"], "1m");
    assert_eq!(answer["rules"][0]["labels"], json!({ "team": "ovens" }));
    assert_eq!(answer["rules"][1]["resolve_message"], "resolved: silent");
}

#[tokio::test]
async fn a_body_may_carry_seq_and_time_and_take_the_grpc_json_form() {
    let server = TestServer::start().await;
    let flat = br#"{"sensor_id": "line-1", "seq": 3, "time": "2024-05-01T08:00:00Z", "temperature": 8}"#;
    let (code, answer) = post(server.http_addr, "/v1/evaluate", None, flat).await;
    assert_eq!(code, 200, "{answer}");
    let alert = &answer["alerts"][0];
    assert_eq!((&alert["reading_seq"], &alert["time"]), (&json!("3"), &json!("2024-05-01T08:00:00Z")), "{answer}");
    assert_eq!(alert["values"], json!({"temperature": 8.0}), "seq and time are not metrics: {answer}");
    let grpc_form = br#"{"sensor_id": "line-2", "values": {"temperature": 8, "pH": 6}, "seq": "9"}"#;
    let (code, answer) = post(server.http_addr, "/v1/evaluate", Some("application/json"), grpc_form).await;
    assert_eq!((code, answer["status"].as_str().unwrap()), (200, "temp too low pH too high"), "{answer}");
    assert_eq!(
        (&answer["alerts"][0]["sensor_id"], &answer["alerts"][0]["reading_seq"]),
        (&json!("line-2"), &json!("9"))
    );
    // A time further ahead of the server's clock than --max-future (1m) is refused, naming `time`.
    let future = br#"{"time": "2999-01-01T00:00:00Z", "temperature": 8}"#;
    let (code, answer) = post(server.http_addr, "/v1/evaluate", None, future).await;
    assert_eq!(code, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().starts_with("invalid reading: time is"), "{answer}");
}

#[tokio::test]
async fn an_evaluation_explains_each_alert_over_grpc_and_http_alike() {
    let rules = "[[rule]]\nname = \"acid\"\ncondition = \"pH > 5.5 and abs(temperature - 20) < 15\"\n";
    let server = TestServer::with_rules(rules).await;
    let reading = alertstream::pb::Reading {
        sensor_id: "s".into(),
        values: [("pH".to_owned(), 6.0), ("temperature".to_owned(), 25.0)].into(),
        ..Default::default()
    };
    let grpc = server.client().await.evaluate(reading).await.unwrap().into_inner();
    let terms: Vec<(String, f64, String, f64)> = grpc.alerts[0]
        .explanation
        .iter()
        .map(|t| (t.expression.clone(), t.value, t.operator.clone(), t.threshold))
        .collect();
    assert_eq!(terms, [("pH".into(), 6.0, ">".into(), 5.5), ("abs(temperature - 20)".into(), 5.0, "<".into(), 15.0)]);
    let body = br#"{"sensor_id": "s", "pH": 6, "temperature": 25}"#;
    let (code, answer) = post(server.http_addr, "/v1/evaluate", None, body).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        answer["alerts"][0]["explanation"],
        json!([
            {"expression": "pH", "value": 6.0, "operator": ">", "threshold": 5.5},
            {"expression": "abs(temperature - 20)", "value": 5.0, "operator": "<", "threshold": 15.0},
        ])
    );
}
