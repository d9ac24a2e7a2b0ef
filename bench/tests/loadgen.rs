//! The benchmark harness's own checks, with tiny loads and no timing assertions: the load generator checks every
//! alert against alertstream and against the baseline, so a broken harness fails here, not in a benchmark; and the
//! baseline answers a reading with the alert alertstream sends for it.
//!
//! The alertstream tests run the product binary from the same target directory (`target/debug/alertstream`), which
//! `cargo test --workspace` builds before running tests. Every process started here is killed when its test ends,
//! passing or failing, and every load generator run has a time limit.

use std::{path::Path, time::Duration};

use alertstream_bench::{
    pb::{self, alert_service_client::AlertServiceClient},
    readings,
    server::{Server, ServerProcess, sibling_binary},
};

/// The longest a load generator run may take before its test fails.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs the load generator with `args`; returns its stdout, which it must exit 0 with.
async fn loadgen(args: &[&str]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_alertstream-loadgen"));
    // Killed if the time limit drops the run.
    command.args(args).kill_on_drop(true);
    let output = tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("alertstream-loadgen {args:?} ran past {LIMIT:?}"))
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{args:?}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The product's binary, started on a free port with its default rules.
fn alertstream() -> ServerProcess {
    let binary = sibling_binary("alertstream").unwrap();
    assert!(
        binary.is_file(),
        "{} not found: these tests measure the product binary; build it with `cargo build -p alertstream` \
         (`cargo test --workspace` builds it before running tests)",
        binary.display()
    );
    ServerProcess::start_binary(&binary, Server::Alertstream, None, &[]).unwrap()
}

fn baseline() -> ServerProcess {
    ServerProcess::start_binary(Path::new(env!("CARGO_BIN_EXE_alertstream-baseline")), Server::Baseline, None, &[])
        .unwrap()
}

#[tokio::test]
async fn throughput_and_latency_against_alertstream_check_every_alert() {
    let server = alertstream();
    let target = server.addr().to_string();
    let pid = server.pid().to_string();
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
        "--server-pid",
        &pid,
    ])
    .await;
    assert!(throughput.starts_with("1500 readings in "), "{throughput}");
    assert!(throughput.contains("server CPU ") && throughput.contains("client CPU "), "{throughput}");
    let latency =
        loadgen(&["latency", "--target", &target, "--rate", "2000", "--streams", "4", "--seconds", "0.5"]).await;
    assert!(latency.starts_with("p50 ") && latency.contains("p99.9"), "{latency}");
}

#[tokio::test]
async fn production_line_sensors_go_through_the_products_own_client() {
    let server = alertstream();
    let target = server.addr().to_string();
    let args = ["sensors", "--target", &target, "--sensors", "20", "--rate", "0", "--connections", "3"];
    let report = loadgen(&[&args[..], &["--readings", "3000"]].concat()).await;
    assert!(report.starts_with("3000 readings, ") && report.contains(" 0 reconnects, "), "{report}");
    assert!(report.contains(" 0 resent, 0 duplicates dropped; alert latency p50 "), "{report}");
    let alerts: u64 = report.split(", ").nth(1).and_then(|a| a.strip_suffix(" alerts")).unwrap().parse().unwrap();
    assert!(alerts > 0, "excursions below 10 degrees or above pH 5.5 fire the default rules: {report}");
}

#[tokio::test]
async fn the_baseline_answers_each_reading_with_one_alert() {
    let server = baseline();
    let target = server.addr().to_string();
    let out =
        loadgen(&["throughput", "--target", &target, "--streams", "2", "--readings", "300", "--sensors", "3"]).await;
    assert!(out.starts_with("600 readings in "), "{out}");
    let latency =
        loadgen(&["latency", "--target", &target, "--rate", "2000", "--streams", "2", "--seconds", "0.3"]).await;
    assert!(latency.starts_with("p50 "), "{latency}");
}

/// Sends one reading on one `Stream` call with the generated client; returns the alerts.
async fn alerts_for(server: &ServerProcess, reading: pb::Reading) -> Vec<pb::Alert> {
    let call = async {
        let mut client = AlertServiceClient::connect(format!("http://{}", server.addr())).await.unwrap();
        let mut alerts = client.stream(tokio_stream::iter([reading])).await.unwrap().into_inner();
        let mut all = Vec::new();
        while let Some(alert) = alerts.message().await.unwrap() {
            all.push(alert);
        }
        all
    };
    tokio::time::timeout(LIMIT, call).await.expect("the stream ran past its time limit")
}

#[tokio::test]
async fn the_baseline_sends_the_alert_alertstream_sends() {
    // Temperature 5: the default rule `temp_too_low` fires.
    let reading = readings::reading("line-1/oven", 0, 42);
    let expected = pb::Alert {
        sensor_id: "line-1/oven".to_owned(),
        rule: "temp_too_low".to_owned(),
        state: pb::AlertState::Firing as i32,
        severity: pb::Severity::Warning as i32,
        message: "temp too low".to_owned(),
        reading_seq: 42,
        time: reading.time,
        values: reading.values.clone(),
        explanation: vec![pb::Term {
            expression: "temperature".to_owned(),
            value: reading.values["temperature"],
            operator: "<".to_owned(),
            threshold: 10.0,
        }],
    };
    assert_eq!(alerts_for(&baseline(), reading.clone()).await, std::slice::from_ref(&expected));
    assert_eq!(alerts_for(&alertstream(), reading).await, [expected]);
}
