//! Transport faults with the real grpcio and grpc-js clients, which send one HTTP/2 DATA frame per message (as most
//! clients do): a server stopped for a while, and a client that stops reading, lose no alert and keep their
//! connection. Before the stream and connection windows were chosen for h2's budget of small DATA frames
//! (`config::connection_window`), they were cut off with GOAWAY `too_many_data_frames`: grpcio on one stream after
//! about 2,500 readings, grpc-js on 50 streams of one connection and as a slow reader.
//!
//! The probes are `clients/python/fault_probe.py`, in the venv that `scripts/setup-venv.sh` builds, and
//! `clients/node/fault_probe.js`, with the packages that `scripts/setup-node.sh` installs.

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use common::binary::Binary;
use tokio::process::Command;

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
