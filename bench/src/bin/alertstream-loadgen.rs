//! Load generator and benchmark runner for alertstream's gRPC `Stream`, against alertstream or the bare-tonic
//! baseline (`alertstream-baseline`).
//!
//! - `throughput`: S streams over C connections, each sending N readings as fast as flow control allows while
//!   reading alerts; every reading yields exactly one alert (temperature alternates around the default rule's
//!   threshold per sensor); it checks the count and per-sensor order.
//! - `latency`: open loop at a fixed total rate over a few streams. Each reading has an intended send time and its
//!   latency is measured from it, so a stalled server cannot hide its stall (no coordinated omission).
//! - `idle`: C connections, each holding one open stream.
//! - `compare`: starts both servers (release binaries beside this one) and runs the scenarios interleaved and
//!   repeated, printing medians and the ratio alertstream / baseline, with server CPU per reading and RSS read
//!   from /proc. This is the one command docs/PERFORMANCE.md documents: `scripts/bench.sh`.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use alertstream::pb::{self, alert_service_client::AlertServiceClient};
use clap::{Parser, Subcommand};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::{StreamExt as _, wrappers::ReceiverStream};
use tonic::transport::{Channel, Endpoint};

/// Load generator and benchmark runner for alertstream.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Readings per second with S streams over C connections.
    Throughput {
        #[arg(long, default_value = "127.0.0.1:50051")]
        target: SocketAddr,
        #[arg(long, default_value_t = 1)]
        streams: usize,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Readings each stream sends.
        #[arg(long, default_value_t = 100_000)]
        readings: u64,
        /// Distinct sensors on each stream.
        #[arg(long, default_value_t = 1)]
        sensors: u64,
    },
    /// Latency percentiles at a fixed open-loop rate.
    Latency {
        #[arg(long, default_value = "127.0.0.1:50051")]
        target: SocketAddr,
        /// Readings per second in total.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        #[arg(long, default_value_t = 8)]
        streams: usize,
        /// Seconds to run (the first tenth is warm-up, not counted).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Hold C connections, each with one open stream, until Ctrl-C.
    Idle {
        #[arg(long, default_value = "127.0.0.1:50051")]
        target: SocketAddr,
        #[arg(long, default_value_t = 1_000)]
        connections: usize,
    },
    /// Run every scenario against alertstream and the baseline, interleaved, and print the tables.
    Compare {
        /// Runs of each scenario per server; medians are reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Fewer and shorter scenarios (a smoke run).
        #[arg(long)]
        quick: bool,
        /// Run only these tables: throughput, sensors, rules, latency, idle, aa (default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    warn_if_fd_limit_low();
    match Cli::parse().command {
        Mode::Throughput { target, streams, connections, readings, sensors } => {
            let r = throughput(target, streams, connections, readings, sensors).await?;
            println!("{} readings in {:.3} s: {:.0} readings/s", r.readings, r.seconds, r.readings as f64 / r.seconds);
        }
        Mode::Latency { target, rate, streams, seconds } => {
            let l = latency(target, rate, streams, seconds).await?;
            println!("{l}");
        }
        Mode::Idle { target, connections } => {
            let held = idle(target, connections).await?;
            println!("holding {} connections with one open stream each; Ctrl-C to stop", held.len());
            tokio::signal::ctrl_c().await?;
        }
        Mode::Compare { repeat, quick, only } => compare(repeat, quick, &only).await?,
    }
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connect(target: SocketAddr) -> Result<Channel, BoxError> {
    Ok(Endpoint::from_shared(format!("http://{target}"))?.tcp_nodelay(true).connect().await?)
}

/// Reading `k` of sensor `sensor`: temperature alternates 5, 15, 5, … per sensor, so with the default rules each
/// reading fires or resolves `temp_too_low`: exactly one alert per reading, on either server.
fn reading(sensor: &str, round: u64, seq: u64) -> pb::Reading {
    pb::Reading {
        sensor_id: sensor.to_owned(),
        values: HashMap::from([("temperature".to_owned(), if round % 2 == 0 { 5.0 } else { 15.0 })]),
        time: Some(prost_types::Timestamp { seconds: 1_700_000_000 + seq as i64, nanos: 0 }),
        seq,
    }
}

struct Throughput {
    readings: u64,
    seconds: f64,
}

async fn throughput(
    target: SocketAddr,
    streams: usize,
    connections: usize,
    readings: u64,
    sensors: u64,
) -> Result<Throughput, BoxError> {
    let mut channels = Vec::new();
    for _ in 0..connections.max(1) {
        channels.push(connect(target).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..streams {
        let mut client = AlertServiceClient::new(channels[s % channels.len()].clone());
        let ids: Vec<String> = (0..sensors).map(|j| format!("s{s}-{j}")).collect();
        tasks.push(tokio::spawn(async move {
            let ids2 = ids.clone();
            let outbound = tokio_stream::iter(0..readings)
                .map(move |k| reading(&ids2[(k % sensors) as usize], k / sensors, k + 1));
            let mut inbound = client.stream(outbound).await?.into_inner();
            let mut last_seq: HashMap<String, u64> = HashMap::with_capacity(sensors as usize);
            let mut count = 0u64;
            while let Some(alert) = inbound.message().await? {
                let previous = match last_seq.get_mut(&alert.sensor_id) {
                    Some(last) => std::mem::replace(last, alert.reading_seq),
                    None => {
                        last_seq.insert(alert.sensor_id.clone(), alert.reading_seq);
                        0
                    }
                };
                if alert.reading_seq <= previous {
                    return Err(
                        format!("sensor {}: seq {} after {previous}", alert.sensor_id, alert.reading_seq).into()
                    );
                }
                count += 1;
            }
            if count != readings {
                return Err(format!("{count} alerts for {readings} readings").into());
            }
            Ok::<u64, BoxError>(count)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(Throughput { readings: total, seconds: start.elapsed().as_secs_f64() })
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs",
            self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

async fn latency(target: SocketAddr, rate: u64, streams: usize, seconds: f64) -> Result<Latency, BoxError> {
    let channel = connect(target).await?;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let total = (rate as f64 * seconds) as u64;
    let warm_up = total / 10;
    let start = Instant::now() + Duration::from_millis(200);
    // Reading g (0-based, over all streams) goes to stream g % streams as its seq g / streams + 1, at its intended
    // time start + g × interval.
    let intended =
        move |stream: usize, seq: u64| start + interval.mul_f64(((seq - 1) * streams as u64 + stream as u64) as f64);
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for s in 0..streams {
        let mut client = AlertServiceClient::new(channel.clone());
        let (tx, rx) = mpsc::channel(4096);
        senders.push(tx);
        tasks.push(tokio::spawn(async move {
            let mut inbound = client.stream(ReceiverStream::new(rx)).await?.into_inner();
            let mut samples = Vec::new();
            while let Some(alert) = inbound.message().await? {
                let late = Instant::now().saturating_duration_since(intended(s, alert.reading_seq));
                if (alert.reading_seq - 1) * streams as u64 >= warm_up {
                    samples.push(late.as_secs_f64() * 1e6);
                }
            }
            Ok::<Vec<f64>, BoxError>(samples)
        }));
    }
    // The pacer is an OS thread: its sleeps are accurate to tens of microseconds, where tokio's timer rounds to a
    // millisecond. A send that blocks (the server pushing back) delays the readings after it, and their latency
    // still counts from their intended time.
    let pacer = std::thread::spawn(move || {
        for g in 0..total {
            let (stream, seq) = ((g % streams as u64) as usize, g / streams as u64 + 1);
            let due = intended(stream, seq);
            let now = Instant::now();
            if due > now {
                #[allow(clippy::disallowed_methods)] // A dedicated thread, not a runtime worker: sleeping is its job.
                std::thread::sleep(due - now);
            }
            if senders[stream].blocking_send(reading(&format!("latency-{stream}"), seq, seq)).is_err() {
                return;
            }
        }
    });
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    pacer.join().map_err(|_| "the pacer panicked")?;
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        samples.get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1))).copied().unwrap_or(0.0)
    };
    Ok(Latency {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        p999: at(0.999),
        max: samples.last().copied().unwrap_or(0.0),
    })
}

/// Opens `connections` connections with one open stream each (one reading sent and its alert received, so the
/// stream is live on the server); returns the senders that keep them open.
async fn idle(
    target: SocketAddr,
    connections: usize,
) -> Result<Vec<(mpsc::Sender<pb::Reading>, tonic::Streaming<pb::Alert>)>, BoxError> {
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let gate = Arc::clone(&gate);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await?;
            let mut client = AlertServiceClient::new(connect(target).await?);
            let (tx, rx) = mpsc::channel(1);
            let mut inbound = client.stream(ReceiverStream::new(rx)).await?.into_inner();
            tx.send(reading(&format!("idle-{c}"), 0, 1)).await?;
            inbound.message().await?.ok_or("the stream ended")?;
            Ok::<_, BoxError>((tx, inbound))
        }));
    }
    let mut held = Vec::with_capacity(connections);
    for task in tasks {
        held.push(task.await??);
    }
    Ok(held)
}

// ---------------------------------------------------------------------------------------------------------------
// The runner.

/// Which server a measurement ran against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Server {
    Alertstream,
    Baseline,
}

