//! `alertstream simulate` against a real server: its alerts are consistent, and when the server ends its stream (the
//! connection's maximum age, on the server's manual clock) it opens another and finishes its readings.

mod common;

use std::{process::Stdio, time::Duration};

use alertstream::{
    clock::{Clock, ManualClock},
    config::{ServeConfig, default_rules},
    connections::ConnectionPolicy,
};
use common::TestServer;
use tokio::io::{AsyncBufReadExt as _, BufReader};

fn simulate(server: &TestServer, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_alertstream"));
    command.args(["simulate", "--target", &server.grpc_addr.to_string()]).args(args).kill_on_drop(true);
    command
}

#[tokio::test]
async fn the_simulator_streams_over_several_connections_and_gets_consistent_alerts() {
    let server = TestServer::start().await;
    let args = ["--sensors", "4", "--connections", "2", "--count", "2000", "--rate", "0", "--seed", "7", "--json"];
    let output =
        tokio::time::timeout(Duration::from_secs(120), simulate(&server, &args).output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.starts_with("2000 readings, "), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let alerts: Vec<serde_json::Value> =
        serde_json::Deserializer::from_str(&stdout).into_iter().map(Result::unwrap).collect();
    common::assert_simulated_alerts_consistent(&alerts);
}

#[tokio::test]
async fn when_the_server_ends_its_stream_the_simulator_opens_another_and_goes_on() {
    // The readings carry the system's time: the server's clock starts there.
    let clock = ManualClock::new(Clock::System.now());
    let policy = ConnectionPolicy { max_age: Some(Duration::from_secs(100)), ..ServeConfig::default().connections };
    let config = ServeConfig { clock: Clock::Manual(clock.clone()), connections: policy, ..ServeConfig::default() };
    let server = TestServer::with(default_rules(), config).await;
    let args = ["--sensors", "4", "--count", "400", "--rate", "100", "--seed", "7"];
    let mut child = simulate(&server, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Its first alert: the stream is open and answered.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await.unwrap().unwrap();
    let first = first.unwrap();
    assert!(first.starts_with("FIRING") && !first.contains("invalid_reading"), "{first}");
    // The connection ages: GOAWAY, and the stream ends UNAVAILABLE.
    clock.advance(Duration::from_secs(111));
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    drain.await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("the stream ended (Unavailable: connection reached its maximum age"), "{stderr}");
    assert!(stderr.contains("400 readings") && !stderr.contains(" 0 reconnects"), "{stderr}");
}

#[tokio::test]
async fn the_count_is_what_is_sent_however_many_connections_are_asked_for() {
    let server = TestServer::start().await;
    for (count, connections) in [("1", "3"), ("10", "3"), ("7", "2")] {
        let args = ["--sensors", "4", "--connections", connections, "--count", count, "--rate", "0", "--summary"];
        let output = simulate(&server, &args).output().await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && stdout.starts_with(&format!("{count} readings, ")), "{stdout}");
    }
}
