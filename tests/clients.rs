//! Interop with clients nobody here wrote, against a real server on loopback: the real grpcurl binary (reflection
//! v1alpha, no proto file), the Python grpcio client and `requests`, the Python package's streaming helper across a
//! reconnect (clients/python), the Node client (clients/node), and the simulators.
//!
//! They live in the venv that `scripts/setup-venv.sh` builds (the README's test command runs it first).

mod common;

use std::{
    path::PathBuf,
    process::{Output, Stdio},
    time::Duration,
};

use alertstream::{
    clock::{Clock, ManualClock},
    config::{ServeConfig, default_rules},
    connections::ConnectionPolicy,
};
use common::TestServer;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::Command,
};

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

/// A server with the default rules whose connections reach their maximum age (100 s) once `clock` is moved past it.
/// The clock starts at the system's time, which the clients stamp their readings with.
async fn aging_server() -> (TestServer, ManualClock) {
    let clock = ManualClock::new(Clock::System.now());
    let connections =
        ConnectionPolicy { max_age: Some(Duration::from_secs(100)), ..ServeConfig::default().connections };
    let config = ServeConfig { clock: Clock::Manual(clock.clone()), connections, ..ServeConfig::default() };
    (TestServer::with(default_rules(), config).await, clock)
}

/// Runs `command` until it prints a line that starts with `cue`, then ages the server's connections (GOAWAY, and its
/// stream ends UNAVAILABLE) and waits for the command to finish; fails the test unless it exits 0.
async fn across_a_reconnect(mut command: Command, clock: &ManualClock, cue: &str) -> Output {
    command.current_dir(repo()).kill_on_drop(true).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(CLIENT_TIMEOUT, stdout.next_line()).await.expect("the cue comes").unwrap();
        let line = line.unwrap_or_else(|| panic!("ended before `{cue}`: {seen:?}"));
        let cued = line.starts_with(cue);
        seen.push(line);
        if cued {
            break;
        }
    }
    clock.advance(Duration::from_secs(111));
    let rest = tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            seen.push(line);
        }
        seen.join("\n")
    });
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output()).await.expect("it finishes").unwrap();
    let stdout = rest.await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}:\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    Output { stdout: stdout.into_bytes(), ..output }
}

/// The package's helper, blocking or asyncio, across the server's end of a stream: it opens another and sends the
/// next reading there (`clients/python/reconnect_check.py` says what it checks).
async fn python_helper_reconnects(mode: &str) {
    let (server, clock) = aging_server().await;
    let mut command = Command::new(venv_bin("python"));
    command.arg("clients/python/reconnect_check.py").args(["--target", &server.grpc_addr.to_string(), "--mode", mode]);
    let output = across_a_reconnect(command, &clock, "first alert").await;
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("OK: alerts ['temp_too_low FIRING 1', 'temp_too_low FIRING 2', 'temp_too_low RESOLVED 3']"),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_python_helper_reconnects_and_resumes_blocking() {
    python_helper_reconnects("sync").await;
}

#[tokio::test]
async fn the_python_helper_reconnects_and_resumes_under_asyncio() {
    python_helper_reconnects("async").await;
}

#[tokio::test]
async fn the_python_simulator_goes_on_over_a_new_stream_when_the_server_ends_its_own() {
    let (server, clock) = aging_server().await;
    let mut command = Command::new(venv_bin("python"));
    command.arg("clients/python/sensor_sim.py").args(["--target", &server.grpc_addr.to_string()]);
    command.args(["--sensors", "4", "--count", "400", "--rate", "100", "--seed", "7"]);
    let output = across_a_reconnect(command, &clock, "FIRING").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("invalid_reading"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the stream ended (UNAVAILABLE: connection reached its maximum age"), "{stderr}");
    assert!(stderr.contains("sent 400 readings from 4 sensor(s)") && stderr.contains(", 1 reconnects"), "{stderr}");
}

/// What an example says it prints: its trailing comment lines (`# ...` or `// ...`), without the marker.
fn promised_output(source: &str) -> Vec<String> {
    let promised: Vec<String> = source
        .lines()
        .rev()
        .map_while(|line| line.strip_prefix("# ").or_else(|| line.strip_prefix("// ")))
        .map(str::to_owned)
        .collect();
    promised.into_iter().rev().collect()
}

#[tokio::test]
async fn the_readme_client_examples_are_shown_whole_and_print_what_they_say() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let server = TestServer::start().await;
    let target = server.grpc_addr.to_string();
    for (example, runner) in
        [("clients/python/example.py", venv_bin("python")), ("clients/node/example.js", PathBuf::from("node"))]
    {
        let source = std::fs::read_to_string(repo().join(example)).unwrap();
        assert!(readme.contains(&source), "README.md shows {example} as it is");
        let mut command = Command::new(runner);
        command.arg(example).arg(&target);
        let stdout = String::from_utf8(run(command).await.stdout).unwrap();
        let promised = promised_output(&source);
        assert_eq!(stdout.lines().collect::<Vec<_>>(), promised, "{example}");
        assert_eq!(promised.len(), 2, "{example}: FIRING and RESOLVED");
    }
}
