//! Latency: open loop at a fixed total rate over a few streams on one connection. Each reading has an intended send
//! time and its latency is counted from it to its alert's arrival, so a server that stalls the sender is charged for
//! the readings it delayed (no coordinated omission). The first tenth of the run is warm-up, not counted.
//!
//! Alerts are checked as in throughput runs: each stream is one sensor, each reading yields one alert, in order.

use std::{
    fmt,
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{BoxError, client, codec::Checker, readings::Encoded};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The largest.
    pub max: f64,
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs",
            self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

/// Sends `rate` readings per second in total over `streams` streams for `seconds`, and returns the percentiles.
pub async fn run(target: SocketAddr, rate: u64, streams: usize, seconds: f64) -> Result<Latency, BoxError> {
    let streams = streams.max(1);
    let channel = client::connect(target).await?;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let total = (rate as f64 * seconds) as u64;
    let warm_up = total / 10;
    // Reading g (0-based, over all streams) goes to stream g % streams as its seq g / streams + 1 (round seq - 1:
    // the stream's one sensor starts cold, so its first reading fires the default rule and each next one flips it),
    // at its intended time start + g × interval.
    let per_stream = |s: usize| (total + (streams - 1 - s) as u64) / streams as u64;
    let ids: Vec<String> = (0..streams).map(|s| format!("latency-{s}")).collect();
    let encoded: Vec<Encoded> =
        (0..streams).map(|s| Encoded::new((1..=per_stream(s)).map(|seq| (ids[s].as_str(), seq - 1, seq)))).collect();

    let start = Instant::now() + Duration::from_millis(200);
    let intended =
        move |stream: usize, seq: u64| start + interval.mul_f64(((seq - 1) * streams as u64 + stream as u64) as f64);
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for (s, id) in ids.iter().enumerate() {
        let channel = channel.clone();
        let (tx, rx) = mpsc::channel(4096);
        senders.push(tx);
        let readings = per_stream(s);
        let checker = Checker::new(std::slice::from_ref(id), readings);
        tasks.push(tokio::spawn(async move {
            let mut alerts = client::open_stream(channel, ReceiverStream::new(rx), checker).await?;
            let mut samples = Vec::new();
            let mut count = 0;
            while let Some(seq) = alerts.message().await? {
                let late = Instant::now().saturating_duration_since(intended(s, seq));
                if (seq - 1) * streams as u64 >= warm_up {
                    samples.push(late.as_secs_f64() * 1e6);
                }
                count += 1;
            }
            if count != readings {
                return Err(format!("stream {s}: {count} alerts for {readings} readings").into());
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
            if senders[stream].blocking_send(encoded[stream].get((seq - 1) as usize)).is_err() {
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
