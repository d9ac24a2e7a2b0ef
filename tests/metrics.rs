//! Prometheus metrics through a real server: exact counts after a known workload, a stream's counts flushed while
//! it is still open, and Debian's `promtool check metrics` on the exposition (installed by the README's test
//! command, `scripts/setup-tools.sh`).

mod common;

use std::{collections::BTreeMap, process::Stdio};

use alertstream::{
    config::{ServeConfig, default_rules},
    pb::{self, alert_service_client::AlertServiceClient},
    telemetry::{Telemetry, stream::FLUSH_EVERY},
};
use common::{TestServer, brief, collect, next_alert, open_stream, reading, scrape, stream_all};
use tokio::io::AsyncWriteExt;

fn value(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    *samples.get(name).unwrap_or_else(|| panic!("no sample {name}; have:\n{}", lines(samples)))
}

fn lines(samples: &BTreeMap<String, f64>) -> String {
    samples.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join("\n")
}

fn grpc(metric: &str, kind: &str, service: &str, method: &str, code: Option<&str>) -> String {
    let code = code.map(|c| format!(",grpc_code=\"{c}\"")).unwrap_or_default();
    format!("{metric}{{grpc_type=\"{kind}\",grpc_service=\"{service}\",grpc_method=\"{method}\"{code}}}")
}

const SERVICE: &str = "alertstream.v1.AlertService";

