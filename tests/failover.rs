//! Resume without loss or doubles (`alertstream simulate --resume`, docs/DEPLOYMENT.md) across a SIGKILL, with
//! real processes: a server restarted on its state directory, and one of two replicas behind nginx sharing a NATS
//! key-value store. The simulator's sensors are seeded, so an uninterrupted run shows exactly the alerts the
//! interrupted one must show: none lost, none twice, and a z-score rule firing on the same readings (its history
//! restored, not re-learnt). A `heartbeat` rule answers every reading, so a lost reading shows too, and the longest
//! silence of a sensor measures the failover. The client drops alerts it already has, so a reading the server
//! applies twice would show only in the z-score; the runs check that readings were sent again and alerts sent
//! again dropped, so both paths ran.

mod common;

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use alertstream::clock::Stopwatch;
use common::{
    binary::Binary,
    daemon::{free_port, nats_server},
    nginx::Nginx,
};

const RULES: &str = "\
[[rule]]
name = \"temp_too_low\"
condition = \"temperature < 10\"

[[rule]]
name = \"ph_too_high\"
condition = \"pH > 5.5\"

[[rule]]
name = \"temp_spike\"
condition = \"abs(zscore(temperature, 50)) > 2.5\"

[[rule]]
name = \"heartbeat\"
condition = \"temperature > -1000\"
notify = \"every\"
";

/// Readings in a run, and how fast they go: the kill lands about a third of the way in.
const READINGS: &str = "3000";
const RATE: &str = "600";
/// Alerts seen before the kill.
const KILL_AFTER: usize = 1_000;

/// One alert as the application sees it: sensor, rule, state, reading seq.
type Key = common::AlertKey;

/// A simulator run in progress: its alerts as they arrive (each with when, on the run's stopwatch), its stderr.
struct Simulation {
    child: Child,
    alerts: Arc<Mutex<Vec<(f64, Key)>>>,
    stderr: Arc<Mutex<String>>,
}

