//! The README's run command, exactly as written: the first command of its Quick start, run by a shell in the
//! workspace root on free ports (the flags' `ALERTSTREAM_*` variables; the command itself is not touched), then a
//! health check and the seed example through Evaluate, then SIGTERM to the server and a clean exit.

mod common;

use std::{path::Path, process::Command, time::Duration};

use alertstream::pb::{self, alert_service_client::AlertServiceClient};
use common::binary::Binary;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// The first command of the README's Quick start: the first line of its first `sh` block.
fn readme_run_command() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let quick_start = readme.split("## Quick start").nth(1).expect("the README has a Quick start");
    let block = quick_start.split("```sh\n").nth(1).expect("the Quick start has an sh block");
    block.lines().next().unwrap().to_owned()
}

#[tokio::test]
async fn the_readme_run_command_serves_the_default_rules() {
    let command_line = readme_run_command();
    assert_eq!(command_line, "cargo run -- serve", "the README's first command changed: is this test still right?");
    let mut command = Command::new("sh");
    command
        .args(["-c", &command_line])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ALERTSTREAM_LISTEN", "127.0.0.1:0")
        .env("ALERTSTREAM_HTTP_LISTEN", "127.0.0.1:0")
        .env("ALERTSTREAM_LOG_FORMAT", "json");
    // On a fresh clone the command builds the binary first: allow for it.
    let mut server = Binary::spawn(command, true, Duration::from_secs(1200));
    let channel = server.channel().await;

    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);

    let seed = pb::Reading {
        sensor_id: "line-1".into(),
        values: [("temperature".into(), 8.0), ("pH".into(), 4.0)].into(),
        time: None,
        seq: 0,
    };
    let evaluation = AlertServiceClient::new(channel).evaluate(seed).await.unwrap().into_inner();
    assert_eq!(evaluation.status, "temp too low");
    assert_eq!(evaluation.alerts.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(), ["temp_too_low"]);
    server.wait_for_log("Serving HTTP/JSON.").await;

    // The server, not the shell: the shell then exits with the server's status.
    server.signal_member("TERM", "alertstream");
    assert_eq!(server.exit_code().await, Some(0));
    server.wait_for_log("Shut down.").await;
}
