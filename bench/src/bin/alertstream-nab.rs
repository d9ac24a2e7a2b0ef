//! The Numenta Anomaly Benchmark through alertstream: a rules file's FIRING alerts as detections, through replay
//! and (with `--live`) a live server, and expressions' per-row values at their best thresholds, scored with NAB's
//! three profiles. `scripts/nab.sh` builds and runs it on `../shared/nab` with `examples/anomaly.toml`.

#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use alertstream_bench::{BoxError, nab};
use clap::Parser;

/// Scores alertstream's detections on the Numenta Anomaly Benchmark.
#[derive(Debug, Parser)]
struct Cli {
    /// The NAB directory: `corpus/<category>/<name>.csv` and `labels/combined_windows.json`.
    #[arg(long, default_value = "../shared/nab")]
    data: PathBuf,
    /// The rules file whose FIRING alerts are the detections (every rule counts).
    #[arg(long, default_value = "examples/anomaly.toml")]
    rules: PathBuf,
    /// Also stream every series through a live server (the release `alertstream` beside this binary).
    #[arg(long)]
    live: bool,
    /// An expression to score on every row at its best threshold per profile (repeat for more).
    #[arg(long = "score")]
    scores: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let cli = Cli::parse();
    let plan = nab::Plan { data: &cli.data, rules: &cli.rules, live: cli.live, scores: &cli.scores };
    print!("{}", nab::report(&plan).await?);
    Ok(())
}
