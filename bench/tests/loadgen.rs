//! The benchmark harness's own checks, with tiny loads: the load generator verifies alert counts and per-sensor
//! order against alertstream and against the baseline server, so a broken harness fails here, not in a benchmark.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use common::TestServer;

fn loadgen(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_alertstream-loadgen")).args(args).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{args:?}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[tokio::test]
async fn throughput_and_latency_against_alertstream_check_every_alert() {
    let server = TestServer::start().await;
    let target = server.grpc_addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let throughput = loadgen(&[
            "throughput",
            "--target",
            &target,
            "--streams",
            "3",
            "--connections",
            "2",
            "--readings",
            "500",
            "--sensors",
            "7",
        ]);
        let latency =
            loadgen(&["latency", "--target", &target, "--rate", "2000", "--streams", "4", "--seconds", "0.5"]);
        (throughput, latency)
    })
    .await
    .unwrap();
    assert!(out.0.starts_with("1500 readings in "), "{}", out.0);
    assert!(out.1.starts_with("p50 ") && out.1.contains("p99.9"), "{}", out.1);
}

#[test]
fn the_baseline_answers_each_reading_with_one_alert() {
    let mut baseline = Command::new(env!("CARGO_BIN_EXE_alertstream-baseline")).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(baseline.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().trim_start_matches("listening on ").to_owned();
    let out = loadgen(&["throughput", "--target", &addr, "--streams", "2", "--readings", "300", "--sensors", "3"]);
    baseline.kill().unwrap();
    baseline.wait().unwrap();
    assert!(out.starts_with("600 readings in "), "{out}");
}
