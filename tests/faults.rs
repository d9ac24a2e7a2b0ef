//! Transport faults with the real grpcio client, which sends one HTTP/2 DATA frame per message (as grpc-js and most
//! clients do): a server stopped for a while, and a client that stops reading, lose no alert and keep their
//! connection. Before the stream and connection windows were chosen for h2's budget of small DATA frames
//! (`config::connection_window`), both were cut off with GOAWAY `too_many_data_frames` after about 2,500 readings.
//!
//! The probes are `clients/python/fault_probe.py`, in the venv that `scripts/setup-venv.sh` builds.

mod common;

use std::{path::PathBuf, time::Duration};

use common::binary::Binary;
use tokio::process::Command;

/// How long one probe may take before the test fails.
const PROBE_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the fault probe with `args` against `server`; fails the test unless it reports every alert in order.
async fn probe(server: &Binary, args: &[&str]) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup-venv.sh (the test command runs it)", python.display());
    let mut command = Command::new(python);
    command
        .arg("clients/python/fault_probe.py")
        .args(args)
        .args(["--target", &server.addr.to_string()])
        .current_dir(&repo)
        .kill_on_drop(true);
    let output = tokio::time::timeout(PROBE_TIMEOUT, command.output()).await.expect("the probe finishes").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && stdout.starts_with("OK "), "{args:?}: {stdout}");
}

#[tokio::test]
async fn a_stalled_server_loses_no_alert_and_keeps_the_connection() {
    let server = Binary::start(&[]);
    let pid = server.pid().to_string();
    // 1 stream, then 50 streams of one connection; the server is stopped for half a second mid-stream.
    probe(&server, &["stall", "--server-pid", &pid, "--readings", "30000", "--stall-seconds", "0.5"]).await;
    probe(&server, &["stall", "--server-pid", &pid, "--streams", "50", "--readings", "1000", "--stall-seconds", "0.5"])
        .await;
    // A longer stall: everything the client sends meanwhile waits in the windows.
    probe(&server, &["stall", "--server-pid", &pid, "--readings", "30000", "--stall-seconds", "5"]).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_pushed_back_not_cut_off() {
    let server = Binary::start(&[]);
    probe(&server, &["slow-reader", "--readings", "100000", "--pause-seconds", "3"]).await;
}