/// A server process started for one measurement.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Running {
    fn start(server: Server, rules: Option<&Path>) -> Result<Self, BoxError> {
        let dir = std::env::current_exe()?.parent().ok_or("no binary directory")?.to_owned();
        let mut child = match server {
            Server::Alertstream => {
                let mut command = Command::new(dir.join("alertstream"));
                command.args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--log-format", "json"]);
                if let Some(rules) = rules {
                    command.arg("--rules").arg(rules);
                }
                command.env("RUST_LOG", "info").stderr(Stdio::piped()).stdout(Stdio::null()).spawn()?
            }
            Server::Baseline => {
                Command::new(dir.join("alertstream-baseline")).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?
            }
        };
        let addr = match server {
            Server::Alertstream => {
                let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
                let mut addr = None;
                for line in lines.by_ref() {
                    let line = line?;
                    if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) {
                        if entry["fields"]["message"] == "Serving gRPC." {
                            addr = entry["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
                            break;
                        }
                    }
                }
                // Keep reading its log, so that the server never writes into a closed pipe.
                std::thread::spawn(move || lines.for_each(drop));
                addr.ok_or("alertstream did not say where it listens")?
            }
            Server::Baseline => {
                let mut line = String::new();
                BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
                line.trim().trim_start_matches("listening on ").parse()?
            }
        };
        Ok(Self { child, addr })
    }

    /// CPU seconds (user + system) the server has used.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of /proc/PID/stat, 12 and 13 after the name.
        let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
        ticks / 100.0
    }

    /// Resident set size in KiB.
    fn rss_kib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scenario's figures from one run.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Readings per second (throughput) or 0.
    rate: f64,
    /// Server CPU microseconds per reading (throughput) or 0.
    cpu_us: f64,
    latency: Latency,
    /// Server KiB per idle connection.
    kib_per_connection: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn median_sample(samples: &[Sample]) -> Sample {
    let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    Sample {
        rate: m(|s| s.rate),
        cpu_us: m(|s| s.cpu_us),
        latency: Latency {
            p50: m(|s| s.latency.p50),
            p90: m(|s| s.latency.p90),
            p99: m(|s| s.latency.p99),
            p999: m(|s| s.latency.p999),
            max: m(|s| s.latency.max),
        },
        kib_per_connection: m(|s| s.kib_per_connection),
    }
}

