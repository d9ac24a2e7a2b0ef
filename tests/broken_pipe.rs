//! A server whose stdout and stderr are closed pipes (a log shipper that died, `alertstream serve | head`) keeps
//! serving, reloading and shutting down: a log line it cannot write is dropped, never a panic in the task that
//! logged it.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use alertstream::pb::{self, alert_service_client::AlertServiceClient};
use tonic::transport::Channel;

async fn rule_names(channel: Channel) -> Vec<String> {
    let rules = AlertServiceClient::new(channel).list_rules(pb::ListRulesRequest {}).await.unwrap().into_inner().rules;
    rules.into_iter().map(|r| r.name).collect()
}

/// Rewrites the rules file with one rule named `name`, sends SIGHUP, and waits (bounded: a real process) until
/// the server lists that rule.
async fn reload_to(path: &Path, pid: u32, channel: &Channel, name: &str) {
    std::fs::write(path, format!("[[rule]]\nname = \"{name}\"\ncondition = \"t > 30\"\n")).unwrap();
    let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    for _ in 0..200 {
        if rule_names(channel.clone()).await == [name] {
            return;
        }
        // A real process reloading on a signal: polled, bounded, no span asserted.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never reloaded to `{name}`: {:?}", rule_names(channel.clone()).await);
}

#[tokio::test]
async fn closed_stdout_and_stderr_take_nothing_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, "[[rule]]\nname = \"first\"\ncondition = \"t > 30\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alertstream"))
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--log-format", "json", "--rules"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log until the server says where it listens, then close both pipes.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        if entry["fields"]["message"] == "Serving gRPC." {
            addr = Some(entry["fields"]["addr"].as_str().unwrap().parse::<SocketAddr>().unwrap());
        }
        line.clear();
    }
    drop(stderr);
    drop(child.stdout.take());
    let channel = alertstream::client::endpoint(format!("http://{}", addr.unwrap())).unwrap().connect().await.unwrap();
    assert_eq!(rule_names(channel.clone()).await, ["first"]);

    // Each reload logs a line that cannot be written; the reloader goes on, twice.
    reload_to(&path, child.id(), &channel, "second").await;
    reload_to(&path, child.id(), &channel, "third").await;

    // SIGTERM is logged too, and still shuts the server down cleanly.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    drop(channel);
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            return;
        }
        // A real process exiting: polled, bounded, no span asserted.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("the server did not exit within 15 s of SIGTERM with its stderr closed");
}
