//! The runner behind `alertstream-loadgen compare` (`scripts/bench.sh`): every scenario against alertstream and the
//! baseline, each run on a freshly started server, interleaved (which server goes first alternates) and repeated,
//! printed as markdown tables of medians and ratios.
//!
//! Server CPU per reading is the primary throughput figure: client and server share the machine's cores, so it is
//! steadier than readings per second. The load generator's own CPU per reading is printed beside it; where it is
//! not below the server's, the table says so, as the run then measures the client as much as the server.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    BoxError,
    counterparts::Counterparts,
    idle,
    latency::{self, Latency},
    server::{Server, ServerProcess},
    throughput::{self, Plan},
};

/// One scenario's figures from one run; 0 where the scenario does not measure it.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Readings per second.
    rate: f64,
    /// Server CPU microseconds per reading.
    server_cpu_us: f64,
    /// Load generator CPU microseconds per reading.
    client_cpu_us: f64,
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

/// The median of each figure separately.
fn median_sample(samples: &[Sample]) -> Sample {
    let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    Sample {
        rate: m(|s| s.rate),
        server_cpu_us: m(|s| s.server_cpu_us),
        client_cpu_us: m(|s| s.client_cpu_us),
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

#[derive(Debug, Clone, Copy)]
enum Scenario {
    Throughput(Plan),
    Latency { rate: u64, seconds: f64 },
    Idle { connections: usize },
}

/// Starts `server`, runs `scenario` against it once, and stops it.
async fn measure(server: Server, scenario: Scenario, rules: Option<&Path>) -> Result<Sample, BoxError> {
    let running = ServerProcess::start(server, rules)?;
    let mut sample = Sample::default();
    match scenario {
        Scenario::Throughput(plan) => {
            let t = throughput::run(running.addr(), plan, Some(running.pid())).await?;
            sample.rate = t.rate();
            sample.server_cpu_us = t.server_cpu_us().unwrap_or(0.0);
            sample.client_cpu_us = t.client_cpu_us();
        }
        Scenario::Latency { rate, seconds } => sample.latency = latency::run(running.addr(), rate, 8, seconds).await?,
        Scenario::Idle { connections } => {
            let rss = || running.rss_kib().ok_or_else(|| format!("cannot read the RSS of {server} from /proc"));
            let before = rss()?;
            let held = idle::hold(running.addr(), connections).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            sample.kib_per_connection = (rss()? - before) / connections as f64;
            drop(held);
        }
    }
    Ok(sample)
}

/// Runs `scenario` `repeat` times on each of `servers` (the same server twice is the A/A run), alternating which
/// goes first, and returns the median sample of each. `rules` is given to alertstream only.
async fn interleaved(
    servers: [Server; 2],
    scenario: Scenario,
    repeat: usize,
    rules: Option<&Path>,
) -> Result<[Sample; 2], BoxError> {
    let rules = servers.map(|server| if server == Server::Baseline { None } else { rules });
    interleaved_rules(servers, scenario, repeat, rules).await
}

/// [`interleaved`], each server with its own rules file.
async fn interleaved_rules(
    servers: [Server; 2],
    scenario: Scenario,
    repeat: usize,
    rules: [Option<&Path>; 2],
) -> Result<[Sample; 2], BoxError> {
    let sides = [0, 1].map(|i| Side { server: servers[i], scenario, rules: rules[i] });
    Ok(medians(&rounds(sides, repeat).await?))
}

/// What one side of a round runs: a server, with its rules, under a load.
#[derive(Debug, Clone, Copy)]
struct Side<'a> {
    server: Server,
    scenario: Scenario,
    rules: Option<&'a Path>,
}

/// Runs each side `repeat` times, alternating which goes first: each round's two samples, taken close together,
/// so that a change of the machine's speed between rounds touches both samples of a round alike.
async fn rounds(sides: [Side<'_>; 2], repeat: usize) -> Result<Vec<[Sample; 2]>, BoxError> {
    let mut rounds = Vec::new();
    for round in 0..repeat.max(1) {
        let mut samples = [Sample::default(); 2];
        let order = if round.is_multiple_of(2) { [0, 1] } else { [1, 0] };
        for i in order {
            samples[i] = measure(sides[i].server, sides[i].scenario, sides[i].rules).await?;
        }
        rounds.push(samples);
    }
    Ok(rounds)
}

/// The median sample of each side.
fn medians(rounds: &[[Sample; 2]]) -> [Sample; 2] {
    [0, 1].map(|i| median_sample(&rounds.iter().map(|round| round[i]).collect::<Vec<_>>()))
}

/// The median over rounds of `figure` of the first side over the second's, with the lowest and highest of the
/// rounds' ratios: `**median** (low-high)`.
fn ratio_of_rounds(rounds: &[[Sample; 2]], figure: fn(&Sample) -> f64) -> String {
    let ratios: Vec<f64> = rounds.iter().map(|[a, b]| figure(a) / figure(b)).collect();
    let (low, high) = ratios.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &r| (l.min(r), h.max(r)));
    format!("**{:.2}** ({low:.2}-{high:.2})", median(ratios))
}

/// Writes the default rules plus an absence rule (which never fires in a run: every stream's sensor keeps
/// reporting), so each reading also keeps its sensor's last values and absence deadline.
fn absence_rules_file(dir: &Path) -> Result<PathBuf, BoxError> {
    let text = "[[rule]]\nname = \"temp_too_low\"\ncondition = \"temperature < 10\"\nmessage = \"temp too low\"\n\n\
                [[rule]]\nname = \"ph_too_high\"\ncondition = \"pH > 5.5\"\nmessage = \"pH too high\"\n\n\
                [[rule]]\nname = \"silent\"\nabsent_for = \"1h\"\n";
    let path = dir.join("rules-absence.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The default rules (as a file, so that both sides of the sinks table read one).
const DEFAULT_RULES: &str = "[[rule]]\nname = \"temp_too_low\"\ncondition = \"temperature < 10\"\nmessage = \"temp too low\"\n\n\
                             [[rule]]\nname = \"ph_too_high\"\ncondition = \"pH > 5.5\"\nmessage = \"pH too high\"\n";

/// Writes the default rules three ways, and names the second's sinks:
/// - with a webhook whose counterpart is away (a port nobody listens on: it retries with backoff, its queue fills,
///   and the rest is dropped and counted): what a stream pays to offer an alert;
/// - with every kind of sink: that webhook, JSON-lines files written for real under `dir`, and NATS JetStream and
///   Alertmanager where `counterparts` runs them (away too otherwise);
/// - with no sink.
fn sinks_rules_files(dir: &Path, counterparts: &Counterparts) -> Result<([PathBuf; 3], String), BoxError> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let hook = format!("\n[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://{closed}/alerts\"\n");
    let lake = format!("\n[[sink]]\nname = \"lake\"\ntype = \"jsonl\"\ndir = \"{}\"\n", dir.join("lake").display());
    let nats = format!(
        "\n[[sink]]\nname = \"bus\"\ntype = \"nats\"\nurl = \"nats://{}\"\nstream = \"ALERTS\"\n",
        counterparts.nats.unwrap_or(closed)
    );
    let pager = format!(
        "\n[[sink]]\nname = \"pager\"\ntype = \"alertmanager\"\nurl = \"http://{}\"\n",
        counterparts.alertmanager.unwrap_or(closed)
    );
    let files = [dir.join("rules-hook.toml"), dir.join("rules-every-sink.toml"), dir.join("rules-default.toml")];
    std::fs::write(&files[0], format!("{DEFAULT_RULES}{hook}"))?;
    std::fs::write(&files[1], format!("{DEFAULT_RULES}{hook}{lake}{nats}{pager}"))?;
    std::fs::write(&files[2], DEFAULT_RULES)?;
    let real = |on: Option<std::net::SocketAddr>, name: &str| {
        if on.is_some() { name.to_owned() } else { format!("{name} (away: not installed)") }
    };
    let every = format!(
        "webhook (away) + JSON lines + {} + {}",
        real(counterparts.nats, "NATS"),
        real(counterparts.alertmanager, "Alertmanager")
    );
    Ok((files, every))
}

/// Writes a rules file of `count` rules: the default rule first (every reading fires or resolves it), then rules
/// that never fire.
fn rules_file(dir: &Path, count: usize) -> Result<PathBuf, BoxError> {
    let mut text = String::from("[[rule]]\nname = \"temp_too_low\"\ncondition = \"temperature < 10\"\n\n");
    for i in 1..count {
        text += &format!("[[rule]]\nname = \"r{i}\"\ncondition = \"temperature > {}\"\n\n", 1000 + i);
    }
    let path = dir.join(format!("rules-{count}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Notes the runs where the load generator used at least as much CPU per reading as the server.
#[derive(Debug, Default)]
struct HeavyClient(Vec<String>);

impl HeavyClient {
    fn check(&mut self, what: impl FnOnce() -> String, sample: &Sample) {
        if sample.client_cpu_us >= sample.server_cpu_us {
            self.0.push(format!(
                "{}: client {:.2} µs/reading, server {:.2}",
                what(),
                sample.client_cpu_us,
                sample.server_cpu_us
            ));
        }
    }

    fn print(self) {
        if !self.0.is_empty() {
            println!(
                "\nNote: in these runs the load generator used at least as much CPU per reading as the server, so \
                 they measure it as much as the server: {}.",
                self.0.join("; ")
            );
        }
    }
}

/// The cells comparing `a` with `b`: readings/s of each, their ratio, the server CPU ratio (bold), and server CPU
/// per reading of each.
fn compared(a: &Sample, b: &Sample) -> String {
    format!(
        "{:.0} | {:.0} | {:.2} | **{:.2}** | {:.2} | {:.2}",
        a.rate,
        b.rate,
        a.rate / b.rate,
        a.server_cpu_us / b.server_cpu_us,
        a.server_cpu_us,
        b.server_cpu_us
    )
}

/// A row of an on-against-off table: `first` (its leading cells), then [`compared`].
fn print_on_off(first: &str, on: &Sample, off: &Sample) {
    println!("| {first} | {} |", compared(on, off));
}

/// The temporary directory of one `compare` run, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the tables named in `only` (all when empty: throughput, metrics, state, sinks, sensors, rules, latency, idle,
/// aa), each scenario `repeat` times per server, smaller and shorter when `quick`, and prints them.
pub async fn run(repeat: usize, quick: bool, only: &[String]) -> Result<(), BoxError> {
    const TABLES: [&str; 9] = ["throughput", "metrics", "state", "sinks", "sensors", "rules", "latency", "idle", "aa"];
    if let Some(unknown) = only.iter().find(|o| !TABLES.contains(&o.as_str())) {
        return Err(format!("no table {unknown:?}: the tables are {}", TABLES.join(", ")).into());
    }
    let wanted = |table: &str| only.is_empty() || only.iter().any(|o| o == table);
    // Fail before printing anything when a server is missing.
    if ["throughput", "metrics", "state", "sinks", "sensors", "rules", "latency", "idle"].iter().any(|t| wanted(t)) {
        ServerProcess::locate(Server::Alertstream)?;
    }
    if ["throughput", "latency", "idle", "aa"].iter().any(|t| wanted(t)) {
        ServerProcess::locate(Server::Baseline)?;
    }
    // A run must last long enough for CPU times in 10 ms ticks to mean something.
    let (readings_total, seconds) = if quick { (200_000u64, 2.0) } else { (1_000_000u64, 5.0) };
    let tmp = TempDir(std::env::temp_dir().join(format!("alertstream-bench-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0)?;
    let throughput = |streams: usize, sensors: u64| {
        Scenario::Throughput(Plan {
            streams,
            connections: streams.min(8),
            readings: (readings_total / streams as u64).max(sensors * 2),
            sensors,
        })
    };
    let pair = [Server::Alertstream, Server::Baseline];
    let aa = [Server::Baseline, Server::Baseline];
    let mut heavy = HeavyClient::default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# alertstream vs baseline: medians of {repeat} runs each, interleaved ({cores} cores, client and server on the same machine)\n"
    );

    if wanted("throughput") {
        println!("## Throughput with the default rules (every reading yields one alert)\n");
        println!(
            "Server CPU per reading is the primary figure; CPU ratio = alertstream's / the baseline's (below 1: \
             alertstream is cheaper). Client CPU is the load generator's own over the same span. Each round runs \
             both servers back to back; the ratios are the medians of the rounds' ratios, with their range.\n"
        );
        println!(
            "| streams | alertstream readings/s | baseline readings/s | ratio (range) | CPU ratio (range) | alertstream server CPU µs/reading | baseline server CPU µs/reading | client CPU µs/reading vs alertstream | client CPU µs/reading vs baseline |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        let stream_counts: &[usize] = if quick { &[1, 64] } else { &[1, 4, 16, 64] };
        // The same load with an absence rule added to alertstream's rules: the stream loop's timer arm is measured.
        let absence = absence_rules_file(&tmp.0)?;
        let rows = stream_counts.iter().map(|&s| (s, None)).chain([1, 64].map(|s| (s, Some(absence.as_path()))));
        for (streams, rules) in rows {
            let label = if rules.is_some() { format!("{streams}, with an absence rule") } else { streams.to_string() };
            let sides = [
                Side { server: Server::Alertstream, scenario: throughput(streams, 1), rules },
                Side { server: Server::Baseline, scenario: throughput(streams, 1), rules: None },
            ];
            let rounds = rounds(sides, repeat).await?;
            let [a, b] = medians(&rounds);
            heavy.check(|| format!("alertstream, {label} streams"), &a);
            heavy.check(|| format!("baseline, {label} streams"), &b);
            println!(
                "| {label} | {:.0} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                a.rate,
                b.rate,
                ratio_of_rounds(&rounds, |s| s.rate),
                ratio_of_rounds(&rounds, |s| s.server_cpu_us),
                a.server_cpu_us,
                b.server_cpu_us,
                a.client_cpu_us,
                b.client_cpu_us
            );
        }
    }
    if wanted("metrics") {
        println!("\n## Metrics on against off (alertstream, default rules)\n");
        println!(
            "| streams | readings/s, metrics on | readings/s, off | ratio | CPU ratio | server CPU µs/reading, on | off |"
        );
        println!("|---|---|---|---|---|---|---|");
        for streams in [1usize, 64] {
            let servers = [Server::AlertstreamMetrics, Server::Alertstream];
            let [on, off] = interleaved(servers, throughput(streams, 1), repeat, None).await?;
            heavy.check(|| format!("alertstream with metrics, {streams} streams"), &on);
            print_on_off(&streams.to_string(), &on, &off);
        }
    }
    if wanted("state") {
        println!("\n## A state store on against off (alertstream, default rules)\n");
        println!(
            "On: `--state-dir` (the embedded store): each stream restores its sensor before the first reading and \
             saves it as it ends.\n"
        );
        println!("| streams | readings/s, on | off | ratio | CPU ratio | server CPU µs/reading, on | off |");
        println!("|---|---|---|---|---|---|---|");
        for streams in [1usize, 64] {
            let servers = [Server::AlertstreamState, Server::Alertstream];
            let [on, off] = interleaved(servers, throughput(streams, 1), repeat, None).await?;
            heavy.check(|| format!("alertstream with a state store, {streams} streams"), &on);
            print_on_off(&streams.to_string(), &on, &off);
        }
    }
    if wanted("sinks") {
        println!("\n## Sinks on against off (alertstream, default rules: every reading yields one alert)\n");
        println!(
            "A webhook whose counterpart is away takes each alert into its queue until it is full, then drops and \
             counts the rest: what a stream pays to offer alerts. With every sink, the JSON-lines, NATS and \
             Alertmanager sinks deliver every alert they can take, and nats-server and Alertmanager run too, all on \
             the same cores as the streams and the load generator. Off: no sink.\n"
        );
        println!("| sinks | streams | readings/s, on | off | ratio | CPU ratio | server CPU µs/reading, on | off |");
        println!("|---|---|---|---|---|---|---|---|");
        let counterparts = Counterparts::start(&tmp.0).await?;
        let ([hook, every, off_rules], every_label) = sinks_rules_files(&tmp.0, &counterparts)?;
        for (label, on_rules) in [("webhook (away)", &hook), (every_label.as_str(), &every)] {
            for streams in [1usize, 64] {
                let servers = [Server::Alertstream, Server::Alertstream];
                let rules = [Some(on_rules.as_path()), Some(off_rules.as_path())];
                let [on, off] = interleaved_rules(servers, throughput(streams, 1), repeat, rules).await?;
                heavy.check(|| format!("alertstream with sinks ({label}), {streams} streams"), &on);
                print_on_off(&format!("{label} | {streams}"), &on, &off);
            }
        }
    }
    if wanted("sensors") {
        println!("\n## Sensors on one stream (alertstream, default rules)\n");
        println!(
            "Each round runs 1 sensor and then N sensors (or the reverse, alternating) on fresh servers; the ratio is \
             the median of the rounds' N-sensor rate over their 1-sensor rate, with its range, so that a change of \
             the machine's speed between rounds touches both sides of a round. The 1-sensor row is the A/A.\n"
        );
        println!(
            "| sensors | readings/s | ratio to 1 sensor (range) | server CPU µs/reading | client CPU µs/reading |"
        );
        println!("|---|---|---|---|---|");
        // Ten readings per sensor at least: a long-lived gateway stream, where a sensor's first reading (which
        // creates its state) is the exception.
        let scenario = |sensors: u64| {
            Scenario::Throughput(Plan {
                streams: 1,
                connections: 1,
                readings: readings_total.max(sensors * 10),
                sensors,
            })
        };
        let sensor_counts: &[u64] = if quick { &[1, 100_000] } else { &[1, 1_000, 100_000] };
        for &sensors in sensor_counts {
            let side = |sensors| Side { server: Server::Alertstream, scenario: scenario(sensors), rules: None };
            let rounds = rounds([side(sensors), side(1)], repeat).await?;
            let [many, _] = medians(&rounds);
            heavy.check(|| format!("alertstream, {sensors} sensors"), &many);
            println!(
                "| {sensors} | {:.0} | {} | {:.2} | {:.2} |",
                many.rate,
                ratio_of_rounds(&rounds, |s| s.rate),
                many.server_cpu_us,
                many.client_cpu_us
            );
        }
    }
    if wanted("rules") {
        println!("\n## Rules (alertstream, 1 stream; one rule fires per reading, the rest never)\n");
        println!("| rules | readings/s | ratio to 2 rules | server CPU µs/reading | client CPU µs/reading |");
        println!("|---|---|---|---|---|");
        let mut two = 0.0;
        for count in [2usize, 20, 200] {
            let rules = rules_file(&tmp.0, count)?;
            let [a, _] = interleaved(
                [Server::Alertstream, Server::Alertstream],
                throughput(1, 1),
                repeat.div_ceil(2),
                Some(&rules),
            )
            .await?;
            heavy.check(|| format!("alertstream, {count} rules"), &a);
            if count == 2 {
                two = a.rate;
            }
            println!(
                "| {count} | {:.0} | {:.2} | {:.2} | {:.2} |",
                a.rate,
                a.rate / two,
                a.server_cpu_us,
                a.client_cpu_us
            );
        }
    }
    if wanted("latency") {
        println!("\n## Latency, open loop over 8 streams (µs from the intended send time)\n");
        println!(
            "| rate/s | alertstream p50 / p90 / p99 / p99.9 / max | baseline p50 / p90 / p99 / p99.9 / max | p99 ratio |"
        );
        println!("|---|---|---|---|");
        for rate in [1_000u64, 10_000, 50_000] {
            let [a, b] = interleaved(pair, Scenario::Latency { rate, seconds }, repeat, None).await?;
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
            let [a, b] = interleaved(pair, Scenario::Idle { connections }, repeat, None).await?;
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
            let side = Side { server: Server::Baseline, scenario: throughput(streams, 1), rules: None };
            let rounds = rounds([side, side], repeat).await?;
            let [a, b] = medians(&rounds);
            heavy.check(|| format!("baseline A/A, {streams} streams"), &a);
            heavy.check(|| format!("baseline A/A, {streams} streams"), &b);
            println!(
                "| throughput, {streams} streams (server CPU µs/reading) | {:.2} | {:.2} | {} |",
                a.server_cpu_us,
                b.server_cpu_us,
                ratio_of_rounds(&rounds, |s| s.server_cpu_us)
            );
            println!(
                "| throughput, {streams} streams (readings/s) | {:.0} | {:.0} | {} |",
                a.rate,
                b.rate,
                ratio_of_rounds(&rounds, |s| s.rate)
            );
        }
        let [a, b] = interleaved(aa, Scenario::Latency { rate: 10_000, seconds }, repeat, None).await?;
        println!(
            "| latency p99 at 10000/s (µs) | {:.0} | {:.0} | {:.2} |",
            a.latency.p99,
            b.latency.p99,
            a.latency.p99 / b.latency.p99
        );
        let [a, b] = interleaved(aa, Scenario::Idle { connections: 1_000 }, repeat, None).await?;
        println!(
            "| idle, 1000 connections (KiB each) | {:.1} | {:.1} | {:.2} |",
            a.kib_per_connection,
            b.kib_per_connection,
            a.kib_per_connection / b.kib_per_connection
        );
    }
    heavy.print();
    Ok(())
}
