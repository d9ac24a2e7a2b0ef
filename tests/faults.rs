//! Transport faults with the real grpcio and grpc-js clients, which send one HTTP/2 DATA frame per message (as most
//! clients do): a server stopped for a while, and a client that stops reading, lose no alert and keep their
//! connection. Before the stream and connection windows were chosen for h2's budget of small DATA frames
//! (`config::connection_window`), they were cut off with GOAWAY `too_many_data_frames`: grpcio on one stream after
//! about 2,500 readings, grpc-js on 50 streams of one connection and as a slow reader.
//!
//! The probes are `clients/python/fault_probe.py`, in the venv that `scripts/setup-venv.sh` builds, and
//! `clients/node/fault_probe.js`, with the packages that `scripts/setup-node.sh` installs. The tonic client's probes
//! are here: its h2 has the same budget on the receiving side, so a tonic client that reads alerts slowly cut its own
//! connection before `alertstream::client::endpoint` set its windows.

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use alertstream::pb;
use common::{binary::Binary, open_stream, reading};
use tokio::process::Command;
use tonic::transport::Channel;

/// How long one probe may take before the test fails.
const PROBE_TIMEOUT: Duration = Duration::from_secs(300);

/// A client library with a fault probe.
#[derive(Clone, Copy, Debug)]
enum Client {
    /// grpcio: `clients/python/fault_probe.py`.
    Python,
    /// grpc-js: `clients/node/fault_probe.js`.
    Node,
}

impl Client {
    const ALL: [Client; 2] = [Client::Python, Client::Node];

    /// The probe's command, to be given the probe's arguments.
    fn command(self, repo: &Path) -> Command {
        let (program, script, setup) = match self {
            Client::Python => (repo.join(".venv/bin/python"), "clients/python/fault_probe.py", "scripts/setup-venv.sh"),
            Client::Node => (PathBuf::from("node"), "clients/node/fault_probe.js", "scripts/setup-node.sh"),
        };
        let installed = match self {
            Client::Python => program.exists(),
            Client::Node => repo.join("clients/node/node_modules/@grpc/grpc-js").exists(),
        };
        assert!(installed, "the {self:?} client is not installed: run {setup} (the test command runs it)");
        let mut command = Command::new(program);
        command.arg(script).current_dir(repo).kill_on_drop(true);
        command
    }
}

/// Runs `client`'s fault probe with `args` against `server`; fails the test unless it reports every alert in order.
async fn probe(client: Client, server: &Binary, args: &[&str]) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut command = client.command(&repo);
    command.args(args).args(["--target", &server.addr.to_string()]);
    let output = tokio::time::timeout(PROBE_TIMEOUT, command.output()).await.expect("the probe finishes").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stdout.starts_with("OK "), "{client:?} {args:?}: {stdout}{stderr}");
}

#[tokio::test]
async fn a_stalled_server_loses_no_alert_and_keeps_the_connection() {
    let server = Binary::start(&[]);
    let pid = server.pid().to_string();
    for client in Client::ALL {
        // 1 stream, then 50 streams of one connection; the server is stopped for half a second mid-stream.
        probe(client, &server, &["stall", "--server-pid", &pid, "--readings", "30000", "--stall-seconds", "0.5"]).await;
        let many = ["stall", "--server-pid", &pid, "--streams", "50", "--readings", "1000", "--stall-seconds", "0.5"];
        probe(client, &server, &many).await;
        // A longer stall: everything the client sends meanwhile waits in the windows.
        probe(client, &server, &["stall", "--server-pid", &pid, "--readings", "30000", "--stall-seconds", "5"]).await;
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_pushed_back_not_cut_off() {
    let server = Binary::start(&[]);
    for client in Client::ALL {
        probe(client, &server, &["slow-reader", "--readings", "100000", "--pause-seconds", "3"]).await;
    }
}

/// Streams `readings` readings on each of `streams` streams of `channel` (one alert each), one reading per stream
/// every `pace`, the first stream calling `midway` after 1,000 readings; reads the alerts only after every reading is
/// sent when `read_late`, else as they come. Fails the test unless every stream gets every alert, in order.
async fn tonic_probe(
    channel: Channel,
    streams: usize,
    readings: u64,
    pace: Duration,
    read_late: bool,
    midway: impl FnOnce() + Send + 'static,
) {
    let mut midway = Some(midway);
    let (mut senders, mut inbounds) = (Vec::new(), Vec::new());
    for index in 0..streams {
        let (tx, alerts) = open_stream(channel.clone()).await;
        let mut midway = if index == 0 { midway.take() } else { None };
        senders.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(pace);
            for seq in 1..=readings {
                tick.tick().await;
                let temperature = if seq % 2 == 1 { 5.0 } else { 15.0 };
                if tx.send(reading(&format!("s{index}"), seq, &[("temperature", temperature)])).await.is_err() {
                    return;
                }
                if seq == 1_000.min(readings)
                    && let Some(call) = midway.take()
                {
                    call();
                }
            }
        }));
        inbounds.push(alerts);
    }
    if read_late {
        for sender in senders.drain(..) {
            sender.await.unwrap();
        }
    }
    let readers: Vec<_> =
        inbounds.into_iter().enumerate().map(|(index, alerts)| tokio::spawn(drain(index, alerts, readings))).collect();
    for reader in readers {
        reader.await.unwrap();
    }
    for sender in senders {
        sender.await.unwrap();
    }
}

/// Reads every alert of stream `index`, checking that they come in order and end with the last reading's.
async fn drain(index: usize, mut alerts: tonic::Streaming<pb::Alert>, readings: u64) {
    let mut last = 0;
    loop {
        match tokio::time::timeout(PROBE_TIMEOUT, alerts.message()).await.expect("the stream makes progress") {
            Ok(Some(alert)) => {
                assert_eq!(alert.reading_seq, last + 1, "stream {index}: alerts out of order");
                last = alert.reading_seq;
            }
            Ok(None) => break,
            Err(status) => panic!("stream {index}: {status:?} after {last} alerts"),
        }
    }
    assert_eq!(last, readings, "stream {index}: every alert arrives");
}

#[tokio::test]
async fn a_stalled_server_loses_no_alert_for_a_tonic_client() {
    let server = Binary::start(&[]);
    for streams in [1, 50] {
        let pid = server.pid().to_string();
        let (begun, started) = tokio::sync::oneshot::channel();
        let staller = tokio::spawn(async move {
            started.await.expect("the first stream reaches its midway reading");
            let kill = |signal: &str| Command::new("kill").args([signal, &pid]).status();
            assert!(kill("-STOP").await.unwrap().success());
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(kill("-CONT").await.unwrap().success());
        });
        let midway = move || {
            let _ = begun.send(());
        };
        tonic_probe(server.channel().await, streams, 3_000, Duration::from_micros(200), false, midway).await;
        staller.await.unwrap();
    }
}

#[tokio::test]
async fn a_tonic_client_that_stops_reading_does_not_cut_its_own_connection() {
    let server = Binary::start(&[]);
    // One reading per stream per millisecond, so that the server sends about one alert (70 bytes) per DATA frame;
    // the client reads none of them until it has sent everything. With tonic's default client windows the
    // 8-stream case cut its own connection (GOAWAY too_many_data_frames after about 2,400 alerts a stream).
    for (streams, readings) in [(1, 4_000), (8, 4_000), (50, 1_000)] {
        tonic_probe(server.channel().await, streams, readings, Duration::from_millis(1), true, || {}).await;
    }
}
