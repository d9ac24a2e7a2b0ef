//! SIGTERM against the real binary, mid-stream (as linkerd2-proxy's tests/shutdown.rs does): every owed alert is
//! delivered, then OK after a half-close within the grace period, or UNAVAILABLE when it runs out; exit code 0.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use alertstream::pb::{self, alert_service_client::AlertServiceClient};
use common::{brief, reading};
use tokio_stream::{StreamExt as _, wrappers::ReceiverStream};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// The binary, serving on an ephemeral port; killed on drop if a test fails before it exits.
struct Binary {
    child: Child,
    addr: SocketAddr,
}

impl Binary {
    fn start(grace: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_alertstream"))
            .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--log-format", "json"])
            .args(["--shutdown-grace", grace])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read the log until the server says where it listens; keep draining it so the pipe never fills.
        let (tx, rx) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("server: {line}"); // shown when a test fails
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                if entry["fields"]["message"] == "Serving gRPC." {
                    let _ = tx.send(entry["fields"]["addr"].as_str().unwrap().parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server logs its address");
        Self { child, addr }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    async fn exit_code(&mut self) -> Option<i32> {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not exit within 15 s of shutdown");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Opens a stream whose readings the test sends one by one.
async fn open_stream(channel: Channel) -> (mpsc_tokio::Sender<pb::Reading>, tonic::Streaming<pb::Alert>) {
    let (tx, rx) = mpsc_tokio::channel(16);
    let response = AlertServiceClient::new(channel).stream(ReceiverStream::new(rx)).await.unwrap();
    (tx, response.into_inner())
}

use tokio::sync::mpsc as mpsc_tokio;

async fn next_alert(alerts: &mut tonic::Streaming<pb::Alert>) -> String {
    let alert = tokio::time::timeout(Duration::from_secs(10), alerts.message()).await.unwrap().unwrap().unwrap();
    brief(&alert)
}

#[tokio::test]
async fn sigterm_drains_then_a_half_closed_stream_gets_every_alert_and_ok() {
    let mut server = Binary::start("30s");
    let channel = server.channel().await;
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest { service: "alertstream.v1.AlertService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::Serving);

    let (readings, mut alerts) = open_stream(channel).await;
    readings.send(reading("s", 1, &[("temperature", 5.0)])).await.unwrap();
    assert_eq!(next_alert(&mut alerts).await, "s 1 temp_too_low FIRING");

    server.terminate();
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::NotServing);

    // New connections are refused once the server stops accepting.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(server.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the server still accepts connections after SIGTERM");

    // The open stream goes on being served during the grace period.
    readings.send(reading("s", 2, &[("temperature", 15.0)])).await.unwrap();
    readings.send(reading("s", 3, &[("temperature", 5.0), ("pH", 6.0)])).await.unwrap();
    drop(readings); // half-close
    let (rest, status) = common::collect(alerts).await;
    assert_eq!(
        rest.iter().map(brief).collect::<Vec<_>>(),
        ["s 2 temp_too_low RESOLVED", "s 3 temp_too_low FIRING", "s 3 ph_too_high FIRING"]
    );
    status.unwrap();
    // It exits 0 without waiting on the health watcher that is still open.
    assert_eq!(server.exit_code().await, Some(0));
}

#[tokio::test]
async fn when_the_grace_period_ends_open_streams_get_their_alerts_then_unavailable() {
    let mut server = Binary::start("1s");
    let (readings, mut alerts) = open_stream(server.channel().await).await;
    readings.send(reading("s", 1, &[("temperature", 5.0)])).await.unwrap();
    assert_eq!(next_alert(&mut alerts).await, "s 1 temp_too_low FIRING");

    server.terminate();
    readings.send(reading("s", 2, &[("temperature", 15.0)])).await.unwrap();
    // The client never half-closes: the stream is ended by the server when the grace period is over.
    let (rest, status) = common::collect(alerts).await;
    assert_eq!(rest.iter().map(brief).collect::<Vec<_>>(), ["s 2 temp_too_low RESOLVED"]);
    let status = status.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unavailable, "server shutting down"));
    assert_eq!(server.exit_code().await, Some(0));
    drop(readings);
}
