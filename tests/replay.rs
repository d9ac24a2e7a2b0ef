//! `alertstream replay` against the real binary: the same alerts as a live stream of the same readings (the engine
//! code is the server's), CSV in the NAB layout with its summary, and a bad line reported as `FILE:LINE`.

mod common;

use std::path::Path;

use alertstream::pb;
use common::{TestServer, stream_all};
use serde_json::Value;

const RULES: &str = r#"
[[rule]]
name = "hot"
condition = "t > 30"
resolve = "t < 28"
for = "2 readings"

[[rule]]
name = "jump"
condition = "abs(t - lag(t, 1)) > 10"
notify = "every"

[[rule]]
name = "warm_avg"
condition = "avg(t, 3) > 25"
message = "{sensor_id} averages warm at {t}"
"#;

fn replay(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_alertstream")).arg("replay").args(args).output().unwrap()
}

/// Readings of two sensors, interleaved, an hour apart from 2024-05-01T08:00:00Z.
fn readings() -> Vec<(String, u64, i64, f64)> {
    let temperatures = [20.0, 35.0, 36.0, 24.0, 27.0, 45.0, 29.0, 10.0, 31.0, 33.0, 20.0];
    let mut out = Vec::new();
    for (i, t) in temperatures.iter().enumerate() {
        for (s, sensor) in ["a", "b"].iter().enumerate() {
            let seq = (i * 2 + s + 1) as u64;
            out.push((sensor.to_string(), seq, 1_714_550_400 + seq as i64 * 3600, if s == 0 { *t } else { 60.0 - t }));
        }
    }
    out
}

fn brief(alert: &Value) -> String {
    format!(
        "{} {} {} {} {} {}",
        alert["sensor_id"].as_str().unwrap(),
        alert["rule"].as_str().unwrap(),
        alert["state"].as_str().unwrap(),
        alert["reading_seq"].as_str().unwrap(),
        alert["time"].as_str().unwrap(),
        alert["message"].as_str().unwrap()
    )
}

#[tokio::test]
async fn replay_gives_the_alerts_a_live_stream_gives_for_the_same_readings() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let recorded = dir.path().join("recorded.jsonl");
    let lines: Vec<String> = readings()
        .iter()
        .map(|(sensor, seq, seconds, t)| {
            let time = prost_types::Timestamp { seconds: *seconds, nanos: 0 };
            serde_json::json!({ "sensor_id": sensor, "seq": seq, "time": time.to_string(), "values": { "t": t } })
                .to_string()
        })
        .collect();
    std::fs::write(&recorded, lines.join("\n") + "\n").unwrap();
    let output = replay(&["--rules", rules.to_str().unwrap(), recorded.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let replayed: Vec<String> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| brief(&serde_json::from_str(l).unwrap())).collect();

    let server = TestServer::with_rules(RULES).await;
    let live_readings: Vec<pb::Reading> = readings()
        .into_iter()
        .map(|(sensor, seq, seconds, t)| pb::Reading {
            sensor_id: sensor,
            values: [("t".to_owned(), t)].into(),
            seq,
            time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        })
        .collect();
    let (alerts, status) = stream_all(&mut server.client().await, live_readings).await;
    status.unwrap();
    let live: Vec<String> = alerts
        .iter()
        .map(|a| {
            let state = pb::AlertState::try_from(a.state).unwrap().as_str_name();
            let time = a.time.unwrap().to_string();
            format!("{} {} {state} {} {time} {}", a.sensor_id, a.rule, a.reading_seq, a.message)
        })
        .collect();
    assert!(live.len() >= 10, "a workload that fires: {live:?}");
    assert_eq!(replayed, live);
}

#[test]
fn replay_reads_nab_style_csv_and_sums_up_each_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rule]]\nname = \"high\"\ncondition = \"value > 10\"\n").unwrap();
    let csv = dir.path().join("machine_temperature.csv");
    let rows = [5, 12, 13, 4, 15, 3];
    let text: String = std::iter::once("timestamp,value\n".to_owned())
        .chain(rows.iter().enumerate().map(|(i, v)| format!("2014-01-01 00:{:02}:00,{v}\n", i * 5)))
        .collect();
    std::fs::write(&csv, text).unwrap();
    let output = replay(&["--rules", rules.to_str().unwrap(), csv.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let alerts: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let shown: Vec<String> = alerts
        .iter()
        .map(|a| format!("{} {} {}", a["sensor_id"].as_str().unwrap(), a["state"].as_str().unwrap(), a["time"]))
        .collect();
    assert_eq!(
        shown,
        [
            r#"machine_temperature ALERT_STATE_FIRING "2014-01-01T00:05:00Z""#,
            r#"machine_temperature ALERT_STATE_RESOLVED "2014-01-01T00:15:00Z""#,
            r#"machine_temperature ALERT_STATE_FIRING "2014-01-01T00:20:00Z""#,
            r#"machine_temperature ALERT_STATE_RESOLVED "2014-01-01T00:25:00Z""#,
        ]
    );
    // Fired twice, for 10 + 5 minutes, and once again after resolving.
    let row = stderr.lines().find(|l| l.starts_with("high")).unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["high", "2", "15m", "1"]);
    assert!(stderr.contains("6 readings, 0 events"), "{stderr}");
}

#[test]
fn a_line_that_is_not_a_reading_is_reported_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rule]]\nname = \"high\"\ncondition = \"value > 10\"\n").unwrap();
    let recorded = dir.path().join("r.jsonl");
    std::fs::write(
        &recorded,
        "{\"sensor_id\": \"s\", \"time\": \"2024-05-01T08:00:00Z\", \"value\": 1}\n{\"value\": 2}\n",
    )
    .unwrap();
    let output = replay(&["--rules", rules.to_str().unwrap(), recorded.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = Path::new(&recorded).display().to_string();
    assert!(stderr.contains(&format!("{shown}:2: a recorded reading needs its `time`")), "{stderr}");
}
