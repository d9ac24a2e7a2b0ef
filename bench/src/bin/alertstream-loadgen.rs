//! Load generator and benchmark runner for alertstream's gRPC `Stream`, against alertstream or the bare-tonic
//! baseline (`alertstream-baseline`). The command line only: each scenario lives in its module of the
//! `alertstream_bench` library.
//!
//! - `throughput`: S streams over C connections, each sending N readings as fast as flow control allows while
//!   checking every alert; prints readings per second and CPU per reading, the load generator's own and, with
//!   `--server-pid`, the server's.
//! - `latency`: open-loop latency percentiles at a fixed total rate.
//! - `idle`: C connections, each holding one open stream, until Ctrl-C.
//! - `compare`: starts both servers (release binaries beside this one) and runs the scenarios interleaved and
//!   repeated, printing medians and ratios. `scripts/bench.sh` runs it.
//! - `sensors`: production-line sensors at a chosen rate over M connections, through the product's own client
//!   (`alertstream::simulate`, what `alertstream simulate` runs): counts and the latency from a reading to its
//!   alert.
//! - `state`: what durable sensor state (`--state-dir`) costs for N sensors: snapshot, save, load and restore.
//! - `soak`: starts alertstream and runs many streams with reconnects, cancels, stalls and bad input for a long
//!   time, sampling the server's memory, file descriptors, threads and tasks every 10 s.

#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use alertstream_bench::{BoxError, compare, idle, latency, soak, state, throughput};
use clap::{Parser, Subcommand};

/// Load generator and benchmark runner for alertstream.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Readings per second with S streams over C connections, and CPU per reading.
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
        /// The server's process id, to report its CPU per reading too (read from /proc).
        #[arg(long)]
        server_pid: Option<u32>,
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
    /// Production-line sensors through the product's own client (`alertstream simulate`): counts and alert latency.
    Sensors {
        #[arg(long, default_value = "127.0.0.1:50051")]
        target: SocketAddr,
        #[arg(long, default_value_t = 100)]
        sensors: usize,
        /// Readings per second in total; 0 sends as fast as flow control allows.
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Readings in all.
        #[arg(long, default_value_t = 10_000)]
        readings: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
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
        /// Run only these tables: throughput, metrics, state, sinks, sensors, rules, latency, idle, aa (default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Start alertstream and soak it: streams with reconnects, cancels, stalls and bad input, sampled every 10 s.
    Soak {
        #[arg(long, default_value_t = 200)]
        streams: usize,
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
    /// What durable sensor state costs: N sensors snapshotted, saved to the embedded store, loaded and restored.
    State {
        #[arg(long, default_value_t = 100_000)]
        sensors: usize,
        /// Readings each sensor gets before the save.
        #[arg(long, default_value_t = 200)]
        readings: u64,
    },
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    warn_if_fd_limit_low();
    match Cli::parse().command {
        Mode::Throughput { target, streams, connections, readings, sensors, server_pid } => {
            let plan = throughput::Plan { streams, connections, readings, sensors };
            println!("{}", throughput::run(target, plan, server_pid).await?);
        }
        Mode::Latency { target, rate, streams, seconds } => {
            println!("{}", latency::run(target, rate, streams, seconds).await?);
        }
        Mode::Sensors { target, sensors, rate, connections, readings, seed } => {
            let plan = alertstream::simulate::Plan {
                target: format!("http://{target}"),
                sensors,
                rate,
                connections,
                count: readings,
                seed,
                excursion_rate: 0.02,
                output: alertstream::simulate::Output::Summary,
                resume: false,
                first_seq: 1,
            };
            println!("{}", alertstream::simulate::run(plan, Default::default()).await?);
        }
        Mode::Idle { target, connections } => {
            let held = idle::hold(target, connections).await?;
            println!("holding {} connections with one open stream each; Ctrl-C to stop", held.len());
            tokio::signal::ctrl_c().await?;
        }
        Mode::Compare { repeat, quick, only } => compare::run(repeat, quick, &only).await?,
        Mode::Soak { streams, seconds } => {
            soak::run(streams, seconds).await?;
        }
        Mode::State { sensors, readings } => println!("{}", state::run(sensors, readings)?),
    }
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
