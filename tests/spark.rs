//! The JSON-lines sink read by real Spark Structured Streaming (pyspark from PyPI, in the venv that
//! `scripts/setup-venv.sh` builds; Java 17 from the machine): a streaming query over the sink's directory counts the
//! alerts per rule and state while the server writes them, and the counts are exactly what the server sent
//! (`clients/python/spark_check.py`).

mod common;

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::Duration};

use alertstream::{
    config::ServeConfig,
    pb,
    sinks::{SinkOptions, Sinks},
    telemetry::Telemetry,
};
use common::{TestServer, reading, stream_all};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn spark_streaming_counts_exactly_the_alerts_the_server_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // Small files, so that several complete while Spark watches.
    let rules = format!(
        "{}\n[[sink]]\nname = \"lake\"\ntype = \"jsonl\"\ndir = \"{}\"\nmax_file_bytes = 4096\n",
        alertstream::config::DEFAULT_RULES,
        lake.display()
    );
    let file = alertstream_rules::parse("spark.toml", &rules).unwrap();
    let sinks = Sinks::new(Telemetry::off(), SinkOptions::default());
    sinks.apply(&file.sinks, &file.rules).unwrap();
    let server = TestServer::with(file.rules, ServeConfig { sinks: sinks.clone(), ..ServeConfig::default() }).await;
    std::fs::create_dir_all(&lake).unwrap();

    let python = repo().join(".venv/bin/python");
    assert!(python.exists(), "run scripts/setup-venv.sh (the test command runs it)");
    let mut spark = tokio::process::Command::new(python)
        .arg(repo().join("clients/python/spark_check.py"))
        .args(["--dir", lake.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(spark.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(180), lines.next_line()).await.expect("Spark starts");
    assert_eq!(ready.unwrap().as_deref(), Some("ready"));

    // The server writes while the query runs: crossings of both thresholds by several sensors.
    let mut client = server.client().await;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..4u64 {
        let readings: Vec<pb::Reading> = (0..50u64)
            .map(|i| {
                let low = (i + round) % 2 == 0;
                let values = [("temperature", if low { 5.0 } else { 15.0 }), ("pH", if low { 6.0 } else { 5.0 })];
                reading(&format!("line-{}", i % 5), round * 100 + i + 1, &values)
            })
            .collect();
        let (alerts, status) = stream_all(&mut client, readings).await;
        status.unwrap();
        for alert in alerts {
            let state = pb::AlertState::try_from(alert.state).unwrap().as_str_name().trim_start_matches("ALERT_STATE_");
            *expected.entry(format!("{} {state}", alert.rule)).or_default() += 1;
        }
    }
    assert!(expected.len() >= 4, "both rules fired and resolved: {expected:?}");
    // The last file completes when the sinks flush.
    sinks.flush().await;
    let mut stdin = spark.stdin.take().unwrap();
    stdin.write_all(format!("{}\n", serde_json::to_string(&expected).unwrap()).as_bytes()).await.unwrap();
    drop(stdin);
    let verdict = tokio::time::timeout(Duration::from_secs(180), lines.next_line()).await.expect("Spark answers");
    let verdict = verdict.unwrap().unwrap_or_default();
    assert!(verdict.starts_with("OK "), "{verdict}");
    assert!(spark.wait().await.unwrap().success());
}
