//! Interop with clients nobody here wrote, against a real server on loopback: the real grpcurl binary (reflection
//! v1alpha, no proto file), the Python grpcio client and `requests` (clients/python), and the simulator.
//!
//! They live in the venv that `scripts/setup-venv.sh` builds (the README's test command runs it first).

mod common;

use std::{path::PathBuf, process::Output, time::Duration};

use common::TestServer;
use serde_json::Value;
use tokio::process::Command;

/// How long one client command may take before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin(name: &str) -> PathBuf {
    let path = repo().join(".venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run scripts/setup-venv.sh (the test command runs it)", path.display());
    path
}

/// Runs a command (bounded in time) and returns its output, failing the test on a non-zero exit.
async fn run(mut command: Command) -> Output {
    command.current_dir(repo()).kill_on_drop(true);
    let shown = format!("{command:?}");
    let output = tokio::time::timeout(CLIENT_TIMEOUT, command.output()).await.expect("client finishes").unwrap();
    assert!(
        output.status.success(),
        "{shown} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// One of the README's grpcurl scripts against `server`.
async fn grpcurl_script(server: &TestServer, script: &str) -> String {
    let mut command = Command::new("bash");
    command
        .arg(repo().join("clients/grpcurl").join(script))
        .env("ALERTSTREAM_ADDR", server.grpc_addr.to_string())
        .env("GRPCURL", venv_bin("grpcurl"));
    String::from_utf8(run(command).await.stdout).unwrap()
}

/// grpcurl prints each message as a JSON object; parses them all.
fn json_values(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text).into_iter::<Value>().map(Result::unwrap).collect()
}

#[tokio::test]
async fn grpcurl_lists_and_describes_through_reflection() {
    let server = TestServer::start().await;
    let listed = grpcurl_script(&server, "list.sh").await;
    let services: Vec<&str> = listed.lines().collect();
    assert_eq!(
        services,
        [
            "alertstream.v1.AlertService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );
    let described = grpcurl_script(&server, "describe.sh").await;
    for rpc in [
        "rpc Stream ( stream .alertstream.v1.Reading ) returns ( stream .alertstream.v1.Alert );",
        "rpc Evaluate ( .alertstream.v1.Reading ) returns ( .alertstream.v1.Evaluation );",
        "rpc ListRules ( .alertstream.v1.ListRulesRequest ) returns ( .alertstream.v1.ListRulesResponse );",
    ] {
        assert!(described.contains(rpc), "{rpc} in:\n{described}");
    }
}

#[tokio::test]
async fn grpcurl_evaluate_list_rules_and_health() {
    let server = TestServer::start().await;
    let evaluation = &json_values(&grpcurl_script(&server, "evaluate.sh").await)[0];
    assert_eq!(evaluation["status"], "temp too low");
    assert_eq!(evaluation["alerts"][0]["rule"], "temp_too_low");
    // grpcurl prints the proto3 JSON names (lowerCamelCase).
    assert_eq!(evaluation["alerts"][0]["sensorId"], "line-1");

    let rules = &json_values(&grpcurl_script(&server, "list_rules.sh").await)[0];
    let names: Vec<&str> = rules["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["temp_too_low", "ph_too_high"]);

    let health = &json_values(&grpcurl_script(&server, "health.sh").await)[0];
    assert_eq!(health["status"], "SERVING");
}

#[tokio::test]
async fn grpcurl_streams_readings_from_a_file() {
    let server = TestServer::start().await;
    let alerts = json_values(&grpcurl_script(&server, "stream.sh").await);
    let got: Vec<String> = alerts
        .iter()
        .map(|a| {
            let state = a["state"].as_str().unwrap().trim_start_matches("ALERT_STATE_");
            let (sensor, seq, rule) = (&a["sensorId"], &a["readingSeq"], &a["rule"]);
            format!("{} {} {} {state}", sensor.as_str().unwrap(), seq.as_str().unwrap(), rule.as_str().unwrap())
        })
        .collect();
    assert_eq!(
        got,
        [
            "line-2 2 temp_too_low FIRING",
            "line-1 3 ph_too_high FIRING",
            "line-2 4 invalid_reading FIRING",
            "line-2 5 temp_too_low RESOLVED",
            "line-1 6 temp_too_low FIRING",
            "line-1 7 temp_too_low RESOLVED",
            "line-1 7 ph_too_high RESOLVED",
            "line-2 8 ph_too_high FIRING",
        ]
    );
    // Alerts carry the reading's own time.
    assert_eq!(alerts[0]["time"], "2024-05-01T08:00:01Z");
}

#[tokio::test]
async fn python_grpcio_and_requests_clients_pass_the_interop_check() {
    let server = TestServer::start().await;
    let mut command = Command::new(venv_bin("python"));
    command
        .arg("clients/python/interop_check.py")
        .args(["--target", &server.grpc_addr.to_string()])
        .args(["--http-url", &format!("http://{}/v1/evaluate", server.http_addr)]);
    let stdout = String::from_utf8(run(command).await.stdout).unwrap();
    let passed = stdout.lines().filter(|l| l.starts_with("ok: ")).count();
    assert!(passed >= 5, "every check ran and passed:\n{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[tokio::test]
async fn the_python_simulator_streams_and_gets_consistent_alerts() {
    let server = TestServer::start().await;
    let mut command = Command::new(venv_bin("python"));
    command.arg("clients/python/sensor_sim.py").args(["--target", &server.grpc_addr.to_string()]).args([
        "--sensors",
        "4",
        "--count",
        "2000",
        "--rate",
        "0",
        "--seed",
        "7",
        "--json",
    ]);
    let stdout = String::from_utf8(run(command).await.stdout).unwrap();
    common::assert_simulated_alerts_consistent(&json_values(&stdout));
}

#[tokio::test]
async fn the_node_simulator_streams_and_gets_consistent_alerts() {
    let server = TestServer::start().await;
    assert!(repo().join("clients/node/node_modules/@grpc/grpc-js").exists(), "run scripts/setup-node.sh");
    let mut command = Command::new("node");
    command.arg("clients/node/sensor_sim.js").args(["--target", &server.grpc_addr.to_string()]);
    command.args(["--sensors", "4", "--count", "2000", "--rate", "0", "--seed", "7", "--json", "--quiet"]);
    let stdout = String::from_utf8(run(command).await.stdout).unwrap();
    common::assert_simulated_alerts_consistent(&json_values(&stdout));
}