#[derive(Debug, Clone)]
enum Scenario {
    Throughput { streams: usize, connections: usize, readings: u64, sensors: u64 },
    Latency { rate: u64, seconds: f64 },
    Idle { connections: usize },
}

async fn measure(server: Server, scenario: &Scenario, rules: Option<&Path>) -> Result<Sample, BoxError> {
    let running = Running::start(server, rules)?;
    let mut sample = Sample::default();
    match *scenario {
        Scenario::Throughput { streams, connections, readings, sensors } => {
            let cpu = running.cpu_seconds();
            let r = throughput(running.addr, streams, connections, readings, sensors).await?;
            sample.rate = r.readings as f64 / r.seconds;
            sample.cpu_us = (running.cpu_seconds() - cpu) * 1e6 / r.readings as f64;
        }
        Scenario::Latency { rate, seconds } => sample.latency = latency(running.addr, rate, 8, seconds).await?,
        Scenario::Idle { connections } => {
            let before = running.rss_kib();
            let held = idle(running.addr, connections).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            sample.kib_per_connection = (running.rss_kib() - before) / connections as f64;
            drop(held);
        }
    }
    Ok(sample)
}

/// Runs `scenario` `repeat` times on each of `servers` (two entries; the same server twice is the A/A run),
/// alternating which goes first, and returns the median sample of each.
async fn interleaved(
    servers: [Server; 2],
    scenario: &Scenario,
    repeat: usize,
    rules: Option<&Path>,
) -> Result<[Sample; 2], BoxError> {
    let mut runs: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    for round in 0..repeat {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let rules = if servers[i] == Server::Alertstream { rules } else { None };
            runs[i].push(measure(servers[i], scenario, rules).await?);
        }
    }
    Ok([median_sample(&runs[0]), median_sample(&runs[1])])
}