impl Simulation {
    fn start(target: SocketAddr, resume: bool) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_alertstream"));
        command.args(["simulate", "--target", &target.to_string(), "--sensors", "12", "--connections", "4"]);
        command.args(["--count", READINGS, "--rate", RATE, "--seed", "11", "--json", "--first-seq", "1"]);
        if resume {
            command.arg("--resume");
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let (stdout, seen) = (BufReader::new(child.stdout.take().unwrap()), Arc::clone(&alerts));
        std::thread::spawn(move || {
            let stopwatch = Stopwatch::start();
            for line in stdout.lines().map_while(Result::ok) {
                let alert: serde_json::Value = serde_json::from_str(&line).unwrap();
                let text = |field: &str| alert[field].as_str().unwrap().to_owned();
                let key = (text("sensor_id"), text("rule"), text("state"), text("reading_seq").parse().unwrap());
                seen.lock().unwrap().push((stopwatch.seconds(), key));
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (errors, said) = (BufReader::new(child.stderr.take().unwrap()), Arc::clone(&stderr));
        std::thread::spawn(move || {
            for line in errors.lines().map_while(Result::ok) {
                eprintln!("simulate: {line}"); // shown when a test fails
                said.lock().unwrap().push_str(&line);
                said.lock().unwrap().push('\n');
            }
        });
        Self { child, alerts, stderr }
    }

    fn seen(&self) -> usize {
        self.alerts.lock().unwrap().len()
    }

    /// Waits (bounded) until `count` alerts have come.
    async fn until_seen(&mut self, count: usize) {
        for _ in 0..1_200 {
            if self.seen() >= count {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the simulator ended ({status}) after {} alerts: {}", self.seen(), self.stderr.lock().unwrap());
            }
            // A real process streaming: polled, bounded.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the simulator showed {} alerts, not {count}: {}", self.seen(), self.stderr.lock().unwrap());
    }

    /// Waits (bounded) for the run to end, successfully: its alerts in arrival order, and its summary line.
    async fn finish(mut self) -> (Vec<(f64, Key)>, String) {
        for _ in 0..2_400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "simulate failed: {}", self.stderr.lock().unwrap());
                // Its output threads drain what is left.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let alerts = std::mem::take(&mut *self.alerts.lock().unwrap());
                return (alerts, self.stderr.lock().unwrap().clone());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        panic!("the simulator did not finish: {}", self.stderr.lock().unwrap());
    }
}

/// The alerts of an uninterrupted run against a fresh server with the same rules (no store, no resume).
async fn reference(rules: &Path) -> Vec<Key> {
    let server = Binary::start(&["--rules", rules.to_str().unwrap()]);
    let (alerts, _) = Simulation::start(server.addr, false).finish().await;
    let keys = sorted(&alerts);
    // The detector's alerts are among them: the comparison shows whether it re-learnt.
    assert!(keys.iter().any(|(_, rule, ..)| rule == "temp_spike"), "the z-score never fires: {keys:?}");
    keys
}

fn sorted(alerts: &[(f64, Key)]) -> Vec<Key> {
    let mut keys: Vec<Key> = alerts.iter().map(|(_, key)| key.clone()).collect();
    keys.sort();
    keys
}

/// The longest a sensor went without an alert (every reading has one): how long the streams of the killed server
/// took to resume somewhere.
fn longest_silence(alerts: &[(f64, Key)]) -> f64 {
    let mut last: BTreeMap<&str, f64> = BTreeMap::new();
    let mut longest = 0.0f64;
    for (at, (sensor, ..)) in alerts {
        if let Some(before) = last.insert(sensor, *at) {
            longest = longest.max(at - before);
        }
    }
    longest
}

/// The simulator's summary line (`3000 readings, ... 12 resent, 3 duplicates dropped; alert latency ...`).
fn summary_line(stderr: &str) -> &str {
    stderr.lines().rev().find(|line| line.contains(" readings, ")).expect("a summary line")
}

/// The number before `what` in the simulator's summary line.
fn summary_count(summary: &str, what: &str) -> u64 {
    let before = &summary[..summary.find(what).expect("a count in the summary")];
    before.trim_end().rsplit([' ', ',']).next().unwrap().parse().unwrap()
}

fn write_rules(dir: &Path) -> std::path::PathBuf {
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    rules
}

/// `alertstream serve` on `addr` with `args`.
fn serve_on(addr: SocketAddr, args: &[&str]) -> Binary {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alertstream"));
    command.args(["serve", "--listen", &addr.to_string(), "--http-listen", "", "--log-format", "json"]).args(args);
    Binary::spawn(command, false, Duration::from_secs(30))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resuming_client_loses_nothing_and_sees_nothing_twice_across_a_killed_and_restarted_server() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let expected = reference(&rules).await;

    let state = dir.path().join("state");
    let (rules, state) = (rules.to_str().unwrap(), state.to_str().unwrap());
    let args = ["--rules", rules, "--state-dir", state, "--state-save-interval", "250ms"];
    let addr = free_port();
    let server = serve_on(addr, &args);
    let mut run = Simulation::start(addr, true);
    run.until_seen(KILL_AFTER).await;
    server.signal("KILL");
    drop(server);
    // The same server again, on its state directory; the simulator reconnects with backoff meanwhile.
    let _restarted = serve_on(addr, &args);
    let (alerts, stderr) = run.finish().await;
    common::assert_same_alerts(&sorted(&alerts), &expected);
    let summary = summary_line(&stderr);
    for count in ["reconnects", "resent", "duplicates dropped"] {
        assert!(summary_count(summary, count) >= 1, "{summary}");
    }
    eprintln!("restart: longest silence of a sensor {:.2} s; {summary}", longest_silence(&alerts));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resuming_client_loses_nothing_and_sees_nothing_twice_when_a_replica_behind_nginx_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let expected = reference(&rules).await;

    let nats = free_port();
    let _nats = nats_server(nats, &dir.path().join("nats")).await;
    let url = format!("nats://{nats}");
    let rules = rules.to_str().unwrap();
    let args = ["--rules", rules, "--state-store", &url, "--state-save-interval", "250ms"];
    let replicas = [serve_on(free_port(), &args), serve_on(free_port(), &args)];
    let nginx = Nginx::start(&[replicas[0].addr, replicas[1].addr]);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(nginx.addr).await.is_ok() {
            break;
        }
        // nginx starting: polled, bounded.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut run = Simulation::start(nginx.addr, true);
    run.until_seen(KILL_AFTER).await;
    // One replica dies; its streams reconnect through nginx to the other, which restores their sensors from NATS.
    let [killed, _survivor] = replicas;
    killed.signal("KILL");
    drop(killed);
    let (alerts, stderr) = run.finish().await;
    common::assert_same_alerts(&sorted(&alerts), &expected);
    let summary = summary_line(&stderr);
    for count in ["reconnects", "resent", "duplicates dropped"] {
        assert!(summary_count(summary, count) >= 1, "{summary}; nginx log:\n{}", nginx.log());
    }
    eprintln!("failover: longest silence of a sensor {:.2} s; {summary}", longest_silence(&alerts));
}