#[tokio::test]
async fn a_known_workload_is_counted_exactly_and_promtool_accepts_the_exposition() {
    let config = ServeConfig { telemetry: Telemetry::on(), ..ServeConfig::default() };
    let server = TestServer::with(default_rules(), config).await;
    let channel = server.channel().await;
    let mut client = AlertServiceClient::new(channel.clone());

    // Stream 1: fires, resolves, then an invalid reading.
    let readings = vec![
        reading("s1", 1, &[("temperature", 5.0)]),
        reading("s1", 2, &[("temperature", 20.0)]),
        reading("s1", 3, &[("temperature", f64::NAN)]),
    ];
    let (alerts, status) = stream_all(&mut client, readings).await;
    assert_eq!(alerts.len(), 3, "{status:?}");
    // Stream 2: fires, then a reading 90 s behind its sensor's latest (late).
    let readings = vec![reading("s2", 100, &[("temperature", 5.0)]), reading("s2", 10, &[("temperature", 5.0)])];
    let (alerts, status) = stream_all(&mut client, readings).await;
    assert_eq!(
        alerts.iter().map(brief).collect::<Vec<_>>(),
        ["s2 100 temp_too_low FIRING", "s2 10 late_reading FIRING"]
    );
    assert!(status.is_ok());
    // Unary calls: one good, one invalid; the rules listed.
    client.evaluate(reading("u", 1, &[("temperature", 8.0)])).await.unwrap();
    client.evaluate(pb::Reading { sensor_id: "u".into(), ..Default::default() }).await.unwrap_err();
    client.list_rules(pb::ListRulesRequest {}).await.unwrap();

    // Stream 3 stays open past a flush: one alert per reading, all read before the scrape.
    let readings_3 = u64::from(FLUSH_EVERY) + 6;
    let (sender, mut stream_3) = open_stream(channel.clone()).await;
    for seq in 1..=readings_3 {
        sender.send(reading("s3", seq, &[("temperature", if seq % 2 == 1 { 5.0 } else { 20.0 })])).await.unwrap();
        next_alert(&mut stream_3).await;
    }
    let (_, open) = scrape(&server).await;
    // Streams 1 and 2 flushed when they ended; stream 3 at its 1,024th reading.
    assert_eq!(value(&open, "alertstream_readings_total"), f64::from(5 + FLUSH_EVERY));
    assert_eq!(value(&open, "alertstream_active_streams"), 1.0);
    assert_eq!(value(&open, "alertstream_active_sensors"), 1.0);

    drop(sender);
    let (rest, status) = collect(stream_3).await;
    assert!(rest.is_empty() && status.is_ok(), "{rest:?} {status:?}");
    let (text, samples) = scrape(&server).await;
    let stream = |metric| grpc(metric, "bidi_stream", SERVICE, "Stream", None);
    let evaluate = |metric| grpc(metric, "unary", SERVICE, "Evaluate", None);
    let expected = [
        (stream("grpc_server_started_total"), 3.0),
        (grpc("grpc_server_handled_total", "bidi_stream", SERVICE, "Stream", Some("OK")), 3.0),
        // Every reading received and every alert sent is a message.
        (stream("grpc_server_msg_received_total"), 5.0 + readings_3 as f64),
        (stream("grpc_server_msg_sent_total"), 5.0 + readings_3 as f64),
        (stream("grpc_server_handling_seconds_count"), 3.0),
        (evaluate("grpc_server_started_total"), 2.0),
        (grpc("grpc_server_handled_total", "unary", SERVICE, "Evaluate", Some("OK")), 1.0),
        (grpc("grpc_server_handled_total", "unary", SERVICE, "Evaluate", Some("InvalidArgument")), 1.0),
        (evaluate("grpc_server_msg_received_total"), 2.0),
        (evaluate("grpc_server_msg_sent_total"), 1.0),
        (grpc("grpc_server_handled_total", "unary", SERVICE, "ListRules", Some("OK")), 1.0),
        ("alertstream_readings_total".to_owned(), 5.0 + readings_3 as f64),
        // s1 and s2 fire once each, s3 on every odd reading.
        ("alertstream_alerts_total{rule=\"temp_too_low\",state=\"firing\"}".to_owned(), 2.0 + (readings_3 / 2) as f64),
        (
            "alertstream_alerts_total{rule=\"temp_too_low\",state=\"resolved\"}".to_owned(),
            1.0 + (readings_3 / 2) as f64,
        ),
        ("alertstream_alerts_total{rule=\"invalid_reading\",state=\"firing\"}".to_owned(), 1.0),
        ("alertstream_alerts_total{rule=\"late_reading\",state=\"firing\"}".to_owned(), 1.0),
        ("alertstream_invalid_readings_total".to_owned(), 1.0),
        ("alertstream_late_readings_total".to_owned(), 1.0),
        ("alertstream_active_streams".to_owned(), 0.0),
        ("alertstream_active_sensors".to_owned(), 0.0),
        ("alertstream_open_connections".to_owned(), 1.0),
        // One reading in 64 is timed: all of them on stream 3.
        ("alertstream_evaluation_seconds_count".to_owned(), (readings_3 / 64) as f64),
    ];
    for (name, want) in &expected {
        assert_eq!(value(&samples, name), *want, "{name}");
    }
    assert!(!text.contains("sensor_id") && !text.contains("s3"), "a sensor id is never a label:\n{text}");
    assert!(text.contains("grpc_server_handling_seconds_bucket{"), "a histogram with buckets:\n{text}");

    // promtool, Prometheus' own checker, accepts the exposition.
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/setup-tools.sh installs Debian's prometheus package)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).await.unwrap();
    let checked = promtool.wait_with_output().await.unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[tokio::test]
async fn rules_reloads_are_counted_by_result() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, "[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\n").unwrap();
    let server = common::binary::Binary::start(&["--rules", path.to_str().unwrap(), "--metrics-listen", "127.0.0.1:0"]);
    let metrics = server.metrics_addr().await;
    let replace = |text: &str| {
        let staged = path.with_extension("staged");
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(&staged, &path).unwrap();
    };
    replace("[[rule]]\nname = \"hot\"\ncondition = \"t >> 30\"\n");
    server.wait_for_log("Rejected the rules file").await;
    replace("[[rule]]\nname = \"hot\"\ncondition = \"t > 31\"\n");
    server.wait_for_log("Reloaded rules.").await;
    let (_, _, text) = common::http_get(metrics, "/metrics").await;
    let samples = common::samples(&text);
    let counted =
        |result: &str| samples.get(&format!("alertstream_rules_reloads_total{{result=\"{result}\"}}")).copied();
    assert_eq!((counted("error"), counted("ok")), (Some(1.0), Some(1.0)), "{text}");
}
