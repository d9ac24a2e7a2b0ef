//! The Python package's helper resumes without loss or doubles (`resume=True`, clients/python/src/alertstream) across
//! a SIGKILLed server restarted on its state directory, blocking (`alertstream.stream`) and asyncio
//! (`alertstream.astream`): `clients/python/resume_check.py` streams the same paced readings each run, so an
//! uninterrupted run against a server without a store, without resume, shows exactly the alerts the interrupted one
//! must show, as a multiset: none lost (the readings its last checkpoints did not cover are sent again), none twice
//! (an alert the restarted server sends again for a reading it applies once more is dropped). Real processes on
//! loopback, in the venv that `scripts/setup-venv.sh` builds (the README's test command runs it first).

mod common;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    time::Duration,
};

use common::{binary::Binary, daemon::free_port};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader},
    process::{Child, ChildStdout, Command},
    task::JoinHandle,
};

/// Readings in a run, and how fast they go (about 6 s, some 840 alerts with the default rules): the kill lands about a
/// third of the way in.
const READINGS: &str = "1800";
const RATE: &str = "300";
/// Alerts seen before the kill.
const KILL_AFTER: &str = "300";
/// How long a script run, or the wait for one of its lines, may take before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// One alert as the application sees it: sensor, rule, state, reading seq.
type Key = common::AlertKey;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_python() -> PathBuf {
    let path = repo().join(".venv/bin/python");
    assert!(path.exists(), "{} is missing: run scripts/setup-venv.sh (the test command runs it)", path.display());
    path
}

/// `alertstream serve` on `addr` with `args` (a fixed port, so that a restart is where the client reconnects).
fn serve_on(addr: SocketAddr, args: &[&str]) -> Binary {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_alertstream"));
    command.args(["serve", "--listen", &addr.to_string(), "--http-listen", "", "--log-format", "json"]).args(args);
    Binary::spawn(command, false, Duration::from_secs(30))
}

/// The script in `mode` against `target`, with `args` added; its stdout and stderr piped.
fn script(mode: &str, target: SocketAddr, args: &[&str]) -> (Child, ChildStdout, JoinHandle<String>) {
    let mut command = Command::new(venv_python());
    command.arg("clients/python/resume_check.py").args(["--target", &target.to_string(), "--mode", mode]);
    command.args(["--readings", READINGS, "--rate", RATE]).args(args);
    command.current_dir(repo()).kill_on_drop(true).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    (child, stdout, stderr)
}

/// Waits (bounded) for the script to exit and its output to be read; fails the test unless it exits 0.
async fn finish(mut child: Child, rest: JoinHandle<Vec<String>>, stderr: JoinHandle<String>) -> Vec<String> {
    let status: ExitStatus =
        tokio::time::timeout(CLIENT_TIMEOUT, child.wait()).await.expect("the script finishes").unwrap();
    let lines = tokio::time::timeout(CLIENT_TIMEOUT, rest).await.expect("its stdout ends").unwrap();
    let stderr = tokio::time::timeout(CLIENT_TIMEOUT, stderr).await.expect("its stderr ends").unwrap();
    eprint!("{stderr}"); // its reconnects, shown with --nocapture or when the test fails
    assert!(status.success(), "resume_check.py failed ({status}):\nstdout:\n{}\nstderr:\n{stderr}", lines.join("\n"));
    lines
}

/// Reads what is left of the script's stdout, on a task of its own (bounded by `finish`'s wait).
fn read_rest(mut stdout: tokio::io::Lines<BufReader<ChildStdout>>, mut lines: Vec<String>) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            lines.push(line);
        }
        lines
    })
}

/// The script's alerts, sorted, and its stats.
fn parse(lines: &[String]) -> (Vec<Key>, Value) {
    let mut keys = Vec::new();
    let mut stats = None;
    for line in lines {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(found) = value.get("stats") {
            stats = Some(found.clone());
        } else if value.get("rule").is_some() {
            let text = |field: &str| value[field].as_str().unwrap().to_owned();
            keys.push((text("sensor_id"), text("rule"), text("state"), value["reading_seq"].as_u64().unwrap()));
        }
    }
    keys.sort();
    (keys, stats.expect("a stats line"))
}

fn count(stats: &Value, field: &str) -> u64 {
    stats[field].as_u64().unwrap_or_else(|| panic!("{field} in {stats}"))
}

/// The alerts of an uninterrupted run in `mode` against a fresh server with the default rules, without a store and
/// without resume.
async fn reference(mode: &str) -> Vec<Key> {
    let server = Binary::start(&[]);
    let (child, stdout, stderr) = script(mode, server.addr, &["--no-resume"]);
    let rest = read_rest(BufReader::new(stdout).lines(), Vec::new());
    let (keys, stats) = parse(&finish(child, rest, stderr).await);
    assert!(keys.len() > 500, "the readings cross the default rules' thresholds: {} alerts", keys.len());
    assert_eq!((count(&stats, "reconnects"), count(&stats, "checkpoints")), (0, 0), "{stats}");
    keys
}

/// The script with resume in `mode` against a server on a state directory that is SIGKILLed once the script has
/// seen `KILL_AFTER` alerts and restarted on the same port and directory; its alerts equal the reference run's.
async fn resumes_across_a_killed_and_restarted_server(mode: &str) {
    let expected = reference(mode).await;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let args = ["--state-dir", state.to_str().unwrap(), "--state-save-interval", "250ms"];
    let addr = free_port();
    let server = serve_on(addr, &args);
    let (child, stdout, stderr) = script(mode, addr, &["--cue-after", KILL_AFTER]);
    let mut stdout = BufReader::new(stdout).lines();
    let mut lines = Vec::new();
    loop {
        let line = tokio::time::timeout(CLIENT_TIMEOUT, stdout.next_line()).await.expect("the cue comes").unwrap();
        let line = line.unwrap_or_else(|| panic!("the script ended before its cue: {lines:?}"));
        let cued = line.starts_with("{\"seen\"");
        lines.push(line);
        if cued {
            break;
        }
    }
    let rest = read_rest(stdout, lines);
    server.signal("KILL");
    drop(server);
    // The same server again, on its state directory; the script reconnects with backoff meanwhile.
    let _restarted = serve_on(addr, &args);
    let (got, stats) = parse(&finish(child, rest, stderr).await);
    common::assert_same_alerts(&got, &expected);
    assert!(count(&stats, "reconnects") >= 1, "{stats}");
    assert!(count(&stats, "checkpoints") >= 1, "{stats}");
    assert_eq!(count(&stats, "alerts"), expected.len() as u64, "{stats}");
    eprintln!(
        "{mode}: {} alerts as expected; {} readings resent, {} duplicates dropped, {} checkpoints, {} reconnects",
        expected.len(),
        count(&stats, "resent"),
        count(&stats, "duplicates"),
        count(&stats, "checkpoints"),
        count(&stats, "reconnects")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_python_helper_resumes_without_loss_or_doubles_across_a_killed_and_restarted_server() {
    resumes_across_a_killed_and_restarted_server("blocking").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asyncio_python_helper_resumes_without_loss_or_doubles_across_a_killed_and_restarted_server() {
    resumes_across_a_killed_and_restarted_server("async").await;
}