fn rules_file(dir: &Path, count: usize) -> Result<PathBuf, BoxError> {
    // The default rule first (every reading fires or resolves it), then rules that never fire.
    let mut text = String::from("[[rule]]\nname = \"temp_too_low\"\ncondition = \"temperature < 10\"\n\n");
    for i in 1..count {
        text += &format!("[[rule]]\nname = \"r{i}\"\ncondition = \"temperature > {}\"\n\n", 1000 + i);
    }
    let path = dir.join(format!("rules-{count}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

async fn compare(repeat: usize, quick: bool, only: &[String]) -> Result<(), BoxError> {
    let wanted = |table: &str| only.is_empty() || only.iter().any(|o| o == table);
    let (readings_total, seconds) = if quick { (50_000u64, 2.0) } else { (300_000u64, 5.0) };
    let tmp = std::env::temp_dir().join(format!("alertstream-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let throughput = |streams: usize, sensors: u64| Scenario::Throughput {
        streams,
        connections: streams.min(8),
        readings: (readings_total / streams as u64).max(sensors * 2),
        sensors,
    };
    let pair = [Server::Alertstream, Server::Baseline];
    let aa = [Server::Baseline, Server::Baseline];
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# alertstream vs baseline: medians of {repeat} runs each, interleaved ({cores} cores, client and server on the same machine)\n"
    );

    if wanted("throughput") {
        println!("## Throughput with the default rules (every reading yields one alert)\n");
        println!(
            "| streams | alertstream readings/s | baseline readings/s | ratio | alertstream CPU µs/reading | baseline CPU µs/reading |"
        );
        println!("|---|---|---|---|---|---|");
        let stream_counts: &[usize] = if quick { &[1, 64] } else { &[1, 4, 16, 64] };
        for &streams in stream_counts {
            let [a, b] = interleaved(pair, &throughput(streams, 1), repeat, None).await?;
            println!(
                "| {streams} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
                a.rate,
                b.rate,
                a.rate / b.rate,
                a.cpu_us,
                b.cpu_us
            );
        }
    }
    if wanted("sensors") {
        println!("\n## Sensors on one stream (alertstream, default rules)\n");
        println!("| sensors | readings/s | ratio to 1 sensor | CPU µs/reading |");
        println!("|---|---|---|---|");
        let mut one = 0.0;
        let sensor_counts: &[u64] = if quick { &[1, 100_000] } else { &[1, 1_000, 100_000] };
        for &sensors in sensor_counts {
            // Ten readings per sensor at least: a long-lived gateway stream, where a sensor's first reading (which
            // creates its state) is the exception.
            let scenario = Scenario::Throughput {
                streams: 1,
                connections: 1,
                readings: readings_total.max(sensors * 10),
                sensors,
            };
            let [a, _] =
                interleaved([Server::Alertstream, Server::Alertstream], &scenario, repeat.div_ceil(2), None).await?;
            if sensors == 1 {
                one = a.rate;
            }
            println!("| {sensors} | {:.0} | {:.2} | {:.2} |", a.rate, a.rate / one, a.cpu_us);
        }
    }
    if wanted("rules") {
        println!("\n## Rules (alertstream, 1 stream; one rule fires per reading, the rest never)\n");
        println!("| rules | readings/s | ratio to 2 rules | CPU µs/reading |");
        println!("|---|---|---|---|");
        let mut two = 0.0;
        for count in [2usize, 20, 200] {
            let rules = rules_file(&tmp, count)?;
            let [a, _] = interleaved(
                [Server::Alertstream, Server::Alertstream],
                &throughput(1, 1),
                repeat.div_ceil(2),
                Some(&rules),
            )
            .await?;
            if count == 2 {
                two = a.rate;
            }
            println!("| {count} | {:.0} | {:.2} | {:.2} |", a.rate, a.rate / two, a.cpu_us);
        }
    }
    if wanted("latency") {
        println!("\n## Latency, open loop over 8 streams (µs from the intended send time)\n");
        println!(
            "| rate/s | alertstream p50 / p90 / p99 / p99.9 / max | baseline p50 / p90 / p99 / p99.9 / max | p99 ratio |"
        );
        println!("|---|---|---|---|");
        for rate in [1_000u64, 10_000, 50_000] {
            let [a, b] = interleaved(pair, &Scenario::Latency { rate, seconds }, repeat, None).await?;
            let show =
                |l: Latency| format!("{:.0} / {:.0} / {:.0} / {:.0} / {:.0}", l.p50, l.p90, l.p99, l.p999, l.max);
            println!("| {rate} | {} | {} | {:.2} |", show(a.latency), show(b.latency), a.latency.p99 / b.latency.p99);
        }
    }
    if wanted("idle") {
        println!("\n## Memory per idle connection (one open stream each; server RSS growth / connections)\n");
        println!("| connections | alertstream KiB | baseline KiB | ratio |");
        println!("|---|---|---|---|");
        let idle_counts: &[usize] = if quick { &[1_000] } else { &[1_000, 10_000] };
        for &connections in idle_counts {
            let [a, b] = interleaved(pair, &Scenario::Idle { connections }, repeat, None).await?;
            println!(
                "| {connections} | {:.1} | {:.1} | {:.2} |",
                a.kib_per_connection,
                b.kib_per_connection,
                a.kib_per_connection / b.kib_per_connection
            );
        }
    }
    if wanted("aa") {
        println!("\n## A/A: the baseline against itself (the noise floor)\n");
        println!("| scenario | run A | run B | ratio |");
        println!("|---|---|---|---|");
        for streams in [1usize, 64] {
            let [a, b] = interleaved(aa, &throughput(streams, 1), repeat, None).await?;
            println!(
                "| throughput, {streams} streams (readings/s) | {:.0} | {:.0} | {:.2} |",
                a.rate,
                b.rate,
                a.rate / b.rate
            );
        }
        let [a, b] = interleaved(aa, &Scenario::Latency { rate: 10_000, seconds }, repeat, None).await?;
        println!(
            "| latency p99 at 10000/s (µs) | {:.0} | {:.0} | {:.2} |",
            a.latency.p99,
            b.latency.p99,
            a.latency.p99 / b.latency.p99
        );
        let [a, b] = interleaved(aa, &Scenario::Idle { connections: 1_000 }, repeat, None).await?;
        println!(
            "| idle, 1000 connections (KiB each) | {:.1} | {:.1} | {:.2} |",
            a.kib_per_connection,
            b.kib_per_connection,
            a.kib_per_connection / b.kib_per_connection
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Warns when the open-file limit is too low for the idle runs, which hold 10,000 connections.
fn warn_if_fd_limit_low() {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else { return };
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    if soft < 11_000 {
        eprintln!(
            "note: the open-file limit is {soft}; idle runs with 10,000 connections need about 10,100 (ulimit -n)"
        );
    }
}
